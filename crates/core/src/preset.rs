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
}

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
    fn find_is_case_insensitive() {
        assert_eq!(super::find("LLaMA3-8B").unwrap().hidden, 4096);
        assert!(super::find("nope").is_none());
    }
}
