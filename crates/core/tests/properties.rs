//! Property tests: random shapes never panic, FLOPs are linear in tokens and
//! layers, and arbitrary config text is rejected with an error, not a panic.

use mfubench_core::config::parse_config;
use mfubench_core::flops::model_flops;
use mfubench_core::plan::{PlanParams, StepPlan};
use proptest::prelude::*;

fn shape_toml(
    hidden_heads: (u64, u64),
    kv_div: u64,
    ffn: u64,
    layers: u64,
    seq: u64,
    gated: bool,
    lm: bool,
) -> String {
    let (head_dim, heads) = hidden_heads;
    let hidden = head_dim * heads;
    let kv = (1..=heads)
        .rev()
        .find(|k| heads % k == 0 && *k <= (heads / kv_div).max(1))
        .unwrap_or(1);
    format!(
        "[model]\nhidden = {hidden}\nheads = {heads}\nkv_heads = {kv}\nffn = {ffn}\nlayers = {layers}\nseq = {seq}\ngated_mlp = {gated}\nlm_head = {lm}\nvocab = 1000\n"
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn valid_shapes_never_panic_and_scale_linearly(
        hh in (1u64..=256, 1u64..=64),
        kv_div in 1u64..=8,
        ffn in 1u64..=20_000,
        layers in 1u64..=16,
        seq in 1u64..=4096,
        gated: bool,
        lm: bool,
        batch in 1u64..=8,
    ) {
        let text = shape_toml(hh, kv_div, ffn, layers, seq, gated, lm);
        let c = parse_config(&text, "prop.toml").unwrap();
        let m = &c.model;
        let f = model_flops(m);
        prop_assert!(f.flops_per_token.exact > 0.0);

        // Linear in tokens (micro-batch) at fixed sequence length.
        let p = |layers, micro_batch| StepPlan::build(m, PlanParams { layers, micro_batch, recompute: false, bucket_bytes: 1 << 20, grad_bytes: 4 });
        let one = p(1, 1).model_flops();
        let rel = |a: f64, b: f64| ((a - b) / b).abs();
        prop_assert!(rel(p(1, batch).model_flops(), batch as f64 * one) < 1e-12);
        // Linear in layers, except for the LM head, whose share of the
        // model's head follows the step's share of the layers (rounded up).
        let head = |plan: &StepPlan| -> f64 { plan.ops.iter().filter(|o| o.layer.is_none()).map(|o| o.flops()).sum() };
        let (p1, pl) = (p(1, 1), p(layers, 1));
        prop_assert!(rel(pl.model_flops() - head(&pl), layers as f64 * (one - head(&p1))) < 1e-12);
        if lm {
            let cols = mfubench_core::plan::lm_head_columns(m.vocab, layers, m.layers);
            // Three GEMMs (forward, dgrad, wgrad) of 2·T·d·cols each.
            prop_assert!(rel(head(&pl), 3.0 * 2.0 * (m.seq * m.hidden * cols) as f64) < 1e-12);
        }
        // Without the LM head, exact = 6N + 12·L·d·s per token.
        if !lm {
            prop_assert!(rel(f.flops_per_token.exact, f.flops_per_token.six_n_attention) < 1e-12);
        }
        // Every weight lands in exactly one bucket.
        let plan = p(layers, 1);
        let in_buckets: u64 = plan.buckets.iter().map(|b| b.elements).sum();
        let head_cols = mfubench_core::plan::lm_head_columns(m.vocab, layers, m.layers);
        let weights = layers * m.params_per_layer() + if lm { head_cols * m.hidden } else { 0 };
        prop_assert_eq!(in_buckets, weights);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_config(&text, "fuzz.toml");
    }

    #[test]
    fn arbitrary_numbers_never_panic(
        key in prop::sample::select(vec!["hidden", "ffn", "heads", "kv_heads", "layers", "seq", "vocab"]),
        value in any::<i64>(),
        run_key in prop::sample::select(vec!["layers", "micro_batch", "warmup", "iterations", "bucket_mb", "op_timeout_s", "gemm_threads"]),
        run_value in any::<i64>(),
    ) {
        let text = format!("[model]\npreset = \"tiny\"\n{key} = {value}\n[run]\n{run_key} = {run_value}\n");
        if let Ok(c) = parse_config(&text, "fuzz.toml") {
            // Whatever passes validation can be planned without overflow.
            let _ = StepPlan::for_config(&c).model_flops();
        }
    }
}
