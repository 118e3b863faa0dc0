//! Reading run.json: one pass of serde in the common case, and one clear
//! [`ReportError`] naming the file otherwise — never a panic, whatever the
//! bytes are (a proptest in `tests/reader.rs` feeds it random and mutated
//! files).
//!
//! The schema version is checked after a successful parse (a newer file can
//! happen to parse) and, when parsing fails on the data, by a second cheap
//! look at `schema_version` alone, so that a newer layout is reported as
//! "written by a newer mfubench" rather than as a confusing missing field.

use std::path::{Path, PathBuf};

use mfubench_core::aggregate::{RankShards, ShardFile, ShardRecord};
use mfubench_core::result::{RankRecord, RunRecord, SCHEMA_VERSION};
use serde_json::error::Category;

use crate::error::ReportError;

/// A run file that was read and checked.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    /// The run.json path (a directory argument is resolved to its run.json).
    pub path: PathBuf,
    /// Its content. A sharded run read by [`read_run`] has no rank records
    /// here (`ranks` is empty): its figures come from the node records.
    pub record: RunRecord,
    /// A sharded run read by [`read_run`]: the rank records of the ranks
    /// whose timelines the report draws, read from their shards.
    pub sample: Vec<RankRecord>,
}

impl LoadedRun {
    /// The rank records at hand: every one (a flat run, or one read with
    /// [`read_run_full`]), else the sample.
    pub fn rank_records(&self) -> &[RankRecord] {
        if self.record.ranks.is_empty() {
            &self.sample
        } else {
            &self.record.ranks
        }
    }
}

/// Resolves a run directory or a run.json path to the run.json file.
pub fn resolve_run_path(path: &Path) -> Result<PathBuf, ReportError> {
    let meta = std::fs::metadata(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        let file = path.join("run.json");
        if !file.is_file() {
            return Err(ReportError::NoRunFile {
                path: path.to_path_buf(),
            });
        }
        Ok(file)
    } else {
        Ok(path.to_path_buf())
    }
}

/// Largest run.json read by default (1 GiB: a 16,384-rank run of a deep
/// plan is a few hundred MB). `MFUBENCH_MAX_RUN_JSON_MB` raises or lowers it.
pub const MAX_RUN_JSON_BYTES: u64 = 1 << 30;

/// The size limit in force (see [`MAX_RUN_JSON_BYTES`]).
pub fn max_run_json_bytes() -> u64 {
    std::env::var("MFUBENCH_MAX_RUN_JSON_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|mb| mb.saturating_mul(1 << 20))
        .unwrap_or(MAX_RUN_JSON_BYTES)
}

/// Reads and checks a run directory or run.json file. The rank records of
/// a sharded run stay in their shards, except those of the two ranks whose
/// timelines the report draws ([`LoadedRun::sample`]): reading grows with
/// the nodes, not the ranks.
pub fn read_run(path: &Path) -> Result<LoadedRun, ReportError> {
    let (file, bytes) = read_file(path)?;
    let record = parse_run_lazy(&bytes, &file)?;
    let sample = match &record.rank_shards {
        Some(shards) if record.ranks.is_empty() => {
            // Every shard is there, though only two are read.
            let dir = file.parent().unwrap_or(Path::new("."));
            for f in &shards.files {
                let p = shard_file(dir, f)?;
                std::fs::metadata(&p).map_err(|source| ReportError::Read { path: p, source })?;
            }
            let want: Vec<u64> = mfubench_core::result::timeline_ranks(&record.nodes)
                .map(|(_, a, b)| vec![a, b])
                .unwrap_or_default();
            let files: Vec<ShardFile> = shards
                .files
                .iter()
                .filter(|f| f.ranks.iter().any(|r| want.contains(r)))
                .cloned()
                .collect();
            let mut got = read_shards(&RankShards { files }, &file)?;
            got.retain(|r| want.contains(&r.rank));
            got
        }
        _ => Vec::new(),
    };
    Ok(LoadedRun {
        path: file,
        record,
        sample,
    })
}

/// [`read_run`] with every rank record, read from the shards of a sharded
/// run (for what needs them all: `mfubench project`, tests).
pub fn read_run_full(path: &Path) -> Result<LoadedRun, ReportError> {
    let (file, bytes) = read_file(path)?;
    let record = parse_run(&bytes, &file)?;
    Ok(LoadedRun {
        path: file,
        record,
        sample: Vec::new(),
    })
}

fn read_file(path: &Path) -> Result<(PathBuf, Vec<u8>), ReportError> {
    let file = resolve_run_path(path)?;
    let bytes = mfubench_fsio::read_capped(
        &file,
        max_run_json_bytes(),
        "run.json",
        "set MFUBENCH_MAX_RUN_JSON_MB to read it anyway",
    )
    .map_err(ReportError::from)?;
    Ok((file, bytes))
}

/// Parses and checks run.json bytes, and reads a sharded run's rank
/// records from the shards beside `path` (which names the file in errors).
pub fn parse_run(bytes: &[u8], path: &Path) -> Result<RunRecord, ReportError> {
    parse(bytes, path, true)
}

/// [`parse_run`] that leaves a sharded run's rank records in their shards
/// (checking its node records instead).
pub fn parse_run_lazy(bytes: &[u8], path: &Path) -> Result<RunRecord, ReportError> {
    parse(bytes, path, false)
}

fn parse(bytes: &[u8], path: &Path, shards: bool) -> Result<RunRecord, ReportError> {
    let path_buf = || path.to_path_buf();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ReportError::Syntax {
            path: path_buf(),
            line: 1,
            column: 0,
            message: "the file is empty".into(),
        });
    }
    let mut record: RunRecord = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => return Err(classify(bytes, path, &e)),
    };
    if record.schema_version > SCHEMA_VERSION {
        return Err(ReportError::FutureSchema {
            path: path_buf(),
            found: record.schema_version.into(),
            supported: SCHEMA_VERSION,
        });
    }
    if record.schema_version == 0 {
        return Err(ReportError::Inconsistent {
            path: path_buf(),
            message: "schema_version = 0 is not a version mfubench ever wrote".into(),
        });
    }
    let lazy = record.ranks.is_empty() && record.rank_shards.is_some() && !shards;
    if record.ranks.is_empty() && shards {
        if let Some(s) = record.rank_shards.take() {
            record.ranks = read_shards(&s, path)?;
            record.rank_shards = Some(s);
        }
    }
    let checked = if lazy {
        validate_nodes(&record)
    } else {
        validate(&record)
    };
    checked.map_err(|message| ReportError::Inconsistent {
        path: path_buf(),
        message,
    })?;
    Ok(record)
}

/// A shard's path under the run directory `dir`; a path that would leave
/// it is refused.
fn shard_file(dir: &Path, f: &ShardFile) -> Result<PathBuf, ReportError> {
    let file = dir.join(&f.path);
    if Path::new(&f.path)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(ReportError::Inconsistent {
            path: file,
            message: format!(
                "rank_shards names {:?}: a shard path must stay inside the run directory",
                f.path
            ),
        });
    }
    Ok(file)
}

/// The rank records of a sharded run (`rank_shards`: one file per node
/// beside run.json), in rank order; each shard must hold the ranks the
/// index names.
fn read_shards(shards: &RankShards, run_json: &Path) -> Result<Vec<RankRecord>, ReportError> {
    let dir = run_json.parent().unwrap_or(Path::new("."));
    let mut ranks = Vec::new();
    for f in &shards.files {
        let file = shard_file(dir, f)?;
        let bad = |message: String| ReportError::Inconsistent {
            path: file.clone(),
            message,
        };
        let bytes = mfubench_fsio::read_capped(
            &file,
            max_run_json_bytes(),
            "rank shard",
            "set MFUBENCH_MAX_RUN_JSON_MB to read it anyway",
        )
        .map_err(ReportError::from)?;
        let shard: ShardRecord = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "the shard of host {} is unreadable: {}",
                f.host,
                strip_position(&e.to_string())
            ))
        })?;
        let held: Vec<u64> = shard.ranks.iter().map(|r| r.rank).collect();
        if held != f.ranks {
            return Err(bad(format!(
                "the shard holds ranks {held:?} but run.json's rank_shards says {:?}",
                f.ranks
            )));
        }
        ranks.extend(shard.ranks);
    }
    ranks.sort_by_key(|r| r.rank);
    Ok(ranks)
}

fn classify(bytes: &[u8], path: &Path, e: &serde_json::Error) -> ReportError {
    let path_buf = path.to_path_buf();
    match e.classify() {
        Category::Eof => ReportError::Truncated {
            path: path_buf,
            line: e.line(),
            column: e.column(),
        },
        Category::Syntax | Category::Io => ReportError::Syntax {
            path: path_buf,
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        },
        Category::Data => {
            // The document is well-formed JSON: say first whether it is a
            // newer layout, which explains any mismatch.
            let version = mfubench_fsio::schema_version(bytes);
            match version {
                Some(v) if v > u64::from(SCHEMA_VERSION) => ReportError::FutureSchema {
                    path: path_buf,
                    found: v,
                    supported: SCHEMA_VERSION,
                },
                v => ReportError::Schema {
                    path: path_buf,
                    schema: v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                    line: e.line(),
                    column: e.column(),
                    message: strip_position(&e.to_string()),
                },
            }
        }
    }
}

/// serde_json appends " at line L column C"; the error variants carry both.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// [`validate`] for a run read without its shards: the node records hold
/// every rank once, in ranks 0 to world_size − 1, and their step times are
/// positive and no more than the configured iterations.
fn validate_nodes(r: &RunRecord) -> Result<(), String> {
    let briefs = mfubench_core::result::briefs(&r.nodes);
    if briefs.is_empty() {
        return Err("ranks and nodes are empty: the run recorded no rank".into());
    }
    if r.world_size != briefs.len() as u64 {
        return Err(format!(
            "world_size = {} but the node records hold {} ranks",
            r.world_size,
            briefs.len()
        ));
    }
    if let Some((i, (host, b))) = briefs
        .iter()
        .enumerate()
        .find(|(i, (_, b))| b.rank != *i as u64)
    {
        return Err(format!(
            "node {host} holds rank {} where rank {i} was due: the node records must hold ranks 0 to {} once each",
            b.rank,
            briefs.len() - 1
        ));
    }
    let iters = r.config.run.iterations as usize;
    for n in &r.nodes {
        for (mode, m) in &n.modes {
            let steps = m
                .step_time_s
                .iter()
                .chain(m.critical.iter().map(|c| &c.step_s));
            if m.critical.len() > iters {
                return Err(format!(
                    "node {} {mode} has {} rounds but run.iterations = {iters}",
                    n.host,
                    m.critical.len()
                ));
            }
            if let Some(t) = steps.clone().find(|t| !(t.is_finite() && **t > 0.0)) {
                return Err(format!(
                    "node {} {mode} has a step time of {t}: step times must be positive",
                    n.host
                ));
            }
        }
    }
    validate_plan(r)
}

/// Checks the relations the report relies on; the message says what is wrong.
fn validate(r: &RunRecord) -> Result<(), String> {
    if r.ranks.is_empty() {
        return Err("ranks is empty: the run recorded no rank".into());
    }
    if r.world_size != r.ranks.len() as u64 {
        return Err(format!(
            "world_size = {} but the file holds {} rank records",
            r.world_size,
            r.ranks.len()
        ));
    }
    // Rank records in rank order, each rank once: the report indexes them.
    if let Some((i, rank)) = r
        .ranks
        .iter()
        .enumerate()
        .find(|(i, rank)| rank.rank != *i as u64)
    {
        return Err(format!(
            "ranks[{i}] has rank id {}: rank records must be ranks 0 to {} in order, each once",
            rank.rank,
            r.ranks.len() - 1
        ));
    }
    let iters = r.config.run.iterations as usize;
    for rank in &r.ranks {
        for (mode, m) in &rank.modes {
            let n = m.step_time_s.len();
            if n > iters {
                return Err(format!(
                    "rank {} {mode} has {n} step times but run.iterations = {iters}",
                    rank.rank
                ));
            }
            for (what, len) in [
                ("step_start_s", m.step_start_s.len()),
                ("gemm_busy_s", m.gemm_busy_s.len()),
                ("allreduce_busy_s", m.allreduce_busy_s.len()),
            ] {
                if len != 0 && len != n {
                    return Err(format!(
                        "rank {} {mode} {what} has {len} entries for {n} step times",
                        rank.rank
                    ));
                }
            }
        }
    }
    validate_plan(r)?;
    for rank in &r.ranks {
        for (mode, m) in &rank.modes {
            // A zero or negative step time would turn into an infinite or
            // negative MFU further down; refuse it here, with its place.
            if let Some((i, t)) = m
                .step_time_s
                .iter()
                .enumerate()
                .find(|(_, t)| !(t.is_finite() && **t > 0.0))
            {
                return Err(format!(
                    "rank {} {mode} step_time_s[{i}] = {t}: step times must be positive",
                    rank.rank
                ));
            }
            if let Some(o) = m
                .ops
                .iter()
                .find(|o| !(o.median_s.is_finite() && o.median_s >= 0.0))
            {
                return Err(format!(
                    "rank {} {mode} op {} median_s = {}: op times must be non-negative",
                    rank.rank, o.name, o.median_s
                ));
            }
        }
    }
    Ok(())
}

/// The plan's FLOPs and the peak are usable numbers.
fn validate_plan(r: &RunRecord) -> Result<(), String> {
    let f = r.plan.flops;
    for (name, v) in [
        ("plan.flops.model", f.model),
        ("plan.flops.hardware", f.hardware),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{name} = {v} must be a non-negative number"));
        }
    }
    let peak = r.summary.peak_tflops;
    if !peak.is_finite() || peak <= 0.0 {
        return Err(format!("summary.peak_tflops = {peak} must be positive"));
    }
    Ok(())
}
