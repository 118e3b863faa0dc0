//! The driver API stand-in (`libcuda.so.1`): the entry points cudarc 0.19
//! (`cuda-12080` bindings) and the backend call.
//!
//! Devices are ordinals over the visible simulated devices
//! ([`crate::device::visible_devices`]); a context is the device's primary
//! context (the handle encodes the device and is never dereferenced).
//! Synchronous copies and memsets run on the calling thread (the host
//! actor of the race checker); asynchronous ones queue on their stream.

use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void};
use std::sync::Arc;

use crate::device::{self, Access};
use crate::hdr::*;
use crate::race;
use crate::stream::{self, Event, Stream};

/// Memory the simulated context itself takes (as a real one does).
const CONTEXT_BYTES: u64 = 512 << 20;

fn global_device(ordinal: CUdevice) -> Option<usize> {
    if ordinal < 0 {
        return None;
    }
    crate::device::visible_devices()
        .get(ordinal as usize)
        .copied()
}

fn ctx_handle(global: usize) -> CUcontext {
    ((global + 1) << 4) as CUcontext
}

fn ctx_device(ctx: CUcontext) -> Option<usize> {
    let v = ctx as usize;
    (v != 0 && v & 0xf == 0).then(|| (v >> 4) - 1)
}

fn event_of(h: CUevent) -> Option<Arc<Event>> {
    if h.is_null() {
        return None;
    }
    let p = h as *const Event;
    // SAFETY: event handles are made by cuEventCreate (Arc::into_raw) and
    // live until cuEventDestroy; the count is raised for the Arc made here.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

fn stream_of(h: CUstream) -> Arc<Stream> {
    stream::from_handle(h as *mut c_void)
}

/// A device attribute of a simulated H100 SXM; None for attributes the
/// header does not define.
pub fn attribute(attr: CUdevice_attribute, global: usize) -> Option<c_int> {
    Some(match attr {
        CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT => device::SM_COUNT,
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR => 9,
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR => 0,
        CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE => device::L2_BYTES,
        CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED => 0,
        CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK => 1024,
        CU_DEVICE_ATTRIBUTE_WARP_SIZE => 32,
        CU_DEVICE_ATTRIBUTE_CLOCK_RATE => 1_980_000,
        CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE => 2_619_000,
        CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH => 5120,
        CU_DEVICE_ATTRIBUTE_PCI_BUS_ID => 0x18 + 0x10 * global as c_int,
        CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID | CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID => 0,
        CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING
        | CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS
        | CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED => 1,
        CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT => 3,
        a if a < CU_DEVICE_ATTRIBUTE_MAX => 0,
        _ => return None,
    })
}

/// The text of a CUresult (as cuGetErrorString gives it).
pub fn error_text(e: CUresult) -> &'static [u8] {
    match e {
        CUDA_SUCCESS => b"no error\0",
        CUDA_ERROR_INVALID_VALUE => b"invalid argument\0",
        CUDA_ERROR_OUT_OF_MEMORY => b"out of memory\0",
        CUDA_ERROR_NOT_INITIALIZED => b"initialization error\0",
        CUDA_ERROR_NO_DEVICE => b"no CUDA-capable device is detected\0",
        CUDA_ERROR_INVALID_DEVICE => b"invalid device ordinal\0",
        CUDA_ERROR_INVALID_CONTEXT => b"invalid device context\0",
        CUDA_ERROR_INVALID_HANDLE => b"invalid resource handle\0",
        CUDA_ERROR_NOT_READY => b"device not ready\0",
        _ => b"unknown error (simulated driver)\0",
    }
}

fn error_name(e: CUresult) -> &'static [u8] {
    match e {
        CUDA_SUCCESS => b"CUDA_SUCCESS\0",
        CUDA_ERROR_INVALID_VALUE => b"CUDA_ERROR_INVALID_VALUE\0",
        CUDA_ERROR_OUT_OF_MEMORY => b"CUDA_ERROR_OUT_OF_MEMORY\0",
        CUDA_ERROR_NOT_INITIALIZED => b"CUDA_ERROR_NOT_INITIALIZED\0",
        CUDA_ERROR_NO_DEVICE => b"CUDA_ERROR_NO_DEVICE\0",
        CUDA_ERROR_INVALID_DEVICE => b"CUDA_ERROR_INVALID_DEVICE\0",
        CUDA_ERROR_INVALID_CONTEXT => b"CUDA_ERROR_INVALID_CONTEXT\0",
        CUDA_ERROR_INVALID_HANDLE => b"CUDA_ERROR_INVALID_HANDLE\0",
        CUDA_ERROR_NOT_READY => b"CUDA_ERROR_NOT_READY\0",
        _ => b"CUDA_ERROR_UNKNOWN\0",
    }
}

/// A synchronous copy between host addresses (device pointers are host
/// addresses here), checked and recorded as a host access.
///
/// # Safety
/// The host side must be valid for `n` bytes (the caller's promise to the
/// driver); the device side is checked.
unsafe fn host_copy(call: &str, dst: u64, src: u64, n: usize, acc: &[Access]) -> CUresult {
    for a in acc {
        device::check_range(call, a.what, a.ptr, a.len);
    }
    race::host_access(call, acc);
    // SAFETY: device ranges checked above; the host range is the caller's.
    unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) };
    CUDA_SUCCESS
}

crate::exports! {
    fn cuInit(_flags: c_uint) -> CUresult {
        if crate::device::visible_devices().is_empty() { CUDA_ERROR_NO_DEVICE } else { CUDA_SUCCESS }
    }

    fn cuDriverGetVersion(v: *mut c_int) -> CUresult {
        if v.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        // SAFETY: non-null output pointer from the caller.
        unsafe { *v = device::DRIVER_CUDA_VERSION };
        CUDA_SUCCESS
    }

    fn cuDeviceGetCount(n: *mut c_int) -> CUresult {
        if n.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        // SAFETY: non-null output pointer.
        unsafe { *n = crate::device::visible_devices().len() as c_int };
        CUDA_SUCCESS
    }

    fn cuDeviceGet(d: *mut CUdevice, ordinal: c_int) -> CUresult {
        if d.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        if global_device(ordinal).is_none() { return CUDA_ERROR_INVALID_DEVICE; }
        // SAFETY: non-null output pointer.
        unsafe { *d = ordinal };
        CUDA_SUCCESS
    }

    fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
        if name.is_null() || len <= 0 { return CUDA_ERROR_INVALID_VALUE; }
        if global_device(dev).is_none() { return CUDA_ERROR_INVALID_DEVICE; }
        let s = device::NAME.as_bytes();
        let n = s.len().min(len as usize - 1);
        // SAFETY: the caller gave `len` writable bytes; n + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), name.cast::<u8>(), n);
            *name.add(n) = 0;
        }
        CUDA_SUCCESS
    }

    fn cuDeviceGetAttribute(pi: *mut c_int, attrib: CUdevice_attribute, dev: CUdevice) -> CUresult {
        let Some(g) = global_device(dev) else { return CUDA_ERROR_INVALID_DEVICE };
        match attribute(attrib, g) {
            Some(v) if !pi.is_null() => {
                // SAFETY: non-null output pointer.
                unsafe { *pi = v };
                CUDA_SUCCESS
            }
            _ => CUDA_ERROR_INVALID_VALUE,
        }
    }

    fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
        if global_device(dev).is_none() { return CUDA_ERROR_INVALID_DEVICE; }
        if bytes.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        // SAFETY: non-null output pointer.
        unsafe { *bytes = crate::env::mem_bytes() as usize };
        CUDA_SUCCESS
    }

    fn cuDeviceGetUuid(uuid: *mut CUuuid, dev: CUdevice) -> CUresult {
        let Some(g) = global_device(dev) else { return CUDA_ERROR_INVALID_DEVICE };
        if uuid.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        let b = device::uuid_bytes(g);
        // SAFETY: non-null pointer to a 16-byte CUuuid.
        unsafe { (*uuid).bytes = b.map(|x| x as c_char) };
        CUDA_SUCCESS
    }

    fn cuDeviceGetUuid_v2(uuid: *mut CUuuid, dev: CUdevice) -> CUresult {
        // SAFETY: same contract as cuDeviceGetUuid.
        unsafe { cuDeviceGetUuid(uuid, dev) }
    }

    fn cuDevicePrimaryCtxRetain(pctx: *mut CUcontext, dev: CUdevice) -> CUresult {
        let Some(g) = global_device(dev) else { return CUDA_ERROR_INVALID_DEVICE };
        if pctx.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        // SAFETY: non-null output pointer.
        unsafe { *pctx = ctx_handle(g) };
        CUDA_SUCCESS
    }

    fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
        if global_device(dev).is_none() { CUDA_ERROR_INVALID_DEVICE } else { CUDA_SUCCESS }
    }

    fn cuCtxSetCurrent(ctx: CUcontext) -> CUresult {
        if ctx.is_null() {
            stream::set_current_device(None);
            return CUDA_SUCCESS;
        }
        match ctx_device(ctx) {
            Some(g) => { stream::set_current_device(Some(g)); CUDA_SUCCESS }
            None => CUDA_ERROR_INVALID_CONTEXT,
        }
    }

    fn cuCtxGetCurrent(pctx: *mut CUcontext) -> CUresult {
        if pctx.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        // SAFETY: non-null output pointer.
        unsafe { *pctx = ctx_handle(stream::current_device()) };
        CUDA_SUCCESS
    }

    fn cuCtxGetDevice(d: *mut CUdevice) -> CUresult {
        if d.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        let g = stream::current_device();
        let ord = crate::device::visible_devices().iter().position(|x| *x == g).unwrap_or(0);
        // SAFETY: non-null output pointer.
        unsafe { *d = ord as CUdevice };
        CUDA_SUCCESS
    }

    fn cuCtxSynchronize() -> CUresult {
        for s in Stream::of_device(stream::current_device()) {
            s.synchronize();
        }
        CUDA_SUCCESS
    }

    fn cuCtxGetStreamPriorityRange(least: *mut c_int, greatest: *mut c_int) -> CUresult {
        // SAFETY: optional output pointers, written when non-null.
        unsafe {
            if !least.is_null() { *least = 0; }
            if !greatest.is_null() { *greatest = -5; }
        }
        CUDA_SUCCESS
    }

    fn cuStreamCreate(ph: *mut CUstream, flags: c_uint) -> CUresult {
        // SAFETY: same contract, default priority.
        unsafe { cuStreamCreateWithPriority(ph, flags, 0) }
    }

    fn cuStreamCreateWithPriority(ph: *mut CUstream, _flags: c_uint, priority: c_int) -> CUresult {
        if ph.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        let s = Stream::new(stream::current_device(), priority.clamp(-5, 0));
        // SAFETY: non-null output pointer.
        unsafe { *ph = stream::into_handle(s) as CUstream };
        CUDA_SUCCESS
    }

    fn cuStreamDestroy_v2(h: CUstream) -> CUresult {
        if (h as usize) <= 2 { return CUDA_ERROR_INVALID_HANDLE; }
        // SAFETY: the handle came from cuStreamCreate and is destroyed once.
        let s = unsafe { stream::release_handle(h as *mut c_void) };
        s.destroy();
        CUDA_SUCCESS
    }

    fn cuStreamSynchronize(h: CUstream) -> CUresult {
        stream_of(h).synchronize();
        CUDA_SUCCESS
    }

    fn cuStreamQuery(h: CUstream) -> CUresult {
        if stream_of(h).idle() { CUDA_SUCCESS } else { CUDA_ERROR_NOT_READY }
    }

    fn cuStreamWaitEvent(h: CUstream, ev: CUevent, _flags: c_uint) -> CUresult {
        let Some(e) = event_of(ev) else { return CUDA_ERROR_INVALID_HANDLE };
        stream_of(h).wait(&e);
        CUDA_SUCCESS
    }

    fn cuEventCreate(ph: *mut CUevent, flags: c_uint) -> CUresult {
        if ph.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        let timing = flags & CU_EVENT_DISABLE_TIMING as c_uint == 0;
        // SAFETY: non-null output pointer; the Arc is released by cuEventDestroy.
        unsafe { *ph = Arc::into_raw(Event::new(timing)) as CUevent };
        CUDA_SUCCESS
    }

    fn cuEventDestroy_v2(ev: CUevent) -> CUresult {
        if ev.is_null() { return CUDA_ERROR_INVALID_HANDLE; }
        // SAFETY: made by cuEventCreate, destroyed once; queued records hold
        // references of their own.
        drop(unsafe { Arc::from_raw(ev as *const Event) });
        CUDA_SUCCESS
    }

    fn cuEventRecord(ev: CUevent, h: CUstream) -> CUresult {
        let Some(e) = event_of(ev) else { return CUDA_ERROR_INVALID_HANDLE };
        stream_of(h).record(&e);
        CUDA_SUCCESS
    }

    fn cuEventQuery(ev: CUevent) -> CUresult {
        let Some(e) = event_of(ev) else { return CUDA_ERROR_INVALID_HANDLE };
        if e.query() { CUDA_SUCCESS } else { CUDA_ERROR_NOT_READY }
    }

    fn cuEventSynchronize(ev: CUevent) -> CUresult {
        let Some(e) = event_of(ev) else { return CUDA_ERROR_INVALID_HANDLE };
        e.synchronize();
        CUDA_SUCCESS
    }

    fn cuEventElapsedTime(ms: *mut f32, start: CUevent, end: CUevent) -> CUresult {
        let (Some(a), Some(b)) = (event_of(start), event_of(end)) else {
            return CUDA_ERROR_INVALID_HANDLE;
        };
        if !a.timing || !b.timing || ms.is_null() {
            return CUDA_ERROR_INVALID_HANDLE;
        }
        let (Some(t0), Some(t1)) = (a.time(), b.time()) else { return CUDA_ERROR_NOT_READY };
        let v = if t1 >= t0 {
            (t1 - t0).as_secs_f64() * 1e3
        } else {
            -((t0 - t1).as_secs_f64() * 1e3)
        };
        // SAFETY: non-null output pointer.
        unsafe { *ms = v as f32 };
        CUDA_SUCCESS
    }

    fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytes: usize) -> CUresult {
        if dptr.is_null() || bytes == 0 { return CUDA_ERROR_INVALID_VALUE; }
        match device::alloc(stream::current_device(), bytes as u64) {
            Some(p) => {
                // SAFETY: non-null output pointer.
                unsafe { *dptr = p };
                CUDA_SUCCESS
            }
            None => CUDA_ERROR_OUT_OF_MEMORY,
        }
    }

    fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
        if dptr == 0 { return CUDA_SUCCESS; }
        // cuMemFree waits for the device's work that may use the memory.
        for s in Stream::of_device(stream::current_device()) {
            s.synchronize();
        }
        if !device::free(dptr) { return CUDA_ERROR_INVALID_VALUE; }
        race::forget(dptr);
        CUDA_SUCCESS
    }

    fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
        let t = crate::env::mem_bytes();
        let used = device::used_bytes(stream::current_device()) + CONTEXT_BYTES;
        // SAFETY: output pointers, written when non-null.
        unsafe {
            if !free.is_null() { *free = t.saturating_sub(used) as usize; }
            if !total.is_null() { *total = t as usize; }
        }
        CUDA_SUCCESS
    }

    fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, n: usize) -> CUresult {
        // SAFETY: the host source is the caller's (n readable bytes).
        unsafe { host_copy("cuMemcpyHtoD", dst, src as u64, n, &[Access::write("dstDevice", dst, n as u64)]) }
    }

    fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize) -> CUresult {
        // SAFETY: the host destination is the caller's (n writable bytes).
        unsafe { host_copy("cuMemcpyDtoH", dst as u64, src, n, &[Access::read("srcDevice", src, n as u64)]) }
    }

    fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> CUresult {
        // SAFETY: both ranges are checked device ranges.
        unsafe {
            host_copy("cuMemcpyDtoD", dst, src, n, &[
                Access::read("srcDevice", src, n as u64),
                Access::write("dstDevice", dst, n as u64),
            ])
        }
    }

    fn cuMemsetD8_v2(dst: CUdeviceptr, v: c_uchar, n: usize) -> CUresult {
        let acc = [Access::write("dstDevice", dst, n as u64)];
        device::check_range("cuMemsetD8", "dstDevice", dst, n as u64);
        race::host_access("cuMemsetD8", &acc);
        // SAFETY: checked device range.
        unsafe { device::bytes_mut(dst, n).fill(v) };
        CUDA_SUCCESS
    }

    fn cuMemsetD8Async(dst: CUdeviceptr, v: c_uchar, n: usize, h: CUstream) -> CUresult {
        stream_of(h).enqueue("cuMemsetD8Async", &[Access::write("dstDevice", dst, n as u64)], Box::new(move || {
            // SAFETY: checked at enqueue; ordered by the stream and the race checker.
            unsafe { device::bytes_mut(dst, n).fill(v) };
        }));
        CUDA_SUCCESS
    }

    fn cuMemcpyDtoDAsync_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize, h: CUstream) -> CUresult {
        stream_of(h).enqueue("cuMemcpyDtoDAsync", &[
            Access::read("srcDevice", src, n as u64),
            Access::write("dstDevice", dst, n as u64),
        ], Box::new(move || {
            // SAFETY: both ranges checked at enqueue.
            unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) };
        }));
        CUDA_SUCCESS
    }

    fn cuMemcpyHtoDAsync_v2(dst: CUdeviceptr, src: *const c_void, n: usize, h: CUstream) -> CUresult {
        // A pageable source is staged at the call, as the driver does.
        // SAFETY: the host source is the caller's (n readable bytes).
        let staged = unsafe { std::slice::from_raw_parts(src as *const u8, n) }.to_vec();
        stream_of(h).enqueue("cuMemcpyHtoDAsync", &[Access::write("dstDevice", dst, n as u64)], Box::new(move || {
            // SAFETY: checked at enqueue.
            unsafe { device::bytes_mut(dst, n).copy_from_slice(&staged) };
        }));
        CUDA_SUCCESS
    }

    fn cuMemcpyDtoHAsync_v2(dst: *mut c_void, src: CUdeviceptr, n: usize, h: CUstream) -> CUresult {
        let d = dst as usize;
        stream_of(h).enqueue("cuMemcpyDtoHAsync", &[Access::read("srcDevice", src, n as u64)], Box::new(move || {
            // SAFETY: the device range was checked; the host buffer must stay
            // valid until the stream reaches the copy (the CUDA contract).
            unsafe { std::ptr::copy(src as *const u8, d as *mut u8, n) };
        }));
        CUDA_SUCCESS
    }

    fn cuGetErrorString(e: CUresult, s: *mut *const c_char) -> CUresult {
        if s.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        // SAFETY: non-null output pointer; the text is static.
        unsafe { *s = error_text(e).as_ptr().cast() };
        CUDA_SUCCESS
    }

    fn cuGetErrorName(e: CUresult, s: *mut *const c_char) -> CUresult {
        if s.is_null() { return CUDA_ERROR_INVALID_VALUE; }
        // SAFETY: non-null output pointer; the text is static.
        unsafe { *s = error_name(e).as_ptr().cast() };
        CUDA_SUCCESS
    }
}
