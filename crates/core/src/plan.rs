//! The step plan: the ordered GEMMs of one data-parallel training step and
//! its gradient buckets.
//!
//! Convention (row-major, as cuBLAS-free code reads it): every op computes
//! `C[M×N] = op(A)[M×K] · op(B)[K×N]`, `batch` times, where `op(X)` is `Xᵀ`
//! when the matching `trans_*` flag is set. A linear layer `Y = X·W` with
//! `X: T×k`, `W: k×n` gives
//! - forward: `M = T, N = n, K = k`;
//! - dgrad `dX = dY·Wᵀ`: `M = T, N = k, K = n`, `trans_b`;
//! - wgrad `dW = Xᵀ·dY`: `M = k, N = n, K = T`, `trans_a`.
//!
//! Attention runs per (sequence, query head), batched: scores `S = Q·Kᵀ`
//! (`M = N = s, K = head_dim`) and `O = P·V` (`M = s, N = head_dim, K = s`);
//! each has two backward GEMMs, one per input. Attention is executed and
//! counted in full: no halving for the causal mask (as in PaLM's MFU).
//!
//! Backward runs in reverse layer order; inside a layer, in reverse forward
//! order, each linear's dgrad before its wgrad. Weight gradients fill
//! buckets of `bucket_mb` MiB in the order they are produced: a gradient joins
//! the open bucket, and the bucket closes once it holds `bucket_mb` or more
//! (PyTorch DDP's rule). A bucket is ready when its last wgrad has run.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::config::{Config, ModelShape};
use crate::metrics::{busbw_factor, Collective};
use crate::parallel::{DataParallel, Group, Layout};

/// Which GEMM of the transformer block an op belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum GemmKind {
    /// Fused Q, K, V projection.
    Qkv,
    /// Attention scores Q·Kᵀ.
    AttnScores,
    /// Attention-weighted values P·V.
    AttnValues,
    /// Attention output projection.
    OutProj,
    /// FFN up projection.
    FfnUp,
    /// FFN gate projection (gated MLP only).
    FfnGate,
    /// FFN down projection.
    FfnDown,
    /// MoE router (token → expert scores).
    Router,
    /// Up projection of one routed expert.
    ExpertUp,
    /// Gate projection of one routed expert (gated MLP only).
    ExpertGate,
    /// Down projection of one routed expert.
    ExpertDown,
    /// LM head (logits).
    LmHead,
}

impl GemmKind {
    /// All kinds, in forward order.
    pub const ALL: [GemmKind; 12] = [
        GemmKind::Qkv,
        GemmKind::AttnScores,
        GemmKind::AttnValues,
        GemmKind::OutProj,
        GemmKind::FfnUp,
        GemmKind::FfnGate,
        GemmKind::FfnDown,
        GemmKind::Router,
        GemmKind::ExpertUp,
        GemmKind::ExpertGate,
        GemmKind::ExpertDown,
        GemmKind::LmHead,
    ];

    /// Short name used in op labels and tables.
    pub fn name(self) -> &'static str {
        match self {
            GemmKind::Qkv => "qkv",
            GemmKind::AttnScores => "attn_scores",
            GemmKind::AttnValues => "attn_values",
            GemmKind::OutProj => "out_proj",
            GemmKind::FfnUp => "ffn_up",
            GemmKind::FfnGate => "ffn_gate",
            GemmKind::FfnDown => "ffn_down",
            GemmKind::Router => "router",
            GemmKind::ExpertUp => "expert_up",
            GemmKind::ExpertGate => "expert_gate",
            GemmKind::ExpertDown => "expert_down",
            GemmKind::LmHead => "lm_head",
        }
    }

    /// Whether the op multiplies by a trained weight (and so has a wgrad).
    pub fn has_weight(self) -> bool {
        !matches!(self, GemmKind::AttnScores | GemmKind::AttnValues)
    }
}

impl fmt::Display for GemmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which part of the step an op belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// Forward pass.
    Forward,
    /// Forward GEMM re-run before backward (activation checkpointing); counted
    /// in HFU only.
    Recompute,
    /// Gradient with respect to the left operand (activations).
    Dgrad,
    /// Gradient with respect to the right operand: the weight for linear
    /// layers, K or V for attention.
    Wgrad,
}

impl Pass {
    /// Short name used in labels.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "fwd",
            Pass::Recompute => "recompute",
            Pass::Dgrad => "dgrad",
            Pass::Wgrad => "wgrad",
        }
    }

    /// Whether the op belongs to the backward pass.
    pub fn is_backward(self) -> bool {
        matches!(self, Pass::Dgrad | Pass::Wgrad)
    }
}

/// A linear layer of a block on this rank: `Y[m×n] = X[m×k] · W[k×n]`.
#[derive(Debug, Clone, Copy)]
struct Linear {
    kind: GemmKind,
    k: u64,
    n: u64,
    /// Tokens through it (fewer for a routed expert).
    m: u64,
    expert: Option<u32>,
    chunk: Option<u32>,
}

/// One GEMM of the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GemmOp {
    /// Block index (0-based); `None` for the LM head.
    pub layer: Option<u32>,
    /// Which GEMM of the block.
    pub kind: GemmKind,
    /// Forward, recompute, dgrad or wgrad.
    pub pass: Pass,
    /// Rows of C.
    pub m: u64,
    /// Columns of C.
    pub n: u64,
    /// Inner dimension.
    pub k: u64,
    /// Independent GEMMs of this shape (sequences × heads for attention).
    pub batch: u64,
    /// A is read transposed.
    pub trans_a: bool,
    /// B is read transposed.
    pub trans_b: bool,
    /// For weight gradients: the bucket the gradient lands in.
    pub bucket: Option<usize>,
    /// The routed expert of an expert GEMM (its `m` is the tokens routed
    /// to it); under expert parallelism its index among this rank's
    /// experts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert: Option<u32>,
    /// The token chunk of an expert GEMM when `model.moe_chunks` > 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u32>,
}

impl GemmOp {
    /// 2·M·N·K·batch.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }

    /// Whether this is a weight gradient.
    pub fn is_weight_grad(&self) -> bool {
        self.pass == Pass::Wgrad && self.kind.has_weight()
    }

    /// Whether this weight gradient completes its weight's gradient (it
    /// fills a bucket): every weight gradient but those of an expert's
    /// later-produced token chunks, which accumulate into the gradient of
    /// chunk 0 (produced last, as backward runs the chunks in reverse).
    pub fn completes_gradient(&self) -> bool {
        self.is_weight_grad() && self.chunk.is_none_or(|c| c == 0)
    }

    /// A stable label such as `L1.ffn_down.wgrad`, `lm_head.fwd` or, for a
    /// routed expert in token chunk 2, `L1.c2.e3.expert_up.fwd`.
    pub fn label(&self) -> String {
        let chunk = self.chunk.map(|c| format!("c{c}.")).unwrap_or_default();
        let expert = self.expert.map(|e| format!("e{e}.")).unwrap_or_default();
        match self.layer {
            Some(l) => format!("L{l}.{chunk}{expert}{}.{}", self.kind, self.pass.name()),
            None => format!("{chunk}{expert}{}.{}", self.kind, self.pass.name()),
        }
    }

    /// The op's definition in plain loops over row-major `f64` operands
    /// (every batch entry): the known answer backends are tested against.
    pub fn reference(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        let (m, n, k) = (self.m as usize, self.n as usize, self.k as usize);
        let mut c = vec![0.0; m * n * self.batch as usize];
        for e in 0..self.batch as usize {
            let (a, b) = (&a[e * m * k..], &b[e * k * n..]);
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for p in 0..k {
                        let av = if self.trans_a {
                            a[p * m + i]
                        } else {
                            a[i * k + p]
                        };
                        let bv = if self.trans_b {
                            b[j * k + p]
                        } else {
                            b[p * n + j]
                        };
                        s += av * bv;
                    }
                    c[e * m * n + i * n + j] = s;
                }
            }
        }
        c
    }

    /// Elements of A, B and C of one batch entry.
    pub fn operand_elements(&self) -> (u64, u64, u64) {
        (self.m * self.k, self.k * self.n, self.m * self.n)
    }
}

/// A gradient bucket: all-reduced as one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Position in production (and all-reduce) order.
    pub index: usize,
    /// Gradient elements.
    pub elements: u64,
    /// Bytes at the gradient dtype.
    pub bytes: u64,
    /// Indices (into [`StepPlan::ops`]) of the wgrads whose gradients it holds.
    pub grads: Vec<usize>,
    /// Index of the op after which the bucket is ready (its last wgrad).
    pub ready_after: usize,
}

/// Why a collective runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// DDP: one gradient bucket's all-reduce.
    GradBucket,
    /// FSDP/HSDP: all-gather of a layer's parameter shards before its forward.
    ParamGatherForward,
    /// FSDP/HSDP: all-gather of a layer's parameter shards before its
    /// backward (they were freed after the forward).
    ParamGatherBackward,
    /// FSDP/HSDP: reduce-scatter of a layer's gradients after its backward.
    GradReduceScatter,
    /// HSDP: all-reduce of a layer's gradient shard across nodes.
    GradShardAllReduce,
    /// TP: all-reduce of a row-parallel output (forward or recompute).
    TpForward,
    /// TP: all-reduce of a column-parallel input gradient (backward).
    TpBackward,
    /// EP: all-to-all of a token chunk to its experts (forward).
    DispatchForward,
    /// EP: the dispatch again, when the forward is recomputed.
    DispatchRecompute,
    /// EP: all-to-all of the experts' input gradients back to the tokens'
    /// ranks (the dispatch's backward, after the chunk's expert backward).
    DispatchBackward,
    /// EP: all-to-all of the experts' outputs back to the tokens' ranks
    /// (forward).
    CombineForward,
    /// EP: the combine again, when the forward is recomputed.
    CombineRecompute,
    /// EP: all-to-all of the output gradients to the experts (the
    /// combine's backward, before the chunk's expert backward).
    CombineBackward,
    /// EP: all-reduce of a block's expert gradients over the ranks that
    /// hold the same experts.
    ExpertGrad,
}

impl Purpose {
    /// Short name used in labels.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::GradBucket => "grad",
            Purpose::ParamGatherForward => "param.fwd",
            Purpose::ParamGatherBackward => "param.bwd",
            Purpose::GradReduceScatter => "grad",
            Purpose::GradShardAllReduce => "grad_shard",
            Purpose::TpForward => "act.fwd",
            Purpose::TpBackward => "act.bwd",
            Purpose::DispatchForward => "dispatch.fwd",
            Purpose::DispatchRecompute => "dispatch.recompute",
            Purpose::DispatchBackward => "dispatch.bwd",
            Purpose::CombineForward => "combine.fwd",
            Purpose::CombineRecompute => "combine.recompute",
            Purpose::CombineBackward => "combine.bwd",
            Purpose::ExpertGrad => "expert_grad",
        }
    }
}

/// One collective of the step, beside the GEMMs.
///
/// Where it runs is given by three GEMM positions (indices into
/// [`StepPlan::ops`]; `None` = the step's start for the first two, its end
/// for the third) and an optional collective it follows:
/// - `ready_after`: the GEMM after which overlapped mode issues it (its data
///   exists then; for FSDP's all-gathers, the prefetch point);
/// - `serialized_after`: the GEMM after which serialized mode issues it,
///   with the compute stream blocked until it ends;
/// - `needed_by`: the GEMM that consumes its result (the compute stream
///   waits for it before that GEMM, in every mode that runs both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectiveOp {
    /// All-reduce, all-gather or reduce-scatter.
    pub kind: Collective,
    /// The ranks it runs on.
    pub group: Group,
    /// Ranks in that group.
    pub group_size: u64,
    /// Why it runs.
    pub purpose: Purpose,
    /// Block index; `None` for the LM head or a DDP bucket.
    pub layer: Option<u32>,
    /// Elements of the whole buffer (nccl-tests' "size"): the all-reduced
    /// buffer, the all-gather's output, the reduce-scatter's input; a
    /// multiple of `group_size` for the last two.
    pub elements: u64,
    /// `elements` × bytes per element.
    pub bytes: u64,
    /// DDP: the bucket it all-reduces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<usize>,
    /// GEMM after which overlapped mode issues it.
    pub ready_after: Option<usize>,
    /// GEMM after which serialized mode issues it (blocking).
    pub serialized_after: Option<usize>,
    /// GEMM that waits for its result; `None`: the step's end.
    pub needed_by: Option<usize>,
    /// TP: the GEMM whose output (forward) or input gradient (backward) it
    /// sums, e.g. `out_proj`; it makes the label unique within a layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<GemmKind>,
    /// Collective (index into [`StepPlan::collectives`]) whose result it
    /// reduces further (HSDP: the reduce-scatter before the shard's
    /// all-reduce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_collective: Option<usize>,
    /// EP all-to-all: the token chunk it moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u32>,
    /// EP all-to-all: elements exchanged between the ranks at positions
    /// `a` and `b` of the group, each way: `exchange[(a + b) mod
    /// group_size]` (the same on every rank; its sum is `elements`). The
    /// routing is skewed, so the counts are uneven (all-to-all-v); see
    /// [`StepPlan::build_with_layout`] for why they are symmetric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchange: Vec<u64>,
}

impl CollectiveOp {
    /// A stable label: `allreduce.b3` for a DDP bucket, else e.g.
    /// `L1.allgather.param.fwd` or `lm_head.reducescatter.grad`.
    pub fn label(&self) -> String {
        if let Some(b) = self.bucket {
            return format!("allreduce.b{b}");
        }
        let kind = match self.kind {
            Collective::AllReduce => "allreduce",
            Collective::AllGather => "allgather",
            Collective::ReduceScatter => "reducescatter",
            Collective::SendRecv => "sendrecv",
            Collective::AllToAll => "alltoall",
        };
        let at = match self.layer {
            Some(l) => format!("L{l}"),
            None => "lm_head".to_string(),
        };
        let chunk = self.chunk.map(|c| format!(".c{c}")).unwrap_or_default();
        match self.site {
            Some(site) => format!("{at}.{kind}.{}.{site}{chunk}", self.purpose.name()),
            None => format!("{at}.{kind}.{}{chunk}", self.purpose.name()),
        }
    }

    /// EP all-to-all: elements this rank (at `position` in its group)
    /// sends to, and receives from, each rank of the group, by position.
    pub fn peer_counts(&self, position: u64) -> Vec<u64> {
        let n = self.exchange.len() as u64;
        (0..n)
            .map(|p| self.exchange[((position + p) % n) as usize])
            .collect()
    }

    /// Bytes each rank sends (and receives) over the wire in a bandwidth-
    /// optimal algorithm: `bytes` × the busbw factor (all-reduce 2(n−1)/n,
    /// all-gather and reduce-scatter (n−1)/n).
    pub fn wire_bytes_per_rank(&self) -> f64 {
        self.bytes as f64 * busbw_factor(self.kind, self.group_size)
    }

    /// Elements of one rank's shard (all-gather input, reduce-scatter output).
    pub fn shard_elements(&self) -> u64 {
        match self.kind {
            Collective::AllGather | Collective::ReduceScatter => {
                self.elements / self.group_size.max(1)
            }
            _ => self.elements,
        }
    }

    /// Where `mode` issues it: after this GEMM (None: at the step's start).
    pub fn issue_after(&self, mode: crate::config::Mode) -> Option<usize> {
        match mode {
            crate::config::Mode::Serialized => self.serialized_after,
            _ => self.ready_after,
        }
    }
}

/// The whole step: ops in execution order and the buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    /// Blocks in the step.
    pub layers: u64,
    /// Tokens per rank per step (b·s).
    pub tokens: u64,
    /// GEMMs in execution order on the compute stream.
    pub ops: Vec<GemmOp>,
    /// Buckets in all-reduce order (DDP only).
    pub buckets: Vec<Bucket>,
    /// Bytes per gradient element (and per element of every collective).
    pub grad_bytes: u64,
    /// Every collective of the step in production order: DDP's bucket
    /// all-reduces, FSDP's all-gathers and reduce-scatters, HSDP's shard
    /// all-reduces, TP's activation all-reduces.
    #[serde(default)]
    pub collectives: Vec<CollectiveOp>,
    /// The parallel layout the plan was built for.
    #[serde(default = "Layout::single")]
    pub layout: Layout,
}

/// How to build a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanParams {
    /// Blocks to include.
    pub layers: u64,
    /// Sequences per step.
    pub micro_batch: u64,
    /// Re-run forward GEMMs before each block's backward.
    pub recompute: bool,
    /// Bucket capacity in bytes.
    pub bucket_bytes: u64,
    /// Bytes per gradient element.
    pub grad_bytes: u64,
}

impl PlanParams {
    /// The benchmark step of a config (its `run.layers` blocks).
    pub fn benchmark(config: &Config) -> PlanParams {
        PlanParams {
            layers: config.run.layers,
            micro_batch: config.run.micro_batch,
            recompute: config.run.recompute,
            bucket_bytes: (config.run.bucket_mb * 1024.0 * 1024.0).max(1.0) as u64,
            grad_bytes: config.run.grad_dtype.size_bytes(),
        }
    }

    /// The whole model, one sequence, no recomputation: what per-token FLOP
    /// figures are computed from.
    pub fn whole_model(model: &ModelShape) -> PlanParams {
        PlanParams {
            layers: model.layers,
            micro_batch: 1,
            recompute: false,
            bucket_bytes: 25 << 20,
            grad_bytes: 2,
        }
    }
}

/// The collectives of a plan, in production order (see
/// [`StepPlan::build_with_layout`]).
fn collectives(
    ops: &[GemmOp],
    buckets: &[Bucket],
    units: &[Unit],
    points: Points<'_>,
    activation_elements: u64,
    p: PlanParams,
    layout: &Layout,
) -> Vec<CollectiveOp> {
    let last = ops.len().checked_sub(1);
    let next = |i: usize| (i + 1 < ops.len()).then_some(i + 1);
    let op = |kind, group, purpose, layer, elements: u64, at: Option<usize>| CollectiveOp {
        kind,
        group,
        group_size: layout.group_size(group),
        purpose,
        layer,
        elements,
        bytes: elements * p.grad_bytes,
        bucket: None,
        ready_after: at,
        serialized_after: at,
        needed_by: at.map_or(Some(0), next).filter(|_| !ops.is_empty()),
        site: None,
        after_collective: None,
        chunk: None,
        exchange: Vec::new(),
    };
    // (production position, collective): sorted by position at the end
    // (a stable sort: ties keep the order they were listed in).
    let mut out: Vec<(f64, CollectiveOp)> = Vec::new();
    let Points {
        tp: tp_points,
        moe: moe_points,
    } = points;
    for m in moe_points {
        out.push((
            m.ready_after as f64 + 0.6,
            CollectiveOp {
                serialized_after: if m.at_end { last } else { Some(m.ready_after) },
                needed_by: m.needed_by,
                chunk: m.chunk,
                exchange: m.exchange,
                ..op(
                    m.kind,
                    m.group,
                    m.purpose,
                    Some(m.layer),
                    m.elements,
                    Some(m.ready_after),
                )
            },
        ));
    }
    for b in buckets {
        out.push((
            b.ready_after as f64 + 0.5,
            CollectiveOp {
                bucket: Some(b.index),
                serialized_after: last,
                needed_by: None,
                ..op(
                    Collective::AllReduce,
                    Group::DpReplicate,
                    Purpose::GradBucket,
                    None,
                    b.elements,
                    Some(b.ready_after),
                )
            },
        ));
    }
    for &(purpose, layer, at) in tp_points {
        out.push((
            at as f64 + 0.5,
            CollectiveOp {
                site: Some(ops[at].kind),
                ..op(
                    Collective::AllReduce,
                    Group::Tp,
                    purpose,
                    layer,
                    activation_elements,
                    Some(at),
                )
            },
        ));
    }
    if layout.data.is_sharded() {
        let n = layout.shard.max(1);
        // Units in forward order and in backward order.
        let fwd: Vec<&Unit> = units.iter().collect();
        let mut bwd: Vec<&Unit> = units.iter().filter(|u| u.layer.is_none()).collect();
        bwd.extend(units.iter().filter(|u| u.layer.is_some()).rev());
        let before = |i: usize| i.checked_sub(1);
        let pf = layout.prefetch as usize;
        for (k, u) in fwd.iter().enumerate() {
            let full = u.params.div_ceil(n) * n;
            let ready = if k >= pf {
                before(fwd[k - pf].fwd_first)
            } else {
                None
            };
            out.push((
                u.fwd_first as f64 - 0.25,
                CollectiveOp {
                    ready_after: ready,
                    serialized_after: before(u.fwd_first),
                    needed_by: Some(u.fwd_first),
                    ..op(
                        Collective::AllGather,
                        Group::DpShard,
                        Purpose::ParamGatherForward,
                        u.layer,
                        full,
                        None,
                    )
                },
            ));
        }
        for (j, u) in bwd.iter().enumerate() {
            let full = u.params.div_ceil(n) * n;
            // Backward prefetch runs only once the backward has started:
            // the first units' all-gathers wait for the end of the forward.
            let ready = before(bwd[j.saturating_sub(pf)].bwd_first);
            out.push((
                u.bwd_first as f64 - 0.25,
                CollectiveOp {
                    ready_after: ready,
                    serialized_after: before(u.bwd_first),
                    needed_by: Some(u.bwd_first),
                    ..op(
                        Collective::AllGather,
                        Group::DpShard,
                        Purpose::ParamGatherBackward,
                        u.layer,
                        full,
                        None,
                    )
                },
            ));
            let rs = CollectiveOp {
                needed_by: None,
                ..op(
                    Collective::ReduceScatter,
                    Group::DpShard,
                    Purpose::GradReduceScatter,
                    u.layer,
                    full,
                    Some(u.bwd_last),
                )
            };
            out.push((u.bwd_last as f64 + 0.75, rs));
            if layout.data == DataParallel::Hsdp {
                out.push((
                    u.bwd_last as f64 + 0.8,
                    CollectiveOp {
                        needed_by: None,
                        // The index is set once the list is sorted.
                        after_collective: Some(usize::MAX),
                        ..op(
                            Collective::AllReduce,
                            Group::DpReplicate,
                            Purpose::GradShardAllReduce,
                            u.layer,
                            full / n,
                            Some(u.bwd_last),
                        )
                    },
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut list: Vec<CollectiveOp> = out.into_iter().map(|(_, c)| c).collect();
    for i in 0..list.len() {
        if list[i].after_collective.is_some() {
            // HSDP: the reduce-scatter of the same unit, just before.
            list[i].after_collective = (0..i).rev().find(|&j| {
                list[j].kind == Collective::ReduceScatter && list[j].layer == list[i].layer
            });
        }
    }
    list
}

/// Where the collectives other than buckets and FSDP's run, found while
/// the GEMMs are listed.
struct Points<'a> {
    /// TP all-reduces: (purpose, layer, the GEMM they follow).
    tp: &'a [(Purpose, Option<u32>, usize)],
    /// Expert parallelism's all-to-alls and expert-gradient all-reduces.
    moe: Vec<MoePoint>,
}

/// An expert-parallel collective, found while the GEMMs are listed.
struct MoePoint {
    kind: Collective,
    group: Group,
    purpose: Purpose,
    layer: u32,
    chunk: Option<u32>,
    elements: u64,
    exchange: Vec<u64>,
    /// The GEMM after which overlapped mode issues it (serialized mode too,
    /// unless `at_end`).
    ready_after: usize,
    /// Serialized mode issues it after the step's last GEMM (gradients).
    at_end: bool,
    needed_by: Option<usize>,
}

/// Columns of the LM head in a step of `layers` of a model's `model_layers`
/// blocks: vocab · layers / model_layers, rounded up, at least 1.
pub fn lm_head_columns(vocab: u64, layers: u64, model_layers: u64) -> u64 {
    if layers >= model_layers || model_layers == 0 {
        return vocab;
    }
    ((vocab as u128 * layers as u128).div_ceil(model_layers as u128) as u64).max(1)
}

/// Op ranges of one FSDP unit (a block, or the LM head).
#[derive(Debug, Clone, Copy)]
struct Unit {
    layer: Option<u32>,
    /// Weights of the unit on this TP rank.
    params: u64,
    fwd_first: usize,
    bwd_first: usize,
    bwd_last: usize,
}

impl StepPlan {
    /// Builds the plan of one step for a model shape: DDP, one rank's view
    /// without tensor parallelism.
    pub fn build(model: &ModelShape, p: PlanParams) -> StepPlan {
        StepPlan::build_with_layout(model, p, &Layout::single())
    }

    /// Builds the plan of one step for a model shape and a parallel layout.
    ///
    /// Tensor parallelism (t > 1) divides the shapes as Megatron does:
    /// column-parallel QKV, up and gate (output columns / t), row-parallel
    /// out_proj and down (input rows / t), heads / t per rank, the LM head
    /// split by vocabulary (columns / t, rounded up). It adds an all-reduce
    /// of the T×d activations after out_proj and after down in the forward
    /// (and recompute) pass, and after the input gradient of the FFN and of
    /// QKV in the backward, each blocking the next GEMM; and one after the
    /// LM head's input gradient.
    ///
    /// FSDP/HSDP: every block (and the LM head) is a unit whose weights on
    /// this TP rank are flattened, padded to a multiple of the shard group
    /// and sharded. Per unit: an all-gather before its forward and one
    /// before its backward (the first recompute GEMM when recomputing), a
    /// reduce-scatter after its last wgrad, and (HSDP) an all-reduce of
    /// the gradient shard across nodes after that. Overlapped mode issues a
    /// unit's all-gather when the unit `prefetch` places earlier starts.
    pub fn build_with_layout(model: &ModelShape, p: PlanParams, layout: &Layout) -> StepPlan {
        let tp = layout.tensor.max(1);
        let t = p.micro_batch * model.seq;
        let s = model.seq;
        let d = model.hidden;
        let hd = model.head_dim();
        let attn_batch = p.micro_batch * model.heads / tp;
        let mut ops = Vec::new();
        // (purpose, layer, index into ops) after which a TP all-reduce runs.
        let mut tp_points: Vec<(Purpose, Option<u32>, usize)> = Vec::new();

        // Mixture of experts, per token chunk: the rows of each of this
        // rank's experts, and the tokens exchanged between group positions
        // a and b, by (a + b) mod E. Every source rank routes its chunk by
        // the same law, rotated by its position (experts e ↦ e + a·L, L the
        // experts per rank), so that each rank's hot experts differ. Then
        // what position a sends b is the tokens of the experts at block
        // (a + b) mod E of the law, the same count both ways (the matrix is
        // symmetric), and local expert j of every rank gets Σ_q m[q·L + j]
        // rows: the same GEMM shapes on every rank, uneven all-to-alls.
        let ep = layout.expert.max(1);
        let chunks = model.moe_chunks.max(1);
        let local = (model.experts / ep).max(1) as usize;
        let moe_chunks: Vec<(Vec<u64>, Vec<u64>)> = if model.is_moe() {
            (0..chunks)
                .map(|i| {
                    let ti = t * (i + 1) / chunks - t * i / chunks;
                    let m = model.tokens_per_expert(ti);
                    let at = |q: usize, j: usize| m.get(q * local + j).copied().unwrap_or(0);
                    let rows = (0..local)
                        .map(|j| (0..ep as usize).map(|q| at(q, j)).sum())
                        .collect();
                    let exchange = (0..ep as usize)
                        .map(|q| (0..local).map(|j| at(q, j)).sum())
                        .collect();
                    (rows, exchange)
                })
                .collect()
        } else {
            Vec::new()
        };
        let expert_parallel = ep > 1 && model.is_moe();

        // The linears of block `layer` on this TP rank, in forward order.
        let block = |layer: u32| -> Vec<Linear> {
            let lin = |kind, k, n| Linear {
                kind,
                k,
                n,
                m: t,
                expert: None,
                chunk: None,
            };
            let mut v = vec![
                lin(GemmKind::Qkv, d, model.qkv_out() / tp),
                lin(GemmKind::OutProj, d / tp, d),
            ];
            let ffn = |v: &mut Vec<Linear>, up, gate, down, f: u64| {
                v.push(lin(up, d, f / tp));
                if model.gated_mlp {
                    v.push(lin(gate, d, f / tp));
                }
                v.push(lin(down, f / tp, d));
            };
            if model.is_moe_layer(layer as u64) {
                // Router, shared experts, then per token chunk each of this
                // rank's routed experts on the rows routed to it: t · top_k
                // in all over the group, spread by `model.routing`
                // (balanced or Zipf-skewed).
                v.push(lin(GemmKind::Router, d, model.experts));
                let e = model.expert_ffn_size();
                if model.shared_experts > 0 {
                    let f = model.shared_experts * e;
                    ffn(
                        &mut v,
                        GemmKind::FfnUp,
                        GemmKind::FfnGate,
                        GemmKind::FfnDown,
                        f,
                    );
                }
                for (c, (rows, _)) in moe_chunks.iter().enumerate() {
                    for (i, &m) in rows.iter().enumerate() {
                        let mut ex = Vec::new();
                        ffn(
                            &mut ex,
                            GemmKind::ExpertUp,
                            GemmKind::ExpertGate,
                            GemmKind::ExpertDown,
                            e,
                        );
                        v.extend(ex.into_iter().map(|l| Linear {
                            m,
                            expert: Some(i as u32),
                            chunk: (chunks > 1).then_some(c as u32),
                            ..l
                        }));
                    }
                }
            } else {
                ffn(
                    &mut v,
                    GemmKind::FfnUp,
                    GemmKind::FfnGate,
                    GemmKind::FfnDown,
                    model.ffn,
                );
            }
            v
        };
        // The all-to-all of chunk `c` of a MoE block.
        let all_to_all = |purpose, layer: u32, c: usize, ready: usize, needed: Option<usize>| {
            let exchange: Vec<u64> = moe_chunks[c].1.iter().map(|x| x * d).collect();
            MoePoint {
                kind: Collective::AllToAll,
                group: Group::Expert,
                purpose,
                layer,
                chunk: (chunks > 1).then_some(c as u32),
                elements: exchange.iter().sum(),
                exchange,
                ready_after: ready,
                at_end: false,
                needed_by: needed,
            }
        };
        let linear = |layer, l: &Linear, pass| GemmOp {
            layer,
            kind: l.kind,
            pass,
            m: l.m,
            n: l.n,
            k: l.k,
            batch: 1,
            trans_a: false,
            trans_b: false,
            bucket: None,
            expert: l.expert,
            chunk: l.chunk,
        };
        let attn = |layer, kind, pass, m, n, k, trans_a, trans_b| GemmOp {
            layer,
            kind,
            pass,
            m,
            n,
            k,
            batch: attn_batch,
            trans_a,
            trans_b,
            bucket: None,
            expert: None,
            chunk: None,
        };
        let forward_block = |layer: u32,
                             pass: Pass,
                             ops: &mut Vec<GemmOp>,
                             tp_points: &mut Vec<_>,
                             moe_points: &mut Vec<MoePoint>| {
            let l = Some(layer);
            let mut router = None;
            // Per chunk: first and last expert GEMM.
            let mut span: Vec<(usize, usize)> = Vec::new();
            for lin in &block(layer) {
                let kind = lin.kind;
                ops.push(linear(l, lin, pass));
                let at = ops.len() - 1;
                if kind == GemmKind::Qkv {
                    ops.push(attn(l, GemmKind::AttnScores, pass, s, s, hd, false, true));
                    ops.push(attn(l, GemmKind::AttnValues, pass, s, hd, s, false, false));
                }
                if tp > 1 && matches!(kind, GemmKind::OutProj | GemmKind::FfnDown) {
                    tp_points.push((Purpose::TpForward, l, at));
                }
                if kind == GemmKind::Router {
                    router = Some(at);
                }
                if lin.expert.is_some() {
                    let c = lin.chunk.unwrap_or(0) as usize;
                    if span.len() <= c {
                        span.push((at, at));
                    }
                    span[c].1 = at;
                }
            }
            if let (true, Some(router)) = (expert_parallel, router) {
                // Dispatch every chunk once the router has run (the shared
                // experts compute meanwhile); chunk c's experts wait for it.
                // Combine each chunk after its experts; the next block waits.
                let (dispatch, combine) = match pass {
                    Pass::Recompute => (Purpose::DispatchRecompute, Purpose::CombineRecompute),
                    _ => (Purpose::DispatchForward, Purpose::CombineForward),
                };
                for (c, &(first, _)) in span.iter().enumerate() {
                    moe_points.push(all_to_all(dispatch, layer, c, router, Some(first)));
                }
                for (c, &(_, last)) in span.iter().enumerate() {
                    moe_points.push(all_to_all(combine, layer, c, last, Some(ops.len())));
                }
            }
        };
        let backward_linear = |l, lin: &Linear, ops: &mut Vec<GemmOp>| {
            // dX = dY·Wᵀ (M = m, N = k, K = n), then dW = Xᵀ·dY (M = k,
            // N = n, K = m).
            ops.push(GemmOp {
                n: lin.k,
                k: lin.n,
                trans_b: true,
                ..linear(l, lin, Pass::Dgrad)
            });
            ops.push(GemmOp {
                m: lin.k,
                n: lin.n,
                k: lin.m,
                trans_a: true,
                ..linear(l, lin, Pass::Wgrad)
            });
        };

        // A weight once: an expert's linears repeat per token chunk.
        let weights = |lins: &[Linear]| -> u64 {
            lins.iter()
                .filter(|l| l.chunk.is_none_or(|c| c == 0))
                .map(|l| l.k * l.n)
                .sum()
        };
        let mut moe_points: Vec<MoePoint> = Vec::new();
        let mut units: Vec<Unit> = Vec::new();
        for layer in 0..p.layers as u32 {
            units.push(Unit {
                layer: Some(layer),
                params: weights(&block(layer)),
                fwd_first: ops.len(),
                bwd_first: 0,
                bwd_last: 0,
            });
            forward_block(
                layer,
                Pass::Forward,
                &mut ops,
                &mut tp_points,
                &mut moe_points,
            );
        }
        if model.lm_head {
            // A step of `layers` of the model's blocks carries the same share
            // of the LM head: its vocabulary is scaled by layers /
            // model.layers (rounded up to a whole column), so that MFU and
            // tokens/s of the slice scale to the whole model with the head
            // counted once. At full depth it is the whole head. Under TP
            // each rank holds vocab / t of its columns (rounded up).
            let vocab = lm_head_columns(model.vocab, p.layers, model.layers).div_ceil(tp);
            units.push(Unit {
                layer: None,
                params: d * vocab,
                fwd_first: ops.len(),
                bwd_first: ops.len() + 1,
                bwd_last: ops.len() + 2,
            });
            let head = Linear {
                kind: GemmKind::LmHead,
                k: d,
                n: vocab,
                m: t,
                expert: None,
                chunk: None,
            };
            ops.push(linear(None, &head, Pass::Forward));
            backward_linear(None, &head, &mut ops);
            if tp > 1 {
                tp_points.push((Purpose::TpBackward, None, ops.len() - 2));
            }
        }
        for layer in (0..p.layers as u32).rev() {
            let first = ops.len();
            if p.recompute {
                forward_block(
                    layer,
                    Pass::Recompute,
                    &mut ops,
                    &mut tp_points,
                    &mut moe_points,
                );
            }
            let l = Some(layer);
            // EP: per chunk in backward order (chunk, first and last GEMM),
            // the last expert wgrad, and the GEMM after the MoE part.
            let mut span: Vec<(usize, usize, usize)> = Vec::new();
            let mut last_expert_wgrad = None;
            let mut after_moe = None;
            for lin in block(layer).iter().rev() {
                let kind = lin.kind;
                backward_linear(l, lin, &mut ops);
                if lin.expert.is_some() {
                    let c = lin.chunk.unwrap_or(0) as usize;
                    let (dgrad, wgrad) = (ops.len() - 2, ops.len() - 1);
                    match span.iter_mut().find(|x| x.0 == c) {
                        Some(x) => x.2 = wgrad,
                        None => span.push((c, dgrad, wgrad)),
                    }
                    last_expert_wgrad = Some(wgrad);
                }
                if kind == GemmKind::OutProj && after_moe.is_none() {
                    after_moe = Some(ops.len() - 2);
                }
                // The input gradient of a column-parallel block is summed
                // over the TP group once its last dgrad exists.
                if tp > 1 && matches!(kind, GemmKind::Qkv | GemmKind::FfnUp) {
                    tp_points.push((Purpose::TpBackward, l, ops.len() - 2));
                }
                if kind == GemmKind::Qkv {
                    continue;
                }
                if kind == GemmKind::OutProj {
                    // O = P·V: dP = dO·Vᵀ, dV = Pᵀ·dO; S = Q·Kᵀ: dQ = dS·K, dK = dSᵀ·Q.
                    ops.push(attn(
                        l,
                        GemmKind::AttnValues,
                        Pass::Dgrad,
                        s,
                        s,
                        hd,
                        false,
                        true,
                    ));
                    ops.push(attn(
                        l,
                        GemmKind::AttnValues,
                        Pass::Wgrad,
                        s,
                        hd,
                        s,
                        true,
                        false,
                    ));
                    ops.push(attn(
                        l,
                        GemmKind::AttnScores,
                        Pass::Dgrad,
                        s,
                        hd,
                        s,
                        false,
                        false,
                    ));
                    ops.push(attn(
                        l,
                        GemmKind::AttnScores,
                        Pass::Wgrad,
                        s,
                        hd,
                        s,
                        true,
                        false,
                    ));
                }
            }
            if let (true, Some(&(_, start, _))) = (expert_parallel, span.first()) {
                // The output gradient goes to the experts as soon as the
                // block's backward starts (chunk by chunk, in the order the
                // experts use them); each chunk's input gradient goes back
                // after its experts, and the attention's backward waits.
                for &(c, first, _) in &span {
                    moe_points.push(all_to_all(
                        Purpose::CombineBackward,
                        layer,
                        c,
                        start - 1,
                        Some(first),
                    ));
                }
                for &(c, _, last) in &span {
                    moe_points.push(all_to_all(
                        Purpose::DispatchBackward,
                        layer,
                        c,
                        last,
                        after_moe,
                    ));
                }
                // The expert gradients, over the ranks holding the same
                // experts (none when every rank holds its own).
                let replicas = layout.group_size(Group::ExpertReplicate);
                if let (true, Some(at)) = (replicas > 1, last_expert_wgrad) {
                    let elements = weights(
                        &block(layer)
                            .into_iter()
                            .filter(|l| l.expert.is_some())
                            .collect::<Vec<_>>(),
                    );
                    moe_points.push(MoePoint {
                        kind: Collective::AllReduce,
                        group: Group::ExpertReplicate,
                        purpose: Purpose::ExpertGrad,
                        layer,
                        chunk: None,
                        elements,
                        exchange: Vec::new(),
                        ready_after: at,
                        at_end: true,
                        needed_by: None,
                    });
                }
            }
            let u = &mut units[layer as usize];
            u.bwd_first = first;
            u.bwd_last = ops.len() - 1;
        }

        // Buckets in production order (DDP only).
        let mut buckets: Vec<Bucket> = Vec::new();
        if layout.data == DataParallel::Ddp {
            let mut open: Option<Bucket> = None;
            for (i, op) in ops.iter_mut().enumerate() {
                // Under EP the experts' gradients are reduced apart, over
                // the ranks holding the same experts.
                if !op.completes_gradient() || (expert_parallel && op.expert.is_some()) {
                    continue;
                }
                let b = open.get_or_insert_with(|| Bucket {
                    index: buckets.len(),
                    elements: 0,
                    bytes: 0,
                    grads: Vec::new(),
                    ready_after: i,
                });
                let elements = op.m * op.n;
                b.elements += elements;
                b.bytes += elements * p.grad_bytes;
                b.grads.push(i);
                b.ready_after = i;
                op.bucket = Some(b.index);
                if b.bytes >= p.bucket_bytes {
                    buckets.extend(open.take());
                }
            }
            buckets.extend(open.take());
        }

        let collectives = collectives(
            &ops,
            &buckets,
            &units,
            Points {
                tp: &tp_points,
                moe: moe_points,
            },
            t * d,
            p,
            layout,
        );
        StepPlan {
            layers: p.layers,
            tokens: t,
            ops,
            buckets,
            grad_bytes: p.grad_bytes,
            collectives,
            layout: *layout,
        }
    }

    /// The benchmark step of a validated config on a layout.
    pub fn for_layout(config: &Config, layout: &Layout) -> StepPlan {
        StepPlan::build_with_layout(&config.model, PlanParams::benchmark(config), layout)
    }

    /// Bytes of the collectives of one kind and group per step (nccl-tests
    /// sizes, summed).
    pub fn collective_bytes(&self, kind: Collective, group: Group) -> u64 {
        self.collectives
            .iter()
            .filter(|c| c.kind == kind && c.group == group)
            .map(|c| c.bytes)
            .sum()
    }

    /// The benchmark step of a validated config.
    pub fn for_config(config: &Config) -> StepPlan {
        StepPlan::build(&config.model, PlanParams::benchmark(config))
    }

    /// Model FLOPs: every op except recomputation.
    pub fn model_flops(&self) -> f64 {
        self.ops
            .iter()
            .filter(|o| o.pass != Pass::Recompute)
            .map(GemmOp::flops)
            .sum()
    }

    /// Hardware FLOPs: every op executed, recomputation included.
    pub fn hardware_flops(&self) -> f64 {
        self.ops.iter().map(GemmOp::flops).sum()
    }

    /// Bytes all-reduced per step.
    pub fn allreduce_bytes(&self) -> u64 {
        self.buckets.iter().map(|b| b.bytes).sum()
    }

    /// Index of the last backward op (serialized mode starts all-reduces after it).
    pub fn last_op(&self) -> Option<usize> {
        self.ops.len().checked_sub(1)
    }

    /// Largest (A, B, C) element counts over all ops, batch included: the
    /// scratch buffers a backend needs to run every op of the plan.
    pub fn max_operand_elements(&self) -> (u64, u64, u64) {
        self.ops.iter().fold((0, 0, 0), |acc, op| {
            let (a, b, c) = op.operand_elements();
            (
                acc.0.max(a * op.batch),
                acc.1.max(b * op.batch),
                acc.2.max(c * op.batch),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    fn cfg(extra: &str) -> Config {
        parse_config(&format!("[model]\npreset = \"tiny\"\n{extra}"), "t").unwrap()
    }

    #[test]
    fn linear_shapes_and_transposes() {
        let c = cfg("");
        let p = StepPlan::for_config(&c);
        let t = 512;
        let up: Vec<_> = p
            .ops
            .iter()
            .filter(|o| o.layer == Some(0) && o.kind == GemmKind::FfnDown)
            .collect();
        assert_eq!(up.len(), 3);
        let (f, b, w) = (up[0], up[1], up[2]);
        assert_eq!((f.pass, f.m, f.n, f.k), (Pass::Forward, t, 512, 1536));
        assert_eq!(
            (b.pass, b.m, b.n, b.k, b.trans_b),
            (Pass::Dgrad, t, 1536, 512, true)
        );
        assert_eq!(
            (w.pass, w.m, w.n, w.k, w.trans_a),
            (Pass::Wgrad, 1536, 512, t, true)
        );
    }

    #[test]
    fn forward_then_backward_in_reverse_layer_order() {
        let c = cfg("[run]\nlayers = 3\n");
        let p = StepPlan::for_config(&c);
        let first_bwd = p.ops.iter().position(|o| o.pass.is_backward()).unwrap();
        assert!(p.ops[..first_bwd].iter().all(|o| o.pass == Pass::Forward));
        let bwd_layers: Vec<u32> = p.ops[first_bwd..].iter().filter_map(|o| o.layer).collect();
        let mut sorted = bwd_layers.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(bwd_layers, sorted);
        assert_eq!(p.ops[first_bwd].kind, GemmKind::FfnDown);
        assert_eq!(p.ops.last().unwrap().kind, GemmKind::Qkv);
        // per block: 6 forward linears+attn (5 linears gated + 2 attn) = 7 fwd, 14 bwd.
        assert_eq!(p.ops.len(), 3 * 21);
    }

    #[test]
    fn buckets_cover_every_weight_once_in_production_order() {
        let c = cfg("[run]\nlayers = 4\nbucket_mb = 3.0\n");
        let p = StepPlan::for_config(&c);
        let total: u64 = p.buckets.iter().map(|b| b.elements).sum();
        assert_eq!(total, 4 * c.model.params_per_layer());
        let mut last = 0;
        for (i, b) in p.buckets.iter().enumerate() {
            assert_eq!(b.index, i);
            assert!(b.ready_after >= last);
            last = b.ready_after;
            assert_eq!(*b.grads.last().unwrap(), b.ready_after);
            for &g in &b.grads {
                assert_eq!(p.ops[g].bucket, Some(i));
                assert!(p.ops[g].is_weight_grad());
            }
            // Every bucket but the last reaches the cap; no bucket holds a
            // gradient after it reached the cap.
            let cap = 3 * 1024 * 1024;
            if i + 1 < p.buckets.len() {
                assert!(b.bytes >= cap);
            }
            let before_last: u64 = b.grads[..b.grads.len() - 1]
                .iter()
                .map(|&g| p.ops[g].m * p.ops[g].n * 4)
                .sum();
            assert!(before_last < cap);
        }
        assert!(p.buckets.len() > 2);
    }

    #[test]
    fn recompute_adds_forward_ops() {
        let a = StepPlan::for_config(&cfg("[run]\nlayers = 2\n"));
        let b = StepPlan::for_config(&cfg("[run]\nlayers = 2\nrecompute = true\n"));
        assert_eq!(a.model_flops(), b.model_flops());
        let fwd: f64 = a
            .ops
            .iter()
            .filter(|o| o.pass == Pass::Forward)
            .map(GemmOp::flops)
            .sum();
        assert_eq!(b.hardware_flops(), a.hardware_flops() + fwd);
    }

    #[test]
    fn lm_head_included_only_when_asked() {
        let a = StepPlan::for_config(&cfg(""));
        assert!(a.ops.iter().all(|o| o.kind != GemmKind::LmHead));
        let b = StepPlan::for_config(&cfg("lm_head = true\n"));
        let lm: Vec<_> = b
            .ops
            .iter()
            .filter(|o| o.kind == GemmKind::LmHead)
            .collect();
        assert_eq!(lm.len(), 3);
        // tiny: 2 of 4 layers run, so half of the 32,000-column head.
        assert_eq!(lm[0].n, 16_000);
        let full = StepPlan::for_config(&cfg("lm_head = true\n[run]\nlayers = 4\n"));
        assert!(full
            .ops
            .iter()
            .any(|o| o.kind == GemmKind::LmHead && o.n == 32_000));
        // Its gradient is produced first, so it opens the first bucket.
        assert_eq!(
            b.buckets[0].grads[0],
            b.ops
                .iter()
                .position(|o| o.kind == GemmKind::LmHead && o.pass == Pass::Wgrad)
                .unwrap()
        );
    }

    #[test]
    fn lm_head_share_scales_to_the_whole_model() {
        // llama3-8b, 2 of 32 layers: 128,256 · 2/32 = 8,016 columns, and the
        // slice's FLOPs × 16 are the whole model's (head counted once).
        assert_eq!(lm_head_columns(128_256, 2, 32), 8_016);
        assert_eq!(lm_head_columns(128_256, 32, 32), 128_256);
        assert_eq!(lm_head_columns(5, 1, 3), 2);
        assert_eq!(lm_head_columns(1, 1, 1000), 1);
        let c = |layers: u64| {
            parse_config(
                &format!("[model]\npreset = \"llama3-8b\"\nlm_head = true\nseq = 64\n[run]\nlayers = {layers}\n"),
                "t",
            )
            .unwrap()
        };
        let slice = StepPlan::for_config(&c(2)).model_flops();
        let whole = StepPlan::for_config(&c(32)).model_flops();
        assert!(
            (slice * 16.0 - whole).abs() < 1e-12 * whole,
            "{slice} × 16 vs {whole}"
        );
    }

    #[test]
    fn labels_are_unique_within_a_pass() {
        let p = StepPlan::for_config(&cfg(""));
        let mut labels: Vec<String> = p.ops.iter().map(GemmOp::label).collect();
        labels.sort();
        let n = labels.len();
        labels.dedup();
        assert_eq!(labels.len(), n);
    }

    fn layout(data: DataParallel, tensor: u64, ranks: u64, per_node: u64) -> Layout {
        crate::parallel::Parallel {
            data,
            tensor,
            prefetch: 1,
            expert: 1,
        }
        .layout(ranks, per_node)
        .unwrap()
    }

    fn model(preset: &str, extra: &str) -> Config {
        parse_config(
            &format!("[model]\npreset = \"{preset}\"\nseq = 256\n{extra}"),
            "t",
        )
        .unwrap()
    }

    /// Megatron's split of llama3-8b (d 4096, ffn 14336, 32 heads, 8 kv
    /// heads of 128: QKV 6144 wide) over t = 2, 4, 8.
    #[test]
    fn tp_shapes_for_llama3_8b() {
        let c = model("llama3-8b", "");
        for (t, qkv, out_k, ffn, heads) in [
            (2u64, 3072, 2048, 7168, 16),
            (4, 1536, 1024, 3584, 8),
            (8, 768, 512, 1792, 4),
        ] {
            let p = StepPlan::for_layout(&c, &layout(DataParallel::Ddp, t, t, t));
            let fwd = |kind| {
                p.ops
                    .iter()
                    .find(|o| o.kind == kind && o.pass == Pass::Forward)
                    .unwrap()
            };
            assert_eq!((fwd(GemmKind::Qkv).k, fwd(GemmKind::Qkv).n), (4096, qkv));
            assert_eq!(
                (fwd(GemmKind::OutProj).k, fwd(GemmKind::OutProj).n),
                (out_k, 4096)
            );
            assert_eq!(fwd(GemmKind::FfnUp).n, ffn);
            assert_eq!(fwd(GemmKind::FfnGate).n, ffn);
            assert_eq!(
                (fwd(GemmKind::FfnDown).k, fwd(GemmKind::FfnDown).n),
                (ffn, 4096)
            );
            assert_eq!(fwd(GemmKind::AttnScores).batch, heads);
            // 2 activation all-reduces per layer forward, 2 backward, T·d each.
            let tp: Vec<_> = p
                .collectives
                .iter()
                .filter(|c| c.group == Group::Tp)
                .collect();
            assert_eq!(tp.len(), 4 * 2);
            assert!(tp
                .iter()
                .all(|c| c.elements == 256 * 4096 && c.kind == Collective::AllReduce));
            assert_eq!(
                tp.iter()
                    .filter(|c| c.purpose == Purpose::TpForward)
                    .count(),
                4
            );
            let mut labels: Vec<String> = p.collectives.iter().map(CollectiveOp::label).collect();
            labels.sort();
            labels.dedup();
            assert_eq!(labels.len(), p.collectives.len(), "{labels:?}");
            // Blocking: the next GEMM waits for each.
            assert!(tp
                .iter()
                .all(|c| c.needed_by == c.ready_after.map(|i| i + 1)));
        }
    }

    #[test]
    fn device_flops_times_t_are_the_unsplit_flops() {
        for extra in [
            "",
            "lm_head = true\n",
            "[run]\nrecompute = true\nmicro_batch = 2\n",
        ] {
            let c = model("llama3-8b", extra);
            let one = StepPlan::for_config(&c);
            for t in [2u64, 4, 8] {
                let p = StepPlan::for_layout(&c, &layout(DataParallel::Fsdp, t, 2 * t, 2 * t));
                assert_eq!(
                    p.model_flops() * t as f64,
                    one.model_flops(),
                    "t={t} {extra}"
                );
                assert_eq!(p.hardware_flops() * t as f64, one.hardware_flops());
                assert_eq!(p.ops.len(), one.ops.len());
            }
        }
    }

    /// Sum over a kind's collectives of the bytes each rank moves.
    fn wire(p: &StepPlan, kind: Collective, group: Group) -> f64 {
        p.collectives
            .iter()
            .filter(|c| c.kind == kind && c.group == group)
            .map(CollectiveOp::wire_bytes_per_rank)
            .sum()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    /// Closed forms per rank per step, for two shapes: FSDP all-gather
    /// 2·P·(n−1)/n·L·bytes (P = a layer's weights on this TP rank),
    /// reduce-scatter P·(n−1)/n·L·bytes, HSDP shard all-reduce
    /// 2·(P/n)·(r−1)/r·L·bytes, TP all-reduce 4·L·2·T·d·(t−1)/t·bytes.
    #[test]
    fn per_kind_bytes_follow_the_closed_forms() {
        for (preset, t, ranks, per_node, layers) in
            [("tiny", 1u64, 4u64, 2u64, 2u64), ("llama3-8b", 2, 8, 4, 3)]
        {
            let c = model(preset, &format!("[run]\nlayers = {layers}\n"));
            let slice = (c.model.params_per_layer() / t) as f64;
            let (l, b) = (layers as f64, c.run.grad_dtype.size_bytes() as f64);
            let fsdp = StepPlan::for_layout(&c, &layout(DataParallel::Fsdp, t, ranks, per_node));
            let n = (ranks / t) as f64;
            assert!(fsdp.buckets.is_empty());
            assert!(close(
                wire(&fsdp, Collective::AllGather, Group::DpShard),
                2.0 * slice * (n - 1.0) / n * l * b
            ));
            assert!(close(
                wire(&fsdp, Collective::ReduceScatter, Group::DpShard),
                slice * (n - 1.0) / n * l * b
            ));
            assert_eq!(
                fsdp.collective_bytes(Collective::AllGather, Group::DpShard),
                2 * c.model.params_per_layer() / t * layers * 4
            );
            let hsdp = StepPlan::for_layout(&c, &layout(DataParallel::Hsdp, t, ranks, per_node));
            let (n, r) = ((per_node / t) as f64, (ranks / per_node) as f64);
            assert!(close(
                wire(&hsdp, Collective::AllGather, Group::DpShard),
                2.0 * slice * (n - 1.0) / n * l * b
            ));
            assert!(close(
                wire(&hsdp, Collective::AllReduce, Group::DpReplicate),
                2.0 * slice / n * (r - 1.0) / r * l * b
            ));
            let td = (c.run.tokens(&c.model) * c.model.hidden) as f64;
            let tf = t as f64;
            assert!(close(
                wire(&hsdp, Collective::AllReduce, Group::Tp),
                4.0 * l * 2.0 * td * (tf - 1.0) / tf * b
            ));
            // Every HSDP shard all-reduce follows its layer's reduce-scatter.
            for c in hsdp
                .collectives
                .iter()
                .filter(|c| c.group == Group::DpReplicate)
            {
                let rs = &hsdp.collectives[c.after_collective.unwrap()];
                assert_eq!((rs.kind, rs.layer), (Collective::ReduceScatter, c.layer));
            }
        }
    }

    #[test]
    fn fsdp_shards_are_padded_to_the_group() {
        let c = model("tiny", "[run]\nlayers = 1\n");
        let p = StepPlan::for_layout(&c, &layout(DataParallel::Fsdp, 1, 3, 3));
        let ag = &p.collectives[0];
        assert_eq!(ag.kind, Collective::AllGather);
        assert_eq!(ag.elements % 3, 0);
        assert_eq!(ag.elements, c.model.params_per_layer().div_ceil(3) * 3);
        assert_eq!(ag.shard_elements() * 3, ag.elements);
    }

    #[test]
    fn ddp_collectives_are_the_buckets() {
        let c = cfg("[run]\nlayers = 2\nbucket_mb = 1.0\n");
        let p = StepPlan::for_config(&c);
        let four = StepPlan::for_layout(&c, &layout(DataParallel::Ddp, 1, 4, 4));
        assert_eq!((&p.ops, &p.buckets), (&four.ops, &four.buckets));
        assert!(four.collectives.iter().all(|c| c.group_size == 4));
        assert_eq!(p.collectives.len(), p.buckets.len());
        for (c, b) in p.collectives.iter().zip(&p.buckets) {
            assert_eq!(c.bucket, Some(b.index));
            assert_eq!((c.elements, c.bytes), (b.elements, b.bytes));
            assert_eq!(c.ready_after, Some(b.ready_after));
            assert_eq!(c.serialized_after, p.last_op());
            assert_eq!(c.needed_by, None);
            assert_eq!(c.label(), format!("allreduce.b{}", b.index));
        }
    }

    /// FSDP's schedule points: layer l's forward all-gather is needed by
    /// its first GEMM; overlapped mode issues it when layer l − 1 starts
    /// (prefetch 1), serialized mode right before it; the reduce-scatter
    /// follows the layer's last wgrad.
    #[test]
    fn fsdp_prefetch_points() {
        let c = model("tiny", "[run]\nlayers = 3\n");
        let p = StepPlan::for_layout(&c, &layout(DataParallel::Fsdp, 1, 2, 2));
        let first = |l: u32, pass: Pass| {
            p.ops
                .iter()
                .position(|o| o.layer == Some(l) && o.pass == pass)
                .unwrap()
        };
        let ag = |l: u32, purpose| {
            p.collectives
                .iter()
                .find(|c| c.layer == Some(l) && c.purpose == purpose)
                .unwrap()
        };
        for l in 0..3u32 {
            let g = ag(l, Purpose::ParamGatherForward);
            assert_eq!(g.needed_by, Some(first(l, Pass::Forward)));
            assert_eq!(g.serialized_after, first(l, Pass::Forward).checked_sub(1));
            let want = if l >= 1 {
                first(l - 1, Pass::Forward).checked_sub(1)
            } else {
                None
            };
            assert_eq!(g.ready_after, want, "layer {l}");
            let rs = ag(l, Purpose::GradReduceScatter);
            let last_wgrad = p.ops.iter().rposition(|o| o.layer == Some(l)).unwrap();
            assert_eq!(rs.ready_after, Some(last_wgrad));
            assert_eq!(rs.needed_by, None);
        }
        // Layer 1's backward gather is issued before layer 2's backward starts.
        let g = ag(1, Purpose::ParamGatherBackward);
        assert_eq!(g.ready_after, Some(first(2, Pass::Dgrad) - 1));
        assert_eq!(g.needed_by, Some(first(1, Pass::Dgrad)));
    }

    /// Expert parallelism on known answers: 4 experts, top-2, Zipf-skewed,
    /// 2 token chunks, over groups of 4 ranks.
    #[test]
    fn expert_parallel_plan() {
        let text =
            "experts = 4\ntop_k = 2\nrouting = \"zipf:1.2\"\nmoe_chunks = 2\n[run]\nlayers = 2\n";
        let c = cfg(text);
        let ep = |ranks: u64, expert: u64| {
            crate::parallel::Parallel {
                expert,
                ..Default::default()
            }
            .layout(ranks, ranks)
            .unwrap()
        };
        let dense_ep = StepPlan::for_layout(&c, &ep(4, 1));
        let p = StepPlan::for_layout(&c, &ep(4, 4));
        let (t, d) = (p.tokens, c.model.hidden);
        // The same FLOPs per rank as without EP: the group computes the
        // same t · top_k rows per rank.
        assert_eq!(p.model_flops(), dense_ep.model_flops());
        // One local expert per rank; its rows over both chunks are t · top_k.
        let rows: u64 = p
            .ops
            .iter()
            .filter(|o| {
                o.kind == GemmKind::ExpertUp && o.pass == Pass::Forward && o.layer == Some(0)
            })
            .map(|o| {
                assert_eq!(o.expert, Some(0));
                o.m
            })
            .sum();
        assert_eq!(rows, t * 2);
        // Per MoE block and chunk: dispatch and combine, forward and
        // backward.
        let a2a: Vec<&CollectiveOp> = p
            .collectives
            .iter()
            .filter(|c| c.kind == Collective::AllToAll)
            .collect();
        assert_eq!(a2a.len(), 2 * 2 * 4);
        let mut uneven = false;
        for c in &a2a {
            assert_eq!((c.group, c.group_size), (Group::Expert, 4));
            assert_eq!(c.exchange.len(), 4);
            assert_eq!(c.exchange.iter().sum::<u64>(), c.elements);
            // Each chunk has half the tokens, each routed twice.
            assert_eq!(c.elements, t / 2 * 2 * d, "{}", c.label());
            uneven |= c.exchange.iter().any(|&x| x != c.exchange[0]);
            // What a sends b, b receives from a.
            for a in 0..4 {
                for b in 0..4 {
                    assert_eq!(c.peer_counts(a)[b as usize], c.peer_counts(b)[a as usize]);
                }
            }
            let (ready, needed) = (c.ready_after.unwrap(), c.needed_by.unwrap());
            assert!(ready < needed, "{}", c.label());
            assert_eq!(c.serialized_after, c.ready_after);
        }
        assert!(uneven, "Zipf routing gives uneven all-to-alls");
        // The dispatch of chunk c is read by chunk c's first expert GEMM.
        for c in a2a.iter().filter(|c| c.purpose == Purpose::DispatchForward) {
            let op = &p.ops[c.needed_by.unwrap()];
            assert_eq!(
                (op.kind, op.chunk, op.layer),
                (GemmKind::ExpertUp, c.chunk, c.layer)
            );
            assert_eq!(p.ops[c.ready_after.unwrap()].kind, GemmKind::Router);
        }
        for c in a2a
            .iter()
            .filter(|c| c.purpose == Purpose::DispatchBackward)
        {
            let op = &p.ops[c.needed_by.unwrap()];
            assert_eq!((op.kind, op.pass), (GemmKind::OutProj, Pass::Dgrad));
        }
        // Experts' gradients are not in the buckets; with one rank per
        // expert set there is nothing to reduce them over.
        assert!(p
            .buckets
            .iter()
            .flat_map(|b| &b.grads)
            .all(|&i| p.ops[i].expert.is_none()));
        assert!(p
            .collectives
            .iter()
            .all(|c| c.purpose != Purpose::ExpertGrad));
        // 8 ranks: two copies of each expert set, one all-reduce per block
        // of the local expert's weights (up, gate and down, d × f each).
        let p8 = StepPlan::for_layout(&c, &ep(8, 4));
        let grads: Vec<&CollectiveOp> = p8
            .collectives
            .iter()
            .filter(|c| c.purpose == Purpose::ExpertGrad)
            .collect();
        assert_eq!(grads.len(), 2);
        for g in grads {
            assert_eq!((g.group, g.group_size), (Group::ExpertReplicate, 2));
            assert!(c.model.gated_mlp);
            assert_eq!(g.elements, 3 * d * c.model.ffn);
            assert_eq!(g.needed_by, None);
            assert_eq!(g.serialized_after, p8.last_op());
        }
        let mut labels: Vec<String> = p8.collectives.iter().map(CollectiveOp::label).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), p8.collectives.len());
        assert!(
            labels.contains(&"L1.alltoall.dispatch.fwd.c1".to_string()),
            "{labels:?}"
        );
        // Recomputation dispatches and combines again.
        let r = StepPlan::for_layout(&cfg(&format!("{text}recompute = true\n")), &ep(4, 4));
        let count = |p: &StepPlan| {
            p.collectives
                .iter()
                .filter(|c| c.kind == Collective::AllToAll)
                .count()
        };
        assert_eq!(count(&r), 2 * 2 * 6);
    }

    /// Token chunks split the expert GEMMs, not the weights: the same
    /// FLOPs and the same gradient bytes as one chunk.
    #[test]
    fn moe_chunks_keep_flops_and_gradients() {
        let one = StepPlan::for_config(&cfg("experts = 4\ntop_k = 2\nrouting = \"zipf:1.2\"\n"));
        let four = StepPlan::for_config(&cfg(
            "experts = 4\ntop_k = 2\nrouting = \"zipf:1.2\"\nmoe_chunks = 4\n",
        ));
        assert_eq!(one.model_flops(), four.model_flops());
        assert_eq!(one.allreduce_bytes(), four.allreduce_bytes());
        assert!(four.ops.len() > one.ops.len());
        assert!(one
            .collectives
            .iter()
            .all(|c| c.kind != Collective::AllToAll));
        let mut labels: Vec<String> = four.ops.iter().map(GemmOp::label).collect();
        let n = labels.len();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), n);
    }
}
