//! The flags several commands share, declared once: `--junit`/`--prom`
//! ([`ExportArgs`], report and run), the `[acceptance]` thresholds
//! ([`ThresholdArgs`], report, run and accept) and the `[accept]` fractions
//! ([`AcceptFractionArgs`], accept and report), each parsed with core's one
//! parser for its kind of value.

use std::path::PathBuf;

use clap::Args;
use mfubench_core::accept::AcceptOverrides;
use mfubench_core::units::{parse_fraction, parse_ratio};
use mfubench_report::AcceptanceOverrides;

/// `--junit` / `--prom`: shared by `report` and `run`.
#[derive(Debug, Clone, Default, Args)]
pub struct ExportArgs {
    /// Also write a JUnit XML file: one testcase per acceptance rule, plus
    /// run_complete.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the figures in the Prometheus text format (for
    /// node_exporter's textfile collector; name it *.prom).
    #[arg(long, value_name = "FILE")]
    pub prom: Option<PathBuf>,
}

/// Acceptance threshold flags: shared by `report` and `run`; each replaces
/// the config's `[acceptance]` value.
#[derive(Debug, Clone, Default, Args)]
pub struct ThresholdArgs {
    /// Lowest acceptable overlapped MFU, e.g. 0.4 or 40% (overrides
    /// [acceptance] min_mfu).
    #[arg(long, value_name = "FRACTION", value_parser = fraction_for("acceptance.min_mfu"))]
    pub min_mfu: Option<f64>,
    /// Highest acceptable exposed communication fraction, e.g. 0.1 or 10%.
    #[arg(
        long,
        value_name = "FRACTION",
        value_parser = fraction_for("acceptance.max_exposed_comm_fraction")
    )]
    pub max_exposed_comm_fraction: Option<f64>,
    /// Lowest acceptable all-reduce bus bandwidth, GB/s.
    #[arg(long, value_name = "GBPS")]
    pub min_busbw_gbps: Option<f64>,
    /// Straggler tolerance, e.g. 0.05 or 5% (stragglers are recomputed).
    #[arg(long, value_name = "FRACTION", value_parser = parse_ratio)]
    pub straggler_tolerance: Option<f64>,
    /// Most wrong all-reduce elements tolerated.
    #[arg(long, value_name = "N")]
    pub max_wrong: Option<u64>,
    /// Accept acceptance rules that are INCONCLUSIVE (within noise) instead
    /// of exiting 1.
    #[arg(long)]
    pub allow_inconclusive: bool,
}

impl ThresholdArgs {
    /// The overrides these flags give.
    pub fn overrides(&self) -> AcceptanceOverrides {
        AcceptanceOverrides {
            min_mfu: self.min_mfu,
            max_exposed_comm_fraction: self.max_exposed_comm_fraction,
            min_busbw_gbps: self.min_busbw_gbps,
            straggler_tolerance: self.straggler_tolerance,
            max_wrong: self.max_wrong,
        }
    }
}

/// The `[accept]` thresholds as flags, declared once: `mfubench accept`
/// applies them to the config's `[accept]` (and forwards them to the
/// ranks), `mfubench report` re-judges an accept.json with them. Each takes
/// a fraction or a percentage with core's one parser; a bad value is a
/// usage error (exit 2) naming the flag and the `accept.` setting.
#[derive(Debug, Clone, Default, Args)]
pub struct AcceptFractionArgs {
    /// A device below this fraction of the median device fails, e.g. 0.92
    /// or 92% (replaces accept.min_device_fraction).
    #[arg(long, value_name = "FRACTION", value_parser = fraction_for("accept.min_device_fraction"))]
    pub min_device_fraction: Option<f64>,
    /// A node below this fraction of the median node fails, e.g. 0.9 or
    /// 90% (replaces accept.min_node_fraction).
    #[arg(long, value_name = "FRACTION", value_parser = fraction_for("accept.min_node_fraction"))]
    pub min_node_fraction: Option<f64>,
    /// A link below this fraction of the reference link fails, e.g. 0.8 or
    /// 80% (replaces accept.min_link_fraction).
    #[arg(long, value_name = "FRACTION", value_parser = fraction_for("accept.min_link_fraction"))]
    pub min_link_fraction: Option<f64>,
}

impl AcceptFractionArgs {
    /// `base` with the thresholds these flags give.
    pub fn overrides(&self, base: AcceptOverrides) -> AcceptOverrides {
        AcceptOverrides {
            min_device_fraction: self.min_device_fraction,
            min_node_fraction: self.min_node_fraction,
            min_link_fraction: self.min_link_fraction,
            ..base
        }
    }
}

/// Core's fraction parser (`0.4` or `40%`, between 0 and 1) for a flag
/// that replaces the setting `key`: its error names the setting after the
/// flag clap names, e.g. `invalid value '1.5' for '--min-mfu <FRACTION>':
/// acceptance.min_mfu: "1.5" is out of range: …` (exit 2).
pub fn fraction_for(
    key: &'static str,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |s| parse_fraction(s).map_err(|e| format!("{key}: {e}"))
}
