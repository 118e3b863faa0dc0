//! A deadline for a blocking call that cannot be interrupted (a
//! collective of MPI or NCCL whose peer is stuck or gone): past its limit
//! the rank says what it waited for and exits, and mpirun/srun end the job.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

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
                crate::progress::aborting(&format!(
                    "{what} did not complete within {:.0} s",
                    limit.as_secs_f64()
                ));
                crate::say!(
                    "mfubench-worker: watchdog: {what} did not complete within {:.0} s (another rank failed, hangs, or cannot be reached); ending this rank with exit {exit_code} so that the launcher stops the job",
                    limit.as_secs_f64()
                );
                // SAFETY: _exit ends the process at once; it is
                // async-signal-safe and touches no state the stuck thread holds.
                unsafe { libc::_exit(exit_code) };
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
