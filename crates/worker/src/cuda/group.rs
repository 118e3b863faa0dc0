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

use cudarc::driver::safe::CudaContext;

use mfubench_core::config::Dtype;

use super::error::drv;
use super::nccl::{self, NcclComm};
use super::stream::{Event, Stream};
use super::{decode, encode, CudaError, DeviceBuf};
use crate::backend::BackendError;
use crate::group::{check_lengths, BufferIo, GroupComm};

/// How long [`GroupComm::synchronize`] polls without sleeping.
const SPIN: Duration = Duration::from_millis(20);

/// A group of ranks over an NCCL communicator.
pub struct NcclGroup {
    // Field order is drop order: the communicator before the stream and
    // the context.
    comm: NcclComm,
    stream: Stream,
    ctx: Arc<CudaContext>,
    dtype: Dtype,
    limit: Duration,
}

impl NcclGroup {
    /// A group over `comm`, enqueuing on `stream` of `ctx`, with elements
    /// of `dtype` (bf16, fp16, f32 or f64); `synchronize` waits at most
    /// `limit`.
    pub fn new(
        comm: NcclComm,
        ctx: Arc<CudaContext>,
        stream: Stream,
        dtype: Dtype,
        limit: Duration,
    ) -> Result<NcclGroup, BackendError> {
        nccl::nccl_dtype(dtype).ok_or_else(|| {
            BackendError::Unavailable(format!(
                "NCCL groups run bf16, fp16, f32 or f64, not {dtype}"
            ))
        })?;
        Ok(NcclGroup {
            comm,
            stream,
            ctx,
            dtype,
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
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Elements of the group's dtype a buffer holds.
    fn elements(&self, b: &DeviceBuf) -> usize {
        b.len() / self.dtype.size_bytes() as usize
    }

    fn bind(&self) -> Result<(), BackendError> {
        Ok(drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?)
    }
}

/// The group of every rank on its device: the device of its local rank
/// ([`super::select_ordinal`]), NCCL, a stream of its own, and a
/// communicator made with rank 0's unique id broadcast over MPI, under the
/// init watchdog. Collective over the world; every step is agreed, so a
/// machine without a GPU ends every rank with the no-driver message
/// (exit 2) before anything else.
pub fn open_world(
    rank: &crate::rank::Rank,
    dtype: Dtype,
    limit: Duration,
) -> Result<NcclGroup, crate::rank::Exit> {
    let opened = super::probe()
        .and_then(|n| super::select_ordinal(rank.local_rank, rank.ranks_on_host, n))
        .map_err(BackendError::Unavailable)
        .and_then(|ordinal| {
            let ctx = CudaContext::new(ordinal).map_err(|e| {
                BackendError::Unavailable(format!("cannot open CUDA device {ordinal}: {e}"))
            })?;
            let lib = Arc::new(nccl::NcclLib::open().map_err(CudaError::from)?);
            let stream = Stream::new_default(&ctx)?;
            Ok((ctx, lib, stream))
        });
    let (ctx, lib, stream) = rank.agree(opened)?;
    let id = if rank.is_root() {
        lib.unique_id()
            .map(|id| id.to_bytes())
            .map_err(|e| BackendError::from(CudaError::from(e)))
    } else {
        Ok(Vec::new())
    };
    let id = rank.agree(id)?;
    let id = crate::mpi_comm::broadcast_bytes(&rank.world, &id);
    let made = nccl::UniqueId::from_bytes(&id)
        .ok_or_else(|| BackendError::Failed("rank 0 could not make an NCCL unique id".into()))
        .and_then(|id| {
            drv("cuCtxSetCurrent", ctx.bind_to_thread())?;
            let watchdog = nccl::InitWatchdog::arm(
                format!(
                    "rank {} of {}: NCCL communicator init for the acceptance suite (ncclCommInitRank)",
                    rank.rank, rank.size
                ),
                limit.max(nccl::INIT_LIMIT),
                nccl::WATCHDOG_EXIT_CODE,
            );
            let comm = nccl::NcclComm::init_rank(lib, rank.size as usize, id, rank.rank as usize);
            drop(watchdog);
            let comm = comm.map_err(|e| BackendError::from(CudaError::from(e)))?;
            NcclGroup::new(comm, ctx, stream, dtype, limit)
        });
    rank.agree(made)
}

impl NcclGroup {
    /// NVML telemetry of the group's device, found by the UUID the CUDA
    /// driver reports for it; `Err` with the reason when NVML is missing.
    pub fn telemetry(&self) -> Result<super::telemetry::Telemetry, String> {
        let info =
            super::device::device_info(&self.ctx, self.ctx.ordinal()).map_err(|e| e.to_string())?;
        super::telemetry::Telemetry::open(super::telemetry::nvml_uuid(&info.uuid))
    }

    /// Declares a normal end (every rank is past its last collective on
    /// this group), so that dropping destroys the communicator instead of
    /// aborting it ([`nccl::teardown`]).
    pub fn mark_finished(&self) {
        self.comm.mark_finished();
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

    /// An NCCL without `ncclCommSplit` (before 2.18) cannot run this
    /// here: `Unavailable` (exit 2), naming the versions.
    fn split(&self, color: Option<u32>, key: u32) -> Result<Option<NcclGroup>, BackendError> {
        if let Some(why) = self.comm.lib().split_missing() {
            return Err(BackendError::Unavailable(why));
        }
        self.bind()?;
        // Collective and blocking, as the init: a rank that never comes
        // must not hang the others.
        let watchdog = nccl::InitWatchdog::arm(
            format!(
                "rank {} of a group of {}: NCCL communicator split (ncclCommSplit)",
                self.rank(),
                self.size()
            ),
            self.limit.max(nccl::INIT_LIMIT),
            nccl::WATCHDOG_EXIT_CODE,
        );
        let split = self.comm.split(color, key);
        drop(watchdog);
        Ok(split.map_err(failed)?.map(|comm| NcclGroup {
            comm,
            stream: self.stream.clone(),
            ctx: self.ctx.clone(),
            dtype: self.dtype,
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
        // The caller synchronises before dropping or reusing the buffers,
        // as the trait requires.
        Ok(self
            .comm
            .enqueue_all_reduce(send, recv, count, self.dtype, &self.stream)?)
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
        Ok(self
            .comm
            .enqueue_all_gather(send, recv, count_per_rank, self.dtype, &self.stream)?)
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
        Ok(self.comm.enqueue_reduce_scatter(
            send,
            recv,
            count_per_rank,
            self.dtype,
            &self.stream,
        )?)
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
        Ok(self
            .comm
            .enqueue_send_recv(peer, send, recv, count, self.dtype, &self.stream)?)
    }

    fn all_to_all_v(
        &self,
        send: &DeviceBuf,
        send_counts: &[usize],
        recv: &mut DeviceBuf,
        recv_counts: &[usize],
    ) -> Result<(), BackendError> {
        crate::group::check_all_to_all(
            self.size(),
            self.elements(send),
            send_counts,
            self.elements(recv),
            recv_counts,
        )?;
        Ok(self.comm.enqueue_all_to_all_v(
            send,
            send_counts,
            recv,
            recv_counts,
            self.dtype,
            &self.stream,
        )?)
    }

    /// Polls an event recorded after the calls so far; aborts the
    /// communicator (and fails) when NCCL reports an error or `limit`
    /// passes.
    fn synchronize(&self) -> Result<(), BackendError> {
        self.bind()?;
        let ev = Event::new_untimed(&self.ctx)?;
        ev.record(&self.stream)?;
        let start = Instant::now();
        let mut nap = Duration::from_micros(10);
        loop {
            if ev.is_complete()? {
                return Ok(());
            }
            // Spin for the first SPIN: the timing harness measures around
            // this call, and a sleep would add its granularity to a
            // collective of a few microseconds.
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
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

/// Device buffers of the group's dtype; reads and writes are synchronous
/// copies (the group's calls must have completed).
impl BufferIo for NcclGroup {
    fn alloc(&self, len: usize) -> Result<DeviceBuf, BackendError> {
        Ok(DeviceBuf::new(
            &self.ctx,
            len as u64 * self.dtype.size_bytes(),
        )?)
    }

    fn write(&self, buf: &mut DeviceBuf, at: usize, values: &[f64]) -> Result<(), BackendError> {
        check_lengths(
            "write",
            values.len(),
            0,
            self.elements(buf),
            at + values.len(),
        )?;
        let e = self.dtype.size_bytes() as usize;
        Ok(buf.upload(at * e, &encode(self.dtype, values))?)
    }

    fn poison(&self, buf: &mut DeviceBuf) -> Result<(), BackendError> {
        // 0xff… is NaN in bf16, fp16, f32 and f64.
        Ok(buf.memset(0xff)?)
    }

    fn read(&self, buf: &DeviceBuf, at: usize, len: usize) -> Result<Vec<f64>, BackendError> {
        check_lengths("read", 0, 0, self.elements(buf), at + len)?;
        let e = self.dtype.size_bytes() as usize;
        let mut host = vec![0u8; len * e];
        buf.download(at * e, &mut host)?;
        Ok(decode(self.dtype, &host))
    }
}
