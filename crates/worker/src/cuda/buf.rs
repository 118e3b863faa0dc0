//! [`DeviceBuf`]: a raw device allocation, freed on drop, with the
//! synchronous copies the backend's set-up and checks use, and
//! [`BufSlice`], a range of one that the safe layer's operations take.

use std::sync::Arc;

use cudarc::driver::safe::CudaContext;
use cudarc::driver::{result as cu, sys};

use super::error::{drv, CudaError};

/// A raw device allocation, freed on drop.
pub struct DeviceBuf {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    ctx: Arc<CudaContext>,
}

impl DeviceBuf {
    /// Allocates `bytes` (at least 1) on the context's device.
    pub fn new(ctx: &Arc<CudaContext>, bytes: u64) -> Result<DeviceBuf, CudaError> {
        drv("cuCtxSetCurrent", ctx.bind_to_thread())?;
        let bytes = bytes.max(1) as usize;
        // SAFETY: plain allocation; the memory is uninitialised bytes, which
        // is all a DeviceBuf promises.
        let ptr = drv("cuMemAlloc", unsafe { cu::malloc_sync(bytes) })?;
        Ok(DeviceBuf {
            ptr,
            bytes,
            ctx: ctx.clone(),
        })
    }

    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the buffer is empty (never: allocations are ≥ 1 byte).
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The context the buffer lives in.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The whole buffer as a [`BufSlice`].
    pub fn all(&self) -> BufSlice<'_> {
        BufSlice {
            buf: self,
            at: 0,
            bytes: self.bytes as u64,
        }
    }

    /// `bytes` bytes from offset `at`; `None` when they do not lie wholly
    /// inside the buffer.
    pub fn slice(&self, at: u64, bytes: u64) -> Option<BufSlice<'_>> {
        let end = at.checked_add(bytes)?;
        (end <= self.bytes as u64).then_some(BufSlice {
            buf: self,
            at,
            bytes,
        })
    }

    /// Copies host bytes to offset `at` (synchronous; streams must be idle).
    pub fn upload(&self, at: usize, src: &[u8]) -> Result<(), CudaError> {
        assert!(at + src.len() <= self.bytes, "upload out of bounds");
        drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?;
        // SAFETY: the destination range lies inside this allocation (checked
        // above) and the copy is synchronous, so `src` outlives it.
        drv("cuMemcpyHtoD", unsafe {
            cu::memcpy_htod_sync(self.ptr + at as u64, src)
        })?;
        // A pageable copy may return before its DMA lands, on the legacy
        // stream, which our non-blocking streams do not wait for.
        drv("cuCtxSynchronize", cu::ctx::synchronize())
    }

    /// Fills the buffer by repeating `pattern`.
    pub fn fill_repeating(&self, pattern: &[u8]) -> Result<(), CudaError> {
        let mut at = 0;
        while at < self.bytes && !pattern.is_empty() {
            let n = pattern.len().min(self.bytes - at);
            self.upload(at, &pattern[..n])?;
            at += n;
        }
        Ok(())
    }

    /// Copies `dst.len()` bytes from offset `at` to the host (synchronous).
    pub fn download(&self, at: usize, dst: &mut [u8]) -> Result<(), CudaError> {
        assert!(at + dst.len() <= self.bytes, "download out of bounds");
        drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?;
        // SAFETY: the source range lies inside this allocation; synchronous.
        drv("cuMemcpyDtoH", unsafe {
            cu::memcpy_dtoh_sync(dst, self.ptr + at as u64)
        })
    }

    /// Sets every byte to `v` (synchronous).
    pub fn memset(&self, v: u8) -> Result<(), CudaError> {
        drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?;
        // SAFETY: the whole allocation, which this struct owns.
        drv("cuMemsetD8", unsafe {
            cu::memset_d8_sync(self.ptr, v, self.bytes)
        })?;
        // Device memsets are asynchronous to the host (legacy stream).
        drv("cuCtxSynchronize", cu::ctx::synchronize())
    }
}

/// A byte range of a [`DeviceBuf`], inside it by construction
/// ([`DeviceBuf::slice`]): what the safe layer's operations
/// (`cuda/launch.rs`) take.
#[derive(Clone, Copy)]
pub struct BufSlice<'a> {
    buf: &'a DeviceBuf,
    at: u64,
    bytes: u64,
}

impl<'a> BufSlice<'a> {
    /// The buffer it lies in.
    pub fn buf(&self) -> &'a DeviceBuf {
        self.buf
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Its device address.
    pub fn ptr(&self) -> u64 {
        self.buf.ptr + self.at
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: allocated by cuMemAlloc in `new`, freed once; the owner
        // (CudaBackend) synchronises its streams before dropping buffers.
        let _ = unsafe { cu::free_sync(self.ptr) };
    }
}
