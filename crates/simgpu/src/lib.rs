//! A simulated GPU for CI: stand-ins for `libcuda.so.1`, `libcublasLt.so.12`
//! / `.13`, `libnccl.so.2` and `libnvidia-ml.so.1` with real semantics, so
//! that every line of mfubench's CUDA backend runs on machines without a GPU.
//!
//! # Design
//!
//! **One shared object, four names.** This crate builds one `cdylib`
//! (`libmfubench_simgpu.so`) that exports the driver, cuBLASLt, NCCL and NVML
//! entry points the backend, cudarc and nvml-wrapper resolve. The launcher's
//! `--sim-gpu N` links it under the four library names in a folder of its own
//! ([`LIB_NAMES`]) and puts that folder first on the ranks' `LD_LIBRARY_PATH`;
//! the dynamic loader maps one file once, so the four "libraries" share one
//! state (device memory, streams, communicators). Normal discovery never
//! finds them.
//!
//! **Checked against NVIDIA's headers.** `build.rs` runs bindgen over the
//! real `cuda.h`, `cublasLt.h`, `nccl.h` and `nvml.h` (fetched by
//! `ci/fetch-nvidia-headers.sh`, never committed). Every export is written
//! with [`exports!`], which also compiles a check that our function and the
//! header's declaration have the same type: a wrong argument or return type
//! is a compile error. Enum values and struct layouts come from the headers.
//!
//! **Semantics, not call recording.**
//! - [`device`]: simulated H100 SXM devices (name says simulated, 132 SMs,
//!   sm_90, memory settable), `CUDA_VISIBLE_DEVICES` honoured. Allocations
//!   are lazily backed (`mmap` with `MAP_NORESERVE`: "80 GB" fits) between
//!   guard zones; every copy, GEMM and collective checks the bytes it touches
//!   lie inside one live allocation, else the process stops naming the call,
//!   the pointer and the nearest allocation.
//! - [`stream`]: each stream is an ordered queue run by its own thread;
//!   events record completion times; waits, queries and synchronisations as
//!   CUDA documents them (a wait on a never-recorded event is a no-op).
//!   Seeded random delays per operation (`MFUBENCH_SIMGPU_SEED`) shake out
//!   missing waits.
//! - [`race`]: every queued operation declares the byte ranges it reads and
//!   writes; vector clocks carried through event records, waits and host
//!   synchronisations decide happens-before at enqueue time, so a race is
//!   found whatever the actual timing: two operations on different streams
//!   touching overlapping bytes, one writing, unordered, stop the process
//!   naming both.
//! - [`lt`]: cuBLASLt descriptors, layouts, preferences, heuristics, and the
//!   GEMM itself on the CPU (f32, tf32, bf16, fp16, fp8 with scale pointers).
//! - [`nccl`]: real collectives between processes over TCP (the unique id
//!   carries the root's address), so ranks on different namespace hosts
//!   form one communicator; splits, groups, abort and async errors.
//! - [`nvml`]: identity, clocks, power, temperature, throttle reasons, ECC,
//!   PCIe link and XID event sets.
//! - [`fault`]: injected faults (`MFUBENCH_SIMGPU_FAULTS`, set from the
//!   launcher's `--sim-fault`): XIDs, slow GEMMs, corrupt outputs, hung
//!   collectives, throttling, ECC errors, slow links.
//!
//! Timings are CPU timings: every output of a simulated run says so.

// Exported names and the header's constants are NVIDIA's (cuInit, ncclFloat32).
#![allow(non_snake_case, non_upper_case_globals)]

pub mod device;
pub mod env;
pub mod fault;
pub mod race;
pub mod stream;

pub mod driver;
pub mod lt;
pub mod lt_math;
pub mod nccl;
pub mod nvml;

/// The declarations bindgen generated from NVIDIA's headers.
pub mod hdr {
    #![allow(
        non_camel_case_types,
        non_snake_case,
        non_upper_case_globals,
        dead_code,
        clippy::all
    )]
    include!(concat!(env!("OUT_DIR"), "/nvidia.rs"));
}

/// The names the launcher links the shared object under.
pub use mfubench_core::simgpu::LINK_NAMES as LIB_NAMES;

/// Defines exported C functions and checks each against the header's
/// declaration of the same name: `if … { ours } else { header's }` only
/// compiles when both coerce to one function-pointer type.
#[macro_export]
macro_rules! exports {
    ($( $(#[$m:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty $body:block )*) => {
        $(
            $(#[$m])*
            /// # Safety
            /// NVIDIA's contract for this entry point: pointers as the
            /// header documents them.
            #[no_mangle]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret $body
            const _: () = {
                #[allow(unused)]
                fn signature_matches_the_header() {
                    let _f = if std::hint::black_box(true) { $name } else { $crate::hdr::$name };
                }
            };
        )*
    };
}

/// Stops the process with a message: what real hardware would report as a
/// sticky error (illegal address, race) is fatal here, and loud.
pub fn fatal(msg: &str) -> ! {
    let host = env::host_name();
    eprintln!(
        "simgpu: FATAL on {host} (pid {}): {msg}",
        std::process::id()
    );
    std::process::abort()
}
