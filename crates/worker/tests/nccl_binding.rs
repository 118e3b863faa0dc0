//! Our NCCL binding (`cuda::nccl`) against a stand-in `libnccl.so.2`
//! compiled here from C: the real dynamic loader, the C calling convention
//! (the 128-byte `ncclUniqueId` passed by value), the symbol names, and
//! which teardown call each path makes. The stand-in records every
//! `ncclCommInitRank`, `ncclCommAbort` and `ncclCommDestroy` it receives.
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
void fake_set_async_error(int e) { async_error = e; }
int ncclGetVersion(int *v) { *v = 22703; return 0; }
int ncclGetUniqueId(ncclUniqueId *id) { for (int i = 0; i < 128; i++) id->internal[i] = (char)i; return 0; }
int ncclCommInitRank(void **comm, int n, ncclUniqueId id, int rank) {
    for (int i = 0; i < 128; i++) if (id.internal[i] != (char)i) return 4; /* ncclInvalidArgument */
    if (n != 1 || rank != 0) return 4;
    *comm = &token; note("init"); return 0;
}
int ncclAllReduce(const void *s, void *r, size_t c, int dt, int op, void *comm, void *st) { note("allreduce"); return 0; }
int ncclGroupStart(void) { return 0; }
int ncclGroupEnd(void) { return 0; }
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
