//! Test-data generator: realistic run.json records built with core's own
//! types, plan and `summarize`, so that the report is tested on exactly the
//! shapes the worker writes. Used by the golden tests (a small fixed run),
//! the acceptance and compare tests (variations of it) and the scale test
//! and benchmark (16,384 ranks).
#![allow(dead_code)]

use std::collections::BTreeMap;

use mfubench_core::config::{parse_config, BackendKind, Config, Mode};
use mfubench_core::plan::StepPlan;
use mfubench_core::result::{
    summarize, LaunchInfo, ModeRecord, OpStat, PeakSource, PlanInfo, RankRecord, RunRecord, Span,
    StreamKind, SummaryInputs, SCHEMA_VERSION,
};

/// Skips: `skip(test, reason)` prints a visible notice (the test then
/// returns) and with `CI=true` fails instead. See
/// crates/test-support/skip.rs.
#[path = "../../../test-support/skip.rs"]
mod skipping;
#[allow(unused_imports)] // each test binary uses a subset
pub use skipping::{current_test, skip};

/// The config of the fixture runs: a Llama-3-8B block on H100s.
pub const FIXTURE_TOML: &str = r#"
[model]
preset = "llama3-8b"

[run]
backend = "cuda"
layers = 1
bucket_mb = 100
iterations = 5
warmup = 1

[acceptance]
min_mfu = 0.30
max_exposed_comm_fraction = 0.25
min_busbw_gbps = 50.0
straggler_tolerance = 0.05
max_wrong = 0
"#;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Gen {
    /// Config text (TOML).
    pub toml: String,
    /// Hosts.
    pub hosts: usize,
    /// Ranks per host.
    pub per_host: usize,
    /// Fraction of peak the GEMMs reach when alone.
    pub gemm_efficiency: f64,
    /// Achieved all-reduce algbw, GB/s.
    pub algbw_gbps: f64,
    /// GEMM slowdown under overlap.
    pub gemm_contention: f64,
    /// All-reduce slowdown under overlap.
    pub comm_contention: f64,
    /// Relative iteration-to-iteration noise.
    pub noise: f64,
    /// (rank, factor): ranks whose GEMMs are slower by the factor.
    pub slow: Vec<(usize, f64)>,
    /// (rank, count): wrong elements planted in comm mode.
    pub wrong: Vec<(usize, u64)>,
    /// Modes to keep (None = the config's).
    pub modes: Option<Vec<Mode>>,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for Gen {
    fn default() -> Self {
        Gen {
            toml: FIXTURE_TOML.to_string(),
            hosts: 2,
            per_host: 4,
            gemm_efficiency: 0.55,
            algbw_gbps: 60.0,
            gemm_contention: 1.04,
            comm_contention: 1.15,
            noise: 0.01,
            slow: vec![(5, 1.081)],
            wrong: Vec::new(),
            modes: None,
            seed: 7,
        }
    }
}

/// Deterministic noise in [-1, 1) (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// The parsed fixture config.
pub fn config(toml: &str) -> Config {
    parse_config(toml, "fixture.toml").expect("fixture config is valid")
}

const PEAK: f64 = 989.0;

/// Builds a whole run record.
pub fn build(g: &Gen) -> RunRecord {
    let mut cfg = config(&g.toml);
    if let Some(m) = &g.modes {
        cfg.run.modes = m.clone();
    }
    let world = g.hosts * g.per_host;
    let layout = cfg
        .parallel
        .layout(world as u64, g.per_host as u64)
        .expect("fixture layout is valid");
    let plan = StepPlan::for_layout(&cfg, &layout);
    let info = PlanInfo::of(&plan, &cfg);
    let iters = cfg.run.iterations as usize;
    let rate = PEAK * 1e12 * g.gemm_efficiency;
    let gemm_t: Vec<f64> = plan.ops.iter().map(|o| o.flops() / rate).collect();
    let labels: Vec<String> = plan.ops.iter().map(|o| o.label()).collect();
    let comm_t: Vec<f64> = info
        .buckets
        .iter()
        .map(|b| b.bytes as f64 / (g.algbw_gbps * 1e9))
        .collect();
    let ready_after: Vec<usize> = plan.buckets.iter().map(|b| b.ready_after).collect();
    let ar_names: Vec<String> = (0..comm_t.len())
        .map(|b| format!("allreduce.b{b}"))
        .collect();
    let mut rng = Rng(g.seed);
    let hosts: Vec<String> = (0..g.hosts).map(|h| format!("node-{h:04}")).collect();

    let ranks = (0..world)
        .map(|r| {
            let slow = g.slow.iter().find(|s| s.0 == r).map(|s| s.1).unwrap_or(1.0);
            let wrong = g.wrong.iter().find(|s| s.0 == r).map(|s| s.1).unwrap_or(0);
            let mut modes = BTreeMap::new();
            for &mode in &cfg.run.modes {
                let mut ops = Vec::new();
                let mut spans = Vec::new();
                let (gc, cc) = if mode == Mode::Overlapped {
                    (g.gemm_contention, g.comm_contention)
                } else {
                    (1.0, 1.0)
                };
                let mut t = 0.0;
                let mut gemm_end = vec![0.0; gemm_t.len()];
                if mode.has_compute() {
                    for (i, d) in gemm_t.iter().enumerate() {
                        let d = d * slow * gc;
                        ops.push(OpStat {
                            name: labels[i].clone(),
                            stream: StreamKind::Compute,
                            op: Some(i),
                            bucket: None,
                            median_s: d,
                        });
                        spans.push(Span {
                            name: labels[i].clone(),
                            stream: StreamKind::Compute,
                            op: Some(i),
                            bucket: None,
                            collective: None,
                            start_s: t,
                            end_s: t + d,
                            arrived_s: None,
                        });
                        t += d;
                        gemm_end[i] = t;
                    }
                }
                if mode.has_comm() {
                    let mut c = if mode == Mode::Serialized { t } else { 0.0 };
                    for (b, d) in comm_t.iter().enumerate() {
                        let d = d * cc;
                        let start = if mode == Mode::Overlapped {
                            c.max(gemm_end[ready_after[b]])
                        } else {
                            c
                        };
                        ops.push(OpStat {
                            name: ar_names[b].clone(),
                            stream: StreamKind::Comm,
                            op: None,
                            bucket: Some(b),
                            median_s: d,
                        });
                        spans.push(Span {
                            name: ar_names[b].clone(),
                            stream: StreamKind::Comm,
                            op: None,
                            bucket: Some(b),
                            collective: None,
                            start_s: start,
                            end_s: start + d,
                            arrived_s: None,
                        });
                        c = start + d;
                    }
                    t = t.max(c);
                }
                let step: Vec<f64> = (0..iters)
                    .map(|_| t * (1.0 + g.noise * rng.next()))
                    .collect();
                // Per-iteration busy and exposed times, scaled with the
                // step's noise (as run.json from mfubench-worker holds them).
                let of = |k: StreamKind| -> Vec<(f64, f64)> {
                    spans
                        .iter()
                        .filter(|s| s.stream == k)
                        .map(|s| (s.start_s, s.end_s))
                        .collect()
                };
                let (gemms, colls) = (of(StreamKind::Compute), of(StreamKind::Comm));
                let per_iter = |x: f64| -> Vec<f64> {
                    if t > 0.0 {
                        step.iter().map(|s| x * s / t).collect()
                    } else {
                        Vec::new()
                    }
                };
                let sum = |v: &[(f64, f64)]| v.iter().map(|(a, b)| b - a).sum::<f64>();
                let gemm_busy_s = if gemms.is_empty() {
                    Vec::new()
                } else {
                    per_iter(sum(&gemms))
                };
                let allreduce_busy_s = if colls.is_empty() {
                    Vec::new()
                } else {
                    per_iter(sum(&colls))
                };
                let comm_exposed_s = if gemms.is_empty() || colls.is_empty() {
                    Vec::new()
                } else {
                    per_iter(mfubench_core::metrics::uncovered_s(&colls, &gemms))
                };
                modes.insert(
                    mode,
                    ModeRecord {
                        step_time_s: step,
                        step_start_s: Vec::new(),
                        gemm_busy_s,
                        allreduce_busy_s,
                        collective_busy_s: BTreeMap::new(),
                        collective_exposed_s: BTreeMap::new(),
                        comm_exposed_s,
                        wait_for_peers_s: Vec::new(),
                        wait_exposed_s: Vec::new(),
                        ops,
                        timeline: spans,
                        timeline_iteration: 0,
                        wrong: if mode == Mode::Comm { wrong } else { 0 },
                    },
                );
            }
            RankRecord {
                rank: r as u64,
                host: hosts[r / g.per_host].clone(),
                local_rank: (r % g.per_host) as u64,
                device: format!("GPU {}", r % g.per_host),
                device_name: "NVIDIA H100 80GB HBM3".into(),
                device_info: BTreeMap::new(),
                calibrated_tflops: None,
                modes,
                wrong,
                telemetry: Vec::new(),
                host_load: None,
                clock: None,
                // First-step costs, then settled within the tolerance.
                warmup_round_s: vec![0.912 + 0.001 * r as f64, 0.305, 0.301],
            }
        })
        .collect::<Vec<_>>();

    let summary = summarize(
        &ranks,
        SummaryInputs {
            plan: &info,
            peak_tflops: PEAK,
            peak_source: PeakSource::Spec,
            straggler_tolerance: cfg.acceptance.straggler_tolerance,
            recompute: cfg.run.recompute,
            schedule: cfg.run.schedule,
            model_layers: cfg.model.layers,
            warmup: mfubench_core::warmup::WarmupRule::of_run(&cfg.run),
        },
    );
    let mut run = RunRecord {
        schema_version: SCHEMA_VERSION,
        tool_version: "0.1.0".into(),
        run_id: "fixture-0001".into(),
        started_at: "2026-01-01T12:00:00Z".into(),
        finished_at: "2026-01-01T12:01:00Z".into(),
        config: cfg,
        backend: BackendKind::Cuda,
        world_size: world as u64,
        hosts,
        launch: LaunchInfo::default(),
        versions: BTreeMap::from([("nccl".to_string(), "2.21.5".to_string())]),
        env: BTreeMap::new(),
        plan: info,
        peak: Some(mfubench_core::result::PeakChoice {
            tflops: PEAK,
            source: PeakSource::Spec,
        }),
        complete: true,
        ranks,
        nodes: Vec::new(),
        rank_shards: None,
        summary,
    };
    // As the worker's RunRecord::new: a large run keeps a timeline sample.
    run.keep_timeline_sample(mfubench_core::result::TIMELINE_SAMPLE_ABOVE);
    run
}

/// Writes a run record as `dir/run.json` (compact, as the worker writes it)
/// and returns the path.
pub fn write_run(dir: &std::path::Path, run: &RunRecord) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("run.json");
    std::fs::write(&p, serde_json::to_vec(run).unwrap()).unwrap();
    p
}

/// Writes a run record as the worker writes a run of more than
/// `SHARD_ABOVE_RANKS` ranks: each host's rank records in
/// `dir/ranks/<host>.json`, and `dir/run.json` with the node records and
/// the shards' index instead of the rank records. Returns run.json's path.
#[allow(dead_code)]
pub fn write_sharded(dir: &std::path::Path, run: &RunRecord) -> std::path::PathBuf {
    use mfubench_core::aggregate::{nodes_of, shard_path, RankShards, ShardFile, ShardRecord};
    std::fs::create_dir_all(dir.join("ranks")).unwrap();
    let mut by_host: BTreeMap<&str, Vec<&mfubench_core::result::RankRecord>> = BTreeMap::new();
    for r in &run.ranks {
        by_host.entry(r.host.as_str()).or_default().push(r);
    }
    let mut files = Vec::new();
    for host in &run.hosts {
        let ranks: Vec<_> = by_host[host.as_str()]
            .iter()
            .map(|r| (*r).clone())
            .collect();
        let path = shard_path(host);
        files.push(ShardFile {
            host: host.clone(),
            path: path.clone(),
            ranks: ranks.iter().map(|r| r.rank).collect(),
        });
        let shard = ShardRecord {
            host: host.clone(),
            ranks,
        };
        std::fs::write(dir.join(&path), serde_json::to_vec(&shard).unwrap()).unwrap();
    }
    let mut sharded = RunRecord {
        ranks: Vec::new(),
        nodes: nodes_of(&run.ranks, &run.plan),
        rank_shards: Some(RankShards { files }),
        ..run.clone()
    };
    sharded.summary = run.summary.clone();
    write_run(dir, &sharded)
}

/// The 16,384-rank run of the scale test and benchmark (2,048 hosts × 8).
pub fn scale_gen() -> Gen {
    Gen {
        hosts: 2048,
        per_host: 8,
        slow: vec![(13, 1.081), (9000, 1.2)],
        ..Gen::default()
    }
}
