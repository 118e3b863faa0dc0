//! A group of ranks that runs collectives together: the one communicator
//! abstraction of the worker.
//!
//! An MPI communicator on the CPU backend ([`crate::mpi_comm::MpiGroup`]),
//! an NCCL communicator on the CUDA backend ([`crate::cuda::group::NcclGroup`]),
//! one rank in unit tests ([`crate::cpu::LocalGroup`]). The step's gradient
//! all-reduce, the acceptance suite's stages and the sharded plans' groups
//! (FSDP shards, HSDP replicas, tensor-parallel groups) are written once
//! against it; a new group is made by [`GroupComm::split`] of an existing
//! one, as `MPI_Comm_split` and `ncclCommSplit` do.
//!
//! Buffers are the backend's ([`GroupComm::Buf`]: host vectors on CPU,
//! device allocations on GPU) and counts are elements of the group's
//! dtype. Counts are `usize`: an implementation whose library takes C ints
//! (MPI) splits larger calls into chunks itself.
//!
//! Layouts follow MPI and NCCL: `all_gather` writes rank r's
//! `count_per_rank` elements at `r · count_per_rank` of `recv`;
//! `reduce_scatter_sum` reduces `send` (`size · count_per_rank` elements)
//! and leaves block r of the sum in rank r's `recv`.
//!
//! Calls may be asynchronous (NCCL enqueues on the group's stream);
//! [`GroupComm::synchronize`] waits until every call made so far has
//! completed, which a caller does before reading a result or a clock.

use crate::backend::BackendError;

/// A group of ranks running collectives together.
pub trait GroupComm: Send + Sync + Sized {
    /// A buffer the group's collectives read and write.
    type Buf;

    /// This rank's position in the group, `0..size`.
    fn rank(&self) -> usize;

    /// Number of ranks in the group.
    fn size(&self) -> usize;

    /// Collective over the group: the ranks passing the same `color` form a
    /// new group, ordered by `key` (ties by rank here); `None` = this rank
    /// joins no group and gets `Ok(None)`.
    fn split(&self, color: Option<u32>, key: u32) -> Result<Option<Self>, BackendError>;

    /// `recv[i] = Σ over ranks of send[i]` for `i < count`.
    fn all_reduce_sum(
        &self,
        send: &Self::Buf,
        recv: &mut Self::Buf,
        count: usize,
    ) -> Result<(), BackendError>;

    /// `recv[r·count_per_rank + i] = send[i] of rank r`, for
    /// `i < count_per_rank`.
    fn all_gather(
        &self,
        send: &Self::Buf,
        recv: &mut Self::Buf,
        count_per_rank: usize,
    ) -> Result<(), BackendError>;

    /// `recv[i] = Σ over ranks of send[rank·count_per_rank + i]` on every
    /// rank, for `i < count_per_rank`.
    fn reduce_scatter_sum(
        &self,
        send: &Self::Buf,
        recv: &mut Self::Buf,
        count_per_rank: usize,
    ) -> Result<(), BackendError>;

    /// Sends `count` elements of `send` to `peer` and receives `count`
    /// from it into `recv`, both at once (the peer calls it with this rank
    /// as its peer).
    fn send_recv(
        &self,
        peer: usize,
        send: &Self::Buf,
        recv: &mut Self::Buf,
        count: usize,
    ) -> Result<(), BackendError>;

    /// All-to-all with per-peer counts (`MPI_Alltoallv`): block `p` of
    /// `send` (`send_counts[p]` elements; blocks back to back in rank
    /// order) goes to rank `p`, and block `s` of `recv`
    /// (`recv_counts[s]` elements, in the same layout) comes from rank `s`.
    /// Each count must match the peer's count for this rank.
    fn all_to_all_v(
        &self,
        send: &Self::Buf,
        send_counts: &[usize],
        recv: &mut Self::Buf,
        recv_counts: &[usize],
    ) -> Result<(), BackendError>;

    /// Blocks until every call this rank made on the group has completed.
    fn synchronize(&self) -> Result<(), BackendError>;
}

/// Checks an all-to-all's counts: one per rank of a group of `size`, and
/// buffers of `send_len` and `recv_len` elements that hold their sums.
/// Returns the two sums.
pub fn check_all_to_all(
    size: usize,
    send_len: usize,
    send_counts: &[usize],
    recv_len: usize,
    recv_counts: &[usize],
) -> Result<(usize, usize), BackendError> {
    if send_counts.len() != size || recv_counts.len() != size {
        return Err(BackendError::Failed(format!(
            "all_to_all_v: {} send and {} receive counts for a group of {size}",
            send_counts.len(),
            recv_counts.len()
        )));
    }
    let (s, r) = (send_counts.iter().sum(), recv_counts.iter().sum());
    check_lengths("all_to_all_v", send_len, s, recv_len, r)?;
    Ok((s, r))
}

/// Start of each block of an all-to-all buffer: the prefix sums of `counts`.
pub fn displacements(counts: &[usize]) -> Vec<usize> {
    counts
        .iter()
        .scan(0, |at, &c| {
            let d = *at;
            *at += c;
            Some(d)
        })
        .collect()
}

/// Host access to a group's buffers, for calls with known answers (the
/// acceptance sweep's `#wrong`): values go in and come out as `f64`, and
/// must be exact in the group's dtype (the check patterns are small
/// integers). Ranges are in elements; the group's calls must have
/// completed ([`GroupComm::synchronize`]) before a buffer is read or
/// written.
pub trait BufferIo: GroupComm {
    /// A buffer of `len` elements of the group's dtype, contents
    /// unspecified.
    fn alloc(&self, len: usize) -> Result<Self::Buf, BackendError>;

    /// Writes `values` at element `at` of `buf`.
    fn write(&self, buf: &mut Self::Buf, at: usize, values: &[f64]) -> Result<(), BackendError>;

    /// Fills every element with NaN, so that a result that was never
    /// written cannot pass a check.
    fn poison(&self, buf: &mut Self::Buf) -> Result<(), BackendError>;

    /// Reads `len` elements from element `at`.
    fn read(&self, buf: &Self::Buf, at: usize, len: usize) -> Result<Vec<f64>, BackendError>;
}

/// Checks that buffers of `send_len` and `recv_len` elements hold a call's
/// `send_need` and `recv_need`; the error names the call.
pub fn check_lengths(
    call: &str,
    send_len: usize,
    send_need: usize,
    recv_len: usize,
    recv_need: usize,
) -> Result<(), BackendError> {
    if send_len < send_need || recv_len < recv_need {
        return Err(BackendError::Failed(format!(
            "{call}: buffers of {send_len} and {recv_len} elements, the call needs {send_need} and {recv_need}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_are_named() {
        assert!(check_lengths("all_gather", 4, 4, 8, 8).is_ok());
        let e = check_lengths("all_gather", 4, 4, 7, 8).unwrap_err();
        assert!(e.to_string().contains("all_gather") && e.to_string().contains("needs 4 and 8"));
    }
}
