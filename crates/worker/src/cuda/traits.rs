//! The trait impls of [`CudaBackend`]: [`Streams`] (the safe layer's
//! streams and events), [`Compute`] (the plan's GEMMs through
//! [`Matmul::enqueue`]), [`Communicator`] (NCCL collectives through
//! `NcclComm::enqueue_*` and their checks) and [`Backend`] (opening every
//! rank's backend in agreement, the device record, telemetry). No `unsafe`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::safe::CudaContext;
use rayon::prelude::*;

use mfubench_core::check;
use mfubench_core::config::Mode;
use mfubench_core::metrics::Collective;
use mfubench_core::plan::StepPlan;
use mfubench_core::result::TelemetrySample;

use super::backend::{memory_reserve, CudaBackend, Launch};
use super::buffers::{BucketBuffers, CollBuffers, GemmBuffers};
use super::device::device_info;
use super::dtype::{decode, encode};
use super::error::drv;
use super::gemm::{self, ColMajorGemm, Matmul};
use super::nccl;
use super::probe::{probe, select_ordinal};
use super::stream::Event;
use crate::backend::{Backend, BackendError, Communicator, Compute, StreamId, Streams};

impl Streams for CudaBackend {
    type Event = Event;

    fn new_event(&self) -> Result<Event, BackendError> {
        Ok(Event::new(&self.ctx)?)
    }

    fn record(&self, stream: StreamId, event: &Event) -> Result<(), BackendError> {
        Ok(event.record(self.stream(stream)?)?)
    }

    fn wait(&self, stream: StreamId, event: &Event) -> Result<(), BackendError> {
        Ok(self.stream(stream)?.wait(event)?)
    }

    fn sync_event(&self, event: &Event, timeout: Duration) -> Result<bool, BackendError> {
        drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?;
        // No abort on a timeout here: the schedule waits in two parts (a
        // notice after 1 s, then the rest of the op timeout), and aborting
        // at the first would kill every collective that waits > 1 s for a
        // slower peer (found by the simulated GPU: `slow=0.3` made the
        // serialized step's all-reduce return garbage). `give_up` aborts.
        self.poll(event, timeout)
    }

    fn give_up(&self) {
        // The watchdog will end the job: stop any collective that may be
        // spinning on a dead peer first.
        self.abort_comm();
    }

    fn elapsed_s(&self, from: &Event, to: &Event) -> Result<f64, BackendError> {
        Ok(from.elapsed_ms(to)? as f64 / 1e3)
    }
}

impl Compute for CudaBackend {
    fn allocate_gemms(&mut self, plan: &StepPlan) -> Result<(), BackendError> {
        let mem = self.mem;
        let ty = self.types;
        let bufs = GemmBuffers::allocate(&self.ctx, &mem, &ty, self.dtype)?;
        let scale_ptrs = ty.fp8.then(|| bufs.scale_ptrs());
        self.gemm_bufs = Some(bufs);

        let mut index: HashMap<(ColMajorGemm, bool), usize> = HashMap::new();
        let mut shapes = Vec::new();
        let mut ops = Vec::with_capacity(plan.ops.len());
        for op in &plan.ops {
            let fast = ty.fp8 && gemm::fp8_fast_accum(op);
            let mut launches = Vec::new();
            for (batch, count) in gemm::launches(op.batch, mem.batch_chunk) {
                let g = gemm::col_major(op, batch, ty.fp8);
                let bytes = gemm::launch_bytes(&g, &ty);
                let idx = match index.get(&(g, fast)) {
                    Some(i) => *i,
                    None => {
                        let mm =
                            Matmul::new(&self.handle, &g, &ty, fast, scale_ptrs, gemm::MAX_ALGOS)
                                .map_err(|e| {
                                BackendError::Unavailable(format!(
                                    "{} ({}×{}×{}, batch {batch}, {}): {e}",
                                    op.label(),
                                    op.m,
                                    op.n,
                                    op.k,
                                    self.dtype
                                ))
                            })?;
                        self.matmuls.push(mm);
                        shapes.push(g);
                        index.insert((g, fast), self.matmuls.len() - 1);
                        self.matmuls.len() - 1
                    }
                };
                launches.push(Launch {
                    matmul: idx,
                    count,
                    bytes,
                });
            }
            ops.push(launches);
        }
        self.ops = ops;
        for (i, g) in shapes.iter().enumerate() {
            let bytes = gemm::launch_bytes(g, &ty);
            self.autotune(i, g, bytes)?;
        }
        self.compute.synchronize()?;
        self.notes
            .insert("gemm_shapes".into(), shapes.len().to_string());
        Ok(())
    }

    fn gemm(&self, stream: StreamId, op: usize) -> Result<(), BackendError> {
        let (Some(bufs), Some(launches)) = (&self.gemm_bufs, self.ops.get(op)) else {
            return Err(BackendError::Failed(format!(
                "op {op} is not prepared (allocate_gemms first)"
            )));
        };
        let s = self.stream(stream)?;
        for l in launches {
            let mm = &self.matmuls[l.matmul];
            for _ in 0..l.count {
                // Each operand the next slot of its buffer (outputs of
                // different launches may overwrite each other, as
                // intended).
                let operands = self.next_operands(bufs, l.bytes)?;
                mm.enqueue(&self.handle, mm.chosen, &operands, s)
                    .map_err(|e| {
                        BackendError::Failed(format!("{}: {e}", self.plan.ops[op].label()))
                    })?;
            }
        }
        Ok(())
    }
}

impl Communicator for CudaBackend {
    fn allocate_buckets(&mut self, plan: &StepPlan) -> Result<(), BackendError> {
        let gd = self.grad_dtype;
        self.buckets = Some(BucketBuffers::allocate(
            &self.ctx,
            plan,
            gd,
            self.bucket_rank(),
        )?);
        let mut colls = Vec::with_capacity(plan.collectives.len());
        for (ci, c) in plan.collectives.iter().enumerate() {
            if c.bucket.is_some() {
                colls.push(None);
                continue;
            }
            let comm = &self.lane(crate::schedule::stream_of(c))?.1;
            let at = (comm.rank() as u64, comm.size() as u64);
            colls.push(Some(CollBuffers::allocate(&self.ctx, c, ci, at, gd)?));
        }
        self.colls = colls;
        Ok(())
    }

    fn collective(&self, stream: StreamId, index: usize) -> Result<(), BackendError> {
        let (Some(Some(b)), Some(c)) = (self.colls.get(index), self.plan.collectives.get(index))
        else {
            return Err(BackendError::Failed(format!(
                "collective {index} is not prepared (allocate_buckets first)"
            )));
        };
        // The communicator of the stream it runs on.
        let comm = &self.lane(stream)?.1;
        let s = self.stream(stream)?;
        let (send, recv, gd) = (&b.send, &b.recv, self.grad_dtype);
        // Element counts from the same plan entry as the buffers: shard and
        // shard·size for the all-gather, the reverse for the
        // reduce-scatter, the whole buffer twice for the all-reduce.
        let r = match b.kind {
            Collective::AllGather => comm.enqueue_all_gather(send, recv, b.shard as usize, gd, s),
            Collective::ReduceScatter => {
                comm.enqueue_reduce_scatter(send, recv, b.shard as usize, gd, s)
            }
            Collective::AllReduce => {
                comm.enqueue_all_reduce(send, recv, b.recv_elements as usize, gd, s)
            }
            // The counts are symmetric: what goes to p comes from p.
            Collective::AllToAll => {
                let counts: Vec<usize> = b.counts.iter().map(|&x| x as usize).collect();
                comm.enqueue_all_to_all_v(send, &counts, recv, &counts, gd, s)
            }
            Collective::SendRecv => {
                return Err(BackendError::Failed(
                    "send/recv is not a step collective".into(),
                ))
            }
        };
        r.map_err(|e| BackendError::Failed(format!("{}: {e}", c.label())))
    }

    fn all_reduce(&self, stream: StreamId, bucket: usize) -> Result<(), BackendError> {
        let (Some(comm), Some(b)) = (self.bucket_comm(), &self.buckets) else {
            return Err(BackendError::Failed(
                "all-reduce before the NCCL communicator and buckets exist".into(),
            ));
        };
        let (Some(s), Some(r)) = (b.send.get(bucket), b.recv.get(bucket)) else {
            return Err(BackendError::Failed(format!(
                "bucket {bucket} is not in the plan"
            )));
        };
        comm.enqueue_all_reduce(
            s,
            r,
            b.elements[bucket] as usize,
            self.grad_dtype,
            self.stream(stream)?,
        )
        .map_err(|e| BackendError::Failed(format!("bucket {bucket}: {e}")))
    }

    fn prepare_check(&self) -> Result<(), BackendError> {
        if let Some(b) = &self.buckets {
            for r in &b.recv {
                // 0xff… is NaN in bf16, fp16 and f32.
                r.memset(0xff)?;
            }
        }
        for c in self.colls.iter().flatten() {
            c.recv.memset(0xff)?;
        }
        Ok(())
    }

    fn count_wrong(&self) -> Result<u64, BackendError> {
        let gb = self.grad_dtype.size_bytes() as usize;
        let gd = self.grad_dtype;
        let mut wrong = 0;
        for c in self.colls.iter().flatten() {
            let mut host = vec![0u8; c.recv_elements as usize * gb];
            c.recv.download(0, &mut host)?;
            let values = decode(gd, &host);
            wrong += match c.kind {
                Collective::AllToAll => {
                    check::count_wrong_all_to_all(values, &c.counts, c.rank, c.id, 0)
                }
                _ => check::count_wrong_result(c.kind, values, c.size, c.rank, c.shard, c.id, 0),
            };
        }
        let Some(b) = &self.buckets else {
            return Ok(wrong);
        };
        let (_, ranks) = self.bucket_rank();
        for (bi, r) in b.recv.iter().enumerate() {
            let mut host = vec![0u8; b.elements[bi] as usize * gb];
            r.download(0, &mut host)?;
            const CHUNK: usize = 1 << 20;
            wrong += host
                .par_chunks(CHUNK * gb)
                .enumerate()
                .map(|(c, bytes)| {
                    check::count_wrong(decode(gd, bytes), ranks, bi as u64, (c * CHUNK) as u64)
                })
                .sum::<u64>();
        }
        Ok(wrong)
    }

    fn corrupt_one_element(&self) -> Result<(), BackendError> {
        let Some(b) = &self.buckets else {
            return Ok(());
        };
        let gb = self.grad_dtype.size_bytes() as usize;
        if let Some((bi, r)) = b.recv.iter().enumerate().find(|(i, _)| b.elements[*i] > 0) {
            let at = (b.elements[bi] as usize / 2) * gb;
            let mut x = vec![0u8; gb];
            r.download(at, &mut x)?;
            let v = decode(self.grad_dtype, &x)[0] + 1.0;
            r.upload(at, &encode(self.grad_dtype, &[v]))?;
        }
        Ok(())
    }
}

impl Backend for CudaBackend {
    /// Device = local rank (respecting `CUDA_VISIBLE_DEVICES`); opens the
    /// device and libraries on every rank (agreed), then the NCCL
    /// communicator with rank 0's unique id broadcast over MPI (agreed) and
    /// the groups' communicators split from it (agreed), then sizes the
    /// buffers with all of NCCL's memory already taken, and runs the GEMM
    /// spot check when `run.check` is on.
    fn open(
        config: &mfubench_core::config::Config,
        rank: &crate::rank::Rank,
        plan: Arc<StepPlan>,
    ) -> Result<Self, crate::rank::Exit> {
        let opened = probe()
            .and_then(|n| select_ordinal(rank.local_rank, rank.ranks_on_host, n))
            .map_err(BackendError::Unavailable)
            .and_then(|ordinal| {
                CudaBackend::open(
                    ordinal,
                    plan,
                    config.run.dtype,
                    config.run.grad_dtype,
                    rank.rank,
                    rank.size,
                )
            });
        let mut backend = rank.agree(opened)?;
        let id = if rank.is_root() {
            backend.nccl_unique_id()
        } else {
            Ok(Vec::new())
        };
        let id = rank.agree(id)?;
        let id = crate::mpi_comm::broadcast_bytes(&rank.world, &id);
        // NCCL init waits for every rank: under a watchdog at least as
        // patient as the ops' (a rank that died before its init must not
        // hang the others).
        let limit = std::time::Duration::from_secs_f64(config.run.op_timeout_s.max(300.0));
        let init = backend.init_comm_within(&id, limit, nccl::WATCHDOG_EXIT_CODE);
        rank.agree(init)?;
        rank.agree(backend.init_groups(rank.rank))?;
        // Sized again once every communicator exists, the groups' splits
        // included: each holds its own NCCL buffers (GBs with NVLS), which
        // the sizing in `CudaBackend::open` could not see. With
        // NCCL_RUNTIME_CONNECT=0 ([`nccl_connect_at_init`]) NCCL allocates
        // them at init, not at the first collective, so they show in
        // cuMemGetInfo now.
        rank.agree(backend.replan_memory())?;
        if config.run.check {
            for (dtype, res) in backend.spot_check() {
                let line = match res {
                    Ok(c) => {
                        if !c.passed() {
                            rank.error(format!("GEMM spot check {dtype}: {}", c.summary()));
                        }
                        c.summary()
                    }
                    Err(e) => {
                        rank.error(format!("GEMM spot check {dtype}: {e}"));
                        format!("error: {e}")
                    }
                };
                backend.notes.insert(format!("gemm_check_{dtype}"), line);
            }
        }
        Ok(backend)
    }

    /// The plan's buffers must fit in the device memory free now (which
    /// excludes what backends opened before took), sized as `open` sizes
    /// them. A device or library that cannot be opened is left for `open`
    /// to report.
    fn fits(
        config: &mfubench_core::config::Config,
        rank: &crate::rank::Rank,
        plan: &StepPlan,
    ) -> Result<(), String> {
        let Some(types) = gemm::gemm_types(config.run.dtype) else {
            return Ok(());
        };
        let Ok(ordinal) =
            probe().and_then(|n| select_ordinal(rank.local_rank, rank.ranks_on_host, n))
        else {
            return Ok(());
        };
        let Ok(ctx) = CudaContext::new(ordinal) else {
            return Ok(());
        };
        let (Ok(info), Ok(()), Ok((free, total))) = (
            device_info(&ctx, ordinal),
            ctx.bind_to_thread(),
            ctx.mem_get_info(),
        ) else {
            return Ok(());
        };
        gemm::plan_memory(
            plan,
            &types,
            config.run.grad_dtype.size_bytes(),
            free as u64,
            memory_reserve(total as u64),
            gemm::rotation_bytes(info.l2_bytes),
        )
        .map(|_| ())
    }

    fn device(&self) -> crate::backend::DeviceRecord {
        self.device_record()
    }

    fn finish(&self) {
        self.finish_comm();
    }

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn telemetry(&self, mode: Mode, at: &str) -> Option<TelemetrySample> {
        self.telemetry.as_ref().map(|t| t.sample(mode, at))
    }

    fn sdc_probe(&self, seed: u64, count: u32) -> Result<crate::backend::SdcProbe, BackendError> {
        CudaBackend::sdc_probe(self, seed, count)
    }

    fn window_readings(&mut self) -> mfubench_core::soak::WindowTelemetry {
        self.soak_readings()
    }
}
