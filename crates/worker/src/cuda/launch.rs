//! The safe layer's operations: a cuBLASLt matmul ([`Matmul::enqueue`])
//! and the NCCL collectives ([`NcclComm::enqueue_all_reduce`] and the
//! others) on [`DeviceBuf`] ranges and a [`Stream`].
//!
//! Each checks what the unsafe call of the layer below
//! ([`Matmul::launch`], [`NcclComm::all_reduce_sum`], …) requires of its
//! raw pointers — every range inside its allocation and as long as the
//! call reads or writes, every buffer in the stream's context, the context
//! current on this thread — and returns [`CudaError::Invalid`] without
//! enqueuing anything when one does not hold. What no check can see is
//! time: the buffers must stay allocated until the stream has run the
//! work. A [`DeviceBuf`] frees itself with `cuMemFree`, which waits for the
//! device's queued work first (CUDA's implicit synchronisation), and the
//! owners (the backend, the NCCL group) drain their streams before they
//! drop their buffers, so a freed range is never one that queued work
//! still uses.

use mfubench_core::config::Dtype;

use super::buf::{BufSlice, DeviceBuf};
use super::error::{drv, CudaError};
use super::gemm::{LtHandle, Matmul, WORKSPACE_BYTES};
use super::nccl::{self, NcclComm};
use super::stream::Stream;

/// The device memory of one matmul launch.
#[derive(Clone, Copy)]
pub struct Operands<'a> {
    /// cuBLAS's first operand (the plan's B).
    pub first: BufSlice<'a>,
    /// cuBLAS's second operand (the plan's A).
    pub second: BufSlice<'a>,
    /// The output.
    pub out: BufSlice<'a>,
    /// The workspace, at least [`WORKSPACE_BYTES`].
    pub workspace: &'a DeviceBuf,
    /// The buffer holding the FP8 scale factors the matmul was made with
    /// ([`Matmul::scale_ptrs`]); `None` for other dtypes.
    pub scales: Option<&'a DeviceBuf>,
}

fn invalid(call: &'static str, what: String) -> CudaError {
    CudaError::Invalid { call, what }
}

/// Binds the stream's context to this thread, after checking that every
/// buffer lives in it.
fn same_context(call: &'static str, stream: &Stream, bufs: &[&DeviceBuf]) -> Result<(), CudaError> {
    let ctx = stream.context();
    if bufs.iter().any(|b| b.context().cu_ctx() != ctx.cu_ctx()) {
        return Err(invalid(
            call,
            "a buffer belongs to another context than the stream".into(),
        ));
    }
    drv("cuCtxSetCurrent", ctx.bind_to_thread())
}

impl Matmul {
    /// Enqueues `out = op(first)·op(second)` on `stream` with algorithm
    /// `algo` (an index into `algos`).
    pub fn enqueue(
        &self,
        h: &LtHandle,
        algo: usize,
        o: &Operands<'_>,
        stream: &Stream,
    ) -> Result<(), CudaError> {
        const CALL: &str = "cublasLtMatmul";
        let need = self.operand_bytes();
        for (name, s, n) in [
            ("first operand", o.first, need[0]),
            ("second operand", o.second, need[1]),
            ("output", o.out, need[2]),
        ] {
            if s.len() < n {
                return Err(invalid(
                    CALL,
                    format!("the {name} spans {} bytes, the shape needs {n}", s.len()),
                ));
            }
        }
        if (o.workspace.len() as u64) < WORKSPACE_BYTES {
            return Err(invalid(
                CALL,
                format!(
                    "workspace of {} bytes, under {WORKSPACE_BYTES}",
                    o.workspace.len()
                ),
            ));
        }
        let mut bufs = vec![o.first.buf(), o.second.buf(), o.out.buf(), o.workspace];
        if let Some((sa, sb)) = self.scale_ptrs() {
            let s = o.scales.filter(|s| {
                let r = s.ptr()..s.ptr() + s.len() as u64;
                r.contains(&sa) && r.contains(&sb) && sa.max(sb) + 4 <= r.end
            });
            let Some(s) = s else {
                return Err(invalid(
                    CALL,
                    "the FP8 scale factors' buffer is not the one the matmul was made with".into(),
                ));
            };
            bufs.push(s);
        }
        same_context(CALL, stream, &bufs)?;
        // SAFETY: every operand range lies inside its live allocation
        // (BufSlice) and spans what the matmul's shape reads or writes
        // (checked above, batch included), the workspace holds
        // WORKSPACE_BYTES, the scale pointers baked into the descriptor
        // point into a live buffer, all in the stream's context, which is
        // current; the stream is live (borrowed). They outlive the GEMM
        // (module docs).
        unsafe {
            self.launch(
                h,
                algo,
                o.first.ptr(),
                o.second.ptr(),
                o.out.ptr(),
                o.workspace.ptr(),
                stream.raw(),
            )
        }
        .map_err(CudaError::from)
    }
}

/// `ncclDataType_t` of `dtype` and its element size, or why NCCL cannot
/// carry it.
fn nccl_type(call: &'static str, dtype: Dtype) -> Result<(i32, u64), CudaError> {
    nccl::nccl_dtype(dtype)
        .map(|t| (t, dtype.size_bytes()))
        .ok_or_else(|| invalid(call, format!("NCCL does not carry {dtype}")))
}

/// Checks that `send` and `recv` hold `send_n` and `recv_n` elements of
/// `dtype` in the stream's context (made current); the NCCL type.
fn collective_args(
    call: &'static str,
    send: &DeviceBuf,
    send_n: usize,
    recv: &DeviceBuf,
    recv_n: usize,
    dtype: Dtype,
    stream: &Stream,
) -> Result<i32, CudaError> {
    let (ty, size) = nccl_type(call, dtype)?;
    for (name, b, n) in [("send", send, send_n), ("receive", recv, recv_n)] {
        let need = (n as u64).checked_mul(size);
        if need.is_none_or(|need| need > b.len() as u64) {
            return Err(invalid(
                call,
                format!(
                    "the {name} buffer holds {} bytes, the call needs {n} elements of {dtype}",
                    b.len()
                ),
            ));
        }
    }
    same_context(call, stream, &[send, recv])?;
    Ok(ty)
}

impl NcclComm {
    /// Enqueues the sum all-reduce of the first `count` elements of
    /// `dtype` of `send` into `recv` on `stream`.
    pub fn enqueue_all_reduce(
        &self,
        send: &DeviceBuf,
        recv: &DeviceBuf,
        count: usize,
        dtype: Dtype,
        stream: &Stream,
    ) -> Result<(), CudaError> {
        let ty = collective_args("ncclAllReduce", send, count, recv, count, dtype, stream)?;
        // SAFETY: both buffers hold `count` elements of the type in the
        // stream's context, which is current (checked above); the stream is
        // live; the buffers outlive the collective (module docs).
        unsafe { self.all_reduce_sum(send.ptr(), recv.ptr(), count, ty, stream.raw()) }
            .map_err(CudaError::from)
    }

    /// Enqueues the all-gather of `count_per_rank` elements of `dtype`
    /// from every rank's `send`, rank-major in `recv`, on `stream`.
    pub fn enqueue_all_gather(
        &self,
        send: &DeviceBuf,
        recv: &DeviceBuf,
        count_per_rank: usize,
        dtype: Dtype,
        stream: &Stream,
    ) -> Result<(), CudaError> {
        let all = count_per_rank.saturating_mul(self.size());
        let ty = collective_args(
            "ncclAllGather",
            send,
            count_per_rank,
            recv,
            all,
            dtype,
            stream,
        )?;
        // SAFETY: `send` holds count_per_rank and `recv` size·count_per_rank
        // elements of the type in the stream's context, which is current
        // (checked above); the stream is live; the buffers outlive the
        // collective (module docs).
        unsafe { self.all_gather(send.ptr(), recv.ptr(), count_per_rank, ty, stream.raw()) }
            .map_err(CudaError::from)
    }

    /// Enqueues the sum reduce-scatter on `stream`: block `rank` (of
    /// `count_per_rank` elements of `dtype`) of the sum of every rank's
    /// `send` lands in this rank's `recv`.
    pub fn enqueue_reduce_scatter(
        &self,
        send: &DeviceBuf,
        recv: &DeviceBuf,
        count_per_rank: usize,
        dtype: Dtype,
        stream: &Stream,
    ) -> Result<(), CudaError> {
        let all = count_per_rank.saturating_mul(self.size());
        let ty = collective_args(
            "ncclReduceScatter",
            send,
            all,
            recv,
            count_per_rank,
            dtype,
            stream,
        )?;
        // SAFETY: `send` holds size·count_per_rank and `recv`
        // count_per_rank elements of the type in the stream's context,
        // which is current (checked above); the stream is live; the
        // buffers outlive the collective (module docs).
        unsafe { self.reduce_scatter_sum(send.ptr(), recv.ptr(), count_per_rank, ty, stream.raw()) }
            .map_err(CudaError::from)
    }

    /// Enqueues the exchange of `count` elements of `dtype` with `peer`
    /// (both directions at once, in one NCCL group) on `stream`.
    pub fn enqueue_send_recv(
        &self,
        peer: usize,
        send: &DeviceBuf,
        recv: &DeviceBuf,
        count: usize,
        dtype: Dtype,
        stream: &Stream,
    ) -> Result<(), CudaError> {
        let ty = collective_args("ncclSend", send, count, recv, count, dtype, stream)?;
        // SAFETY: both buffers hold `count` elements of the type in the
        // stream's context, which is current (checked above); the stream is
        // live; the buffers outlive the exchange (module docs).
        unsafe { self.send_recv(peer, send.ptr(), recv.ptr(), count, ty, stream.raw()) }
            .map_err(CudaError::from)
    }

    /// Enqueues an all-to-all with per-peer counts of `dtype` elements on
    /// `stream` (see [`NcclComm::all_to_all_v`]).
    pub fn enqueue_all_to_all_v(
        &self,
        send: &DeviceBuf,
        counts: &[usize],
        recv: &DeviceBuf,
        recv_counts: &[usize],
        dtype: Dtype,
        stream: &Stream,
    ) -> Result<(), CudaError> {
        let (s_n, r_n) = (counts.iter().sum(), recv_counts.iter().sum());
        let ty = collective_args("ncclSend", send, s_n, recv, r_n, dtype, stream)?;
        // SAFETY: the buffers hold the sums of the counts in elements of
        // the type in the stream's context, which is current (checked
        // above); the stream is live; the buffers outlive the exchange
        // (module docs).
        unsafe {
            self.all_to_all_v(
                send.ptr(),
                counts,
                recv.ptr(),
                recv_counts,
                dtype.size_bytes(),
                ty,
                stream.raw(),
            )
        }
        .map_err(CudaError::from)
    }
}
