//! `mfubench flops` and `mfubench presets`: the FLOP calculator.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Map, Value};

use mfubench_core::config::{parse_config, Config, Dtype, ModelShape};
use mfubench_core::flops::{self, ModelFlops};
use mfubench_core::peak;
use mfubench_core::preset::PRESETS;

use crate::exit::{self, usage};
use mfubench_report::fmt::group;

/// Arguments of `mfubench flops`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct FlopsArgs {
    /// Model preset (see `mfubench presets`).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// Config file whose [model] to use.
    #[arg(long, conflicts_with = "hf_config")]
    pub config: Option<String>,
    /// A Hugging Face config.json to read the model shape from (Llama,
    /// Mistral, Qwen2/3, Mixtral, Qwen-MoE; nothing is downloaded). The
    /// sequence length is its max_position_embeddings unless --seq is given.
    #[arg(long, conflicts_with = "preset")]
    pub hf_config: Option<String>,
    /// Training tokens: prints total training FLOPs (e.g. 15e12).
    #[arg(long)]
    pub tokens: Option<f64>,
    /// Devices in the job (with --tokens: days to train; with --step-time: MFU).
    #[arg(long)]
    pub gpus: Option<f64>,
    /// Device model for the peak (e.g. h100-sxm, or h100 for the SXM part;
    /// see the peak table in docs/metrics.md).
    #[arg(long)]
    pub gpu: Option<String>,
    /// Dtype of the peak (bf16, fp16, fp8, tf32, f32).
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Peak TFLOP/s per device, instead of --gpu.
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Assumed MFU for days-to-train: a fraction or a percentage (0.4 or 40%).
    #[arg(long, value_parser = crate::report_cmd::parse_fraction)]
    pub mfu: Option<f64>,
    /// Parameters N, for MFU from a training log (e.g. 7e9).
    #[arg(long)]
    pub params: Option<f64>,
    /// Global batch in sequences, for MFU from a training log.
    #[arg(long)]
    pub batch: Option<f64>,
    /// Sequence length, for MFU from a training log.
    #[arg(long)]
    pub seq: Option<f64>,
    /// Seconds per training step, for MFU from a training log.
    #[arg(long)]
    pub step_time: Option<f64>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `mfubench presets`.
#[derive(Debug, Args)]
pub struct PresetsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn positive(flag: &str, v: Option<f64>) -> Result<Option<f64>> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => {
            Err(usage(format!("--{flag} = {x} must be a positive number")))
        }
        _ => Ok(v),
    }
}

fn load_model(args: &FlopsArgs) -> Result<Option<Config>> {
    if let Some(path) = &args.hf_config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("--hf-config {path}: cannot read: {e}")))?;
        let seq = positive("seq", args.seq)?.map(|s| s.round() as u64);
        let mut model = mfubench_core::hf::model_section(&text, path, seq)
            .map_err(|e| usage(format!("--hf-config {e}")))?;
        // Named for where it came from ("hf:PATH"), as in a run's config.
        model.hf_config = Some(path.clone());
        let file = mfubench_core::config::ConfigFile {
            model,
            ..Default::default()
        };
        return file
            .resolve(path)
            .map(Some)
            .map_err(|e| usage(format!("--hf-config {e}")));
    }
    if let Some(path) = &args.config {
        let text = crate::run_cmd::read_config(path)?;
        return parse_config(&text, path)
            .map(Some)
            .map_err(|e| usage(e.to_string()));
    }
    if let Some(p) = &args.preset {
        let text = format!("[model]\npreset = {}\n", toml_string(p));
        return parse_config(&text, "--preset").map(Some).map_err(|e| {
            usage(
                e.to_string()
                    .replace("--preset: model.preset: ", "--preset: "),
            )
        });
    }
    Ok(None)
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The peak per device in TFLOP/s from --peak-tflops or --gpu + --dtype.
fn peak_tflops(args: &FlopsArgs) -> Result<Option<(f64, String)>> {
    if let Some(p) = positive("peak-tflops", args.peak_tflops)? {
        return Ok(Some((p, "--peak-tflops".into())));
    }
    let Some(key) = &args.gpu else {
        return Ok(None);
    };
    let dev = peak::by_key(key).ok_or_else(|| {
        usage(format!(
            "--gpu {key}: unknown device; known: {} (aliases: {})",
            peak::keys().join(", "),
            peak::ALIASES
                .iter()
                .map(|(a, k)| format!("{a} = {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let dtype = Dtype::parse(&args.dtype).ok_or_else(|| {
        usage(format!(
            "--dtype {}: unknown dtype; use bf16, fp16, fp8, tf32, f32 or f64",
            args.dtype
        ))
    })?;
    let p = dev.peak(dtype).ok_or_else(|| {
        usage(format!(
            "--gpu {key} has no {dtype} tensor cores; choose another --dtype"
        ))
    })?;
    Ok(Some((p, format!("{} {dtype} dense", dev.name))))
}

/// Runs `mfubench flops`; returns the exit code.
pub fn run_flops(args: &FlopsArgs) -> Result<u8> {
    let config = load_model(args)?;
    let tokens = positive("tokens", args.tokens)?;
    let gpus = positive("gpus", args.gpus)?;
    let mfu = positive("mfu", args.mfu)?;
    if let Some(m) = mfu {
        if m > 1.0 {
            return Err(usage(format!(
                "--mfu = {m} must be between 0 and 1 (e.g. 0.40)"
            )));
        }
    }
    let params = positive("params", args.params)?;
    let batch = positive("batch", args.batch)?;
    let seq = positive("seq", args.seq)?;
    let step_time = positive("step-time", args.step_time)?;
    let peak = peak_tflops(args)?;

    let mut out = Map::new();
    let mut text = String::new();

    let model_flops = config.as_ref().map(|c| flops::model_flops(&c.model));
    if let (Some(c), Some(f)) = (&config, &model_flops) {
        out.insert("model".into(), serde_json::to_value(&c.model)?);
        out.insert("params_non_embedding".into(), json!(f.params_non_embedding));
        out.insert(
            "params_active_non_embedding".into(),
            json!(f.params_active_non_embedding),
        );
        out.insert("params_total".into(), json!(f.params_total));
        out.insert("params_active_total".into(), json!(f.params_active_total));
        out.insert(
            "flops_per_token".into(),
            serde_json::to_value(&f.flops_per_token)?,
        );
        out.insert("by_kind".into(), serde_json::to_value(&f.by_kind)?);
        out.insert(
            "note".into(),
            json!("attention counted as executed (full s×s scores, not halved for the causal mask); LM head included only with model.lm_head = true"),
        );
        text.push_str(&model_table(&c.model, f));
    }

    // Total training FLOPs and days: the exact GEMM count when the model
    // is known (as the benchmark counts), 6N beside it.
    if let Some(tok) = tokens {
        let (per_token, rule) = match (&model_flops, params) {
            (Some(f), _) => (f.flops_per_token.exact, "exact GEMM count"),
            (None, Some(p)) => (
                flops::six_n(p.round() as u64),
                "6N rule: only --params given",
            ),
            (None, None) => {
                return Err(usage(
                    "--tokens needs a model: give --preset, --config or --params",
                ))
            }
        };
        let total = flops::training_flops(per_token, tok);
        out.insert("tokens".into(), json!(tok));
        out.insert("training_flops".into(), json!(total));
        out.insert("training_flops_rule".into(), json!(rule));
        text.push_str(&format!(
            "\nTraining on {} tokens ({rule}): {} FLOPs\n",
            sci(tok),
            sci(total)
        ));
        if let Some(f) = &model_flops {
            let six_n = flops::training_flops(f.flops_per_token.six_n, tok);
            out.insert("training_flops_6n".into(), json!(six_n));
            text.push_str(&format!(
                "  6N rule:                        {} FLOPs\n",
                sci(six_n)
            ));
        }
        match (gpus, &peak, mfu) {
            (Some(g), Some((p, src)), Some(m)) => {
                let days = flops::days_to_train(total, g, *p, m);
                out.insert("days".into(), json!(days));
                out.insert("peak_tflops".into(), json!(p));
                text.push_str(&format!(
                    "  on {g} devices at {p} TFLOP/s ({src}) and MFU {:.1} %: {days:.1} days\n",
                    m * 100.0
                ));
            }
            (None, None, None) => {}
            _ => {
                return Err(usage(
                    "days to train needs all of --gpus, --gpu (or --peak-tflops) and --mfu",
                ))
            }
        }
    }

    // MFU from a training log.
    if let Some(st) = step_time {
        let (Some(b), Some(s), Some(g), Some((p, src))) = (batch, seq, gpus, &peak) else {
            return Err(usage(
                "MFU from a log needs --params (or a model), --batch, --seq, --step-time, --gpus and --gpu (or --peak-tflops)",
            ));
        };
        // The exact count of the model at the log's sequence length (the
        // attention term depends on it), as the benchmark's MFU counts;
        // 6N beside it. With --params alone only 6N is known.
        let exact = config.as_ref().map(|c| {
            let mut m = c.model.clone();
            m.seq = s.round() as u64;
            flops::model_flops(&m).flops_per_token
        });
        let (per_token, rule, six_n) = match (&exact, params) {
            (Some(f), Some(p)) => (f.exact, "exact GEMM count", 6.0 * p),
            (Some(f), None) => (f.exact, "exact GEMM count", f.six_n),
            (None, Some(p)) => (6.0 * p, "6N rule: only --params given", 6.0 * p),
            (None, None) => {
                return Err(usage("MFU from a log needs --params, --preset or --config"))
            }
        };
        let r = flops::mfu_from_log_per_token(per_token, b, s, st, g, *p);
        let r6 = flops::mfu_from_log_per_token(six_n, b, s, st, g, *p);
        out.insert("tokens_per_second".into(), json!(r.tokens_per_second));
        out.insert("achieved_flops".into(), json!(r.achieved_flops));
        out.insert("peak_flops".into(), json!(r.peak_flops));
        out.insert("mfu".into(), json!(r.mfu));
        out.insert("mfu_rule".into(), json!(rule));
        out.insert("mfu_6n".into(), json!(r6.mfu));
        text.push_str(&format!(
            "\nMFU from the training log ({rule})\n  tokens/s        {:.0}\n  achieved        {} FLOP/s\n  peak            {} FLOP/s ({g} × {p} TFLOP/s, {src})\n  MFU             {:.1} %   (6N rule: {:.1} %)\n",
            r.tokens_per_second,
            sci(r.achieved_flops),
            sci(r.peak_flops),
            r.mfu * 100.0,
            r6.mfu * 100.0
        ));
    } else if batch.is_some() || seq.is_some() {
        return Err(usage(
            "--batch and --seq are for MFU from a log: add --step-time",
        ));
    }

    if out.is_empty() {
        return Err(usage(
            "nothing to compute: give --preset or --config (per-token FLOPs), or --params --batch --seq --step-time --gpus --gpu (MFU from a log); see `mfubench flops --help`",
        ));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
    } else {
        print!("{text}");
    }
    Ok(exit::OK)
}

/// Scientific notation with 4 significant digits: 3.142e23.
pub fn sci(x: f64) -> String {
    format!("{x:.3e}")
}

fn model_table(m: &ModelShape, f: &ModelFlops) -> String {
    let mut s = format!(
        "Model {} — d={} ffn={} heads={}/{} kv layers={} seq={} gated_mlp={}{}\n",
        m.name,
        m.hidden,
        m.ffn,
        m.heads,
        m.kv_heads,
        m.layers,
        m.seq,
        m.gated_mlp,
        if m.lm_head { " lm_head" } else { "" }
    );
    if m.is_moe() {
        s.push_str(&format!(
            "MoE: {} experts, top-{}, expert ffn={}, {} shared, every {} block(s)\n",
            m.experts,
            m.top_k,
            m.expert_ffn_size(),
            m.shared_experts,
            m.moe_every
        ));
    }
    s.push_str(&format!(
        "Parameters: total {} ({:.1} B), active per token {} ({:.1} B) (embeddings and LM head included{}; norms and biases not)\n",
        group(f.params_total),
        f.params_total as f64 / 1e9,
        group(f.params_active_total),
        f.params_active_total as f64 / 1e9,
        if m.tied_embeddings { ", tied" } else { "" }
    ));
    s.push_str(&format!(
        "Non-embedding parameters N = {} ({}){}\n\nFLOPs per token, all {} layers:\n",
        group(f.params_non_embedding),
        sci(f.params_non_embedding as f64),
        if m.is_moe() {
            format!(
                ", active N = {} ({}): 6·N_active = {}",
                group(f.params_active_non_embedding),
                sci(f.params_active_non_embedding as f64),
                sci(f.flops_per_token.six_n)
            )
        } else {
            String::new()
        },
        m.layers
    ));
    s.push_str(&format!(
        "{:<13} {:>11} {:>11} {:>11} {:>11} {:>7}\n",
        "GEMM", "forward", "dgrad", "wgrad", "total", "share"
    ));
    let exact = f.flops_per_token.exact;
    for k in &f.by_kind {
        s.push_str(&format!(
            "{:<13} {:>11} {:>11} {:>11} {:>11} {:>6.1}%\n",
            k.kind.name(),
            sci(k.forward),
            sci(k.dgrad),
            sci(k.wgrad),
            sci(k.total()),
            k.total() / exact * 100.0
        ));
    }
    let fwd: f64 = f.by_kind.iter().map(|k| k.forward).sum();
    let dg: f64 = f.by_kind.iter().map(|k| k.dgrad).sum();
    let wg: f64 = f.by_kind.iter().map(|k| k.wgrad).sum();
    s.push_str(&format!(
        "{:<13} {:>11} {:>11} {:>11} {:>11} {:>6.1}%\n",
        "total",
        sci(fwd),
        sci(dg),
        sci(wg),
        sci(exact),
        100.0
    ));
    s.push_str(&format!(
        "\nexact (Σ 2·M·N·K)      {} FLOPs/token\n6N                     {} FLOPs/token ({:+.2} % vs exact)\n6N + 12·L·d·s          {} FLOPs/token ({:+.2} % vs exact)\n",
        sci(exact),
        sci(f.flops_per_token.six_n),
        (f.flops_per_token.six_n / exact - 1.0) * 100.0,
        sci(f.flops_per_token.six_n_attention),
        (f.flops_per_token.six_n_attention / exact - 1.0) * 100.0
    ));
    s.push_str(
        "Attention is counted as executed: full s×s scores, not halved for the causal mask.\n",
    );
    s
}

/// Runs `mfubench presets`.
pub fn run_presets(args: &PresetsArgs) -> Result<u8> {
    let mut rows = Vec::new();
    for p in PRESETS {
        let c = parse_config(&format!("[model]\npreset = \"{}\"\n", p.name), "preset")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        rows.push((p, c.model.params_non_embedding()));
    }
    if args.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(p, n)| {
                json!({"name": p.name, "description": p.description, "hidden": p.hidden, "ffn": p.ffn,
                       "heads": p.heads, "kv_heads": p.kv_heads, "layers": p.layers, "seq": p.seq,
                       "vocab": p.vocab, "gated_mlp": p.gated_mlp, "params_non_embedding": n})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit::OK);
    }
    println!(
        "{:<17} {:>6} {:>6} {:>5} {:>8} {:>6} {:>5} {:>7} {:>5} {:>17}  description",
        "preset",
        "hidden",
        "ffn",
        "heads",
        "kv_heads",
        "layers",
        "seq",
        "vocab",
        "gated",
        "params (non-emb)"
    );
    for (p, n) in rows {
        println!(
            "{:<17} {:>6} {:>6} {:>5} {:>8} {:>6} {:>5} {:>7} {:>5} {:>17}  {}",
            p.name,
            p.hidden,
            p.ffn,
            p.heads,
            p.kv_heads,
            p.layers,
            p.seq,
            p.vocab,
            if p.gated_mlp { "yes" } else { "no" },
            group(n),
            p.description
        );
    }
    Ok(exit::OK)
}
