//! The CPU analogue of the NCCL teardown rules (`cuda::nccl::teardown`,
//! `cuda::nccl::InitWatchdog`), with real MPI ranks: this test binary runs
//! itself under `mpirun` (the `#[ignore]`d `rank` entry point below).
//!
//! - Communicator creation is a blocking collective (`ncclCommInitRank`;
//!   here an MPI barrier). When one rank never arrives, the others must end
//!   within the watchdog's limit, naming the step, with the run-failed code.
//! - A rank leaving early on an error path must not stall the others: it
//!   lets its communicator go by the [`teardown`] decision, where `Abort`
//!   (here `MPI_Abort`) never waits for peers, while `Destroy` (collective,
//!   here `MPI_Finalize`) would leave a peer stuck in its collective. The
//!   second case shows the test can tell the two apart.

mod common;

use common::{mpirun, one_at_a_time, reap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use mfubench_worker::cuda::nccl::{teardown, InitWatchdog, Teardown, WATCHDOG_EXIT_CODE};

/// Which scenario the ranks play (environment of the child ranks).
const SCENARIO_VAR: &str = "MFUBENCH_TEARDOWN_SCENARIO";

/// Child entry point: one MPI rank of a scenario. Ignored in normal runs;
/// the tests below start it with `--ignored` under mpirun.
#[test]
#[ignore = "the child rank of the tests below, started by them under mpirun; alone it does nothing"]
fn rank() {
    use mpi::traits::*;
    let Ok(scenario) = std::env::var(SCENARIO_VAR) else {
        return;
    };
    let universe = mpi::initialize().expect("MPI initialises");
    let world = universe.world();
    let me = world.rank();
    match (scenario.as_str(), me) {
        // Rank 1 died or hangs before the communicator init: it never
        // joins. Rank 0 waits in the init under the watchdog.
        ("init_never_joined", 1) => std::thread::sleep(Duration::from_secs(300)),
        ("init_never_joined", _) => {
            let _w = InitWatchdog::arm(
                format!("rank {me}: communicator init"),
                Duration::from_secs(2),
                WATCHDOG_EXIT_CODE,
            );
            world.barrier();
        }
        // Rank 1 hits an error after the communicator exists and leaves;
        // rank 0 is inside a collective that rank 1 will never join.
        (s @ ("leaves_early" | "leaves_early_destroying"), 1) => {
            let finished = s == "leaves_early_destroying";
            eprintln!("rank 1: error: planted failure; leaving early");
            match teardown(false, finished, false) {
                Teardown::Abort => world.abort(WATCHDOG_EXIT_CODE),
                // Collective: returns, and the rank exits, but the peer
                // stays in its barrier.
                Teardown::Destroy | Teardown::Nothing => {
                    drop(universe);
                    std::process::exit(WATCHDOG_EXIT_CODE);
                }
            }
        }
        (_, _) => world.barrier(),
    }
}

/// Runs 2 ranks of `scenario`; returns (exit code, output, seconds), or
/// Err(output so far) when the job was still running after `limit` (then
/// stopped: SIGTERM, and SIGKILL to the whole tree 10 s later).
fn run(scenario: &str, limit: Duration) -> Result<(Option<i32>, String, f64), String> {
    let _one_at_a_time = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("out.txt");
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut child = mpirun(2, &exe)
        .args(["--exact", "rank", "--ignored", "--nocapture"])
        .env(SCENARIO_VAR, scenario)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err.txt")).unwrap())
        .spawn()
        .expect("mpirun must be installed (ci/install-deps.sh installs openmpi-bin)");
    let text = || {
        std::fs::read_to_string(&log).unwrap_or_default()
            + &std::fs::read_to_string(dir.path().join("err.txt")).unwrap_or_default()
    };
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Ok((status.code(), text(), started.elapsed().as_secs_f64()));
        }
        if started.elapsed() > limit {
            // SIGTERM: mpirun forwards it to its ranks and ends them; past
            // 10 s the tree is SIGKILLed (a CI run once hung here for an
            // hour on an unbounded wait).
            let (_, graceful) =
                reap::stop_within(&mut child, libc::SIGTERM, Duration::from_secs(10));
            return Err(format!(
                "{}(mpirun {} SIGTERM)",
                text(),
                if graceful { "ended on" } else { "ignored" }
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_rank_that_never_joins_the_init_does_not_stall_the_others() {
    let (code, out, secs) =
        run("init_never_joined", Duration::from_secs(60)).unwrap_or_else(|out| {
            panic!("the watchdog must end the job; it was still running after 60 s:\n{out}")
        });
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("watchdog: rank 0: communicator init did not complete within 2 s"),
        "{out}"
    );
    assert!(secs < 30.0, "ended after {secs} s:\n{out}");
}

#[test]
fn a_rank_leaving_early_aborts_and_does_not_stall_its_peer() {
    let (code, out, secs) = run("leaves_early", Duration::from_secs(60)).unwrap_or_else(|out| {
        panic!("an aborting rank must end the job; it was still running after 60 s:\n{out}")
    });
    assert_eq!(code, Some(WATCHDOG_EXIT_CODE), "{out}");
    assert!(out.contains("planted failure"), "{out}");
    assert!(secs < 30.0, "ended after {secs} s:\n{out}");
    // The collective teardown, wrongly used on that path, leaves rank 0
    // waiting for a peer that is gone: the job does not end by itself.
    assert!(
        run("leaves_early_destroying", Duration::from_secs(8)).is_err(),
        "a collective teardown of a rank leaving early was expected to stall its peer"
    );
}

/// The bounded stop itself (crates/test-support/reap.rs): a child that
/// ignores SIGTERM, and its grandchild, are SIGKILLed after the grace.
#[test]
fn a_child_ignoring_sigterm_and_its_grandchild_are_killed() {
    // sh ignores TERM and starts a grandchild that ignores it too.
    let mut c = std::process::Command::new("sh")
        .args([
            "-c",
            "trap '' TERM; sh -c \"trap '' TERM; sleep 300\" & wait",
        ])
        .spawn()
        .unwrap();
    let t = Instant::now();
    while reap::descendants(c.id()).len() < 2 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let tree = reap::descendants(c.id());
    assert!(tree.len() >= 2, "{tree:?}");
    let (status, graceful) = reap::stop_within(&mut c, libc::SIGTERM, Duration::from_millis(300));
    assert!(!graceful);
    assert!(status.is_some());
    std::thread::sleep(Duration::from_millis(200));
    for p in tree {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        assert!(stat.is_empty() || stat.contains(") Z"), "{p} lives: {stat}");
    }
    assert!(t.elapsed() < Duration::from_secs(20));
}
