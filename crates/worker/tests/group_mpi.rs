//! The MPI [`GroupComm`] (`mpi_comm::MpiGroup`) with real MPI ranks, at 2, 3
//! and 4 ranks: every collective against its known answer, the split's
//! membership and order, send/recv with a partner; the acceptance sweep's
//! tables (`accept::sweep_table`) with `#wrong` from the known answers,
//! 0 on a healthy group and exactly the corrupted elements on a group that
//! corrupts one element per call. This test binary runs
//! itself under `mpirun` (the `#[ignore]`d `rank` entry point below); a
//! rank whose check fails panics, and the job's exit code says so.

mod common;

use common::{mpirun, one_at_a_time};
use std::process::Stdio;

use mfubench_core::metrics::Collective;
use mfubench_worker::accept::{sweep_table, SweepBudget, Team};
use mfubench_worker::backend::BackendError;
use mfubench_worker::cpu::HostBuf;
use mfubench_worker::group::{BufferIo, GroupComm};
use mfubench_worker::mpi_comm::MpiGroup;

/// Set in the child ranks' environment.
const CHILD_VAR: &str = "MFUBENCH_GROUP_TEST_CHILD";

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
        // All-to-all-v with uneven counts: rank a sends rank b (a + b) % 3
        // + 1 elements (the same both ways, as the step's are), the last
        // pair nothing when a + b = 4 on 4 ranks… of value(a, 100·b + i).
        let count = |a: usize, b: usize| if a + b == 4 { 0 } else { (a + b) % 3 + 1 };
        let counts: Vec<usize> = (0..n).map(|b| count(me, b)).collect();
        let send = buf((0..n)
            .flat_map(|b| (0..count(me, b)).map(move |i| value(me, 100 * b + i)))
            .collect());
        let total: usize = counts.iter().sum();
        let mut recv = buf(vec![f64::NAN; total]);
        g.all_to_all_v(&send, &counts, &mut recv, &counts).unwrap();
        let want: Vec<f64> = (0..n)
            .flat_map(|a| (0..count(a, me)).map(move |i| value(a, 100 * me + i)))
            .collect();
        assert_eq!(f64s(&recv), want, "{label}: all-to-all-v");
        // The known-answer check of the step's all-to-alls agrees.
        let c64: Vec<u64> = counts.iter().map(|&c| c as u64).collect();
        let send = buf((0..total as u64)
            .map(|i| mfubench_core::check::all_to_all_send_value(&c64, me as u64, 7, i))
            .collect());
        g.all_to_all_v(&send, &counts, &mut recv, &counts).unwrap();
        let got = f64s(&recv);
        assert_eq!(
            mfubench_core::check::count_wrong_all_to_all(got.clone(), &c64, me as u64, 7, 0),
            0,
            "{label}: all-to-all check"
        );
        if total > 0 {
            let mut bad = got;
            bad[total - 1] += 1.0;
            assert_eq!(
                mfubench_core::check::count_wrong_all_to_all(bad, &c64, me as u64, 7, 0),
                1
            );
        }
        // Counts that do not match the group are an error.
        assert!(g
            .all_to_all_v(&send, &counts[1..], &mut recv, &counts)
            .is_err());
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

/// An MPI group whose rank 0 finds one element of every result off by one,
/// as a faulty link would leave it.
struct Corrupting(MpiGroup);

impl Corrupting {
    fn corrupt(&self, recv: &mut HostBuf) -> Result<(), BackendError> {
        if self.0.rank() == 0 {
            let v = self.0.read(recv, 0, 1)?[0];
            self.0.write(recv, 0, &[v + 1.0])?;
        }
        Ok(())
    }
}

impl GroupComm for Corrupting {
    type Buf = HostBuf;
    fn rank(&self) -> usize {
        self.0.rank()
    }
    fn size(&self) -> usize {
        self.0.size()
    }
    fn split(&self, c: Option<u32>, k: u32) -> Result<Option<Self>, BackendError> {
        Ok(self.0.split(c, k)?.map(Corrupting))
    }
    fn all_reduce_sum(&self, s: &HostBuf, r: &mut HostBuf, n: usize) -> Result<(), BackendError> {
        self.0.all_reduce_sum(s, r, n)?;
        self.corrupt(r)
    }
    fn all_gather(&self, s: &HostBuf, r: &mut HostBuf, n: usize) -> Result<(), BackendError> {
        self.0.all_gather(s, r, n)?;
        self.corrupt(r)
    }
    fn reduce_scatter_sum(
        &self,
        s: &HostBuf,
        r: &mut HostBuf,
        n: usize,
    ) -> Result<(), BackendError> {
        self.0.reduce_scatter_sum(s, r, n)?;
        self.corrupt(r)
    }
    fn send_recv(
        &self,
        p: usize,
        s: &HostBuf,
        r: &mut HostBuf,
        n: usize,
    ) -> Result<(), BackendError> {
        self.0.send_recv(p, s, r, n)
    }
    fn all_to_all_v(
        &self,
        s: &HostBuf,
        sc: &[usize],
        r: &mut HostBuf,
        rc: &[usize],
    ) -> Result<(), BackendError> {
        self.0.all_to_all_v(s, sc, r, rc)
    }
    fn synchronize(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

impl BufferIo for Corrupting {
    fn alloc(&self, len: usize) -> Result<HostBuf, BackendError> {
        self.0.alloc(len)
    }
    fn write(&self, b: &mut HostBuf, at: usize, v: &[f64]) -> Result<(), BackendError> {
        self.0.write(b, at, v)
    }
    fn poison(&self, b: &mut HostBuf) -> Result<(), BackendError> {
        self.0.poison(b)
    }
    fn read(&self, b: &HostBuf, at: usize, len: usize) -> Result<Vec<f64>, BackendError> {
        self.0.read(b, at, len)
    }
}

/// The sweep's tables on the world: every size's geometry, `#wrong` 0 on
/// the healthy group, 1 per row on the corrupting one.
fn check_sweep(world: &mpi::topology::SimpleCommunicator) {
    use mpi::traits::*;
    let n = world.size() as u64;
    // 4 … 4096 bytes, × 4; at 4 bytes (one float) reduce-scatter and
    // all-gather have no element per rank and leave the size out.
    let sizes = [4u64, 16, 64, 256, 1024, 4096];
    for corrupt in [false, true] {
        for c in [
            Collective::AllReduce,
            Collective::ReduceScatter,
            Collective::AllGather,
        ] {
            let t = if corrupt {
                let team = Team::new(
                    world.duplicate(),
                    Corrupting(MpiGroup::new(world.duplicate())),
                )
                .unwrap();
                sweep_table(&team, c, &sizes, 2, &SweepBudget::start(3600.0)).unwrap()
            } else {
                let team = Team::new(world.duplicate(), MpiGroup::new(world.duplicate())).unwrap();
                sweep_table(&team, c, &sizes, 2, &SweepBudget::start(3600.0)).unwrap()
            };
            let want: Vec<(u64, u64)> = sizes
                .iter()
                .filter_map(|&b| mfubench_core::accept::sweep_geometry(c, b, 4, n))
                .collect();
            let got: Vec<(u64, u64)> = t.rows.iter().map(|r| (r.count, r.size_bytes)).collect();
            assert_eq!(got, want, "{c:?} on {n} ranks");
            for r in &t.rows {
                assert_eq!(r.wrong, u64::from(corrupt), "{c:?} on {n} ranks: {r:?}");
                assert!(r.time_us > 0.0 && r.busbw_gbps > 0.0, "{r:?}");
            }
        }
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
    // A failed check ends the process at once, so that mpirun ends the
    // job: unwinding would reach MPI_Finalize, which waits for the other
    // ranks, themselves waiting in the next collective.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    let universe = mpi::initialize().expect("MPI initialises");
    let world = universe.world();
    let g = MpiGroup::new(world.duplicate());
    let (me, n) = (g.rank(), g.size());
    check_group(&g, "world");
    // The chunked paths (above MPI's int counts in real use): 2 elements
    // per call, 3 per staged chunk, on the same 5-element blocks.
    let chunked = MpiGroup::with_chunks(world.duplicate(), 2, 3);
    check_group(&chunked, "chunked");
    let sub = chunked.split(Some(0), 0).unwrap().unwrap();
    check_group(&sub, "chunked split");
    check_sweep(&world);
    // The byte gather, in one MPI_Gatherv and, lowered limits standing in
    // for 2 GiB, rank by rank in 3-byte messages: every rank's bytes
    // (lengths 5, 0, 8, 4 bytes) arrive whole and in rank order.
    let bytes_of = |r: usize| -> Vec<u8> {
        let len = if r == 1 { 0 } else { (r * 7 + 5) % 11 };
        (0..len).map(|i| (r * 31 + i) as u8).collect()
    };
    let mine = bytes_of(me);
    for (max, chunk) in [(u64::MAX, 1 << 30), (8, 3)] {
        let got = mfubench_worker::mpi_comm::gather_bytes_with(&world, &mine, max, chunk).unwrap();
        if me == 0 {
            let want: Vec<Vec<u8>> = (0..n).map(bytes_of).collect();
            assert_eq!(got, Some(want), "gather_bytes_with({max}, {chunk})");
        } else {
            assert_eq!(got, None);
        }
    }
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
    let _one_at_a_time = one_at_a_time();
    let out = mpirun(ranks, std::env::current_exe().unwrap())
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
fn collectives_split_send_recv_and_sweeps_on_2_ranks() {
    run(2);
}

#[test]
fn collectives_split_send_recv_and_sweeps_on_3_ranks() {
    run(3);
}

#[test]
fn collectives_split_send_recv_and_sweeps_on_4_ranks() {
    run(4);
}
