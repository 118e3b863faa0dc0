//! `mfubench run --dry-run` golden tests (mpirun and srun forms) and the
//! errors raised before anything is started. These need no MPI, no Slurm
//! and no built worker: a stand-in executable plays the worker.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// A temp dir with a stand-in worker in bin/ and the quick test config.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("bin")).expect("mkdir");
        let w = dir.path().join("bin/mfubench-worker");
        std::fs::write(&w, "#!/bin/sh\nexit 0\n").expect("write");
        std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::copy(test_config("quick.toml"), dir.path().join("quick.toml")).expect("copy");
        Sandbox { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn worker(&self) -> PathBuf {
        self.path().join("bin/mfubench-worker")
    }

    /// `mfubench run` in the sandbox with the stand-in worker, with no
    /// forwardable variable but PATH (and MFUBENCH_WORKER) set, so that the
    /// `-x` list is known.
    fn cmd(&self) -> std::process::Command {
        let mut c = mfubench_cmd();
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if ["NCCL_", "CUDA_", "UCX_", "MFUBENCH_"]
                .iter()
                .any(|p| k.starts_with(p))
                || k == "LD_LIBRARY_PATH"
            {
                c.env_remove(&k);
            }
        }
        c.current_dir(self.path())
            .env("MFUBENCH_WORKER", self.worker())
            .arg("run");
        c
    }

    /// Replaces the sandbox path with `<TMP>`.
    fn norm(&self, s: &str) -> String {
        s.replace(&self.path().display().to_string(), "<TMP>")
    }
}

fn root_flag() -> &'static str {
    if is_root() {
        " --allow-run-as-root"
    } else {
        ""
    }
}

#[test]
fn golden_mpirun_hosts() {
    let s = Sandbox::new();
    let f = run(
        s.cmd().args([
            "quick.toml",
            "--np",
            "4",
            "--hosts",
            "node1:2,node2:2",
            "--backend",
            "cpu",
            "--run-id",
            "golden",
            "--dry-run",
            "--",
            "--mca",
            "btl",
            "tcp,self",
        ]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    let expected = format!(
        "mpirun -np 4 --host node1:2,node2:2 --tag-output{} --bind-to none -x MFUBENCH_LAUNCH_JSON \
         -x MFUBENCH_WORKER -x PATH --mca btl tcp,self <TMP>/bin/mfubench-worker --config <TMP>/quick.toml \
         --out <TMP>/results --run-id golden --expect-world 4 --backend cpu\n",
        root_flag()
    );
    assert_eq!(s.norm(&f.stdout), expected);
}

#[test]
fn golden_mpirun_hostfile_quoted_and_oversubscribed() {
    let s = Sandbox::new();
    let hf = s.path().join("my hosts");
    std::fs::write(
        &hf,
        "# two nodes\nnode1 slots=1\nnode2 slots=1 max_slots=4\n",
    )
    .expect("write");
    let f = run(
        s.cmd().args([
            "quick.toml",
            "--np",
            "3",
            "--hostfile",
            "my hosts",
            "--out",
            "out dir",
            "--run-id",
            "g2",
            "--dry-run",
            "--",
            "--oversubscribe",
        ]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    let expected = format!(
        "mpirun -np 3 --hostfile '<TMP>/my hosts' --tag-output{} --bind-to none \
         --mca mpi_yield_when_idle 1 -x MFUBENCH_LAUNCH_JSON -x MFUBENCH_WORKER -x PATH \
         --oversubscribe \
         <TMP>/bin/mfubench-worker --config <TMP>/quick.toml --out '<TMP>/out dir' \
         --run-id g2 --expect-world 3\n",
        root_flag()
    );
    assert_eq!(s.norm(&f.stdout), expected);
}

#[test]
fn golden_srun_inside_allocation() {
    let s = Sandbox::new();
    // No run.ranks: the rank count comes from the allocation.
    let text = std::fs::read_to_string(s.path().join("quick.toml")).expect("read");
    let noranks: String = text
        .lines()
        .filter(|l| !l.starts_with("ranks"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(s.path().join("noranks.toml"), noranks).expect("write");
    std::fs::create_dir_all(s.path().join("results/4242")).expect("mkdir");

    let f = run(
        s.cmd()
            .env("SLURM_JOB_ID", "4242")
            .env("SLURM_NTASKS", "6")
            .env("SLURM_JOB_NODELIST", "gpu[01-03]")
            .args(["noranks.toml", "--dry-run"]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    // results/4242 exists already (an earlier run in the same job): -2.
    assert_eq!(
        s.norm(&f.stdout),
        "srun --mpi=pmix --ntasks=6 --kill-on-bad-exit=1 --label --cpu-bind=none <TMP>/bin/mfubench-worker \
         --config <TMP>/noranks.toml --out <TMP>/results --run-id 4242-2 --expect-world 6\n"
    );

    // Hosts given inside an allocation: mpirun (it reads the allocation).
    let f = run(
        s.cmd().env("SLURM_JOB_ID", "4242").args([
            "quick.toml",
            "--hosts",
            "a:2",
            "--run-id",
            "x",
            "--dry-run",
        ]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    assert!(
        f.stdout.starts_with("mpirun -np 2 --host a:2 "),
        "{}",
        f.stdout
    );
}

#[test]
fn run_id_defaults_to_a_utc_timestamp() {
    let s = Sandbox::new();
    let f = run(s.cmd().args(["quick.toml", "--dry-run"]), LIMIT);
    assert_eq!(f.code(), 0, "{f:?}");
    let id = f
        .stdout
        .split("--run-id ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("a run id");
    // YYYYmmdd-HHMMSS-xxxx
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(parts.len(), 3, "{id}");
    assert_eq!(
        (parts[0].len(), parts[1].len(), parts[2].len()),
        (8, 6, 4),
        "{id}"
    );
    assert!(parts[0].starts_with("20"), "{id}");
}

fn assert_usage(f: &Finished, needles: &[&str]) {
    assert_eq!(f.code(), 2, "{f:?}");
    for n in needles {
        assert!(f.stderr.contains(n), "stderr lacks {n:?}: {}", f.stderr);
    }
}

#[test]
fn unreadable_hostfile_is_a_usage_error() {
    let s = Sandbox::new();
    let f = run(
        s.cmd()
            .args(["quick.toml", "--hostfile", "nope.txt", "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["--hostfile nope.txt", "cannot read the hostfile"]);
}

/// Hostile input stays inert: an option-looking or overlong host name and a
/// hostfile that never ends are refused at once with exit 2, naming them.
#[test]
fn hostile_hosts_and_hostfiles_are_refused() {
    let s = Sandbox::new();
    let f = run(
        s.cmd().args([
            "quick.toml",
            "--hosts=-oProxyCommand=touch /tmp/pwned:2",
            "--dry-run",
        ]),
        LIMIT,
    );
    assert_usage(&f, &["--hosts: host name", "not a DNS name"]);
    let long = format!("{}:2", "h".repeat(5000));
    let f = run(
        s.cmd().args(["quick.toml", "--hosts", &long, "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["5000 characters"]);
    let started = std::time::Instant::now();
    let f = run(
        s.cmd()
            .args(["quick.toml", "--hostfile", "/dev/zero", "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["--hostfile /dev/zero: not a regular file"]);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn np_beyond_slots_is_a_usage_error() {
    let s = Sandbox::new();
    let f = run(
        s.cmd()
            .args(["quick.toml", "--np", "5", "--hosts", "a:2,b:2", "--dry-run"]),
        LIMIT,
    );
    assert_usage(
        &f,
        &["--np 5 is larger than the 4 slot(s)", "--oversubscribe"],
    );
}

#[test]
fn missing_worker_says_how_to_build_it() {
    let s = Sandbox::new();
    // A copy of mfubench with no worker beside it and none on PATH.
    let lone = s.path().join("lone");
    std::fs::create_dir(&lone).expect("mkdir");
    let exe = lone.join("mfubench");
    std::fs::copy(mfubench(), &exe).expect("copy mfubench");
    let mut c = std::process::Command::new(&exe);
    c.env_remove("MFUBENCH_WORKER")
        .env("PATH", "/nonexistent")
        .current_dir(s.path())
        .args(["run", "quick.toml", "--dry-run"]);
    let f = run(&mut c, LIMIT);
    assert_usage(&f, &["mfubench-worker not found", "cargo build --release"]);

    let f = run(
        s.cmd()
            .env("MFUBENCH_WORKER", s.path().join("no-such-worker"))
            .args(["quick.toml", "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["MFUBENCH_WORKER", "not an executable file"]);
}

#[test]
fn missing_mpirun_or_srun_says_what_to_install() {
    let s = Sandbox::new();
    let f = run(
        s.cmd()
            .env("PATH", "/nonexistent")
            .args(["quick.toml", "--run-id", "m"]),
        LIMIT,
    );
    assert_usage(&f, &["mpirun not found on PATH", "openmpi-bin"]);
    let f = run(
        s.cmd().env("PATH", "/nonexistent").args([
            "quick.toml",
            "--launcher",
            "srun",
            "--run-id",
            "m",
        ]),
        LIMIT,
    );
    assert_usage(&f, &["srun not found on PATH", "slurm-client"]);
}

#[test]
fn bad_input_is_a_usage_error() {
    let s = Sandbox::new();
    std::fs::write(s.path().join("bad.toml"), "[run]\niterations = \"many\"\n").expect("write");
    let f = run(s.cmd().args(["bad.toml", "--dry-run"]), LIMIT);
    // core's message: file:line:col
    assert_usage(&f, &["bad.toml:2:"]);
    let f = run(s.cmd().args(["missing.toml", "--dry-run"]), LIMIT);
    assert_usage(&f, &["missing.toml", "cannot read the config"]);
    let f = run(
        s.cmd().args(["quick.toml", "--timeout", "0", "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["--timeout"]);
    // An impossible results folder fails before anything is started.
    let f = run(
        s.cmd()
            .args(["quick.toml", "--out", "/proc/no/such/dir", "--run-id", "x"]),
        LIMIT,
    );
    assert_usage(
        &f,
        &[
            "--out /proc/no/such/dir",
            "cannot create the results folder",
        ],
    );
    let f = run(
        s.cmd()
            .args(["quick.toml", "--run-id", "../x", "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["--run-id"]);
    let f = run(
        s.cmd().args([
            "quick.toml",
            "--launcher",
            "srun",
            "--hosts",
            "a:1",
            "--dry-run",
        ]),
        LIMIT,
    );
    assert_usage(&f, &["under srun"]);
}

#[test]
fn rank_count_rules_shown_by_dry_run() {
    let s = Sandbox::new();
    // quick.toml says run.ranks = 2: host slots win over it.
    let np_of = |f: &Finished| -> String {
        f.stdout
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string()
    };
    let f = run(
        s.cmd()
            .args(["quick.toml", "--hosts", "a:2,b:3", "--dry-run"]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    assert_eq!(np_of(&f), "5", "{}", f.stdout);
    assert!(
        f.stderr
            .contains("5 rank(s), from the sum of the slots of --hosts"),
        "{}",
        f.stderr
    );
    std::fs::write(s.path().join("hf"), "a slots=8\nb slots=8\n").expect("write");
    let f = run(
        s.cmd()
            .args(["quick.toml", "--hostfile", "hf", "--dry-run"]),
        LIMIT,
    );
    assert_eq!(np_of(&f), "16", "{}", f.stdout);
    assert!(f.stderr.contains("slots= of --hostfile"), "{}", f.stderr);
    // A hostfile line without slots=: the config decides.
    std::fs::write(s.path().join("hf2"), "a slots=8\nb\n").expect("write");
    let f = run(
        s.cmd()
            .args(["quick.toml", "--hostfile", "hf2", "--dry-run"]),
        LIMIT,
    );
    assert_eq!(np_of(&f), "2", "{}", f.stdout);
    assert!(f.stderr.contains("run.ranks of the config"), "{}", f.stderr);
    // --np wins over everything.
    let f = run(
        s.cmd()
            .args(["quick.toml", "--hosts", "a:2,b:3", "--np", "3", "--dry-run"]),
        LIMIT,
    );
    assert_eq!(np_of(&f), "3", "{}", f.stdout);
    assert!(f.stderr.contains("3 rank(s), from --np"), "{}", f.stderr);
    // Inside Slurm, SLURM_NTASKS wins over run.ranks.
    let f = run(
        s.cmd()
            .env("SLURM_JOB_ID", "77")
            .env("SLURM_NTASKS", "6")
            .args(["quick.toml", "--dry-run"]),
        LIMIT,
    );
    assert!(f.stdout.contains("--ntasks=6 "), "{}", f.stdout);
    assert!(f.stderr.contains("from SLURM_NTASKS"), "{}", f.stderr);
    // One rank: a warning that communication is not measured.
    let f = run(
        s.cmd().args(["quick.toml", "--np", "1", "--dry-run"]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    assert!(
        f.stderr.contains("warning: 1 rank") && f.stderr.contains("SKIPPED"),
        "{}",
        f.stderr
    );
}

#[test]
fn environment_is_forwarded_by_name() {
    let s = Sandbox::new();
    let f = run(
        s.cmd()
            .env("NCCL_DEBUG", "INFO")
            .env("CUDA_VISIBLE_DEVICES", "0,1")
            .env("UCX_TLS", "tcp")
            .env("LD_LIBRARY_PATH", "/opt/nccl/lib")
            .env("MY_SETTING", "secret-value-123")
            .env("HOME_NOT_FORWARDED", "x")
            .args(["quick.toml", "--env", "MY_SETTING", "--dry-run"]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    for name in [
        "MFUBENCH_LAUNCH_JSON",
        "NCCL_DEBUG",
        "CUDA_VISIBLE_DEVICES",
        "UCX_TLS",
        "LD_LIBRARY_PATH",
        "PATH",
        "MY_SETTING",
    ] {
        assert!(
            f.stdout.contains(&format!(" -x {name} ")),
            "{name}: {}",
            f.stdout
        );
    }
    assert!(!f.stdout.contains("HOME_NOT_FORWARDED"), "{}", f.stdout);
    // Names only: no value reaches the command line.
    assert!(!f.stdout.contains("secret-value-123"), "{}", f.stdout);
    assert!(!f.stdout.contains("INFO"), "{}", f.stdout);

    let f = run(
        s.cmd()
            .args(["quick.toml", "--env", "NOT_SET_ANYWHERE", "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["--env NOT_SET_ANYWHERE", "not set"]);
    let f = run(
        s.cmd().args(["quick.toml", "--env", "A=b", "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["--env \"A=b\"", "not NAME=VALUE"]);
}

#[test]
fn run_id_collision_is_refused_unless_forced() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path().join("results/taken")).expect("mkdir");
    std::fs::write(s.path().join("results/taken/run.json"), "{}").expect("write");
    let f = run(
        s.cmd()
            .args(["quick.toml", "--run-id", "taken", "--dry-run"]),
        LIMIT,
    );
    assert_usage(&f, &["--run-id taken", "never overwritten", "--force"]);
    let f = run(
        s.cmd()
            .args(["quick.toml", "--run-id", "taken", "--force", "--dry-run"]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    // A dry run touches nothing.
    assert!(s.path().join("results/taken/run.json").is_file());
}

#[test]
fn timeouts_take_human_durations() {
    let s = Sandbox::new();
    for t in ["90", "90s", "10m", "1h", "1h30m"] {
        let f = run(
            s.cmd().args(["quick.toml", "--timeout", t, "--dry-run"]),
            LIMIT,
        );
        assert_eq!(f.code(), 0, "--timeout {t}: {f:?}");
    }
    for t in ["0", "10x", "0s", "soon"] {
        let f = run(
            s.cmd().args(["quick.toml", "--timeout", t, "--dry-run"]),
            LIMIT,
        );
        assert_usage(&f, &["--timeout"]);
    }
}

/// `--vary` reaches the worker as one `--vary KEY=V1,…` pair per flag, in
/// the order given.
#[test]
fn golden_vary() {
    let s = Sandbox::new();
    let f = run(
        s.cmd().args([
            "quick.toml",
            "--np",
            "2",
            "--run-id",
            "gv",
            "--vary",
            "run.bucket_mb=1,16",
            "--vary",
            "model.seq=64,128",
            "--dry-run",
        ]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    let expected = format!(
        "mpirun -np 2 --tag-output{} --bind-to none -x MFUBENCH_LAUNCH_JSON -x MFUBENCH_WORKER -x PATH \
         <TMP>/bin/mfubench-worker --config <TMP>/quick.toml --out <TMP>/results --run-id gv \
         --expect-world 2 --vary run.bucket_mb=1,16 --vary model.seq=64,128\n",
        root_flag()
    );
    assert_eq!(s.norm(&f.stdout), expected);
}

/// Bad `--vary` keys and values: exit 2 before anything starts, with one
/// line naming the flag, the key and the fix.
#[test]
fn bad_vary_is_a_one_line_usage_error() {
    let s = Sandbox::new();
    let cases: [(&str, &[&str]); 6] = [
        (
            "run.bukket_mb=1,16",
            &[
                "--vary run.bukket_mb=1,16: unknown key run.bukket_mb; known keys: ",
                "run.bucket_mb",
            ],
        ),
        (
            "run.bucket_mb=1,big",
            &["--vary run.bucket_mb=1,big: run.bucket_mb: big is not a number"],
        ),
        (
            "run.bucket_mb=0,4",
            &["--vary run.bucket_mb=0: run.bucket_mb: run.bucket_mb = 0 is out of range"],
        ),
        (
            "run.iterations=3,6",
            &["--vary run.iterations=3,6: run.iterations cannot vary"],
        ),
        (
            "run.dtype=bf17",
            &["--vary run.dtype=bf17: run.dtype: bf17 is not one of"],
        ),
        (
            "run.bucket_mb",
            &["--vary run.bucket_mb: expected KEY=V1,V2"],
        ),
    ];
    for (arg, needles) in cases {
        let f = run(
            s.cmd().args(["quick.toml", "--vary", arg, "--dry-run"]),
            LIMIT,
        );
        assert_usage(&f, needles);
        let errors: Vec<&str> = f.stderr.lines().filter(|l| l.contains("--vary")).collect();
        assert_eq!(errors.len(), 1, "{}", f.stderr);
    }
}

/// A run id is checked with core's rule, the one the ranks apply to the
/// folder they create, before anything starts: `+`, a leading `-` and 129
/// characters are refused with exit 2 and one line naming `--run-id` and
/// what it may hold, with and without --dry-run; no results folder is made
/// and mpirun (a stand-in on PATH that leaves a mark) is never started.
#[test]
fn run_ids_the_ranks_refuse_are_refused_before_anything_starts() {
    let s = Sandbox::new();
    let mpirun = s.path().join("bin/mpirun");
    std::fs::write(&mpirun, "#!/bin/sh\ntouch \"$0.started\"\nexit 0\n").expect("write");
    std::fs::set_permissions(&mpirun, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let started = s.path().join("bin/mpirun.started");
    let path = format!(
        "{}:{}",
        s.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = s.path().join("fresh-results");
    let long = "x".repeat(129);
    for id in ["a+b", "-x", long.as_str()] {
        for dry_run in [true, false] {
            let mut c = s.cmd();
            c.env("PATH", &path)
                .arg("quick.toml")
                .arg(format!("--run-id={id}"))
                .arg("--out")
                .arg(&out);
            if dry_run {
                c.arg("--dry-run");
            }
            let f = run(&mut c, LIMIT);
            let quoted = format!("--run-id \"{id}\"");
            assert_usage(
                &f,
                &[
                    &quoted,
                    "letters, digits, '-', '_' and '.'",
                    "at most 128 characters",
                ],
            );
            let errors: Vec<&str> = f.stderr.lines().filter(|l| l.contains("error")).collect();
            assert_eq!(errors.len(), 1, "{}", f.stderr);
            assert!(errors[0].contains(&quoted), "{}", f.stderr);
            assert!(f.stdout.is_empty(), "{f:?}");
            assert!(!out.exists(), "{id}: {} was made", out.display());
            assert!(!started.exists(), "{id}: mpirun was started");
        }
    }
    // The longest id core allows goes through.
    let max = "x".repeat(128);
    let f = run(
        s.cmd()
            .args(["quick.toml", "--run-id", &max, "--dry-run"])
            .arg("--out")
            .arg(&out),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    assert!(
        f.stdout.contains(&format!("--run-id {max} ")),
        "{}",
        f.stdout
    );
}

/// The worker's command line is spelled once, in core::job: neither the
/// launcher nor the worker writes a worker flag of its own, so renaming one
/// in `core::job::flag` changes both sides and nothing else. (The round
/// trip of every field is core::job's unit test.)
#[test]
fn worker_flags_are_spelled_only_in_core_job() {
    use mfubench_core::job::flag;
    // Every worker flag but --backend, which the launcher also has as a
    // flag of its own (a clap attribute, never a literal).
    let flags: Vec<&str> = flag::WITH_VALUE
        .iter()
        .copied()
        .filter(|f| *f != flag::BACKEND)
        .chain([flag::ACCEPT])
        .collect();
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    sources(&root().join("crates/launcher/src"), &mut files);
    sources(&root().join("crates/worker/src"), &mut files);
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for fl in &flags {
            // As a string literal: the launcher's own flags are clap
            // attributes (`#[arg(long)]`), never literals.
            let lit = format!("\"{fl}\"");
            assert!(
                !text.contains(&lit),
                "{} spells the worker flag {fl}: use mfubench_core::job instead",
                f.display()
            );
        }
    }
}
