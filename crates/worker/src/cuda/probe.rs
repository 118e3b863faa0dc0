//! Whether a usable driver and device are here (never panicking: cudarc
//! panics on a missing libcuda), which device a rank takes, whether it is
//! the simulated GPU, and version strings.

use cudarc::driver::{result as cu, sys};

use super::error::{drv, CudaError};

/// The message for a machine without a usable driver.
pub fn no_driver_message() -> String {
    "no CUDA driver: libcuda.so.1 (the NVIDIA driver's library) cannot be loaded. On a GPU machine, install the NVIDIA driver or add the folder holding libcuda.so.1 to LD_LIBRARY_PATH (in containers: run with the NVIDIA container runtime); elsewhere use --backend cpu".to_string()
}

/// Whether `libcuda` can be opened. Must be true before any cudarc call:
/// cudarc panics when the library is missing.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the candidate names of libcuda and closes
    // them again; no CUDA function is called.
    unsafe { sys::is_culib_present() }
}

/// NCCL's switch for lazy connection setup: `1` (NCCL 2.22's default)
/// connects peers, and allocates the channel, P2P and NVLS buffers, at the
/// first collective that needs them; `0` does it in `ncclCommInitRank` and
/// `ncclCommSplit`.
pub const RUNTIME_CONNECT_VAR: &str = "NCCL_RUNTIME_CONNECT";

/// Sets `NCCL_RUNTIME_CONNECT=0` unless the user set it (to anything);
/// returns whether it set it.
///
/// Why: the backend sizes its buffers from `cuMemGetInfo` once every
/// communicator exists ([`CudaBackend::replan_memory`](super::CudaBackend::replan_memory)). With lazy
/// connection NCCL's buffers (about a GB per communicator with NVLS) appear
/// only at the first collective, after the sizing, where a plan near the
/// memory limit would fail inside NCCL with an allocation error; eager
/// connection makes them visible to the sizing.
///
/// Ordering: call it before any other thread exists. `std::env::set_var`
/// is not synchronised with C's `getenv`, which Open MPI, the CUDA driver
/// and NCCL call from their own threads, so the worker calls this first
/// thing in `main`, before `MPI_Init` (which starts Open MPI's threads) and
/// before the first CUDA or NCCL call (NCCL reads the variable at its first
/// communicator init). Programs that open a [`CudaBackend`](super::CudaBackend) without it (the
/// GPU tests) run with NCCL's default, which only defers the allocations.
pub fn nccl_connect_at_init() -> bool {
    if std::env::var_os(RUNTIME_CONNECT_VAR).is_some() {
        return false;
    }
    std::env::set_var(RUNTIME_CONNECT_VAR, "0");
    true
}

/// Number of visible CUDA devices, or why there are none. Never panics.
pub fn probe() -> Result<usize, String> {
    if !driver_present() {
        return Err(no_driver_message());
    }
    cu::init().map_err(|e| {
        format!("the CUDA driver is present but cuInit failed ({e}); is a GPU visible (CUDA_VISIBLE_DEVICES = {:?})?", std::env::var("CUDA_VISIBLE_DEVICES").ok())
    })?;
    let n = cu::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e}"))?;
    if n <= 0 {
        return Err(format!(
            "no CUDA device is visible (CUDA_VISIBLE_DEVICES = {:?})",
            std::env::var("CUDA_VISIBLE_DEVICES").ok()
        ));
    }
    Ok(n as usize)
}

/// Whether the visible devices are the simulated GPU of `--sim-gpu`
/// (crates/simgpu): its device names carry [`mfubench_core::simgpu::NAME_MARK`].
/// False without a driver. Never panics.
pub fn simulated() -> bool {
    if probe().is_err() {
        return false;
    }
    cu::device::get(0)
        .and_then(cu::device::get_name)
        .is_ok_and(|n| n.ends_with(mfubench_core::simgpu::NAME_MARK))
}

/// The device ordinal of a rank: its local rank when the host shows at least
/// as many devices as it has ranks; device 0 when each rank sees exactly one
/// (Slurm's `--gpus-per-task=1` style binding).
pub fn select_ordinal(
    local_rank: u64,
    ranks_on_host: u64,
    visible: usize,
) -> Result<usize, String> {
    if visible as u64 >= ranks_on_host {
        Ok(local_rank as usize)
    } else if visible == 1 {
        Ok(0)
    } else {
        Err(format!(
            "{ranks_on_host} ranks on this host but {visible} visible CUDA devices: start one rank per GPU (or set CUDA_VISIBLE_DEVICES per rank)"
        ))
    }
}

/// `cuDriverGetVersion`: the CUDA version the driver supports, e.g. 12080.
/// Call only once [`driver_present`] said yes.
pub fn driver_version() -> Result<i32, CudaError> {
    let mut v: std::ffi::c_int = 0;
    // SAFETY: valid out-pointer; the driver library is loaded (the caller
    // checked driver_present; cudarc opens it at the first call).
    drv(
        "cuDriverGetVersion",
        unsafe { sys::cuDriverGetVersion(&mut v) }.result(),
    )?;
    Ok(v)
}

/// "12.8" from a `cuDriverGetVersion` integer.
pub fn cuda_version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// "12.8.4" from a `cublasLtGetVersion` integer.
pub fn cublas_version_string(v: usize) -> String {
    format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_selection() {
        assert_eq!(select_ordinal(3, 8, 8), Ok(3));
        assert_eq!(select_ordinal(0, 1, 8), Ok(0));
        assert_eq!(select_ordinal(5, 8, 1), Ok(0), "one GPU bound per rank");
        let e = select_ordinal(2, 4, 2).unwrap_err();
        assert!(e.contains("4 ranks") && e.contains("2 visible"), "{e}");
    }

    #[test]
    fn versions() {
        assert_eq!(cuda_version_string(12080), "12.8");
        assert_eq!(cuda_version_string(13000), "13.0");
        assert_eq!(cublas_version_string(120804), "12.8.4");
        assert_eq!(cublas_version_string(130100), "13.1.0");
    }
}
