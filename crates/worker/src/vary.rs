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
//! - **Rounds** are the [`Executor`]'s, as in a plain run: warmup and timed
//!   round i run one step of every (variant, mode) cell, rotated by the
//!   round, so that outside load hits every variant alike and round i of
//!   two variants forms a pair for their comparison; checks on untimed
//!   steps; one shared peak; every run.json saved after 1, 2, 4, 8, …
//!   rounds and at the end.
//! - **vary.json** ([`mfubench_core::vary::VaryRecord`]) is written by
//!   rank 0 from the variants' run.json after each of those saves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mfubench_core::config::{Config, ConfigFile, Schedule};
use mfubench_core::plan::StepPlan;
use mfubench_core::protocol::Event;
use mfubench_core::result::RunRecord;
use mfubench_core::vary::{self, Variant, VariantStatus, VaryArg};

use crate::backend::Backend;
use crate::benchmark::Benchmark;
use crate::executor::{Executor, Slot};
use crate::mpi_comm;
use crate::output;
use crate::progress::emit;
use crate::rank::{Exit, Rank, RunError};
use crate::session::Session;
use crate::setup::usage;

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

/// A `--vary` job, prepared: every variant resolved with its parallel
/// layout (all usage errors found before anything is created).
pub struct VaryJob {
    /// The variants and their configs.
    pub variants: Vec<(Variant, Config)>,
    /// Each variant's parallel layout on these ranks.
    pub layouts: Vec<mfubench_core::parallel::Layout>,
    /// The `--vary` arguments, as given (for vary.json).
    pub vary_args: Vec<String>,
}

/// Prepares a `--vary` job (after the world size check): config,
/// variants and their layouts, all errors before anything is created.
/// Returns the base config (hello, run folder) and the job. Collective.
pub fn prepare(
    rank: &Rank,
    config: &Path,
    backend: Option<&str>,
    vary_args: &[String],
) -> Result<(Config, VaryJob), Exit> {
    let file = config.display().to_string();
    let text = crate::setup::load_text(rank, config)?;
    let raw = crate::setup::parse_with_backend(rank, &text, &file, backend)?;
    let base = raw.resolve(&file).map_err(|e| usage(rank, &e))?;
    let variants = resolve_variants(rank, &text, &file, &raw, vary_args)?;
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
    Ok((
        base,
        VaryJob {
            variants,
            layouts,
            vary_args: vary_args.to_vec(),
        },
    ))
}

/// Runs every variant in one job on the [`Executor`]; writes each
/// variant's run.json and `vary.json`. Collective.
pub fn run<B: Backend>(session: &Session<'_>, job: VaryJob) -> Result<(), Exit> {
    let rank = session.rank;
    let VaryJob {
        variants,
        layouts,
        vary_args,
    } = job;
    let mut slots: Vec<Slot<'_, B>> = Vec::with_capacity(variants.len());
    for ((v, config), layout) in variants.iter().zip(&layouts) {
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
            output::prepare_run_dir(&session.run_dir.join("variants"), &v.index.to_string())
                .map_err(|e| RunError(e.to_string()))
        } else {
            Ok(PathBuf::new())
        };
        let dir = rank.agree(dir)?;
        let b = Benchmark::<B>::open(
            session.variant(v.index, dir),
            Some(v.label()),
            config.clone(),
            plan,
        )?;
        slots.push(Slot::Runs(Box::new(b)));
    }
    if !slots.iter().any(|s| matches!(s, Slot::Runs(_))) {
        if rank.is_root() {
            rank.error("--vary: no variant fits in memory; nothing was run");
        }
        return Err(Exit::Usage);
    }
    let mut ex = Executor::new(session, variants[0].1.run.clone(), slots);
    let peak = ex.share_peak()?;
    ex.run(peak, &mut |slots, complete| {
        let written = if rank.is_root() {
            write_vary_json(slots, &variants, &vary_args, session).map(|path| {
                if complete {
                    emit(&Event::Done {
                        run_dir: session.run_dir.display().to_string(),
                        run_json: path.display().to_string(),
                    });
                }
            })
        } else {
            Ok(())
        };
        rank.agree(written)
    })
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

/// Rank 0: reads back each variant's run.json as written and writes
/// vary.json atomically; returns its path.
fn write_vary_json<B: Backend>(
    slots: &[Slot<'_, B>],
    variants: &[(Variant, Config)],
    vary_args: &[String],
    session: &Session<'_>,
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
    let record = vary::vary_record(&session.run_id, vary_args, &rows);
    let path = session.run_dir.join("vary.json");
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| RunError(e.to_string()))?;
    output::write_atomic(&path, &bytes).map_err(|e| RunError(e.to_string()))?;
    if record.complete {
        crate::say!("mfubench-worker: --vary: {}", record.conclusion);
    }
    Ok(path)
}
