//! The resolved model shape ([`ModelShape`]) and its parameter counts:
//! what the config resolves to and the plan, the parallel layouts and the
//! FLOP counters read.

use serde::{Deserialize, Serialize};

/// A resolved model shape: every field present and validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelShape {
    /// Preset the shape came from, or `custom`.
    pub name: String,
    /// Hidden size d.
    pub hidden: u64,
    /// FFN intermediate size f.
    pub ffn: u64,
    /// Attention (query) heads.
    pub heads: u64,
    /// Key/value heads.
    pub kv_heads: u64,
    /// Transformer blocks of the whole model.
    pub layers: u64,
    /// Sequence length.
    pub seq: u64,
    /// Vocabulary size.
    pub vocab: u64,
    /// SwiGLU-style gated MLP.
    pub gated_mlp: bool,
    /// LM head included in the step.
    pub lm_head: bool,
}

impl ModelShape {
    /// Size of one attention head.
    pub fn head_dim(&self) -> u64 {
        self.hidden / self.heads
    }

    /// Output width of the fused QKV projection: d + 2·kv_heads·head_dim.
    pub fn qkv_out(&self) -> u64 {
        self.hidden + 2 * self.kv_heads * self.head_dim()
    }

    /// Weights of one transformer block (no norms, no biases).
    pub fn params_per_layer(&self) -> u64 {
        let attn = self.hidden * self.qkv_out() + self.hidden * self.hidden;
        let mlp = if self.gated_mlp { 3 } else { 2 } * self.hidden * self.ffn;
        attn + mlp
    }

    /// Non-embedding parameters N of the whole model (no norms, no LM head).
    pub fn params_non_embedding(&self) -> u64 {
        self.layers * self.params_per_layer()
    }

    /// Weights of the LM head (vocab × d).
    pub fn lm_head_params(&self) -> u64 {
        self.vocab * self.hidden
    }
}
