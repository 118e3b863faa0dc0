//! A small NCCL binding of our own over `libloading`.
//!
//! Why not cudarc's: its loader tries only `libnccl.so` (runtime-only
//! installs ship `libnccl.so.2`), its `Comm` is `!Send`, hides the raw
//! handle and aborts on drop. This one loads `libnccl.so.2` first (see
//! [`super::discovery`]), binds only GetVersion, GetUniqueId, CommInitRank,
//! CommSplit (optional: NCCL ≥ 2.18), CommCount, CommUserRank, AllReduce,
//! AllGather, ReduceScatter, Send, Recv, GroupStart/End,
//! CommGetAsyncError, CommAbort, CommDestroy and GetErrorString, and lets
//! the watchdog abort a hung communicator.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mfubench_core::config::Dtype;

use super::discovery::{self, DiscoveryError};

/// Bytes of `ncclUniqueId`.
pub const UNIQUE_ID_BYTES: usize = 128;

/// `ncclUniqueId`: passed by value to `ncclCommInitRank`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UniqueId {
    /// The opaque bytes (broadcast from rank 0 over MPI).
    pub internal: [c_char; UNIQUE_ID_BYTES],
}

impl UniqueId {
    /// The id as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.internal.iter().map(|c| *c as u8).collect()
    }

    /// An id from 128 broadcast bytes.
    pub fn from_bytes(b: &[u8]) -> Option<UniqueId> {
        if b.len() != UNIQUE_ID_BYTES {
            return None;
        }
        let mut internal = [0 as c_char; UNIQUE_ID_BYTES];
        for (d, s) in internal.iter_mut().zip(b) {
            *d = *s as c_char;
        }
        Some(UniqueId { internal })
    }
}

/// `ncclResult_t` values.
pub mod result {
    /// `ncclSuccess`.
    pub const SUCCESS: i32 = 0;
    /// `ncclInProgress` (non-blocking communicators only).
    pub const IN_PROGRESS: i32 = 7;
}

/// `ncclDataType_t` of a gradient dtype.
pub fn nccl_dtype(d: Dtype) -> Option<i32> {
    match d {
        Dtype::Fp16 => Some(6),
        Dtype::F32 => Some(7),
        Dtype::F64 => Some(8),
        Dtype::Bf16 => Some(9),
        Dtype::Tf32 | Dtype::Fp8 => None,
    }
}

/// `ncclSum`.
pub const SUM: i32 = 0;

/// `NCCL_SPLIT_NOCOLOR`: the colour of a rank that joins no new
/// communicator in `ncclCommSplit`.
pub const SPLIT_NOCOLOR: c_int = -1;

/// The first NCCL release with `ncclCommSplit` (2.18.1).
pub const SPLIT_MIN_VERSION: i32 = 21801;

/// An NCCL call failed.
#[derive(Debug, thiserror::Error)]
#[error("NCCL {call} failed: {text} (ncclResult_t {code})")]
pub struct NcclError {
    /// The function.
    pub call: &'static str,
    /// `ncclResult_t`.
    pub code: i32,
    /// `ncclGetErrorString`.
    pub text: String,
}

type Comm = *mut c_void;

/// The NCCL entry points.
pub struct NcclLib {
    get_version: unsafe extern "C" fn(*mut c_int) -> i32,
    get_unique_id: unsafe extern "C" fn(*mut UniqueId) -> i32,
    comm_init_rank: unsafe extern "C" fn(*mut Comm, c_int, UniqueId, c_int) -> i32,
    comm_split: Option<unsafe extern "C" fn(Comm, c_int, c_int, *mut Comm, *mut c_void) -> i32>,
    comm_count: unsafe extern "C" fn(Comm, *mut c_int) -> i32,
    comm_user_rank: unsafe extern "C" fn(Comm, *mut c_int) -> i32,
    all_reduce:
        unsafe extern "C" fn(*const c_void, *mut c_void, usize, i32, i32, Comm, *mut c_void) -> i32,
    all_gather:
        unsafe extern "C" fn(*const c_void, *mut c_void, usize, i32, Comm, *mut c_void) -> i32,
    reduce_scatter:
        unsafe extern "C" fn(*const c_void, *mut c_void, usize, i32, i32, Comm, *mut c_void) -> i32,
    send: unsafe extern "C" fn(*const c_void, usize, i32, c_int, Comm, *mut c_void) -> i32,
    recv: unsafe extern "C" fn(*mut c_void, usize, i32, c_int, Comm, *mut c_void) -> i32,
    group_start: unsafe extern "C" fn() -> i32,
    group_end: unsafe extern "C" fn() -> i32,
    get_async_error: unsafe extern "C" fn(Comm, *mut i32) -> i32,
    comm_abort: unsafe extern "C" fn(Comm) -> i32,
    comm_destroy: unsafe extern "C" fn(Comm) -> i32,
    error_string: unsafe extern "C" fn(i32) -> *const c_char,
    /// What was loaded (path or soname).
    pub what: String,
    // Never unloaded (as cudarc keeps its libraries in statics): NCCL starts
    // process-wide threads that are never joined (e.g. the per-port IB
    // async-event thread, detached in net_ib), and dlclose would unmap the
    // code they run.
    _lib: std::mem::ManuallyDrop<libloading::Library>,
}

impl NcclLib {
    /// Finds and opens NCCL.
    pub fn open() -> Result<NcclLib, DiscoveryError> {
        Self::bind(discovery::open(&discovery::NCCL, None)?)
    }

    /// Opens the NCCL build in one file (tests use a stand-in library).
    pub fn open_file(path: &std::path::Path) -> Result<NcclLib, DiscoveryError> {
        let cand = [discovery::Candidate::Path(path.to_path_buf())];
        Self::bind(discovery::open_first(&discovery::NCCL, &cand)?)
    }

    /// Looks up every entry point in an opened library.
    fn bind(o: discovery::Opened) -> Result<NcclLib, DiscoveryError> {
        // SAFETY: each symbol is cast to its signature in nccl.h (stable
        // since NCCL 2.x) and used only while the library lives (stored in
        // the same struct, never unloaded). ncclCommSplit is absent before
        // NCCL 2.18, which `NcclComm::split` reports by version.
        unsafe {
            Ok(NcclLib {
                get_version: o.symbol("ncclGetVersion")?,
                get_unique_id: o.symbol("ncclGetUniqueId")?,
                comm_init_rank: o.symbol("ncclCommInitRank")?,
                comm_split: o.optional("ncclCommSplit"),
                comm_count: o.symbol("ncclCommCount")?,
                comm_user_rank: o.symbol("ncclCommUserRank")?,
                all_reduce: o.symbol("ncclAllReduce")?,
                all_gather: o.symbol("ncclAllGather")?,
                reduce_scatter: o.symbol("ncclReduceScatter")?,
                send: o.symbol("ncclSend")?,
                recv: o.symbol("ncclRecv")?,
                group_start: o.symbol("ncclGroupStart")?,
                group_end: o.symbol("ncclGroupEnd")?,
                get_async_error: o.symbol("ncclCommGetAsyncError")?,
                comm_abort: o.symbol("ncclCommAbort")?,
                comm_destroy: o.symbol("ncclCommDestroy")?,
                error_string: o.symbol("ncclGetErrorString")?,
                what: o.what.clone(),
                _lib: std::mem::ManuallyDrop::new(o.lib),
            })
        }
    }

    fn check(&self, call: &'static str, code: i32) -> Result<(), NcclError> {
        if code == result::SUCCESS {
            return Ok(());
        }
        Err(NcclError {
            call,
            code,
            text: self.error_text(code),
        })
    }

    /// `ncclGetErrorString`.
    pub fn error_text(&self, code: i32) -> String {
        // SAFETY: returns a static NUL-terminated string (or null) for any
        // value.
        let p = unsafe { (self.error_string)(code) };
        if p.is_null() {
            return format!("error {code}");
        }
        // SAFETY: non-null, NUL-terminated, static.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }

    /// `ncclGetVersion`, e.g. 22105 for 2.21.5.
    pub fn version(&self) -> Result<i32, NcclError> {
        let mut v = 0;
        // SAFETY: valid out-pointer.
        self.check("ncclGetVersion", unsafe { (self.get_version)(&mut v) })?;
        Ok(v)
    }

    /// `ncclGetUniqueId` (rank 0).
    pub fn unique_id(&self) -> Result<UniqueId, NcclError> {
        let mut id = UniqueId {
            internal: [0; UNIQUE_ID_BYTES],
        };
        // SAFETY: valid out-pointer to a 128-byte ncclUniqueId.
        self.check("ncclGetUniqueId", unsafe { (self.get_unique_id)(&mut id) })?;
        Ok(id)
    }

    /// Why this NCCL cannot split communicators (it predates
    /// `ncclCommSplit`, NCCL 2.18), naming both versions; None when it can.
    pub fn split_missing(&self) -> Option<String> {
        if self.comm_split.is_some() {
            return None;
        }
        let found = self
            .version()
            .map(version_string)
            .unwrap_or_else(|_| "of unknown version".into());
        Some(format!(
            "{} is NCCL {found}, which has no ncclCommSplit; splitting a communicator needs NCCL {} or newer",
            self.what,
            version_string(SPLIT_MIN_VERSION)
        ))
    }

    /// `ncclGroupStart`.
    pub fn group_start(&self) -> Result<(), NcclError> {
        // SAFETY: no arguments.
        self.check("ncclGroupStart", unsafe { (self.group_start)() })
    }

    /// `ncclGroupEnd`.
    pub fn group_end(&self) -> Result<(), NcclError> {
        // SAFETY: no arguments.
        self.check("ncclGroupEnd", unsafe { (self.group_end)() })
    }
}

/// "2.21.5" from `ncclGetVersion`'s integer (2.9+: major·10000 + minor·100
/// + patch; before: major·1000 + minor·100 + patch).
pub fn version_string(v: i32) -> String {
    if v >= 10000 {
        format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100)
    }
}

/// How a communicator is let go when its owner drops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// It was aborted already: nothing is left to free.
    Nothing,
    /// `ncclCommDestroy`. Collective in recent NCCL (it finalizes the
    /// communicator, which waits for the peers' proxies), so only when
    /// every rank is known to be tearing down too.
    Destroy,
    /// `ncclCommAbort`: frees this rank's resources without waiting for
    /// anyone.
    Abort,
}

/// The teardown of a communicator. `finished`: the owner declared, after
/// the run's last collective, that every rank ends normally
/// ([`NcclComm::mark_finished`]); anything else is an error path (a rank
/// leaving early, a panic unwinding, a failed step), where destroying would
/// stall this rank, and its node-mates behind it, on peers that may never
/// come. `async_error`: `ncclCommGetAsyncError` reports a failure.
pub fn teardown(aborted: bool, finished: bool, async_error: bool) -> Teardown {
    if aborted {
        Teardown::Nothing
    } else if finished && !async_error {
        Teardown::Destroy
    } else {
        Teardown::Abort
    }
}

/// The exit code of a rank the init watchdog ends (run failed, as the
/// schedule's watchdog): [`mfubench_core::protocol::exit::RUN_FAILED`].
pub const WATCHDOG_EXIT_CODE: i32 = mfubench_core::protocol::exit::RUN_FAILED as i32;

/// How long communicator creation may take by default before
/// [`InitWatchdog`] ends the rank: NCCL's bootstrap on thousands of ranks
/// takes tens of seconds; a rank that never arrives would block forever.
pub const INIT_LIMIT: Duration = Duration::from_secs(300);

/// The init watchdog is the worker's generic one.
pub use crate::watchdog::Watchdog as InitWatchdog;

/// A communicator. Dropped, it is destroyed only after
/// [`NcclComm::mark_finished`] and without a pending error; otherwise
/// aborted ([`teardown`]).
pub struct NcclComm {
    lib: Arc<NcclLib>,
    raw: Comm,
    rank: usize,
    size: usize,
    aborted: AtomicBool,
    finished: AtomicBool,
}

// SAFETY: an NCCL communicator may be used from any thread (NCCL keeps no
// thread-local state per communicator); the owner (a backend or a group)
// issues its calls from one thread at a time, which is what NCCL requires
// of concurrent use. The flags are atomics.
unsafe impl Send for NcclComm {}
// SAFETY: as above.
unsafe impl Sync for NcclComm {}

impl NcclComm {
    /// `ncclCommInitRank`: collective over all `nranks` ranks; the device's
    /// context must be current on this thread.
    pub fn init_rank(
        lib: Arc<NcclLib>,
        nranks: usize,
        id: UniqueId,
        rank: usize,
    ) -> Result<NcclComm, NcclError> {
        let mut raw: Comm = std::ptr::null_mut();
        // SAFETY: valid out-pointer; `id` is passed by value as the C ABI
        // expects for the 128-byte struct.
        lib.check("ncclCommInitRank", unsafe {
            (lib.comm_init_rank)(&mut raw, nranks as c_int, id, rank as c_int)
        })?;
        Ok(NcclComm::wrap(lib, raw, rank, nranks))
    }

    fn wrap(lib: Arc<NcclLib>, raw: Comm, rank: usize, size: usize) -> NcclComm {
        NcclComm {
            lib,
            raw,
            rank,
            size,
            aborted: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        }
    }

    /// This rank in the communicator.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Ranks in the communicator.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An error for a call on an aborted communicator (never passed to
    /// NCCL: its handle is gone).
    fn live(&self, call: &'static str) -> Result<(), NcclError> {
        if self.aborted.load(Ordering::SeqCst) {
            return Err(NcclError {
                call,
                code: -1,
                text: "the communicator was aborted".into(),
            });
        }
        Ok(())
    }

    /// `ncclCommSplit`: collective over this communicator; the ranks with
    /// the same `color` form a new communicator ordered by `key`; `None`
    /// (`NCCL_SPLIT_NOCOLOR`) joins none and gets `Ok(None)`. The new
    /// communicator inherits this one's configuration. The device's
    /// context must be current on this thread.
    ///
    /// NCCL before 2.18 has no `ncclCommSplit`: the error names the
    /// version found and the one needed.
    pub fn split(&self, color: Option<u32>, key: u32) -> Result<Option<NcclComm>, NcclError> {
        self.live("ncclCommSplit")?;
        let Some(split) = self.lib.comm_split else {
            return Err(NcclError {
                call: "ncclCommSplit",
                code: -1,
                text: self.lib.split_missing().unwrap_or_default(),
            });
        };
        let bad = |what: &str, v: u32| NcclError {
            call: "ncclCommSplit",
            code: -1,
            text: format!("{what} {v} exceeds NCCL's int range"),
        };
        let color = match color {
            Some(c) => c_int::try_from(c).map_err(|_| bad("colour", c))?,
            None => SPLIT_NOCOLOR,
        };
        let key = c_int::try_from(key).map_err(|_| bad("key", key))?;
        let mut raw: Comm = std::ptr::null_mut();
        // SAFETY: live communicator, valid out-pointer; a null config makes
        // the new communicator inherit the parent's.
        self.lib.check("ncclCommSplit", unsafe {
            split(self.raw, color, key, &mut raw, std::ptr::null_mut())
        })?;
        if raw.is_null() {
            return Ok(None);
        }
        let (mut rank, mut size) = (0, 0);
        // SAFETY: the new live communicator, valid out-pointers.
        let counted = self.lib.check("ncclCommUserRank", unsafe {
            (self.lib.comm_user_rank)(raw, &mut rank)
        });
        // SAFETY: as above.
        let counted = counted.and_then(|_| {
            self.lib.check("ncclCommCount", unsafe {
                (self.lib.comm_count)(raw, &mut size)
            })
        });
        // Wrapped before the error is returned, so that a failure here
        // aborts the new communicator when it drops.
        let comm = NcclComm::wrap(
            self.lib.clone(),
            raw,
            rank.max(0) as usize,
            size.max(0) as usize,
        );
        counted?;
        Ok(Some(comm))
    }

    /// Enqueues a sum all-reduce of `count` elements of `dtype` on `stream`.
    ///
    /// # Safety
    /// `send` and `recv` must be device buffers of at least `count`
    /// elements of `dtype` in this communicator's device context, alive
    /// until the stream has run the operation; `stream` a live stream of
    /// that context.
    pub unsafe fn all_reduce_sum(
        &self,
        send: u64,
        recv: u64,
        count: usize,
        dtype: i32,
        stream: *mut c_void,
    ) -> Result<(), NcclError> {
        self.live("ncclAllReduce")?;
        self.lib.check(
            "ncclAllReduce",
            (self.lib.all_reduce)(
                send as *const c_void,
                recv as *mut c_void,
                count,
                dtype,
                SUM,
                self.raw,
                stream,
            ),
        )
    }

    /// Enqueues an all-gather on `stream`: `count_per_rank` elements of
    /// `dtype` from every rank, rank-major in `recv`.
    ///
    /// # Safety
    /// `send` holds `count_per_rank` and `recv` `size · count_per_rank`
    /// elements of `dtype` in this communicator's device context, alive
    /// until the stream has run the operation; `stream` a live stream of
    /// that context.
    pub unsafe fn all_gather(
        &self,
        send: u64,
        recv: u64,
        count_per_rank: usize,
        dtype: i32,
        stream: *mut c_void,
    ) -> Result<(), NcclError> {
        self.live("ncclAllGather")?;
        self.lib.check(
            "ncclAllGather",
            (self.lib.all_gather)(
                send as *const c_void,
                recv as *mut c_void,
                count_per_rank,
                dtype,
                self.raw,
                stream,
            ),
        )
    }

    /// Enqueues a sum reduce-scatter on `stream`: block `rank` (of
    /// `count_per_rank` elements) of the sum of every rank's `send` lands
    /// in this rank's `recv`.
    ///
    /// # Safety
    /// `send` holds `size · count_per_rank` and `recv` `count_per_rank`
    /// elements of `dtype`, as for [`NcclComm::all_gather`].
    pub unsafe fn reduce_scatter_sum(
        &self,
        send: u64,
        recv: u64,
        count_per_rank: usize,
        dtype: i32,
        stream: *mut c_void,
    ) -> Result<(), NcclError> {
        self.live("ncclReduceScatter")?;
        self.lib.check(
            "ncclReduceScatter",
            (self.lib.reduce_scatter)(
                send as *const c_void,
                recv as *mut c_void,
                count_per_rank,
                dtype,
                SUM,
                self.raw,
                stream,
            ),
        )
    }

    /// Enqueues, in one NCCL group (`ncclGroupStart`, `ncclSend`,
    /// `ncclRecv`, `ncclGroupEnd`), the exchange of `count` elements with
    /// `peer`: both directions at once, as `MPI_Sendrecv`. Without the
    /// group the two blocking halves would deadlock.
    ///
    /// # Safety
    /// `send` and `recv` hold `count` elements of `dtype`, as for
    /// [`NcclComm::all_gather`].
    pub unsafe fn send_recv(
        &self,
        peer: usize,
        send: u64,
        recv: u64,
        count: usize,
        dtype: i32,
        stream: *mut c_void,
    ) -> Result<(), NcclError> {
        self.live("ncclSend")?;
        if peer >= self.size {
            return Err(NcclError {
                call: "ncclSend",
                code: -1,
                text: format!("peer {peer} is not in a communicator of {}", self.size),
            });
        }
        self.lib.group_start()?;
        let sent = self.lib.check(
            "ncclSend",
            (self.lib.send)(
                send as *const c_void,
                count,
                dtype,
                peer as c_int,
                self.raw,
                stream,
            ),
        );
        let received = sent.and_then(|_| {
            self.lib.check(
                "ncclRecv",
                (self.lib.recv)(
                    recv as *mut c_void,
                    count,
                    dtype,
                    peer as c_int,
                    self.raw,
                    stream,
                ),
            )
        });
        // The group is closed on every path: an open group would swallow
        // the next collective.
        let ended = self.lib.group_end();
        received.and(ended)
    }

    /// Enqueues, in one NCCL group, an all-to-all with per-peer counts
    /// (the standard construction: an `ncclSend` and an `ncclRecv` per
    /// peer, self included, between `ncclGroupStart` and `ncclGroupEnd`).
    /// Block `p` of `send` (`counts[p]` elements of `elem_bytes` bytes,
    /// blocks back to back) goes to rank `p`; block `s` of `recv`
    /// (`recv_counts[s]` elements) comes from rank `s`. Zero counts post
    /// nothing.
    ///
    /// # Safety
    /// `send` and `recv` hold the sums of `counts` and `recv_counts`
    /// elements of `dtype`, as for [`NcclComm::all_gather`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn all_to_all_v(
        &self,
        send: u64,
        counts: &[usize],
        recv: u64,
        recv_counts: &[usize],
        elem_bytes: u64,
        dtype: i32,
        stream: *mut c_void,
    ) -> Result<(), NcclError> {
        self.live("ncclSend")?;
        if counts.len() != self.size || recv_counts.len() != self.size {
            return Err(NcclError {
                call: "ncclSend",
                code: -1,
                text: format!(
                    "{} send and {} receive counts for a communicator of {}",
                    counts.len(),
                    recv_counts.len(),
                    self.size
                ),
            });
        }
        self.lib.group_start()?;
        let mut posted = Ok(());
        let (mut s_at, mut r_at) = (0u64, 0u64);
        for peer in 0..self.size {
            let (sc, rc) = (counts[peer], recv_counts[peer]);
            if sc > 0 && posted.is_ok() {
                posted = self.lib.check(
                    "ncclSend",
                    (self.lib.send)(
                        (send + s_at) as *const c_void,
                        sc,
                        dtype,
                        peer as c_int,
                        self.raw,
                        stream,
                    ),
                );
            }
            if rc > 0 && posted.is_ok() {
                posted = self.lib.check(
                    "ncclRecv",
                    (self.lib.recv)(
                        (recv + r_at) as *mut c_void,
                        rc,
                        dtype,
                        peer as c_int,
                        self.raw,
                        stream,
                    ),
                );
            }
            s_at += sc as u64 * elem_bytes;
            r_at += rc as u64 * elem_bytes;
        }
        // The group is closed on every path: an open group would swallow
        // the next collective.
        let ended = self.lib.group_end();
        posted.and(ended)
    }

    /// `ncclCommGetAsyncError`: `Err` when the communicator has failed
    /// (a peer died, a network error).
    pub fn async_error(&self) -> Result<(), NcclError> {
        if self.aborted.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut e = 0;
        // SAFETY: live communicator, valid out-pointer.
        self.lib.check("ncclCommGetAsyncError", unsafe {
            (self.lib.get_async_error)(self.raw, &mut e)
        })?;
        if e == result::SUCCESS || e == result::IN_PROGRESS {
            Ok(())
        } else {
            Err(NcclError {
                call: "asynchronous operation",
                code: e,
                text: self.lib.error_text(e),
            })
        }
    }

    /// `ncclCommAbort`: stops every operation of the communicator (kernels
    /// spinning on a dead peer return) so that a watchdog can end the job.
    /// Idempotent.
    pub fn abort(&self) {
        if !self.aborted.swap(true, Ordering::SeqCst) {
            // SAFETY: live communicator, aborted once; afterwards it is
            // never used again (every entry point checks `aborted`).
            unsafe { (self.lib.comm_abort)(self.raw) };
        }
    }

    /// The library the communicator runs on.
    pub fn lib(&self) -> &NcclLib {
        &self.lib
    }

    /// Whether [`NcclComm::abort`] was called.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// Declares a normal end: every rank finished its collectives and
    /// tears down too, so dropping may use the collective
    /// `ncclCommDestroy`. Call it only after the run's last collective
    /// (e.g. after the final exit-code broadcast).
    pub fn mark_finished(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }

    /// Whether [`NcclComm::mark_finished`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        let (aborted, finished) = (self.is_aborted(), self.is_finished());
        // Asking for the error only matters (and is only safe) on a live,
        // finished communicator.
        let async_error = !aborted && finished && self.async_error().is_err();
        match teardown(aborted, finished, async_error) {
            Teardown::Nothing => {}
            Teardown::Abort => self.abort(),
            // SAFETY: live communicator, destroyed once; the owner
            // synchronised its streams before dropping it.
            Teardown::Destroy => unsafe {
                (self.lib.comm_destroy)(self.raw);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_id_round_trips_through_bytes() {
        let b: Vec<u8> = (0..128u32).map(|i| (i * 7 % 256) as u8).collect();
        let id = UniqueId::from_bytes(&b).unwrap();
        assert_eq!(id.to_bytes(), b);
        assert!(UniqueId::from_bytes(&b[..127]).is_none());
        assert_eq!(std::mem::size_of::<UniqueId>(), 128);
    }

    #[test]
    fn only_a_declared_normal_end_destroys_collectively() {
        // A rank leaving early (not finished) aborts, with or without an
        // error; a finished run with a failed peer aborts; only a finished,
        // healthy communicator is destroyed; an aborted one is left alone.
        assert_eq!(teardown(false, false, false), Teardown::Abort);
        assert_eq!(teardown(false, false, true), Teardown::Abort);
        assert_eq!(teardown(false, true, true), Teardown::Abort);
        assert_eq!(teardown(false, true, false), Teardown::Destroy);
        assert_eq!(teardown(true, false, false), Teardown::Nothing);
        assert_eq!(teardown(true, true, false), Teardown::Nothing);
    }

    #[test]
    fn a_disarmed_init_watchdog_lets_the_process_live() {
        // Returning before the limit disarms it (the firing path ends the
        // process: tests/comm_teardown.rs runs it in real MPI ranks).
        let t = std::time::Instant::now();
        let w = InitWatchdog::arm("test".into(), Duration::from_millis(200), 3);
        drop(w);
        std::thread::sleep(Duration::from_millis(300));
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn dtypes_and_versions() {
        assert_eq!(nccl_dtype(Dtype::Bf16), Some(9));
        assert_eq!(nccl_dtype(Dtype::Fp16), Some(6));
        assert_eq!(nccl_dtype(Dtype::F32), Some(7));
        assert_eq!(nccl_dtype(Dtype::Fp8), None);
        assert_eq!(version_string(22105), "2.21.5");
        assert_eq!(version_string(2708), "2.7.8");
    }
}
