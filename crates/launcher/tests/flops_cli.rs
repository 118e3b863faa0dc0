//! `mfubench flops` and `mfubench presets` as a user runs them: the primer's
//! worked examples as known answers, and usage errors with exit 2.

use std::process::Command;

use serde_json::Value;

fn mfubench(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mfubench"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> Value {
    let (code, out, err) = mfubench(args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    ((a - b) / b).abs() <= rel
}

#[test]
fn llama3_70b_json() {
    let v = json(&["flops", "--preset", "llama3-70b", "--json"]);
    assert_eq!(v["params_non_embedding"], 68_451_041_280u64);
    let f = &v["flops_per_token"];
    let six_n = 6.0 * 68_451_041_280.0;
    assert_eq!(f["six_n"].as_f64().unwrap(), six_n);
    // 12·L·d·s = 12 · 80 · 8192 · 8192.
    let attn = 12.0 * 80.0 * 8192.0 * 8192.0;
    assert!(close(
        f["six_n_attention"].as_f64().unwrap(),
        six_n + attn,
        1e-12
    ));
    assert!(close(f["exact"].as_f64().unwrap(), six_n + attn, 1e-12));
}

#[test]
fn primer_gpt3_training_flops_and_days() {
    let v = json(&[
        "flops",
        "--preset",
        "gpt3-175b",
        "--tokens",
        "300e9",
        "--json",
    ]);
    // The primer's 6N figure, beside the exact count the benchmark uses:
    // per-token exact FLOPs (6N + 12·L·d·s) × tokens.
    assert!(close(
        v["training_flops_6n"].as_f64().unwrap(),
        3.14e23,
        0.01
    ));
    let exact = 6.0 * 173_946_175_488.0 + 12.0 * 96.0 * 12288.0 * 2048.0;
    assert!(close(
        v["training_flops"].as_f64().unwrap(),
        exact * 300e9,
        1e-12
    ));
    assert_eq!(v["training_flops_rule"], "exact GEMM count");
    let v = json(&[
        "flops",
        "--preset",
        "gpt3-175b",
        "--tokens",
        "300e9",
        "--gpus",
        "1024",
        "--gpu",
        "a100",
        "--mfu",
        "0.5",
        "--json",
    ]);
    let total = v["training_flops"].as_f64().unwrap();
    let days = total / (1024.0 * 312e12 * 0.5) / 86_400.0;
    assert!(close(v["days"].as_f64().unwrap(), days, 1e-12));
}

#[test]
fn primer_7b_on_1t_tokens() {
    let v = json(&["flops", "--params", "7e9", "--tokens", "1e12", "--json"]);
    assert!(close(v["training_flops"].as_f64().unwrap(), 4.2e22, 1e-12));
}

#[test]
fn primer_mfu_from_log() {
    let args = [
        "flops",
        "--params",
        "7e9",
        "--batch",
        "8",
        "--seq",
        "4096",
        "--step-time",
        "1.2",
        "--gpus",
        "8",
        "--gpu",
        "h100-sxm",
    ];
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let v = json(&with_json);
    assert_eq!(v["tokens_per_second"].as_f64().unwrap().round(), 27_307.0);
    assert!(close(v["achieved_flops"].as_f64().unwrap(), 1.147e15, 1e-3));
    assert!((v["mfu"].as_f64().unwrap() - 0.145).abs() < 5e-4);
    let (code, out, _) = mfubench(&args);
    assert_eq!(code, 0);
    assert!(out.contains("27307") && out.contains("14.5 %"), "{out}");
}

/// `flops --step-time` gives the MFU the benchmark reports for the same
/// shape and step time: both count the executed GEMMs exactly.
#[test]
fn mfu_from_log_equals_the_benchmarks_mfu() {
    use mfubench_core::config::parse_config;
    use mfubench_core::plan::StepPlan;
    // A full-depth benchmark step of llama3-8b at seq 2048, micro-batch 2
    // per rank, 4 ranks: global batch 8.
    let cfg = parse_config(
        "[model]\npreset = \"llama3-8b\"\nseq = 2048\n[run]\nbackend = \"cuda\"\nlayers = 32\nmicro_batch = 2\n",
        "t",
    )
    .unwrap();
    let f = StepPlan::for_config(&cfg).model_flops();
    let (step, peak) = (0.9, 989.0);
    let benchmark_mfu = mfubench_core::metrics::mfu(f, step, peak);
    let v = json(&[
        "flops",
        "--preset",
        "llama3-8b",
        "--batch",
        "8",
        "--seq",
        "2048",
        "--step-time",
        "0.9",
        "--gpus",
        "4",
        "--peak-tflops",
        "989",
        "--json",
    ]);
    assert!(
        close(v["mfu"].as_f64().unwrap(), benchmark_mfu, 1e-12),
        "{v}"
    );
    assert_eq!(v["mfu_rule"], "exact GEMM count");
    // 6N alone is lower (it leaves out attention).
    assert!(v["mfu_6n"].as_f64().unwrap() < benchmark_mfu);
}

#[test]
fn table_lists_every_gemm_kind() {
    let (code, out, _) = mfubench(&["flops", "--preset", "llama3-8b"]);
    assert_eq!(code, 0);
    for k in [
        "qkv",
        "attn_scores",
        "attn_values",
        "out_proj",
        "ffn_up",
        "ffn_gate",
        "ffn_down",
        "6N + 12·L·d·s",
        "causal mask",
    ] {
        assert!(out.contains(k), "missing {k}:\n{out}");
    }
}

#[test]
fn presets_list() {
    let (code, out, _) = mfubench(&["presets"]);
    assert_eq!(code, 0);
    for p in [
        "tiny",
        "llama3-8b",
        "llama3-70b",
        "llama3-405b",
        "gpt3-175b",
        "401,646,551,040",
    ] {
        assert!(out.contains(p), "{out}");
    }
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let cases: [(&[&str], &str); 6] = [
        (&["flops", "--preset", "llama9"], "llama3-70b"),
        (&["flops", "--preset", "tiny", "--tokens", "-5"], "--tokens"),
        (
            &[
                "flops", "--params", "7e9", "--tokens", "1e12", "--gpus", "8",
            ],
            "--mfu",
        ),
        (
            &[
                "flops",
                "--params",
                "7e9",
                "--batch",
                "8",
                "--seq",
                "4096",
                "--step-time",
                "1.2",
                "--gpus",
                "8",
                "--gpu",
                "h900",
            ],
            "--gpu h900",
        ),
        (&["flops"], "nothing to compute"),
        (
            &["flops", "--config", "/nonexistent.toml"],
            "/nonexistent.toml",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, err) = mfubench(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn gpu_alias_and_percent_mfu() {
    // `--gpu h100` is the SXM part; `--mfu 40%` is 0.40, as in `report --min-mfu 40%`.
    let base = [
        "flops",
        "--preset",
        "llama3-405b",
        "--tokens",
        "15e12",
        "--gpus",
        "16384",
        "--json",
    ];
    let with = |gpu: &str, mfu: &str| {
        let mut a = base.to_vec();
        a.extend(["--gpu", gpu, "--mfu", mfu]);
        json(&a)
    };
    let canonical = with("h100-sxm", "0.40");
    assert_eq!(with("h100", "40%"), canonical);
    assert_eq!(with("H100_SXM", "40 %"), canonical);
    let days = canonical["days"].as_f64().unwrap();
    let expect =
        canonical["training_flops"].as_f64().unwrap() / (16384.0 * 989e12 * 0.40) / 86_400.0;
    assert!(close(days, expect, 1e-12), "{days} vs {expect}");
    let (code, _, err) = mfubench(&[
        "flops", "--params", "7e9", "--tokens", "1e12", "--gpus", "8", "--gpu", "h100", "--mfu",
        "forty",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--mfu"), "{err}");
}

#[test]
fn mixtral_total_and_active_parameters() {
    let v = json(&["flops", "--preset", "mixtral-8x7b", "--json"]);
    let total = v["params_total"].as_f64().unwrap();
    let active = v["params_active_total"].as_f64().unwrap();
    assert!(close(total, 46.7e9, 0.005), "{total}");
    assert!(close(active, 12.9e9, 0.005), "{active}");
    // 6N uses the active non-embedding parameters.
    let n_active = v["params_active_non_embedding"].as_f64().unwrap();
    assert_eq!(
        v["flops_per_token"]["six_n"].as_f64().unwrap(),
        6.0 * n_active
    );
    let (code, out, _) = mfubench(&["flops", "--preset", "mixtral-8x7b"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("(46.7 B), active per token") && out.contains("(12.9 B)"),
        "{out}"
    );
}

#[test]
fn a_hugging_face_config_json_gives_the_presets_flops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
            "intermediate_size": 14336, "max_position_embeddings": 8192,
            "model_type": "llama", "num_attention_heads": 32,
            "num_hidden_layers": 32, "num_key_value_heads": 8,
            "rope_theta": 500000.0, "tie_word_embeddings": false,
            "vocab_size": 128256}"#,
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let hf = json(&["flops", "--hf-config", p, "--json"]);
    let preset = json(&["flops", "--preset", "llama3-8b", "--json"]);
    assert_eq!(hf["flops_per_token"], preset["flops_per_token"]);
    assert_eq!(hf["params_total"], preset["params_total"]);
    assert_eq!(hf["model"]["name"], format!("hf:{p}"));
    // A missing field: exit 2, one line naming the file and the field.
    std::fs::write(&path, r#"{"model_type": "llama", "hidden_size": 4096}"#).unwrap();
    let (code, _, err) = mfubench(&["flops", "--hf-config", p]);
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(p) && err.contains("num_attention_heads is missing"),
        "{err}"
    );
}
