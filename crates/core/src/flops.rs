//! FLOP accounting: exact counts from the plan, the 6N estimates, and the
//! calculators behind `mfubench flops`.

use serde::{Deserialize, Serialize};

use crate::config::ModelShape;
use crate::plan::{GemmKind, Pass, PlanParams, StepPlan};

/// FLOPs of one GEMM kind, per token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindFlops {
    /// GEMM kind.
    pub kind: GemmKind,
    /// Forward FLOPs per token.
    pub forward: f64,
    /// Backward dgrad FLOPs per token (for attention: w.r.t. the left operand).
    pub dgrad: f64,
    /// Backward wgrad FLOPs per token (for attention: w.r.t. the right operand).
    pub wgrad: f64,
}

impl KindFlops {
    /// Forward + backward.
    pub fn total(&self) -> f64 {
        self.forward + self.dgrad + self.wgrad
    }
}

/// Per-token FLOPs of a whole model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlopsPerToken {
    /// Exact Σ 2·M·N·K over forward and backward, divided by tokens.
    pub exact: f64,
    /// 6·N (N: the active non-embedding parameters).
    pub six_n: f64,
    /// 6·N + 12·L·d·s (PaLM's attention term).
    pub six_n_attention: f64,
}

/// The whole-model FLOP breakdown printed by `mfubench flops`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFlops {
    /// Non-embedding parameters N (no norms, no LM head), every expert.
    pub params_non_embedding: u64,
    /// Non-embedding parameters one token uses (MoE: `top_k` routed
    /// experts per MoE block); the N of 6·N.
    #[serde(default)]
    pub params_active_non_embedding: u64,
    /// Total parameters as model cards count them (embeddings and LM head
    /// included, norms and biases not).
    #[serde(default)]
    pub params_total: u64,
    /// Active parameters as model cards count them (embeddings and LM head
    /// included).
    #[serde(default)]
    pub params_active_total: u64,
    /// Per-token totals.
    pub flops_per_token: FlopsPerToken,
    /// Per-token FLOPs by GEMM kind (kinds absent from the model omitted).
    pub by_kind: Vec<KindFlops>,
}

/// 6·N per token.
pub fn six_n(params: u64) -> f64 {
    6.0 * params as f64
}

/// PaLM's attention term per token: 12·L·d·s.
pub fn attention_term(layers: u64, hidden: u64, seq: u64) -> f64 {
    12.0 * layers as f64 * hidden as f64 * seq as f64
}

/// Per-token FLOPs of the whole model (all its layers, its sequence length).
pub fn model_flops(model: &ModelShape) -> ModelFlops {
    let plan = StepPlan::build(model, PlanParams::whole_model(model));
    let tokens = plan.tokens as f64;
    let mut by_kind: Vec<KindFlops> = Vec::new();
    for kind in GemmKind::ALL {
        let mut k = KindFlops {
            kind,
            forward: 0.0,
            dgrad: 0.0,
            wgrad: 0.0,
        };
        let mut present = false;
        for op in plan.ops.iter().filter(|o| o.kind == kind) {
            present = true;
            let f = op.flops() / tokens;
            match op.pass {
                Pass::Forward => k.forward += f,
                Pass::Dgrad => k.dgrad += f,
                Pass::Wgrad => k.wgrad += f,
                Pass::Recompute => {}
            }
        }
        if present {
            by_kind.push(k);
        }
    }
    let params = model.params_non_embedding();
    let active = model.params_active_non_embedding();
    let six = six_n(active);
    ModelFlops {
        params_non_embedding: params,
        params_active_non_embedding: active,
        params_total: model.params_total(),
        params_active_total: model.params_active_total(),
        flops_per_token: FlopsPerToken {
            exact: plan.model_flops() / tokens,
            six_n: six,
            six_n_attention: six + attention_term(model.layers, model.hidden, model.seq),
        },
        by_kind,
    }
}

/// Total training FLOPs: per-token FLOPs × tokens.
pub fn training_flops(flops_per_token: f64, tokens: f64) -> f64 {
    flops_per_token * tokens
}

/// Days to train `total_flops` on `gpus` devices of `peak_tflops` at `mfu`.
pub fn days_to_train(total_flops: f64, gpus: f64, peak_tflops: f64, mfu: f64) -> f64 {
    total_flops / (gpus * peak_tflops * 1e12 * mfu) / 86_400.0
}

/// MFU from a training log, the primer's recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMfu {
    /// batch · seq / step time.
    pub tokens_per_second: f64,
    /// 6 · N · tokens/s (FLOP/s, whole job).
    pub achieved_flops: f64,
    /// gpus · peak (FLOP/s).
    pub peak_flops: f64,
    /// achieved / peak.
    pub mfu: f64,
}

/// MFU from parameters, global batch (sequences), sequence length, step time
/// and the job's devices: the 6N rule, as in the primer.
pub fn mfu_from_log(
    params: f64,
    batch: f64,
    seq: f64,
    step_time_s: f64,
    gpus: f64,
    peak_tflops: f64,
) -> LogMfu {
    mfu_from_log_per_token(6.0 * params, batch, seq, step_time_s, gpus, peak_tflops)
}

/// MFU from a training log with any per-token FLOP count (the exact GEMM
/// count of [`model_flops`], or 6N): the benchmark's MFU for the same
/// shape and step time.
pub fn mfu_from_log_per_token(
    flops_per_token: f64,
    batch: f64,
    seq: f64,
    step_time_s: f64,
    gpus: f64,
    peak_tflops: f64,
) -> LogMfu {
    let tokens_per_second = batch * seq / step_time_s;
    let achieved_flops = flops_per_token * tokens_per_second;
    let peak_flops = gpus * peak_tflops * 1e12;
    LogMfu {
        tokens_per_second,
        achieved_flops,
        peak_flops,
        mfu: achieved_flops / peak_flops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use crate::preset::PRESETS;

    fn shape(preset: &str) -> ModelShape {
        parse_config(&format!("[model]\npreset = \"{preset}\"\n"), "t")
            .unwrap()
            .model
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        ((a - b) / b).abs() <= rel
    }

    #[test]
    fn exact_equals_six_n_plus_attention_for_every_preset() {
        for p in PRESETS {
            let m = shape(p.name);
            let f = model_flops(&m);
            assert!(
                close(
                    f.flops_per_token.exact,
                    f.flops_per_token.six_n_attention,
                    1e-12
                ),
                "{}: exact {} vs 6N+attn {}",
                p.name,
                f.flops_per_token.exact,
                f.flops_per_token.six_n_attention
            );
            let sum: f64 = f.by_kind.iter().map(KindFlops::total).sum();
            assert!(close(sum, f.flops_per_token.exact, 1e-12));
        }
    }

    #[test]
    fn backward_is_twice_forward() {
        let f = model_flops(&shape("llama3-70b"));
        for k in &f.by_kind {
            assert!(
                close(k.dgrad + k.wgrad, 2.0 * k.forward, 1e-12),
                "{:?}",
                k.kind
            );
        }
    }

    #[test]
    fn primer_gpt3_training_flops() {
        // 6 × 175e9 × 300e9 ≈ 3.14e23; with its real N (174 B) within 1 %.
        let f = model_flops(&shape("gpt3-175b"));
        let total = training_flops(f.flops_per_token.six_n, 300e9);
        assert!(close(total, 3.14e23, 0.01), "{total}");
        assert!(close(
            training_flops(six_n(175_000_000_000), 300e9),
            3.15e23,
            1e-9
        ));
    }

    #[test]
    fn primer_7b_on_1t_tokens() {
        assert!(close(
            training_flops(six_n(7_000_000_000), 1e12),
            4.2e22,
            1e-12
        ));
    }

    #[test]
    fn primer_8xh100_mfu_from_log() {
        let r = mfu_from_log(7e9, 8.0, 4096.0, 1.2, 8.0, 989.0);
        assert_eq!(r.tokens_per_second.round(), 27_307.0);
        assert!(
            close(r.achieved_flops, 1.147e15, 1e-3),
            "{}",
            r.achieved_flops
        );
        assert!(close(r.peak_flops, 7.912e15, 1e-12));
        assert!((r.mfu - 0.145).abs() < 0.0005, "{}", r.mfu);
    }

    #[test]
    fn days_to_train_known_answer() {
        // 1e24 FLOPs on 1000 GPUs of 1000 TFLOP/s at 50 %: 2e6 s = 23.148 days.
        let d = days_to_train(1e24, 1000.0, 1000.0, 0.5);
        assert!(close(d, 2e6 / 86_400.0, 1e-12));
    }

    #[test]
    fn ffn_is_16_d_squared_with_4x_expansion() {
        // docs/metrics.md (FLOPs per step): a 4× FFN is 16·d² FLOPs per
        // token forward, not the ~8·d² some primers give (gpt3: f = 4d, not gated).
        let m = shape("gpt3-175b");
        let f = model_flops(&m);
        let ffn_fwd: f64 = f
            .by_kind
            .iter()
            .filter(|k| matches!(k.kind, GemmKind::FfnUp | GemmKind::FfnDown))
            .map(|k| k.forward)
            .sum();
        let d = m.hidden as f64;
        assert!(close(ffn_fwd, 16.0 * d * d * m.layers as f64, 1e-12));
    }
}
