//! End-to-end runs of `mfubench-worker` with real MPI ranks (mpirun).
//!
//! These are the Worker issue's required tests: 2- and 3-rank runs whose
//! run.json is checked against the metric definitions and the schedule's
//! ordering rules, the all-reduce check catching a planted error, and bad
//! input failing with exit 2 before any compute.

mod common;

use common::{mpirun as mpirun_cmd, one_at_a_time, reap, signal, WORKER};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mfubench_core::config::Mode;
use mfubench_core::result::{RunRecord, StreamKind};

/// A small, fast config: tiny shapes, one layer, all modes.
fn small_config(dir: &Path, extra_run: &str) -> PathBuf {
    small_config_with(dir, "", extra_run)
}

/// [`small_config`] with lines added to `[model]`.
fn small_config_with(dir: &Path, extra_model: &str, extra_run: &str) -> PathBuf {
    let p = dir.join("small.toml");
    // Defaults the caller's lines may replace (TOML forbids a key twice).
    let defaults: String = [
        ("op_timeout_s", "120.0"),
        ("iterations", "5"),
        ("layers", "2"),
    ]
    .iter()
    .filter(|(k, _)| !extra_run.contains(&format!("{k} =")))
    .map(|(k, v)| format!("{k} = {v}\n"))
    .collect();
    std::fs::write(
        &p,
        format!(
            "[model]\npreset = \"tiny\"\nseq = 128\n{extra_model}[run]\nbackend = \"cpu\"\nbucket_mb = 0.5\nwarmup = 1\n{defaults}{extra_run}\n"
        ),
    )
    .unwrap();
    p
}

fn mpirun(np: usize, args: &[&str]) -> Output {
    let _one_at_a_time = one_at_a_time();
    mpirun_cmd(np, WORKER)
        .args(args)
        .output()
        .expect("mpirun must be installed (ci/install-deps.sh installs openmpi-bin)")
}

/// A 2-rank worker job of [`small_config`] running in the background
/// (results in `out()`, run id `r`), for the tests that act on a job while
/// it runs: it holds [`one_at_a_time`]; [`LiveJob::events`] reads the
/// progress events on stdout as they come; stderr is piped or discarded.
struct LiveJob {
    child: std::process::Child,
    /// Every live job ends within 5 minutes, whatever the test waits on.
    _deadline: reap::Deadline,
    dir: tempfile::TempDir,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl LiveJob {
    fn start(extra_run: &str, keep_stderr: bool) -> LiveJob {
        let lock = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let cfg = small_config(dir.path(), extra_run);
        let out = dir.path().join("results");
        let child = mpirun_cmd(2, WORKER)
            .args(["--config", cfg.to_str().unwrap(), "--out"])
            .arg(&out)
            .args(["--run-id", "r"])
            .stdout(std::process::Stdio::piped())
            .stderr(if keep_stderr {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .unwrap();
        LiveJob {
            _deadline: reap::Deadline::arm(child.id(), std::time::Duration::from_secs(300)),
            child,
            dir,
            _one_at_a_time: lock,
        }
    }

    /// The run's run.json.
    fn run_json(&self) -> RunRecord {
        let p = self.dir.path().join("results/r/run.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    /// The job's progress events until its stdout closes.
    fn events(&mut self) -> impl Iterator<Item = mfubench_core::protocol::Event> {
        use std::io::{BufRead, BufReader};
        let stdout = self.child.stdout.take().expect("events read once");
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| mfubench_core::protocol::Event::parse_line(&l)?.ok())
    }
}

impl Drop for LiveJob {
    /// A test that panicked mid-job leaves no ranks behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            reap::kill_tree(&mut self.child);
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_ok(np: usize, extra_run: &str, extra_args: &[&str]) -> (RunRecord, String) {
    run_ok_with(np, "", extra_run, extra_args)
}

fn run_ok_with(
    np: usize,
    extra_model: &str,
    extra_run: &str,
    extra_args: &[&str],
) -> (RunRecord, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config_with(dir.path(), extra_model, extra_run);
    run_config_ok(np, &cfg, extra_args)
}

/// Runs the worker on `cfg` (results beside it, run id `r`), expects
/// success and returns its run.json and output.
fn run_config_ok(np: usize, cfg: &Path, extra_args: &[&str]) -> (RunRecord, String) {
    let out = cfg.parent().unwrap().join("results");
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--run-id",
        "r",
    ];
    let expect = np.to_string();
    args.extend(["--expect-world", &expect]);
    args.extend_from_slice(extra_args);
    let o = mpirun(np, &args);
    let t = text(&o);
    assert!(o.status.success(), "worker failed:\n{t}");
    assert!(!t.contains("panicked"), "{t}");
    let json = std::fs::read(out.join("r/run.json")).unwrap();
    (
        serde_json::from_slice(&json).expect("run.json parses as RunRecord"),
        t,
    )
}

fn check_run(run: &RunRecord, np: u64) {
    assert_eq!(run.world_size, np);
    assert_eq!(run.ranks.len(), np as usize);
    let s = &run.summary;
    for (i, r) in run.ranks.iter().enumerate() {
        assert_eq!(r.rank, i as u64);
        assert_eq!(r.wrong, 0);
        for m in Mode::ALL {
            let rec = &r.modes[&m];
            assert_eq!(rec.step_time_s.len(), 5);
            assert!(
                rec.step_time_s.iter().all(|t| *t > 0.0 && t.is_finite()),
                "{m}: {:?}",
                rec.step_time_s
            );
        }
    }
    for m in Mode::ALL {
        assert!(s.step_time_s.get(m).unwrap() > 0.0);
    }
    for m in [Mode::Compute, Mode::Serialized, Mode::Overlapped] {
        let mfu = s.mfu.get(m).unwrap();
        assert!(mfu > 0.0 && mfu <= 1.0, "MFU {m} = {mfu}");
    }
    // Serialized = compute + communication, so it cannot be faster than
    // compute alone. The two modes run at different moments of a shared
    // machine; noise only ever adds time, so the fastest iterations are
    // compared (with 3 % slack for timer and scheduling jitter).
    let (ts, tc) = (
        s.step_time_stats.serialized.unwrap().min,
        s.step_time_stats.compute.unwrap().min,
    );
    assert!(ts >= 0.97 * tc, "min T_s {ts} < min T_c {tc}");
    let ar = s.allreduce;
    let algbw = ar.algbw_gbps.unwrap();
    let want = algbw * 2.0 * (np as f64 - 1.0) / np as f64;
    assert!((ar.busbw_gbps.unwrap() - want).abs() <= 1e-12 * want.max(1.0));
    // The all-reduces' own time (from each one's last arrival; the clocks
    // were aligned): within the comm step, and the bandwidths' time.
    let t_ar = ar.time_s.unwrap();
    assert!(t_ar > 0.0 && t_ar <= s.step_time_s.comm.unwrap(), "{t_ar}");
    assert!((algbw - ar.bytes as f64 / t_ar / 1e9).abs() < 1e-9 * algbw);
    assert_eq!(s.wrong, 0);
    // MFU is F / (T · peak) with F from the plan.
    let f = run.plan.flops.model;
    let mfu_c = f / (s.step_time_s.compute.unwrap() * s.peak_tflops * 1e12);
    assert!((mfu_c - s.mfu.compute.unwrap()).abs() < 1e-12);

    // Warmup followed its rule on the recorded round times: every rank ran
    // the same rounds, it went on exactly while the rule said so, and the
    // summary's outcome recomputes from the records.
    let c = &run.config.run;
    let rule = mfubench_core::warmup::WarmupRule::of_run(c);
    let rounds: Vec<&[f64]> = run
        .ranks
        .iter()
        .map(|r| r.warmup_round_s.as_slice())
        .collect();
    let n = rounds[0].len();
    assert!(rounds
        .iter()
        .all(|r| r.len() == n && r.iter().all(|t| *t > 0.0)));
    assert!(
        n as u32 >= rule.min_rounds && n as u32 <= rule.max_rounds,
        "{n}"
    );
    for k in 0..=n {
        let settled = k > 0 && rounds.iter().all(|r| rule.settled(&r[..k]));
        assert_eq!(
            rule.another_round(k as u32, settled),
            k < n,
            "after {k} of {n}: {rounds:?}"
        );
    }
    assert_eq!(s.warmup, rule.outcome(&rounds));

    // Ordering rules, from the recorded timelines of every rank: a
    // collective starts after the GEMM its mode issues it after (its
    // data's last producer; serialized DDP: the step's last GEMM).
    let layout = run.config.parallel.layout(np, np).unwrap();
    let plan = mfubench_core::plan::StepPlan::for_layout(&run.config, &layout);
    let collective_of = |span: &mfubench_core::result::Span| match span.bucket {
        Some(b) => plan.collectives.iter().find(|c| c.bucket == Some(b)),
        None => span.collective.and_then(|i| plan.collectives.get(i)),
    };
    for r in &run.ranks {
        for mode in [Mode::Overlapped, Mode::Serialized] {
            let tl = &r.modes[&mode].timeline;
            let comm: Vec<_> = tl.iter().filter(|s| s.stream == StreamKind::Comm).collect();
            assert_eq!(comm.len(), plan.collectives.len(), "rank {} {mode}", r.rank);
            for span in comm {
                let c = collective_of(span).expect("every comm span is a planned collective");
                let Some(after) = c.issue_after(mode) else {
                    continue;
                };
                let gemm = tl
                    .iter()
                    .find(|g| g.op == Some(after))
                    .expect("the GEMM it follows is in the timeline");
                assert!(
                    span.start_s >= gemm.end_s,
                    "rank {} {mode}: {} starts before {} ends",
                    r.rank,
                    span.name,
                    gemm.name
                );
            }
        }
        assert!(r.modes[&Mode::Compute]
            .timeline
            .iter()
            .all(|s| s.stream == StreamKind::Compute));
        assert!(r.modes[&Mode::Comm]
            .timeline
            .iter()
            .all(|s| s.stream == StreamKind::Comm));
    }
}

#[test]
fn two_ranks_all_modes() {
    let (run, out) = run_ok(2, "", &[]);
    check_run(&run, 2);
    assert_eq!(run.backend, mfubench_core::config::BackendKind::Cpu);
    assert_eq!(
        run.summary.peak_source,
        mfubench_core::result::PeakSource::Calibrated
    );
    assert!(out.contains("\"event\":\"done\""), "{out}");
    // Local ranks on one host are 0 and 1.
    let mut local: Vec<u64> = run.ranks.iter().map(|r| r.local_rank).collect();
    local.sort();
    assert_eq!(local, vec![0, 1]);
    assert_eq!(run.hosts.len(), 1);
}

#[test]
fn a_mixture_of_experts_model_runs_every_mode_checked() {
    // Every other block MoE: 4 experts, top-2, one shared expert, routing
    // skewed by Zipf's law.
    let (run, _) = run_ok_with(
        2,
        "experts = 4\ntop_k = 2\nexpert_ffn = 384\nshared_experts = 1\nmoe_every = 2\nrouting = \"zipf:1.2\"\n",
        "",
        &[],
    );
    check_run(&run, 2);
    // The step executed block 0 dense and block 1 MoE: the router and
    // four experts' GEMMs, each on its routed tokens (128 × 2 in all,
    // unevenly), their gradients in the buckets like every weight's.
    let counts = run.config.model.tokens_per_expert(128);
    assert_eq!(counts.iter().sum::<u64>(), 256);
    assert!(counts.iter().max() > counts.iter().min(), "{counts:?}");
    let plan = mfubench_core::plan::StepPlan::for_config(&run.config);
    let experts: Vec<_> = plan
        .ops
        .iter()
        .filter(|o| {
            o.kind == mfubench_core::plan::GemmKind::ExpertUp
                && o.pass == mfubench_core::plan::Pass::Forward
        })
        .collect();
    assert_eq!(experts.len(), 4);
    assert!(experts
        .iter()
        .all(|o| o.layer == Some(1) && o.m == counts[o.expert.unwrap() as usize] && o.n == 384));
    let m = &run.config.model;
    let grads: u64 = plan
        .ops
        .iter()
        .filter(|o| o.is_weight_grad())
        .map(|o| o.m * o.n)
        .sum();
    assert_eq!(grads, m.params_of_layer(0) + m.params_of_layer(1));
    assert_eq!(plan.buckets.iter().map(|b| b.elements).sum::<u64>(), grads);
    // The executed FLOPs are 6·N_active·T + 12·L·d·s·T for the slice.
    let f = &run.plan.flops;
    assert!(
        (f.model - f.six_n_attention).abs() <= 1e-12 * f.model,
        "{f:?}"
    );
}

/// Expert parallelism with real MPI ranks: 4 experts over 4 ranks (one
/// each), top-2, Zipf-skewed, 2 token chunks: every mode runs, every
/// uneven all-to-all is checked (#wrong 0 on every rank), and the summary
/// has the all-to-all figures with their intervals.
#[test]
fn expert_parallel_all_to_all_runs_every_mode_checked() {
    let (run, _) = run_ok_with(
        4,
        "experts = 4\ntop_k = 2\nrouting = \"zipf:1.2\"\nmoe_chunks = 2\n",
        "[parallel]\nexpert = 4\n",
        &[],
    );
    check_run(&run, 4);
    assert_eq!(run.config.parallel.expert, 4);
    let layout = run.config.parallel.layout(4, 4).unwrap();
    let plan = mfubench_core::plan::StepPlan::for_layout(&run.config, &layout);
    let a2a: Vec<_> = plan
        .collectives
        .iter()
        .filter(|c| c.kind == mfubench_core::metrics::Collective::AllToAll)
        .collect();
    // 2 blocks × 2 chunks × (dispatch, combine) × (forward, backward).
    assert_eq!(a2a.len(), 16);
    assert!(a2a
        .iter()
        .any(|c| c.exchange.iter().any(|&x| x != c.exchange[0])));
    let s = run
        .summary
        .collectives
        .iter()
        .find(|c| c.kind == mfubench_core::metrics::Collective::AllToAll)
        .expect("all-to-all figures in the summary");
    assert_eq!((s.group_size, s.count), (4, 16));
    assert_eq!(s.bytes, a2a.iter().map(|c| c.bytes).sum::<u64>());
    for (what, v, ci) in [
        ("time", s.time_s, s.time_s_ci95),
        ("busbw", s.busbw_gbps, s.busbw_gbps_ci95),
        ("exposed", s.exposed_s, s.exposed_s_ci95),
        (
            "serialized exposed",
            s.serialized_exposed_s,
            s.serialized_exposed_s_ci95,
        ),
        ("hidden", s.hidden_fraction, s.hidden_fraction_ci95),
    ] {
        let (v, [lo, hi]) = (v.expect(what), ci.expect(what));
        assert!(lo <= v && v <= hi, "{what}: {v} not in [{lo}, {hi}]");
    }
    // The busbw is algbw × (n − 1)/n.
    let (a, b) = (s.algbw_gbps.unwrap(), s.busbw_gbps.unwrap());
    assert!((b - a * 0.75).abs() <= 1e-9 * a, "{a} {b}");
    // The ranks' spans name the all-to-alls on the ep stream.
    let names: Vec<&str> = run.ranks[0].modes[&Mode::Overlapped]
        .timeline
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains(".alltoall.dispatch.fwd.c1")),
        "{names:?}"
    );
}

#[test]
fn a_hugging_face_config_json_named_in_the_config_is_read_by_rank_0() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("model")).unwrap();
    // A small Qwen2-style shape; the config's own keys override it.
    std::fs::write(
        dir.path().join("model/config.json"),
        r#"{"model_type": "qwen2", "hidden_size": 256, "intermediate_size": 704,
            "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 24, "vocab_size": 1000,
            "max_position_embeddings": 32768, "tie_word_embeddings": true}"#,
    )
    .unwrap();
    let cfg = dir.path().join("hf.toml");
    std::fs::write(
        &cfg,
        "[model]\nhf_config = \"model/config.json\"\nseq = 128\n[run]\nbackend = \"cpu\"\nlayers = 2\nwarmup = 1\niterations = 5\nbucket_mb = 0.5\nop_timeout_s = 120.0\n",
    )
    .unwrap();
    let (run, _) = run_config_ok(2, &cfg, &[]);
    let m = &run.config.model;
    assert_eq!(
        (m.hidden, m.ffn, m.heads, m.kv_heads, m.layers),
        (256, 704, 4, 2, 24)
    );
    assert_eq!((m.seq, m.vocab, m.tied_embeddings), (128, 1000, true));
    assert_eq!(m.name, "hf:model/config.json");
    assert_eq!(run.ranks.iter().map(|r| r.wrong).sum::<u64>(), 0);
}

#[test]
fn three_ranks_all_modes() {
    let (run, _) = run_ok(3, "peak_tflops = 5.0\n", &[]);
    check_run(&run, 3);
    assert_eq!(
        run.summary.peak_source,
        mfubench_core::result::PeakSource::Config
    );
    assert_eq!(run.summary.peak_tflops, 5.0);
    // Every paired figure has an interval around its point value.
    let s = &run.summary;
    let c = &s.ci95;
    assert_eq!(s.schedule, mfubench_core::config::Schedule::Interleaved);
    assert_eq!(c.paired_iterations, 5);
    let figures = [
        ("exposed_comm_s", s.exposed_comm_s, c.exposed_comm_s),
        (
            "exposed_comm_fraction",
            s.exposed_comm_fraction,
            c.exposed_comm_fraction,
        ),
        (
            "serialized_overhead",
            s.serialized_overhead,
            c.serialized_overhead,
        ),
        ("hidden_fraction", s.hidden_fraction, c.hidden_fraction),
        ("overlap_speedup", s.overlap_speedup, c.overlap_speedup),
        ("contention_gemm", s.contention.gemm, c.contention_gemm),
        (
            "contention_allreduce",
            s.contention.allreduce,
            c.contention_allreduce,
        ),
    ];
    for (name, v, ci) in figures {
        let (v, [lo, hi]) = (
            v.unwrap(),
            ci.unwrap_or_else(|| panic!("no interval for {name}")),
        );
        assert!(lo <= v && v <= hi, "{name}: {v} not in [{lo}, {hi}]");
    }
    if let (Some(v), Some([lo, hi])) = (s.overlap_efficiency, c.overlap_efficiency) {
        assert!(lo <= v && v <= hi, "efficiency {v} not in [{lo}, {hi}]");
    }
    for m in Mode::ALL {
        let [lo, hi] = c.step_time_s.get(m).unwrap();
        let v = s.step_time_s.get(m).unwrap();
        assert!(lo <= v && v <= hi, "{m}: {v} not in [{lo}, {hi}]");
    }
    // Interleaving: in every round each mode ran once, so between two
    // consecutive steps of one mode every other mode ran exactly once.
    for r in &run.ranks {
        let mut all: Vec<(f64, Mode)> = Mode::ALL
            .iter()
            .flat_map(|&m| r.modes[&m].step_start_s.iter().map(move |&t| (t, m)))
            .collect();
        assert_eq!(all.len(), 20);
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (round, chunk) in all.chunks(4).enumerate() {
            let modes: Vec<Mode> = chunk.iter().map(|x| x.1).collect();
            let want = s.schedule.round_order(&Mode::ALL, round);
            assert_eq!(modes, want, "round {round} of rank {}", r.rank);
        }
    }
}

#[test]
fn planted_corruption_is_reported() {
    let (run, out) = run_ok(2, "modes = [\"comm\"]\n", &["--inject-wrong-rank", "1"]);
    assert_eq!(run.ranks[1].wrong, 1, "{out}");
    assert_eq!(run.ranks[0].wrong, 0);
    assert_eq!(run.summary.wrong, 1);
    assert!(out.contains("1 wrong element"), "{out}");
}

/// `--vary`: each variant checks its own all-reduces (`#wrong` per
/// variant, as in a plain run), and its run.json is an ordinary run of its
/// own value.
#[test]
fn vary_checks_every_variant_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), "modes = [\"compute\", \"overlapped\"]\n");
    let out = dir.path().join("results");
    let o = mpirun(
        2,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--run-id",
            "v",
            "--expect-world",
            "2",
            "--vary",
            "run.bucket_mb=0.25,1",
            "--inject-wrong-rank",
            "1",
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "worker failed:\n{t}");
    for (k, mb) in [(0, 0.25), (1, 1.0)] {
        let json = std::fs::read(out.join(format!("v/variants/{k}/run.json"))).unwrap();
        let run: RunRecord = serde_json::from_slice(&json).expect("a variant is a run.json");
        assert_eq!(run.config.run.bucket_mb, mb);
        assert!(run.complete);
        assert_eq!(run.ranks[1].wrong, 1, "variant {k}: {t}");
        assert_eq!(run.ranks[0].wrong, 0, "variant {k}");
        assert_eq!(run.ranks[0].modes[&Mode::Overlapped].step_time_s.len(), 5);
    }
    let v: mfubench_core::vary::VaryRecord =
        serde_json::from_slice(&std::fs::read(out.join("v/vary.json")).unwrap()).unwrap();
    assert!(v.complete);
    assert_eq!(v.rounds, 5);
    assert_eq!(
        v.variants.iter().map(|e| e.wrong).collect::<Vec<_>>(),
        vec![1, 1]
    );
}

/// FSDP on 3 ranks (shards padded to a multiple of 3): the all-gathers
/// and reduce-scatters pass their known-answer checks on every rank, and
/// one corrupted element of a gathered buffer is counted on its rank.
#[test]
fn fsdp_collectives_are_checked_and_corruption_reported() {
    let (run, out) = run_ok(
        3,
        "modes = [\"comm\", \"overlapped\"]\n[parallel]\ndata = \"fsdp\"\n",
        &["--inject-wrong-rank", "2"],
    );
    assert_eq!(run.ranks[2].wrong, 1, "{out}");
    assert_eq!(run.ranks[0].wrong + run.ranks[1].wrong, 0, "{out}");
    let kinds: Vec<String> = run
        .summary
        .collectives
        .iter()
        .map(|c| format!("{:?}/{}", c.kind, c.group))
        .collect();
    assert_eq!(kinds, ["AllGather/dp_shard", "ReduceScatter/dp_shard"]);
    assert!(run
        .summary
        .collectives
        .iter()
        .all(|c| c.group_size == 3 && c.hidden_fraction.is_some()));
}

#[test]
fn missing_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = mpirun(
        2,
        &[
            "--config",
            "/nonexistent/x.toml",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("/nonexistent/x.toml") && t.contains("cannot read"),
        "{t}"
    );
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn invalid_config_exits_2_with_cores_message() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[model]\npreset = \"llama3-8b\"\nheads = 48\n").unwrap();
    let o = mpirun(
        2,
        &[
            "--config",
            p.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("model.heads = 48 does not divide model.hidden = 4096"),
        "{t}"
    );
    // Only rank 0 reports it (once for people; its rank_error event
    // carries the same text for the launcher).
    let said = |event: bool| {
        t.lines()
            .filter(|l| l.contains("does not divide") && l.contains("@@mfubench") == event)
            .count()
    };
    assert_eq!((said(false), said(true)), (1, 1), "{t}");
}

#[test]
fn unwritable_out_fails_before_compute() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), "");
    // A regular file where the results folder should be.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let o = mpirun(
        2,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            blocker.to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("--out"), "{t}");
    assert!(
        !t.contains("\"event\":\"iteration\""),
        "no compute may start: {t}"
    );
}

#[test]
fn wrong_world_size_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), "");
    let o = mpirun(
        1,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
            "--expect-world",
            "4",
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("--expect-world is 4") && t.contains("world of 1"),
        "{t}"
    );
}

/// Finds "watchdog: mode compute, warmup iteration 1: op L<n>.<kind>.<pass>
/// on the compute stream did not complete within" in the output.
fn names_stuck_gemm(t: &str) -> bool {
    t.lines().any(|l| {
        l.split_once("watchdog: mode compute, warmup iteration 1: op L")
            .and_then(|(_, rest)| {
                rest.split_once(" on the compute stream did not complete within ")
            })
            .is_some_and(|(op, _)| op.split('.').count() == 3)
    })
}

#[test]
fn watchdog_names_the_stuck_op_and_aborts() {
    let dir = tempfile::tempdir().unwrap();
    // Every GEMM takes far longer than 20 µs: one of them trips the watchdog.
    let cfg = small_config(
        dir.path(),
        "peak_tflops = 1.0\nop_timeout_s = 0.00002\nmodes = [\"compute\"]\n",
    );
    let started = std::time::Instant::now();
    let o = mpirun(
        2,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    // Which GEMM trips it depends on how far the stream got while the ops
    // were being enqueued; the message must name mode, iteration, op and stream.
    assert!(names_stuck_gemm(&t), "{t}");
    assert!(t.contains("aborting the job"), "{t}");
    assert!(started.elapsed().as_secs() < 60, "the abort must not hang");
}

#[test]
fn measured_steps_are_saved_before_the_run_ends() {
    // The job is killed after a few timed rounds: the steps measured so far
    // must already be on disk (saved after 1, 2, 4, … rounds), marked
    // incomplete, both modes with the same number of steps.
    use mfubench_core::protocol::Event;
    let mut job = LiveJob::start(
        "peak_tflops = 1.0\nmodes = [\"comm\", \"compute\"]\niterations = 400\ncheck = false\n",
        false,
    );
    // Round 6 has started: the save after round 4 is on disk.
    let seen = job
        .events()
        .any(|e| matches!(e, Event::Iteration { ref phase, iter: 6, .. } if phase == "timed"));
    assert!(seen);
    reap::stop_within(
        &mut job.child,
        libc::SIGTERM,
        std::time::Duration::from_secs(60),
    );
    let run = job.run_json();
    assert!(!run.complete);
    for r in &run.ranks {
        let (c, a) = (&r.modes[&Mode::Compute], &r.modes[&Mode::Comm]);
        assert_eq!(c.step_time_s.len(), a.step_time_s.len());
        assert!(c.step_time_s.len() >= 4 && c.step_time_s.len().is_power_of_two());
    }
    assert!(run.summary.allreduce.busbw_gbps.unwrap() > 0.0);
    assert!(run.summary.step_time_s.compute.is_some());
}

/// The overlap verdict a user reads off a run: a gain or a loss when the
/// speedup's interval excludes 1, else inconclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OverlapVerdict {
    Gain,
    Loss,
    Inconclusive,
}

fn overlap_verdict(run: &RunRecord) -> OverlapVerdict {
    let [lo, hi] = run.summary.ci95.overlap_speedup.expect("speedup interval");
    if lo > 1.0 {
        OverlapVerdict::Gain
    } else if hi < 1.0 {
        OverlapVerdict::Loss
    } else {
        OverlapVerdict::Inconclusive
    }
}

/// Runs 2 ranks with `schedule` (one layer: four such runs make this test);
/// `hog_on(mode, iter)` is asked after every timed step event of rank 0
/// and says whether a CPU hog (four busy real processes, two per core)
/// should run from then on (None: as it is).
fn run_with_hog(schedule: &str, hog_on: impl Fn(&str, u64) -> Option<bool>) -> RunRecord {
    let mut job = LiveJob::start(
        &format!("peak_tflops = 1.0\niterations = 30\nlayers = 1\ncheck = false\nschedule = \"{schedule}\"\n"),
        false,
    );
    let mut hogs: Vec<std::process::Child> = Vec::new();
    for e in job.events() {
        let mfubench_core::protocol::Event::Iteration {
            mode, phase, iter, ..
        } = e
        else {
            continue;
        };
        if phase != "timed" {
            continue;
        }
        let Some(want) = hog_on(&mode, u64::from(iter)) else {
            continue;
        };
        if want && hogs.is_empty() {
            for _ in 0..4 {
                hogs.push(
                    reap::die_with_parent(&mut Command::new("sh"))
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .unwrap(),
                );
            }
        } else if !want && !hogs.is_empty() {
            for mut h in hogs.drain(..) {
                let _ = h.kill();
                let _ = h.wait();
            }
        }
    }
    for mut h in hogs {
        let _ = h.kill();
        let _ = h.wait();
    }
    assert!(job.child.wait().unwrap().success());
    job.run_json()
}

fn ci_width(run: &RunRecord, m: Mode) -> f64 {
    let [lo, hi] = run.summary.ci95.step_time_s.get(m).unwrap();
    hi - lo
}

/// A CPU hog started mid-run, real processes on a real 2-rank run: with the
/// interleaved schedule it hits every mode alike, so it widens the
/// intervals but does not flip the overlap verdict; with the blocked
/// schedule, landing on one mode, it biases the overlap figure. The runs
/// print both. Timing on a shared machine: an attempt whose hog did not
/// measurably slow its rounds (other load drowned it) is run once more.
#[test]
fn cpu_hog_mid_run_widens_intervals_without_flipping_the_verdict() {
    let mut failures = Vec::new();
    for attempt in 1..=2 {
        match hog_attempt() {
            Ok(()) => return,
            Err(e) => {
                println!("attempt {attempt}: {e}");
                failures.push(e);
            }
        }
    }
    panic!("{}", failures.join("\n"));
}

fn hog_attempt() -> Result<(), String> {
    let quiet = run_with_hog("interleaved", |_, _| None);
    // Hog during timed rounds 11 to 20 (of 30): on after the compute step
    // of round 10, off after that of round 20; other modes' steps leave it.
    let hog = run_with_hog("interleaved", |m, i| {
        (m == "compute").then_some((10..20).contains(&i))
    });
    let (vq, vh) = (overlap_verdict(&quiet), overlap_verdict(&hog));
    let s = |r: &RunRecord| {
        let c = r.summary.ci95.overlap_speedup.unwrap();
        format!(
            "{:.3} [{:.3}, {:.3}]",
            r.summary.overlap_speedup.unwrap(),
            c[0],
            c[1]
        )
    };
    println!("interleaved, quiet: speedup {} → {vq:?}", s(&quiet));
    println!("interleaved, hog:   speedup {} → {vh:?}", s(&hog));
    // A flip is a gain read as a loss or the reverse; an interval that
    // widens into "inconclusive" (or narrows out of it) is not. This holds
    // whatever else loads the machine.
    use OverlapVerdict::*;
    assert!(
        !matches!((vq, vh), (Gain, Loss) | (Loss, Gain)),
        "the hog flipped the interleaved verdict: {vq:?} → {vh:?}"
    );
    // The hog really slowed the rounds it ran in (within the run)…
    let steps = &hog.ranks[0].modes[&Mode::Compute].step_time_s;
    let during = mfubench_core::stats::median(&steps[10..19]).unwrap();
    let outside: Vec<f64> = steps[..9].iter().chain(&steps[21..]).copied().collect();
    let outside = mfubench_core::stats::median(&outside).unwrap();
    if during <= 1.3 * outside {
        return Err(format!(
            "the hog did not slow its rounds: {during} s vs {outside} s"
        ));
    }
    // …and so widened the interval of the step time.
    let (wq, wh) = (
        ci_width(&quiet, Mode::Compute),
        ci_width(&hog, Mode::Compute),
    );
    if wh <= wq {
        return Err(format!(
            "the hog did not widen the compute interval: {wh} vs {wq}"
        ));
    }

    // Blocked: the hog lands on the serialized mode alone, which makes the
    // overlapped step look like a gain it is not.
    let bq = run_with_hog("blocked", |_, _| None);
    // On after the last comm step, off after the last serialized one.
    let bh = run_with_hog("blocked", |m, i| match (m, i) {
        ("comm", 30) => Some(true),
        ("serialized", 30) => Some(false),
        _ => None,
    });
    println!(
        "blocked, quiet:     speedup {} → {:?}",
        s(&bq),
        overlap_verdict(&bq)
    );
    println!(
        "blocked, hog:       speedup {} → {:?}",
        s(&bh),
        overlap_verdict(&bh)
    );
    let (q, h) = (
        bq.summary.overlap_speedup.unwrap(),
        bh.summary.overlap_speedup.unwrap(),
    );
    if h <= q * 1.2 {
        return Err(format!(
            "a hog on the serialized mode alone did not inflate the blocked speedup: {h} vs {q}"
        ));
    }
    Ok(())
}

/// A rank stopped mid-run (SIGSTOP, as a hung process) must not hang the
/// job: the other rank's barrier or op wait has a deadline, and the job
/// ends with exit 3 within op_timeout_s and a few seconds.
#[test]
fn stopped_rank_ends_the_job_within_the_op_timeout() {
    use mfubench_core::protocol::Event;
    use std::io::Read;
    let mut job = LiveJob::start(
        "peak_tflops = 1.0\niterations = 1000\ncheck = false\nop_timeout_s = 3.0\n",
        true,
    );
    let mut stderr = job.child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut pid_of_rank1 = None;
    let mut stopped_at = None;
    for e in job.events() {
        match e {
            Event::Hello { rank: 1, pid, .. } => pid_of_rank1 = Some(pid),
            Event::Iteration { phase, iter: 3, .. } if phase == "timed" && stopped_at.is_none() => {
                signal(pid_of_rank1.expect("rank 1 said hello"), libc::SIGSTOP);
                stopped_at = Some(std::time::Instant::now());
            }
            _ => {}
        }
    }
    let status = job.child.wait().unwrap();
    let waited = stopped_at.expect("the run reached timed round 3").elapsed();
    if let Some(pid) = pid_of_rank1 {
        signal(pid, libc::SIGKILL);
    }
    let err = err_reader.join().unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("watchdog"), "{err}");
    assert!(waited.as_secs_f64() < 3.0 + 20.0, "ended after {waited:?}");
}

/// The median of a per-iteration series.
fn median(v: &[f64]) -> f64 {
    mfubench_core::stats::median(v).expect("a non-empty series")
}

/// One rank of 3 starts every step 50 ms late (`--late-rank 1:0.05`): the
/// other two wait for it at the collectives (`wait_for_peers_s` near 50 ms
/// a step; rank 1 clearly less: on 2 cores it also waits for a peer the
/// scheduler set aside), while the all-reduces' own time, from the last
/// arrival, stays what it is in the same run without a late rank; their
/// spans from each rank's own arrival (own time + waiting) grow by the
/// wait. One host: every rank reads rank 0's clock (offset 0).
#[test]
fn a_late_rank_makes_the_others_wait_not_the_collectives_slower() {
    // The hook makes rank 1 late on every other step, so the on-time and
    // late steps of one run are compared in adjacent pairs: two separate
    // runs on a loaded 2-core machine differ by more than the effect (CI
    // measured own all-reduce times of 0.018 s and 0.034 s in two runs with
    // nothing late). The lateness is large next to that noise, and every
    // limit is a fraction of it.
    const LATE_S: f64 = 0.2;
    let extra = "modes = [\"comm\"]\niterations = 8\n";
    let (run, out) = run_ok(3, extra, &["--late-rank", &format!("1:{LATE_S}")]);
    for r in &run.ranks {
        let c = r.clock.expect("the rank's clock is recorded");
        assert_eq!(
            (c.offset_s, c.uncertainty_s, c.exchanges, c.drift),
            (0.0, 0.0, 0, Some(0.0)),
            "rank {}: measured at open and at the saves, one clock",
            r.rank
        );
    }
    let comm = |r: usize| run.ranks[r].modes[&Mode::Comm].clone();
    let raw = |m: &mfubench_core::result::ModeRecord, i: usize| {
        m.allreduce_busy_s[i] + m.wait_for_peers_s[i]
    };
    // Which iterations were late, from rank 0's waits: the warmup's step
    // count decides whether the first measured one is.
    let m0 = comm(0);
    let late: Vec<bool> = m0
        .wait_for_peers_s
        .iter()
        .map(|w| *w > 0.5 * LATE_S)
        .collect();
    assert_eq!(late.len(), 8, "{out}");
    assert!(
        late.windows(2).all(|p| p[0] != p[1]),
        "late and on-time steps alternate: rank 0 waited {:?}\n{out}",
        m0.wait_for_peers_s
    );
    let (m1, m2) = (comm(1), comm(2));
    for i in (0..8).filter(|i| late[*i]) {
        assert!(
            m2.wait_for_peers_s[i] > 0.5 * LATE_S
                && m1.wait_for_peers_s[i] < m0.wait_for_peers_s[i].min(m2.wait_for_peers_s[i]) - 0.5 * LATE_S,
            "iteration {i}: ranks 0 and 2 wait for rank 1, which waits clearly less: {:?} {:?} {:?}",
            m0.wait_for_peers_s,
            m1.wait_for_peers_s,
            m2.wait_for_peers_s
        );
    }
    for (r, m) in [(0, &m0), (2, &m2)] {
        // Per adjacent pair: the late step minus the on-time one.
        let pairs: Vec<(usize, usize)> = (0..4)
            .map(|k| (2 * k, 2 * k + 1))
            .map(|(a, b)| if late[a] { (a, b) } else { (b, a) })
            .collect();
        let grew_raw: Vec<f64> = pairs.iter().map(|&(l, p)| raw(m, l) - raw(m, p)).collect();
        let grew_own: Vec<f64> = pairs
            .iter()
            .map(|&(l, p)| m.allreduce_busy_s[l] - m.allreduce_busy_s[p])
            .collect();
        assert!(
            median(&grew_raw) > 0.5 * LATE_S,
            "rank {r}: raw time grew by {grew_raw:?}"
        );
        // The claim: the wait is not counted as the collectives' own time
        // (it would make own time grow with raw time).
        assert!(
            median(&grew_own) < 0.25 * LATE_S,
            "rank {r}: own time grew by {grew_own:?} while raw time grew by {grew_raw:?}"
        );
    }
    // The summary's all-reduce time is the collectives' own time too: the
    // median over iterations of the slowest rank's own time.
    let own_max: Vec<f64> = (0..8)
        .map(|i| {
            [&m0, &m1, &m2]
                .iter()
                .map(|m| m.allreduce_busy_s[i])
                .fold(0.0, f64::max)
        })
        .collect();
    let t = run.summary.allreduce.time_s.expect("all-reduce time");
    assert!(
        (t - median(&own_max)).abs() < 1e-9,
        "summary {t} vs own {own_max:?}"
    );
}
