//! Model shapes known by name. Parameter counts in the tests are the ones
//! published for these models, without norm weights and without embeddings.

/// A named model shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Name used in configs and on the command line.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Hidden size d.
    pub hidden: u64,
    /// FFN intermediate size f.
    pub ffn: u64,
    /// Query heads.
    pub heads: u64,
    /// Key/value heads.
    pub kv_heads: u64,
    /// Transformer blocks.
    pub layers: u64,
    /// Sequence length.
    pub seq: u64,
    /// Vocabulary size.
    pub vocab: u64,
    /// SwiGLU gated MLP.
    pub gated_mlp: bool,
    /// Routed experts (1: dense).
    pub experts: u64,
    /// Experts per token.
    pub top_k: u64,
    /// Intermediate size of one expert.
    pub expert_ffn: u64,
    /// Shared experts.
    pub shared_experts: u64,
    /// Every k-th block is MoE.
    pub moe_every: u64,
    /// Embedding and LM head share one matrix.
    pub tied_embeddings: bool,
}

/// The MoE fields of a dense model (`..DENSE` in the table below).
const DENSE: Preset = Preset {
    name: "",
    description: "",
    hidden: 0,
    ffn: 0,
    heads: 0,
    kv_heads: 0,
    layers: 0,
    seq: 0,
    vocab: 0,
    gated_mlp: true,
    experts: 1,
    top_k: 1,
    expert_ffn: 0,
    shared_experts: 0,
    moe_every: 1,
    tied_embeddings: false,
};

/// Every preset, in display order.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "tiny",
        description: "small Llama-shaped model for the CPU backend (quickstart)",
        hidden: 512,
        ffn: 1536,
        heads: 8,
        kv_heads: 4,
        layers: 4,
        seq: 512,
        vocab: 32_000,
        gated_mlp: true,
        ..DENSE
    },
    Preset {
        name: "llama3-8b",
        description: "Llama 3 8B",
        hidden: 4096,
        ffn: 14336,
        heads: 32,
        kv_heads: 8,
        layers: 32,
        seq: 8192,
        vocab: 128_256,
        gated_mlp: true,
        ..DENSE
    },
    Preset {
        name: "llama3-70b",
        description: "Llama 3 70B",
        hidden: 8192,
        ffn: 28672,
        heads: 64,
        kv_heads: 8,
        layers: 80,
        seq: 8192,
        vocab: 128_256,
        gated_mlp: true,
        ..DENSE
    },
    Preset {
        name: "llama3-405b",
        description: "Llama 3.1 405B",
        hidden: 16384,
        ffn: 53248,
        heads: 128,
        kv_heads: 8,
        layers: 126,
        seq: 8192,
        vocab: 128_256,
        gated_mlp: true,
        ..DENSE
    },
    Preset {
        name: "gpt3-175b",
        description: "GPT-3 175B",
        hidden: 12288,
        ffn: 49152,
        heads: 96,
        kv_heads: 96,
        layers: 96,
        seq: 2048,
        vocab: 50_257,
        gated_mlp: false,
        ..DENSE
    },
    Preset {
        name: "mixtral-8x7b",
        description: "Mixtral 8x7B (MoE: 8 experts, top-2)",
        hidden: 4096,
        ffn: 14336,
        heads: 32,
        kv_heads: 8,
        layers: 32,
        seq: 4096,
        vocab: 32_000,
        gated_mlp: true,
        experts: 8,
        top_k: 2,
        expert_ffn: 14336,
        ..DENSE
    },
    Preset {
        name: "qwen1.5-moe-a2.7b",
        description: "Qwen1.5-MoE-A2.7B (MoE: 60 experts, top-4, 4 shared)",
        hidden: 2048,
        ffn: 5632,
        heads: 16,
        kv_heads: 16,
        layers: 24,
        seq: 8192,
        vocab: 151_936,
        gated_mlp: true,
        experts: 60,
        top_k: 4,
        expert_ffn: 1408,
        shared_experts: 4,
        ..DENSE
    },
];

/// Looks a preset up by name (case-insensitive).
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Names of all presets.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use crate::config::parse_config;

    fn params(preset: &str) -> u64 {
        parse_config(&format!("[model]\npreset = \"{preset}\"\n"), "t")
            .unwrap()
            .model
            .params_non_embedding()
    }

    #[test]
    fn parameter_counts_match_published_shapes() {
        assert_eq!(params("llama3-8b"), 6_979_321_856);
        assert_eq!(params("llama3-70b"), 68_451_041_280);
        assert_eq!(params("llama3-405b"), 401_646_551_040);
        assert_eq!(params("gpt3-175b"), 173_946_175_488);
        assert_eq!(params("tiny"), 12_582_912);
    }

    #[test]
    fn moe_total_and_active_parameters_match_model_cards() {
        let model = |p: &str| {
            parse_config(&format!("[model]\npreset = \"{p}\"\n"), "t")
                .unwrap()
                .model
        };
        let within = |got: u64, want: f64| ((got as f64 - want) / want).abs() <= 0.005;
        // Mixtral 8x7B: 46.7 B total, 12.9 B active (Mistral AI).
        let m = model("mixtral-8x7b");
        assert!(within(m.params_total(), 46.7e9), "{}", m.params_total());
        assert!(
            within(m.params_active_total(), 12.9e9),
            "{}",
            m.params_active_total()
        );
        // Qwen1.5-MoE-A2.7B: 14.3 B total, 2.7 B active (Qwen).
        let q = model("qwen1.5-moe-a2.7b");
        assert!(within(q.params_total(), 14.3e9), "{}", q.params_total());
        assert!(
            within(q.params_active_total(), 2.7e9),
            "{}",
            q.params_active_total()
        );
        // Llama 3 8B: 8.03 B total; dense, so active = total.
        let l = model("llama3-8b");
        assert!(within(l.params_total(), 8.03e9), "{}", l.params_total());
        assert_eq!(l.params_active_total(), l.params_total());
    }

    #[test]
    fn one_expert_top_1_is_the_dense_model() {
        let dense = parse_config("[model]\npreset = \"llama3-8b\"\n", "t").unwrap();
        let one = parse_config(
            "[model]\npreset = \"llama3-8b\"\nexperts = 1\ntop_k = 1\nexpert_ffn = 14336\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            one.model.params_non_embedding(),
            dense.model.params_non_embedding()
        );
        let f = |c: &crate::config::Config| crate::flops::model_flops(&c.model);
        assert_eq!(f(&one).flops_per_token, f(&dense).flops_per_token);
    }

    #[test]
    fn find_is_case_insensitive() {
        assert_eq!(super::find("LLaMA3-8B").unwrap().hidden, 4096);
        assert!(super::find("nope").is_none());
    }
}
