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
    /// Routed experts of a MoE block (1: dense; runs written before MoE
    /// have none).
    #[serde(default = "one")]
    pub experts: u64,
    /// Experts per token.
    #[serde(default = "one")]
    pub top_k: u64,
    /// Intermediate size of one expert (0 in runs written before MoE).
    #[serde(default)]
    pub expert_ffn: u64,
    /// Shared experts (each `expert_ffn` wide).
    #[serde(default)]
    pub shared_experts: u64,
    /// Every k-th block is MoE.
    #[serde(default = "one")]
    pub moe_every: u64,
    /// Embedding and LM head share one matrix.
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Token routing (`balanced` or `zipf:S`, see [`crate::routing`]).
    #[serde(default = "balanced")]
    pub routing: String,
    /// Seed of the Zipf popularity order.
    #[serde(default = "one")]
    pub routing_seed: u64,
    /// Chunks a MoE block's tokens are split into (each routed, exchanged
    /// and computed on its own).
    #[serde(default = "one")]
    pub moe_chunks: u64,
}

fn balanced() -> String {
    "balanced".into()
}

fn one() -> u64 {
    1
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

    /// Whether the model has mixture-of-experts blocks.
    pub fn is_moe(&self) -> bool {
        self.experts > 1
    }

    /// Whether block `layer` (0-based) is a mixture-of-experts block.
    pub fn is_moe_layer(&self, layer: u64) -> bool {
        self.is_moe() && (layer + 1) % self.moe_every.max(1) == 0
    }

    /// Weights of one FFN of intermediate size `f` (2 or 3 matrices d × f).
    fn mlp_params(&self, f: u64) -> u64 {
        (if self.gated_mlp { 3 } else { 2 }) * self.hidden * f
    }

    /// Weights of the attention of one block (QKV and the output
    /// projection).
    pub fn attention_params(&self) -> u64 {
        self.hidden * self.qkv_out() + self.hidden * self.hidden
    }

    /// Weights of block `layer` (no norms, no biases): attention, and a
    /// dense FFN, or (MoE) the router, every routed expert and the shared
    /// experts.
    pub fn params_of_layer(&self, layer: u64) -> u64 {
        self.attention_params() + self.ffn_params(layer, self.experts)
    }

    /// Weights of block `layer` one token uses: as [`Self::params_of_layer`]
    /// with `top_k` routed experts instead of all (the router counts whole).
    pub fn active_params_of_layer(&self, layer: u64) -> u64 {
        self.attention_params() + self.ffn_params(layer, self.top_k)
    }

    /// FFN weights of block `layer` with `routed` of its routed experts.
    fn ffn_params(&self, layer: u64, routed: u64) -> u64 {
        if self.is_moe_layer(layer) {
            let e = self.expert_ffn_size();
            self.hidden * self.experts + (routed + self.shared_experts) * self.mlp_params(e)
        } else {
            self.mlp_params(self.ffn)
        }
    }

    /// Tokens each expert of a MoE block gets when `tokens` tokens are
    /// routed (see [`crate::routing`]).
    pub fn tokens_per_expert(&self, tokens: u64) -> Vec<u64> {
        let rule = crate::routing::Routing::parse(&self.routing)
            .unwrap_or(crate::routing::Routing::Balanced);
        crate::routing::tokens_per_expert(tokens, self.top_k, self.experts, rule, self.routing_seed)
    }

    /// Intermediate size of one expert (`ffn` where none was recorded).
    pub fn expert_ffn_size(&self) -> u64 {
        if self.expert_ffn > 0 {
            self.expert_ffn
        } else {
            self.ffn
        }
    }

    /// Weights of one transformer block of a dense model (the first block
    /// of any model).
    pub fn params_per_layer(&self) -> u64 {
        self.params_of_layer(0)
    }

    /// Non-embedding parameters N of the whole model (no norms, no LM head):
    /// every expert counted.
    pub fn params_non_embedding(&self) -> u64 {
        (0..self.layers).map(|l| self.params_of_layer(l)).sum()
    }

    /// Non-embedding parameters one token uses (`top_k` routed experts per
    /// MoE block); equal to [`Self::params_non_embedding`] for a dense
    /// model. 6 · this is the 6N rule's N for MoE.
    pub fn params_active_non_embedding(&self) -> u64 {
        (0..self.layers)
            .map(|l| self.active_params_of_layer(l))
            .sum()
    }

    /// Embedding and LM head weights: vocab × d each, once when tied.
    pub fn embedding_params(&self) -> u64 {
        let n = self.vocab * self.hidden;
        if self.tied_embeddings {
            n
        } else {
            2 * n
        }
    }

    /// Total parameters as model cards count them (embeddings and LM head
    /// included, norms and biases not).
    pub fn params_total(&self) -> u64 {
        self.params_non_embedding() + self.embedding_params()
    }

    /// Parameters one token uses, embeddings and LM head included (model
    /// cards' "active" count).
    pub fn params_active_total(&self) -> u64 {
        self.params_active_non_embedding() + self.embedding_params()
    }

    /// Weights of the LM head (vocab × d).
    pub fn lm_head_params(&self) -> u64 {
        self.vocab * self.hidden
    }
}
