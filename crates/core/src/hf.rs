//! Model shapes from a Hugging Face `config.json` (the text; the caller
//! reads the file, nothing is downloaded).
//!
//! [`model_section`] turns the fields every supported architecture has into
//! a `[model]` section, which then goes through the same validation as a
//! hand-written one. Supported `model_type`s (or `architectures`):
//!
//! | family | model_type | MoE fields read |
//! |---|---|---|
//! | Llama | `llama` | — |
//! | Mistral | `mistral` | — |
//! | Qwen2 / Qwen3 | `qwen2`, `qwen3` | — |
//! | Mixtral | `mixtral` | `num_local_experts`, `num_experts_per_tok` |
//! | Qwen-MoE | `qwen2_moe`, `qwen3_moe` | `num_experts`, `num_experts_per_tok`, `moe_intermediate_size`, `shared_expert_intermediate_size`, `decoder_sparse_step` |
//!
//! Dense fields: `hidden_size`, `intermediate_size`, `num_attention_heads`,
//! `num_key_value_heads` (default: the heads), `num_hidden_layers`,
//! `vocab_size`, `tie_word_embeddings` (default false), and the sequence
//! length from `max_position_embeddings` unless the caller sets
//! `model.seq`. All are gated-MLP (SwiGLU) models. Qwen-MoE's shared expert
//! (`shared_expert_intermediate_size`) is counted as
//! `shared_expert_intermediate_size / moe_intermediate_size` shared experts;
//! its one-column sigmoid gate and every norm and bias are left out, as
//! everywhere in mfubench's counts. DeepSeek-style models (dense first
//! blocks, `first_k_dense_replace`) are not supported: one line says so.
//!
//! Every error is one line naming the file and the field.

use serde_json::{Map, Value};

use crate::config::ModelSection;

/// What is wrong with a `config.json`: one line naming the file and field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct HfError {
    /// The file (as the user named it).
    pub file: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The architectures read, by `model_type`.
pub const MODEL_TYPES: [&str; 7] = [
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
];

/// The `[model]` section of the Hugging Face config in `text` (`file` names
/// it in errors). `seq`, when given, replaces `max_position_embeddings`.
pub fn model_section(text: &str, file: &str, seq: Option<u64>) -> Result<ModelSection, HfError> {
    let err = |message: String| HfError {
        file: file.to_string(),
        message,
    };
    let root: Value =
        serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let o = root
        .as_object()
        .ok_or_else(|| err("not a JSON object; give the model's config.json".into()))?;
    let model_type = model_type(o).ok_or_else(|| {
        err(format!(
            "unknown architecture (model_type {}); supported model_type values: {}",
            o.get("model_type")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "missing".into()),
            MODEL_TYPES.join(", ")
        ))
    })?;
    let int = |field: &str| -> Result<Option<u64>, HfError> {
        match o.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                err(format!(
                    "{field} = {v} is not a non-negative integer; fix the file"
                ))
            }),
        }
    };
    let need = |field: &str| -> Result<u64, HfError> {
        int(field)?.ok_or_else(|| {
            err(format!(
                "{field} is missing; a {model_type} config.json has it"
            ))
        })
    };
    let hidden = need("hidden_size")?;
    let heads = need("num_attention_heads")?;
    let kv_heads = int("num_key_value_heads")?.unwrap_or(heads);
    let layers = need("num_hidden_layers")?;
    let vocab = need("vocab_size")?;
    let seq = match seq {
        Some(s) => s,
        None => need("max_position_embeddings")?,
    };
    let tied = match o.get("tie_word_embeddings") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(err(format!(
                "tie_word_embeddings = {v} is not true or false; fix the file"
            )))
        }
    };
    if int("first_k_dense_replace")?.is_some_and(|k| k > 0) {
        return Err(err(
            "first_k_dense_replace: DeepSeek-style dense first blocks are not supported yet; describe the model in [model] by hand".into(),
        ));
    }
    let mut m = ModelSection {
        hidden: Some(hidden),
        heads: Some(heads),
        kv_heads: Some(kv_heads),
        layers: Some(layers),
        seq: Some(seq),
        vocab: Some(vocab),
        gated_mlp: Some(true),
        tied_embeddings: Some(tied),
        ..Default::default()
    };
    match model_type {
        "mixtral" => {
            let f = need("intermediate_size")?;
            m.ffn = Some(f);
            m.experts = Some(need("num_local_experts")?);
            m.top_k = Some(need("num_experts_per_tok")?);
            m.expert_ffn = Some(f);
        }
        "qwen2_moe" | "qwen3_moe" => {
            let e = need("moe_intermediate_size")?;
            m.experts = Some(need("num_experts")?);
            m.top_k = Some(need("num_experts_per_tok")?);
            m.expert_ffn = Some(e);
            // Dense blocks (decoder_sparse_step > 1, or mlp_only_layers)
            // use intermediate_size.
            m.ffn = Some(int("intermediate_size")?.unwrap_or(e));
            m.moe_every = Some(int("decoder_sparse_step")?.unwrap_or(1).max(1));
            if let Some(Value::Array(a)) = o.get("mlp_only_layers") {
                if !a.is_empty() {
                    return Err(err(
                        "mlp_only_layers: dense blocks at listed positions are not supported yet; describe the model in [model] by hand".into(),
                    ));
                }
            }
            let shared = int("shared_expert_intermediate_size")?.unwrap_or(0);
            if e > 0 && shared % e != 0 {
                return Err(err(format!(
                    "shared_expert_intermediate_size = {shared} is not a multiple of moe_intermediate_size = {e}; describe the model in [model] by hand"
                )));
            }
            m.shared_experts = Some(shared.checked_div(e).unwrap_or(0));
        }
        _ => m.ffn = Some(need("intermediate_size")?),
    }
    Ok(m)
}

/// The config file's text with `[model] hf_config`'s shape filled in:
/// every `[model]` key of the Hugging Face config that the file does not
/// set is added (explicit keys override the config.json, as they override
/// a preset; `model.seq`, when set, replaces `max_position_embeddings`).
/// The path is relative to the config file's folder; `read` reads it (the
/// caller's I/O). A text without `hf_config`, or that does not parse (the
/// config parser reports that), is returned unchanged. Errors are one line
/// naming the config file, `model.hf_config` or the config.json's field.
pub fn inline(
    text: &str,
    file: &str,
    read: impl FnOnce(&std::path::Path) -> Result<String, String>,
) -> Result<String, String> {
    let Ok(mut doc) = text.parse::<toml::Table>() else {
        return Ok(text.to_string());
    };
    let Some(toml::Value::Table(model)) = doc.get_mut("model") else {
        return Ok(text.to_string());
    };
    let Some(hf) = model.get("hf_config") else {
        return Ok(text.to_string());
    };
    let Some(hf) = hf.as_str().map(str::to_string) else {
        return Err(format!(
            "{file}: model.hf_config must be a path in quotes, e.g. \"llama/config.json\""
        ));
    };
    if model.contains_key("preset") {
        return Err(format!(
            "{file}: model.preset and model.hf_config are both set; keep one"
        ));
    }
    let path = hf_path(file, &hf);
    let json = read(&path).map_err(|e| {
        format!(
            "{file}: model.hf_config = \"{hf}\": cannot read {}: {e}",
            path.display()
        )
    })?;
    let seq = model
        .get("seq")
        .and_then(toml::Value::as_integer)
        .and_then(|s| u64::try_from(s).ok());
    let section = model_section(&json, &path.display().to_string(), seq)
        .map_err(|e| format!("{file}: model.hf_config: {e}"))?;
    let toml::Value::Table(fields) =
        toml::Value::try_from(&section).map_err(|e| format!("{file}: model.hf_config: {e}"))?
    else {
        return Ok(text.to_string());
    };
    for (k, v) in fields {
        model.entry(k).or_insert(v);
    }
    Ok(doc.to_string())
}

/// Where `model.hf_config = hf` of the config file `file` is: relative
/// paths are relative to the config file's folder.
pub fn hf_path(file: &str, hf: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(hf);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::path::Path::new(file)
        .parent()
        .map(|d| d.join(p))
        .unwrap_or_else(|| p.to_path_buf())
}

/// The supported `model_type` of a config, from `model_type` or the first
/// of `architectures`.
fn model_type(o: &Map<String, Value>) -> Option<&'static str> {
    if let Some(t) = o.get("model_type").and_then(Value::as_str) {
        return MODEL_TYPES.iter().copied().find(|k| *k == t);
    }
    let arch = o
        .get("architectures")?
        .as_array()?
        .first()?
        .as_str()?
        .to_ascii_lowercase();
    let by_arch = [
        ("llamafor", "llama"),
        ("mistralfor", "mistral"),
        ("mixtralfor", "mixtral"),
        ("qwen2moefor", "qwen2_moe"),
        ("qwen3moefor", "qwen3_moe"),
        ("qwen2for", "qwen2"),
        ("qwen3for", "qwen3"),
    ];
    by_arch
        .iter()
        .find(|(prefix, _)| arch.starts_with(prefix))
        .map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_config, ConfigFile};

    /// Llama 3 8B's config.json, as published (the fields read, and some
    /// that are not).
    pub const LLAMA3_8B: &str = r#"{
      "architectures": ["LlamaForCausalLM"],
      "attention_bias": false,
      "bos_token_id": 128000,
      "eos_token_id": 128001,
      "hidden_act": "silu",
      "hidden_size": 4096,
      "initializer_range": 0.02,
      "intermediate_size": 14336,
      "max_position_embeddings": 8192,
      "model_type": "llama",
      "num_attention_heads": 32,
      "num_hidden_layers": 32,
      "num_key_value_heads": 8,
      "rms_norm_eps": 1e-05,
      "rope_theta": 500000.0,
      "tie_word_embeddings": false,
      "torch_dtype": "bfloat16",
      "vocab_size": 128256
    }"#;

    const MIXTRAL: &str = r#"{
      "architectures": ["MixtralForCausalLM"],
      "hidden_size": 4096, "intermediate_size": 14336,
      "max_position_embeddings": 32768, "model_type": "mixtral",
      "num_attention_heads": 32, "num_experts_per_tok": 2,
      "num_hidden_layers": 32, "num_key_value_heads": 8,
      "num_local_experts": 8, "tie_word_embeddings": false,
      "vocab_size": 32000
    }"#;

    const QWEN_MOE: &str = r#"{
      "architectures": ["Qwen2MoeForCausalLM"], "decoder_sparse_step": 1,
      "hidden_size": 2048, "intermediate_size": 5632,
      "max_position_embeddings": 8192, "model_type": "qwen2_moe",
      "moe_intermediate_size": 1408, "num_attention_heads": 16,
      "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24,
      "num_key_value_heads": 16, "shared_expert_intermediate_size": 5632,
      "tie_word_embeddings": false, "vocab_size": 151936
    }"#;

    fn config(m: ModelSection) -> crate::config::Config {
        ConfigFile {
            model: m,
            ..parse_config_file_default()
        }
        .resolve("hf")
        .unwrap()
    }

    fn parse_config_file_default() -> ConfigFile {
        crate::config::parse_config_file("[model]\npreset = \"tiny\"\n", "x").unwrap()
    }

    #[test]
    fn llama3_8b_config_json_is_the_preset() {
        let hf = config(model_section(LLAMA3_8B, "config.json", None).unwrap());
        let preset = parse_config("[model]\npreset = \"llama3-8b\"\n", "x").unwrap();
        let (a, b) = (
            crate::flops::model_flops(&hf.model),
            crate::flops::model_flops(&preset.model),
        );
        assert_eq!(a, b);
        assert_eq!(hf.model.params_total(), preset.model.params_total());
        assert_eq!(hf.model.seq, 8192);
    }

    #[test]
    fn moe_configs_give_the_model_cards_counts() {
        let m = config(model_section(MIXTRAL, "m.json", Some(4096)).unwrap()).model;
        let preset = parse_config("[model]\npreset = \"mixtral-8x7b\"\n", "x").unwrap();
        assert_eq!(
            crate::flops::model_flops(&m),
            crate::flops::model_flops(&preset.model)
        );
        let q = config(model_section(QWEN_MOE, "q.json", None).unwrap()).model;
        let preset = parse_config("[model]\npreset = \"qwen1.5-moe-a2.7b\"\n", "x").unwrap();
        assert_eq!(q.params_total(), preset.model.params_total());
        assert_eq!(q.params_active_total(), preset.model.params_active_total());
        assert_eq!(q.shared_experts, 4);
    }

    #[test]
    fn hf_config_in_a_config_file_is_inlined_under_explicit_keys() {
        let read = |p: &std::path::Path| {
            assert_eq!(p, std::path::Path::new("cfg/models/config.json"));
            Ok(LLAMA3_8B.to_string())
        };
        let text = "[model]\nhf_config = \"models/config.json\"\nseq = 2048\nlayers = 16\n[run]\nlayers = 2\n";
        let out = inline(text, "cfg/run.toml", read).unwrap();
        let c = parse_config(&out, "cfg/run.toml").unwrap();
        // The config.json's shape, the file's seq and layers over it.
        assert_eq!(
            (c.model.hidden, c.model.ffn, c.model.kv_heads),
            (4096, 14336, 8)
        );
        assert_eq!((c.model.seq, c.model.layers, c.run.layers), (2048, 16, 2));
        assert!(
            c.model.name.contains("models/config.json"),
            "{}",
            c.model.name
        );
        // Unchanged without hf_config; errors name the file and the field.
        let plain = "[model]\npreset = \"tiny\"\n";
        assert_eq!(inline(plain, "x.toml", |_| unreachable!()).unwrap(), plain);
        let both = "[model]\npreset = \"tiny\"\nhf_config = \"c.json\"\n";
        assert!(inline(both, "x.toml", |_| unreachable!())
            .unwrap_err()
            .contains("model.preset and model.hf_config are both set"));
        let e = inline("[model]\nhf_config = \"c.json\"\n", "x.toml", |_| {
            Err("No such file".into())
        })
        .unwrap_err();
        assert_eq!(
            e,
            "x.toml: model.hf_config = \"c.json\": cannot read c.json: No such file"
        );
        let e = inline("[model]\nhf_config = \"c.json\"\n", "x.toml", |_| {
            Ok("{\"model_type\": \"llama\"}".into())
        })
        .unwrap_err();
        assert!(
            e.starts_with("x.toml: model.hf_config: c.json: hidden_size is missing"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = model_section("{", "c.json", None).unwrap_err();
        assert!(e.to_string().starts_with("c.json: not valid JSON"), "{e}");
        let e = model_section(r#"{"model_type": "gpt2"}"#, "c.json", None).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown architecture (model_type \"gpt2\")"),
            "{e}"
        );
        let missing = LLAMA3_8B.replace("\"hidden_size\": 4096,", "");
        let e = model_section(&missing, "c.json", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.json: hidden_size is missing; a llama config.json has it"
        );
        let bad = LLAMA3_8B.replace("\"vocab_size\": 128256", "\"vocab_size\": -1");
        let e = model_section(&bad, "c.json", None).unwrap_err();
        assert!(e.to_string().contains("vocab_size = -1 is not"), "{e}");
        let ds = MIXTRAL.replace(
            "\"vocab_size\"",
            "\"first_k_dense_replace\": 1, \"vocab_size\"",
        );
        let e = model_section(&ds, "c.json", None).unwrap_err();
        assert!(e.to_string().contains("first_k_dense_replace"), "{e}");
        // No model_type: the architecture names it.
        let arch_only = LLAMA3_8B.replace("\"model_type\": \"llama\",", "");
        assert!(model_section(&arch_only, "c.json", None).is_ok());
    }
}
