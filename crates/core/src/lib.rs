//! # mfubench-core: the data and the math, nothing else
//!
//! Every other crate of mfubench depends on this one, and this one depends on
//! nothing that touches the outside world: no file or network I/O, no MPI, no
//! CUDA. That keeps the numbers mfubench prints testable on known answers.
//!
//! What lives here:
//! - [`config`]: the TOML configuration (`[model]`, `[run]`, `[parallel]`, `[acceptance]`, `[accept]`),
//!   parsing from a string (the caller reads the file) and validation with
//!   errors that name the file, line, field and rule.
//! - [`preset`]: the model shapes mfubench knows by name.
//! - [`plan`]: the [`plan::StepPlan`], the ordered GEMMs of one data-parallel
//!   training step (forward, then backward in reverse layer order) and the
//!   DDP-style gradient buckets. The worker executes exactly this list and the
//!   FLOP counter sums exactly this list, so the two cannot disagree.
//! - [`parallel`]: `[parallel]` (DDP, FSDP, HSDP, tensor parallelism) and
//!   the rank layout: group sizes, colours, the checks that need the ranks.
//! - [`flops`]: exact FLOPs (Σ 2·M·N·K over the plan), the 6N estimate and
//!   PaLM's attention term, training-time and MFU-from-a-log calculators.
//! - [`hf`]: model shapes from a Hugging Face `config.json` (Llama,
//!   Mistral, Qwen2/3, Mixtral, Qwen-MoE), as a `[model]` section.
//! - [`routing`]: how a MoE block's tokens are spread over its experts
//!   (balanced, or Zipf-skewed with a seed).
//! - [`peak`]: the dense peak TFLOP/s table, looked up by device name and SM
//!   count.
//! - [`metrics`]: the metric formulas of docs/metrics.md as pure functions.
//! - [`stats`]: median / percentile helpers.
//! - [`check`]: the known-sum pattern used to verify all-reduce results.
//! - [`clock`]: the ranks' clocks on one time line (offsets from rank 0's,
//!   estimated from ping-pong exchanges), for collectives timed from the
//!   last arrival.
//! - [`time`]: calendar arithmetic for UTC timestamps, and durations as
//!   people write them.
//! - [`units`]: fractions (`0.9`, `90%`) and byte sizes (`64K`, `1G`) as
//!   people write them: one parser each, for every flag that takes one.
//! - [`redact`]: what of the environment and command lines may be
//!   written down (allow-list, redaction of values and URL credentials).
//! - [`protocol`]: the launcher–worker contract: progress events, their
//!   line prefix, the launch environment variable, exit codes, run-id rules.
//! - [`accept`]: the acceptance suite (`mfubench accept`): `[accept]`
//!   settings, the link stage's pair schedules, the `accept.json` schema and
//!   the rules that name a bad device, node or link.
//! - [`vary`]: `mfubench run --vary`: config overrides, the variant list,
//!   the paired comparison of variants and the `vary.json` schema.
//! - [`verdict`]: the one verdict vocabulary of the run's and the suite's
//!   rules: [`verdict::Status`] (PASS, SKIPPED, INCONCLUSIVE, FAIL,
//!   INCOMPLETE, in severity order), the treatment of a figure that was not
//!   measured, a figure judged against its limit, the overall verdict and
//!   its exit code.
//! - [`warmup`]: when warmup ends (the step time stopped getting faster,
//!   or the cap) and what a run records of it.
//! - [`simgpu`]: the simulated GPU's environment names and fault specs
//!   (`--sim-gpu`, `--sim-fault`).
//! - [`result`]: the `run.json` schema and [`result::summarize`], which turns
//!   per-rank records into the cluster-wide summary.
//!
//! Conventions: times are seconds (`f64`), sizes are bytes or elements
//! (`u64`), FLOPs are `f64` (they overflow `u64` for whole training runs),
//! bandwidths are GB/s with GB = 10⁹ bytes (the nccl-tests convention).

pub mod accept;
pub mod aggregate;
pub mod check;
pub mod clock;
pub mod config;
pub mod config_error;
pub mod flops;
pub mod hf;
pub mod job;
pub mod metrics;
pub mod model;
pub mod parallel;
pub mod peak;
pub mod plan;
pub mod preset;
pub mod project;
pub mod protocol;
pub mod redact;
pub mod result;
pub mod routing;
pub mod simgpu;
pub mod soak;
pub mod stats;
pub mod time;
pub mod units;
pub mod vary;
pub mod verdict;
pub mod warmup;

/// Version of this tool, recorded in every result file.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
