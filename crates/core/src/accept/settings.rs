//! The `[accept]` table of the config and the command-line overrides:
//! stages, thresholds, sizes, with defaults and validation.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::config::ConfigError;
use crate::metrics::Collective;

/// A stage of the suite, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Every node's configuration against the majority's (seconds).
    Config,
    /// GEMMs alone on every device at once: per-device TFLOP/s.
    Device,
    /// All-reduce inside each node: per-node bus bandwidth.
    Node,
    /// Point-to-point between every pair of nodes: the link matrix.
    Link,
    /// Whole-cluster all-reduce over a size range (nccl-tests columns).
    Sweep,
    /// The four-mode training step (run.json beside accept.json).
    Step,
}

impl Stage {
    /// Every stage, in run order.
    pub const ALL: [Stage; 6] = [
        Stage::Config,
        Stage::Device,
        Stage::Node,
        Stage::Link,
        Stage::Sweep,
        Stage::Step,
    ];

    /// The stage's name as written in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Device => "device",
            Stage::Node => "node",
            Stage::Link => "link",
            Stage::Sweep => "sweep",
            Stage::Step => "step",
        }
    }

    /// Parses a stage name.
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|x| x.name() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a comma-separated stage list (`device,link`) into stages in run
/// order, each once; the error names the unknown stage and the known ones.
pub fn parse_stages(list: &str) -> Result<Vec<Stage>, String> {
    let mut out = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let s = Stage::parse(word).ok_or_else(|| {
            format!(
                "unknown stage \"{word}\"; stages are {}",
                Stage::ALL.map(Stage::name).join(", ")
            )
        })?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err("no stage given; stages are config, device, node, link, sweep, step".into());
    }
    out.sort();
    Ok(out)
}

/// `[accept]` of the config. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcceptSettings {
    /// Stages to run, in run order (default all five).
    pub stages: Vec<Stage>,
    /// A device whose GEMM rate is below this fraction of the median
    /// device's is named (default 0.92).
    pub min_device_fraction: f64,
    /// A node whose intra-node all-reduce bus bandwidth (bandwidth-bound
    /// size) is below this fraction of the median node's is named
    /// (default 0.9).
    pub min_node_fraction: f64,
    /// A link whose bandwidth is below this fraction of the reference (the
    /// median over nodes of each node's fastest link) is named (default 0.8).
    pub min_link_fraction: f64,
    /// Above this many nodes the link stage runs the sampled schedule
    /// instead of every pair (default 64).
    pub max_pair_nodes: u64,
    /// Random matchings the sampled schedule adds to its ring (default 8).
    pub sampled_rounds: u64,
    /// Timed repetitions of every measurement of the device, node, link
    /// and sweep stages, after one untimed one (default 10).
    pub iterations: u32,
    /// Node stage: the latency-bound message size in bytes (default 8 KiB).
    pub node_small_bytes: u64,
    /// Node stage: the bandwidth-bound message size in bytes (default 64 MiB).
    pub node_large_bytes: u64,
    /// Link stage: bytes each side of a pair sends per exchange (default 64 MiB).
    pub link_bytes: u64,
    /// Sweep stage: smallest all-reduce in bytes (default 8).
    pub sweep_begin: u64,
    /// Sweep stage: largest all-reduce in bytes (default 128 MiB).
    pub sweep_end: u64,
    /// Sweep stage: factor between sizes (default 2).
    pub sweep_factor: u64,
    /// Sweep stage: the collectives swept, each a table (default
    /// `all_reduce`, `reduce_scatter`, `all_gather`).
    pub sweep_collectives: Vec<Collective>,
    /// Sweep stage: its time budget, seconds, for every table together
    /// (default 120). The sweep stops escalating before a size that would
    /// overrun it ([`sweep_predicted_s`]) and says so; one slow link cannot
    /// stretch the suite by the whole range of sizes.
    pub sweep_budget_s: f64,
    /// Link stage: its time budget, seconds, isolation rounds included
    /// (default 60). The untimed pass and the first timed pass always run;
    /// a further pass runs only if the time spent plus the last pass's
    /// duration fits ([`link_pass_fits`]). A link slow enough to overrun it
    /// is named from the passes that ran, and the stage says PARTIAL.
    pub link_budget_s: f64,
    /// Node stage: its time budget, seconds, for both sizes on every node
    /// (default 60). After each size's first timed all-reduce, another runs
    /// only if it fits (as the link stage's passes); fewer than
    /// `iterations` make the node stage PARTIAL.
    pub node_budget_s: f64,
    /// Step stage: its time budget, seconds (default 600). After the
    /// warmup, the timed rounds (one step of every mode each) are cut to
    /// what fits, at least one, predicted from the slowest rank's last
    /// warmup round; fewer than `run.iterations` make the step PARTIAL.
    pub step_budget_s: f64,
    /// Earlier runs of a node (same GPU serials) needed to judge it
    /// against its own past (default 3, [`super::MIN_PAST`]; at least 1).
    pub history_min_runs: u64,
    /// Link stage: network interfaces, one per rail (`["eth0", "eth1"]`,
    /// `--rails`). For each, the node leaders run the link schedule again
    /// over TCP between their IPv4 addresses on that interface (NIC i with
    /// NIC i), so a finding names the rail. Empty (the default): the one
    /// path MPI or NCCL picks.
    pub rails: Vec<String>,
    /// Keep the nodes already found bad (by the config, device, node or
    /// link stage: [`super::bad_nodes`]) in the sweep and step stages
    /// (`--keep-bad`). By default they are left out, so that one bad node
    /// or link cannot stretch the stages that run every rank together.
    pub keep_bad: bool,
}

impl Default for AcceptSettings {
    fn default() -> Self {
        AcceptSettings {
            stages: Stage::ALL.to_vec(),
            min_device_fraction: 0.92,
            min_node_fraction: 0.9,
            min_link_fraction: 0.8,
            max_pair_nodes: 64,
            sampled_rounds: 8,
            iterations: 10,
            node_small_bytes: 8 << 10,
            node_large_bytes: 64 << 20,
            link_bytes: 64 << 20,
            sweep_begin: 8,
            sweep_end: 128 << 20,
            sweep_factor: 2,
            sweep_collectives: SWEEP_COLLECTIVES.to_vec(),
            sweep_budget_s: 120.0,
            link_budget_s: 60.0,
            node_budget_s: 60.0,
            step_budget_s: 600.0,
            history_min_runs: super::MIN_PAST as u64,
            rails: Vec::new(),
            keep_bad: false,
        }
    }
}

/// Whether the link stage's next pass may run: `elapsed_s` spent, the last
/// pass took `last_pass_s`, the stage may take `budget_s`
/// (`accept.link_budget_s`). Known answers in the tests.
pub fn link_pass_fits(elapsed_s: f64, last_pass_s: f64, budget_s: f64) -> bool {
    elapsed_s + last_pass_s.max(0.0) <= budget_s
}

/// How many timed rounds of the step stage fit its budget: `elapsed_s`
/// spent (open and warmup), a round (one step of every mode) predicted at
/// `round_s` (the slowest rank's last warmup round), `budget_s`
/// (`accept.step_budget_s`); at least 1 (the stage measures something), at
/// most `iterations`. Known answers in the tests.
pub fn step_rounds_that_fit(elapsed_s: f64, round_s: f64, budget_s: f64, iterations: u32) -> u32 {
    if !(round_s.is_finite() && round_s > 0.0) {
        return iterations;
    }
    let fit = ((budget_s - elapsed_s) / round_s).floor();
    if fit >= iterations as f64 {
        iterations
    } else {
        (fit.max(1.0) as u32).min(iterations)
    }
}

/// The predicted seconds of the sweep's next size: `calls` calls (the
/// checked one and the timed ones) at the last size's median, scaled to the
/// next size (bandwidth-bound; never faster than the last). The next size
/// runs when the time spent plus this fits `accept.sweep_budget_s`. Known
/// answers in the tests.
pub fn sweep_predicted_s(last_call_s: f64, last_bytes: u64, next_bytes: u64, calls: u32) -> f64 {
    let scale = (next_bytes as f64 / last_bytes.max(1) as f64).max(1.0);
    f64::from(calls) * last_call_s.max(0.0) * scale
}

/// The collectives the sweep stage can time, in their default order.
pub const SWEEP_COLLECTIVES: [Collective; 3] = [
    Collective::AllReduce,
    Collective::ReduceScatter,
    Collective::AllGather,
];

/// Largest message any accept stage sends, bytes (16 GiB).
pub const MAX_ACCEPT_BYTES: u64 = 16 << 30;

impl AcceptSettings {
    /// Whether every setting is the default (run.json then omits them).
    pub fn is_default(&self) -> bool {
        *self == AcceptSettings::default()
    }

    /// Checks every value; the error names the field (`accept.…`) and the rule.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |field: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            field: format!("accept.{field}"),
            message,
        };
        for (f, x) in [
            ("min_device_fraction", self.min_device_fraction),
            ("min_node_fraction", self.min_node_fraction),
            ("min_link_fraction", self.min_link_fraction),
        ] {
            if !crate::units::is_fraction(x) {
                return Err(err(
                    f,
                    format!("accept.{f} = {x} must be a fraction between 0 and 1"),
                ));
            }
        }
        if self.stages.is_empty() {
            return Err(err(
                "stages",
                "accept.stages is empty; list one or more of \"config\", \"device\", \"node\", \"link\", \"sweep\", \"step\"".into(),
            ));
        }
        if self.max_pair_nodes < 2 {
            return Err(err(
                "max_pair_nodes",
                format!(
                    "accept.max_pair_nodes = {} must be at least 2",
                    self.max_pair_nodes
                ),
            ));
        }
        for (i, r) in self.rails.iter().enumerate() {
            // An interface name: 1 to 15 bytes (IFNAMSIZ − 1), no '/',
            // whitespace or ','; each once.
            let bad = r.is_empty()
                || r.len() > 15
                || r.contains(|c: char| c == '/' || c == ',' || c.is_whitespace());
            if bad || self.rails[..i].contains(r) {
                return Err(err(
                    "rails",
                    format!(
                        "accept.rails: {r:?} is {}; give network interface names, each once, e.g. [\"eth0\", \"eth1\"]",
                        if bad { "not an interface name" } else { "listed twice" }
                    ),
                ));
            }
        }
        if self.history_min_runs < 1 {
            return Err(err(
                "history_min_runs",
                "accept.history_min_runs = 0 must be at least 1 (earlier runs of the node)".into(),
            ));
        }
        if !(1..=1000).contains(&self.sampled_rounds) {
            return Err(err(
                "sampled_rounds",
                format!(
                    "accept.sampled_rounds = {} must be between 1 and 1000",
                    self.sampled_rounds
                ),
            ));
        }
        if !(1..=100_000).contains(&self.iterations) {
            return Err(err(
                "iterations",
                format!(
                    "accept.iterations = {} must be between 1 and 100000",
                    self.iterations
                ),
            ));
        }
        for (f, x) in [
            ("node_small_bytes", self.node_small_bytes),
            ("node_large_bytes", self.node_large_bytes),
            ("link_bytes", self.link_bytes),
            ("sweep_begin", self.sweep_begin),
            ("sweep_end", self.sweep_end),
        ] {
            if !(4..=MAX_ACCEPT_BYTES).contains(&x) {
                return Err(err(
                    f,
                    format!("accept.{f} = {x} must be between 4 bytes and 16 GiB"),
                ));
            }
        }
        for (f, x) in [
            ("sweep_budget_s", self.sweep_budget_s),
            ("link_budget_s", self.link_budget_s),
            ("node_budget_s", self.node_budget_s),
            ("step_budget_s", self.step_budget_s),
        ] {
            if !(x.is_finite() && x > 0.0) {
                return Err(err(
                    f,
                    format!("accept.{f} = {x} must be a positive number of seconds"),
                ));
            }
        }
        if self.sweep_end < self.sweep_begin {
            return Err(err(
                "sweep_end",
                format!(
                    "accept.sweep_end = {} is below accept.sweep_begin = {}",
                    self.sweep_end, self.sweep_begin
                ),
            ));
        }
        if self.sweep_factor < 2 {
            return Err(err(
                "sweep_factor",
                format!(
                    "accept.sweep_factor = {} must be at least 2",
                    self.sweep_factor
                ),
            ));
        }
        let known = "list one or more of \"all_reduce\", \"reduce_scatter\", \"all_gather\"";
        if self.sweep_collectives.is_empty() {
            return Err(err(
                "sweep_collectives",
                format!("accept.sweep_collectives is empty; {known}"),
            ));
        }
        for (i, c) in self.sweep_collectives.iter().enumerate() {
            if !SWEEP_COLLECTIVES.contains(c) {
                return Err(err(
                    "sweep_collectives",
                    format!(
                        "accept.sweep_collectives: \"{}\" is not swept; {known}",
                        c.name()
                    ),
                ));
            }
            if self.sweep_collectives[..i].contains(c) {
                return Err(err(
                    "sweep_collectives",
                    format!("accept.sweep_collectives lists \"{}\" twice", c.name()),
                ));
            }
        }
        Ok(())
    }

    /// The sweep's message sizes in bytes: begin, begin·f, … up to end,
    /// each rounded down to a whole number of 4-byte (f32) elements.
    pub fn sweep_sizes(&self) -> Vec<u64> {
        let mut out = Vec::new();
        let mut s = self.sweep_begin;
        while s <= self.sweep_end {
            let bytes = (s / 4).max(1) * 4;
            if out.last() != Some(&bytes) {
                out.push(bytes);
            }
            match s.checked_mul(self.sweep_factor.max(2)) {
                Some(n) => s = n,
                None => break,
            }
        }
        out
    }
}

/// Settings given on the command line (`mfubench accept` and the worker's
/// `--accept` mode); `Some` replaces the config's `[accept]` value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptOverrides {
    /// `--stages device,link`.
    pub stages: Option<Vec<Stage>>,
    /// `--min-device-fraction`.
    pub min_device_fraction: Option<f64>,
    /// `--min-node-fraction`.
    pub min_node_fraction: Option<f64>,
    /// `--min-link-fraction`.
    pub min_link_fraction: Option<f64>,
    /// `--sweep-begin` / `-b`, bytes.
    pub sweep_begin: Option<u64>,
    /// `--sweep-end` / `-e`, bytes.
    pub sweep_end: Option<u64>,
    /// `--sweep-factor` / `-f`.
    pub sweep_factor: Option<u64>,
    /// `--links all` (every pair: the tournament at any size) or `--links
    /// sampled` (the screen and isolation from 3 nodes on).
    pub max_pair_nodes: Option<u64>,
    /// `--keep-bad`: keep the bad nodes in the sweep and step stages.
    pub keep_bad: Option<bool>,
    /// `--rails eth0,eth1`.
    pub rails: Option<Vec<String>>,
}

impl AcceptOverrides {
    /// `base` with these overrides applied, validated (errors name the
    /// `accept.` field).
    pub fn apply(&self, base: &AcceptSettings, file: &str) -> Result<AcceptSettings, ConfigError> {
        let mut s = base.clone();
        if let Some(v) = &self.stages {
            s.stages = v.clone();
        }
        if let Some(v) = self.min_device_fraction {
            s.min_device_fraction = v;
        }
        if let Some(v) = self.min_node_fraction {
            s.min_node_fraction = v;
        }
        if let Some(v) = self.min_link_fraction {
            s.min_link_fraction = v;
        }
        if let Some(v) = self.sweep_begin {
            s.sweep_begin = v;
        }
        if let Some(v) = self.sweep_end {
            s.sweep_end = v;
        }
        if let Some(v) = self.sweep_factor {
            s.sweep_factor = v;
        }
        if let Some(v) = self.max_pair_nodes {
            s.max_pair_nodes = v;
        }
        if let Some(v) = self.keep_bad {
            s.keep_bad = v;
        }
        if let Some(v) = &self.rails {
            s.rails = v.clone();
        }
        s.validate(file)?;
        Ok(s)
    }
}

/// `mfubench accept --links`: `all` measures every pair (the tournament,
/// at any size: `accept.max_pair_nodes` = the most nodes there can be),
/// `sampled` the screen and isolation from 3 nodes on
/// (`accept.max_pair_nodes` = 2); the value for
/// [`AcceptOverrides::max_pair_nodes`].
pub fn parse_links(s: &str) -> Result<u64, String> {
    match s.trim() {
        "all" => Ok(u64::from(u32::MAX)),
        "sampled" => Ok(2),
        other => Err(format!(
            "\"{other}\": use all (every pair of nodes, the tournament) or sampled (a screen, then isolation)"
        )),
    }
}

/// The parser of `-b` / `-e` (`--sweep-begin` / `--sweep-end`): core's one
/// byte-size parser.
pub use crate::units::parse_bytes;

#[cfg(test)]
mod tests {

    #[test]
    fn sweep_budget_known_answers() {
        // 11 calls of 1 s at 64 MiB predict 22 s at 128 MiB.
        assert_eq!(sweep_predicted_s(1.0, 64 << 20, 128 << 20, 11), 22.0);
        // A size never predicts faster than the last one took.
        assert_eq!(sweep_predicted_s(0.01, 16, 8, 10), 0.1);
        let mut s = AcceptSettings::default();
        assert_eq!(s.sweep_budget_s, 120.0);
        assert_eq!(s.link_budget_s, 60.0);
        // 40 s spent: a 20 s pass still fits 60 s, a 20.5 s one does not.
        assert!(link_pass_fits(40.0, 20.0, 60.0));
        assert!(!link_pass_fits(40.0, 20.5, 60.0));
        s.link_budget_s = f64::NAN;
        let e = s.validate("c.toml").unwrap_err().to_string();
        assert!(
            e.contains("accept.link_budget_s = NaN must be a positive number of seconds"),
            "{e}"
        );
        s.link_budget_s = 60.0;
        s.sweep_budget_s = 0.0;
        let e = s.validate("c.toml").unwrap_err().to_string();
        assert!(
            e.contains("accept.sweep_budget_s = 0 must be a positive number of seconds"),
            "{e}"
        );
    }

    use super::*;

    #[test]
    fn sizes_and_stage_lists() {
        let s = AcceptSettings {
            sweep_begin: 8,
            sweep_end: 1 << 10,
            sweep_factor: 2,
            ..Default::default()
        };
        assert_eq!(s.sweep_sizes(), vec![8, 16, 32, 64, 128, 256, 512, 1024]);
        let s = AcceptSettings {
            sweep_begin: 6,
            sweep_end: 100,
            sweep_factor: 4,
            ..Default::default()
        };
        assert_eq!(s.sweep_sizes(), vec![4, 24, 96]);
        // Sizes are core's one parser (crate::units), re-exported here.
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(
            parse_stages("link, device,link"),
            Ok(vec![Stage::Device, Stage::Link])
        );
        assert!(parse_stages("gpu")
            .unwrap_err()
            .contains("unknown stage \"gpu\""));
        assert!(parse_stages(",").is_err());
        AcceptSettings::default().validate("f").unwrap();
        let bad = AcceptSettings {
            min_link_fraction: 1.5,
            ..Default::default()
        };
        assert_eq!(
            bad.validate("f").unwrap_err().field(),
            Some("accept.min_link_fraction")
        );
        let bad = AcceptSettings {
            sweep_begin: 1 << 20,
            sweep_end: 8,
            ..Default::default()
        };
        assert_eq!(
            bad.validate("f").unwrap_err().field(),
            Some("accept.sweep_end")
        );
    }

    #[test]
    fn accept_table_in_the_config() {
        use crate::config::{parse_config, ConfigError};
        let base = "[model]\npreset = \"tiny\"\n[run]\nbackend = \"cpu\"\n";
        let c = parse_config(base, "c.toml").unwrap();
        assert!(c.accept.is_default());
        let c = parse_config(
            &format!("{base}[accept]\nstages = [\"link\", \"device\"]\nlink_bytes = 1024\n"),
            "c.toml",
        )
        .unwrap();
        assert_eq!(c.accept.stages, vec![Stage::Link, Stage::Device]);
        assert_eq!(c.accept.link_bytes, 1024);
        assert_eq!(c.accept.min_device_fraction, 0.92);
        assert_eq!(c.accept.sweep_collectives, SWEEP_COLLECTIVES);
        let c2 = parse_config(
            &format!("{base}[accept]\nsweep_collectives = [\"all_gather\"]\n"),
            "c.toml",
        )
        .unwrap();
        assert_eq!(c2.accept.sweep_collectives, [Collective::AllGather]);
        for bad in ["[]", "[\"send_recv\"]", "[\"all_gather\", \"all_gather\"]"] {
            let e = parse_config(
                &format!("{base}[accept]\nsweep_collectives = {bad}\n"),
                "c.toml",
            )
            .unwrap_err();
            assert_eq!(e.field(), Some("accept.sweep_collectives"), "{bad}: {e}");
        }
        let e = parse_config(
            &format!("{base}[accept]\nmin_node_fraction = 2.0\n"),
            "c.toml",
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("accept.min_node_fraction"), "{e}");
        assert!(
            e.to_string()
                .starts_with("c.toml: accept.min_node_fraction"),
            "{e}"
        );
        let e = parse_config(&format!("{base}[accept]\nlink_mb = 2\n"), "c.toml").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains("link_mb"), "{e}");
        let e =
            parse_config(&format!("{base}[accept]\nstages = [\"gpu\"]\n"), "c.toml").unwrap_err();
        assert!(e.to_string().contains("gpu"), "{e}");
        // Overrides replace and are validated.
        let o = AcceptOverrides {
            sweep_factor: Some(1),
            ..Default::default()
        };
        assert_eq!(
            o.apply(&c.accept, "c.toml").unwrap_err().field(),
            Some("accept.sweep_factor")
        );
        let o = AcceptOverrides {
            stages: Some(vec![Stage::Sweep]),
            sweep_end: Some(1 << 20),
            ..Default::default()
        };
        let s = o.apply(&c.accept, "c.toml").unwrap();
        assert_eq!(
            (s.stages.clone(), s.sweep_end),
            (vec![Stage::Sweep], 1 << 20)
        );
        let mut job = crate::job::WorkerJob::new("c.toml", "r");
        job.accept = Some(o);
        assert_eq!(
            job.to_args()[4..],
            ["--accept", "--stages", "sweep", "--sweep-end", "1048576"]
        );
    }

    #[test]
    fn links_flag_values() {
        assert_eq!(parse_links("all"), Ok(u64::from(u32::MAX)));
        assert_eq!(parse_links("sampled"), Ok(2));
        let e = parse_links("some").unwrap_err();
        assert!(e.contains("all") && e.contains("sampled"), "{e}");
        // --links all keeps every pair at any size; sampled from 3 nodes.
        let all = AcceptOverrides {
            max_pair_nodes: Some(parse_links("all").unwrap()),
            ..Default::default()
        }
        .apply(&AcceptSettings::default(), "f")
        .unwrap();
        assert_eq!(crate::accept::link_schedule(100, &all).0, "tournament");
        let sampled = AcceptOverrides {
            max_pair_nodes: Some(2),
            ..Default::default()
        }
        .apply(&AcceptSettings::default(), "f")
        .unwrap();
        assert_eq!(crate::accept::link_schedule(3, &sampled).0, "sampled");
    }

    #[test]
    fn step_rounds_that_fit_known_answers() {
        // 600 s budget, 100 s spent, 30 s a round: 16 rounds of 20 asked.
        assert_eq!(step_rounds_that_fit(100.0, 30.0, 600.0, 20), 16);
        // Plenty of room: every round asked.
        assert_eq!(step_rounds_that_fit(0.0, 1.0, 600.0, 20), 20);
        // Already past the budget: one round still runs.
        assert_eq!(step_rounds_that_fit(700.0, 30.0, 600.0, 20), 1);
        // No round time known: every round.
        assert_eq!(step_rounds_that_fit(0.0, 0.0, 600.0, 20), 20);
        assert_eq!(step_rounds_that_fit(0.0, f64::NAN, 600.0, 20), 20);
    }

    #[test]
    fn rails_are_interface_names_each_once() {
        let with = |r: &[&str]| {
            AcceptOverrides {
                rails: Some(r.iter().map(|x| x.to_string()).collect()),
                ..Default::default()
            }
            .apply(&AcceptSettings::default(), "f.toml")
        };
        assert_eq!(with(&["eth0", "ib1"]).unwrap().rails, ["eth0", "ib1"]);
        for (bad, why) in [
            (&["eth0", "eth0"][..], "\"eth0\" is listed twice"),
            (&[""][..], "\"\" is not an interface name"),
            (&["eth 0"][..], "\"eth 0\" is not an interface name"),
            (&["a-name-of-16-ch"][..], ""),
            (&["a-name-of-16-chr"][..], "is not an interface name"),
        ] {
            match with(bad) {
                Ok(_) => assert!(why.is_empty(), "{bad:?} was taken"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(
                        !why.is_empty() && e.contains(why) && e.contains("accept.rails"),
                        "{bad:?}: {e}"
                    );
                }
            }
        }
    }
}
