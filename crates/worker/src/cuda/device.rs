//! What the driver says about the device ([`DeviceInfo`]), read once when
//! the backend opens; what the backend records of it is in
//! [`super::device_record`].

use std::sync::Arc;

use cudarc::driver::safe::CudaContext;
use cudarc::driver::sys;

use super::error::{drv, CudaError};
use super::probe::driver_version;

/// What the driver says about the device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// CUDA ordinal (within `CUDA_VISIBLE_DEVICES`).
    pub ordinal: usize,
    /// Name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Compute capability.
    pub compute_capability: (i32, i32),
    /// Device memory, bytes.
    pub total_mem: u64,
    /// L2 cache, bytes.
    pub l2_bytes: u64,
    /// `cuDriverGetVersion`, e.g. 12080.
    pub driver_cuda_version: i32,
    /// UUID bytes.
    pub uuid: [u8; 16],
}

pub(super) fn device_info(ctx: &Arc<CudaContext>, ordinal: usize) -> Result<DeviceInfo, CudaError> {
    let name = drv("cuDeviceGetName", ctx.name())?;
    let sm_count = drv(
        "cuDeviceGetAttribute",
        ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
    )? as u32;
    let compute_capability = drv("cuDeviceGetAttribute", ctx.compute_capability())?;
    let total_mem = drv("cuDeviceTotalMem", ctx.total_mem())? as u64;
    let l2_bytes = drv(
        "cuDeviceGetAttribute",
        ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
    )?
    .max(0) as u64;
    let v = driver_version()?;
    let raw = drv("cuDeviceGetUuid", ctx.uuid())?;
    let mut uuid = [0u8; 16];
    for (d, s) in uuid.iter_mut().zip(raw.bytes.iter()) {
        *d = *s as u8;
    }
    Ok(DeviceInfo {
        ordinal,
        name,
        sm_count,
        compute_capability,
        total_mem,
        l2_bytes,
        driver_cuda_version: v,
        uuid,
    })
}
