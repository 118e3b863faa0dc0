//! Simulated devices and their memory.
//!
//! A device pointer is the host address of lazily backed memory (`mmap`
//! with `MAP_NORESERVE`: pages cost nothing until touched), placed between
//! two guard zones. Every operation checks the byte ranges it touches with
//! [`check_range`] before it runs: a range that is not inside one live
//! allocation stops the process, naming the call, the range and the
//! nearest allocation (or the freed one it falls in).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Guard bytes before and after every allocation.
pub const GUARD: u64 = 64 * 1024;
/// Allocation granularity (CUDA aligns to at least 256 bytes).
pub const ALIGN: u64 = 512;

/// The name a simulated device reports: the real H100 SXM name, marked
/// simulated so no output can mistake it for one.
pub const NAME: &str = "NVIDIA H100 80GB HBM3 (simulated)";
/// Streaming multiprocessors of an H100 SXM.
pub const SM_COUNT: i32 = 132;
/// L2 cache of an H100 SXM, bytes.
pub const L2_BYTES: i32 = 50 * 1024 * 1024;
/// The CUDA version the simulated driver reports (12.9).
pub const DRIVER_CUDA_VERSION: i32 = 12090;
/// The driver version string NVML reports.
pub const DRIVER_VERSION: &str = "575.57.08-simulated";

/// The 16 UUID bytes of global device `idx` on this host: a hash of the
/// host name and the index, so every simulated GPU in a job differs.
pub fn uuid_bytes(idx: usize) -> [u8; 16] {
    let host = crate::env::host_name();
    let mut h1: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host.bytes().chain((idx as u64).to_le_bytes()) {
        h1 ^= u64::from(b);
        h1 = h1.wrapping_mul(0x0100_0000_01b3);
    }
    let h2 = h1.rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5349_4d47_5055;
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&h1.to_le_bytes());
    out[8..].copy_from_slice(&h2.to_le_bytes());
    out
}

/// NVML's UUID string of global device `idx`.
pub fn uuid_string(idx: usize) -> String {
    mfubench_core::simgpu::nvml_uuid(&uuid_bytes(idx))
}

/// The global indices of the devices this process sees, in ordinal order:
/// `CUDA_VISIBLE_DEVICES` (integers, or the UUIDs [`crate::device`] gives)
/// over `0..devices_per_host()`; entries that name no device end the list,
/// as CUDA does.
pub fn visible_devices() -> Vec<usize> {
    let n = crate::env::devices_per_host();
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Err(_) => (0..n).collect(),
        Ok(v) => {
            let mut out = Vec::new();
            for item in v.split(',') {
                let item = item.trim();
                let idx = item
                    .parse::<usize>()
                    .ok()
                    .or_else(|| (0..n).find(|i| uuid_string(*i) == item));
                match idx {
                    Some(i) if i < n && !out.contains(&i) => out.push(i),
                    _ => break,
                }
            }
            out
        }
    }
}

/// A serial number for global device `idx` (NVML reports one per board).
pub fn serial(idx: usize) -> String {
    let b = uuid_bytes(idx);
    format!(
        "SIM{:010}",
        u64::from_le_bytes(b[..8].try_into().unwrap()) % 10_000_000_000
    )
}

#[derive(Debug, Clone)]
struct Alloc {
    id: u64,
    len: u64,
    device: usize,
    /// The mapping: base (guard included) and its length.
    map_base: usize,
    map_len: usize,
}

#[derive(Default)]
struct Heap {
    live: BTreeMap<u64, Alloc>,
    /// Recently freed ranges (start → (len, id)), for use-after-free messages.
    freed: BTreeMap<u64, (u64, u64)>,
    used: BTreeMap<usize, u64>,
    next_id: u64,
}

fn heap() -> &'static Mutex<Heap> {
    static H: OnceLock<Mutex<Heap>> = OnceLock::new();
    H.get_or_init(Default::default)
}

/// Bytes allocated on global device `device`.
pub fn used_bytes(device: usize) -> u64 {
    *heap().lock().unwrap().used.get(&device).unwrap_or(&0)
}

/// Allocates `bytes` on `device`; `None` when the device is full.
pub fn alloc(device: usize, bytes: u64) -> Option<u64> {
    let len = bytes.max(1).div_ceil(ALIGN) * ALIGN;
    let mut h = heap().lock().unwrap();
    let used = *h.used.get(&device).unwrap_or(&0);
    if used + len > crate::env::mem_bytes() {
        return None;
    }
    let map_len = (len + 2 * GUARD) as usize;
    // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let start = p as u64 + GUARD;
    h.next_id += 1;
    let id = h.next_id;
    h.freed.remove(&start);
    h.live.insert(
        start,
        Alloc {
            id,
            len,
            device,
            map_base: p as usize,
            map_len,
        },
    );
    *h.used.entry(device).or_insert(0) += len;
    Some(start)
}

/// Frees the allocation starting at `ptr`; false when `ptr` starts none.
pub fn free(ptr: u64) -> bool {
    let mut h = heap().lock().unwrap();
    let Some(a) = h.live.remove(&ptr) else {
        return false;
    };
    *h.used.entry(a.device).or_insert(0) -= a.len;
    h.freed.insert(ptr, (a.len, a.id));
    if h.freed.len() > 4096 {
        let first = *h.freed.keys().next().unwrap();
        h.freed.remove(&first);
    }
    drop(h);
    // SAFETY: the mapping was made by `alloc` with these bounds and is no
    // longer reachable through the heap.
    unsafe { libc::munmap(a.map_base as *mut libc::c_void, a.map_len) };
    true
}

/// The live allocation holding `[ptr, ptr + len)`, as (start, len, id).
pub fn find(ptr: u64, len: u64) -> Option<(u64, u64, u64)> {
    let h = heap().lock().unwrap();
    let (s, a) = h.live.range(..=ptr).next_back()?;
    (ptr + len.max(1) <= s + a.len).then_some((*s, a.len, a.id))
}

/// Stops the process unless `[ptr, ptr + len)` lies inside one live
/// allocation. `call` names the API call for the message.
pub fn check_range(call: &str, what: &str, ptr: u64, len: u64) {
    if len == 0 {
        return;
    }
    if find(ptr, len).is_some() {
        return;
    }
    let h = heap().lock().unwrap();
    let near = h
        .live
        .range(..=ptr)
        .next_back()
        .map(|(s, a)| {
            format!(
                "nearest allocation #{} is [{s:#x}, {:#x}) ({} bytes); the access ends {} bytes past it",
                a.id,
                s + a.len,
                a.len,
                (ptr + len).saturating_sub(s + a.len)
            )
        })
        .unwrap_or_else(|| "no live allocation below it".into());
    let freed = h
        .freed
        .range(..=ptr)
        .next_back()
        .filter(|(s, (l, _))| ptr < *s + *l)
        .map(|(s, (l, id))| {
            format!(
                "; it lies in allocation #{id} [{s:#x}, {:#x}), already freed",
                s + l
            )
        })
        .unwrap_or_default();
    drop(h);
    crate::fatal(&format!(
        "{call}: {what} [{ptr:#x}, {:#x}) ({len} bytes) is outside every live allocation: {near}{freed}",
        ptr + len
    ));
}

/// A byte range an operation reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Device address.
    pub ptr: u64,
    /// Bytes.
    pub len: u64,
    /// Whether the operation writes it.
    pub write: bool,
    /// What the range is, for messages ("A", "recvbuff").
    pub what: &'static str,
}

impl Access {
    /// A range read.
    pub fn read(what: &'static str, ptr: u64, len: u64) -> Access {
        Access {
            ptr,
            len,
            write: false,
            what,
        }
    }
    /// A range written.
    pub fn write(what: &'static str, ptr: u64, len: u64) -> Access {
        Access {
            ptr,
            len,
            write: true,
            what,
        }
    }
}

/// Host memory view of a device range (already checked).
///
/// # Safety
/// `[ptr, ptr + len)` must lie in a live allocation and no other thread may
/// write it while the slice lives (the race checker's job).
pub unsafe fn bytes<'a>(ptr: u64, len: usize) -> &'a [u8] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
}

/// Mutable host memory view of a device range (already checked).
///
/// # Safety
/// As [`bytes`], and no other view of the range may exist.
pub unsafe fn bytes_mut<'a>(ptr: u64, len: usize) -> &'a mut [u8] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) }
}
