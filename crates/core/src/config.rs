//! The benchmark configuration: a TOML file with `[model]`, `[run]`, `[accept]`,
//! `[acceptance]` and `[parallel]` tables.
//!
//! Parsing happens in two steps. [`ConfigFile`] mirrors the file exactly
//! (every field optional, unknown keys rejected by serde with the list of the
//! known ones). [`ConfigFile::resolve`] then fills in the preset and the
//! defaults and validates every rule, producing a [`Config`] whose fields are
//! all present and sane: sizes are non-zero, divisible where they must be, and
//! small enough that no product of them overflows 64 bits, so that later code
//! can multiply them without checks.
//!
//! Errors carry the file name, the line and column for syntax and type
//! errors, and the dotted field name and the rule for semantic errors.
//! Nothing here reads files: the caller passes the text and a name for it.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::preset::{self, Preset};

/// Upper limits that reject absurd sizes before anything is allocated.
pub mod limits {
    /// Largest hidden size accepted (2^20).
    pub const MAX_HIDDEN: u64 = 1 << 20;
    /// Largest FFN size accepted (2^22).
    pub const MAX_FFN: u64 = 1 << 22;
    /// Most experts of a mixture-of-experts layer.
    pub const MAX_EXPERTS: u64 = 4096;
    /// Most token chunks of a mixture-of-experts block.
    pub const MAX_MOE_CHUNKS: u64 = 64;
    /// Largest number of layers accepted.
    pub const MAX_LAYERS: u64 = 10_000;
    /// Longest sequence accepted (2^22 tokens).
    pub const MAX_SEQ: u64 = 1 << 22;
    /// Largest vocabulary accepted (2^24).
    pub const MAX_VOCAB: u64 = 1 << 24;
    /// Largest micro-batch accepted.
    pub const MAX_MICRO_BATCH: u64 = 65_536;
    /// Most measured iterations per mode.
    pub const MAX_ITERATIONS: u32 = 100_000;
    /// Warmup rounds at most unless `run.warmup_max` says otherwise.
    pub const DEFAULT_WARMUP_MAX: u32 = 10;
    /// Largest gradient bucket, in MiB.
    pub const MAX_BUCKET_MB: f64 = 65_536.0;
    /// Longest per-op timeout: one week.
    pub const MAX_OP_TIMEOUT_S: f64 = 7.0 * 86_400.0;
    /// Largest peak accepted, TFLOP/s per device.
    pub const MAX_PEAK_TFLOPS: f64 = 1.0e6;
    /// `run.peak_tflops` must be greater than this (1 MFLOP/s).
    pub const MIN_PEAK_TFLOPS: f64 = 1.0e-6;
    /// Most GEMM threads per rank.
    pub const MAX_GEMM_THREADS: u32 = 4096;
    /// Largest single matrix a plan may contain, in elements (2^40).
    pub const MAX_MATRIX_ELEMENTS: u64 = 1 << 40;
}

pub use crate::config_error::ConfigError;

/// Which implementation runs the GEMMs and the all-reduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// CUDA when a driver and a GPU are present, else CPU.
    #[default]
    Auto,
    /// CPU GEMMs (the `gemm` crate) and MPI all-reduces.
    Cpu,
    /// cuBLAS/cuBLASLt GEMMs and NCCL all-reduces.
    Cuda,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
        })
    }
}

/// Element type of GEMM operands or gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE double precision.
    F64,
    /// IEEE single precision.
    F32,
    /// TensorFloat-32 tensor-core math on f32 storage.
    Tf32,
    /// bfloat16 storage, f32 accumulation.
    Bf16,
    /// IEEE half precision storage, f32 accumulation.
    Fp16,
    /// FP8 E4M3 inputs with per-tensor scales, bf16 output.
    Fp8,
}

impl Dtype {
    /// All dtypes, in table order.
    pub const ALL: [Dtype; 6] = [
        Dtype::F64,
        Dtype::F32,
        Dtype::Tf32,
        Dtype::Bf16,
        Dtype::Fp16,
        Dtype::Fp8,
    ];

    /// Bytes per stored element.
    pub fn size_bytes(self) -> u64 {
        match self {
            Dtype::F64 => 8,
            Dtype::F32 | Dtype::Tf32 => 4,
            Dtype::Bf16 | Dtype::Fp16 => 2,
            Dtype::Fp8 => 1,
        }
    }

    /// The name used in configs and output.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "f64",
            Dtype::F32 => "f32",
            Dtype::Tf32 => "tf32",
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Fp8 => "fp8",
        }
    }

    /// Parses a config / command-line name.
    pub fn parse(s: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Whether this dtype can be used for GEMMs on the backend.
    pub fn gemm_supported_on(self, backend: BackendKind) -> bool {
        match backend {
            BackendKind::Cpu => matches!(self, Dtype::F32 | Dtype::F64),
            BackendKind::Cuda => !matches!(self, Dtype::F64),
            BackendKind::Auto => true,
        }
    }

    /// Whether gradients of this dtype can be all-reduced on the backend.
    pub fn grad_supported_on(self, backend: BackendKind) -> bool {
        match backend {
            BackendKind::Cpu => matches!(self, Dtype::F32 | Dtype::F64),
            BackendKind::Cuda => matches!(self, Dtype::F32 | Dtype::Bf16 | Dtype::Fp16),
            BackendKind::Auto => true,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One way of running the training step; each is timed separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward + backward GEMMs only (T_c).
    Compute,
    /// The all-reduces of all buckets, back to back (T_a).
    Comm,
    /// Backward completes, then every bucket is all-reduced (T_s).
    Serialized,
    /// Each bucket is all-reduced as soon as it is ready, while backward
    /// continues (T_o).
    Overlapped,
}

impl Mode {
    /// All modes, in execution order.
    pub const ALL: [Mode; 4] = [
        Mode::Compute,
        Mode::Comm,
        Mode::Serialized,
        Mode::Overlapped,
    ];

    /// The name used in configs and output.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Compute => "compute",
            Mode::Comm => "comm",
            Mode::Serialized => "serialized",
            Mode::Overlapped => "overlapped",
        }
    }

    /// Whether the mode runs GEMMs.
    pub fn has_compute(self) -> bool {
        !matches!(self, Mode::Comm)
    }

    /// Whether the mode runs all-reduces.
    pub fn has_comm(self) -> bool {
        !matches!(self, Mode::Compute)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the timed steps of the modes are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Timed iteration i runs one step of every mode, in an order that
    /// rotates with i (a Latin square over the modes), so that outside load
    /// hits every mode alike and differences of modes are paired.
    #[default]
    Interleaved,
    /// Every mode runs all its iterations before the next mode starts (the
    /// behaviour before 0.2, kept for comparison: a burst of outside load
    /// lands on one mode and reads as an overlap gain or loss).
    Blocked,
}

impl Schedule {
    /// The name used in configs and output.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Interleaved => "interleaved",
            Schedule::Blocked => "blocked",
        }
    }

    /// The modes of timed round `round` in the order they run. Interleaved:
    /// `modes` rotated left by `round` (every mode takes every position
    /// equally often over `modes.len()` rounds). Blocked has no rounds; it
    /// returns `modes` unchanged.
    pub fn round_order(self, modes: &[Mode], round: usize) -> Vec<Mode> {
        let mut v = modes.to_vec();
        if self == Schedule::Interleaved && !v.is_empty() {
            let k = round % v.len();
            v.rotate_left(k);
        }
        v
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[model]` as written in the file: a preset and/or explicit shapes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Name of a preset (see `mfubench presets`); explicit fields override it.
    pub preset: Option<String>,
    /// Hidden size d (model width).
    pub hidden: Option<u64>,
    /// FFN intermediate size f.
    pub ffn: Option<u64>,
    /// Number of attention (query) heads; must divide `hidden`.
    pub heads: Option<u64>,
    /// Number of key/value heads (grouped-query attention); must divide `heads`.
    pub kv_heads: Option<u64>,
    /// Number of transformer blocks of the whole model.
    pub layers: Option<u64>,
    /// Sequence length s in tokens.
    pub seq: Option<u64>,
    /// Vocabulary size (used only by the LM head).
    pub vocab: Option<u64>,
    /// Gated MLP (SwiGLU: up, gate and down projections) instead of up/down.
    pub gated_mlp: Option<bool>,
    /// Include the LM head (logits) GEMM in the step; off by default, as its
    /// FLOPs are not part of the 6N rule.
    pub lm_head: Option<bool>,
    /// Routed experts of a mixture-of-experts FFN (default 1: dense).
    pub experts: Option<u64>,
    /// Experts each token is routed to (default 1; at most `experts`).
    pub top_k: Option<u64>,
    /// Intermediate size of one expert (default `ffn`).
    pub expert_ffn: Option<u64>,
    /// Shared experts every token passes through beside the routed ones
    /// (each `expert_ffn` wide; default 0).
    pub shared_experts: Option<u64>,
    /// Every k-th block is mixture-of-experts, the others dense (default 1:
    /// all; block i, 0-based, is MoE when (i + 1) is a multiple of k).
    pub moe_every: Option<u64>,
    /// Input embedding and LM head share one matrix (counted once in the
    /// total parameters; default false).
    pub tied_embeddings: Option<bool>,
    /// How tokens are routed to the experts: `balanced` (default) or
    /// `zipf:S`, popularity skewed by Zipf's law with exponent S.
    pub routing: Option<String>,
    /// Seed of the Zipf popularity order (default 1).
    pub routing_seed: Option<u64>,
    /// Chunks a MoE block's tokens are split into (default 1): each chunk
    /// is routed, dispatched, computed and combined on its own, so that
    /// overlapped mode exchanges chunk i + 1 while the experts compute
    /// chunk i.
    pub moe_chunks: Option<u64>,
    /// A Hugging Face config.json (relative to this file) whose shape fills
    /// every `[model]` key not set here; read when the file is loaded
    /// ([`crate::hf::inline`]), not with `preset`.
    pub hf_config: Option<String>,
}

/// A number of seconds, or a humantime duration string (`"10m"`).
fn seconds_or_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Secs {
        Number(f64),
        Text(String),
    }
    match Option::<Secs>::deserialize(d)? {
        None => Ok(None),
        Some(Secs::Number(x)) => Ok(Some(x)),
        Some(Secs::Text(t)) => crate::time::parse_duration(&t)
            .map(|d| Some(d.as_secs_f64()))
            .map_err(serde::de::Error::custom),
    }
}

/// `[run]` as written in the file; every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Backend: `auto` (default), `cpu` or `cuda`.
    pub backend: Option<BackendKind>,
    /// Transformer blocks executed per benchmark step (default: 2, or the
    /// model's depth if smaller). MFU does not depend on depth; a few layers
    /// keep the run short.
    pub layers: Option<u64>,
    /// Sequences per rank per step (micro-batch), default 1.
    pub micro_batch: Option<u64>,
    /// GEMM dtype: `f32`/`f64` on CPU (default `f32`), `bf16` (default),
    /// `fp16`, `tf32`, `fp8` or `f32` on CUDA.
    pub dtype: Option<Dtype>,
    /// Gradient (all-reduce) dtype: default `f32` on CPU, `bf16` on CUDA.
    pub grad_dtype: Option<Dtype>,
    /// Gradient bucket capacity in MiB, as PyTorch DDP's `bucket_cap_mb`
    /// (default 25).
    pub bucket_mb: Option<f64>,
    /// Warmup rounds always run before measuring, one untimed step of every
    /// mode each (default 2); warmup goes on until the step time is stable
    /// or `warmup_max` rounds ran (see docs/metrics.md).
    pub warmup: Option<u32>,
    /// Warmup rounds at most (default 10, or `warmup` if larger; equal to
    /// `warmup`: a fixed count).
    pub warmup_max: Option<u32>,
    /// How much faster than the round before a warmup round may be and
    /// still count as stable, a fraction (default 0.1: 10 %).
    pub warmup_tolerance: Option<f64>,
    /// Timed iterations per mode (default 10).
    pub iterations: Option<u32>,
    /// Modes to run, in order (default all four).
    pub modes: Option<Vec<Mode>>,
    /// `interleaved` (default): each timed iteration runs every mode once,
    /// in rotating order; `blocked`: each mode's iterations back to back.
    pub schedule: Option<Schedule>,
    /// Verify every all-reduce result against the known sum (default true).
    pub check: Option<bool>,
    /// Seconds an op may take before the watchdog aborts the job (default
    /// 300); a number of seconds or a duration such as `90s`, `10m`, `1h`.
    #[serde(default, deserialize_with = "seconds_or_duration")]
    pub op_timeout_s: Option<f64>,
    /// Dense peak TFLOP/s per device; overrides the table and the CPU
    /// calibration.
    pub peak_tflops: Option<f64>,
    /// GEMM threads per rank on the CPU backend (default: cores of the host /
    /// ranks on the host).
    pub gemm_threads: Option<u32>,
    /// Recompute each layer's forward GEMMs before its backward (activation
    /// checkpointing); counted in HFU, not in MFU (default false).
    pub recompute: Option<bool>,
    /// Number of ranks `mfubench run` starts when `--np` is not given.
    pub ranks: Option<u32>,
}

/// `[acceptance]`: thresholds that turn a run into PASS or FAIL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// Lowest acceptable overlapped-mode MFU (0–1).
    #[serde(default)]
    pub min_mfu: Option<f64>,
    /// Highest acceptable exposed communication, as a fraction of the
    /// overlapped step (0–1).
    #[serde(default)]
    pub max_exposed_comm_fraction: Option<f64>,
    /// Lowest acceptable all-reduce bus bandwidth in GB/s (comm mode).
    #[serde(default)]
    pub min_busbw_gbps: Option<f64>,
    /// Relative deviation from the median compute step beyond which a rank is
    /// a straggler (default 0.05 = 5 %).
    #[serde(default = "default_straggler_tolerance")]
    pub straggler_tolerance: f64,
    /// Most wrong all-reduce elements tolerated (default 0).
    #[serde(default)]
    pub max_wrong: u64,
}

fn default_straggler_tolerance() -> f64 {
    0.05
}

impl Default for Acceptance {
    fn default() -> Self {
        Acceptance {
            min_mfu: None,
            max_exposed_comm_fraction: None,
            min_busbw_gbps: None,
            straggler_tolerance: default_straggler_tolerance(),
            max_wrong: 0,
        }
    }
}

/// The file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The model shape.
    #[serde(default)]
    pub model: ModelSection,
    /// How the benchmark runs.
    #[serde(default)]
    pub run: RunSection,
    /// Pass/fail thresholds.
    #[serde(default)]
    pub acceptance: Acceptance,
    /// The acceptance suite (`mfubench accept`): stages and thresholds.
    #[serde(default)]
    pub accept: crate::accept::AcceptSettings,
    /// The burn-in's rules (`mfubench soak`): thresholds.
    #[serde(default)]
    pub soak: crate::soak::SoakThresholds,
    /// Parallelism pattern: data (`ddp`, `fsdp`, `hsdp`), tensor, prefetch.
    #[serde(default)]
    pub parallel: crate::parallel::ParallelSection,
}

pub use crate::model::ModelShape;

/// A resolved run section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Requested backend (may still be `auto`).
    pub backend: BackendKind,
    /// Blocks executed per step.
    pub layers: u64,
    /// Sequences per rank per step.
    pub micro_batch: u64,
    /// GEMM dtype.
    pub dtype: Dtype,
    /// Gradient dtype.
    pub grad_dtype: Dtype,
    /// Bucket capacity in MiB.
    pub bucket_mb: f64,
    /// Warmup rounds always run.
    pub warmup: u32,
    /// Warmup rounds at most (files written before adaptive warmup have
    /// none: 0, a fixed count of `warmup`).
    #[serde(default)]
    pub warmup_max: u32,
    /// Warmup stability tolerance, relative.
    #[serde(default = "default_warmup_tolerance")]
    pub warmup_tolerance: f64,
    /// Timed iterations per mode.
    pub iterations: u32,
    /// Modes in execution order.
    pub modes: Vec<Mode>,
    /// Order of the timed steps (files written before 0.2 have none: blocked).
    #[serde(default = "blocked")]
    pub schedule: Schedule,
    /// All-reduce result verification on.
    pub check: bool,
    /// Watchdog limit per op, seconds.
    pub op_timeout_s: f64,
    /// Peak override, TFLOP/s per device.
    pub peak_tflops: Option<f64>,
    /// CPU GEMM threads per rank (None = automatic).
    pub gemm_threads: Option<u32>,
    /// Activation recomputation on.
    pub recompute: bool,
    /// Default number of ranks for `mfubench run`.
    pub ranks: Option<u32>,
}

fn default_warmup_tolerance() -> f64 {
    0.1
}

fn blocked() -> Schedule {
    Schedule::Blocked
}

impl RunSettings {
    /// Tokens per rank per step, b·s.
    pub fn tokens(&self, model: &ModelShape) -> u64 {
        self.micro_batch * model.seq
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The model shape.
    pub model: ModelShape,
    /// How the benchmark runs.
    pub run: RunSettings,
    /// Pass/fail thresholds.
    pub acceptance: Acceptance,
    /// The acceptance suite (`mfubench accept`); defaults when absent (run
    /// files written before it existed), and not written when default
    /// (it does not change what a run measures).
    #[serde(
        default,
        skip_serializing_if = "crate::accept::AcceptSettings::is_default"
    )]
    pub accept: crate::accept::AcceptSettings,
    /// The burn-in's rules (`mfubench soak`); defaults when absent, and not
    /// written when default.
    #[serde(
        default,
        skip_serializing_if = "crate::soak::SoakThresholds::is_default"
    )]
    pub soak: crate::soak::SoakThresholds,
    /// The parallelism pattern; DDP without tensor parallelism when absent
    /// (run files written before it existed), and not written when default
    /// (run files of DDP runs stay as they were).
    #[serde(default, skip_serializing_if = "crate::parallel::Parallel::is_default")]
    pub parallel: crate::parallel::Parallel,
}

/// Parses and validates TOML text. `file` names the source in errors.
pub fn parse_config(text: &str, file: &str) -> Result<Config, ConfigError> {
    parse_config_file(text, file)?.resolve(file)
}

/// Parses TOML text into the file's structure without resolving it (syntax,
/// types and unknown keys are checked; rules are checked by
/// [`ConfigFile::resolve`]). Lets a caller settle `run.backend` first, since
/// defaults such as the dtype depend on it.
pub fn parse_config_file(text: &str, file: &str) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| syntax_error(text, file, &e))
}

fn syntax_error(text: &str, file: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let (line, col) = line_col(text, offset);
    let mut message = e.message().trim().replace('\n', " ");
    if let Some(table) = table_at(text, offset) {
        message = format!("in [{table}]: {message}");
    }
    ConfigError::Syntax {
        file: file.to_string(),
        line,
        col,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset;
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The `[table]` header in force at a byte offset, if any (None when the
/// offset is on a header line itself).
fn table_at(text: &str, offset: usize) -> Option<String> {
    let mut table = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let header = line
            .trim_start()
            .strip_prefix('[')
            .filter(|rest| !rest.starts_with('['))
            .and_then(|rest| rest.find(']').map(|end| rest[..end].trim().to_string()));
        if offset < pos + line.len() {
            return if header.is_some() { None } else { table };
        }
        if header.is_some() {
            table = header;
        }
        pos += line.len();
    }
    table
}

struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
    fn err(&self, field: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            field: field.to_string(),
            message,
        }
    }

    fn range_u64(&self, field: &str, v: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        if v < min || v > max {
            return Err(self.err(
                field,
                format!("{field} = {v} is out of range: it must be between {min} and {max}"),
            ));
        }
        Ok(v)
    }

    fn range_f64(
        &self,
        field: &str,
        v: f64,
        min_exclusive: f64,
        max: f64,
    ) -> Result<f64, ConfigError> {
        if !v.is_finite() || v <= min_exclusive || v > max {
            return Err(self.err(
                field,
                format!("{field} = {v} is out of range: it must be greater than {min_exclusive} and at most {max}"),
            ));
        }
        Ok(v)
    }
}

impl ConfigFile {
    /// Fills in the preset and defaults and checks every rule.
    pub fn resolve(&self, file: &str) -> Result<Config, ConfigError> {
        use limits::*;
        let v = Validator { file };
        let m = &self.model;
        let preset: Option<&Preset> = match &m.preset {
            Some(name) => Some(preset::find(name).ok_or_else(|| {
                v.err(
                    "model.preset",
                    format!(
                        "unknown preset \"{name}\"; known presets: {}",
                        preset::names().join(", ")
                    ),
                )
            })?),
            None => None,
        };
        let need = |field: &str, val: Option<u64>, from_preset: Option<u64>| {
            val.or(from_preset).ok_or_else(|| {
                v.err(
                    field,
                    format!(
                        "{field} is missing: set it, or set model.preset (see `mfubench presets`)"
                    ),
                )
            })
        };
        if m.hf_config.is_some() && m.hidden.is_none() {
            return Err(v.err(
                "model.hf_config",
                "model.hf_config was not read: load the file with mfubench (which reads the config.json), or set the [model] keys".into(),
            ));
        }
        let hidden = need("model.hidden", m.hidden, preset.map(|p| p.hidden))?;
        let ffn = need("model.ffn", m.ffn, preset.map(|p| p.ffn))?;
        let heads = need("model.heads", m.heads, preset.map(|p| p.heads))?;
        let kv_heads = m.kv_heads.or(preset.map(|p| p.kv_heads)).unwrap_or(heads);
        let layers = need("model.layers", m.layers, preset.map(|p| p.layers))?;
        let seq = need("model.seq", m.seq, preset.map(|p| p.seq))?;
        let vocab = m.vocab.or(preset.map(|p| p.vocab)).unwrap_or(32_000);
        let gated_mlp = m.gated_mlp.or(preset.map(|p| p.gated_mlp)).unwrap_or(false);
        let lm_head = m.lm_head.unwrap_or(false);
        let experts = m.experts.or(preset.map(|p| p.experts)).unwrap_or(1);
        let top_k = m.top_k.or(preset.map(|p| p.top_k)).unwrap_or(1);
        let expert_ffn = m
            .expert_ffn
            .or(preset.map(|p| p.expert_ffn).filter(|&f| f > 0))
            .unwrap_or(ffn);
        let shared_experts = m
            .shared_experts
            .or(preset.map(|p| p.shared_experts))
            .unwrap_or(0);
        let moe_every = m.moe_every.or(preset.map(|p| p.moe_every)).unwrap_or(1);
        let tied_embeddings = m
            .tied_embeddings
            .or(preset.map(|p| p.tied_embeddings))
            .unwrap_or(false);

        v.range_u64("model.hidden", hidden, 1, MAX_HIDDEN)?;
        v.range_u64("model.ffn", ffn, 1, MAX_FFN)?;
        v.range_u64("model.heads", heads, 1, hidden)?;
        v.range_u64("model.kv_heads", kv_heads, 1, heads)?;
        v.range_u64("model.layers", layers, 1, MAX_LAYERS)?;
        v.range_u64("model.seq", seq, 1, MAX_SEQ)?;
        v.range_u64("model.vocab", vocab, 1, MAX_VOCAB)?;
        if hidden % heads != 0 {
            return Err(v.err(
                "model.heads",
                format!("model.heads = {heads} does not divide model.hidden = {hidden}"),
            ));
        }
        if heads % kv_heads != 0 {
            return Err(v.err(
                "model.kv_heads",
                format!("model.kv_heads = {kv_heads} does not divide model.heads = {heads}"),
            ));
        }
        v.range_u64("model.experts", experts, 1, MAX_EXPERTS)?;
        v.range_u64("model.top_k", top_k, 1, experts).map_err(|_| {
            v.err(
                "model.top_k",
                format!("model.top_k = {top_k} must be between 1 and model.experts = {experts}"),
            )
        })?;
        v.range_u64("model.expert_ffn", expert_ffn, 1, MAX_FFN)?;
        v.range_u64("model.shared_experts", shared_experts, 0, MAX_EXPERTS)?;
        v.range_u64("model.moe_every", moe_every, 1, MAX_LAYERS)?;
        let routing = m.routing.clone().unwrap_or_else(|| "balanced".into());
        crate::routing::Routing::parse(&routing)
            .map_err(|e| v.err("model.routing", format!("model.routing = {e}")))?;
        let routing_seed = m.routing_seed.unwrap_or(1);
        let moe_chunks = m.moe_chunks.unwrap_or(1);
        v.range_u64("model.moe_chunks", moe_chunks, 1, MAX_MOE_CHUNKS)?;
        let name = match (
            &m.preset,
            m == &ModelSection {
                preset: m.preset.clone(),
                ..Default::default()
            },
        ) {
            (Some(p), true) => p.clone(),
            (Some(p), false) => format!("{p} (modified)"),
            (None, _) => match &m.hf_config {
                Some(h) => format!("hf:{h}"),
                None => "custom".to_string(),
            },
        };
        let model = ModelShape {
            name,
            hidden,
            ffn,
            heads,
            kv_heads,
            layers,
            seq,
            vocab,
            gated_mlp,
            lm_head,
            experts,
            top_k,
            expert_ffn,
            shared_experts,
            moe_every,
            tied_embeddings,
            routing,
            routing_seed,
            moe_chunks,
        };

        let r = &self.run;
        let backend = r.backend.unwrap_or_default();
        let run_layers = r.layers.unwrap_or(layers.min(2));
        v.range_u64("run.layers", run_layers, 1, layers)
            .map_err(|_| {
                v.err(
                    "run.layers",
                    format!(
                        "run.layers = {run_layers} must be between 1 and model.layers = {layers}"
                    ),
                )
            })?;
        let micro_batch = v.range_u64(
            "run.micro_batch",
            r.micro_batch.unwrap_or(1),
            1,
            MAX_MICRO_BATCH,
        )?;
        let on_cuda = backend == BackendKind::Cuda;
        let dtype = r
            .dtype
            .unwrap_or(if on_cuda { Dtype::Bf16 } else { Dtype::F32 });
        if !dtype.gemm_supported_on(backend) {
            return Err(v.err(
                "run.dtype",
                format!(
                    "run.dtype = \"{dtype}\" is not supported by the {backend} backend (cpu: f32, f64; cuda: bf16, fp16, tf32, fp8, f32)"
                ),
            ));
        }
        let grad_dtype = r.grad_dtype.unwrap_or(match dtype {
            Dtype::F64 => Dtype::F64,
            Dtype::F32 | Dtype::Tf32 => Dtype::F32,
            Dtype::Bf16 | Dtype::Fp8 => Dtype::Bf16,
            Dtype::Fp16 => Dtype::Fp16,
        });
        if !grad_dtype.grad_supported_on(backend) {
            return Err(v.err(
                "run.grad_dtype",
                format!(
                    "run.grad_dtype = \"{grad_dtype}\" is not supported by the {backend} backend (cpu: f32, f64; cuda: bf16, fp16, f32)"
                ),
            ));
        }
        if matches!(grad_dtype, Dtype::Tf32 | Dtype::Fp8) {
            return Err(v.err(
                "run.grad_dtype",
                format!("run.grad_dtype = \"{grad_dtype}\" is not a storage type for gradients; use f32, bf16 or fp16"),
            ));
        }
        let bucket_mb = v.range_f64(
            "run.bucket_mb",
            r.bucket_mb.unwrap_or(25.0),
            0.0,
            MAX_BUCKET_MB,
        )?;
        let warmup = r.warmup.unwrap_or(2);
        v.range_u64("run.warmup", warmup as u64, 0, MAX_ITERATIONS as u64)?;
        let warmup_max = match r.warmup_max {
            Some(m) => {
                v.range_u64("run.warmup_max", m as u64, 0, MAX_ITERATIONS as u64)?;
                if m < warmup {
                    return Err(v.err(
                        "run.warmup_max",
                        format!("run.warmup_max = {m} is below run.warmup = {warmup}; set it to run.warmup or more (equal: a fixed warmup count)"),
                    ));
                }
                m
            }
            None if warmup == 0 => 0,
            None => warmup.max(DEFAULT_WARMUP_MAX),
        };
        let warmup_tolerance = v.range_f64(
            "run.warmup_tolerance",
            r.warmup_tolerance.unwrap_or_else(default_warmup_tolerance),
            0.0,
            1.0,
        )?;
        let iterations = r.iterations.unwrap_or(10);
        v.range_u64(
            "run.iterations",
            iterations as u64,
            1,
            MAX_ITERATIONS as u64,
        )?;
        let modes = r.modes.clone().unwrap_or_else(|| Mode::ALL.to_vec());
        if modes.is_empty() {
            return Err(v.err(
                "run.modes",
                "run.modes is empty; list one or more of \"compute\", \"comm\", \"serialized\", \"overlapped\"".into(),
            ));
        }
        for (i, a) in modes.iter().enumerate() {
            if modes[..i].contains(a) {
                return Err(v.err(
                    "run.modes",
                    format!("run.modes lists \"{a}\" twice; list each mode once"),
                ));
            }
        }
        let op_timeout_s = v.range_f64(
            "run.op_timeout_s",
            r.op_timeout_s.unwrap_or(300.0),
            0.0,
            MAX_OP_TIMEOUT_S,
        )?;
        let peak_tflops = match r.peak_tflops {
            // Below a MFLOP/s no device is benchmarked: such a value is a
            // unit mistake, and MFU against it would be a 300-digit number.
            Some(p) => Some(v.range_f64("run.peak_tflops", p, MIN_PEAK_TFLOPS, MAX_PEAK_TFLOPS)?),
            None => None,
        };
        if let Some(t) = r.gemm_threads {
            v.range_u64("run.gemm_threads", t as u64, 1, MAX_GEMM_THREADS as u64)?;
        }
        if let Some(n) = r.ranks {
            v.range_u64("run.ranks", n as u64, 1, 1 << 24)?;
        }
        let run = RunSettings {
            backend,
            layers: run_layers,
            micro_batch,
            dtype,
            grad_dtype,
            bucket_mb,
            warmup,
            warmup_max,
            warmup_tolerance,
            iterations,
            modes,
            schedule: r.schedule.unwrap_or_default(),
            check: r.check.unwrap_or(true),
            op_timeout_s,
            peak_tflops,
            gemm_threads: r.gemm_threads,
            recompute: r.recompute.unwrap_or(false),
            ranks: r.ranks,
        };

        // Every matrix of the plan must fit comfortably in 64-bit sizes.
        let tokens = micro_batch
            .checked_mul(seq)
            .filter(|t| *t <= MAX_MATRIX_ELEMENTS)
            .ok_or_else(|| {
                v.err(
                    "run.micro_batch",
                    format!(
                        "run.micro_batch = {micro_batch} × model.seq = {seq} tokens is too large"
                    ),
                )
            })?;
        let biggest = [
            tokens.checked_mul(
                ffn.max(model.qkv_out())
                    .max(if lm_head { vocab } else { 0 }),
            ),
            micro_batch
                .checked_mul(heads)
                .and_then(|x| x.checked_mul(seq))
                .and_then(|x| x.checked_mul(seq)),
            hidden.checked_mul(ffn.max(vocab).max(model.qkv_out())),
        ];
        for (i, b) in biggest.iter().enumerate() {
            let field = ["model.seq", "model.seq", "model.hidden"][i];
            match b {
                Some(x) if *x <= MAX_MATRIX_ELEMENTS => {}
                _ => {
                    return Err(v.err(
                        field,
                        format!(
                            "the shape makes a matrix of more than 2^40 elements (hidden = {hidden}, ffn = {ffn}, heads = {heads}, seq = {seq}, micro_batch = {micro_batch}); reduce it"
                        ),
                    ))
                }
            }
        }

        // Thresholds may be 0 (as `mfubench report`'s flags allow).
        let a = &self.acceptance;
        let within = |field: &str, x: f64, lo: f64, hi: f64| {
            if x.is_finite() && (lo..=hi).contains(&x) {
                Ok(())
            } else {
                Err(v.err(
                    field,
                    format!("{field} = {x} must be between {lo} and {hi}"),
                ))
            }
        };
        if let Some(x) = a.min_mfu {
            within("acceptance.min_mfu", x, 0.0, 1.0)?;
        }
        if let Some(x) = a.max_exposed_comm_fraction {
            within("acceptance.max_exposed_comm_fraction", x, 0.0, 1.0)?;
        }
        if let Some(x) = a.min_busbw_gbps {
            within("acceptance.min_busbw_gbps", x, 0.0, 1.0e6)?;
        }
        within(
            "acceptance.straggler_tolerance",
            a.straggler_tolerance,
            0.0,
            10.0,
        )?;

        self.accept.validate(file)?;
        self.soak.validate(file)?;
        let parallel = self.parallel.resolve(file, &model)?;
        if model.is_moe() {
            if parallel.tensor > 1 {
                return Err(v.err(
                    "parallel.tensor",
                    format!("parallel.tensor = {} with model.experts = {}: tensor parallelism of mixture-of-experts blocks is not built yet; use parallel.tensor = 1 (data parallelism, FSDP or HSDP)", parallel.tensor, model.experts),
                ));
            }
            let tokens = run.micro_batch * model.seq;
            if tokens * model.top_k < model.experts {
                return Err(v.err(
                    "model.experts",
                    format!("model.experts = {} get {} routed tokens per step (run.micro_batch × model.seq × model.top_k), fewer than one each; raise run.micro_batch or model.seq", model.experts, tokens * model.top_k),
                ));
            }
            let smallest = tokens / model.moe_chunks;
            if smallest * model.top_k < model.experts {
                return Err(v.err(
                    "model.moe_chunks",
                    format!("model.moe_chunks = {} leaves chunks of {smallest} tokens, which route {} tokens to model.experts = {}, fewer than one each; use fewer chunks or raise run.micro_batch", model.moe_chunks, smallest * model.top_k, model.experts),
                ));
            }
        }

        Ok(Config {
            model,
            run,
            acceptance: a.clone(),
            accept: self.accept.clone(),
            soak: self.soak.clone(),
            parallel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        parse_config(text, "test.toml").unwrap_err()
    }

    #[test]
    fn preset_with_defaults() {
        let c = parse_config("[model]\npreset = \"llama3-8b\"\n", "x.toml").unwrap();
        assert_eq!(c.model.hidden, 4096);
        assert_eq!(c.model.name, "llama3-8b");
        assert_eq!(c.run.layers, 2);
        assert_eq!(c.run.dtype, Dtype::F32);
        assert_eq!(c.run.modes, Mode::ALL.to_vec());
        assert!(c.run.check);
    }

    #[test]
    fn explicit_fields_override_preset() {
        let c = parse_config("[model]\npreset = \"llama3-8b\"\nseq = 2048\n", "x").unwrap();
        assert_eq!(c.model.seq, 2048);
        assert_eq!(c.model.hidden, 4096);
        assert_eq!(c.model.name, "llama3-8b (modified)");
    }

    #[test]
    fn syntax_error_has_file_line_col() {
        let e = err("[model]\npreset = \"tiny\"\nhidden = = 3\n");
        match &e {
            ConfigError::Syntax {
                file, line, col, ..
            } => {
                assert_eq!(file, "test.toml");
                assert_eq!(*line, 3);
                assert!(*col >= 8, "col {col}");
            }
            other => panic!("expected syntax error, got {other}"),
        }
        assert!(e.to_string().starts_with("test.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_key_lists_known_ones() {
        let e = err("[model]\npreset = \"tiny\"\nhiden = 4096\n").to_string();
        assert!(e.contains("test.toml:3:1"), "{e}");
        assert!(e.contains("[model]"), "{e}");
        assert!(
            e.contains("hiden") && e.contains("`hidden`") && e.contains("`kv_heads`"),
            "{e}"
        );
        let e = err("[runn]\nlayers = 1\n").to_string();
        assert!(e.contains("`run`") && e.contains("`acceptance`"), "{e}");
    }

    #[test]
    fn heads_must_divide_hidden() {
        let e = err("[model]\npreset = \"llama3-8b\"\nheads = 48\n");
        assert_eq!(e.field(), Some("model.heads"));
        assert!(
            e.to_string()
                .contains("model.heads = 48 does not divide model.hidden = 4096"),
            "{e}"
        );
    }

    #[test]
    fn kv_heads_must_divide_heads() {
        let e = err("[model]\npreset = \"llama3-8b\"\nkv_heads = 5\n");
        assert_eq!(e.field(), Some("model.kv_heads"));
    }

    #[test]
    fn zero_sizes_rejected() {
        for f in ["hidden", "ffn", "heads", "layers", "seq", "vocab"] {
            let e = err(&format!("[model]\npreset = \"tiny\"\n{f} = 0\n"));
            assert_eq!(e.field(), Some(format!("model.{f}").as_str()), "{e}");
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        let e = err("[model]\npreset = \"tiny\"\n[run]\nmicro_batch = 0\n");
        assert_eq!(e.field(), Some("run.micro_batch"));
        let e = err("[model]\npreset = \"tiny\"\n[run]\niterations = 0\n");
        assert_eq!(e.field(), Some("run.iterations"));
        let e = err("[model]\npreset = \"tiny\"\n[run]\nbucket_mb = 0.0\n");
        assert_eq!(e.field(), Some("run.bucket_mb"));
    }

    #[test]
    fn negative_sizes_rejected_with_location() {
        let e = err("[model]\npreset = \"tiny\"\nhidden = -4\n");
        let s = e.to_string();
        assert!(s.starts_with("test.toml:3:"), "{s}");
        assert!(s.contains("[model]"), "{s}");
        let e = err("[model]\npreset = \"tiny\"\n[run]\nop_timeout_s = -1.0\n");
        assert_eq!(e.field(), Some("run.op_timeout_s"));
    }

    #[test]
    fn overflowing_sizes_rejected() {
        let e = err("[model]\npreset = \"tiny\"\nhidden = 99999999999999999999999\n");
        assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{e}");
        let e = err("[model]\npreset = \"tiny\"\nseq = 18446744073709551615\n");
        assert_eq!(e.field(), Some("model.seq"));
    }

    #[test]
    fn absurd_sizes_rejected() {
        let e = err("[model]\npreset = \"tiny\"\nhidden = 4194304\n");
        assert_eq!(e.field(), Some("model.hidden"));
        // Each size within its own limit, but the attention scores matrix is huge.
        let e =
            err("[model]\npreset = \"llama3-405b\"\nseq = 4194304\n[run]\nmicro_batch = 4096\n");
        assert!(e.field().is_some(), "{e}");
        assert!(
            e.to_string().contains("too large") || e.to_string().contains("2^40"),
            "{e}"
        );
    }

    #[test]
    fn missing_shape_named() {
        let e = err("[model]\nhidden = 1024\n");
        assert_eq!(e.field(), Some("model.ffn"));
        assert!(e.to_string().contains("model.preset"), "{e}");
    }

    #[test]
    fn unknown_preset_lists_known() {
        let e = err("[model]\npreset = \"llama9\"\n").to_string();
        assert!(
            e.contains("model.preset") && e.contains("llama3-70b"),
            "{e}"
        );
    }

    #[test]
    fn run_layers_limited_by_model() {
        let e = err("[model]\npreset = \"tiny\"\n[run]\nlayers = 99\n");
        assert_eq!(e.field(), Some("run.layers"));
        assert!(e.to_string().contains("model.layers = 4"), "{e}");
    }

    #[test]
    fn dtype_backend_mismatch() {
        let e = err("[model]\npreset = \"tiny\"\n[run]\nbackend = \"cpu\"\ndtype = \"bf16\"\n");
        assert_eq!(e.field(), Some("run.dtype"));
        let e = err("[model]\npreset = \"tiny\"\n[run]\ndtype = \"bf17\"\n").to_string();
        assert!(e.contains("bf16") && e.contains("test.toml:4:"), "{e}");
        let c = parse_config(
            "[model]\npreset = \"tiny\"\n[run]\nbackend = \"cuda\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.run.dtype, Dtype::Bf16);
        assert_eq!(c.run.grad_dtype, Dtype::Bf16);
    }

    #[test]
    fn modes_validated() {
        let e = err("[model]\npreset = \"tiny\"\n[run]\nmodes = []\n");
        assert_eq!(e.field(), Some("run.modes"));
        let e = err("[model]\npreset = \"tiny\"\n[run]\nmodes = [\"comm\", \"comm\"]\n");
        assert_eq!(e.field(), Some("run.modes"));
        let e = err("[model]\npreset = \"tiny\"\n[run]\nmodes = [\"fast\"]\n").to_string();
        assert!(e.contains("overlapped"), "{e}");
    }

    #[test]
    fn acceptance_validated() {
        let e = err("[model]\npreset = \"tiny\"\n[acceptance]\nmin_mfu = 1.5\n");
        assert_eq!(e.field(), Some("acceptance.min_mfu"));
        let e = err("[model]\npreset = \"tiny\"\n[acceptance]\nmax_exposed_comm_fraction = -0.1\n");
        assert_eq!(e.field(), Some("acceptance.max_exposed_comm_fraction"));
        let e = err("[model]\npreset = \"tiny\"\n[acceptance]\nstraggler_tolerance = -0.1\n");
        assert_eq!(e.field(), Some("acceptance.straggler_tolerance"));
    }

    #[test]
    fn non_finite_floats_rejected() {
        let e = err("[model]\npreset = \"tiny\"\n[run]\npeak_tflops = nan\n");
        assert_eq!(e.field(), Some("run.peak_tflops"));
        let e = err("[model]\npreset = \"tiny\"\n[run]\nbucket_mb = inf\n");
        assert_eq!(e.field(), Some("run.bucket_mb"));
    }

    #[test]
    fn moe_fields_default_to_dense_and_errors_name_the_field() {
        let c = parse_config("[model]\npreset = \"tiny\"\n", "x").unwrap();
        assert_eq!(
            (c.model.experts, c.model.top_k, c.model.expert_ffn),
            (1, 1, 1536)
        );
        assert!(!c.model.is_moe());
        let e = err("[model]\npreset = \"tiny\"\nexperts = 4\ntop_k = 5\n");
        assert_eq!(e.field(), Some("model.top_k"));
        let e = err("[model]\npreset = \"tiny\"\nexperts = 0\n");
        assert_eq!(e.field(), Some("model.experts"));
        let e = err("[model]\npreset = \"tiny\"\nexperts = 4\n[parallel]\ntensor = 2\n");
        assert_eq!(e.field(), Some("parallel.tensor"));
        assert!(e.to_string().contains("not built yet"), "{e}");
        // 16 tokens × top-1 cannot reach 64 experts.
        let e = err("[model]\npreset = \"tiny\"\nseq = 16\nexperts = 64\n");
        assert_eq!(e.field(), Some("model.experts"));
        assert!(e.to_string().contains("16 routed tokens"), "{e}");
    }

    #[test]
    fn warmup_defaults_cap_and_errors() {
        let run = |extra: &str| {
            parse_config(&format!("[model]\npreset = \"tiny\"\n[run]\n{extra}"), "x")
                .unwrap()
                .run
        };
        let r = run("");
        assert_eq!((r.warmup, r.warmup_max, r.warmup_tolerance), (2, 10, 0.1));
        let r = run("warmup = 12\n");
        assert_eq!((r.warmup, r.warmup_max), (12, 12));
        let r = run("warmup = 0\n");
        assert_eq!((r.warmup, r.warmup_max), (0, 0));
        let r = run("warmup = 3\nwarmup_max = 3\nwarmup_tolerance = 0.05\n");
        assert_eq!((r.warmup, r.warmup_max, r.warmup_tolerance), (3, 3, 0.05));
        let e = err("[model]\npreset = \"tiny\"\n[run]\nwarmup = 3\nwarmup_max = 2\n");
        assert_eq!(e.field(), Some("run.warmup_max"));
        assert!(e.to_string().contains("below run.warmup = 3"), "{e}");
        let e = err("[model]\npreset = \"tiny\"\n[run]\nwarmup_tolerance = 1.5\n");
        assert_eq!(e.field(), Some("run.warmup_tolerance"));
    }

    #[test]
    fn integers_accepted_for_float_fields() {
        let c = parse_config(
            "[model]\npreset = \"tiny\"\n[run]\nbucket_mb = 25\npeak_tflops = 989\nop_timeout_s = 60\n",
            "x",
        )
        .unwrap();
        assert_eq!(
            (c.run.bucket_mb, c.run.peak_tflops, c.run.op_timeout_s),
            (25.0, Some(989.0), 60.0)
        );
    }

    #[test]
    fn op_timeout_accepts_durations() {
        let t = |v: &str| {
            parse_config(
                &format!("[model]\npreset = \"tiny\"\n[run]\nop_timeout_s = {v}\n"),
                "x",
            )
            .map(|c| c.run.op_timeout_s)
        };
        assert_eq!(t("\"10m\"").unwrap(), 600.0);
        assert_eq!(t("\"90s\"").unwrap(), 90.0);
        assert_eq!(t("\"1h\"").unwrap(), 3600.0);
        assert_eq!(t("45").unwrap(), 45.0);
        assert_eq!(t("2.5").unwrap(), 2.5);
        let e = t("\"10 parsecs\"").unwrap_err().to_string();
        assert!(e.contains("x:4:") && e.contains("10m"), "{e}");
    }

    #[test]
    fn line_col_handles_multibyte() {
        assert_eq!(line_col("ä\nbé x", 6), (2, 3));
        assert_eq!(line_col("ä\nbé x", 7), (2, 4));
        assert_eq!(line_col("abc", 0), (1, 1));
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = parse_config("[model]\npreset = \"tiny\"\n", "x").unwrap();
        let j = serde_json::to_string(&c).unwrap();
        let back: Config = serde_json::from_str(&j).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn schedule_rounds_form_a_latin_square() {
        use Mode::*;
        let modes = [Compute, Comm, Serialized, Overlapped];
        let s = Schedule::Interleaved;
        assert_eq!(
            s.round_order(&modes, 1),
            vec![Comm, Serialized, Overlapped, Compute]
        );
        // Over 4 rounds every mode takes every position once.
        for pos in 0..4 {
            let mut seen: Vec<Mode> = (0..4).map(|r| s.round_order(&modes, r)[pos]).collect();
            seen.sort_by_key(|m| m.name());
            let mut all = modes.to_vec();
            all.sort_by_key(|m| m.name());
            assert_eq!(seen, all);
        }
        assert_eq!(Schedule::Blocked.round_order(&modes, 3), modes.to_vec());
        let c = parse_config("[model]\npreset = \"tiny\"\n", "t").unwrap();
        assert_eq!(c.run.schedule, Schedule::Interleaved);
        let c = parse_config(
            "[model]\npreset = \"tiny\"\n[run]\nschedule = \"blocked\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.run.schedule, Schedule::Blocked);
    }
}
