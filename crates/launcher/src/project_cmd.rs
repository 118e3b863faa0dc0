//! `mfubench project RUN… [--nodes 8,64,512] [--gpus-per-node N]
//! [--inter-link GBPS,US] [--validate]`: step time, exposed communication,
//! hidden fraction and MFU at more nodes than were measured.
//!
//! This file reads the runs and turns them into the pure inputs of
//! [`mfubench_core::project`] (samples, GEMM times, contention), fits the
//! links there, and hands one [`ReplaySpec`] per node count and bound to
//! `mfubench-worker replay`, which runs the worker's own step schedule in
//! virtual time (`crates/worker/src/replay.rs`). It then prints the
//! table and writes `projection.json` and `projection.html` (atomically). How the model works,
//! and what it leaves out, is in core's `project.rs` and docs/project.md.
//!
//! `--validate`: the last RUN is not fitted but measured against: the
//! projection at its size, figure by figure, as % error, with the stated
//! target ([`VALIDATION_TARGET_PCT`]) on the comm-mode and overlapped step
//! times. Exit 1 when a targeted figure misses it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use mfubench_core::config::Mode;
use mfubench_core::parallel::Layout;
use mfubench_core::plan::StepPlan;
use mfubench_core::project::{
    bounded, figures_of, mode_durations, validate, Bound, Figure, LinkClass, LinkFit,
    ProjectedPoint, Projection, ReplaySpec, Sample, Validation, VALIDATION_TARGET_PCT,
};
use mfubench_core::result::{RunRecord, StreamKind, Summary};

use crate::exit::{self, usage};
use crate::run_cmd::command;

/// Arguments of `mfubench project`.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// Run directories (or run.json files) to fit: one config, each run with
    /// comm and compute modes. With --validate the last one is the larger
    /// measured run the projection is checked against.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Node counts to project to (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "8,64,512")]
    pub nodes: Vec<u64>,
    /// Ranks (GPUs) per node of the projected jobs [default: the fitted runs'].
    #[arg(long)]
    pub gpus_per_node: Option<u64>,
    /// The inter-node link as "GBPS,MICROSECONDS" (bandwidth per rank in
    /// GB/s, latency per step), for runs measured on one node; without it
    /// the intra-node fit stands in, and the projection says so.
    #[arg(long, value_name = "GBPS,US")]
    pub inter_link: Option<String>,
    /// Check the projection against the last RUN's measurements.
    #[arg(long)]
    pub validate: bool,
    /// Where to write projection.json [default: beside the first run's run.json].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print projection.json instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A fitted run, as the projection needs it.
struct FitRun {
    path: String,
    record: RunRecord,
    nodes: u64,
    ranks_per_node: u64,
    /// The acceptance suite's sweep beside the run (`mfubench accept`
    /// writes the step's run.json beside accept.json): more sizes for the
    /// fits.
    sweep: Option<mfubench_core::accept::SweepStage>,
}

fn load(path: &Path) -> Result<FitRun> {
    let loaded = mfubench_report::read::read_run_full(path).map_err(|e| usage(e.to_string()))?;
    let record = loaded.record;
    let shown = path.display().to_string();
    let nodes = record.hosts.len().max(1) as u64;
    let mut per_host: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &record.ranks {
        *per_host.entry(r.host.as_str()).or_default() += 1;
    }
    let counts: BTreeSet<u64> = per_host.values().copied().collect();
    if counts.len() > 1 {
        return Err(usage(format!(
            "{shown}: the hosts ran different numbers of ranks ({counts:?}); a projection needs the same count on every host"
        )));
    }
    for m in [Mode::Comm, Mode::Compute] {
        if !record.ranks.iter().all(|r| r.modes.contains_key(&m)) {
            return Err(usage(format!(
                "{shown}: no {} mode on every rank; the fits need the run's compute and comm modes (run.modes in the config)",
                m.name()
            )));
        }
    }
    let accept = loaded.path.with_file_name("accept.json");
    let sweep = if accept.is_file() {
        let rec = mfubench_report::suite::read_accept(&accept)
            .map_err(|e| usage(format!("{}: {e}", accept.display())))?;
        rec.sweep
    } else {
        None
    };
    Ok(FitRun {
        path: shown,
        nodes,
        ranks_per_node: counts.into_iter().next().unwrap_or(1),
        record,
        sweep,
    })
}

fn layout_of(run: &FitRun) -> Result<Layout> {
    run.record
        .config
        .parallel
        .layout(run.record.world_size, run.ranks_per_node)
        .map_err(|e| usage(format!("{}: {e}", run.path)))
}

/// The hosts of each group (by colour) of `layout`, with host `host(q)` for
/// rank `q`; the class of the group of `rank` in `g`.
fn class_of(
    layout: &Layout,
    world: u64,
    host: &dyn Fn(u64) -> String,
    g: mfubench_core::parallel::Group,
    rank: u64,
    memo: &mut HashMap<(mfubench_core::parallel::Group, u64), LinkClass>,
) -> LinkClass {
    let colour = layout.colour_and_position(g, rank).0;
    *memo.entry((g, colour)).or_insert_with(|| {
        let mut hosts = BTreeSet::new();
        for q in 0..world {
            if layout.colour_and_position(g, q).0 == colour {
                hosts.insert(host(q));
                if hosts.len() > 1 {
                    return LinkClass::InterNode;
                }
            }
        }
        LinkClass::IntraNode
    })
}

/// Every collective a run timed in comm mode, one sample per rank, and
/// the rows of an acceptance sweep beside it.
fn samples_of(run: &FitRun) -> Result<Vec<Sample>> {
    let layout = layout_of(run)?;
    let plan = StepPlan::for_layout(&run.record.config, &layout);
    let world = run.record.world_size;
    let hosts: Vec<String> = run.record.ranks.iter().map(|r| r.host.clone()).collect();
    let host = |q: u64| hosts.get(q as usize).cloned().unwrap_or_default();
    let mut memo = HashMap::new();
    let mut out = Vec::new();
    for r in &run.record.ranks {
        let comm: Vec<_> = r.modes[&Mode::Comm]
            .ops
            .iter()
            .filter(|o| o.stream == StreamKind::Comm)
            .collect();
        if comm.len() != plan.collectives.len() {
            return Err(usage(format!(
                "{}: rank {} timed {} collectives in comm mode, its plan has {}; was the run made by another version?",
                run.path,
                r.rank,
                comm.len(),
                plan.collectives.len()
            )));
        }
        for (c, o) in plan.collectives.iter().zip(comm) {
            out.push(Sample {
                kind: c.kind,
                group_size: c.group_size,
                bytes: c.bytes,
                class: class_of(&layout, world, &host, c.group, r.rank, &mut memo),
                seconds: o.median_s,
            });
        }
    }
    // The acceptance sweep's rows: every size, over the whole world.
    if let Some(sweep) = &run.sweep {
        let class = if run.nodes > 1 {
            LinkClass::InterNode
        } else {
            LinkClass::IntraNode
        };
        for t in &sweep.tables {
            for r in t.rows.iter().filter(|r| r.wrong == 0) {
                out.push(Sample {
                    kind: t.collective,
                    group_size: sweep.ranks,
                    bytes: r.size_bytes,
                    class,
                    seconds: r.time_us * 1e-6,
                });
            }
        }
    }
    Ok(out)
}

/// Each GEMM's (low, middle, high) seconds over the fitted runs' ranks
/// (compute mode): the range and the median of the ranks' medians.
fn gemm_times(runs: &[FitRun], plan: &StepPlan) -> Result<Vec<(f64, f64, f64)>> {
    let mut per_op: Vec<Vec<f64>> = vec![Vec::new(); plan.ops.len()];
    for run in runs {
        for r in &run.record.ranks {
            let ops: Vec<_> = r.modes[&Mode::Compute]
                .ops
                .iter()
                .filter(|o| o.stream == StreamKind::Compute)
                .collect();
            if ops.len() != plan.ops.len()
                || ops.iter().zip(&plan.ops).any(|(o, p)| o.name != p.label())
            {
                return Err(usage(format!(
                    "{}: rank {}'s GEMMs are not those of the projected plan ({} against {}); a projection keeps each rank's work (data parallel), so the plan must not change with the node count",
                    run.path,
                    r.rank,
                    ops.len(),
                    plan.ops.len()
                )));
            }
            for (i, o) in ops.iter().enumerate() {
                per_op[i].push(o.median_s);
            }
        }
    }
    Ok(per_op
        .iter()
        .map(|v| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, mfubench_core::stats::median(v).unwrap_or(lo), hi)
        })
        .collect())
}

fn parse_link(s: &str) -> Result<(f64, f64)> {
    let bad = || {
        usage(format!(
            "--inter-link {s}: expected GBPS,MICROSECONDS with positive numbers, e.g. 25,10"
        ))
    };
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let gbps: f64 = a.trim().parse().map_err(|_| bad())?;
    let us: f64 = b.trim().parse().map_err(|_| bad())?;
    if !(gbps.is_finite() && gbps > 0.0 && us.is_finite() && us >= 0.0) {
        return Err(bad());
    }
    Ok((gbps, us))
}

/// What the fits and the runs give every replay.
struct Model {
    links: BTreeMap<LinkClass, LinkFit>,
    gemm: Vec<(f64, f64, f64)>,
    gemm_gap_factor: f64,
    gemm_contention: f64,
    collective_contention: f64,
    assumptions: Vec<String>,
}

fn median_of(v: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = v.filter(|x| x.is_finite() && *x > 0.0).collect();
    mfubench_core::stats::median(&v)
}

fn model(runs: &[FitRun], inter_link: Option<(f64, f64)>) -> Result<Model> {
    let first = &runs[0];
    let plan = StepPlan::for_layout(&first.record.config, &layout_of(first)?);
    let mut samples = Vec::new();
    for r in runs {
        samples.extend(samples_of(r)?);
    }
    let mut links = BTreeMap::new();
    let mut errors = Vec::new();
    for class in [LinkClass::IntraNode, LinkClass::InterNode] {
        if samples.iter().any(|s| s.class == class) {
            match LinkFit::fit(class, &samples) {
                Ok(f) => {
                    links.insert(class, f);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    let mut assumptions = vec![
        "no waiting for peers: every rank of the projected job runs at the fitted speed (stragglers and skew grow with N and are not projected)".to_string(),
        "collectives: NCCL ring or tree costs on the fitted α-β links; no congestion beyond the fitted links".to_string(),
    ];
    if let Some((gbps, us)) = inter_link {
        links.insert(
            LinkClass::InterNode,
            LinkFit::assumed(LinkClass::InterNode, gbps, us),
        );
        assumptions.push(format!(
            "inter-node link assumed: {gbps} GB/s per rank, {us} µs per step (--inter-link)"
        ));
    }
    match (
        links.get(&LinkClass::IntraNode).cloned(),
        links.get(&LinkClass::InterNode).cloned(),
    ) {
        (Some(intra), None) => {
            links.insert(
                LinkClass::InterNode,
                intra.standing_in_for(LinkClass::InterNode),
            );
            assumptions.push(
                "inter-node link ASSUMED equal to the intra-node fit: the runs had one node (state it with --inter-link GBPS,US)".into(),
            );
        }
        (None, Some(inter)) => {
            links.insert(
                LinkClass::IntraNode,
                inter.standing_in_for(LinkClass::IntraNode),
            );
            assumptions.push(
                "intra-node link ASSUMED equal to the inter-node fit: no group of the runs stayed on one node".into(),
            );
        }
        (None, None) => {
            return Err(usage(format!(
                "{}: no link could be fitted: {}",
                first.path,
                errors.join("; ")
            )))
        }
        _ => {}
    }
    let contention = |f: &dyn Fn(&Summary) -> Option<f64>| {
        median_of(runs.iter().filter_map(|r| f(&r.record.summary))).unwrap_or(1.0)
    };
    // The compute stream's gaps: compute step / the sum of its GEMMs.
    let per_rank: Vec<(f64, f64)> = runs
        .iter()
        .flat_map(|run| {
            run.record.ranks.iter().filter_map(|r| {
                let m = &r.modes[&Mode::Compute];
                let step = mfubench_core::stats::median(&m.step_time_s)?;
                let sum: f64 = m
                    .ops
                    .iter()
                    .filter(|o| o.stream == StreamKind::Compute)
                    .map(|o| o.median_s)
                    .sum();
                Some((step, sum))
            })
        })
        .collect();
    let gap = mfubench_core::project::gemm_gap_factor(&per_rank);
    let gemm = gemm_times(runs, &plan)?
        .into_iter()
        .map(|(l, x, h)| (l * gap, x * gap, h * gap))
        .collect();
    Ok(Model {
        gemm,
        gemm_gap_factor: gap,
        gemm_contention: contention(&|s| s.contention.gemm),
        collective_contention: contention(&|s| s.contention.allreduce),
        links,
        assumptions,
    })
}

/// The three replay specs (low, middle, high) of `nodes` × `rpn`.
fn specs_for(first: &RunRecord, m: &Model, nodes: u64, rpn: u64) -> Result<Vec<ReplaySpec>> {
    let ranks = nodes * rpn;
    let config = &first.config;
    let layout = config.parallel.layout(ranks, rpn).map_err(|e| {
        usage(format!(
            "{nodes} nodes × {rpn} ranks: {e} (the config's [parallel] section)"
        ))
    })?;
    let plan = StepPlan::for_layout(config, &layout);
    if plan.ops.len() != m.gemm.len() {
        return Err(usage(format!(
            "at {nodes} nodes the plan has {} GEMMs, the runs {}: the per-rank work changes with the node count, which a projection does not model",
            plan.ops.len(),
            m.gemm.len()
        )));
    }
    let host = |q: u64| (q / rpn).to_string();
    let mut memo = HashMap::new();
    let colls: Vec<(f64, f64, f64)> = plan
        .collectives
        .iter()
        .map(|c| {
            let class = class_of(&layout, ranks, &host, c.group, 0, &mut memo);
            m.links[&class]
                .predict(c.kind, c.group_size, c.bytes)
                .map_or((0.0, 0.0, 0.0), |p| (p.lo, p.mid, p.hi))
        })
        .collect();
    Ok(Bound::ALL
        .iter()
        .map(|&b| {
            let g: Vec<f64> = m.gemm.iter().map(|&(l, x, h)| b.pick(l, x, h)).collect();
            let c: Vec<f64> = colls.iter().map(|&(l, x, h)| b.pick(l, x, h)).collect();
            let (gemm_s, collective_s) =
                mode_durations(&g, &c, m.gemm_contention, m.collective_contention);
            ReplaySpec {
                config: config.clone(),
                ranks,
                ranks_per_node: rpn,
                bound: b,
                peak: first.peak.unwrap_or(mfubench_core::result::PeakChoice {
                    tflops: first.summary.peak_tflops,
                    source: first.summary.peak_source,
                }),
                gemm_s,
                collective_s,
            }
        })
        .collect())
}

/// How long `mfubench-worker replay` may take (one process, no MPI).
const REPLAY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `mfubench-worker replay` on `specs`; their summaries, in order.
fn replay(specs: &[ReplaySpec]) -> Result<Vec<Summary>> {
    let worker = command::worker_for_this_process()?;
    let dir = std::env::temp_dir().join(format!("mfubench-project-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let result = (|| {
        let input = dir.join("specs.json");
        let output = dir.join("summaries.json");
        std::fs::write(&input, serde_json::to_vec(specs)?)
            .with_context(|| input.display().to_string())?;
        // Under a deadline like every other wait: the replay is a few
        // milliseconds per spec; a worker that hangs is killed and named.
        let errors = dir.join("stderr.txt");
        let mut child = std::process::Command::new(&worker)
            .arg(mfubench_core::job::REPLAY)
            .arg(&input)
            .arg(&output)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&errors)?)
            .spawn()
            .with_context(|| format!("starting {}", worker.display()))?;
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if started.elapsed() > REPLAY_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                return Err(exit::run_failed(format!(
                    "{} replay did not finish within {} s (killed)",
                    worker.display(),
                    REPLAY_DEADLINE.as_secs()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        if !status.success() {
            return Err(exit::run_failed(format!(
                "{} replay failed: {}",
                worker.display(),
                std::fs::read_to_string(&errors).unwrap_or_default().trim()
            )));
        }
        let bytes = std::fs::read(&output).with_context(|| output.display().to_string())?;
        Ok(serde_json::from_slice::<Vec<Summary>>(&bytes)?)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `mfubench project`.
pub fn run_project(args: &ProjectArgs) -> Result<u8> {
    if args.validate && args.runs.len() < 2 {
        return Err(usage(
            "--validate needs at least two runs: the ones to fit, then the measured one to check against",
        ));
    }
    if args.nodes.contains(&0) || args.gpus_per_node == Some(0) {
        return Err(usage("--nodes and --gpus-per-node take positive counts"));
    }
    let inter_link = args.inter_link.as_deref().map(parse_link).transpose()?;
    let mut runs = args
        .runs
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>>>()?;
    let measured = if args.validate { runs.pop() } else { None };
    let first = &runs[0];
    for r in runs.iter().chain(measured.as_ref()) {
        let (a, b) = (&first.record.config, &r.record.config);
        if a.model != b.model
            || a.run.layers != b.run.layers
            || a.run.bucket_mb != b.run.bucket_mb
            || a.parallel != b.parallel
        {
            return Err(usage(format!(
                "{}: its model, layers, buckets or [parallel] differ from {}'s; a projection fits runs of one config",
                r.path, first.path
            )));
        }
    }
    let rpn = match (&measured, args.gpus_per_node) {
        (Some(m), _) => m.ranks_per_node,
        (None, Some(g)) => g,
        (None, None) => first.ranks_per_node,
    };
    let m = model(&runs, inter_link)?;

    // The measured points, then the projected node counts.
    let mut points: Vec<ProjectedPoint> = runs
        .iter()
        .map(|r| ProjectedPoint {
            nodes: r.nodes,
            ranks: r.record.world_size,
            measured: true,
            figures: figures_of(&r.record.summary)
                .into_iter()
                .map(|(name, value)| Figure {
                    name,
                    value,
                    lo: value,
                    hi: value,
                })
                .collect(),
        })
        .collect();
    let mut targets: Vec<u64> = match &measured {
        Some(m) => vec![m.nodes],
        None => args.nodes.clone(),
    };
    targets.dedup();
    let mut specs = Vec::new();
    for &n in &targets {
        specs.extend(specs_for(&first.record, &m, n, rpn)?);
    }
    let summaries = replay(&specs)?;
    for (i, &n) in targets.iter().enumerate() {
        let three: Vec<(Bound, Vec<(String, f64)>)> = Bound::ALL
            .iter()
            .zip(&summaries[i * 3..i * 3 + 3])
            .map(|(&b, s)| (b, figures_of(s)))
            .collect();
        points.push(ProjectedPoint {
            nodes: n,
            ranks: n * rpn,
            measured: false,
            figures: bounded(&three),
        });
    }
    let validation = measured.as_ref().map(|meas| {
        let projected = &points.last().expect("one projected point").figures;
        let rows = validate(projected, &figures_of(&meas.record.summary));
        Validation {
            measured_run: meas.path.clone(),
            nodes: meas.nodes,
            within_target: rows
                .iter()
                .filter(|r| r.targeted)
                .all(|r| r.error_pct.abs() <= VALIDATION_TARGET_PCT),
            rows,
        }
    });
    let projection = Projection {
        tool_version: mfubench_core::TOOL_VERSION.to_string(),
        fit_runs: runs.iter().map(|r| r.path.clone()).collect(),
        ranks_per_node: rpn,
        links: m.links.values().cloned().collect(),
        gemm_gap_factor: m.gemm_gap_factor,
        gemm_contention: m.gemm_contention,
        assumptions: m.assumptions.clone(),
        points,
        validation,
    };
    let out = match &args.out {
        Some(p) => p.clone(),
        None => {
            let p = mfubench_report::read::resolve_run_path(&args.runs[0])
                .map_err(|e| usage(e.to_string()))?;
            p.with_file_name("projection.json")
        }
    };
    let text = serde_json::to_vec_pretty(&projection)?;
    mfubench_fsio::write_atomic(&out, &text)
        .map_err(|e| usage(format!("{}: {e}", out.display())))?;
    let page = out.with_extension("html");
    mfubench_fsio::write_atomic(
        &page,
        mfubench_report::project::html(&projection).as_bytes(),
    )
    .map_err(|e| usage(format!("{}: {e}", page.display())))?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&text));
    } else {
        print!("{}", mfubench_report::project::text(&projection));
        println!("projection.json: {}", out.display());
        println!("plot: {}", page.display());
    }
    Ok(match &projection.validation {
        Some(v) if !v.within_target => exit::ACCEPTANCE_FAILED,
        _ => exit::OK,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inter_link_values() {
        assert_eq!(parse_link("25,10").unwrap(), (25.0, 10.0));
        assert_eq!(parse_link(" 0.5 , 0 ").unwrap(), (0.5, 0.0));
        for bad in ["25", "a,1", "0,1", "-1,1", "1,-1", "inf,1", ""] {
            let e = parse_link(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("--inter-link {bad}: expected GBPS,MICROSECONDS")),
                "{e}"
            );
        }
    }
}
