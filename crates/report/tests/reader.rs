//! Reader robustness: every bad input gives one error naming the file and
//! the problem, never a panic. Property tests feed random bytes and random
//! truncations and mutations of a valid file through the whole pipeline.

mod common;

use std::path::{Path, PathBuf};

use common::{build, Gen};
use mfubench_report::read::{parse_run, read_run, read_run_full};
use mfubench_report::{report_loaded, Format, LoadedRun, ReportError, ReportOptions};
use proptest::prelude::*;

fn small_json() -> Vec<u8> {
    let g = Gen {
        hosts: 1,
        per_host: 2,
        slow: vec![],
        toml: common::FIXTURE_TOML.replace("iterations = 5", "iterations = 2"),
        ..Gen::default()
    };
    serde_json::to_vec(&build(&g)).unwrap()
}

fn path() -> PathBuf {
    PathBuf::from("/results/x/run.json")
}

fn err(bytes: &[u8]) -> ReportError {
    let e = parse_run(bytes, &path()).expect_err("must be refused");
    assert!(e.to_string().starts_with("/results/x/run.json: "), "{e}");
    e
}

/// After a successful parse, the whole report (every format, both plots)
/// must be produced without a panic.
fn full_pipeline(bytes: &[u8], out: &Path) {
    if let Ok(record) = parse_run(bytes, &path()) {
        let loaded = LoadedRun {
            path: path(),
            record,
            sample: Vec::new(),
        };
        for format in Format::ALL {
            let o = ReportOptions {
                format,
                out_dir: Some(out.to_path_buf()),
                write_files: format == Format::Table,
                ..ReportOptions::default()
            };
            let _ = report_loaded(&loaded, &o);
        }
    }
}

#[test]
fn truncated_file_says_truncated() {
    let j = small_json();
    let e = err(&j[..j.len() / 2]);
    assert!(matches!(e, ReportError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("truncated"));
}

#[test]
fn malformed_file_says_where() {
    let e = err(b"{\"schema_version\": 1,,}");
    assert!(matches!(e, ReportError::Syntax { line: 1, .. }), "{e}");
    let e = err(b"   \n");
    assert!(e.to_string().contains("empty"), "{e}");
    let e = err(b"[1, 2, 3]");
    assert!(matches!(e, ReportError::Schema { .. }), "{e}");
}

#[test]
fn future_schema_is_refused_by_version() {
    let mut v: serde_json::Value = serde_json::from_slice(&small_json()).unwrap();
    v["schema_version"] = 5.into();
    let e = err(&serde_json::to_vec(&v).unwrap());
    assert!(
        matches!(
            e,
            ReportError::FutureSchema {
                found: 5,
                supported: 4,
                ..
            }
        ),
        "{e}"
    );
    // A newer layout that no longer parses is still reported by its version.
    v["schema_version"] = 7.into();
    v.as_object_mut().unwrap().remove("ranks");
    let e = err(&serde_json::to_vec(&v).unwrap());
    assert!(
        matches!(e, ReportError::FutureSchema { found: 7, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("newer"));
    v["schema_version"] = serde_json::json!(1u64 << 40);
    assert!(matches!(
        err(&serde_json::to_vec(&v).unwrap()),
        ReportError::FutureSchema { .. }
    ));
}

#[test]
fn schema_mismatch_names_the_field() {
    let mut v: serde_json::Value = serde_json::from_slice(&small_json()).unwrap();
    v.as_object_mut().unwrap().remove("plan");
    let e = err(&serde_json::to_vec(&v).unwrap());
    assert!(e.to_string().contains("missing field `plan`"), "{e}");
    let mut v: serde_json::Value = serde_json::from_slice(&small_json()).unwrap();
    v.as_object_mut().unwrap().remove("schema_version");
    let e = err(&serde_json::to_vec(&v).unwrap());
    assert!(e.to_string().contains("schema_version"), "{e}");
}

#[test]
fn inconsistent_content_is_refused() {
    let mut v: serde_json::Value = serde_json::from_slice(&small_json()).unwrap();
    v["world_size"] = 3.into();
    let e = err(&serde_json::to_vec(&v).unwrap());
    assert!(
        e.to_string()
            .contains("world_size = 3 but the file holds 2 rank records"),
        "{e}"
    );
    let mut v: serde_json::Value = serde_json::from_slice(&small_json()).unwrap();
    v["ranks"][1]["modes"]["compute"]["step_time_s"][0] = (-1.0).into();
    let e = err(&serde_json::to_vec(&v).unwrap());
    assert!(
        e.to_string().contains("rank 1 compute step_time_s[0] = -1"),
        "{e}"
    );
    let mut v: serde_json::Value = serde_json::from_slice(&small_json()).unwrap();
    v["ranks"] = serde_json::json!([]);
    v["world_size"] = 0.into();
    assert!(err(&serde_json::to_vec(&v).unwrap())
        .to_string()
        .contains("no rank"));
}

#[test]
fn paths_that_are_not_run_files() {
    let t = tempfile::tempdir().unwrap();
    let e = mfubench_report::read_run(t.path()).unwrap_err();
    assert!(matches!(e, ReportError::NoRunFile { .. }), "{e}");
    let e = mfubench_report::read_run(&t.path().join("nope")).unwrap_err();
    assert!(matches!(e, ReportError::Read { .. }), "{e}");
    // A directory holding run.json is accepted.
    common::write_run(t.path(), &build(&Gen::default()));
    assert!(mfubench_report::read_run(t.path()).is_ok());
}

#[test]
fn unwritable_output_is_an_error_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let run = common::write_run(t.path(), &build(&Gen::default()));
    let file = t.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = ReportOptions {
        out_dir: Some(file.join("sub")),
        ..ReportOptions::default()
    };
    let e = mfubench_report::report_run_dir(&run, &o).unwrap_err();
    assert!(matches!(e, ReportError::Write { .. }), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_run(&bytes, &path());
    }

    #[test]
    fn truncations_are_errors(cut in 0.0f64..1.0) {
        let j = small_json();
        let n = ((j.len() as f64) * cut) as usize;
        prop_assume!(n < j.len());
        let e = parse_run(&j[..n], &path()).expect_err("a truncated file must be refused");
        prop_assert!(e.to_string().starts_with("/results/x/run.json: "));
    }

    #[test]
    fn mutations_never_panic(
        edits in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..8),
    ) {
        let mut j = small_json();
        for (at, byte) in edits {
            let i = ((j.len() as f64) * at) as usize % j.len();
            j[i] = byte;
        }
        let t = tempfile::tempdir().unwrap();
        full_pipeline(&j, t.path());
    }

    #[test]
    fn digit_mutations_run_the_whole_pipeline(
        edits in proptest::collection::vec((0.0f64..1.0, 0u8..10), 1..6),
    ) {
        // Replacing digits by digits keeps the JSON valid, so this reaches
        // the summary, tables and plots with odd but parseable values.
        let mut j = small_json();
        let digits: Vec<usize> = j.iter().enumerate().filter(|(_, b)| b.is_ascii_digit()).map(|(i, _)| i).collect();
        for (at, d) in edits {
            let i = digits[((digits.len() as f64) * at) as usize % digits.len()];
            j[i] = b'0' + d;
        }
        let t = tempfile::tempdir().unwrap();
        full_pipeline(&j, t.path());
    }
}

/// Hostile run.json content is refused with a message naming the place:
/// duplicate or out-of-order rank ids, more step times than iterations,
/// per-step arrays that disagree in length.
#[test]
fn inconsistent_ranks_and_arrays_are_refused() {
    let v0: serde_json::Value = serde_json::from_slice(&small_json()).unwrap();
    let mut v = v0.clone();
    v["ranks"][1]["rank"] = 0.into();
    let e = err(&serde_json::to_vec(&v).unwrap()).to_string();
    assert!(e.contains("ranks[1] has rank id 0"), "{e}");
    let mut v = v0.clone();
    let many: Vec<f64> = vec![0.01; 1000];
    v["ranks"][0]["modes"]["compute"]["step_time_s"] = serde_json::json!(many);
    let e = err(&serde_json::to_vec(&v).unwrap()).to_string();
    assert!(e.contains("1000 step times but run.iterations = 2"), "{e}");
    let mut v = v0;
    v["ranks"][0]["modes"]["comm"]["step_start_s"] = serde_json::json!([0.0]);
    let e = err(&serde_json::to_vec(&v).unwrap()).to_string();
    assert!(
        e.contains("step_start_s has 1 entries for 2 step times"),
        "{e}"
    );
}

/// A run.json above the size limit is refused before it is read.
#[test]
fn oversized_run_json_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.json");
    std::fs::write(&p, vec![b' '; 3 << 20]).unwrap();
    std::env::set_var("MFUBENCH_MAX_RUN_JSON_MB", "2");
    let e = mfubench_report::read::read_run(&p).unwrap_err().to_string();
    std::env::remove_var("MFUBENCH_MAX_RUN_JSON_MB");
    assert!(e.contains("more than the 2 MiB"), "{e}");
}

/// A run whose rank records are in per-node shards reads back whole, and
/// every way a shard can disagree with run.json's index is one clear error
/// naming the shard file.
#[test]
fn sharded_runs_read_back_and_bad_shards_are_named() {
    use mfubench_core::aggregate::{nodes_of, shard_path, RankShards, ShardFile, ShardRecord};
    let g = Gen {
        hosts: 3,
        per_host: 2,
        slow: vec![],
        toml: common::FIXTURE_TOML.replace("iterations = 5", "iterations = 2"),
        ..Gen::default()
    };
    let flat = build(&g);
    let tmp = tempfile::tempdir().unwrap();
    let write = |run: &mfubench_core::result::RunRecord, shards: &[ShardRecord]| {
        std::fs::create_dir_all(tmp.path().join("ranks")).unwrap();
        for s in shards {
            std::fs::write(
                tmp.path().join(shard_path(&s.host)),
                serde_json::to_vec(s).unwrap(),
            )
            .unwrap();
        }
        std::fs::write(
            tmp.path().join("run.json"),
            serde_json::to_vec(run).unwrap(),
        )
        .unwrap();
    };
    let mut sharded = flat.clone();
    sharded.nodes = nodes_of(&flat.ranks, &flat.plan);
    let shards: Vec<ShardRecord> = flat
        .hosts
        .iter()
        .map(|h| ShardRecord {
            host: h.clone(),
            ranks: flat
                .ranks
                .iter()
                .filter(|r| &r.host == h)
                .cloned()
                .collect(),
        })
        .collect();
    sharded.rank_shards = Some(RankShards {
        files: shards
            .iter()
            .map(|s| ShardFile {
                host: s.host.clone(),
                path: shard_path(&s.host),
                ranks: s.ranks.iter().map(|r| r.rank).collect(),
            })
            .collect(),
    });
    sharded.ranks.clear();
    write(&sharded, &shards);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("run.json")).unwrap()).unwrap();
    assert!(v.get("ranks").is_none(), "run.json holds rank records");
    let back = read_run_full(tmp.path()).expect("a sharded run reads");
    assert_eq!(back.record.ranks, flat.ranks);
    // Read lazily (the node records and the two ranks the report draws),
    // it gives the report of the flat run, figure for figure.
    let lazy = read_run(tmp.path()).expect("a sharded run reads lazily");
    assert!(lazy.record.ranks.is_empty());
    assert_eq!(lazy.sample.len(), 2, "the slowest and the median rank");
    let acc = &flat.config.acceptance;
    let mut a = serde_json::to_value(mfubench_report::analyze_with(
        &lazy.record,
        lazy.rank_records(),
        "run.json",
        acc,
    ))
    .unwrap();
    let mut b = serde_json::to_value(mfubench_report::analyze(&flat, "run.json", acc)).unwrap();
    // Telemetry is shown for the ranks read, and a warning says so.
    for v in [&mut a, &mut b] {
        v["telemetry"] = serde_json::Value::Null;
        v["warnings"] = serde_json::Value::Null;
    }
    assert_eq!(a, b);

    // A shard that holds other ranks than the index says.
    let mut wrong = shards.clone();
    wrong[1].ranks.pop();
    write(&sharded, &wrong);
    let e = read_run_full(tmp.path()).unwrap_err().to_string();
    let second = shard_path(&shards[1].host);
    assert!(
        e.starts_with(&tmp.path().join(&second).display().to_string()),
        "{e}"
    );
    assert!(e.contains("but run.json's rank_shards says"), "{e}");
    // A missing shard, read whole or lazily.
    std::fs::remove_file(tmp.path().join(&second)).unwrap();
    let e = read_run_full(tmp.path()).unwrap_err().to_string();
    assert!(e.contains(&second), "{e}");
    let e = read_run(tmp.path()).unwrap_err().to_string();
    assert!(e.contains(&second), "{e}");
    // A shard path that leaves the run directory is refused unread.
    let mut escape = sharded.clone();
    escape.rank_shards.as_mut().unwrap().files[0].path = "../x.json".into();
    write(&escape, &shards);
    let e = read_run_full(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("must stay inside the run directory"), "{e}");
}
