//! A deadline for a blocking call that cannot be interrupted (a
//! collective of MPI or NCCL whose peer is stuck or gone): past its limit
//! the rank says what it waited for and exits, and mpirun/srun end the job.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Ends the process when a blocking collective step (communicator
/// creation: `ncclCommInitRank` returns only once every rank has called it,
/// and there is no communicator to abort yet; the gather of the rank
/// records) has not returned within its limit. The operation cannot be interrupted, so the rank writes one line
/// naming the step and leaves with `_exit(exit_code)`: no atexit handlers
/// that could block on the CUDA context the stuck call holds. mpirun and
/// srun then end the other ranks.
pub struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the clock for `what` (e.g. "rank 3: NCCL communicator
    /// init").
    pub fn arm(what: String, limit: Duration, exit_code: i32) -> Watchdog {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*flag;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, _) = cv
                .wait_timeout_while(guard, limit, |done| !*done)
                .unwrap_or_else(|e| e.into_inner());
            if !*guard {
                give_up(&what, limit, exit_code);
            }
        });
        Watchdog {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cv) = &*self.done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Says that `what` did not complete within `limit` (to the launcher and on
/// stderr) and ends the process with `exit_code`.
fn give_up(what: &str, limit: Duration, exit_code: i32) -> ! {
    crate::progress::aborting(&format!(
        "{what} did not complete within {:.0} s",
        limit.as_secs_f64()
    ));
    crate::say!(
        "mfubench-worker: watchdog: {what} did not complete within {:.0} s (another rank failed, hangs, or cannot be reached); ending this rank with exit {exit_code} so that the launcher stops the job",
        limit.as_secs_f64()
    );
    // SAFETY: _exit ends the process at once; it is async-signal-safe and
    // touches no state the stuck thread holds.
    unsafe { libc::_exit(exit_code) }
}

/// How often the [`deadline`] watcher looks at the armed deadline.
const DEADLINE_CHECK_EVERY: Duration = Duration::from_millis(200);

/// The blocking call under a [`deadline`] now, if any.
struct Armed {
    until: Instant,
    what: String,
    limit: Duration,
    exit_code: i32,
}

static ARMED: Mutex<Option<Armed>> = Mutex::new(None);
static WATCHER: OnceLock<bool> = OnceLock::new();

/// Puts the blocking calls made until the returned guard is dropped under
/// a deadline, as [`Watchdog`] does, for calls too many and too short for a
/// thread each (the acceptance suite's barriers and collectives, microseconds
/// apart): one watcher thread per process looks at the armed deadline every
/// [`DEADLINE_CHECK_EVERY`], so arming costs a lock and a store. One
/// deadline at a time (a new one replaces the armed one).
pub fn deadline(what: &str, limit: Duration, exit_code: i32) -> Deadline {
    let watching = *WATCHER.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("deadline".into())
            .spawn(|| loop {
                std::thread::sleep(DEADLINE_CHECK_EVERY);
                let armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(a) = armed.as_ref() {
                    if Instant::now() >= a.until {
                        give_up(&a.what, a.limit, a.exit_code);
                    }
                }
            });
        if let Err(e) = &spawned {
            crate::say!("mfubench-worker: cannot start the deadline thread ({e}): collectives of the acceptance suite run without a deadline");
        }
        spawned.is_ok()
    });
    if watching {
        // A limit past what Instant holds is no limit.
        if let Some(until) = Instant::now().checked_add(limit) {
            *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Armed {
                until,
                what: what.to_string(),
                limit,
                exit_code,
            });
        }
    }
    Deadline(())
}

/// Disarms the [`deadline`] when dropped.
pub struct Deadline(());

impl Drop for Deadline {
    fn drop(&mut self) {
        *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
