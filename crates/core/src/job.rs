//! The launcher↔worker contract: [`WorkerJob`], what one `mfubench-worker`
//! rank is asked to do, spelled once.
//!
//! The launcher builds a `WorkerJob` and turns it into the worker's argument
//! vector with [`WorkerJob::to_args`]; the worker reads its arguments back
//! with [`WorkerJob::from_args`]. Both directions use the flag names of
//! [`flag`] and nothing else, so a flag is renamed in one place (a test
//! round-trips every field). The arguments stay readable flags, not an
//! opaque blob: the command `mfubench run --dry-run` prints is one a person
//! can also type (`mpirun -np 2 mfubench-worker --config … --out …`).
//! [`WorkerJob::check`] applies the rules the ranks would (run id, `--vary`
//! syntax, accept overrides), so the launcher refuses a bad job before MPI
//! starts.

use std::path::PathBuf;

use crate::accept::{parse_stages, AcceptOverrides};
use crate::config::{BackendKind, Mode};
use crate::soak::SoakRun;

/// Parses a comma-separated mode list (`overlapped,compute`); each mode
/// once, in the order given.
pub fn parse_modes(list: &str) -> Result<Vec<Mode>, String> {
    let mut out = Vec::new();
    for w in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let m: Mode =
            serde_json::from_value(serde_json::Value::String(w.to_string())).map_err(|_| {
                format!("unknown mode \"{w}\"; modes are compute, comm, serialized, overlapped")
            })?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("no mode given; modes are compute, comm, serialized, overlapped".into());
    }
    Ok(out)
}

/// The worker's flags, each spelled here only.
pub mod flag {
    /// The config file.
    pub const CONFIG: &str = "--config";
    /// The results folder.
    pub const OUT: &str = "--out";
    /// The run id.
    pub const RUN_ID: &str = "--run-id";
    /// The world size the ranks must see.
    pub const EXPECT_WORLD: &str = "--expect-world";
    /// The backend.
    pub const BACKEND: &str = "--backend";
    /// A `--vary KEY=V1,V2,…` (repeatable).
    pub const VARY: &str = "--vary";
    /// Run the acceptance suite.
    pub const ACCEPT: &str = "--accept";
    /// Accept: stages.
    pub const STAGES: &str = "--stages";
    /// Accept: accept.min_device_fraction.
    pub const MIN_DEVICE_FRACTION: &str = "--min-device-fraction";
    /// Accept: accept.min_node_fraction.
    pub const MIN_NODE_FRACTION: &str = "--min-node-fraction";
    /// Accept: accept.min_link_fraction.
    pub const MIN_LINK_FRACTION: &str = "--min-link-fraction";
    /// Accept: smallest sweep size.
    pub const SWEEP_BEGIN: &str = "--sweep-begin";
    /// Accept: largest sweep size.
    pub const SWEEP_END: &str = "--sweep-end";
    /// Accept: factor between sweep sizes.
    pub const SWEEP_FACTOR: &str = "--sweep-factor";
    /// Accept: accept.max_pair_nodes (`mfubench accept --links`).
    pub const MAX_PAIR_NODES: &str = "--max-pair-nodes";
    /// Accept: accept.keep_bad (a switch, no value).
    pub const KEEP_BAD: &str = "--keep-bad";
    /// Accept: accept.rails, comma-separated interface names.
    pub const RAILS: &str = "--rails";
    /// Soak: the duration, seconds (`mfubench soak --duration`).
    pub const SOAK_DURATION: &str = "--soak-duration";
    /// Soak: the window, seconds.
    pub const SOAK_WINDOW: &str = "--soak-window";
    /// Soak: the modes, comma-separated (default the config's run.modes).
    pub const SOAK_MODES: &str = "--soak-modes";
    /// Test hook: this rank corrupts one reduced element once.
    pub const INJECT_WRONG_RANK: &str = "--inject-wrong-rank";
    /// Test hook: `R:SECONDS`, rank R starts every step SECONDS late (a
    /// straggler the others wait for at the collectives).
    pub const LATE_RANK: &str = "--late-rank";

    /// Every flag that takes a value.
    pub const WITH_VALUE: &[&str] = &[
        CONFIG,
        OUT,
        RUN_ID,
        EXPECT_WORLD,
        BACKEND,
        VARY,
        STAGES,
        MIN_DEVICE_FRACTION,
        MIN_NODE_FRACTION,
        MIN_LINK_FRACTION,
        SWEEP_BEGIN,
        SWEEP_END,
        SWEEP_FACTOR,
        MAX_PAIR_NODES,
        RAILS,
        SOAK_DURATION,
        SOAK_WINDOW,
        SOAK_MODES,
        INJECT_WRONG_RANK,
        LATE_RANK,
    ];
}

/// The worker's second entry: `mfubench-worker replay SPECS.json OUT.json`
/// replays the step schedule in virtual time for `mfubench project`
/// ([`crate::project::ReplaySpec`]), without MPI.
pub const REPLAY: &str = "replay";

/// The worker's usage text (`mfubench-worker --help`).
pub const USAGE: &str = "mfubench-worker: one rank of an mfubench run, started by `mfubench run`/`accept`, mpirun or srun

usage: mfubench-worker --config FILE [--out DIR] [--run-id ID] [--expect-world N]
                       [--backend auto|cpu|cuda] [--vary KEY=V1,V2,…]…
       mfubench-worker replay SPECS.json OUT.json   (mfubench project's replay; no MPI)
                       [--accept [--stages LIST] [--min-device-fraction F] [--min-node-fraction F]
                                 [--min-link-fraction F] [--sweep-begin SIZE] [--sweep-end SIZE]
                                 [--sweep-factor N] [--keep-bad]]
                       [--soak-duration SECONDS --soak-window SECONDS [--soak-modes LIST]]

  --config FILE        benchmark config (TOML); read by rank 0 and broadcast
  --out DIR            results folder; the run writes DIR/<run-id>/ (default: results)
  --run-id ID          run id (folder name); default: UTC time and a process id
  --expect-world N     fail unless MPI reports N ranks (catches another MPI's mpirun)
  --backend B          auto, cpu or cuda, overriding run.backend
  --vary KEY=V1,…      run every variant in one job, interleaved per round
  --accept             run the acceptance suite (accept.json) instead of the benchmark
  --soak-duration S    run a soak (soak.jsonl) of S seconds in windows of --soak-window S
Exit codes: 0 ok, 2 usage or config error, 3 run failed.";

/// What one worker rank is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerJob {
    /// The config file (absolute when the launcher made the job).
    pub config: PathBuf,
    /// The results folder.
    pub out: PathBuf,
    /// The run id; None: the worker chooses one.
    pub run_id: Option<String>,
    /// The world size the ranks must see.
    pub expect_world: Option<u64>,
    /// The backend, overriding the config's `run.backend`.
    pub backend: Option<BackendKind>,
    /// `--vary KEY=V1,V2,…` arguments, in order.
    pub vary: Vec<String>,
    /// The acceptance suite with these overrides, instead of the benchmark.
    pub accept: Option<AcceptOverrides>,
    /// A soak (burn-in) instead of the benchmark.
    pub soak: Option<SoakRun>,
    /// Test hook: this rank corrupts one reduced element once.
    pub inject_wrong_rank: Option<u64>,
    /// Test hook: (rank, seconds): that rank starts every other step this
    /// late.
    pub late_rank: Option<(u64, f64)>,
}

/// What the worker's command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A job.
    Job(Box<WorkerJob>),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

fn backend_word(b: BackendKind) -> &'static str {
    match b {
        BackendKind::Auto => "auto",
        BackendKind::Cpu => "cpu",
        BackendKind::Cuda => "cuda",
    }
}

impl WorkerJob {
    /// A job for `config` writing into `out`, everything else default.
    pub fn new(config: impl Into<PathBuf>, out: impl Into<PathBuf>) -> WorkerJob {
        WorkerJob {
            config: config.into(),
            out: out.into(),
            run_id: None,
            expect_world: None,
            backend: None,
            vary: Vec::new(),
            accept: None,
            soak: None,
            inject_wrong_rank: None,
            late_rank: None,
        }
    }

    /// The worker's arguments for this job (without the program name).
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut put = |f: &str, v: String| {
            a.push(f.to_string());
            a.push(v);
        };
        put(flag::CONFIG, self.config.display().to_string());
        put(flag::OUT, self.out.display().to_string());
        if let Some(id) = &self.run_id {
            put(flag::RUN_ID, id.clone());
        }
        if let Some(n) = self.expect_world {
            put(flag::EXPECT_WORLD, n.to_string());
        }
        if let Some(b) = self.backend {
            put(flag::BACKEND, backend_word(b).to_string());
        }
        for v in &self.vary {
            put(flag::VARY, v.clone());
        }
        if let Some(r) = self.inject_wrong_rank {
            put(flag::INJECT_WRONG_RANK, r.to_string());
        }
        if let Some((r, s)) = self.late_rank {
            put(flag::LATE_RANK, format!("{r}:{s}"));
        }
        if let Some(s) = &self.soak {
            put(flag::SOAK_DURATION, s.duration_s.to_string());
            put(flag::SOAK_WINDOW, s.window_s.to_string());
            if !s.modes.is_empty() {
                put(
                    flag::SOAK_MODES,
                    s.modes
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
        }
        if let Some(o) = &self.accept {
            a.push(flag::ACCEPT.to_string());
            let mut put = |f: &str, v: Option<String>| {
                if let Some(v) = v {
                    a.push(f.to_string());
                    a.push(v);
                }
            };
            put(
                flag::STAGES,
                o.stages
                    .as_ref()
                    .map(|v| v.iter().map(|s| s.name()).collect::<Vec<_>>().join(",")),
            );
            put(
                flag::MIN_DEVICE_FRACTION,
                o.min_device_fraction.map(|x| x.to_string()),
            );
            put(
                flag::MIN_NODE_FRACTION,
                o.min_node_fraction.map(|x| x.to_string()),
            );
            put(
                flag::MIN_LINK_FRACTION,
                o.min_link_fraction.map(|x| x.to_string()),
            );
            put(flag::SWEEP_BEGIN, o.sweep_begin.map(|x| x.to_string()));
            put(flag::SWEEP_END, o.sweep_end.map(|x| x.to_string()));
            put(flag::SWEEP_FACTOR, o.sweep_factor.map(|x| x.to_string()));
            put(
                flag::MAX_PAIR_NODES,
                o.max_pair_nodes.map(|x| x.to_string()),
            );
            put(flag::RAILS, o.rails.as_ref().map(|r| r.join(",")));
            if o.keep_bad == Some(true) {
                a.push(flag::KEEP_BAD.to_string());
            }
        }
        a
    }

    /// Reads the worker's arguments (without the program name): `--flag
    /// VALUE` or `--flag=VALUE`. The error names the flag and what would fix
    /// it.
    pub fn from_args<I, S>(args: I) -> Result<Parsed, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut job = WorkerJob::new(PathBuf::new(), "results");
        let mut config = None;
        let mut accept = false;
        let mut o = AcceptOverrides::default();
        let (mut soak_duration, mut soak_window, mut soak_modes) = (None, None, Vec::new());
        let mut it = args.into_iter().map(Into::into);
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            match name.as_str() {
                "--help" | "-h" => return Ok(Parsed::Help),
                "--version" | "-V" => return Ok(Parsed::Version),
                _ => {}
            }
            if name == flag::ACCEPT {
                accept = true;
                continue;
            }
            if name == flag::KEEP_BAD {
                o.keep_bad = Some(true);
                continue;
            }
            let Some(&f) = flag::WITH_VALUE.iter().find(|k| **k == name) else {
                return Err(format!(
                    "unknown argument {arg:?}: see mfubench-worker --help"
                ));
            };
            let value = match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| format!("{f}: needs a value"))?,
            };
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("{f} {v}: give a whole number"))
            };
            let frac =
                |v: &str| crate::units::parse_fraction(v).map_err(|e| format!("{f} {v}: {e}"));
            let bytes = |v: &str| crate::units::parse_bytes(v).map_err(|e| format!("{f} {v}: {e}"));
            match f {
                flag::CONFIG => config = Some(PathBuf::from(value)),
                flag::OUT => job.out = PathBuf::from(value),
                flag::RUN_ID => job.run_id = Some(value),
                flag::EXPECT_WORLD => job.expect_world = Some(num(&value)?),
                flag::BACKEND => {
                    job.backend = Some(match value.as_str() {
                        "auto" => BackendKind::Auto,
                        "cpu" => BackendKind::Cpu,
                        "cuda" => BackendKind::Cuda,
                        other => return Err(format!("{f} {other}: use auto, cpu or cuda")),
                    })
                }
                flag::VARY => job.vary.push(value),
                flag::INJECT_WRONG_RANK => job.inject_wrong_rank = Some(num(&value)?),
                flag::LATE_RANK => {
                    let late = value.split_once(':').and_then(|(r, s)| {
                        let s: f64 = s.parse().ok()?;
                        (s.is_finite() && s >= 0.0).then_some((r.parse().ok()?, s))
                    });
                    job.late_rank =
                        Some(late.ok_or_else(|| {
                            format!("{f} {value}: give RANK:SECONDS, e.g. 1:0.02")
                        })?)
                }
                flag::STAGES => {
                    o.stages = Some(parse_stages(&value).map_err(|e| format!("{f} {value}: {e}"))?)
                }
                flag::MIN_DEVICE_FRACTION => o.min_device_fraction = Some(frac(&value)?),
                flag::MIN_NODE_FRACTION => o.min_node_fraction = Some(frac(&value)?),
                flag::MIN_LINK_FRACTION => o.min_link_fraction = Some(frac(&value)?),
                flag::SWEEP_BEGIN => o.sweep_begin = Some(bytes(&value)?),
                flag::SWEEP_END => o.sweep_end = Some(bytes(&value)?),
                flag::SWEEP_FACTOR => o.sweep_factor = Some(num(&value)?),
                flag::MAX_PAIR_NODES => o.max_pair_nodes = Some(num(&value)?),
                flag::RAILS => o.rails = Some(value.split(',').map(str::to_string).collect()),
                flag::SOAK_DURATION | flag::SOAK_WINDOW => {
                    let s: f64 = value
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| format!("{f} {value}: give seconds, e.g. 60"))?;
                    if f == flag::SOAK_DURATION {
                        soak_duration = Some(s);
                    } else {
                        soak_window = Some(s);
                    }
                }
                flag::SOAK_MODES => {
                    soak_modes = parse_modes(&value).map_err(|e| format!("{f} {value}: {e}"))?
                }
                _ => unreachable!("every known flag is handled"),
            }
        }
        job.config = config.ok_or_else(|| {
            format!(
                "{} FILE is required: the benchmark config (TOML)",
                flag::CONFIG
            )
        })?;
        match (soak_duration, soak_window) {
            (Some(duration_s), Some(window_s)) => {
                job.soak = Some(SoakRun {
                    duration_s,
                    window_s,
                    modes: soak_modes,
                })
            }
            (None, None) if soak_modes.is_empty() => {}
            _ => {
                return Err(format!(
                    "{} and {} go together (and {} needs them)",
                    flag::SOAK_DURATION,
                    flag::SOAK_WINDOW,
                    flag::SOAK_MODES
                ))
            }
        }
        if accept {
            job.accept = Some(o);
        } else if o != AcceptOverrides::default() {
            return Err(format!(
                "{}, {}…: only with {}",
                flag::STAGES,
                flag::MIN_DEVICE_FRACTION,
                flag::ACCEPT
            ));
        }
        Ok(Parsed::Job(Box::new(job)))
    }

    /// The rules the ranks would apply to the job itself (not to the
    /// config): the run id, the `--vary` syntax, `--vary` with `--accept`.
    pub fn check(&self) -> Result<(), String> {
        if let Some(id) = &self.run_id {
            crate::protocol::validate_run_id(id).map_err(|e| e.to_string())?;
        }
        if self.accept.is_some() && !self.vary.is_empty() {
            return Err("--vary: only for `mfubench run`, not `mfubench accept`".into());
        }
        if let Some(s) = &self.soak {
            if self.accept.is_some() || !self.vary.is_empty() {
                return Err("--vary and --accept: not with a soak".into());
            }
            s.check()?;
        }
        for v in &self.vary {
            crate::vary::parse_vary_arg(v).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accept::Stage;

    fn full() -> WorkerJob {
        WorkerJob {
            config: "/c/q.toml".into(),
            out: "/r".into(),
            run_id: Some("r1".into()),
            expect_world: Some(4),
            backend: Some(BackendKind::Cuda),
            vary: vec!["run.bucket_mb=1,4".into(), "model.seq=64,128".into()],
            accept: None,
            soak: None,
            inject_wrong_rank: Some(1),
            late_rank: Some((2, 0.025)),
        }
    }

    #[test]
    fn every_field_round_trips_through_the_arguments() {
        let j = full();
        assert_eq!(
            WorkerJob::from_args(j.to_args()),
            Ok(Parsed::Job(Box::new(j)))
        );
        let mut soak = WorkerJob::new("/c/q.toml", "/r");
        soak.soak = Some(SoakRun {
            duration_s: 120.0,
            window_s: 10.5,
            modes: vec![Mode::Overlapped, Mode::Compute],
        });
        assert_eq!(
            soak.to_args().join(" "),
            "--config /c/q.toml --out /r --soak-duration 120 --soak-window 10.5 --soak-modes overlapped,compute"
        );
        assert_eq!(
            WorkerJob::from_args(soak.to_args()),
            Ok(Parsed::Job(Box::new(soak.clone())))
        );
        assert_eq!(soak.check(), Ok(()));
        soak.vary = vec!["run.bucket_mb=1,4".into()];
        assert!(soak.check().unwrap_err().contains("not with a soak"));
        let e = WorkerJob::from_args(["--config", "c", "--soak-window", "5"]).unwrap_err();
        assert!(e.contains("go together"), "{e}");
        let e = WorkerJob::from_args([
            "--config",
            "c",
            "--soak-duration",
            "9",
            "--soak-window",
            "5",
            "--soak-modes",
            "fast",
        ])
        .unwrap_err();
        assert!(e.contains("unknown mode \"fast\""), "{e}");
        let mut a = WorkerJob::new("/c/a.toml", "/r");
        a.accept = Some(AcceptOverrides {
            stages: Some(vec![Stage::Device, Stage::Link]),
            min_device_fraction: Some(0.9),
            min_node_fraction: Some(0.5),
            min_link_fraction: Some(0.25),
            sweep_begin: Some(1024),
            sweep_end: Some(1 << 30),
            sweep_factor: Some(2),
            max_pair_nodes: Some(2),
            keep_bad: Some(true),
            rails: Some(vec!["eth0".into(), "eth1".into()]),
        });
        assert_eq!(
            WorkerJob::from_args(a.to_args()),
            Ok(Parsed::Job(Box::new(a.clone())))
        );
        // The readable form the dry-run golden files show.
        assert_eq!(
            a.to_args().join(" "),
            "--config /c/a.toml --out /r --accept --stages device,link --min-device-fraction 0.9 \
             --min-node-fraction 0.5 --min-link-fraction 0.25 --sweep-begin 1024 --sweep-end 1073741824 --sweep-factor 2 --max-pair-nodes 2 \
             --rails eth0,eth1 --keep-bad"
        );
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let e = |v: &[&str]| WorkerJob::from_args(v.iter().copied()).unwrap_err();
        assert!(e(&["--out", "x"]).starts_with("--config FILE is required"));
        assert!(e(&["--config", "c", "--backend", "gpu"])
            .contains("--backend gpu: use auto, cpu or cuda"));
        assert!(e(&["--config", "c", "--expect-world", "two"]).contains("--expect-world two"));
        assert!(e(&["--config", "c", "--frobnicate"]).contains("unknown argument \"--frobnicate\""));
        assert!(e(&["--config"]).contains("--config: needs a value"));
        assert!(e(&["--config", "c", "--stages", "device"]).contains("only with --accept"));
        assert!(
            e(&["--config", "c", "--accept", "--min-link-fraction", "2"])
                .contains("--min-link-fraction 2")
        );
        assert_eq!(WorkerJob::from_args(["--help"]), Ok(Parsed::Help));
        assert_eq!(
            WorkerJob::from_args(["--config=c", "--out=o"]),
            Ok(Parsed::Job(Box::new(WorkerJob::new("c", "o"))))
        );
    }

    #[test]
    fn the_launcher_checks_what_the_ranks_would() {
        let mut j = full();
        assert_eq!(j.check(), Ok(()));
        j.run_id = Some("a+b".into());
        assert!(j.check().unwrap_err().contains("a+b"));
        let mut j = full();
        j.vary = vec!["run.bucket_mb".into()];
        assert!(j.check().is_err());
        let mut j = full();
        j.accept = Some(AcceptOverrides::default());
        assert!(j.check().unwrap_err().contains("--vary"));
    }
}
