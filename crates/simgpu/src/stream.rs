//! Streams and events.
//!
//! A stream is an ordered queue run by a thread of its own. A task runs when
//! every task queued before it on its stream has finished; an event record
//! completes when the tasks before it have, with a timestamp; a stream wait
//! blocks the waiting stream until the event's most recent record (at the
//! time of the wait call) completes, and is a no-op for an event never
//! recorded, as `cuStreamWaitEvent` documents. The legacy default stream is
//! one more stream per device here: the backend uses only non-blocking
//! streams, so the implicit legacy synchronisation is not simulated.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::device::Access;
use crate::race::{self, Actor, VClock};

/// What a stream runs.
pub type Work = Box<dyn FnOnce() + Send + 'static>;

enum Task {
    Work(Work),
    Record(Arc<Event>, u64),
    Wait(Arc<Event>, u64),
}

#[derive(Default)]
struct Queue {
    tasks: VecDeque<(String, Task)>,
    enqueued: u64,
    done: u64,
    shutdown: bool,
    running: Option<String>,
}

/// A stream.
pub struct Stream {
    /// Its race-checker actor.
    pub actor: Actor,
    /// Global device index.
    pub device: usize,
    /// Priority (lower is higher, as in CUDA).
    pub priority: i32,
    q: Mutex<Queue>,
    cv: Condvar,
}

fn registry() -> &'static Mutex<Vec<Arc<Stream>>> {
    static R: OnceLock<Mutex<Vec<Arc<Stream>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

impl Stream {
    /// A new stream on `device`, with its thread.
    pub fn new(device: usize, priority: i32) -> Arc<Stream> {
        let n = registry().lock().unwrap().len();
        let actor = race::new_actor(format!(
            "stream #{n} (device {device}, priority {priority})"
        ));
        let s = Arc::new(Stream {
            actor,
            device,
            priority,
            q: Mutex::new(Queue::default()),
            cv: Condvar::new(),
        });
        registry().lock().unwrap().push(s.clone());
        let run = s.clone();
        std::thread::Builder::new()
            .name(format!("simgpu-stream-{actor}"))
            .spawn(move || run.run())
            .expect("simgpu: cannot start a stream thread");
        s
    }

    /// The streams of `device`.
    pub fn of_device(device: usize) -> Vec<Arc<Stream>> {
        registry()
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.device == device)
            .cloned()
            .collect()
    }

    fn run(self: Arc<Self>) {
        let mut rng = crate::env::seed()
            .map(|s| s ^ (self.actor as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        loop {
            let (name, task) = {
                let mut q = self.q.lock().unwrap();
                loop {
                    if let Some(t) = q.tasks.pop_front() {
                        q.running = Some(t.0.clone());
                        break t;
                    }
                    if q.shutdown {
                        return;
                    }
                    q = self.cv.wait(q).unwrap();
                }
            };
            if let Some(r) = rng.as_mut() {
                *r ^= *r << 13;
                *r ^= *r >> 7;
                *r ^= *r << 17;
                std::thread::sleep(Duration::from_micros(*r % 300));
            }
            let _ = name;
            match task {
                Task::Work(w) => w(),
                Task::Record(ev, gen) => ev.complete(gen),
                Task::Wait(ev, gen) => ev.wait_for(gen),
            }
            let mut q = self.q.lock().unwrap();
            q.done += 1;
            q.running = None;
            self.cv.notify_all();
        }
    }

    fn push(&self, name: String, task: Task) -> u64 {
        let mut q = self.q.lock().unwrap();
        q.tasks.push_back((name, task));
        q.enqueued += 1;
        self.cv.notify_all();
        q.enqueued
    }

    /// Queues `work` named `name`, which touches `accesses` (each checked
    /// against live allocations and by the race checker now).
    pub fn enqueue(&self, name: &str, accesses: &[Access], work: Work) {
        for a in accesses {
            crate::device::check_range(name, a.what, a.ptr, a.len);
        }
        race::enqueue(self.actor, name, accesses);
        self.push(name.to_string(), Task::Work(work));
    }

    /// Records `ev` on this stream.
    pub fn record(&self, ev: &Arc<Event>) {
        let vc = race::snapshot(self.actor);
        let gen = ev.arm(vc);
        self.push("cuEventRecord".into(), Task::Record(ev.clone(), gen));
    }

    /// Makes this stream wait for `ev`'s latest record.
    pub fn wait(&self, ev: &Arc<Event>) {
        let (gen, vc) = {
            let st = ev.m.lock().unwrap();
            (st.recorded, st.vc.clone())
        };
        if gen == 0 {
            return; // never recorded: nothing to wait for
        }
        race::stream_waits(self.actor, &vc);
        self.push("cuStreamWaitEvent".into(), Task::Wait(ev.clone(), gen));
    }

    /// Whether everything queued so far has run.
    pub fn idle(&self) -> bool {
        let q = self.q.lock().unwrap();
        q.done == q.enqueued
    }

    /// Blocks until everything queued so far has run.
    pub fn synchronize(&self) {
        let vc = race::snapshot(self.actor);
        let mut q = self.q.lock().unwrap();
        let target = q.enqueued;
        while q.done < target {
            q = self.cv.wait(q).unwrap();
        }
        drop(q);
        race::host_waits(&vc);
    }

    /// What the stream is running now, if anything (for hang messages).
    pub fn running(&self) -> Option<String> {
        self.q.lock().unwrap().running.clone()
    }

    /// Ends the stream's thread once its queue is empty.
    pub fn destroy(self: &Arc<Self>) {
        {
            let mut q = self.q.lock().unwrap();
            q.shutdown = true;
            self.cv.notify_all();
        }
        race::retire_actor(self.actor);
        registry().lock().unwrap().retain(|s| !Arc::ptr_eq(s, self));
    }
}

#[derive(Default)]
struct EventState {
    recorded: u64,
    completed: u64,
    at: Option<Instant>,
    vc: VClock,
}

/// An event.
pub struct Event {
    /// Whether it keeps timestamps (`CU_EVENT_DISABLE_TIMING` not set).
    pub timing: bool,
    m: Mutex<EventState>,
    cv: Condvar,
}

impl Event {
    /// A new event.
    pub fn new(timing: bool) -> Arc<Event> {
        Arc::new(Event {
            timing,
            m: Mutex::new(EventState::default()),
            cv: Condvar::new(),
        })
    }

    fn arm(&self, vc: VClock) -> u64 {
        let mut st = self.m.lock().unwrap();
        st.recorded += 1;
        st.vc = vc;
        st.recorded
    }

    fn complete(&self, gen: u64) {
        let mut st = self.m.lock().unwrap();
        if gen > st.completed {
            st.completed = gen;
            st.at = Some(Instant::now());
        }
        self.cv.notify_all();
    }

    fn wait_for(&self, gen: u64) {
        let mut st = self.m.lock().unwrap();
        while st.completed < gen {
            st = self.cv.wait(st).unwrap();
        }
    }

    /// Whether its latest record has completed (true if never recorded).
    /// A true answer orders the host after the record (race checker).
    pub fn query(&self) -> bool {
        let st = self.m.lock().unwrap();
        let done = st.completed >= st.recorded;
        if done {
            let vc = st.vc.clone();
            drop(st);
            race::host_waits(&vc);
        }
        done
    }

    /// Blocks until its latest record completes.
    pub fn synchronize(&self) {
        let (gen, vc) = {
            let st = self.m.lock().unwrap();
            (st.recorded, st.vc.clone())
        };
        self.wait_for(gen);
        race::host_waits(&vc);
    }

    /// When its latest record completed; None if it has not (or never
    /// was recorded).
    pub fn time(&self) -> Option<Instant> {
        let st = self.m.lock().unwrap();
        (st.recorded > 0 && st.completed >= st.recorded)
            .then_some(st.at)
            .flatten()
    }
}

thread_local! {
    static CURRENT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Makes global device `d` current on this thread (`cuCtxSetCurrent`).
pub fn set_current_device(d: Option<usize>) {
    CURRENT.with(|c| c.set(d));
}

/// The current thread's device: the one made current, else the first
/// visible one.
pub fn current_device() -> usize {
    CURRENT.with(|c| c.get()).unwrap_or_else(|| {
        crate::device::visible_devices()
            .first()
            .copied()
            .unwrap_or(0)
    })
}

/// The legacy default stream of `device`.
pub fn default_stream(device: usize) -> Arc<Stream> {
    type Defaults = Mutex<Vec<(usize, Arc<Stream>)>>;
    static D: OnceLock<Defaults> = OnceLock::new();
    let mut d = D.get_or_init(Default::default).lock().unwrap();
    if let Some((_, s)) = d.iter().find(|(x, _)| *x == device) {
        return s.clone();
    }
    let s = Stream::new(device, 0);
    d.push((device, s.clone()));
    s
}

/// The stream behind a `CUstream` / `cudaStream_t` handle: null (and the
/// legacy / per-thread handles 0x1, 0x2) is the current device's default
/// stream.
pub fn from_handle(h: *mut std::ffi::c_void) -> Arc<Stream> {
    if (h as usize) <= 2 {
        return default_stream(current_device());
    }
    let p = h as *const Stream;
    // SAFETY: non-null handles are made by `into_handle` (Arc::into_raw) and
    // stay valid until cuStreamDestroy; the count is raised first so the
    // Arc made here owns a reference of its own.
    unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    }
}

/// The handle of a new stream (released by [`release_handle`]).
pub fn into_handle(s: Arc<Stream>) -> *mut std::ffi::c_void {
    Arc::into_raw(s) as *mut std::ffi::c_void
}

/// Gives back the reference a handle held.
///
/// # Safety
/// `h` was made by [`into_handle`] and is not used again.
pub unsafe fn release_handle(h: *mut std::ffi::c_void) -> Arc<Stream> {
    // SAFETY: the caller's contract.
    unsafe { Arc::from_raw(h as *const Stream) }
}
