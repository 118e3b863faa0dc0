//! The MPI [`GroupComm`] (`mpi_comm::MpiGroup`) with real MPI ranks, at 2, 3
//! and 4 ranks: every collective against its known answer, the split's
//! membership and order, send/recv around a ring. This test binary runs
//! itself under `mpirun` (the `#[ignore]`d `rank` entry point below); a
//! rank whose check fails panics, and the job's exit code says so.

use std::process::{Command, Stdio};

use mfubench_worker::cpu::HostBuf;
use mfubench_worker::group::GroupComm;
use mfubench_worker::mpi_comm::MpiGroup;

/// Set in the child ranks' environment.
const CHILD_VAR: &str = "MFUBENCH_GROUP_TEST_CHILD";

/// MPI tests run one at a time (2 cores).
static MPI_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn f64s(b: &HostBuf) -> Vec<f64> {
    match b {
        HostBuf::F64(v) => v.clone(),
        HostBuf::F32(v) => v.iter().map(|x| *x as f64).collect(),
    }
}

/// A value only rank `r` sends at element `i`: distinct per rank and
/// element, exact in f32.
fn value(r: usize, i: usize) -> f64 {
    (r * 1000 + i) as f64
}

fn check_group(g: &MpiGroup, label: &str) {
    let (me, n) = (g.rank(), g.size());
    for f32_buf in [false, true] {
        let buf = |v: Vec<f64>| {
            if f32_buf {
                HostBuf::F32(v.iter().map(|x| *x as f32).collect())
            } else {
                HostBuf::F64(v)
            }
        };
        let per = 5;
        // All-reduce: Σ_r value(r, i).
        let send = buf((0..per).map(|i| value(me, i)).collect());
        let mut recv = buf(vec![f64::NAN; per]);
        g.all_reduce_sum(&send, &mut recv, per).unwrap();
        let want: Vec<f64> = (0..per)
            .map(|i| (0..n).map(|r| value(r, i)).sum())
            .collect();
        assert_eq!(f64s(&recv), want, "{label}: all-reduce");
        // All-gather: the concatenation, rank-major.
        let mut recv = buf(vec![f64::NAN; per * n]);
        g.all_gather(&send, &mut recv, per).unwrap();
        let want: Vec<f64> = (0..n)
            .flat_map(|r| (0..per).map(move |i| value(r, i)))
            .collect();
        assert_eq!(f64s(&recv), want, "{label}: all-gather");
        // Reduce-scatter: block `me` of the sum.
        let send = buf((0..per * n).map(|i| value(me, i)).collect());
        let mut recv = buf(vec![f64::NAN; per]);
        g.reduce_scatter_sum(&send, &mut recv, per).unwrap();
        let want: Vec<f64> = (0..per)
            .map(|i| (0..n).map(|r| value(r, me * per + i)).sum())
            .collect();
        assert_eq!(f64s(&recv), want, "{label}: reduce-scatter");
        // Send/recv with the pair partner (me ^ 1), when there is one.
        let peer = me ^ 1;
        if peer < n {
            let send = buf((0..per).map(|i| value(me, i)).collect());
            let mut recv = buf(vec![f64::NAN; per]);
            g.send_recv(peer, &send, &mut recv, per).unwrap();
            let want: Vec<f64> = (0..per).map(|i| value(peer, i)).collect();
            assert_eq!(f64s(&recv), want, "{label}: send/recv");
        }
        // Short buffers and mixed dtypes are errors, not crashes.
        let mut short = buf(vec![0.0; per * n - 1]);
        assert!(g.all_gather(&send, &mut short, per).is_err());
        let mut other = if f32_buf {
            HostBuf::F64(vec![0.0; per])
        } else {
            HostBuf::F32(vec![0.0; per])
        };
        assert!(g.all_reduce_sum(&send, &mut other, per).is_err());
        g.synchronize().unwrap();
    }
}

/// Child entry point: one MPI rank. Ignored in normal runs; the tests
/// below start it with `--ignored` under mpirun.
#[test]
#[ignore = "the child rank of the tests below, started by them under mpirun; alone it does nothing"]
fn rank() {
    use mpi::traits::*;
    if std::env::var(CHILD_VAR).is_err() {
        return;
    }
    let universe = mpi::initialize().expect("MPI initialises");
    let world = universe.world();
    let g = MpiGroup::new(world.duplicate());
    let (me, n) = (g.rank(), g.size());
    check_group(&g, "world");
    // Split by parity, ordered by descending world rank; the last rank
    // joins no group.
    let color = (me + 1 < n || n == 1).then_some((me % 2) as u32);
    let key = (n - me) as u32;
    let sub = g.split(color, key).unwrap();
    match (color, &sub) {
        (None, None) => {}
        (Some(c), Some(s)) => {
            let members: Vec<usize> = (0..n.saturating_sub(1).max(1))
                .filter(|r| (r % 2) as u32 == c)
                .rev()
                .collect();
            assert_eq!(s.size(), members.len(), "split size");
            assert_eq!(
                members[s.rank()],
                me,
                "split order: ranks by descending key"
            );
            check_group(s, &format!("colour {c}"));
        }
        _ => panic!("rank {me}: colour {color:?} but group {}", sub.is_some()),
    }
    println!("GROUP OK rank {me} of {n}");
}

fn run(ranks: usize) {
    let _one_at_a_time = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .args(["--mca", "mpi_yield_when_idle", "1", "-np"])
        .arg(ranks.to_string())
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "rank", "--ignored", "--nocapture"])
        .env(CHILD_VAR, "1")
        .stdin(Stdio::null())
        .output()
        .expect("mpirun must be installed (ci/install-deps.sh installs openmpi-bin)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{ranks} ranks failed:\n{text}");
    for r in 0..ranks {
        assert!(
            text.contains(&format!("GROUP OK rank {r} of {ranks}")),
            "rank {r} of {ranks} did not finish its checks:\n{text}"
        );
    }
}

#[test]
fn collectives_split_and_send_recv_on_2_ranks() {
    run(2);
}

#[test]
fn collectives_split_and_send_recv_on_3_ranks() {
    run(3);
}

#[test]
fn collectives_split_and_send_recv_on_4_ranks() {
    run(4);
}
