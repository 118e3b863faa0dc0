//! How an integration test ends a child it started (mpirun, mfubench, a
//! script) without hanging. Not a crate: included like `skip.rs`, with
//! `#[path = "…/crates/test-support/reap.rs"] mod reap;`.
//!
//! Why: `child.wait()` after a SIGTERM has no deadline. A CI run once spent
//! an hour in it: mpirun, sent SIGTERM while one rank sat in a barrier and
//! the other in `MPI_Finalize`, never exited, and the whole job ran past
//! its 90 minutes. So every stop here is bounded: the polite signal, a
//! grace period, then SIGKILL to the child *and every descendant* (ranks
//! that outlive a killed mpirun would otherwise keep the test's pipes and
//! cores).
#![allow(dead_code)] // each test binary uses a subset

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Every live descendant of `pid` (children, grandchildren, …), read from
/// `/proc/*/stat`; empty where there is no /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid …": comm may hold spaces and parens.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for &(p, pp) in &parent_of {
            if pp == parent && !found.contains(&p) {
                found.push(p);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// Sends `sig` to `pid`; the process may be gone already.
fn send(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// SIGKILLs `child` and every descendant of it, then reaps `child`.
/// Bounded: SIGKILL cannot be caught, so the wait returns.
pub fn kill_tree(child: &mut Child) -> Option<ExitStatus> {
    // Descendants first: once the child is gone they are orphans that
    // /proc no longer ties to it.
    let tree = descendants(child.id());
    send(child.id(), libc::SIGSTOP);
    for p in descendants(child.id()).into_iter().chain(tree) {
        send(p, libc::SIGKILL);
    }
    send(child.id(), libc::SIGKILL);
    child.wait().ok()
}

/// Sends `sig` to `child` (SIGTERM: mpirun forwards it to its ranks), waits
/// up to `grace` for it to exit, then [`kill_tree`]s it. Returns the exit
/// status and whether the grace period was enough.
pub fn stop_within(child: &mut Child, sig: i32, grace: Duration) -> (Option<ExitStatus>, bool) {
    if let Ok(Some(s)) = child.try_wait() {
        return (Some(s), true);
    }
    send(child.id(), sig);
    let t = Instant::now();
    while t.elapsed() < grace {
        if let Ok(Some(s)) = child.try_wait() {
            return (Some(s), true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (kill_tree(child), false)
}

/// Waits up to `limit` for `child` to exit by itself; past it, SIGTERM,
/// 10 s of grace, then [`kill_tree`]. `None` when it had to be stopped.
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if t.elapsed() > limit {
            stop_within(child, libc::SIGTERM, Duration::from_secs(10));
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILLs a child's tree if it still runs `limit` after [`Deadline::arm`]
/// (for a test that blocks reading the child's pipes, where no loop could
/// check a clock); dropping the guard disarms it. The test's own wait then
/// returns, and its asserts say what went wrong.
pub struct Deadline {
    disarmed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Deadline {
    /// Arms the deadline for the process `pid` (a child of this test, not
    /// yet reaped, so its pid cannot be reused meanwhile).
    pub fn arm(pid: u32, limit: Duration) -> Deadline {
        use std::sync::atomic::Ordering;
        let disarmed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = disarmed.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            while t.elapsed() < limit {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !flag.load(Ordering::Relaxed) {
                eprintln!("test deadline: pid {pid} still ran after {limit:?}; killing its tree");
                for p in descendants(pid) {
                    send(p, libc::SIGKILL);
                }
                send(pid, libc::SIGKILL);
            }
        });
        Deadline { disarmed }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.disarmed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Makes the child started by `cmd` die (SIGKILL) when the thread that
/// starts it ends, however the test process ends: a busy loop a test starts
/// must not outlive a killed test run (one did, and slowed the next CI run
/// by a core for half an hour).
pub fn die_with_parent(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
    // memory of the parent; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
