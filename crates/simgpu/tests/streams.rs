//! Stream, event and memory semantics of the simulated driver, and the
//! checks that stop a process: a planted race (two streams writing one
//! buffer with no wait between them) and an access outside an allocation.
//! Cases that must stop the process run in a child process (this test
//! binary again, with `SIMGPU_CASE` set) and are judged by its exit and
//! its message.

use std::ffi::c_void;
use std::process::Command;
use std::ptr::null_mut;

use mfubench_simgpu::driver::*;
use mfubench_simgpu::hdr::{
    CUdeviceptr, CUresult, CUstream, CUDA_ERROR_INVALID_HANDLE, CUDA_SUCCESS,
    CU_EVENT_DISABLE_TIMING,
};

fn ok(r: CUresult) {
    assert_eq!(r, CUDA_SUCCESS);
}

fn setup() -> (CUstream, CUstream, CUdeviceptr) {
    // SAFETY: every pointer passed is a valid local.
    unsafe {
        ok(cuInit(0));
        let mut ctx = null_mut();
        ok(cuDevicePrimaryCtxRetain(&mut ctx, 0));
        ok(cuCtxSetCurrent(ctx));
        let (mut a, mut b) = (null_mut(), null_mut());
        ok(cuStreamCreateWithPriority(&mut a, 1, 0));
        ok(cuStreamCreateWithPriority(&mut b, 1, -5));
        let mut p = 0;
        ok(cuMemAlloc_v2(&mut p, 1 << 20));
        (a, b, p)
    }
}

/// The child side: runs the case named by SIMGPU_CASE.
#[test]
fn child_case() {
    let Ok(case) = std::env::var("SIMGPU_CASE") else {
        return;
    };
    let (a, b, p) = setup();
    // SAFETY: handles and pointers from `setup`.
    unsafe {
        match case.as_str() {
            "race" => {
                ok(cuMemsetD8Async(p, 1, 4096, a));
                ok(cuMemsetD8Async(p + 1024, 2, 4096, b));
            }
            "ordered" => {
                let mut ev = null_mut();
                ok(cuEventCreate(&mut ev, 0));
                ok(cuMemsetD8Async(p, 1, 4096, a));
                ok(cuEventRecord(ev, a));
                ok(cuStreamWaitEvent(b, ev, 0));
                ok(cuMemsetD8Async(p + 1024, 2, 4096, b));
                ok(cuStreamSynchronize(b));
                // Host synchronisation orders the host after both.
                let mut host = vec![0u8; 8];
                ok(cuMemcpyDtoH_v2(host.as_mut_ptr().cast(), p + 1020, 8));
                assert_eq!(host, [1, 1, 1, 1, 2, 2, 2, 2]);
            }
            "host_race" => {
                // The host reads what a stream writes, never synchronising.
                ok(cuMemsetD8Async(p, 1, 4096, a));
                let mut host = vec![0u8; 8];
                ok(cuMemcpyDtoH_v2(host.as_mut_ptr().cast(), p, 8));
            }
            "out_of_bounds" => {
                ok(cuMemsetD8Async(p + (1 << 20) - 8, 3, 64, a));
            }
            other => panic!("unknown case {other}"),
        }
    }
    std::process::exit(0);
}

fn run_case(case: &str) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_case",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("SIMGPU_CASE", case)
        .env(mfubench_core::simgpu::DEVICES_VAR, "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_planted_race_between_two_streams_stops_the_process_naming_both() {
    let (code, err) = run_case("race");
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("simgpu: FATAL") && err.contains("race:"),
        "{err}"
    );
    assert_eq!(err.matches("cuMemsetD8Async").count(), 2, "{err}");
    assert!(
        err.contains("priority -5") && err.contains("priority 0"),
        "{err}"
    );
}

#[test]
fn the_same_writes_ordered_by_an_event_pass() {
    let (code, err) = run_case("ordered");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_host_copy_racing_a_stream_is_caught() {
    let (code, err) = run_case("host_race");
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("race:") && err.contains("the host"), "{err}");
}

#[test]
fn an_access_past_an_allocation_stops_the_process_naming_the_allocation() {
    let (code, err) = run_case("out_of_bounds");
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("cuMemsetD8Async") && err.contains("outside every live allocation"),
        "{err}"
    );
    assert!(err.contains("56 bytes past it"), "{err}");
}

#[test]
fn events_time_order_and_wait_as_cuda_documents() {
    let (a, b, p) = setup();
    // SAFETY: handles and pointers from `setup`; host buffers are locals.
    unsafe {
        let (mut e0, mut e1, mut never) = (null_mut(), null_mut(), null_mut());
        ok(cuEventCreate(&mut e0, 0));
        ok(cuEventCreate(&mut e1, 0));
        ok(cuEventCreate(&mut never, 0));
        // A wait on an event never recorded is a no-op.
        ok(cuStreamWaitEvent(a, never, 0));
        ok(cuEventQuery(never));
        ok(cuEventRecord(e0, a));
        let src: Vec<u8> = (0..4096).map(|i| (i % 251) as u8 + 1).collect();
        ok(cuMemcpyHtoDAsync_v2(
            p,
            src.as_ptr() as *const c_void,
            4096,
            a,
        ));
        ok(cuEventRecord(e1, a));
        ok(cuEventSynchronize(e1));
        let mut ms = -1.0f32;
        ok(cuEventElapsedTime(&mut ms, e0, e1));
        assert!(ms >= 0.0, "{ms}");
        // Stream b reads after waiting for e1: no race, the data is there.
        ok(cuStreamWaitEvent(b, e1, 0));
        let mut back = vec![0u8; 4096];
        ok(cuMemcpyDtoHAsync_v2(back.as_mut_ptr().cast(), p, 4096, b));
        ok(cuStreamSynchronize(b));
        assert_eq!(back, src);
        // An event without timing cannot give an elapsed time.
        let mut nt = null_mut();
        ok(cuEventCreate(&mut nt, CU_EVENT_DISABLE_TIMING));
        ok(cuEventRecord(nt, a));
        ok(cuEventSynchronize(nt));
        assert_eq!(
            cuEventElapsedTime(&mut ms, e0, nt),
            CUDA_ERROR_INVALID_HANDLE
        );
        // Memory info counts the allocation.
        let (mut free, mut total) = (0usize, 0usize);
        ok(cuMemGetInfo_v2(&mut free, &mut total));
        assert!(free < total && total >= 80 << 30, "{free} {total}");
        ok(cuMemFree_v2(p));
        for e in [e0, e1, never, nt] {
            ok(cuEventDestroy_v2(e));
        }
        ok(cuStreamDestroy_v2(a));
        ok(cuStreamDestroy_v2(b));
    }
}
