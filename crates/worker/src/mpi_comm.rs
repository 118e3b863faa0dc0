//! MPI pieces of the worker: the all-reduce of the CPU backend and the
//! collective helpers (broadcast of strings, gather of per-rank records).

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use crate::backend::BackendError;
use crate::cpu::{HostAllReduce, HostBuf};

/// Largest element count handed to one MPI call (counts are C ints).
const MAX_CHUNK: usize = 1 << 30;

/// Sum all-reduce over a communicator of its own, used from the comm
/// stream's thread.
pub struct MpiAllReduce {
    comm: SimpleCommunicator,
}

// SAFETY: MPI was initialised with MPI_THREAD_MULTIPLE (checked in main), so
// MPI calls may come from any thread. The communicator is a duplicate used by
// the comm stream thread only (the schedule never all-reduces from two
// threads at once), so no two threads use it concurrently.
unsafe impl Send for MpiAllReduce {}
// SAFETY: as above; shared references are only used by the one comm thread.
unsafe impl Sync for MpiAllReduce {}

impl MpiAllReduce {
    /// Wraps a communicator (duplicate the world's: collectives on it must
    /// not interleave with the main thread's barriers).
    pub fn new(comm: SimpleCommunicator) -> MpiAllReduce {
        MpiAllReduce { comm }
    }
}

impl HostAllReduce for MpiAllReduce {
    fn all_reduce_sum(&self, send: &HostBuf, recv: &mut HostBuf) -> Result<(), BackendError> {
        match (send, recv) {
            (HostBuf::F32(s), HostBuf::F32(r)) if s.len() == r.len() => {
                for (sc, rc) in s.chunks(MAX_CHUNK).zip(r.chunks_mut(MAX_CHUNK)) {
                    self.comm.all_reduce_into(sc, rc, SystemOperation::sum());
                }
                Ok(())
            }
            (HostBuf::F64(s), HostBuf::F64(r)) if s.len() == r.len() => {
                for (sc, rc) in s.chunks(MAX_CHUNK).zip(r.chunks_mut(MAX_CHUNK)) {
                    self.comm.all_reduce_into(sc, rc, SystemOperation::sum());
                }
                Ok(())
            }
            _ => Err(BackendError::Failed(
                "send and receive buffers differ in dtype or length".into(),
            )),
        }
    }

    fn rank(&self) -> u64 {
        self.comm.rank() as u64
    }

    fn ranks(&self) -> u64 {
        self.comm.size() as u64
    }
}

/// Broadcasts bytes from rank 0 to every rank.
pub fn broadcast_bytes(world: &SimpleCommunicator, bytes: &[u8]) -> Vec<u8> {
    let root = world.process_at_rank(0);
    let mut len = bytes.len() as u64;
    root.broadcast_into(&mut len);
    let mut buf = if world.rank() == 0 {
        bytes.to_vec()
    } else {
        vec![0u8; len as usize]
    };
    for chunk in buf.chunks_mut(MAX_CHUNK) {
        root.broadcast_into(chunk);
    }
    buf
}

/// Gathers every rank's bytes on rank 0 (None on other ranks).
pub fn gather_bytes(
    world: &SimpleCommunicator,
    bytes: &[u8],
) -> Result<Option<Vec<Vec<u8>>>, String> {
    let root = world.process_at_rank(0);
    let len = i32::try_from(bytes.len()).map_err(|_| "a rank record exceeds 2 GiB".to_string())?;
    if world.rank() != 0 {
        root.gather_into(&len);
        root.gather_varcount_into(bytes);
        return Ok(None);
    }
    let mut lens = vec![0i32; world.size() as usize];
    root.gather_into_root(&len, &mut lens[..]);
    let mut displs = Vec::with_capacity(lens.len());
    let mut total: i64 = 0;
    for l in &lens {
        displs.push(
            i32::try_from(total).map_err(|_| "the gathered records exceed 2 GiB".to_string())?,
        );
        total += *l as i64;
    }
    let mut all = vec![0u8; total as usize];
    {
        let mut part = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
        root.gather_varcount_into_root(bytes, &mut part);
    }
    Ok(Some(
        lens.iter()
            .zip(&displs)
            .map(|(l, d)| all[*d as usize..(*d + *l) as usize].to_vec())
            .collect(),
    ))
}

/// Maximum of a value over all ranks.
pub fn max_f64(world: &SimpleCommunicator, v: f64) -> f64 {
    let mut out = 0.0f64;
    world.all_reduce_into(&v, &mut out, SystemOperation::max());
    out
}

/// How long a rank waits for the others before it says so (a `waiting`
/// progress event).
pub const NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A barrier that waits without spinning: MPI_Ibarrier, then MPI_Test with a
/// short sleep between tests. A blocking MPI_Barrier busy-polls, and on a
/// host with as many busy threads as cores the rank that arrives first would
/// steal cycles from the GEMMs of the ranks still computing — a measurement
/// artifact, not a property of the cluster.
///
/// Returns `false` if the other ranks have not all arrived within `limit`
/// (a rank is stuck, stopped or dead): the caller ends the job rather than
/// wait forever. The pending barrier is left behind — the job is ending.
///
/// `on_wait` is called once if the wait passes [`NOTICE_AFTER`]: this rank
/// is healthy and waiting for others.
pub fn quiet_barrier(
    world: &SimpleCommunicator,
    limit: std::time::Duration,
    on_wait: &mut dyn FnMut(),
) -> bool {
    let t0 = std::time::Instant::now();
    let mut noticed = false;
    let mut req = world.immediate_barrier();
    loop {
        match req.test() {
            Ok(_) => return true,
            Err(r) => {
                if !noticed && t0.elapsed() > NOTICE_AFTER {
                    noticed = true;
                    on_wait();
                }
                if t0.elapsed() > limit {
                    // The request must not be dropped while pending (rsmpi
                    // panics on that); the job is about to abort anyway.
                    std::mem::forget(r);
                    return false;
                }
                req = r;
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
}
