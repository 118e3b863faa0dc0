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
    /// LM head (logits).
    LmHead,
}

impl GemmKind {
    /// All kinds, in forward order.
    pub const ALL: [GemmKind; 8] = [
        GemmKind::Qkv,
        GemmKind::AttnScores,
        GemmKind::AttnValues,
        GemmKind::OutProj,
        GemmKind::FfnUp,
        GemmKind::FfnGate,
        GemmKind::FfnDown,
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
}

impl GemmOp {
    /// 2·M·N·K·batch.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }

    /// Whether this is a weight gradient (it fills a bucket).
    pub fn is_weight_grad(&self) -> bool {
        self.pass == Pass::Wgrad && self.kind.has_weight()
    }

    /// A stable label such as `L1.ffn_down.wgrad` or `lm_head.fwd`.
    pub fn label(&self) -> String {
        match self.layer {
            Some(l) => format!("L{l}.{}.{}", self.kind, self.pass.name()),
            None => format!("{}.{}", self.kind, self.pass.name()),
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

/// The whole step: ops in execution order and the buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    /// Blocks in the step.
    pub layers: u64,
    /// Tokens per rank per step (b·s).
    pub tokens: u64,
    /// GEMMs in execution order on the compute stream.
    pub ops: Vec<GemmOp>,
    /// Buckets in all-reduce order.
    pub buckets: Vec<Bucket>,
    /// Bytes per gradient element.
    pub grad_bytes: u64,
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

/// Columns of the LM head in a step of `layers` of a model's `model_layers`
/// blocks: vocab · layers / model_layers, rounded up, at least 1.
pub fn lm_head_columns(vocab: u64, layers: u64, model_layers: u64) -> u64 {
    if layers >= model_layers || model_layers == 0 {
        return vocab;
    }
    ((vocab as u128 * layers as u128).div_ceil(model_layers as u128) as u64).max(1)
}

impl StepPlan {
    /// Builds the plan of one step for a model shape.
    pub fn build(model: &ModelShape, p: PlanParams) -> StepPlan {
        let t = p.micro_batch * model.seq;
        let s = model.seq;
        let d = model.hidden;
        let hd = model.head_dim();
        let attn_batch = p.micro_batch * model.heads;
        let mut ops = Vec::new();

        // (kind, k_in, n_out) of the linears of a block, in forward order.
        let mut linears = vec![
            (GemmKind::Qkv, d, model.qkv_out()),
            (GemmKind::OutProj, d, d),
            (GemmKind::FfnUp, d, model.ffn),
        ];
        if model.gated_mlp {
            linears.push((GemmKind::FfnGate, d, model.ffn));
        }
        linears.push((GemmKind::FfnDown, model.ffn, d));
        let linear = |layer, kind, k, n, pass| GemmOp {
            layer,
            kind,
            pass,
            m: t,
            n,
            k,
            batch: 1,
            trans_a: false,
            trans_b: false,
            bucket: None,
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
        };
        let forward_block = |layer: u32, pass: Pass, ops: &mut Vec<GemmOp>| {
            let l = Some(layer);
            for &(kind, k, n) in &linears {
                ops.push(linear(l, kind, k, n, pass));
                if kind == GemmKind::Qkv {
                    ops.push(attn(l, GemmKind::AttnScores, pass, s, s, hd, false, true));
                    ops.push(attn(l, GemmKind::AttnValues, pass, s, hd, s, false, false));
                }
            }
        };
        let backward_linear = |l, kind, k, n, ops: &mut Vec<GemmOp>| {
            // dX = dY·Wᵀ, then dW = Xᵀ·dY.
            ops.push(GemmOp {
                trans_b: true,
                ..linear(l, kind, n, k, Pass::Dgrad)
            });
            ops.push(GemmOp {
                m: k,
                n,
                k: t,
                trans_a: true,
                ..linear(l, kind, 0, 0, Pass::Wgrad)
            });
        };

        for layer in 0..p.layers as u32 {
            forward_block(layer, Pass::Forward, &mut ops);
        }
        if model.lm_head {
            // A step of `layers` of the model's blocks carries the same share
            // of the LM head: its vocabulary is scaled by layers /
            // model.layers (rounded up to a whole column), so that MFU and
            // tokens/s of the slice scale to the whole model with the head
            // counted once. At full depth it is the whole head.
            let vocab = lm_head_columns(model.vocab, p.layers, model.layers);
            ops.push(linear(None, GemmKind::LmHead, d, vocab, Pass::Forward));
            backward_linear(None, GemmKind::LmHead, d, vocab, &mut ops);
        }
        for layer in (0..p.layers as u32).rev() {
            if p.recompute {
                forward_block(layer, Pass::Recompute, &mut ops);
            }
            let l = Some(layer);
            for &(kind, k, n) in linears.iter().rev() {
                backward_linear(l, kind, k, n, &mut ops);
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
        }

        // Buckets in production order.
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut open: Option<Bucket> = None;
        for (i, op) in ops.iter_mut().enumerate() {
            if !op.is_weight_grad() {
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

        StepPlan {
            layers: p.layers,
            tokens: t,
            ops,
            buckets,
            grad_bytes: p.grad_bytes,
        }
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
}
