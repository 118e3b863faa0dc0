//! MPI pieces of the worker: the CPU backend's group of ranks
//! ([`MpiGroup`], the [`GroupComm`] over MPI) and the collective helpers
//! (broadcast of strings, gather of per-rank records).

use mpi::collective::SystemOperation;
use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::{Color, Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Count;

use crate::backend::BackendError;
use crate::group::{check_lengths, BufferIo, GroupComm};
use crate::host_buf::HostBuf;

/// Largest element count handed to one MPI call (counts are C ints).
pub const MAX_CHUNK: usize = 1 << 30;

/// A group of ranks over an MPI communicator of its own: the CPU
/// backend's [`GroupComm`], used from the comm stream's thread and by the
/// acceptance stages.
pub struct MpiGroup {
    comm: SimpleCommunicator,
    /// Largest count per MPI call ([`MAX_CHUNK`]) and per staged chunk
    /// ([`STAGE_CHUNK`]).
    chunks: (usize, usize),
}

// SAFETY: MPI was initialised with MPI_THREAD_MULTIPLE (checked before a
// backend opens), so MPI calls may come from any thread. Each group is its
// own communicator (a duplicate or a split), used by one thread at a time:
// the comm stream thread of a backend (the schedule never all-reduces from
// two threads at once) or the main thread of the acceptance suite.
unsafe impl Send for MpiGroup {}
// SAFETY: as above; shared references are only used by one thread at a time.
unsafe impl Sync for MpiGroup {}

impl MpiGroup {
    /// Wraps a communicator (duplicate the world's: collectives on it must
    /// not interleave with the main thread's barriers).
    pub fn new(comm: SimpleCommunicator) -> MpiGroup {
        MpiGroup::with_chunks(comm, MAX_CHUNK, STAGE_CHUNK)
    }

    /// A group that hands MPI at most `max` elements per call and stages
    /// `stage` per rank at a time above that: smaller than MPI's int limit
    /// only to test the chunked paths on small buffers.
    pub fn with_chunks(comm: SimpleCommunicator, max: usize, stage: usize) -> MpiGroup {
        MpiGroup {
            comm,
            chunks: (max.max(1), stage.max(1)),
        }
    }

    /// The MPI communicator (for barriers and gathers of records).
    pub fn comm(&self) -> &SimpleCommunicator {
        &self.comm
    }
}

/// Runs `$body` with `$s`/`$r` bound to the two buffers' slices when both
/// are of the same dtype; an error naming `$call` otherwise.
macro_rules! same_dtype {
    ($call:expr, $send:expr, $recv:expr, |$s:ident, $r:ident| $body:expr) => {
        match ($send, $recv) {
            (HostBuf::F32($s), HostBuf::F32($r)) => $body,
            (HostBuf::F64($s), HostBuf::F64($r)) => $body,
            _ => Err(BackendError::Failed(format!(
                "{}: the send and receive buffers differ in dtype",
                $call
            ))),
        }
    };
}

/// Sum all-reduce of `count` elements in chunks MPI's int counts hold.
fn all_reduce_chunked<T: Equivalence>(
    comm: &SimpleCommunicator,
    s: &[T],
    r: &mut [T],
    count: usize,
    max: usize,
) {
    for (sc, rc) in s[..count].chunks(max).zip(r[..count].chunks_mut(max)) {
        comm.all_reduce_into(sc, rc, SystemOperation::sum());
    }
}

/// Elements per rank of one staged chunk of [`all_gather_chunked`] and
/// [`reduce_scatter_chunked`] (64 MiB of f32 per rank in the staging
/// buffer).
const STAGE_CHUNK: usize = 1 << 24;

/// All-gather of `per` elements per rank. Above `max` ([`MAX_CHUNK`]) the
/// blocks go in chunks of `stage_chunk` ([`STAGE_CHUNK`]) through a
/// staging buffer (the receive
/// layout is rank-major, so a chunk of every rank's block is not
/// contiguous).
fn all_gather_chunked<T: Equivalence + Copy + Default>(
    comm: &SimpleCommunicator,
    s: &[T],
    r: &mut [T],
    per: usize,
    (max, stage_chunk): (usize, usize),
) {
    let n = comm.size() as usize;
    if per <= max {
        comm.all_gather_into(&s[..per], &mut r[..per * n]);
        return;
    }
    let mut stage = vec![T::default(); stage_chunk * n];
    for lo in (0..per).step_by(stage_chunk) {
        let c = stage_chunk.min(per - lo);
        comm.all_gather_into(&s[lo..lo + c], &mut stage[..c * n]);
        for rank in 0..n {
            r[rank * per + lo..rank * per + lo + c]
                .copy_from_slice(&stage[rank * c..(rank + 1) * c]);
        }
    }
}

/// Sum reduce-scatter of `per` elements per rank, chunked as
/// [`all_gather_chunked`] (here the send layout is rank-major).
fn reduce_scatter_chunked<T: Equivalence + Copy + Default>(
    comm: &SimpleCommunicator,
    s: &[T],
    r: &mut [T],
    per: usize,
    (max, stage_chunk): (usize, usize),
) {
    let n = comm.size() as usize;
    if per <= max {
        comm.reduce_scatter_block_into(&s[..per * n], &mut r[..per], SystemOperation::sum());
        return;
    }
    let mut stage = vec![T::default(); stage_chunk * n];
    for lo in (0..per).step_by(stage_chunk) {
        let c = stage_chunk.min(per - lo);
        for rank in 0..n {
            stage[rank * c..(rank + 1) * c]
                .copy_from_slice(&s[rank * per + lo..rank * per + lo + c]);
        }
        comm.reduce_scatter_block_into(&stage[..c * n], &mut r[lo..lo + c], SystemOperation::sum());
    }
}

impl GroupComm for MpiGroup {
    type Buf = HostBuf;

    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
    }

    fn split(&self, color: Option<u32>, key: u32) -> Result<Option<MpiGroup>, BackendError> {
        let color = match color {
            Some(c) => Color::with_value(i32::try_from(c).map_err(|_| {
                BackendError::Failed(format!("split colour {c} exceeds MPI's int range"))
            })?),
            None => Color::undefined(),
        };
        let key = i32::try_from(key).map_err(|_| {
            BackendError::Failed(format!("split key {key} exceeds MPI's int range"))
        })?;
        Ok(self
            .comm
            .split_by_color_with_key(color, key)
            .map(|c| MpiGroup::with_chunks(c, self.chunks.0, self.chunks.1)))
    }

    fn all_reduce_sum(
        &self,
        send: &HostBuf,
        recv: &mut HostBuf,
        count: usize,
    ) -> Result<(), BackendError> {
        check_lengths("all_reduce_sum", send.len(), count, recv.len(), count)?;
        same_dtype!("all_reduce_sum", send, recv, |s, r| {
            all_reduce_chunked(&self.comm, s, r, count, self.chunks.0);
            Ok(())
        })
    }

    fn all_gather(
        &self,
        send: &HostBuf,
        recv: &mut HostBuf,
        count_per_rank: usize,
    ) -> Result<(), BackendError> {
        let total = count_per_rank * self.size();
        check_lengths("all_gather", send.len(), count_per_rank, recv.len(), total)?;
        same_dtype!("all_gather", send, recv, |s, r| {
            all_gather_chunked(&self.comm, s, r, count_per_rank, self.chunks);
            Ok(())
        })
    }

    fn reduce_scatter_sum(
        &self,
        send: &HostBuf,
        recv: &mut HostBuf,
        count_per_rank: usize,
    ) -> Result<(), BackendError> {
        let total = count_per_rank * self.size();
        check_lengths(
            "reduce_scatter_sum",
            send.len(),
            total,
            recv.len(),
            count_per_rank,
        )?;
        same_dtype!("reduce_scatter_sum", send, recv, |s, r| {
            reduce_scatter_chunked(&self.comm, s, r, count_per_rank, self.chunks);
            Ok(())
        })
    }

    fn send_recv(
        &self,
        peer: usize,
        send: &HostBuf,
        recv: &mut HostBuf,
        count: usize,
    ) -> Result<(), BackendError> {
        check_lengths("send_recv", send.len(), count, recv.len(), count)?;
        if peer >= self.size() {
            return Err(BackendError::Failed(format!(
                "send_recv: peer {peer} is not in a group of {}",
                self.size()
            )));
        }
        let p = self.comm.process_at_rank(peer as i32);
        same_dtype!("send_recv", send, recv, |s, r| {
            for (sc, rc) in s[..count]
                .chunks(self.chunks.0)
                .zip(r[..count].chunks_mut(self.chunks.0))
            {
                mpi::point_to_point::send_receive_into(sc, &p, rc, &p);
            }
            Ok(())
        })
    }

    fn all_to_all_v(
        &self,
        send: &HostBuf,
        send_counts: &[usize],
        recv: &mut HostBuf,
        recv_counts: &[usize],
    ) -> Result<(), BackendError> {
        let (s_total, r_total) = crate::group::check_all_to_all(
            self.size(),
            send.len(),
            send_counts,
            recv.len(),
            recv_counts,
        )?;
        // MPI_Alltoallv takes int counts and displacements.
        let ints = |counts: &[usize]| -> Result<(Vec<Count>, Vec<Count>), BackendError> {
            let too_big = || {
                BackendError::Failed(format!(
                    "all_to_all_v: {} elements exceed MPI_Alltoallv's int counts; raise model.moe_chunks or lower run.micro_batch",
                    s_total.max(r_total)
                ))
            };
            let c = counts
                .iter()
                .map(|&x| Count::try_from(x).map_err(|_| too_big()))
                .collect::<Result<Vec<_>, _>>()?;
            let d = crate::group::displacements(counts)
                .into_iter()
                .map(|x| Count::try_from(x).map_err(|_| too_big()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((c, d))
        };
        let (sc, sd) = ints(send_counts)?;
        let (rc, rd) = ints(recv_counts)?;
        same_dtype!("all_to_all_v", send, recv, |s, r| {
            let sp = Partition::new(&s[..s_total], &sc[..], &sd[..]);
            let mut rp = PartitionMut::new(&mut r[..r_total], &rc[..], &rd[..]);
            self.comm.all_to_all_varcount_into(&sp, &mut rp);
            Ok(())
        })
    }

    /// MPI's blocking calls have completed when they return.
    fn synchronize(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// A zeroed buffer of `len` elements, with `madvise(MADV_HUGEPAGE)` on its
/// pages before their first touch, as numpy does for large arrays: with
/// the common THP setting `defrag = madvise` only advised memory gets huge
/// pages on a fragmented host, and the large collectives, memory-bound,
/// are then measured on the same footing as a numpy-based peer.
pub fn big_buffer<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut v = vec![T::default(); len];
    let bytes = std::mem::size_of_val(v.as_slice());
    let start = v.as_mut_ptr() as usize;
    let aligned = start.div_ceil(4096) * 4096;
    if bytes >= 1 << 21 && aligned < start + bytes {
        // SAFETY: [aligned, start + bytes) lies inside the allocation we
        // own; madvise only advises how to back those pages and does not
        // change their contents. A failure is harmless and ignored.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                start + bytes - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
    v
}

/// Buffers of the MPI group are f32 host vectors (the sweep's dtype,
/// nccl-tests' `float`).
impl BufferIo for MpiGroup {
    fn alloc(&self, len: usize) -> Result<HostBuf, BackendError> {
        Ok(HostBuf::F32(big_buffer(len)))
    }

    fn write(&self, buf: &mut HostBuf, at: usize, values: &[f64]) -> Result<(), BackendError> {
        check_lengths("write", values.len(), 0, buf.len(), at + values.len())?;
        match buf {
            HostBuf::F32(v) => v[at..at + values.len()]
                .iter_mut()
                .zip(values)
                .for_each(|(d, s)| *d = *s as f32),
            HostBuf::F64(v) => v[at..at + values.len()].copy_from_slice(values),
        }
        Ok(())
    }

    fn poison(&self, buf: &mut HostBuf) -> Result<(), BackendError> {
        match buf {
            HostBuf::F32(v) => v.fill(f32::NAN),
            HostBuf::F64(v) => v.fill(f64::NAN),
        }
        Ok(())
    }

    fn read(&self, buf: &HostBuf, at: usize, len: usize) -> Result<Vec<f64>, BackendError> {
        check_lengths("read", 0, 0, buf.len(), at + len)?;
        Ok(match buf {
            HostBuf::F32(v) => v[at..at + len].iter().map(|x| *x as f64).collect(),
            HostBuf::F64(v) => v[at..at + len].to_vec(),
        })
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

/// Gathers every rank's bytes on rank 0 (None on other ranks). Up to 2 GiB
/// in all, one `MPI_Gatherv` (its counts and displacements are C ints);
/// beyond, each rank sends its bytes to rank 0 in messages of at most
/// [`MAX_CHUNK`] bytes, one rank after the other.
pub fn gather_bytes(
    world: &SimpleCommunicator,
    bytes: &[u8],
) -> Result<Option<Vec<Vec<u8>>>, String> {
    gather_bytes_with(world, bytes, i32::MAX as u64, MAX_CHUNK)
}

/// [`gather_bytes`] with the largest total one gather may carry
/// (`gatherv_max` bytes) and the largest message of the point-to-point path
/// (`chunk` bytes): tests lower both to take the path that real runs take
/// only beyond 2 GiB. Collective.
pub fn gather_bytes_with(
    world: &SimpleCommunicator,
    bytes: &[u8],
    gatherv_max: u64,
    chunk: usize,
) -> Result<Option<Vec<Vec<u8>>>, String> {
    let root = world.process_at_rank(0);
    let len = bytes.len() as u64;
    let chunk = chunk.max(1);
    // An empty slice's pointer is dangling (0x1), which Open MPI reads as
    // MPI_IN_PLACE and refuses on a non-root rank: a real address instead.
    let none = [0u8; 1];
    let bytes = if bytes.is_empty() { &none[..0] } else { bytes };
    if world.rank() != 0 {
        root.gather_into(&len);
        let mut big = 0u8;
        root.broadcast_into(&mut big);
        if big == 0 {
            root.gather_varcount_into(bytes);
        } else {
            for piece in bytes.chunks(chunk) {
                root.send(piece);
            }
        }
        return Ok(None);
    }
    let mut lens = vec![0u64; world.size() as usize];
    root.gather_into_root(&len, &mut lens[..]);
    let total: u64 = lens.iter().sum();
    let mut big = u8::from(total > gatherv_max.min(i32::MAX as u64));
    root.broadcast_into(&mut big);
    if big == 1 {
        let mut all = Vec::with_capacity(lens.len());
        all.push(bytes.to_vec());
        for (r, l) in lens.iter().enumerate().skip(1) {
            let mut buf = vec![0u8; *l as usize];
            for piece in buf.chunks_mut(chunk) {
                world.process_at_rank(r as i32).receive_into(piece);
            }
            all.push(buf);
        }
        return Ok(Some(all));
    }
    // Within C int counts: checked above (total ≤ i32::MAX).
    let counts: Vec<i32> = lens.iter().map(|l| *l as i32).collect();
    let mut displs = Vec::with_capacity(counts.len());
    let mut at: i32 = 0;
    for c in &counts {
        displs.push(at);
        at += c;
    }
    // At least one byte, for the same reason as the empty send above.
    let mut all = vec![0u8; (total as usize).max(1)];
    {
        let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
        root.gather_varcount_into_root(bytes, &mut part);
    }
    Ok(Some(
        counts
            .iter()
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
