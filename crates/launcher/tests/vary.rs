//! `mfubench run --vary` with real MPI ranks: variants in one job with
//! their intervals and a verdict, a variant that does not fit reported and
//! skipped while the other runs, and `mfubench report` on the result.
//! Needs mpirun and the worker built next to `mfubench`.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

const RUN_LIMIT: Duration = Duration::from_secs(300);

/// The short quickstart with 6 timed rounds: the fewest that give 95 %
/// intervals, so that a verdict can be "best".
fn config(dir: &Path) -> String {
    let p = short_quickstart(dir);
    let text = std::fs::read_to_string(&p).expect("read");
    let mut t: toml::Table = text.parse().expect("parse");
    t["run"]
        .as_table_mut()
        .expect("[run]")
        .insert("iterations".into(), toml::Value::Integer(6));
    std::fs::write(&p, toml::to_string(&t).expect("toml")).expect("write");
    p.to_str().expect("utf-8 path").to_string()
}

fn vary_run(dir: &Path, id: &str, vary: &[&str]) -> (Finished, serde_json::Value) {
    let out = dir.join("results");
    let mut c = mfubench_cmd();
    c.args(["run", &config(dir), "--np", "2", "--out"])
        .arg(&out)
        .args(["--run-id", id]);
    for v in vary {
        c.args(["--vary", v]);
    }
    let f = run(&mut c, RUN_LIMIT);
    let j = read_json(&out.join(id).join("vary.json"));
    (f, j)
}

#[test]
fn two_bucket_sizes_give_two_variants_with_intervals_and_a_verdict() {
    if !have_mpirun("two_bucket_sizes_give_two_variants_with_intervals_and_a_verdict") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (f, j) = vary_run(tmp.path(), "v2", &["run.bucket_mb=1,16"]);
    assert_eq!(f.code(), 0, "{f:?}");
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["complete"], true);
    assert_eq!(j["rounds"], 6);
    let vs = j["variants"].as_array().expect("variants");
    assert_eq!(vs.len(), 2);
    let run_dir = tmp.path().join("results/v2");
    for (k, want) in [(0, 1.0), (1, 16.0)] {
        let v = &vs[k];
        assert_eq!(v["status"], "ran", "{v}");
        assert_eq!(v["wrong"], 0, "{v}");
        for fig in [
            "mfu_overlapped",
            "exposed_comm_s",
            "hidden_fraction",
            "overlapped_step_s",
        ] {
            let ci = v[fig]["ci95"]
                .as_array()
                .unwrap_or_else(|| panic!("{fig}: {v}"));
            let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
            let x = v[fig]["value"].as_f64().unwrap();
            assert!(lo <= x && x <= hi, "{fig}: {v}");
        }
        // Each variant is an ordinary run: its own run.json with its value.
        let r = read_json(&run_dir.join(format!("variants/{k}/run.json")));
        assert_eq!(r["config"]["run"]["bucket_mb"].as_f64(), Some(want));
        assert_eq!(r["complete"], true);
        assert_eq!(r["summary"]["wrong"], 0);
        // The rounds were interleaved: both variants' timed steps share one
        // clock, and neither ran all its steps before the other started.
        let starts = |rec: &serde_json::Value| -> Vec<f64> {
            rec["ranks"][0]["modes"]["overlapped"]["step_start_s"]
                .as_array()
                .expect("step_start_s")
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let other = read_json(&run_dir.join(format!("variants/{}/run.json", 1 - k)));
        let (mine, theirs) = (starts(&r), starts(&other));
        assert!(mine.first() < theirs.last() && theirs.first() < mine.last());
    }
    // Exactly one leader: best, or indistinguishable from the other.
    let verdicts: Vec<&str> = vs.iter().map(|v| v["verdict"].as_str().unwrap()).collect();
    let leader = j["leader"].as_u64().expect("a leader") as usize;
    let other = 1 - leader;
    match verdicts[leader] {
        "best" => assert_eq!(verdicts[other], "slower"),
        "indistinguishable" => {
            assert_eq!(vs[leader]["from"], serde_json::json!([other]));
            assert_eq!(verdicts[other], "indistinguishable_from_leader");
        }
        v => panic!("leader verdict {v}"),
    }
    assert!(vs[other]["vs_leader"]["ci95"].is_array(), "{j}");
    // The table at the end of the run, and from `mfubench report`.
    for text in [
        f.stdout.clone(),
        run(mfubench_cmd().arg("report").arg(&run_dir), RUN_LIMIT).stdout,
    ] {
        assert!(text.contains("run.bucket_mb=1 "), "{text}");
        assert!(text.contains("run.bucket_mb=16 "), "{text}");
        assert!(
            text.contains("| best") || text.contains("indistinguishable from run.bucket_mb="),
            "{text}"
        );
    }
    // Each variant reports on its own too.
    let r = run(
        mfubench_cmd().arg("report").arg(run_dir.join("variants/1")),
        RUN_LIMIT,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("verdict: PASS"), "{}", r.stdout);
}

#[test]
fn a_variant_that_does_not_fit_is_reported_and_the_other_runs() {
    if !have_mpirun("a_variant_that_does_not_fit_is_reported_and_the_other_runs") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    // seq = 65536: the attention scores alone are 8 heads × 65536² f32
    // (128 GiB) per rank, which the CPU backend's memory check refuses.
    let (f, j) = vary_run(tmp.path(), "fit", &["model.seq=65536,64"]);
    assert_eq!(f.code(), 0, "{f:?}");
    let vs = j["variants"].as_array().expect("variants");
    assert_eq!(vs[0]["status"], "does_not_fit", "{j}");
    assert_eq!(vs[0]["verdict"], "does_not_fit", "{j}");
    let reason = vs[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("GiB") && reason.contains("model.seq"),
        "{reason}"
    );
    assert_eq!(vs[1]["status"], "ran", "{j}");
    assert!(vs[1]["mfu_overlapped"]["ci95"].is_array(), "{j}");
    let run_dir = tmp.path().join("results/fit");
    assert!(!run_dir.join("variants/0").exists());
    assert_eq!(
        read_json(&run_dir.join("variants/1/run.json"))["complete"],
        true
    );
    assert!(
        f.stdout
            .contains("model.seq=65536 does not fit: rank 0: the plan needs"),
        "{}",
        f.stdout
    );
    assert!(f.stdout.contains("does not fit"), "{}", f.stdout);
    assert!(
        f.stdout.contains("is the only variant measured"),
        "{}",
        f.stdout
    );
}

/// A --vary run stopped by --timeout keeps what was measured: every
/// variant's run.json and vary.json hold the rounds written so far
/// (`complete: false`), the table is printed, INCOMPLETE, exit 3.
#[test]
fn a_stopped_vary_run_keeps_its_rounds() {
    if !have_mpirun("a_stopped_vary_run_keeps_its_rounds") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = short_quickstart(tmp.path());
    let text = std::fs::read_to_string(&p).expect("read");
    let mut t: toml::Table = text.parse().expect("parse");
    t["run"]
        .as_table_mut()
        .expect("[run]")
        .insert("iterations".into(), toml::Value::Integer(100_000));
    std::fs::write(&p, toml::to_string(&t).expect("toml")).expect("write");
    let out = tmp.path().join("results");
    let f = run(
        mfubench_cmd()
            .args(["run", p.to_str().expect("utf-8"), "--np", "2", "--out"])
            .arg(&out)
            // Long enough for the first round's save on a loaded 2-core
            // machine (warmup and calibration of both variants come first;
            // 25 s once was not).
            .args(["--run-id", "stop", "--timeout", "60s"])
            .args(["--vary", "run.bucket_mb=1,16"]),
        RUN_LIMIT,
    );
    assert_eq!(f.code(), 3, "{f:?}");
    let j = read_json(&out.join("stop/vary.json"));
    assert_eq!(j["complete"], false, "{j}");
    assert!(j["rounds"].as_u64().unwrap_or(0) >= 1, "{j}");
    for k in 0..2 {
        let r = read_json(&out.join(format!("stop/variants/{k}/run.json")));
        assert_eq!(r["complete"], false);
    }
    assert!(f.stdout.contains("INCOMPLETE"), "{}", f.stdout);
    assert!(f.stdout.contains("run.bucket_mb=16 "), "{}", f.stdout);
    let r = run(
        mfubench_cmd().arg("report").arg(out.join("stop")),
        RUN_LIMIT,
    );
    assert_eq!(r.code(), 3, "{r:?}");
    let r = run(
        mfubench_cmd()
            .arg("report")
            .arg(out.join("stop"))
            .arg("--allow-partial"),
        RUN_LIMIT,
    );
    assert_eq!(r.code(), 0, "{r:?}");
}
