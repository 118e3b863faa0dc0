//! Bare loops for `ci/bench.sh`: the same GEMMs and the same all-reduces as
//! the worker's compute and comm modes, with none of the worker's machinery
//! (no stream threads, events, watchdog or checks), so that the ratio of the
//! two shows what the machinery costs.
//!
//! `mpirun -np N bare_loops gemm|allreduce CONFIG ITERATIONS`: every rank
//! runs the loop after a barrier per iteration; rank 0 prints one JSON line
//! with the median over iterations of the max over ranks.
//!
//! `bare_loops plan CONFIG 0` prints the plan's GEMMs and buckets as JSON
//! (no MPI), for the independent peers of `ci/bench_peers.py`.

use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::*;

use mfubench_core::config::{parse_config_file, BackendKind, Dtype};
use mfubench_core::plan::StepPlan;
use mfubench_core::stats;
use mfubench_worker::cpu::run_gemm;
use mfubench_worker::host_buf::vec_with_huge_pages;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: bare_loops gemm|allreduce CONFIG ITERATIONS");
        std::process::exit(2);
    }
    let text = std::fs::read_to_string(&args[2]).unwrap_or_else(|e| {
        eprintln!("{}: {e}", args[2]);
        std::process::exit(2)
    });
    let mut raw = parse_config_file(&text, &args[2]).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    raw.run.backend = Some(BackendKind::Cpu);
    let config = raw.resolve(&args[2]).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let iterations: usize = args[3].parse().unwrap_or(10);
    let plan = StepPlan::for_config(&config);
    if args[1] == "plan" {
        let ops: Vec<String> = plan
            .ops
            .iter()
            .map(|o| {
                format!(
                    "{{\"m\":{},\"n\":{},\"k\":{},\"batch\":{},\"trans_a\":{},\"trans_b\":{}}}",
                    o.m, o.n, o.k, o.batch, o.trans_a, o.trans_b
                )
            })
            .collect();
        let buckets: Vec<String> = plan
            .buckets
            .iter()
            .map(|b| b.elements.to_string())
            .collect();
        println!(
            "{{\"ops\":[{}],\"buckets\":[{}],\"flops\":{},\"warmup\":{}}}",
            ops.join(","),
            buckets.join(","),
            plan.model_flops(),
            config.run.warmup
        );
        return;
    }
    if config.run.dtype != Dtype::F32 || config.run.grad_dtype != Dtype::F32 {
        eprintln!("bare_loops measures f32 only");
        std::process::exit(2);
    }

    let universe = mpi::initialize().expect("MPI init");
    let world = universe.world();
    let local = world.split_shared(world.rank());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = config
        .run
        .gemm_threads
        .map(|t| t as usize)
        .unwrap_or((cores / local.size() as usize).max(1));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");

    // The worker's buffers are the backend's (pages advised huge, as NumPy
    // does): the bare loops use the same memory, so that they differ only
    // in the machinery.
    let fill = |n: u64, seed: u32| -> Vec<f32> {
        vec_with_huge_pages(n as usize, |i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                - 0.999
        })
    };
    let mut times = Vec::with_capacity(iterations);
    let warmup = config.run.warmup as usize;
    match args[1].as_str() {
        "gemm" => {
            let (a, b, c) = plan.max_operand_elements();
            let (a, b, mut c) = (fill(a, 1), fill(b, 2), fill(c, 3));
            for it in 0..warmup + iterations {
                world.barrier();
                let t0 = Instant::now();
                pool.install(|| {
                    for op in &plan.ops {
                        run_gemm(op, &a, &b, &mut c, 1.0f32, threads);
                    }
                });
                if it >= warmup {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
        }
        "allreduce" => {
            let send: Vec<Vec<f32>> = plan
                .buckets
                .iter()
                .map(|b| fill(b.elements, b.index as u32))
                .collect();
            let mut recv: Vec<Vec<f32>> = plan
                .buckets
                .iter()
                .map(|b| vec_with_huge_pages(b.elements as usize, |_| 0.0f32))
                .collect();
            for it in 0..warmup + iterations {
                world.barrier();
                let t0 = Instant::now();
                for (s, r) in send.iter().zip(recv.iter_mut()) {
                    world.all_reduce_into(&s[..], &mut r[..], SystemOperation::sum());
                }
                if it >= warmup {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
        }
        other => {
            eprintln!("unknown loop {other}: use gemm or allreduce");
            std::process::exit(2);
        }
    }
    // Cluster time of an iteration = max over ranks, as in the worker.
    let mut cluster = vec![0.0f64; times.len()];
    world.all_reduce_into(&times[..], &mut cluster[..], SystemOperation::max());
    if world.rank() == 0 {
        let med = stats::median(&cluster).unwrap_or(f64::NAN);
        let (flops, bytes) = (plan.model_flops(), plan.allreduce_bytes());
        println!(
            "{{\"loop\":\"{}\",\"ranks\":{},\"threads\":{threads},\"median_s\":{med},\"tflops\":{},\"algbw_gbps\":{}}}",
            args[1],
            world.size(),
            flops / med / 1e12,
            bytes as f64 / med / 1e9
        );
    }
}
