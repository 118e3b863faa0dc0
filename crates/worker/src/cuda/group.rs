//! The CUDA backend's [`GroupComm`]: an NCCL communicator, a stream of its
//! own its collectives are enqueued on, and the group's dtype.
//!
//! Calls enqueue and return (NCCL is asynchronous to the host);
//! [`GroupComm::synchronize`] polls an event recorded after them, under a
//! watchdog limit, and aborts the communicator when NCCL reports a failed
//! peer or the limit passes, so that a dead peer ends the job instead of
//! hanging it. Splits (`ncclCommSplit`, NCCL ≥ 2.18) share the parent's
//! stream: a rank runs one group's collectives at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::safe::{CudaContext, CudaStream};
use cudarc::driver::sys;

use mfubench_core::config::Dtype;

use super::nccl::{self, NcclComm};
use super::{drv, CudaError, DeviceBuf};
use crate::backend::BackendError;
use crate::group::{check_lengths, GroupComm};

/// A group of ranks over an NCCL communicator.
pub struct NcclGroup {
    // Field order is drop order: the communicator before the stream and
    // the context.
    comm: NcclComm,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    dtype: Dtype,
    nccl_dtype: i32,
    limit: Duration,
}

impl NcclGroup {
    /// A group over `comm`, enqueuing on `stream` of `ctx`, with elements
    /// of `dtype` (bf16, fp16, f32 or f64); `synchronize` waits at most
    /// `limit`.
    pub fn new(
        comm: NcclComm,
        ctx: Arc<CudaContext>,
        stream: Arc<CudaStream>,
        dtype: Dtype,
        limit: Duration,
    ) -> Result<NcclGroup, BackendError> {
        let nccl_dtype = nccl::nccl_dtype(dtype).ok_or_else(|| {
            BackendError::Unavailable(format!(
                "NCCL groups run bf16, fp16, f32 or f64, not {dtype}"
            ))
        })?;
        Ok(NcclGroup {
            comm,
            stream,
            ctx,
            dtype,
            nccl_dtype,
            limit,
        })
    }

    /// The element dtype.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The NCCL communicator.
    pub fn comm(&self) -> &NcclComm {
        &self.comm
    }

    /// The stream the group's calls are enqueued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Elements of the group's dtype a buffer holds.
    fn elements(&self, b: &DeviceBuf) -> usize {
        b.len() / self.dtype.size_bytes() as usize
    }

    fn raw_stream(&self) -> *mut std::ffi::c_void {
        self.stream.cu_stream() as _
    }

    fn bind(&self) -> Result<(), BackendError> {
        Ok(drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?)
    }
}

fn failed(e: nccl::NcclError) -> BackendError {
    CudaError::from(e).into()
}

impl GroupComm for NcclGroup {
    type Buf = DeviceBuf;

    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn size(&self) -> usize {
        self.comm.size()
    }

    fn split(&self, color: Option<u32>, key: u32) -> Result<Option<NcclGroup>, BackendError> {
        self.bind()?;
        Ok(self
            .comm
            .split(color, key)
            .map_err(failed)?
            .map(|comm| NcclGroup {
                comm,
                stream: self.stream.clone(),
                ctx: self.ctx.clone(),
                dtype: self.dtype,
                nccl_dtype: self.nccl_dtype,
                limit: self.limit,
            }))
    }

    fn all_reduce_sum(
        &self,
        send: &DeviceBuf,
        recv: &mut DeviceBuf,
        count: usize,
    ) -> Result<(), BackendError> {
        let (s, r) = (self.elements(send), self.elements(recv));
        check_lengths("all_reduce_sum", s, count, r, count)?;
        self.bind()?;
        // SAFETY: both buffers hold `count` elements of the group's dtype
        // in its context (checked above) and outlive the call's completion:
        // the caller synchronises before dropping or reusing them, as the
        // trait requires; the stream is the group's own.
        unsafe {
            self.comm.all_reduce_sum(
                send.ptr(),
                recv.ptr(),
                count,
                self.nccl_dtype,
                self.raw_stream(),
            )
        }
        .map_err(failed)
    }

    fn all_gather(
        &self,
        send: &DeviceBuf,
        recv: &mut DeviceBuf,
        count_per_rank: usize,
    ) -> Result<(), BackendError> {
        let (s, r) = (self.elements(send), self.elements(recv));
        check_lengths(
            "all_gather",
            s,
            count_per_rank,
            r,
            count_per_rank * self.size(),
        )?;
        self.bind()?;
        // SAFETY: as in all_reduce_sum, with the lengths the call needs
        // checked above.
        unsafe {
            self.comm.all_gather(
                send.ptr(),
                recv.ptr(),
                count_per_rank,
                self.nccl_dtype,
                self.raw_stream(),
            )
        }
        .map_err(failed)
    }

    fn reduce_scatter_sum(
        &self,
        send: &DeviceBuf,
        recv: &mut DeviceBuf,
        count_per_rank: usize,
    ) -> Result<(), BackendError> {
        let (s, r) = (self.elements(send), self.elements(recv));
        check_lengths(
            "reduce_scatter_sum",
            s,
            count_per_rank * self.size(),
            r,
            count_per_rank,
        )?;
        self.bind()?;
        // SAFETY: as in all_reduce_sum, with the lengths the call needs
        // checked above.
        unsafe {
            self.comm.reduce_scatter_sum(
                send.ptr(),
                recv.ptr(),
                count_per_rank,
                self.nccl_dtype,
                self.raw_stream(),
            )
        }
        .map_err(failed)
    }

    fn send_recv(
        &self,
        peer: usize,
        send: &DeviceBuf,
        recv: &mut DeviceBuf,
        count: usize,
    ) -> Result<(), BackendError> {
        let (s, r) = (self.elements(send), self.elements(recv));
        check_lengths("send_recv", s, count, r, count)?;
        self.bind()?;
        // SAFETY: as in all_reduce_sum.
        unsafe {
            self.comm.send_recv(
                peer,
                send.ptr(),
                recv.ptr(),
                count,
                self.nccl_dtype,
                self.raw_stream(),
            )
        }
        .map_err(failed)
    }

    /// Polls an event recorded after the calls so far; aborts the
    /// communicator (and fails) when NCCL reports an error or `limit`
    /// passes.
    fn synchronize(&self) -> Result<(), BackendError> {
        self.bind()?;
        let ev = drv(
            "cuEventCreate",
            self.ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)),
        )?;
        drv("cuEventRecord", ev.record(&self.stream))?;
        let start = Instant::now();
        let mut nap = Duration::from_micros(10);
        loop {
            if drv("cuEventQuery", ev.try_is_complete())? {
                return Ok(());
            }
            if let Err(e) = self.comm.async_error() {
                self.comm.abort();
                return Err(BackendError::Failed(format!(
                    "{e}; the communicator was aborted"
                )));
            }
            if start.elapsed() >= self.limit {
                self.comm.abort();
                return Err(BackendError::Failed(format!(
                    "watchdog: an NCCL collective of a group of {} ranks did not complete within {} s (run.op_timeout_s); the communicator was aborted",
                    self.size(),
                    self.limit.as_secs_f64()
                )));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }
}
