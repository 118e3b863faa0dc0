//! The one fault-injection harness: a [`FaultCase`] says on which bed a job
//! runs ([`Launcher`]), when the fault lands ([`At`]), what it is
//! ([`Fault`]) and what must follow ([`Expect`]); [`run_case`] starts the
//! job, waits for that point, injects the fault, collects how the job ended
//! and checks it. The fault tests are rows of [`fault_tests!`]; a test that
//! needs to look at the job just before the fault uses [`start`],
//! [`Started::finish`] and [`expect`] itself.
//!
//! Every case checks, as the copies before it did: the exit code, the time
//! from the injection to the launcher's exit, the culprit named (rank, host,
//! PID, why) and no other rank blamed, what was kept of the run, and that no
//! worker of the job (nor, on the namespace hosts, any process there) is
//! left. Each logs `fault WHAT: exit N after S s; LINE`.

use super::*;
use std::time::Instant;

/// Where the job runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Launcher {
    /// `mfubench run` with mpirun on this machine, the config's 2 ranks.
    Local,
    /// mpirun on hostA, hostB, hostC (network namespaces, one rank each).
    NetnsHosts,
    /// `sbatch -N 3 launch/mfubench.sbatch` on three Slurm nodes in the
    /// namespaces (srun, one rank a node).
    SlurmMulti,
}

impl Launcher {
    /// How many ranks the job has.
    pub fn ranks(self) -> usize {
        match self {
            Launcher::Local => 2,
            Launcher::NetnsHosts | Launcher::SlurmMulti => 3,
        }
    }

    /// The host rank `rank` runs on.
    pub fn host(self, rank: usize) -> String {
        match self {
            Launcher::Local => hostname(),
            Launcher::NetnsHosts | Launcher::SlurmMulti => HOSTS[rank].to_string(),
        }
    }

    /// The environment variable that tells a worker its rank.
    fn rank_var(self) -> &'static str {
        match self {
            Launcher::Local | Launcher::NetnsHosts => "OMPI_COMM_WORLD_RANK",
            Launcher::SlurmMulti => "SLURM_PROCID",
        }
    }
}

/// Which process a signal goes to.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The worker of this rank.
    Rank(usize),
    /// mpirun (the child of mfubench).
    Mpirun,
    /// mfubench itself.
    Mfubench,
}

/// What is done to the job.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// A signal. A stopped process is SIGKILLed once the job has ended.
    Signal(Target, i32),
    /// `ip link set v-HOST down` of this rank's host, up again once
    /// mfubench has exited.
    LinkDown(usize),
    /// SIGSTOP of this rank's slurmstepd, then of the rank (its task): a
    /// node whose step daemon hangs (as one stuck in the kernel or
    /// swapping). srun then waits KillWait + 2 s for the task after the
    /// abort, so the bed runs with Slurm's default KillWait (30 s), past
    /// the launcher's grace: srun does not end the job by itself. The
    /// daemon is continued once mfubench has exited (the node recovers).
    StopNodeDaemon(usize),
}

impl Fault {
    /// The rank the fault hits (rank 1 for a fault on mpirun or mfubench:
    /// the rank whose environment names the job).
    pub fn rank(self) -> usize {
        match self {
            Fault::Signal(Target::Rank(r), _) | Fault::LinkDown(r) | Fault::StopNodeDaemon(r) => r,
            Fault::Signal(..) => 1,
        }
    }
}

/// When the fault lands: once every rank's worker runs and this point is
/// reached, then [`FaultCase::settle`] later.
#[derive(Clone, Copy, Debug)]
pub enum At {
    /// The launcher printed its first progress line.
    Progress,
    /// The launcher's output holds this text.
    Output(&'static str),
    /// The run folder holds a partial run.json (every mode has timed steps).
    PartialRunJson,
}

/// The config of the job.
#[derive(Clone, Copy)]
pub enum Config {
    /// [`fault_config`]: long.toml with the fault tests' op timeout, no
    /// checks.
    Fault,
    /// [`fault_config`] with this one mode.
    FaultMode(&'static str),
    /// tests/configs/long.toml as it is.
    Long,
    /// Written into the temporary folder by this function.
    Custom(fn(&Path) -> PathBuf),
}

/// How the rank the fault hit must be named in the launcher's error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Named {
    /// Not checked.
    Unchecked,
    /// `rank R (host H, pid P) was killed by signal 9`.
    KilledBySigkill,
    /// `fell behind: rank R (host H, pid P): process stopped (state T)`:
    /// the launcher read the state from /proc (the rank is on its host).
    StoppedStateT,
    /// `fell behind: rank R (host H, pid P): stopped reporting` (the rank
    /// is on another host).
    StoppedReporting,
}

/// What must be left of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kept {
    /// Not checked.
    Unchecked,
    /// The launcher says `what was written is in RUN_DIR`.
    Written,
    /// As [`Kept::Written`], and run.json is partial with a mode kept.
    Partial,
    /// As [`Kept::Partial`], with this mode's steps so far.
    Mode(&'static str),
}

/// What must follow the fault.
#[derive(Clone, Copy)]
pub struct Expect {
    /// The launcher's exit code (sbatch --wait's under Slurm); None: not
    /// checked (mfubench itself killed, or checked by the row).
    pub exit: Option<i32>,
    /// The most seconds from the injection to the launcher's exit; 0: not
    /// checked.
    pub within_s: u64,
    /// How the rank the fault hit is named; then no other rank may be
    /// among those that fell behind.
    pub named: Named,
    /// `waiting for them: rank 0 (host H` is listed.
    pub waiting: bool,
    /// Texts the launcher's stderr (the job log under Slurm) must hold.
    pub says: &'static [&'static str],
    /// What is kept.
    pub kept: Kept,
}

/// The bound for a killed rank: the launcher's grace and slack.
pub const KILL_BOUND_S: u64 = ABORT_GRACE_S + SLACK_S;
/// The bound for a stopped rank: the others' watchdog, then as a kill.
pub const STOP_BOUND_S: u64 = OP_TIMEOUT_S as u64 + ABORT_GRACE_S + SLACK_S;

/// A fault test: a row of [`fault_tests!`].
#[derive(Clone, Copy)]
pub struct FaultCase {
    /// The fault in words, for the log line.
    pub what: &'static str,
    /// The bed.
    pub launcher: Launcher,
    /// `run` or `accept`.
    pub command: &'static str,
    /// The config.
    pub config: Config,
    /// More arguments of mfubench (`{tmp}` is the temporary folder); a
    /// `--timeout` here replaces the harness's `5m`. Not under Slurm.
    pub args: &'static [&'static str],
    /// When the fault lands.
    pub at: At,
    /// How long after that point.
    pub settle: Duration,
    /// Called with the run folder just before the injection.
    pub before: Option<fn(&Path)>,
    /// The fault.
    pub fault: Fault,
    /// What must follow.
    pub expect: Expect,
    /// The row's own checks, after [`expect`]'s.
    pub check: Option<fn(&Outcome)>,
    /// Whether the job may end before the point (a race the fault lost):
    /// then the test is skipped with [`skip_allowed`] instead of failing.
    pub may_end_first: bool,
}

/// A row with the defaults: a run of [`Config::Fault`], no extra arguments,
/// the fault as soon as the point is reached, nothing checked.
pub const CASE: FaultCase = FaultCase {
    what: "",
    launcher: Launcher::Local,
    command: "run",
    config: Config::Fault,
    args: &[],
    at: At::PartialRunJson,
    settle: Duration::ZERO,
    before: None,
    fault: Fault::Signal(Target::Rank(1), libc::SIGKILL),
    expect: NOTHING,
    check: None,
    may_end_first: false,
};

/// An [`Expect`] that checks nothing (only that no worker is left).
pub const NOTHING: Expect = Expect {
    exit: None,
    within_s: 0,
    named: Named::Unchecked,
    waiting: false,
    says: &[],
    kept: Kept::Unchecked,
};

/// A rank killed: exit 3 within the grace, named with the signal, the
/// partial run kept.
pub const KILLED: Expect = Expect {
    exit: Some(3),
    within_s: KILL_BOUND_S,
    named: Named::KilledBySigkill,
    waiting: false,
    says: &[],
    kept: Kept::Partial,
};

/// A rank on another host stopped (or cut off): exit 3 within the op
/// timeout and the grace, named as having stopped reporting, rank 0 as
/// waiting, the partial run kept.
pub const STOPPED_REMOTE: Expect = Expect {
    exit: Some(3),
    within_s: STOP_BOUND_S,
    named: Named::StoppedReporting,
    waiting: true,
    says: &[],
    kept: Kept::Partial,
};

/// One test a row: `name: CASE_EXPRESSION;`.
#[allow(unused_macros)] // used by faults.rs only
macro_rules! fault_tests {
    ($($(#[$m:meta])* $name:ident: $case:expr;)*) => {
        $(
            $(#[$m])*
            #[test]
            fn $name() {
                $crate::common::fault::run_case(stringify!($name), &$case);
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use fault_tests;

/// What a bed holds while the job runs (torn down when dropped, the Slurm
/// daemons before the namespaces).
#[derive(Default)]
pub struct Bed {
    slurm: Option<Slurm>,
    hosts: Option<Netns>,
}

/// A job started and brought to the fault's point.
pub struct Started {
    case: FaultCase,
    /// The run (mfubench, or sbatch --wait under Slurm).
    pub running: Running,
    /// The run id (the Slurm job id under Slurm).
    pub run_id: String,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The PID of the rank the fault hits.
    pub victim: u32,
    /// Every worker PID of the job.
    pub all: Vec<u32>,
    /// The temporary folder (config, results, job log).
    pub tmp: tempfile::TempDir,
    bed: Bed,
    /// When the test got the lock (its own time starts).
    began: Instant,
    _lock: TestLock,
}

/// How a job ended after its fault.
pub struct Outcome {
    /// The exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// The launcher's stdout (the job log under Slurm).
    pub stdout: String,
    /// The launcher's stderr (the job log under Slurm).
    pub stderr: String,
    /// From the injection to the launcher's exit (under Slurm: to its
    /// error line in the job log; sbatch --wait learns of the end later).
    pub took: Duration,
    /// The PID of the rank the fault hit.
    pub victim: u32,
    /// Every worker PID of the job.
    pub all: Vec<u32>,
    /// The run id.
    pub run_id: String,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Under Slurm: `squeue -s` lines of the job's MPI step (not the batch
    /// step) after mfubench exited and the fault was undone, once they were
    /// gone or 30 s had passed.
    pub steps_left: Vec<String>,
    /// The temporary folder.
    pub tmp: tempfile::TempDir,
    bed: Bed,
    /// Where the row's time went: (phase, seconds), in order.
    pub phases: Vec<(&'static str, f64)>,
    _lock: TestLock,
}

impl Outcome {
    /// A file's path with `{tmp}` replaced.
    pub fn path(&self, p: &str) -> PathBuf {
        PathBuf::from(p.replace("{tmp}", &self.tmp.path().display().to_string()))
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// Runs one row: skips it where its bed cannot be had (see
/// [`start`]), else starts, injects, collects and checks.
pub fn run_case(test: &str, case: &FaultCase) {
    let Some(s) = start(test, case) else {
        return;
    };
    if let Some(before) = case.before {
        before(&s.run_dir);
    }
    let mut o = s.finish();
    let t = Instant::now();
    expect(case, &o);
    if let Some(check) = case.check {
        check(&o);
    }
    o.phases.push(("of checks", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let mut phases = std::mem::take(&mut o.phases);
    drop(o);
    phases.push(("to tear down", t.elapsed().as_secs_f64()));
    // Where a row's time goes (what CI time is cut from).
    let all: f64 = phases.iter().map(|(_, s)| s).sum();
    let each: Vec<String> = phases
        .iter()
        .map(|(what, s)| format!("{s:.1} s {what}"))
        .collect();
    log(&format!(
        "fault {}: {all:.1} s: {}",
        case.what,
        each.join(", ")
    ));
}

/// The skip reason of a bed this machine cannot give.
fn missing(launcher: Launcher) -> Option<String> {
    match launcher {
        Launcher::Local => find_program("mpirun")
            .is_none()
            .then(|| "mpirun is not installed (ci/install-deps.sh installs it)".to_string()),
        Launcher::NetnsHosts => netns_missing(),
        Launcher::SlurmMulti => slurm_multi_missing(),
    }
}

/// Sets up the case's bed (None after a skip: a missing tool or root, or
/// the job ending before the point where [`FaultCase::may_end_first`]),
/// starts the job and waits until every rank runs and the point is reached.
pub fn start(test: &str, case: &FaultCase) -> Option<Started> {
    if let Some(why) = missing(case.launcher) {
        skip(test, &why);
        return None;
    }
    require_worker();
    let lock = TestLock::acquire();
    let began = Instant::now();
    let mut bed = Bed::default();
    if case.launcher != Launcher::Local {
        bed.hosts = Some(Netns::up(3));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = match case.config {
        Config::Fault => fault_config(tmp.path(), OP_TIMEOUT_S),
        Config::FaultMode(mode) => {
            let cfg = fault_config(tmp.path(), OP_TIMEOUT_S);
            let text = std::fs::read_to_string(&cfg).expect("read");
            let mut t: toml::Table = text.parse().expect("parses");
            t["run"]
                .as_table_mut()
                .expect("[run]")
                .insert("modes".into(), toml::Value::Array(vec![mode.into()]));
            std::fs::write(&cfg, toml::to_string(&t).expect("toml")).expect("write");
            cfg
        }
        Config::Long => test_config("long.toml"),
        Config::Custom(write) => write(tmp.path()),
    };
    let results = tmp.path().join("results");
    let mut run_id = format!("{test}-{}", std::process::id());
    let running = if case.launcher == Launcher::SlurmMulti {
        assert!(case.args.is_empty(), "no arguments under sbatch");
        let kill_wait = matches!(case.fault, Fault::StopNodeDaemon(_)).then_some(30);
        let slurm = bed.slurm.insert(Slurm::three_nodes(
            &std::env::temp_dir().join(format!("mfubench-slurm-fault-{}", std::process::id())),
            kill_wait,
        ));
        Running::start(
            &mut slurm.sbatch_on_three_nodes(&SbatchFiles::in_dir(tmp.path(), cfg.clone())),
        )
    } else {
        let mut cmd = mfubench_cmd();
        cmd.args([case.command, cfg.to_str().expect("utf-8"), "--out"])
            .arg(&results)
            .args(["--run-id", &run_id]);
        if !case.args.contains(&"--timeout") {
            cmd.args(["--timeout", "5m"]);
        }
        let tmp_s = tmp.path().display().to_string();
        cmd.args(case.args.iter().map(|a| a.replace("{tmp}", &tmp_s)));
        if case.launcher == Launcher::NetnsHosts {
            cmd.args(["--hosts", "hostA:1,hostB:1,hostC:1", "--"])
                .args(Netns::mpirun_args());
        }
        Running::start(&mut cmd)
    };
    let limit = Duration::from_secs(if case.launcher == Launcher::SlurmMulti {
        240
    } else {
        180
    });
    let t = Instant::now();
    let rank = case.fault.rank().to_string();
    let (victim, all) = loop {
        if case.launcher == Launcher::SlurmMulti {
            if let Some(id) = sbatch_job_id(&running) {
                run_id = id;
            }
        }
        let pids = worker_pids(&run_id);
        let victim = pids
            .iter()
            .copied()
            .find(|p| proc_env(*p, case.launcher.rank_var()).as_deref() == Some(rank.as_str()));
        let reached = match case.at {
            At::Progress => running.output().contains("mfubench: progress:"),
            At::Output(text) => running.output().contains(text),
            At::PartialRunJson => results.join(&run_id).join("run.json").is_file(),
        };
        if let (Some(v), true, true) = (victim, reached, pids.len() == case.launcher.ranks()) {
            break (v, pids);
        }
        let ended = !alive(running.child.id());
        if ended && case.may_end_first {
            skip_allowed(
                test,
                "the run ended before the fault could be injected",
                "timing, not a missing install",
            );
            return None;
        }
        assert!(
            t.elapsed() < limit,
            "the run never got under way:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(case.settle);
    Some(Started {
        case: *case,
        running,
        run_dir: results.join(&run_id),
        run_id,
        victim,
        all,
        tmp,
        bed,
        began,
        _lock: lock,
    })
}

/// Sets a namespace host's link up or down.
fn link(rank: usize, state: &str) {
    let dev = format!("v-{}", HOSTS[rank]);
    let s = Command::new("ip")
        .args(["link", "set", &dev, state])
        .status()
        .expect("ip link");
    assert!(s.success(), "ip link set {dev} {state}");
}

/// A process's parent PID, from /proc.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": the fields after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The PID of the child of `parent` whose command is `comm`.
pub fn child_named(parent: u32, comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (head, tail) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1;
        let ppid: u32 = tail.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && name == comm).then_some(pid)
    })
}

/// Sends SIGCONT to a stopped process when dropped.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

impl Started {
    /// Injects the fault, waits for the launcher's exit, undoes the fault
    /// (a link up, a stopped step daemon continued, a stopped rank killed)
    /// and returns how the job ended.
    pub fn finish(self) -> Outcome {
        let Started {
            case,
            running,
            run_id,
            run_dir,
            victim,
            all,
            tmp,
            mut bed,
            began,
            _lock,
        } = self;
        let mut phases = vec![("to the fault's point", began.elapsed().as_secs_f64())];
        let mut mark = Instant::now();
        let mut phase = |name: &'static str| {
            phases.push((name, mark.elapsed().as_secs_f64()));
            mark = Instant::now();
        };
        let mut stepd: Option<Continue> = None;
        let mut stopped = false;
        let injected = Instant::now();
        match case.fault {
            Fault::Signal(target, sig) => {
                let pid = match target {
                    Target::Rank(_) => victim,
                    Target::Mpirun => {
                        child_named(running.child.id(), "mpirun").expect("mpirun's PID")
                    }
                    Target::Mfubench => running.child.id(),
                };
                stopped = sig == libc::SIGSTOP;
                signal(pid, sig);
            }
            Fault::LinkDown(r) => link(r, "down"),
            Fault::StopNodeDaemon(_) => {
                let parent = parent_pid(victim).expect("the rank's parent");
                let name = std::fs::read_to_string(format!("/proc/{parent}/comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                assert_eq!(
                    name, "slurmstepd",
                    "the rank's parent {parent} is not its step daemon"
                );
                stepd = Some(Continue(parent));
                signal(parent, libc::SIGSTOP);
                signal(victim, libc::SIGSTOP);
                stopped = true;
            }
        }
        let mut steps_left = Vec::new();
        let (code, stdout, stderr, took) = if case.launcher == Launcher::SlurmMulti {
            let log_path = tmp.path().join(format!("job-{run_id}.out"));
            // mfubench's exit: its last line, the error, in the job log
            // (sbatch --wait itself learns of the job's end only at its
            // next poll).
            let took = loop {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                if text.contains("mfubench: error:")
                    || injected.elapsed() > Duration::from_secs(240)
                {
                    break injected.elapsed();
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            phase("to the end");
            if let Fault::LinkDown(r) = case.fault {
                link(r, "up");
            }
            // The node recovers: its daemon goes on with the requests it got.
            drop(stepd.take());
            // The job's MPI step (srun's), gone from slurmctld once the
            // nodes reported it ended.
            let conf = bed.slurm.as_ref().expect("the Slurm bed").conf();
            let t = Instant::now();
            steps_left = loop {
                let o = Command::new("squeue")
                    .env("SLURM_CONF", &conf)
                    .args(["-h", "-s", "-j", &run_id, "-o", "%i"])
                    .output()
                    .expect("squeue");
                let left: Vec<String> = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| l.starts_with(&format!("{run_id}.")) && !l.ends_with(".batch"))
                    .collect();
                if left.is_empty() || t.elapsed() > Duration::from_secs(30) {
                    break left;
                }
                std::thread::sleep(Duration::from_millis(250));
            };
            phase("for the step to leave squeue");
            let slurm = bed.slurm.as_ref().expect("the Slurm bed");
            let f = slurm.wait_job(running, &run_id, Duration::from_secs(300));
            phase("for the job's end");
            let log =
                std::fs::read_to_string(&log_path).unwrap_or_else(|e| format!("(no job log: {e})"));
            (f.status.code(), log.clone(), log, took)
        } else {
            let f = running.wait(Duration::from_secs(180));
            let took = injected.elapsed();
            phase("to the end");
            if let Fault::LinkDown(r) = case.fault {
                link(r, "up");
            }
            (f.status.code(), f.stdout, f.stderr, took)
        };
        drop(stepd);
        if stopped || case.launcher == Launcher::SlurmMulti {
            // A stopped rank must not outlive the test (under Slurm, as
            // before the harness, whatever the fault: a node cut off may
            // hold its rank until slurmd hears of the cancel).
            signal(victim, libc::SIGKILL);
        }
        if case.launcher == Launcher::SlurmMulti {
            // The nodes go before the checks, as their processes would.
            bed = Bed::default();
            phase("to stop the Slurm nodes");
        }
        Outcome {
            code,
            stdout,
            stderr,
            took,
            victim,
            all,
            run_id,
            run_dir,
            steps_left,
            tmp,
            bed,
            phases,
            _lock,
        }
    }
}

/// Checks what every case checks (see the module's head) and logs the
/// line.
pub fn expect(case: &FaultCase, o: &Outcome) {
    let e = &case.expect;
    let err = &o.stderr;
    if let Some(code) = e.exit {
        assert_eq!(o.code, Some(code), "{o:?}");
    }
    if e.within_s > 0 {
        assert!(
            o.took < Duration::from_secs(e.within_s),
            "ended {:?} after the fault: {o:?}",
            o.took
        );
    }
    let (r, l) = (case.fault.rank(), case.launcher);
    let who = format!("rank {r} (host {}, pid {})", l.host(r), o.victim);
    let named = match e.named {
        Named::Unchecked => None,
        Named::KilledBySigkill => Some(format!("{who} was killed by signal 9")),
        Named::StoppedStateT => Some(format!("fell behind: {who}: process stopped (state T)")),
        Named::StoppedReporting => Some(format!("fell behind: {who}: stopped reporting")),
    };
    if let Some(named) = &named {
        assert!(err.contains(named.as_str()), "{named}: {o:?}");
        for other in (0..l.ranks()).filter(|o| *o != r) {
            assert!(
                !behind(err).contains(&format!("rank {other} ")),
                "rank {other} blamed: {o:?}"
            );
        }
    }
    if e.waiting {
        let waiting = format!("waiting for them: rank 0 (host {}", l.host(0));
        assert!(err.contains(&waiting), "{waiting}: {o:?}");
    }
    for says in e.says {
        assert!(err.contains(says), "{says}: {o:?}");
    }
    if e.kept != Kept::Unchecked {
        let written = format!("what was written is in {}", o.run_dir.display());
        assert!(err.contains(&written), "{written}: {o:?}");
    }
    if let Kept::Partial | Kept::Mode(_) = e.kept {
        let j = read_json(&o.run_dir.join("run.json"));
        assert_eq!(j["complete"], false, "{o:?}");
        let modes = &j["ranks"][0]["modes"];
        let kept = match e.kept {
            Kept::Mode(m) => modes.get(m).is_some(),
            _ => modes.as_object().is_some_and(|m| !m.is_empty()),
        };
        assert!(kept, "{:?}: steps so far not kept: {j:#}", e.kept);
    }
    // Nothing of the job is left: its workers by PID (mpirun must stop
    // them by itself when mfubench is killed outright), and on the
    // namespace hosts no process at all (mpirun's daemons, rsh agents).
    let limit = match (case.fault, l) {
        (Fault::Signal(Target::Mfubench, _), _) => 30,
        (_, Launcher::SlurmMulti) => 15,
        _ => 10,
    };
    let left = wait_gone(&o.all, Duration::from_secs(limit));
    assert!(left.is_empty(), "workers left behind: {left:?}\n{o:?}");
    if l == Launcher::NetnsHosts {
        let t = Instant::now();
        loop {
            let on_hosts: Vec<(&str, Vec<u32>)> = HOSTS
                .into_iter()
                .map(|h| (h, Netns::pids(h)))
                .filter(|(_, p)| !p.is_empty())
                .collect();
            if on_hosts.is_empty() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "processes left on the fake hosts: {on_hosts:?}\n{o:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let line = named
        .as_deref()
        .map(|n| line_with(err, n))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| line_with(err, "mfubench: error"));
    // Else the launcher's last word (an interrupted run's).
    let line = if line.is_empty() {
        err.lines()
            .rev()
            .find(|l| l.starts_with("mfubench:"))
            .unwrap_or("")
    } else {
        line
    };
    let code = o.code.map_or("signal".to_string(), |c| c.to_string());
    log(&format!(
        "fault {}: exit {code} after {:.1} s; {line}",
        case.what,
        o.took.as_secs_f64()
    ));
}
