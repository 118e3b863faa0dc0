//! The backend's device buffers: the GEMMs' operands (non-zero
//! pseudo-random data, rotated through so that no GEMM reads from L2) and
//! the collectives' send and receive buffers with the check pattern
//! (`mfubench_core::check`), and where each launch's operands lie.

use std::sync::Arc;

use cudarc::driver::safe::CudaContext;
use rayon::prelude::*;

use mfubench_core::check;
use mfubench_core::config::Dtype;
use mfubench_core::metrics::Collective;
use mfubench_core::plan::{CollectiveOp, StepPlan};

use super::buf::DeviceBuf;
use super::dtype::{encode, random_values};
use super::error::CudaError;
use super::gemm::{self, GemmTypes, MemoryPlan};
use super::launch::Operands;

/// Device buffers of the GEMMs.
pub(super) struct GemmBuffers {
    pub(super) a: DeviceBuf,
    pub(super) b: DeviceBuf,
    pub(super) c: DeviceBuf,
    pub(super) workspace: DeviceBuf,
    /// FP8 dequantisation factors of A and B (f32 each).
    pub(super) scales: DeviceBuf,
}

impl GemmBuffers {
    /// The buffers `mem` sizes, A and B filled with non-zero pseudo-random
    /// values of the input dtype, C zeroed, the FP8 scales 1.
    pub(super) fn allocate(
        ctx: &Arc<CudaContext>,
        mem: &MemoryPlan,
        ty: &GemmTypes,
        dtype: Dtype,
    ) -> Result<GemmBuffers, CudaError> {
        let bufs = GemmBuffers {
            a: DeviceBuf::new(ctx, mem.a_bytes)?,
            b: DeviceBuf::new(ctx, mem.b_bytes)?,
            c: DeviceBuf::new(ctx, mem.c_bytes)?,
            workspace: DeviceBuf::new(ctx, gemm::WORKSPACE_BYTES)?,
            scales: DeviceBuf::new(ctx, 8)?,
        };
        // Non-zero pseudo-random operands: a 16 MiB pattern, repeated.
        let pattern_len = |bytes: u64| (bytes.min(16 << 20) / ty.in_bytes) as usize;
        let input_dtype = if ty.fp8 { Dtype::Fp8 } else { dtype };
        bufs.a.fill_repeating(&encode(
            input_dtype,
            &random_values(0x9e37_79b9, pattern_len(mem.a_bytes)),
        ))?;
        bufs.b.fill_repeating(&encode(
            input_dtype,
            &random_values(0xd1b5_4a32, pattern_len(mem.b_bytes)),
        ))?;
        bufs.c.memset(0)?;
        bufs.scales.upload(
            0,
            &[1.0f32, 1.0f32]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect::<Vec<u8>>(),
        )?;
        Ok(bufs)
    }

    /// The FP8 scale pointers a matmul's descriptor takes (A's, B's).
    pub(super) fn scale_ptrs(&self) -> (u64, u64) {
        (self.scales.ptr(), self.scales.ptr() + 4)
    }

    /// The operands of the next launch of `bytes` ([`gemm::launch_bytes`]):
    /// each the next slot of its buffer's ring after `cursors` (first
    /// operand in B, second in A, output in C), which advance
    /// ([`gemm::next_operand_offset`]), so that no GEMM finds its inputs in
    /// L2. `None` when a slot would not fit its buffer (never, for buffers
    /// sized by `gemm::plan_memory` for the launch).
    pub(super) fn next_operands(
        &self,
        cursors: &mut [u64; 3],
        bytes: [u64; 3],
    ) -> Option<Operands<'_>> {
        let mut slices = [&self.b, &self.a, &self.c]
            .into_iter()
            .enumerate()
            .map(|(i, buf)| {
                let (at, next) = gemm::next_operand_offset(cursors[i], bytes[i], buf.len() as u64);
                cursors[i] = next;
                buf.slice(at, bytes[i])
            });
        let (first, second, out) = (slices.next()??, slices.next()??, slices.next()??);
        Some(Operands {
            first,
            second,
            out,
            workspace: &self.workspace,
            scales: Some(&self.scales),
        })
    }
}

/// Bucket buffers.
pub(super) struct BucketBuffers {
    pub(super) send: Vec<DeviceBuf>,
    pub(super) recv: Vec<DeviceBuf>,
    pub(super) elements: Vec<u64>,
}

impl BucketBuffers {
    /// Send buffers of the plan's buckets filled with the check pattern of
    /// this rank (`rank` of `ranks` in the buckets' communicator), receive
    /// buffers poisoned.
    pub(super) fn allocate(
        ctx: &Arc<CudaContext>,
        plan: &StepPlan,
        gd: Dtype,
        (rank, ranks): (u64, u64),
    ) -> Result<BucketBuffers, CudaError> {
        let mut send = Vec::with_capacity(plan.buckets.len());
        let mut recv = Vec::with_capacity(plan.buckets.len());
        let mut elements = Vec::with_capacity(plan.buckets.len());
        let gb = gd.size_bytes();
        for b in &plan.buckets {
            let s = DeviceBuf::new(ctx, b.elements * gb)?;
            let r = DeviceBuf::new(ctx, b.elements * gb)?;
            let bi = b.index as u64;
            let host = encode_with(gd, b.elements, |i| check::pattern(ranks, rank, bi, i));
            s.upload(0, &host)?;
            r.memset(0xff)?;
            send.push(s);
            recv.push(r);
            elements.push(b.elements);
        }
        Ok(BucketBuffers {
            send,
            recv,
            elements,
        })
    }
}

/// Device buffers of one collective other than a bucket, with what its
/// check needs (see the CPU backend's, which this mirrors).
pub(super) struct CollBuffers {
    pub(super) kind: Collective,
    pub(super) rank: u64,
    pub(super) size: u64,
    pub(super) shard: u64,
    pub(super) id: u64,
    /// All-to-all: elements sent to (and received from) each rank.
    pub(super) counts: Vec<u64>,
    pub(super) send: DeviceBuf,
    pub(super) recv: DeviceBuf,
    pub(super) recv_elements: u64,
}

impl CollBuffers {
    /// The buffers of collective `ci` of the plan, run by `rank` of a
    /// communicator of `size`: the send buffer holds its check values, the
    /// receive buffer is poisoned.
    pub(super) fn allocate(
        ctx: &Arc<CudaContext>,
        c: &CollectiveOp,
        ci: usize,
        (rank, size): (u64, u64),
        gd: Dtype,
    ) -> Result<CollBuffers, CudaError> {
        let gb = gd.size_bytes();
        let id = (1u64 << 32) + ci as u64;
        let (full, shard) = (c.elements, c.shard_elements());
        let (send_n, recv_n) = match c.kind {
            Collective::AllGather => (shard, full),
            Collective::ReduceScatter => (full, shard),
            _ => (full, full),
        };
        let send = DeviceBuf::new(ctx, send_n * gb)?;
        let recv = DeviceBuf::new(ctx, recv_n * gb)?;
        let counts = c.peer_counts(rank);
        let host = encode_with(gd, send_n, |i| match c.kind {
            Collective::AllToAll => check::all_to_all_send_value(&counts, rank, id, i),
            _ => check::send_value(c.kind, size, rank, id, i),
        });
        send.upload(0, &host)?;
        recv.memset(0xff)?;
        Ok(CollBuffers {
            kind: c.kind,
            rank,
            size,
            shard,
            id,
            counts,
            send,
            recv,
            recv_elements: recv_n,
        })
    }
}

/// Encodes `n` values of `f` in the dtype, in parallel chunks of 1 Mi.
fn encode_with(dtype: Dtype, n: u64, f: impl Fn(u64) -> f64 + Sync) -> Vec<u8> {
    const CHUNK: u64 = 1 << 20;
    (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| {
            let lo = c * CHUNK;
            let hi = (lo + CHUNK).min(n);
            encode(dtype, &(lo..hi).map(&f).collect::<Vec<f64>>())
        })
        .collect()
}
