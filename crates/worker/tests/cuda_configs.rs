//! The GPU configs under configs/ parse, target the cuda backend, and fit
//! an 80 GB GPU without splitting attention batches.

use mfubench_core::config::{parse_config, BackendKind, Dtype};
use mfubench_core::plan::StepPlan;
use mfubench_worker::cuda::gemm::{gemm_types, plan_memory, rotation_bytes};

fn load(name: &str) -> mfubench_core::config::Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    parse_config(&text, name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn gpu_configs_fit_an_80_gb_gpu() {
    for (name, dtype) in [
        ("llama3-8b.toml", Dtype::Bf16),
        ("llama3-8b-fp8.toml", Dtype::Fp8),
        ("llama3-70b.toml", Dtype::Bf16),
        ("gpt3-175b.toml", Dtype::Bf16),
        ("mixtral-8x7b.toml", Dtype::Bf16),
        ("qwen-moe.toml", Dtype::Bf16),
    ] {
        let c = load(name);
        assert_eq!(c.run.backend, BackendKind::Cuda, "{name}");
        assert_eq!(c.run.dtype, dtype, "{name}");
        assert_eq!(c.run.grad_dtype, Dtype::Bf16, "{name}");
        assert!(c.run.check, "{name}");
        let plan = StepPlan::for_config(&c);
        let ty = gemm_types(c.run.dtype).unwrap();
        let max_batch = plan.ops.iter().map(|o| o.batch).max().unwrap();
        // An H100's 50 MiB L2: operand buffers span at least 100 MiB.
        let mem = plan_memory(&plan, &ty, 2, 79 << 30, 3 << 30, rotation_bytes(50 << 20)).unwrap();
        assert_eq!(mem.batch_chunk, max_batch, "{name}: {mem:?}");
        eprintln!(
            "{name}: {:.1} TFLOP/step, {} buckets, {:.2} GB grads, {:.1} GiB device memory",
            plan.model_flops() / 1e12,
            plan.buckets.len(),
            plan.allreduce_bytes() as f64 / 1e9,
            mem.total as f64 / (1u64 << 30) as f64
        );
    }
}
