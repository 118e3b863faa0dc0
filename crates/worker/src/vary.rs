//! `--vary KEY=V1,V2,…`: every variant of the config in one MPI job,
//! interleaved per round.
//!
//! - **Variants** come from [`mfubench_core::vary::variants`]: the config
//!   text with each override applied, resolved for the backend every rank
//!   settled on. Each variant gets its own plan, backend and buffers, all
//!   open at once, and its own folder `OUT/<run-id>/variants/<k>/` with an
//!   ordinary run.json.
//! - **Fit.** Before a variant's backend is opened, every rank asks the
//!   backend whether its buffers fit beside those of the variants opened
//!   before ([`Backend::fits`]); if any rank says no, the variant is
//!   recorded as "does not fit" with that rank's reason and not run.
//! - **Rounds.** Warmup round w and timed round i run one step of every
//!   (variant, mode) pair, the pairs rotated by the round ([`rotated`],
//!   as [`mfubench_core::config::Schedule::round_order`] rotates the
//!   modes), so that outside load hits every variant alike and round i of
//!   two variants forms a pair for their comparison. Checks run on the
//!   untimed steps of each variant, as in a plain run.
//! - **Results as soon as they exist.** After 1, 2, 4, 8, … rounds every
//!   variant's run.json is written (complete = false) and rank 0 writes
//!   `vary.json` ([`mfubench_core::vary::VaryRecord`]) from them; once more
//!   at the end.
//! - **One peak.** The variants share the highest of their peaks (on the
//!   CPU backend each calibrates on its own GEMM shapes), so that their
//!   MFUs compare.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mfubench_core::config::{Config, ConfigFile, Mode, Schedule};
use mfubench_core::plan::StepPlan;
use mfubench_core::protocol::Event;
use mfubench_core::result::{PeakChoice, RunRecord};
use mfubench_core::vary::{self, Variant, VariantStatus, VaryArg};

use crate::backend::Backend;
use crate::benchmark::{Benchmark, Hooks};
use crate::mpi_comm;
use crate::output;
use crate::progress::emit;
use crate::rank::{Exit, Rank, RunError};
use crate::setup::usage;

/// `items` rotated left by `round` (every item takes every position equally
/// often over `items.len()` rounds), as `Schedule::round_order` does for
/// modes.
pub fn rotated<T: Clone>(items: &[T], round: usize) -> Vec<T> {
    let mut v = items.to_vec();
    if !v.is_empty() {
        let k = round % v.len();
        v.rotate_left(k);
    }
    v
}

/// The variants of the config for the `--vary` arguments, each resolved;
/// `base` is the config file with `run.backend` settled. Every rank
/// computes the same list; only rank 0 prints an error.
pub fn resolve_variants(
    rank: &Rank,
    text: &str,
    file: &str,
    base: &ConfigFile,
    vary_args: &[String],
) -> Result<Vec<(Variant, Config)>, Exit> {
    let args: Vec<VaryArg> = vary_args
        .iter()
        .map(|a| vary::parse_vary_arg(a))
        .collect::<Result<_, _>>()
        .map_err(|e| usage(rank, &e))?;
    let list = vary::variants(text, file, &args).map_err(|e| usage(rank, &e))?;
    let mut out = Vec::with_capacity(list.len());
    for mut v in list {
        v.file.run.backend = base.run.backend;
        let c = v.resolve(file).map_err(|e| usage(rank, &e))?;
        if c.run.schedule != Schedule::Interleaved {
            return Err(usage(
                rank,
                &format!(
                    "--vary interleaves the variants per round: it needs run.schedule = \"interleaved\" (the config says \"{}\")",
                    c.run.schedule
                ),
            ));
        }
        out.push((v, c));
    }
    Ok(out)
}

/// What `mfubench-worker --vary` was given.
pub struct VaryJob<'a> {
    /// The config file.
    pub config: &'a Path,
    /// `--backend`, overriding the config's.
    pub backend: Option<&'a str>,
    /// The `--vary` arguments, as given.
    pub vary: &'a [String],
    /// The results folder.
    pub out: &'a Path,
    /// `--run-id`.
    pub run_id: Option<String>,
    /// Test hooks.
    pub hooks: Hooks,
}

/// The worker's flow with `--vary` (after the world size check): config,
/// variants (all errors before anything is created), hello, run folder,
/// then [`run`] on the backend every rank settled on.
pub fn main(rank: &Rank, job: VaryJob<'_>) -> Result<(), Exit> {
    let file = job.config.display().to_string();
    let text = crate::setup::load_text(rank, job.config)?;
    let raw = crate::setup::parse_with_backend(rank, &text, &file, job.backend)?;
    let base = raw.resolve(&file).map_err(|e| usage(rank, &e))?;
    let variants = resolve_variants(rank, &text, &file, &raw, job.vary)?;
    // Each variant's parallel layout on these ranks: an impossible one
    // (e.g. parallel.data = "hsdp" on one host) is a usage error naming the
    // variant, before anything is created.
    let layouts = variants
        .iter()
        .map(|(v, config)| {
            let named = format!("{file} (variant {}: {})", v.index, v.label());
            crate::setup::layout(rank, config, Path::new(&named))
        })
        .collect::<Result<Vec<_>, Exit>>()?;
    crate::setup::hello(rank, &base);
    let (run_id, run_dir) = crate::setup::run_dir(rank, job.out, job.run_id)?;
    let vary = job.vary.to_vec();
    match base.run.backend {
        mfubench_core::config::BackendKind::Cpu => run::<crate::cpu::CpuBackend>(
            rank, variants, &layouts, vary, run_id, run_dir, job.hooks,
        ),
        _ => run::<crate::cuda::CudaBackend>(
            rank, variants, &layouts, vary, run_id, run_dir, job.hooks,
        ),
    }
}

/// One variant on this rank: running, or not run (and why).
enum Slot<'r, B: Backend> {
    Runs(Box<Benchmark<'r, B>>),
    DoesNotFit(String),
}

/// Runs every variant in one job; writes each variant's run.json and
/// `vary.json`.
pub fn run<B: Backend>(
    rank: &Rank,
    variants: Vec<(Variant, Config)>,
    layouts: &[mfubench_core::parallel::Layout],
    vary_args: Vec<String>,
    run_id: String,
    run_dir: PathBuf,
    hooks: Hooks,
) -> Result<(), Exit> {
    let mut slots: Vec<Slot<'_, B>> = Vec::with_capacity(variants.len());
    for ((v, config), layout) in variants.iter().zip(layouts) {
        let plan = Arc::new(StepPlan::for_layout(config, layout));
        let mine = B::fits(config, rank, &plan).err().unwrap_or_default();
        let reason = first_reason(rank, &mine);
        if let Some(reason) = reason {
            if rank.is_root() {
                crate::say!(
                    "mfubench-worker: variant {} ({}) does not fit: {reason}; not run",
                    v.index,
                    v.label()
                );
            }
            slots.push(Slot::DoesNotFit(reason));
            continue;
        }
        let dir = if rank.is_root() {
            output::prepare_run_dir(&run_dir.join("variants"), &v.index.to_string())
                .map_err(|e| RunError(e.to_string()))
        } else {
            Ok(PathBuf::new())
        };
        let dir = rank.agree(dir)?;
        let id = format!("{run_id}/variants/{}", v.index);
        let b = Benchmark::<B>::open(rank, config.clone(), plan, id, dir, hooks)?;
        slots.push(Slot::Runs(Box::new(b)));
    }
    if !slots.iter().any(|s| matches!(s, Slot::Runs(_))) {
        if rank.is_root() {
            rank.error("--vary: no variant fits in memory; nothing was run");
        }
        return Err(Exit::Usage);
    }

    // One peak for all: the highest (a calibration measures each plan's
    // own GEMM shapes).
    let mut peak: Option<PeakChoice> = None;
    for s in slots.iter_mut() {
        if let Slot::Runs(b) = s {
            b.choose_peak()?;
            let p = b.peak();
            if peak.is_none_or(|q| p.tflops > q.tflops) {
                peak = Some(p);
            }
        }
    }
    let peak = peak.expect("a variant runs");
    for s in slots.iter_mut() {
        if let Slot::Runs(b) = s {
            b.set_peak(peak);
        }
    }

    let run = variants[0].1.run.clone();
    let pairs: Vec<(usize, Mode)> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Slot::Runs(_)))
        .flat_map(|(k, _)| run.modes.iter().map(move |&m| (k, m)))
        .collect();
    let labels: Vec<String> = variants.iter().map(|(v, _)| v.label()).collect();
    if rank.is_root() {
        emit(&Event::Start {
            run_id: run_id.clone(),
            run_dir: run_dir.display().to_string(),
            world_size: rank.size,
            modes: pairs
                .iter()
                .map(|(k, m)| format!("{m} [{}]", labels[*k]))
                .collect(),
            schedule: run.schedule.to_string(),
            warmup: run.warmup,
            iterations: run.iterations,
            peak_tflops: peak.tflops,
            peak_source: format!("{:?}", peak.source).to_lowercase(),
        });
    }
    let what = |k: usize| labels[k].clone();
    for w in 0..run.warmup {
        for (k, mode) in rotated(&pairs, w as usize) {
            if let Slot::Runs(b) = &mut slots[k] {
                b.warmup_step(mode, &what(k), w + 1, run.warmup);
            }
        }
    }
    for s in slots.iter_mut() {
        if let Slot::Runs(b) = s {
            b.sample_telemetry("start");
        }
    }
    let mut first: Option<Instant> = None;
    let mut save_after = 1;
    for i in 0..run.iterations as usize {
        for (k, mode) in rotated(&pairs, i) {
            if let Slot::Runs(b) = &mut slots[k] {
                b.timed_step(mode, &what(k), &mut first);
            }
        }
        if i + 1 == save_after && i + 1 < run.iterations as usize {
            save_all(
                rank, &slots, &variants, &vary_args, &run_id, &run_dir, false,
            )?;
            save_after *= 2;
        }
    }
    for s in slots.iter_mut() {
        if let Slot::Runs(b) = s {
            b.sample_telemetry("end");
        }
    }
    for (k, s) in slots.iter_mut().enumerate() {
        if let Slot::Runs(b) = s {
            b.check_steps(&what(k));
        }
    }
    for s in &slots {
        if let Slot::Runs(b) = s {
            b.finish();
        }
    }
    save_all(rank, &slots, &variants, &vary_args, &run_id, &run_dir, true)
}

/// The first non-empty reason of any rank (rank order), the same on every
/// rank; None when every rank's is empty. Collective.
fn first_reason(rank: &Rank, mine: &str) -> Option<String> {
    let all_fit = rank.all(mine.is_empty());
    if all_fit {
        return None;
    }
    let gathered =
        mpi_comm::gather_bytes(&rank.world, mine.as_bytes()).unwrap_or_else(|e| rank.abort(e));
    let text = gathered
        .map(|all| {
            all.iter()
                .enumerate()
                .find(|(_, b)| !b.is_empty())
                .map(|(r, b)| format!("rank {r}: {}", String::from_utf8_lossy(b)))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    Some(
        String::from_utf8_lossy(&mpi_comm::broadcast_bytes(&rank.world, text.as_bytes()))
            .into_owned(),
    )
}

/// Saves every running variant's run.json, then rank 0 writes vary.json
/// from them (agreed by every rank).
fn save_all<B: Backend>(
    rank: &Rank,
    slots: &[Slot<'_, B>],
    variants: &[(Variant, Config)],
    vary_args: &[String],
    run_id: &str,
    run_dir: &Path,
    complete: bool,
) -> Result<(), Exit> {
    for s in slots {
        if let Slot::Runs(b) = s {
            b.save(complete)?;
        }
    }
    let written = if rank.is_root() {
        write_vary_json(slots, variants, vary_args, run_id, run_dir).map(|path| {
            if complete {
                emit(&Event::Done {
                    run_dir: run_dir.display().to_string(),
                    run_json: path.display().to_string(),
                });
            }
        })
    } else {
        Ok(())
    };
    rank.agree(written)
}

/// Rank 0: reads back each variant's run.json as written and writes
/// vary.json atomically; returns its path.
fn write_vary_json<B: Backend>(
    slots: &[Slot<'_, B>],
    variants: &[(Variant, Config)],
    vary_args: &[String],
    run_id: &str,
    run_dir: &Path,
) -> Result<PathBuf, RunError> {
    let mut records: Vec<Option<RunRecord>> = Vec::with_capacity(slots.len());
    let mut statuses = Vec::with_capacity(slots.len());
    for s in slots {
        match s {
            Slot::Runs(b) => {
                let path = b.run_json_path();
                let bytes = std::fs::read(&path)
                    .map_err(|e| RunError(format!("cannot read back {}: {e}", path.display())))?;
                let r: RunRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| RunError(format!("cannot read back {}: {e}", path.display())))?;
                records.push(Some(r));
                statuses.push(VariantStatus::Ran);
            }
            Slot::DoesNotFit(reason) => {
                records.push(None);
                statuses.push(VariantStatus::DoesNotFit {
                    reason: reason.clone(),
                });
            }
        }
    }
    let rows: Vec<_> = variants
        .iter()
        .zip(statuses)
        .zip(&records)
        .map(|(((v, _), st), r)| v.row(st, r.as_ref()))
        .collect();
    let record = vary::vary_record(run_id, vary_args, &rows);
    let path = run_dir.join("vary.json");
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| RunError(e.to_string()))?;
    output::write_atomic(&path, &bytes).map_err(|e| RunError(e.to_string()))?;
    if record.complete {
        crate::say!("mfubench-worker: --vary: {}", record.conclusion);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::rotated;

    #[test]
    fn rotation_is_a_latin_square() {
        let items = [(0, 'c'), (0, 'o'), (1, 'c'), (1, 'o')];
        assert_eq!(
            rotated(&items, 1),
            vec![(0, 'o'), (1, 'c'), (1, 'o'), (0, 'c')]
        );
        for pos in 0..4 {
            let mut seen: Vec<_> = (0..4).map(|r| rotated(&items, r)[pos]).collect();
            seen.sort();
            assert_eq!(seen, items.to_vec());
        }
        assert!(rotated::<u8>(&[], 3).is_empty());
    }
}
