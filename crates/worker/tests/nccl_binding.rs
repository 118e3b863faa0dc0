//! Our NCCL binding (`cuda::nccl`) against a stand-in `libnccl.so.2`
//! compiled here from C: the real dynamic loader, the C calling convention
//! (the 128-byte `ncclUniqueId` passed by value), the symbol names, and
//! which teardown call each path makes. The stand-in records every
//! `ncclCommInitRank`, `ncclCommAbort` and `ncclCommDestroy` it receives,
//! and the arguments of every split, all-gather, reduce-scatter, send,
//! receive and group bracket.
//! Real NCCL needs a GPU (tests/cuda_gpu.rs).

use std::ffi::{c_char, c_int};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mfubench_worker::cuda::discovery::DiscoveryError;
use mfubench_worker::cuda::nccl::{version_string, NcclComm, NcclLib};

const FAKE_NCCL: &str = r#"
#include <stdio.h>
#include <string.h>
typedef struct { char internal[128]; } ncclUniqueId;
static char calls[4096];
static int async_error;
static int token;
static void note(const char *what) { strncat(calls, what, sizeof calls - strlen(calls) - 1); strncat(calls, " ", sizeof calls - strlen(calls) - 1); }
const char *fake_calls(void) { return calls; }
void fake_clear(void) { calls[0] = 0; }
void fake_set_async_error(int e) { async_error = e; }
#ifndef VERSION
#define VERSION 22703
#endif
static int split_token;
static char buf[256];
int ncclGetVersion(int *v) { *v = VERSION; return 0; }
int ncclGetUniqueId(ncclUniqueId *id) { for (int i = 0; i < 128; i++) id->internal[i] = (char)i; return 0; }
int ncclCommInitRank(void **comm, int n, ncclUniqueId id, int rank) {
    for (int i = 0; i < 128; i++) if (id.internal[i] != (char)i) return 4; /* ncclInvalidArgument */
    if (n != 1 || rank != 0) return 4;
    *comm = &token; note("init"); return 0;
}
int ncclAllReduce(const void *s, void *r, size_t c, int dt, int op, void *comm, void *st) { note("allreduce"); return 0; }
#ifndef NO_SPLIT
int ncclCommSplit(void *comm, int color, int key, void **newcomm, void *config) {
    if (comm != &token || config != NULL) return 4;
    snprintf(buf, sizeof buf, "split(%d,%d)", color, key); note(buf);
    *newcomm = color == -1 ? NULL : (void *)&split_token; return 0;
}
#endif
int ncclCommCount(void *comm, int *n) { *n = comm == &split_token ? 3 : 1; return 0; }
int ncclCommUserRank(void *comm, int *r) { *r = comm == &split_token ? 2 : 0; return 0; }
int ncclAllGather(const void *s, void *r, size_t c, int dt, void *comm, void *st) {
    snprintf(buf, sizeof buf, "allgather(%lx,%lx,%zu,%d,%lx)", (unsigned long)s, (unsigned long)r, c, dt, (unsigned long)st); note(buf); return 0;
}
int ncclReduceScatter(const void *s, void *r, size_t c, int dt, int op, void *comm, void *st) {
    snprintf(buf, sizeof buf, "reducescatter(%lx,%lx,%zu,%d,op%d,%lx)", (unsigned long)s, (unsigned long)r, c, dt, op, (unsigned long)st); note(buf); return 0;
}
int ncclSend(const void *s, size_t c, int dt, int peer, void *comm, void *st) {
    snprintf(buf, sizeof buf, "send(%lx,%zu,%d,peer%d)", (unsigned long)s, c, dt, peer); note(buf);
    return c == 13 ? 2 : 0; /* ncclSystemError on an unlucky count */
}
int ncclRecv(void *r, size_t c, int dt, int peer, void *comm, void *st) {
    snprintf(buf, sizeof buf, "recv(%lx,%zu,%d,peer%d)", (unsigned long)r, c, dt, peer); note(buf); return 0;
}
int ncclGroupStart(void) { note("group_start"); return 0; }
int ncclGroupEnd(void) { note("group_end"); return 0; }
int ncclCommGetAsyncError(void *comm, int *e) { *e = async_error; return 0; }
#ifndef NO_ABORT
int ncclCommAbort(void *comm) { note("abort"); return 0; }
#endif
int ncclCommDestroy(void *comm) { note("destroy"); return 0; }
const char *ncclGetErrorString(int r) { return r == 4 ? "invalid argument" : "stand-in error"; }
"#;

/// Compiles the stand-in into `dir/name` with extra `cc` flags.
fn build(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join("fake_nccl.c");
    std::fs::write(&src, FAKE_NCCL).unwrap();
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .args(flags)
        .status()
        .expect("cc must be installed (ci/install-deps.sh installs gcc)");
    assert!(st.success(), "cc failed");
    out
}

/// The stand-in's record of calls, and its async-error switch.
struct Probe {
    lib: libloading::Library,
}

impl Probe {
    fn open(path: &Path) -> Probe {
        // SAFETY: our stand-in library; its initialisers do nothing.
        Probe {
            lib: unsafe { libloading::Library::new(path) }.unwrap(),
        }
    }

    fn calls(&self) -> String {
        // SAFETY: `const char *fake_calls(void)` of the stand-in above; it
        // returns its static NUL-terminated buffer.
        unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn() -> *const c_char> =
                self.lib.get(b"fake_calls\0").unwrap();
            std::ffi::CStr::from_ptr(f()).to_string_lossy().into_owned()
        }
    }

    fn clear(&self) {
        // SAFETY: `void fake_clear(void)` of the stand-in above.
        unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn()> =
                self.lib.get(b"fake_clear\0").unwrap();
            f()
        }
    }

    fn set_async_error(&self, e: c_int) {
        // SAFETY: `void fake_set_async_error(int)` of the stand-in above.
        unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn(c_int)> =
                self.lib.get(b"fake_set_async_error\0").unwrap();
            f(e)
        }
    }
}

#[test]
fn only_a_declared_normal_end_destroys_every_other_path_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "libnccl.so.2", &[]);
    let lib = Arc::new(NcclLib::open_file(&path).unwrap_or_else(|e| panic!("{e}")));
    // dlopen of the same path returns the same handle: the probe sees the
    // globals our binding talks to.
    let probe = Probe::open(&path);
    assert_eq!(version_string(lib.version().unwrap()), "2.27.3");
    let id = lib.unique_id().unwrap();
    let comm = || NcclComm::init_rank(lib.clone(), 1, id, 0).unwrap();

    // A rank leaving early (no declared end): abort, never the collective
    // destroy.
    drop(comm());
    assert_eq!(probe.calls(), "init abort ");
    // A declared normal end: destroy.
    let c = comm();
    c.mark_finished();
    drop(c);
    assert_eq!(probe.calls(), "init abort init destroy ");
    // A declared end, but NCCL reports a failed peer: abort.
    let c = comm();
    c.mark_finished();
    probe.set_async_error(6); // ncclRemoteError
    assert!(c.async_error().is_err());
    drop(c);
    probe.set_async_error(0);
    assert_eq!(probe.calls(), "init abort init destroy init abort ");
    // The watchdog's abort: once, and nothing more at drop; later
    // all-reduces are refused without calling NCCL.
    let c = comm();
    c.abort();
    c.abort();
    // SAFETY: the communicator is aborted, so no pointer is dereferenced.
    let r = unsafe { c.all_reduce_sum(0, 0, 1, 9, std::ptr::null_mut()) };
    assert!(r.is_err());
    drop(c);
    assert_eq!(
        probe.calls(),
        "init abort init destroy init abort init abort "
    );
}

#[test]
fn a_wrong_unique_id_is_an_nccl_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "libnccl.so.2", &[]);
    let lib = Arc::new(NcclLib::open_file(&path).unwrap());
    let mut bytes = lib.unique_id().unwrap().to_bytes();
    bytes[127] ^= 1;
    let id = mfubench_worker::cuda::nccl::UniqueId::from_bytes(&bytes).unwrap();
    let e = match NcclComm::init_rank(lib, 1, id, 0) {
        Err(e) => e,
        Ok(_) => panic!("the stand-in must refuse a changed id"),
    };
    assert_eq!(e.code, 4);
    assert!(
        e.to_string().contains("ncclCommInitRank") && e.to_string().contains("invalid argument"),
        "{e}"
    );
}

#[test]
fn a_library_without_comm_abort_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "libnccl.so.2", &["-DNO_ABORT"]);
    match NcclLib::open_file(&path) {
        Err(DiscoveryError::Symbol { symbol, .. }) => assert_eq!(symbol, "ncclCommAbort"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a library without ncclCommAbort must be refused"),
    }
}

#[test]
fn split_gather_scatter_and_grouped_send_recv_pass_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "libnccl.so.2", &[]);
    let lib = Arc::new(NcclLib::open_file(&path).unwrap_or_else(|e| panic!("{e}")));
    let probe = Probe::open(&path);
    let comm = NcclComm::init_rank(lib.clone(), 1, lib.unique_id().unwrap(), 0).unwrap();
    assert_eq!((comm.rank(), comm.size()), (0, 1));
    probe.clear();

    // A colour: a new communicator whose rank and size come from NCCL.
    let sub = comm
        .split(Some(3), 5)
        .unwrap()
        .expect("a coloured rank joins");
    assert_eq!((sub.rank(), sub.size()), (2, 3));
    // No colour: NCCL_SPLIT_NOCOLOR (-1), no communicator.
    assert!(comm.split(None, 7).unwrap().is_none());
    assert_eq!(probe.calls(), "split(3,5) split(-1,7) ");
    probe.clear();

    let stream = 0xabc as *mut std::ffi::c_void;
    // SAFETY: the stand-in never dereferences the buffers or the stream.
    unsafe {
        sub.all_gather(0x1000, 0x2000, 6, 7, stream).unwrap();
        sub.reduce_scatter_sum(0x3000, 0x4000, 5, 9, stream)
            .unwrap();
        sub.send_recv(1, 0x5000, 0x6000, 4, 7, stream).unwrap();
    }
    assert_eq!(
        probe.calls(),
        "allgather(1000,2000,6,7,abc) reducescatter(3000,4000,5,9,op0,abc) \
         group_start send(5000,4,7,peer1) recv(6000,4,7,peer1) group_end "
    );
    probe.clear();

    // A failed send still closes the group (an open group would swallow
    // the next collective); the error names the call.
    // SAFETY: as above.
    let e = unsafe { sub.send_recv(2, 0x5000, 0x6000, 13, 7, stream) }.unwrap_err();
    assert_eq!(e.call, "ncclSend");
    assert_eq!(
        probe.calls(),
        "group_start send(5000,13,7,peer2) group_end "
    );
    probe.clear();
    // A peer outside the communicator is refused before NCCL is called.
    // SAFETY: as above.
    let e = unsafe { sub.send_recv(3, 0x5000, 0x6000, 4, 7, stream) }.unwrap_err();
    assert!(e.to_string().contains("peer 3"), "{e}");
    assert_eq!(probe.calls(), "");

    // An aborted sub-communicator refuses every call without calling NCCL.
    sub.abort();
    probe.clear();
    // SAFETY: aborted: nothing is dereferenced or called.
    unsafe {
        assert!(sub.all_gather(0x1000, 0x2000, 6, 7, stream).is_err());
        assert!(sub
            .reduce_scatter_sum(0x1000, 0x2000, 6, 7, stream)
            .is_err());
        assert!(sub.send_recv(1, 0x1000, 0x2000, 6, 7, stream).is_err());
    }
    assert!(sub.split(Some(0), 0).is_err());
    assert_eq!(probe.calls(), "");
}

#[test]
fn a_split_on_nccl_before_2_18_names_the_version_needed() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "libnccl.so.2",
        &["-DNO_SPLIT", "-DVERSION=21703"],
    );
    // The library opens (the rest of the backend works without splits)...
    let lib = Arc::new(NcclLib::open_file(&path).unwrap_or_else(|e| panic!("{e}")));
    let comm = NcclComm::init_rank(lib.clone(), 1, lib.unique_id().unwrap(), 0).unwrap();
    // ...and a split says which version it found and which it needs.
    let e = match comm.split(Some(0), 0) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("NCCL 2.17 has no ncclCommSplit"),
    };
    assert!(
        e.contains("ncclCommSplit") && e.contains("NCCL 2.17.3") && e.contains("2.18.1 or newer"),
        "{e}"
    );
}
