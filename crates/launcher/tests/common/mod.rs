//! Shared helpers of the launcher's integration tests: paths, the test
//! lock, skips, running `mfubench` with a deadline while watching its
//! output, the test beds (hosts as network namespaces, three Slurm nodes in
//! them) and, in [`fault`], the one fault-injection harness.
#![allow(dead_code)] // each test binary uses a different subset

pub mod fault;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `mfubench` binary under test.
pub fn mfubench() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mfubench"))
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A config under crates/launcher/tests/configs/.
pub fn test_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

/// The worker next to `mfubench` (cargo builds every binary of the
/// workspace into the same folder). Its absence is a broken build, not a
/// missing facility: fail loudly.
pub fn require_worker() -> PathBuf {
    let w = mfubench().with_file_name("mfubench-worker");
    assert!(
        w.is_file(),
        "{} is missing: build the workspace (cargo test --workspace builds it; \
         or cargo build -p mfubench-worker)",
        w.display()
    );
    w
}

/// configs/quickstart.toml with fewer iterations, written into `dir`: the
/// real quickstart shape, short enough for a loaded 2-core machine.
pub fn short_quickstart(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("configs/quickstart.toml"))
        .expect("configs/quickstart.toml");
    let mut t: toml::Table = text.parse().expect("quickstart.toml parses");
    let run = t
        .entry("run")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("[run] is a table");
    run.insert("warmup".into(), toml::Value::Integer(1));
    run.insert("iterations".into(), toml::Value::Integer(2));
    // Tests assert that the run works, not how evenly a loaded 2-core
    // machine shares its cores: no straggler verdict.
    let acc = t
        .entry("acceptance")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("[acceptance] is a table");
    acc.insert("straggler_tolerance".into(), toml::Value::Float(10.0));
    let p = dir.join("quickstart-short.toml");
    std::fs::write(&p, toml::to_string(&t).expect("serialise")).expect("write config");
    p
}

/// Whether we run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// This machine's host name (what mpirun and the worker report).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Finds a program on PATH or in the sbin folders (root's tools).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Skips: `skip(test, reason)` prints a visible notice (the test then
/// returns) and with `CI=true` fails instead; `skip_allowed` for what CI
/// cannot have or force. See crates/test-support/skip.rs.
#[path = "../../../test-support/skip.rs"]
mod skipping;
#[allow(unused_imports)] // each test binary uses a subset
pub use skipping::{skip, skip_allowed};

/// Bounded stops of children: see crates/test-support/reap.rs.
#[path = "../../../test-support/reap.rs"]
pub mod reap;

/// Whether every one of `programs` is installed; otherwise skips `test`
/// (with `CI=true` a missing one fails it: ci/install-deps.sh installs them).
pub fn have(test: &str, programs: &[&str]) -> bool {
    match programs.iter().find(|p| find_program(p).is_none()) {
        Some(p) => {
            skip(
                test,
                &format!("{p} is not installed (ci/install-deps.sh installs it)"),
            );
            false
        }
        None => true,
    }
}

/// Whether mpirun is installed; otherwise skips `test` (see [`have`]).
pub fn have_mpirun(test: &str) -> bool {
    have(test, &["mpirun"])
}

/// Sends `sig` to `pid`, a process the test started or found to be its
/// own (a worker by its `--run-id`, mpirun, a Slurm step daemon of its
/// job). The process may be gone already: the result is ignored.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// An exclusive lock shared by the tests that start real jobs (MPI ranks,
/// network namespaces, Slurm), across test binaries and threads: they must
/// not share the machine's two cores, nor the fixed names of the testbed.
/// With `MFUBENCH_TEST_LOCK_LOG=FILE`, each test appends `TEST HELD_S` (the
/// seconds it held the lock) to FILE when it lets the lock go: the time a
/// test costs on a machine where nothing else waits for the lock.
pub struct TestLock(File, Instant);

impl TestLock {
    /// Blocks until the lock is ours.
    pub fn acquire() -> TestLock {
        let f = File::options()
            .create(true)
            .append(true)
            .open(std::env::temp_dir().join("mfubench-launcher-tests.lock"))
            .expect("open the lock file");
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; released on close.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock failed");
        TestLock(f, Instant::now())
    }
}

impl Drop for TestLock {
    fn drop(&mut self) {
        let Some(p) = std::env::var_os("MFUBENCH_TEST_LOCK_LOG") else {
            return;
        };
        if let Ok(mut f) = File::options().create(true).append(true).open(p) {
            use std::io::Write;
            let _ = writeln!(
                f,
                "{} {:.1}",
                skipping::current_test(),
                self.1.elapsed().as_secs_f64()
            );
        }
    }
}

/// A running command whose stdout and stderr are collected as they come.
pub struct Running {
    /// The child.
    pub child: Child,
    /// When it was started.
    pub started: Instant,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// What a finished command left.
#[derive(Debug)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Finished {
    /// The exit code (panics on death by signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self:?}"))
    }
}

fn collect<R: Read + Send + 'static>(mut r: R, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
}

impl Running {
    /// Starts `cmd` with piped output.
    pub fn start(cmd: &mut Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A program copied by a test can be "text file busy" for a moment:
        // another thread's fork may still hold the copy's write descriptor.
        let mut tries = 0;
        let mut child = loop {
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => break r.expect("spawn"),
            }
        };
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), out.clone()),
            collect(child.stderr.take().expect("stderr"), err.clone()),
        ];
        Running {
            child,
            started: Instant::now(),
            out,
            err,
            readers,
        }
    }

    /// stdout and stderr so far.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            self.out.lock().expect("lock"),
            self.err.lock().expect("lock")
        )
    }

    /// Whether the child has exited.
    pub fn child_ended(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the child (if it still runs) and returns what it left.
    pub fn stop(mut self) -> Finished {
        // The whole tree: a grandchild (mpirun, a rank) left alive would
        // hold the pipes the readers below wait on.
        let status = reap::kill_tree(&mut self.child).expect("wait");
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            status,
            stdout: self.out.lock().expect("lock").clone(),
            stderr: self.err.lock().expect("lock").clone(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Waits for the exit; kills the child and panics past `limit`.
    pub fn wait(mut self, limit: Duration) -> Finished {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Finished {
                    status,
                    stdout: self.out.lock().expect("lock").clone(),
                    stderr: self.err.lock().expect("lock").clone(),
                    elapsed: self.started.elapsed(),
                };
            }
            if self.started.elapsed() > limit {
                reap::kill_tree(&mut self.child);
                panic!(
                    "still running after {limit:?}; output so far:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs a command to completion within `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Finished {
    Running::start(cmd).wait(limit)
}

/// `mfubench` with an environment free of the caller's Slurm job and
/// worker override, so that tests do not depend on where they run.
pub fn mfubench_cmd() -> Command {
    let mut c = Command::new(mfubench());
    for v in [
        "SLURM_JOB_ID",
        "SLURM_NTASKS",
        "SLURM_JOB_NODELIST",
        "MFUBENCH_WORKER",
    ] {
        c.env_remove(v);
    }
    c
}

/// Whether `pid` is alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// PIDs of `mfubench-worker` processes started with `--run-id ID`.
pub fn worker_pids(run_id: &str) -> Vec<u32> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_worker = args
            .first()
            .is_some_and(|a| a.ends_with(b"mfubench-worker"));
        let ours = args
            .windows(2)
            .any(|w| w[0] == b"--run-id" && w[1] == run_id.as_bytes());
        if is_worker && ours && alive(pid) {
            v.push(pid);
        }
    }
    v
}

/// A variable from a process's environment.
pub fn proc_env(pid: u32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Waits until none of `pids` is alive; returns those still alive.
pub fn wait_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let t = Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || t.elapsed() > limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `(pid N` numbers in a text (the launcher names ranks as
/// `rank R (host H, pid N)`).
pub fn pids_named(text: &str) -> Vec<u32> {
    text.split("pid ")
        .skip(1)
        .filter_map(|s| {
            let d: String = s.chars().take_while(char::is_ascii_digit).collect();
            d.parse().ok()
        })
        .collect()
}

/// Reads a run.json as JSON.
pub fn read_json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("run.json is JSON")
}

/// Fake hosts hostA, hostB, … as network namespaces (ci/netns-up.sh), torn
/// down however the test ends.
pub struct Netns;

impl Netns {
    /// Sets up `hosts` namespaces (removing leftovers of an interrupted
    /// earlier run first, which would make netns-up fail).
    pub fn up(hosts: u32) -> Netns {
        Netns::up_with_rails(hosts, 1)
    }

    /// As [`Netns::up`], each host with `rails` NICs (1 or 2: eth0 on
    /// 10.77.0.0/24, eth1 on 10.78.0.0/24).
    pub fn up_with_rails(hosts: u32, rails: u32) -> Netns {
        let _ = Command::new(root().join("ci/netns-down.sh")).status();
        let guard = Netns;
        let f = run(
            Command::new(root().join("ci/netns-up.sh"))
                .arg(hosts.to_string())
                .arg(rails.to_string()),
            Duration::from_secs(60),
        );
        assert_eq!(f.code(), 0, "ci/netns-up.sh failed: {f:?}");
        guard
    }

    /// The options ci/mpirun-ns.sh adds to mpirun (rsh agent, TCP over the
    /// bridge only), for `mfubench run … -- OPTIONS`.
    pub fn mpirun_args() -> Vec<String> {
        let f = run(
            Command::new(root().join("ci/mpirun-ns.sh")).arg("--print-args"),
            Duration::from_secs(30),
        );
        assert_eq!(f.code(), 0, "{f:?}");
        f.stdout.lines().map(str::to_string).collect()
    }

    /// PIDs of the processes running "on" a fake host (in its namespace).
    pub fn pids(host: &str) -> Vec<u32> {
        let o = Command::new("ip")
            .args(["netns", "pids", host])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|p| alive(*p))
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new(root().join("ci/netns-down.sh")).status();
    }
}

/// The skip reason of a test that needs network namespaces, if any (for
/// [`skip`]: with `CI=true` the test fails, as CI runs as root with
/// ci/install-deps.sh's packages).
pub fn netns_missing() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces)".into());
    }
    ["ip", "nsenter", "unshare", "mpirun"]
        .into_iter()
        .find(|p| find_program(p).is_none())
        .map(|p| format!("{p} is not installed"))
}

/// The files of a `launch/mfubench.sbatch` job: its config, results folder,
/// log (`%j` is the job id), JUnit and Prometheus files.
pub struct SbatchFiles {
    pub config: PathBuf,
    pub results: PathBuf,
    pub log: PathBuf,
    pub junit: PathBuf,
    pub prom: PathBuf,
}

impl SbatchFiles {
    /// `config`'s job with its files in `dir`.
    pub fn in_dir(dir: &Path, config: PathBuf) -> SbatchFiles {
        SbatchFiles {
            config,
            results: dir.join("results"),
            log: dir.join("job-%j.out"),
            junit: dir.join("job.junit.xml"),
            prom: dir.join("job.prom"),
        }
    }

    /// The log of job `job_id` (what the job printed, or why there is none).
    pub fn job_log(&self, job_id: &str) -> String {
        let p = self.log.display().to_string().replace("%j", job_id);
        std::fs::read_to_string(&p).unwrap_or_else(|e| format!("(no job log: {e})"))
    }
}

/// `sbatch --parsable --wait SHAPE --gpus-per-node=0 launch/mfubench.sbatch`
/// on the Slurm of `conf` (command-line options override the template's
/// GPU-cluster defaults), mfubench given `files` and `timeout`.
pub fn sbatch(conf: &Path, shape: &[&str], timeout: &str, files: &SbatchFiles) -> Command {
    let export = format!(
        "ALL,MFUBENCH={},MFUBENCH_OUT={},MFUBENCH_CONFIG={},MFUBENCH_TIMEOUT={timeout},MFUBENCH_JUNIT={},MFUBENCH_PROM={}",
        mfubench().display(),
        files.results.display(),
        files.config.display(),
        files.junit.display(),
        files.prom.display()
    );
    let mut cmd = Command::new("sbatch");
    cmd.env("SLURM_CONF", conf)
        .current_dir(root())
        .args(["--parsable", "--wait"])
        .args(shape)
        .arg("--gpus-per-node=0")
        .arg(format!("--output={}", files.log.display()))
        .arg(format!("--export={export}"))
        .arg("launch/mfubench.sbatch");
    cmd
}

/// The job id `sbatch --parsable` printed on its first line, once it has
/// (None before; --wait then blocks).
pub fn sbatch_job_id(sbatch: &Running) -> Option<String> {
    let o = sbatch.output();
    o.lines()
        .next()
        .filter(|l| o.contains('\n') && !l.is_empty())
        .map(|l| l.trim().split(';').next().unwrap_or_default().to_string())
}

/// Waits (up to a minute) for the job id `sbatch --parsable` prints.
pub fn wait_sbatch_job_id(sbatch: &Running) -> String {
    let t = Instant::now();
    loop {
        if let Some(id) = sbatch_job_id(sbatch) {
            return id;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "sbatch printed no job id: {}",
            sbatch.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Why a one-node Slurm test cannot run here (not root, a program
/// missing), or None.
pub fn one_node_slurm_missing() -> Option<String> {
    if !is_root() {
        return Some("needs root (starts munged, slurmctld, slurmd)".into());
    }
    ["slurmctld", "slurmd", "munged", "sbatch", "srun"]
        .into_iter()
        .find(|p| find_program(p).is_none())
        .map(|p| format!("{p} is not installed (apt-get install slurm-wlm munge)"))
}

/// The exit code slurmctld records for the batch job `job_id` once the job
/// has ended (`scontrol show job`: a state other than pending, running,
/// configuring, suspended or requeued, where COMPLETING counts as ended, as
/// for `sbatch --wait`; `ExitCode=CODE:SIGNAL`, a signal reported as
/// 128 + SIGNAL); None while it runs or when scontrol cannot tell.
pub fn job_exit_code(conf: &Path, job_id: &str) -> Option<i32> {
    let o = Command::new("scontrol")
        .env("SLURM_CONF", conf)
        .args(["show", "job", "-o", job_id])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let state = field("JobState")?;
    let running = [
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
    ];
    if running.contains(&state.as_str()) {
        return None;
    }
    let exit = field("ExitCode")?;
    let (code, signal) = exit.split_once(':')?;
    let (code, signal): (i32, i32) = (code.parse().ok()?, signal.parse().ok()?);
    Some(if signal != 0 { 128 + signal } else { code })
}

/// The fake hosts of the beds, by rank (one rank a host).
pub const HOSTS: [&str; 3] = ["hostA", "hostB", "hostC"];

/// The skip reason of a test that needs the 3-node Slurm of
/// ci/slurm-multi-up.sh, if any (for [`skip`]).
pub fn slurm_multi_missing() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces, Slurm daemons)".into());
    }
    [
        "ip",
        "nsenter",
        "unshare",
        "slurmctld",
        "slurmd",
        "munged",
        "sbatch",
        "srun",
        "scancel",
        "squeue",
    ]
    .into_iter()
    .find(|p| find_program(p).is_none())
    .map(|p| format!("{p} is not installed (ci/install-deps.sh installs it)"))
}

/// A test Slurm (munged, slurmctld, slurmd), stopped however the test
/// ends: one node on this machine (ci/slurm-up.sh), or three slurmd
/// "nodes" in the namespaces hostA, hostB, hostC (ci/slurm-multi-up.sh, on
/// a [`Netns`] bed; declare it after the [`Netns`], so that it goes first).
pub struct Slurm {
    dir: PathBuf,
    down: &'static str,
}

impl Slurm {
    /// Starts `ci/{up}` with its state in `dir` (removing what an
    /// interrupted earlier run left there first).
    fn start(up: &str, down: &'static str, dir: &Path, env: &[(&str, String)]) -> Slurm {
        let _ = Command::new(root().join("ci").join(down)).arg(dir).status();
        let guard = Slurm {
            dir: dir.to_path_buf(),
            down,
        };
        let mut cmd = Command::new(root().join("ci").join(up));
        cmd.arg(dir).envs(env.iter().map(|(k, v)| (k, v)));
        let f = run(&mut cmd, Duration::from_secs(120));
        assert_eq!(f.code(), 0, "ci/{up} failed: {f:?}");
        guard
    }

    /// One node on this machine.
    pub fn one_node(dir: &Path) -> Slurm {
        Slurm::start("slurm-up.sh", "slurm-down.sh", dir, &[])
    }

    /// Three nodes in the namespaces; `kill_wait` sets slurm.conf's
    /// KillWait (seconds; the script's default is 5).
    pub fn three_nodes(dir: &Path, kill_wait: Option<u32>) -> Slurm {
        let env: Vec<(&str, String)> = kill_wait
            .map(|w| ("KILL_WAIT", w.to_string()))
            .into_iter()
            .collect();
        Slurm::start("slurm-multi-up.sh", "slurm-multi-down.sh", dir, &env)
    }

    /// Its slurm.conf (for `SLURM_CONF`).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    /// Waits for the end of the job `job_id` of `sbatch --wait` (`running`)
    /// within `limit`, as slurmctld records it: its state is past running
    /// and its exit code known. `sbatch --wait` learns the same from the
    /// same place, but polls at 2, 8 and then every 32 s (a fault row spent
    /// up to 27 s there); it is stopped once the end is known, and the job's
    /// exit code stands for its own.
    pub fn wait_job(&self, mut running: Running, job_id: &str, limit: Duration) -> Finished {
        let t = Instant::now();
        loop {
            if running.child_ended() {
                return running.wait(limit);
            }
            if let Some(code) = job_exit_code(&self.conf(), job_id) {
                let mut f = running.stop();
                f.status = std::os::unix::process::ExitStatusExt::from_raw((code & 0xff) << 8);
                return f;
            }
            if t.elapsed() > limit {
                return running.wait(Duration::ZERO);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// On [`Slurm::three_nodes`]: `sbatch -N 3 --ntasks-per-node=1` of
    /// [`sbatch`], Open MPI between
    /// the nodes over the bridge only (each namespace also has a loopback
    /// 127.0.0.1 that Open MPI would otherwise offer its peers); srun
    /// passes the environment on to the ranks.
    pub fn sbatch_on_three_nodes(&self, files: &SbatchFiles) -> Command {
        let mut cmd = sbatch(
            &self.conf(),
            &["-N", "3", "--ntasks-per-node=1"],
            "4m",
            files,
        );
        cmd.env("OMPI_MCA_btl_tcp_if_include", "10.77.0.0/24");
        cmd
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = Command::new(root().join("ci").join(self.down))
            .arg(&self.dir)
            .status();
    }
}

/// Writes a line to the test log even for a passing test (as [`skip`]
/// does): the fault tests report what they measured.
pub fn log(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The worker's op timeout in the fault tests: long enough that a loaded
/// 2-core machine never trips it by itself, and well above the 3 s of
/// silence that mark a rank as stopped.
pub const OP_TIMEOUT_S: f64 = 8.0;
/// The launcher's grace for mpirun / srun after an abort (its own
/// constant, from the launcher library: never a copy).
pub const ABORT_GRACE_S: u64 = mfubench_launcher::run_cmd::supervise::ABORT_GRACE.as_secs();
/// Slack on a loaded machine on top of a documented bound.
pub const SLACK_S: u64 = 12;

/// long.toml (a run only a fault ends) with `op_timeout_s` and no checks,
/// written into `dir`.
pub fn fault_config(dir: &Path, op_timeout_s: f64) -> PathBuf {
    let text = std::fs::read_to_string(test_config("long.toml")).expect("long.toml");
    let mut t: toml::Table = text.parse().expect("parses");
    let run = t["run"].as_table_mut().expect("[run]");
    run.insert("op_timeout_s".into(), toml::Value::Float(op_timeout_s));
    run.insert("check".into(), toml::Value::Boolean(false));
    let p = dir.join("fault.toml");
    std::fs::write(&p, toml::to_string(&t).expect("toml")).expect("write");
    p
}

/// The line of `text` that contains `needle` (empty if none).
pub fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines().find(|l| l.contains(needle)).unwrap_or("")
}

/// The ranks the launcher named as having fallen behind (up to the waiting
/// ones) in its error line.
pub fn behind(stderr: &str) -> &str {
    let l = line_with(stderr, "fell behind: ");
    let from = l.find("fell behind: ").map_or(l.len(), |i| i + 13);
    let l = &l[from..];
    &l[..l.find("; waiting for them").unwrap_or(l.len())]
}
