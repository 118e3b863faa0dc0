//! The launch command as an argument vector: host lists, slot counting,
//! the mpirun and srun forms, worker lookup and run ids.
//!
//! Everything here is pure or reads only what it is given (files, the
//! environment through [`LaunchEnv`]), so the exact command can be printed by
//! `--dry-run` and checked by golden tests without starting anything.

use anyhow::Result;
use std::path::{Path, PathBuf};

use super::hostlist;
use crate::exit::usage;
use mfubench_core::protocol;

/// Which program starts the ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LauncherKind {
    /// Open MPI's `mpirun` (any machine, host lists, rsh/ssh agents).
    Mpirun,
    /// Slurm's `srun --mpi=pmix` (inside an allocation, or creating one).
    Srun,
}

impl LauncherKind {
    /// Program name, as looked up on PATH and recorded in run.json.
    pub fn program(self) -> &'static str {
        match self {
            LauncherKind::Mpirun => "mpirun",
            LauncherKind::Srun => "srun",
        }
    }

    /// What to install when the program is missing.
    pub fn install_hint(self) -> &'static str {
        match self {
            LauncherKind::Mpirun => {
                "install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)"
            }
            LauncherKind::Srun => {
                "install the Slurm client (Debian/Ubuntu: apt-get install slurm-client)"
            }
        }
    }
}

/// One host and its slot count (ranks it may take without oversubscribing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSlots {
    /// Host name or address.
    pub host: String,
    /// Slots; `None` when a hostfile line does not say (Open MPI then
    /// decides from the remote machine, so we cannot check `--np`).
    pub slots: Option<u32>,
}

/// Where the ranks go (mpirun only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This machine (or, under Slurm, the allocation mpirun discovers).
    Local,
    /// `--hosts h1:8,h2:8`: passed to mpirun as `--host` verbatim.
    Hosts(Vec<HostSlots>),
    /// `--hostfile F`: passed as `--hostfile ABS_PATH`, parsed for slots.
    Hostfile(PathBuf, Vec<HostSlots>),
    /// `--hostfile F` with Slurm hostlist ranges (`node[01-04] slots=8`),
    /// which mpirun cannot read: the expanded hosts go on `--host`.
    HostfileExpanded(PathBuf, Vec<HostSlots>),
}

impl Placement {
    /// Total slots when every host says how many it has.
    pub fn slots(&self) -> Option<u32> {
        match self {
            Placement::Local => None,
            Placement::Hosts(h) | Placement::Hostfile(_, h) | Placement::HostfileExpanded(_, h) => {
                // Saturating: slot counts near u32::MAX must not overflow.
                h.iter()
                    .try_fold(0u32, |acc, h| h.slots.map(|s| acc.saturating_add(s)))
            }
        }
    }
}

/// Which rule chose the number of ranks (shown by `--dry-run` and at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankRule {
    /// `--np N` on the command line.
    NpFlag,
    /// `SLURM_NTASKS` of the surrounding Slurm allocation.
    SlurmNtasks,
    /// The sum of the slots of `--hosts`.
    HostsSlots,
    /// The sum of the `slots=` of `--hostfile`.
    HostfileSlots,
    /// `run.ranks` of the config.
    ConfigRanks,
    /// Nothing said how many: one rank.
    Default,
}

impl RankRule {
    /// What the rule is, for people.
    pub fn describe(self) -> &'static str {
        match self {
            RankRule::NpFlag => "--np",
            RankRule::SlurmNtasks => "SLURM_NTASKS of the Slurm allocation",
            RankRule::HostsSlots => "the sum of the slots of --hosts",
            RankRule::HostfileSlots => "the sum of the slots= of --hostfile",
            RankRule::ConfigRanks => "run.ranks of the config",
            RankRule::Default => "the default (no --np, Slurm allocation, host slots or run.ranks)",
        }
    }
}

/// The number of ranks: `--np` if given; else, inside Slurm, `SLURM_NTASKS`;
/// else the sum of the slots of `--hosts`/`--hostfile` (when every host
/// says how many); else `run.ranks`; else 1.
pub fn choose_np(
    np_flag: Option<u32>,
    slurm_ntasks: Option<&str>,
    placement: &Placement,
    config_ranks: Option<u32>,
) -> Result<(u32, RankRule)> {
    if let Some(n) = np_flag {
        if n == 0 {
            return Err(usage("--np must be at least 1"));
        }
        return Ok((n, RankRule::NpFlag));
    }
    if let Some(t) = slurm_ntasks {
        let n: u32 = t.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            usage(format!(
                "SLURM_NTASKS={t:?} is not a positive integer: give --np N"
            ))
        })?;
        return Ok((n, RankRule::SlurmNtasks));
    }
    if let Some(n) = placement.slots() {
        let rule = match placement {
            Placement::Hostfile(..) | Placement::HostfileExpanded(..) => RankRule::HostfileSlots,
            _ => RankRule::HostsSlots,
        };
        return Ok((n, rule));
    }
    Ok(match config_ranks {
        Some(n) => (n, RankRule::ConfigRanks),
        None => (1, RankRule::Default),
    })
}

/// Parses `--hosts h1:8,h2:8` (a host without `:N` has one slot, as with
/// mpirun's `--host`). Host names may be Slurm hostlists, e.g.
/// `gpu-node-[01-04,07]:8` (every host of the range gets the slots).
pub fn parse_hosts(spec: &str) -> Result<Vec<HostSlots>> {
    let mut out = Vec::new();
    for item in hostlist::split_top_level(spec).into_iter().map(str::trim) {
        if item.is_empty() {
            return Err(usage(format!(
                "--hosts {spec:?}: empty host name (expected e.g. node1:8,node2:8 or node[1-2]:8)"
            )));
        }
        // `:N` after the last `]` only: a colon inside brackets is not ours.
        let after_brackets = item.rfind(']').map(|i| i + 1).unwrap_or(0);
        let (host, slots) = match item[after_brackets..].rsplit_once(':') {
            Some((h, n)) => {
                let n: u32 = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    usage(format!(
                        "--hosts {spec:?}: {item:?}: the slot count after ':' must be a positive integer"
                    ))
                })?;
                (&item[..after_brackets + h.len()], n)
            }
            None => (item, 1),
        };
        if host.is_empty() {
            return Err(usage(format!(
                "--hosts {spec:?}: {item:?} has no host name"
            )));
        }
        let names = hostlist::expand(host).map_err(|e| usage(format!("--hosts: {e}")))?;
        for n in &names {
            check_host_name(n).map_err(|e| usage(format!("--hosts: {e}")))?;
        }
        out.extend(names.into_iter().map(|host| HostSlots {
            host,
            slots: Some(slots),
        }));
    }
    Ok(out)
}

/// Longest host name accepted (DNS: 253 characters).
pub const MAX_HOST_NAME: usize = 253;

/// Largest hostfile read (a regular file): more is not a hostfile.
pub const MAX_HOSTFILE_BYTES: u64 = 16 << 20;

/// Checks that a host name is inert: a DNS name, IPv4 or IPv6 address of at
/// most [`MAX_HOST_NAME`] characters that cannot be read as an option by
/// mpirun or ssh (no leading `-`) nor carry shell or control characters.
pub fn check_host_name(name: &str) -> std::result::Result<(), String> {
    let shown: String = name
        .chars()
        .take(40)
        .flat_map(char::escape_default)
        .collect();
    if name.len() > MAX_HOST_NAME {
        return Err(format!(
            "host name \"{shown}…\" is {} characters long; a host name has at most {MAX_HOST_NAME}",
            name.len()
        ));
    }
    if name.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(());
    }
    let ok = !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host name \"{shown}\" is not a DNS name or IP address (letters, digits, '-', '.', '_'; not starting with '-' or '.')"
        ))
    }
}

/// Parses an Open MPI hostfile: `host [slots=N] [max_slots=M]` per line,
/// `#` comments. Lines without `slots=` give `slots: None`. A host may be a
/// Slurm hostlist (`node[01-04] slots=8`); the second value says whether
/// one was (mpirun cannot read those: see [`Placement::HostfileExpanded`]).
pub fn parse_hostfile(text: &str, path: &str) -> Result<(Vec<HostSlots>, bool)> {
    let mut out = Vec::new();
    let mut ranges = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let host = words.next().unwrap_or_default();
        let mut slots = None;
        for w in words {
            if let Some(v) = w.strip_prefix("slots=") {
                let n: u32 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    usage(format!(
                        "{path}:{}: slots={v:?} must be a positive integer",
                        i + 1
                    ))
                })?;
                slots = Some(n);
            }
        }
        let names = hostlist::expand(host).map_err(|e| usage(format!("{path}:{}: {e}", i + 1)))?;
        for n in &names {
            check_host_name(n).map_err(|e| usage(format!("{path}:{}: {e}", i + 1)))?;
        }
        if host.contains('[') {
            ranges = true;
            if slots.is_none() {
                return Err(usage(format!(
                    "{path}:{}: {host} is a host range: give its slots (e.g. `{host} slots=8`)",
                    i + 1
                )));
            }
        }
        out.extend(names.into_iter().map(|host| HostSlots { host, slots }));
    }
    if out.is_empty() {
        return Err(usage(format!("{path}: the hostfile lists no hosts")));
    }
    Ok((out, ranges))
}

/// Prefixes of the variables forwarded to every rank: the libraries' own
/// settings (NCCL, CUDA, UCX) and ours. Open MPI forwards `OMPI_MCA_*` itself.
pub const FORWARD_PREFIXES: [&str; 4] = ["NCCL_", "CUDA_", "UCX_", "MFUBENCH_"];
/// Variables forwarded by exact name (library discovery on remote hosts).
pub const FORWARD_NAMES: [&str; 2] = ["LD_LIBRARY_PATH", "PATH"];

/// The names to forward to every rank: those of `present` (the launcher's
/// environment) on the allow-list, plus each `--env NAME` (which must be
/// set), sorted and without duplicates. Names only: values are read by
/// mpirun from its own environment and never written by us.
pub fn forwarded_env(
    present: impl IntoIterator<Item = std::ffi::OsString>,
    extra: &[String],
) -> Result<Vec<String>> {
    let present: std::collections::BTreeSet<String> = present
        .into_iter()
        .filter_map(|k| k.into_string().ok())
        .collect();
    let mut out: std::collections::BTreeSet<String> = present
        .iter()
        .filter(|k| {
            FORWARD_PREFIXES.iter().any(|p| k.starts_with(p)) || FORWARD_NAMES.contains(&k.as_str())
        })
        .cloned()
        .collect();
    for name in extra {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(usage(format!(
                "--env {name:?}: give the name of an environment variable (letters, digits, _), \
                 not NAME=VALUE: set it in the environment first"
            )));
        }
        if !present.contains(name) {
            return Err(usage(format!(
                "--env {name}: {name} is not set in this environment, so there is nothing to forward"
            )));
        }
        out.insert(name.clone());
    }
    Ok(out.into_iter().collect())
}

/// Whether the extra launcher arguments already ask for oversubscription.
pub fn extra_oversubscribes(extra: &[String]) -> bool {
    extra.iter().any(|a| {
        a == "--oversubscribe"
            || a == "-oversubscribe"
            || a.to_ascii_uppercase().contains(":OVERSUBSCRIBE")
    })
}

/// Everything the command line depends on.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// mpirun or srun.
    pub launcher: LauncherKind,
    /// Number of ranks.
    pub np: u32,
    /// Hosts (mpirun).
    pub placement: Placement,
    /// Absolute path of `mfubench-worker`.
    pub worker: PathBuf,
    /// Arguments of the worker.
    pub worker_args: Vec<String>,
    /// Extra launcher arguments (after `--`), inserted before the worker.
    pub extra: Vec<String>,
    /// Running as root (Open MPI refuses without `--allow-run-as-root`).
    pub as_root: bool,
    /// Cores of this machine, for local mpirun runs (oversubscription).
    pub local_cores: Option<u32>,
    /// Inside a Slurm allocation: mpirun takes its slots from Slurm.
    pub in_slurm: bool,
    /// Environment variables mpirun forwards to every rank (`-x NAME`),
    /// besides the launch description.
    pub forward_env: Vec<String>,
}

/// The launch command, program first.
pub fn build_argv(spec: &LaunchSpec) -> Result<Vec<String>> {
    let mut v: Vec<String> = Vec::new();
    let s = |x: &str| x.to_string();
    let user_oversub = extra_oversubscribes(&spec.extra);
    match spec.launcher {
        LauncherKind::Mpirun => {
            v.extend([s("mpirun"), s("-np"), spec.np.to_string()]);
            match &spec.placement {
                Placement::Local => {}
                Placement::Hosts(h) | Placement::HostfileExpanded(_, h) => {
                    let list: Vec<String> = h
                        .iter()
                        .map(|h| format!("{}:{}", h.host, h.slots.unwrap_or(1)))
                        .collect();
                    v.extend([s("--host"), list.join(",")]);
                }
                Placement::Hostfile(p, _) => v.extend([s("--hostfile"), p.display().to_string()]),
            }
            // Rank-tagged output lets the supervisor name the rank of every line.
            v.push(s("--tag-output"));
            if spec.as_root {
                v.push(s("--allow-run-as-root"));
            }
            // Each rank runs two stream threads (and GEMM threads on the CPU
            // backend); Open MPI's default per-core binding would serialise them.
            if !spec
                .extra
                .iter()
                .any(|a| a.starts_with("--bind-to") || a == "-bind-to")
            {
                v.extend([s("--bind-to"), s("none")]);
            }
            let oversubscribed = match (spec.placement.slots(), &spec.placement) {
                (Some(slots), _) => {
                    if spec.np > slots && !user_oversub {
                        return Err(usage(format!(
                            "--np {} is larger than the {slots} slot(s) of the hosts given; \
                             give more slots (host:N) or pass `-- --oversubscribe`",
                            spec.np
                        )));
                    }
                    spec.np > slots
                }
                (None, Placement::Local) if !spec.in_slurm => {
                    let over = spec.local_cores.is_some_and(|c| spec.np > c);
                    if over && !user_oversub {
                        v.push(s("--oversubscribe"));
                    }
                    over
                }
                _ => user_oversub,
            };
            // Ranks waiting in MPI would otherwise spin on the cores others compute on.
            if oversubscribed {
                v.extend([s("--mca"), s("mpi_yield_when_idle"), s("1")]);
            }
            // Remote ranks only see the variables mpirun is told to forward
            // (by name: values never appear on the command line).
            v.extend([s("-x"), s(super::LAUNCH_ENV)]);
            for name in spec.forward_env.iter().filter(|n| *n != super::LAUNCH_ENV) {
                v.extend([s("-x"), name.clone()]);
            }
        }
        LauncherKind::Srun => {
            if spec.placement != Placement::Local {
                return Err(usage(
                    "--hosts/--hostfile apply to mpirun; under srun the Slurm allocation decides \
                     where ranks run (use --launcher mpirun, or srun options after `--`)",
                ));
            }
            // pmi2 fails with Debian's Open MPI; srun forwards the environment
            // itself. --kill-on-bad-exit: a rank that dies ends the step at
            // once, instead of leaving the others in a collective until the
            // job's time limit.
            v.extend([
                s("srun"),
                s("--mpi=pmix"),
                format!("--ntasks={}", spec.np),
                s("--kill-on-bad-exit=1"),
                s("--label"),
                s("--cpu-bind=none"),
            ]);
        }
    }
    v.extend(spec.extra.iter().cloned());
    v.push(spec.worker.display().to_string());
    v.extend(spec.worker_args.iter().cloned());
    Ok(v)
}

/// Quotes one word for display in a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line for display (copy-pasteable into a shell).
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Finds an executable on a PATH-like list.
pub fn find_on_path(name: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Name of the worker executable.
pub const WORKER_NAME: &str = "mfubench-worker";

/// [`find_worker`] for this process: its environment and its own folder.
pub fn worker_for_this_process() -> Result<PathBuf> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    find_worker(
        std::env::var_os("MFUBENCH_WORKER").as_deref(),
        exe_dir.as_deref(),
        std::env::var_os("PATH").as_deref(),
    )
}

/// Locates `mfubench-worker`: `$MFUBENCH_WORKER`, else next to the running
/// `mfubench` (the way `cargo build` and an install lay them out), else PATH.
pub fn find_worker(
    override_var: Option<&std::ffi::OsStr>,
    exe_dir: Option<&Path>,
    path_var: Option<&std::ffi::OsStr>,
) -> Result<PathBuf> {
    if let Some(o) = override_var.filter(|o| !o.is_empty()) {
        let p = PathBuf::from(o);
        if !is_executable(&p) {
            return Err(usage(format!(
                "MFUBENCH_WORKER={}: not an executable file",
                p.display()
            )));
        }
        return Ok(std::path::absolute(&p).unwrap_or(p));
    }
    if let Some(p) = exe_dir
        .map(|d| d.join(WORKER_NAME))
        .filter(|p| is_executable(p))
    {
        return Ok(p);
    }
    if let Some(p) = find_on_path(WORKER_NAME, path_var) {
        return Ok(std::path::absolute(&p).unwrap_or(p));
    }
    Err(usage(format!(
        "{WORKER_NAME} not found (looked next to mfubench{}, and on PATH): build it with \
         `cargo build --release` (it is placed next to mfubench in target/release/), \
         or point MFUBENCH_WORKER at it",
        exe_dir
            .map(|d| format!(" in {}", d.display()))
            .unwrap_or_default()
    )))
}

/// Physical cores of this machine (distinct package/core pairs), falling
/// back to the CPUs this process may use. Open MPI counts cores, not
/// hardware threads, as slots.
pub fn local_cores() -> Option<u32> {
    let mut cores = std::collections::BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name
                .strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let t = e.path().join("topology");
            let read = |f: &str| {
                std::fs::read_to_string(t.join(f))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            if let (Some(p), Some(c)) = (read("physical_package_id"), read("core_id")) {
                cores.insert((p, c));
            }
        }
    }
    let n = if cores.is_empty() {
        std::thread::available_parallelism().ok()?.get()
    } else {
        cores.len()
    };
    u32::try_from(n).ok()
}

/// `YYYYmmdd-HHMMSS` (UTC) for seconds since the epoch.
pub fn utc_stamp(secs: u64) -> String {
    mfubench_core::time::utc_stamp(secs as i64)
}

/// A short random suffix so that two runs started in the same second (or
/// on two machines sharing a results folder) never collide.
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    format!("{:04x}", h.finish() & 0xffff)
}

/// The run id: `--run-id` as given, else the Slurm job id (with `-2`, `-3`…
/// when `OUT/<job id>` exists already: several runs in one job), else a UTC
/// timestamp plus a random suffix.
pub fn choose_run_id(
    given: Option<&str>,
    slurm_job_id: Option<&str>,
    out: &Path,
) -> Result<String> {
    if let Some(id) = given {
        // Core's rule, the one the ranks apply to the folder they create:
        // checked here before anything starts, a usage error (exit 2).
        protocol::validate_run_id(id).map_err(|e| usage(e.to_string()))?;
        return Ok(id.to_string());
    }
    if let Some(job) = slurm_job_id.filter(|j| protocol::validate_run_id(j).is_ok()) {
        if !out.join(job).exists() {
            return Ok(job.to_string());
        }
        for k in 2..10_000 {
            let id = format!("{job}-{k}");
            if protocol::validate_run_id(&id).is_err() {
                break;
            }
            if !out.join(&id).exists() {
                return Ok(id);
            }
        }
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(format!("{}-{}", utc_stamp(secs), random_suffix()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(launcher: LauncherKind, np: u32, placement: Placement) -> LaunchSpec {
        LaunchSpec {
            launcher,
            np,
            placement,
            worker: PathBuf::from("/opt/w/mfubench-worker"),
            worker_args: mfubench_core::job::WorkerJob::new("/c.toml", "results").to_args()[..2]
                .to_vec(),
            extra: vec![],
            as_root: false,
            local_cores: Some(2),
            in_slurm: false,
            forward_env: vec![],
        }
    }

    #[test]
    fn hosts_parse_and_slots() {
        let h = parse_hosts("a:8,b:8,c").unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(Placement::Hosts(h).slots(), Some(17));
        assert!(parse_hosts("a:0").is_err());
        assert!(parse_hosts("a,,b").is_err());
        assert!(parse_hosts(":4").is_err());
        // Slurm hostlists, with the slots applying to every host of a range.
        let h = parse_hosts("gpu-node-[01-02]:8,login,n[1,3]:2").unwrap();
        let names: Vec<(&str, Option<u32>)> =
            h.iter().map(|h| (h.host.as_str(), h.slots)).collect();
        assert_eq!(
            names,
            [
                ("gpu-node-01", Some(8)),
                ("gpu-node-02", Some(8)),
                ("login", Some(1)),
                ("n1", Some(2)),
                ("n3", Some(2))
            ]
        );
        assert!(parse_hosts("n[1-2:4").is_err());
        assert!(parse_hosts("n[2-1]:4").is_err());
        let argv = build_argv(&spec(
            LauncherKind::Mpirun,
            4,
            Placement::Hosts(parse_hosts("n[1-2]:2").unwrap()),
        ))
        .unwrap();
        assert!(shell_join(&argv).contains("--host n1:2,n2:2 "));
        let argv = build_argv(&spec(
            LauncherKind::Mpirun,
            4,
            Placement::HostfileExpanded(
                "hf".into(),
                parse_hostfile("n[1-2] slots=2\n", "hf").unwrap().0,
            ),
        ))
        .unwrap();
        assert!(shell_join(&argv).contains("--host n1:2,n2:2 "), "{argv:?}");
    }

    #[test]
    fn huge_slot_counts_do_not_overflow() {
        let p = Placement::Hosts(parse_hosts("a:4294967295,b:2").unwrap());
        assert_eq!(p.slots(), Some(u32::MAX));
        assert!(build_argv(&spec(LauncherKind::Mpirun, 4, p)).is_ok());
    }

    #[test]
    fn rank_count_rules_in_order() {
        let hosts = Placement::Hosts(parse_hosts("a:2,b:3").unwrap());
        let c = |np, slurm, p: &Placement, cfg| choose_np(np, slurm, p, cfg).unwrap();
        assert_eq!(
            c(Some(4), Some("6"), &hosts, Some(2)),
            (4, RankRule::NpFlag)
        );
        assert_eq!(
            c(None, Some("6"), &hosts, Some(2)),
            (6, RankRule::SlurmNtasks)
        );
        assert_eq!(c(None, None, &hosts, Some(2)), (5, RankRule::HostsSlots));
        let hf = Placement::Hostfile(
            "hf".into(),
            parse_hostfile("a slots=8\nb slots=8\n", "hf").unwrap().0,
        );
        assert_eq!(c(None, None, &hf, Some(2)), (16, RankRule::HostfileSlots));
        let unknown = Placement::Hostfile("hf".into(), parse_hostfile("a\n", "hf").unwrap().0);
        assert_eq!(c(None, None, &unknown, Some(2)), (2, RankRule::ConfigRanks));
        assert_eq!(
            c(None, None, &Placement::Local, None),
            (1, RankRule::Default)
        );
        assert!(choose_np(Some(0), None, &hosts, None).is_err());
        assert!(choose_np(None, Some("x"), &hosts, None).is_err());
    }

    #[test]
    fn forwarded_env_allow_list() {
        let present = [
            "NCCL_IB_HCA",
            "CUDA_HOME",
            "UCX_TLS",
            "MFUBENCH_NCCL_LIB",
            "PATH",
            "LD_LIBRARY_PATH",
            "HOME",
            "OMPI_MCA_btl",
            "MY_VAR",
            "PATHX",
        ]
        .map(std::ffi::OsString::from);
        let v = forwarded_env(present.clone(), &["MY_VAR".to_string()]).unwrap();
        assert_eq!(
            v,
            [
                "CUDA_HOME",
                "LD_LIBRARY_PATH",
                "MFUBENCH_NCCL_LIB",
                "MY_VAR",
                "NCCL_IB_HCA",
                "PATH",
                "UCX_TLS"
            ]
        );
        assert!(forwarded_env(present.clone(), &["NOPE".to_string()]).is_err());
        assert!(forwarded_env(present, &["A=1".to_string()]).is_err());
        let mut s = spec(LauncherKind::Mpirun, 2, Placement::Local);
        s.forward_env = vec!["NCCL_IB_HCA".into(), "PATH".into()];
        let argv = build_argv(&s).unwrap();
        assert!(shell_join(&argv).contains("-x MFUBENCH_LAUNCH_JSON -x NCCL_IB_HCA -x PATH "));
    }

    #[test]
    fn hostfile_parse() {
        let (h, ranges) =
            parse_hostfile("# c\nn1 slots=4\n\nn2 slots=2 max_slots=4 # x\n", "hf").unwrap();
        assert!(!ranges);
        assert_eq!(Placement::Hostfile("hf".into(), h).slots(), Some(6));
        let (h, _) = parse_hostfile("n1\nn2 slots=2\n", "hf").unwrap();
        assert_eq!(Placement::Hostfile("hf".into(), h).slots(), None);
        assert!(parse_hostfile("n1 slots=x\n", "hf").is_err());
        assert!(parse_hostfile("# nothing\n", "hf").is_err());
        let (h, ranges) = parse_hostfile("gpu[01-02] slots=8\nlogin slots=1\n", "hf").unwrap();
        assert!(ranges);
        let names: Vec<&str> = h.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["gpu01", "gpu02", "login"]);
        assert_eq!(Placement::Hostfile("hf".into(), h).slots(), Some(17));
        assert!(
            parse_hostfile("gpu[01-02]\n", "hf").is_err(),
            "a range needs slots="
        );
        assert!(parse_hostfile("gpu[02-01] slots=1\n", "hf").is_err());
    }

    #[test]
    fn np_over_slots_is_an_error_unless_asked() {
        let p = Placement::Hosts(parse_hosts("a:1,b:1").unwrap());
        let e = build_argv(&spec(LauncherKind::Mpirun, 3, p.clone())).unwrap_err();
        assert!(e.to_string().contains("larger than the 2 slot"), "{e}");
        let mut s = spec(LauncherKind::Mpirun, 3, p);
        s.extra = vec!["--oversubscribe".into()];
        let v = build_argv(&s).unwrap();
        assert!(v
            .windows(3)
            .any(|w| w == ["--mca", "mpi_yield_when_idle", "1"]));
    }

    #[test]
    fn local_oversubscribes_beyond_cores() {
        let v = build_argv(&spec(LauncherKind::Mpirun, 4, Placement::Local)).unwrap();
        assert!(v.contains(&"--oversubscribe".to_string()));
        let v = build_argv(&spec(LauncherKind::Mpirun, 2, Placement::Local)).unwrap();
        assert!(!v.contains(&"--oversubscribe".to_string()));
        assert!(!v.contains(&"mpi_yield_when_idle".to_string()));
    }

    #[test]
    fn srun_refuses_host_lists() {
        let p = Placement::Hosts(parse_hosts("a:1").unwrap());
        assert!(build_argv(&spec(LauncherKind::Srun, 1, p)).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b-c.d"), "a/b-c.d");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(utc_stamp(1_709_210_096), "20240229-123456");
    }

    #[test]
    fn run_ids() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(choose_run_id(None, Some("42"), d.path()).unwrap(), "42");
        std::fs::create_dir(d.path().join("42")).unwrap();
        assert_eq!(choose_run_id(None, Some("42"), d.path()).unwrap(), "42-2");
        let t = choose_run_id(None, None, d.path()).unwrap();
        assert_eq!(t.len(), "20240229-123456-abcd".len(), "{t}");
        assert!(choose_run_id(Some("../x"), None, d.path()).is_err());
        // Core's rule, not a launcher's own: what the ranks refuse is
        // refused here, before MPI starts.
        let long = "x".repeat(129);
        for bad in ["a/b", "a+b", "-x", ".x", "", long.as_str()] {
            let e = choose_run_id(Some(bad), None, d.path()).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), 2, "{bad}");
            assert!(e.to_string().starts_with("--run-id "), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        let max = "x".repeat(128);
        assert_eq!(choose_run_id(Some(&max), None, d.path()).unwrap(), max);
        // A Slurm job id that is no run id falls back to a timestamp.
        let t = choose_run_id(None, Some("a+b"), d.path()).unwrap();
        assert!(t.starts_with("20"), "{t}");
        assert!(protocol::validate_run_id(&t).is_ok(), "{t}");
    }

    #[test]
    fn hostile_host_names_are_refused() {
        for bad in [
            "-oProxyCommand=touch /tmp/x",
            "a;b",
            "a b",
            "$(id)",
            "host\u{1b}[31m",
            ".hidden",
            "",
        ] {
            assert!(check_host_name(bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(5000);
        let e = check_host_name(&long).unwrap_err();
        assert!(e.contains("5000 characters") && e.len() < 200, "{e}");
        for good in ["node1", "gpu-node-01.cluster", "10.0.0.1", "fe80::1", "n_1"] {
            assert!(check_host_name(good).is_ok(), "{good}");
        }
        let e = parse_hosts("-oProxyCommand=x:2").unwrap_err().to_string();
        assert!(e.starts_with("--hosts: host name"), "{e}");
        assert!(parse_hostfile("ok slots=2\n-x slots=1\n", "hf")
            .unwrap_err()
            .to_string()
            .starts_with("hf:2: "));
    }
}
