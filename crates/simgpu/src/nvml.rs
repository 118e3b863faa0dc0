//! The NVML stand-in (`libnvidia-ml.so.1`): the entry points nvml-wrapper
//! 0.13 reaches from the worker's telemetry (`Nvml::init`, `nvmlShutdown`
//! on drop, the driver version, handles by UUID and index, identity, clocks,
//! temperature, power, throttle reasons, ECC counters, the PCIe link) and
//! the XID event sets of the acceptance suite.
//!
//! **Devices.** NVML numbers every simulated device of this host, whatever
//! `CUDA_VISIBLE_DEVICES` says: indices `0..`[`crate::env::devices_per_host`].
//! A device handle is the address of the device's entry in a table that
//! lives as long as the process; it is compared, never dereferenced, so a
//! handle NVML did not give out is `NVML_ERROR_INVALID_ARGUMENT`, not a
//! crash. Identity comes from [`crate::device`]: the UUID string is the one
//! the worker derives from the CUDA UUID bytes, so `nvmlDeviceGetHandleByUUID`
//! finds the GPU a rank's CUDA ordinal names.
//!
//! **Readings** are those of an idle-ish H100 SXM ([`reading_of`]) unless a
//! fault of [`crate::fault`] applies to the device: `throttle=thermal`
//! lowers the SM clock and raises the temperature with the hardware and
//! software thermal-slowdown reasons set, `throttle=power` lowers the clock
//! at the power cap, `ecc=N` reports N volatile uncorrected DRAM errors.
//! The faults are looked up at each reading, so one delayed with
//! `,after=SECONDS` shows from then on.
//!
//! **Events.** An event set is a heap object (found by its handle in a
//! registry, so a freed or made-up set is an error) holding the (device,
//! mask) pairs registered with it and a queue of pending events. Injected
//! XIDs "happened at start": registering a set for critical XIDs of a device
//! with an `xid=CODE` fault queues one event carrying that code, delivered by
//! the first wait ([`start_events`]). A fault delayed with `,after=SECONDS`
//! is queued by the first wait after its delay has passed (a wait in
//! progress wakes for it). A wait with nothing pending returns
//! `NVML_ERROR_TIMEOUT` once its timeout has passed.
//!
//! **Init.** `nvmlInit` calls are counted and `nvmlShutdown` undoes one, as
//! NVML does; device and event calls without a live init return
//! `NVML_ERROR_UNINITIALIZED`.
//!
//! # Safety
//!
//! Every export has NVML's contract (nvml.h): each pointer argument is null
//! or valid for what nvml.h says the call reads or writes (a string buffer:
//! `length` bytes). Device and event-set handles are compared with those
//! this library gave out, never dereferenced, so a wrong one is refused.

// The exports' safety contract is NVML's, stated once above rather than on
// each of them.
#![allow(clippy::missing_safety_doc)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{c_char, c_int, c_uint, c_ulonglong, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::device;
use crate::fault::Fault;
use crate::hdr::*;

/// SM (and graphics) clock of an unthrottled H100 SXM, MHz.
pub const SM_CLOCK_MHZ: u32 = 1980;
/// Memory clock of an H100 SXM (HBM3), MHz.
pub const MEM_CLOCK_MHZ: u32 = 2619;
/// Video clock of an H100 SXM, MHz.
pub const VIDEO_CLOCK_MHZ: u32 = 1755;
/// SM clock under `throttle=thermal`, MHz.
pub const THERMAL_SM_CLOCK_MHZ: u32 = 1200;
/// SM clock under `throttle=power`, MHz.
pub const POWER_SM_CLOCK_MHZ: u32 = 1400;
/// GPU temperature, degrees C.
pub const TEMPERATURE_C: u32 = 45;
/// GPU temperature under `throttle=thermal`, degrees C.
pub const HOT_TEMPERATURE_C: u32 = 92;
/// Power draw, milliwatts.
pub const POWER_MW: u32 = 350_000;
/// Enforced (and management) power limit, milliwatts.
pub const POWER_LIMIT_MW: u32 = 700_000;
/// Power draw at the cap (`throttle=power`), milliwatts.
pub const CAPPED_POWER_MW: u32 = 699_000;
/// PCIe generation, current and maximum.
pub const PCIE_GEN: u32 = 5;
/// PCIe lanes, current and maximum.
pub const PCIE_WIDTH: u32 = 16;
/// PCI device id (device << 16 | vendor) of an H100 SXM5 80GB.
pub const PCI_DEVICE_ID: u32 = 0x2330_10DE;
/// PCI subsystem id of an H100 SXM5 80GB.
pub const PCI_SUBSYSTEM_ID: u32 = 0x16C1_10DE;
/// The NVML version string (CUDA major, then the driver version).
pub const NVML_VERSION: &str = "12.575.57.08-simulated";

/// Throttle-reason bits set by `throttle=thermal`.
pub const THERMAL_REASONS: u64 =
    (nvmlClocksThrottleReasonHwThermalSlowdown | nvmlClocksThrottleReasonSwThermalSlowdown) as u64;
/// Throttle-reason bits set by `throttle=power`.
pub const POWER_REASONS: u64 = nvmlClocksThrottleReasonSwPowerCap as u64;
/// Every throttle reason an H100 can report.
pub const SUPPORTED_REASONS: u64 = (nvmlClocksThrottleReasonGpuIdle
    | nvmlClocksThrottleReasonApplicationsClocksSetting
    | nvmlClocksThrottleReasonSwPowerCap
    | nvmlClocksThrottleReasonHwSlowdown
    | nvmlClocksThrottleReasonSyncBoost
    | nvmlClocksThrottleReasonSwThermalSlowdown
    | nvmlClocksThrottleReasonHwThermalSlowdown
    | nvmlClocksThrottleReasonHwPowerBrakeSlowdown
    | nvmlClocksThrottleReasonDisplayClockSetting) as u64;
/// The event types a simulated device supports.
pub const SUPPORTED_EVENTS: u64 = (nvmlEventTypeSingleBitEccError
    | nvmlEventTypeDoubleBitEccError
    | nvmlEventTypePState
    | nvmlEventTypeXidCriticalError
    | nvmlEventTypeClock) as u64;
/// `gpuInstanceId` / `computeInstanceId` of an event without MIG.
const NO_INSTANCE: c_uint = 0xFFFF_FFFF;

/// What a device reports, given its faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Current SM (and graphics) clock, MHz.
    pub sm_clock_mhz: u32,
    /// Current memory clock, MHz.
    pub mem_clock_mhz: u32,
    /// GPU temperature, degrees C.
    pub temperature_c: u32,
    /// Power draw, milliwatts.
    pub power_mw: u32,
    /// Current clock-event ("throttle") reasons, NVML's bits.
    pub throttle_reasons: u64,
    /// Uncorrected DRAM ECC errors (volatile, and so aggregate too).
    pub ecc_uncorrected: u64,
}

/// The reading of a device with these faults: an unthrottled H100 SXM
/// unless a `throttle` or `ecc` fault says otherwise (several combine: the
/// lowest clock, every reason, the errors added up).
pub fn reading_of(faults: &[Fault]) -> Reading {
    let mut r = Reading {
        sm_clock_mhz: SM_CLOCK_MHZ,
        mem_clock_mhz: MEM_CLOCK_MHZ,
        temperature_c: TEMPERATURE_C,
        power_mw: POWER_MW,
        throttle_reasons: 0,
        ecc_uncorrected: 0,
    };
    for f in faults {
        match f {
            Fault::Throttle(kind) if kind == "thermal" => {
                r.sm_clock_mhz = r.sm_clock_mhz.min(THERMAL_SM_CLOCK_MHZ);
                r.temperature_c = HOT_TEMPERATURE_C;
                r.throttle_reasons |= THERMAL_REASONS;
            }
            Fault::Throttle(kind) if kind == "power" => {
                r.sm_clock_mhz = r.sm_clock_mhz.min(POWER_SM_CLOCK_MHZ);
                r.power_mw = CAPPED_POWER_MW;
                r.throttle_reasons |= POWER_REASONS;
            }
            Fault::Ecc(n) => r.ecc_uncorrected += n,
            _ => {}
        }
    }
    r
}

/// The events a device with these faults delivers to a set newly
/// registered for `mask`, as (event type, event data): one critical-XID
/// event per `xid` fault (data: the code), one double-bit ECC event where
/// `ecc` faults report errors (data: 0, as NVML gives for non-XID events).
pub fn start_events(faults: &[Fault], mask: u64) -> Vec<(u64, u64)> {
    let xid = u64::from(nvmlEventTypeXidCriticalError);
    let dbe = u64::from(nvmlEventTypeDoubleBitEccError);
    let mut out = Vec::new();
    if mask & xid != 0 {
        out.extend(faults.iter().filter_map(|f| match f {
            Fault::Xid(code) => Some((xid, *code)),
            _ => None,
        }));
    }
    if mask & dbe != 0 && reading_of(faults).ecc_uncorrected > 0 {
        out.push((dbe, 0));
    }
    out
}

/// The PCI bus id of global device `idx` (domain, bus), as NVML's
/// "DDDDDDDD:BB:00.0": bus 0x18, 0x28, … as on an 8-GPU HGX board; past
/// bus 0xff the domain grows.
pub fn pci_location(idx: usize) -> (u32, u32) {
    let n = 0x18 + idx as u32 * 0x10;
    (n >> 8, n & 0xff)
}

/// One simulated device as NVML sees it.
struct Dev {
    idx: usize,
    uuid: String,
    serial: String,
}

impl Dev {
    /// The device's faults in effect now (a delayed one once its delay has
    /// passed): looked up at each reading, never kept.
    fn faults(&self) -> Vec<Fault> {
        crate::fault::of_device(self.idx)
    }
}

/// Every simulated device of this host, fixed at first use.
fn devices() -> &'static [Dev] {
    static DEVS: OnceLock<Vec<Dev>> = OnceLock::new();
    DEVS.get_or_init(|| {
        // The clock of delayed faults starts no later than NVML's first
        // device lookup.
        crate::fault::start();
        (0..crate::env::devices_per_host())
            .map(|idx| Dev {
                idx,
                uuid: device::uuid_string(idx),
                serial: device::serial(idx),
            })
            .collect()
    })
}

/// The handle of device `idx` (the address of its table entry).
fn handle_of(idx: usize) -> nvmlDevice_t {
    &devices()[idx] as *const Dev as nvmlDevice_t
}

/// The device a handle names; None for null or foreign handles.
fn dev_of(h: nvmlDevice_t) -> Option<&'static Dev> {
    devices()
        .iter()
        .find(|d| std::ptr::eq(*d as *const Dev, h as *const Dev))
}

/// Live `nvmlInit` calls not yet undone by `nvmlShutdown`.
fn inits() -> MutexGuard<'static, u64> {
    static N: Mutex<u64> = Mutex::new(0);
    N.lock().unwrap_or_else(|e| e.into_inner())
}

fn initialized() -> bool {
    *inits() > 0
}

/// Writes `v` to `out`.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, v: T) -> nvmlReturn_t {
    if out.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: not null, and valid for writes by the caller's contract.
    unsafe { out.write(v) };
    NVML_SUCCESS
}

/// Copies `s` and its NUL into the caller's buffer of `length` bytes.
///
/// # Safety
/// `buf` must be null or valid for writes of `length` bytes.
unsafe fn put_str(s: &str, buf: *mut c_char, length: c_uint) -> nvmlReturn_t {
    if buf.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    if (length as usize) < s.len() + 1 {
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    // SAFETY: the buffer holds `length` >= s.len() + 1 bytes (caller's
    // contract), and `s` does not overlap a buffer the caller owns.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    NVML_SUCCESS
}

/// The common checks of a device query: initialized, a handle NVML gave
/// out, then `f`'s value written to `out`.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn query<T>(
    device: nvmlDevice_t,
    out: *mut T,
    f: impl FnOnce(&Dev) -> Result<T, nvmlReturn_t>,
) -> nvmlReturn_t {
    if !initialized() {
        return NVML_ERROR_UNINITIALIZED;
    }
    let Some(d) = dev_of(device) else {
        return NVML_ERROR_INVALID_ARGUMENT;
    };
    if out.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    match f(d) {
        // SAFETY: the caller's contract.
        Ok(v) => unsafe { put(out, v) },
        Err(e) => e,
    }
}

/// A device string query (name, UUID, serial).
///
/// # Safety
/// `buf` must be null or valid for writes of `length` bytes.
unsafe fn query_str(
    device: nvmlDevice_t,
    buf: *mut c_char,
    length: c_uint,
    f: impl FnOnce(&Dev) -> String,
) -> nvmlReturn_t {
    if !initialized() {
        return NVML_ERROR_UNINITIALIZED;
    }
    let Some(d) = dev_of(device) else {
        return NVML_ERROR_INVALID_ARGUMENT;
    };
    // SAFETY: the caller's contract.
    unsafe { put_str(&f(d), buf, length) }
}

/// The PCI info of global device `idx`.
fn pci_info(idx: usize) -> nvmlPciInfo_t {
    let (domain, bus) = pci_location(idx);
    let mut p = nvmlPciInfo_t {
        domain,
        bus,
        device: 0,
        pciDeviceId: PCI_DEVICE_ID,
        pciSubSystemId: PCI_SUBSYSTEM_ID,
        ..Default::default()
    };
    let id = format!("{domain:08X}:{bus:02X}:00.0");
    let legacy = format!("{domain:04X}:{bus:02X}:00.0");
    for (dst, src) in p.busId.iter_mut().zip(id.bytes()) {
        *dst = src as c_char;
    }
    for (dst, src) in p.busIdLegacy.iter_mut().zip(legacy.bytes()) {
        *dst = src as c_char;
    }
    p
}

/// (domain, bus, device, function) of a PCI bus id string, either form.
fn parse_bus_id(s: &str) -> Option<(u32, u32, u32, u32)> {
    let (rest, func) = s.trim().rsplit_once('.')?;
    let mut parts = rest.split(':');
    let domain = u32::from_str_radix(parts.next()?, 16).ok()?;
    let bus = u32::from_str_radix(parts.next()?, 16).ok()?;
    let dev = u32::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((domain, bus, dev, u32::from_str_radix(func, 16).ok()?))
}

/// One event waiting in a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Pending {
    device: usize,
    kind: u64,
    data: u64,
}

/// An event set: what is registered with it and what waits in it.
#[derive(Default)]
struct EventSet {
    /// Registered event types per global device.
    registered: HashMap<usize, u64>,
    /// Events queued at registration, so a second registration of the same
    /// device does not deliver them twice.
    queued: HashSet<Pending>,
    pending: VecDeque<Pending>,
}

/// Live event sets by handle, and the condition waits sleep on.
fn sets() -> &'static (Mutex<HashMap<usize, EventSet>>, Condvar) {
    static SETS: OnceLock<(Mutex<HashMap<usize, EventSet>>, Condvar)> = OnceLock::new();
    SETS.get_or_init(Default::default)
}

fn lock_sets() -> MutexGuard<'static, HashMap<usize, EventSet>> {
    sets().0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers `mask` for device `idx`, whose faults in effect are `faults`,
/// with `set`, queuing the events they deliver ([`start_events`]).
fn register(set: &mut EventSet, idx: usize, faults: &[Fault], mask: u64) {
    *set.registered.entry(idx).or_insert(0) |= mask;
    queue(set, idx, faults, mask);
}

/// Queues the events `faults` of device `idx` deliver to a set registered
/// for `mask`, each at most once per set.
fn queue(set: &mut EventSet, idx: usize, faults: &[Fault], mask: u64) {
    for (kind, data) in start_events(faults, mask) {
        let p = Pending {
            device: idx,
            kind,
            data,
        };
        if set.queued.insert(p) {
            set.pending.push_back(p);
        }
    }
}

/// Queues the events of faults whose delay has passed since the set's
/// devices registered.
fn catch_up(set: &mut EventSet) {
    let registered: Vec<(usize, u64)> = set.registered.iter().map(|(d, m)| (*d, *m)).collect();
    for (idx, mask) in registered {
        queue(set, idx, &crate::fault::of_device(idx), mask);
    }
}

crate::exports! {
    /// Starts NVML (counted: each call needs its `nvmlShutdown`).
    fn nvmlInit_v2() -> nvmlReturn_t {
        *inits() += 1;
        NVML_SUCCESS
    }

    /// As `nvmlInit_v2`; the flags (e.g. no GPUs required) change nothing
    /// here: there is always at least one device.
    fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
        *inits() += 1;
        NVML_SUCCESS
    }

    /// Undoes one `nvmlInit`.
    fn nvmlShutdown() -> nvmlReturn_t {
        let mut n = inits();
        if *n == 0 {
            return NVML_ERROR_UNINITIALIZED;
        }
        *n -= 1;
        NVML_SUCCESS
    }

    /// NVML's text for a return code (a static string).
    fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
        error_string(result).as_ptr()
    }

    /// The driver version, [`device::DRIVER_VERSION`].
    fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> nvmlReturn_t {
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        // SAFETY: NVML's contract: `version` holds `length` bytes.
        unsafe { put_str(device::DRIVER_VERSION, version, length) }
    }

    /// The NVML library version, [`NVML_VERSION`].
    fn nvmlSystemGetNVMLVersion(version: *mut c_char, length: c_uint) -> nvmlReturn_t {
        // SAFETY: NVML's contract: `version` holds `length` bytes.
        unsafe { put_str(NVML_VERSION, version, length) }
    }

    /// The CUDA version of the driver (12.9).
    fn nvmlSystemGetCudaDriverVersion(cuda_driver_version: *mut c_int) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { put(cuda_driver_version, device::DRIVER_CUDA_VERSION) }
    }

    /// As `nvmlSystemGetCudaDriverVersion`.
    fn nvmlSystemGetCudaDriverVersion_v2(cuda_driver_version: *mut c_int) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { put(cuda_driver_version, device::DRIVER_CUDA_VERSION) }
    }

    /// Every simulated device of this host (`CUDA_VISIBLE_DEVICES` does
    /// not apply to NVML).
    fn nvmlDeviceGetCount_v2(device_count: *mut c_uint) -> nvmlReturn_t {
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { put(device_count, devices().len() as c_uint) }
    }

    /// The handle of device `index`.
    fn nvmlDeviceGetHandleByIndex_v2(index: c_uint, device: *mut nvmlDevice_t) -> nvmlReturn_t {
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        if index as usize >= devices().len() {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { put(device, handle_of(index as usize)) }
    }

    /// The handle of the device with this UUID ("GPU-…");
    /// `NVML_ERROR_NOT_FOUND` when no device has it.
    fn nvmlDeviceGetHandleByUUID(uuid: *const c_char, device: *mut nvmlDevice_t) -> nvmlReturn_t {
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        if uuid.is_null() || device.is_null() {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: NVML's contract: `uuid` is a NUL-terminated string.
        let want = unsafe { CStr::from_ptr(uuid) }.to_bytes();
        match devices().iter().find(|d| d.uuid.as_bytes() == want) {
            // SAFETY: checked not null; writable by NVML's contract.
            Some(d) => unsafe { put(device, handle_of(d.idx)) },
            None => NVML_ERROR_NOT_FOUND,
        }
    }

    /// The handle of the device at this PCI bus id (either form:
    /// "00000000:18:00.0" or "0000:18:00.0", any case).
    fn nvmlDeviceGetHandleByPciBusId_v2(
        pci_bus_id: *const c_char,
        device: *mut nvmlDevice_t,
    ) -> nvmlReturn_t {
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        if pci_bus_id.is_null() || device.is_null() {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: NVML's contract: `pci_bus_id` is a NUL-terminated string.
        let s = unsafe { CStr::from_ptr(pci_bus_id) }.to_string_lossy();
        let Some(want) = parse_bus_id(&s) else {
            return NVML_ERROR_INVALID_ARGUMENT;
        };
        let found = devices().iter().find(|d| {
            let (domain, bus) = pci_location(d.idx);
            want == (domain, bus, 0, 0)
        });
        match found {
            // SAFETY: checked not null; writable by NVML's contract.
            Some(d) => unsafe { put(device, handle_of(d.idx)) },
            None => NVML_ERROR_NOT_FOUND,
        }
    }

    /// The device's name, [`device::NAME`].
    fn nvmlDeviceGetName(device: nvmlDevice_t, name: *mut c_char, length: c_uint) -> nvmlReturn_t {
        // SAFETY: NVML's contract: `name` holds `length` bytes.
        unsafe { query_str(device, name, length, |_| device::NAME.to_string()) }
    }

    /// The device's UUID string.
    fn nvmlDeviceGetUUID(device: nvmlDevice_t, uuid: *mut c_char, length: c_uint) -> nvmlReturn_t {
        // SAFETY: NVML's contract: `uuid` holds `length` bytes.
        unsafe { query_str(device, uuid, length, |d| d.uuid.clone()) }
    }

    /// The board's serial number.
    fn nvmlDeviceGetSerial(
        device: nvmlDevice_t,
        serial: *mut c_char,
        length: c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: `serial` holds `length` bytes.
        unsafe { query_str(device, serial, length, |d| d.serial.clone()) }
    }

    /// NVML's index of the device.
    fn nvmlDeviceGetIndex(device: nvmlDevice_t, index: *mut c_uint) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, index, |d| Ok(d.idx as c_uint)) }
    }

    /// The device's minor number (`/dev/nvidiaN`).
    fn nvmlDeviceGetMinorNumber(device: nvmlDevice_t, minor_number: *mut c_uint) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, minor_number, |d| Ok(d.idx as c_uint)) }
    }

    /// Compute capability 9.0 (sm_90).
    fn nvmlDeviceGetCudaComputeCapability(
        device: nvmlDevice_t,
        major: *mut c_int,
        minor: *mut c_int,
    ) -> nvmlReturn_t {
        if minor.is_null() {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: NVML's contract: the pointers are null or writable.
        unsafe {
            let r = query(device, major, |_| Ok(9));
            if r == NVML_SUCCESS {
                minor.write(0);
            }
            r
        }
    }

    /// PCI identity: bus id "00000000:BB:00.0", H100 SXM5 device id.
    fn nvmlDeviceGetPciInfo_v3(device: nvmlDevice_t, pci: *mut nvmlPciInfo_t) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, pci, |d| Ok(pci_info(d.idx))) }
    }

    /// Memory: total as the simulation sets it, used as this process's
    /// simulated allocations (other processes' are not counted).
    fn nvmlDeviceGetMemoryInfo(device: nvmlDevice_t, memory: *mut nvmlMemory_t) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe {
            query(device, memory, |d| {
                let total = crate::env::mem_bytes();
                let used = device::used_bytes(d.idx).min(total);
                Ok(nvmlMemory_t { total, free: total - used, used })
            })
        }
    }

    /// The current clock of one domain, MHz ([`reading_of`]).
    fn nvmlDeviceGetClockInfo(
        device: nvmlDevice_t,
        type_: nvmlClockType_t,
        clock: *mut c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe {
            query(device, clock, |d| {
                let r = reading_of(&d.faults());
                match type_ {
                    NVML_CLOCK_GRAPHICS | NVML_CLOCK_SM => Ok(r.sm_clock_mhz),
                    NVML_CLOCK_MEM => Ok(r.mem_clock_mhz),
                    NVML_CLOCK_VIDEO => Ok(VIDEO_CLOCK_MHZ),
                    _ => Err(NVML_ERROR_INVALID_ARGUMENT),
                }
            })
        }
    }

    /// The maximum clock of one domain, MHz (faults do not change it).
    fn nvmlDeviceGetMaxClockInfo(
        device: nvmlDevice_t,
        type_: nvmlClockType_t,
        clock: *mut c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe {
            query(device, clock, |_| match type_ {
                NVML_CLOCK_GRAPHICS | NVML_CLOCK_SM => Ok(SM_CLOCK_MHZ),
                NVML_CLOCK_MEM => Ok(MEM_CLOCK_MHZ),
                NVML_CLOCK_VIDEO => Ok(VIDEO_CLOCK_MHZ),
                _ => Err(NVML_ERROR_INVALID_ARGUMENT),
            })
        }
    }

    /// The GPU temperature, degrees C (the only sensor NVML defines).
    fn nvmlDeviceGetTemperature(
        device: nvmlDevice_t,
        sensor_type: nvmlTemperatureSensors_t,
        temp: *mut c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe {
            query(device, temp, |d| match sensor_type {
                NVML_TEMPERATURE_GPU => Ok(reading_of(&d.faults()).temperature_c),
                _ => Err(NVML_ERROR_INVALID_ARGUMENT),
            })
        }
    }

    /// Power draw, milliwatts.
    fn nvmlDeviceGetPowerUsage(device: nvmlDevice_t, power: *mut c_uint) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, power, |d| Ok(reading_of(&d.faults()).power_mw)) }
    }

    /// The enforced power limit, milliwatts.
    fn nvmlDeviceGetEnforcedPowerLimit(device: nvmlDevice_t, limit: *mut c_uint) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, limit, |_| Ok(POWER_LIMIT_MW)) }
    }

    /// The power management limit, milliwatts (the enforced one).
    fn nvmlDeviceGetPowerManagementLimit(device: nvmlDevice_t, limit: *mut c_uint) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, limit, |_| Ok(POWER_LIMIT_MW)) }
    }

    /// Current clock-event reasons (the deprecated name nvml-wrapper calls).
    fn nvmlDeviceGetCurrentClocksThrottleReasons(
        device: nvmlDevice_t,
        clocks_throttle_reasons: *mut c_ulonglong,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe {
            query(device, clocks_throttle_reasons, |d| {
                Ok(reading_of(&d.faults()).throttle_reasons)
            })
        }
    }

    /// Current clock-event reasons.
    fn nvmlDeviceGetCurrentClocksEventReasons(
        device: nvmlDevice_t,
        clocks_event_reasons: *mut c_ulonglong,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe {
            query(device, clocks_event_reasons, |d| {
                Ok(reading_of(&d.faults()).throttle_reasons)
            })
        }
    }

    /// The clock-event reasons the device can report (deprecated name).
    fn nvmlDeviceGetSupportedClocksThrottleReasons(
        device: nvmlDevice_t,
        supported_clocks_throttle_reasons: *mut c_ulonglong,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, supported_clocks_throttle_reasons, |_| Ok(SUPPORTED_REASONS)) }
    }

    /// The clock-event reasons the device can report.
    fn nvmlDeviceGetSupportedClocksEventReasons(
        device: nvmlDevice_t,
        supported_clocks_event_reasons: *mut c_ulonglong,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, supported_clocks_event_reasons, |_| Ok(SUPPORTED_REASONS)) }
    }

    /// ECC is on (current and pending), as on every H100.
    fn nvmlDeviceGetEccMode(
        device: nvmlDevice_t,
        current: *mut nvmlEnableState_t,
        pending: *mut nvmlEnableState_t,
    ) -> nvmlReturn_t {
        if pending.is_null() {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        // SAFETY: NVML's contract: the pointers are null or writable.
        unsafe {
            let r = query(device, current, |_| Ok(NVML_FEATURE_ENABLED));
            if r == NVML_SUCCESS {
                pending.write(NVML_FEATURE_ENABLED);
            }
            r
        }
    }

    /// Total ECC errors: corrected 0, uncorrected as `ecc=N` says (the
    /// aggregate counter includes the volatile one).
    fn nvmlDeviceGetTotalEccErrors(
        device: nvmlDevice_t,
        error_type: nvmlMemoryErrorType_t,
        counter_type: nvmlEccCounterType_t,
        ecc_counts: *mut c_ulonglong,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe {
            query(device, ecc_counts, |d| {
                if !matches!(counter_type, NVML_VOLATILE_ECC | NVML_AGGREGATE_ECC) {
                    return Err(NVML_ERROR_INVALID_ARGUMENT);
                }
                match error_type {
                    NVML_MEMORY_ERROR_TYPE_CORRECTED => Ok(0),
                    NVML_MEMORY_ERROR_TYPE_UNCORRECTED => Ok(reading_of(&d.faults()).ecc_uncorrected),
                    _ => Err(NVML_ERROR_INVALID_ARGUMENT),
                }
            })
        }
    }

    /// ECC errors at one location: the `ecc=N` errors are uncorrected
    /// errors of device memory (DRAM); every other count is 0.
    fn nvmlDeviceGetMemoryErrorCounter(
        device: nvmlDevice_t,
        error_type: nvmlMemoryErrorType_t,
        counter_type: nvmlEccCounterType_t,
        location_type: nvmlMemoryLocation_t,
        count: *mut c_ulonglong,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe {
            query(device, count, |d| {
                if !matches!(counter_type, NVML_VOLATILE_ECC | NVML_AGGREGATE_ECC)
                    || location_type >= NVML_MEMORY_LOCATION_COUNT
                {
                    return Err(NVML_ERROR_INVALID_ARGUMENT);
                }
                match error_type {
                    NVML_MEMORY_ERROR_TYPE_CORRECTED => Ok(0),
                    NVML_MEMORY_ERROR_TYPE_UNCORRECTED => Ok(match location_type {
                        NVML_MEMORY_LOCATION_DRAM => reading_of(&d.faults()).ecc_uncorrected,
                        _ => 0,
                    }),
                    _ => Err(NVML_ERROR_INVALID_ARGUMENT),
                }
            })
        }
    }

    /// Current PCIe generation.
    fn nvmlDeviceGetCurrPcieLinkGeneration(
        device: nvmlDevice_t,
        curr_link_gen: *mut c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, curr_link_gen, |_| Ok(PCIE_GEN)) }
    }

    /// Maximum PCIe generation of the device and system.
    fn nvmlDeviceGetMaxPcieLinkGeneration(
        device: nvmlDevice_t,
        max_link_gen: *mut c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, max_link_gen, |_| Ok(PCIE_GEN)) }
    }

    /// Maximum PCIe generation of the device alone.
    fn nvmlDeviceGetGpuMaxPcieLinkGeneration(
        device: nvmlDevice_t,
        max_link_gen_device: *mut c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, max_link_gen_device, |_| Ok(PCIE_GEN)) }
    }

    /// Current PCIe width, lanes.
    fn nvmlDeviceGetCurrPcieLinkWidth(
        device: nvmlDevice_t,
        curr_link_width: *mut c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, curr_link_width, |_| Ok(PCIE_WIDTH)) }
    }

    /// Maximum PCIe width, lanes.
    fn nvmlDeviceGetMaxPcieLinkWidth(
        device: nvmlDevice_t,
        max_link_width: *mut c_uint,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, max_link_width, |_| Ok(PCIE_WIDTH)) }
    }

    /// The event types a device supports, [`SUPPORTED_EVENTS`].
    fn nvmlDeviceGetSupportedEventTypes(
        device: nvmlDevice_t,
        event_types: *mut c_ulonglong,
    ) -> nvmlReturn_t {
        // SAFETY: NVML's contract: the pointer is null or writable.
        unsafe { query(device, event_types, |_| Ok(SUPPORTED_EVENTS)) }
    }

    /// A new, empty event set.
    fn nvmlEventSetCreate(set: *mut nvmlEventSet_t) -> nvmlReturn_t {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        if set.is_null() {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        // Handles are never reused and never dereferenced: a freed or
        // made-up one is found missing from the registry.
        let key = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) << 4;
        lock_sets().insert(key, EventSet::default());
        // SAFETY: checked not null; writable by NVML's contract.
        unsafe { put(set, key as nvmlEventSet_t) }
    }

    /// Registers event types of a device with a set; the device's injected
    /// XIDs are queued now ([`start_events`]), delayed ones by the first
    /// wait after their delay.
    fn nvmlDeviceRegisterEvents(
        device: nvmlDevice_t,
        event_types: c_ulonglong,
        set: nvmlEventSet_t,
    ) -> nvmlReturn_t {
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        let Some(d) = dev_of(device) else {
            return NVML_ERROR_INVALID_ARGUMENT;
        };
        if event_types == 0 {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        if event_types & !SUPPORTED_EVENTS != 0 {
            return NVML_ERROR_NOT_SUPPORTED;
        }
        let mut sets = lock_sets();
        let Some(s) = sets.get_mut(&(set as usize)) else {
            return NVML_ERROR_INVALID_ARGUMENT;
        };
        register(s, d.idx, &d.faults(), event_types);
        drop(sets);
        sets_changed();
        NVML_SUCCESS
    }

    /// Delivers the oldest pending event of the set, waiting up to
    /// `timeoutms` for one; `NVML_ERROR_TIMEOUT` when none came.
    fn nvmlEventSetWait_v2(
        set: nvmlEventSet_t,
        data: *mut nvmlEventData_t,
        timeoutms: c_uint,
    ) -> nvmlReturn_t {
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        if data.is_null() {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        let deadline = Instant::now() + Duration::from_millis(u64::from(timeoutms));
        let mut sets = lock_sets();
        loop {
            let Some(s) = sets.get_mut(&(set as usize)) else {
                return NVML_ERROR_INVALID_ARGUMENT;
            };
            catch_up(s);
            if let Some(p) = s.pending.pop_front() {
                let ev = nvmlEventData_t {
                    device: handle_of(p.device),
                    eventType: p.kind,
                    eventData: p.data,
                    gpuInstanceId: NO_INSTANCE,
                    computeInstanceId: NO_INSTANCE,
                };
                // SAFETY: checked not null; writable by NVML's contract.
                return unsafe { put(data, ev) };
            }
            let now = Instant::now();
            if now >= deadline {
                return NVML_ERROR_TIMEOUT;
            }
            // Wake for a delayed fault that starts before the deadline.
            let until = match crate::fault::next_start() {
                Some(d) => (deadline - now).min(d),
                None => deadline - now,
            };
            sets = sets_wait(sets, until);
        }
    }

    /// Frees an event set and whatever is pending in it.
    fn nvmlEventSetFree(set: nvmlEventSet_t) -> nvmlReturn_t {
        if !initialized() {
            return NVML_ERROR_UNINITIALIZED;
        }
        let removed = lock_sets().remove(&(set as usize));
        if removed.is_none() {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
        sets_changed();
        NVML_SUCCESS
    }
}

/// Wakes the waits on event sets (an event was queued, a set freed).
fn sets_changed() {
    sets().1.notify_all();
}

/// Sleeps on the event-set condition for at most `d`.
fn sets_wait(
    g: MutexGuard<'static, HashMap<usize, EventSet>>,
    d: Duration,
) -> MutexGuard<'static, HashMap<usize, EventSet>> {
    match sets().1.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

/// NVML's text for a return code.
fn error_string(r: nvmlReturn_t) -> &'static CStr {
    match r {
        NVML_SUCCESS => c"Success",
        NVML_ERROR_UNINITIALIZED => c"Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT => c"Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED => c"Not Supported",
        NVML_ERROR_NO_PERMISSION => c"Insufficient Permissions",
        NVML_ERROR_ALREADY_INITIALIZED => c"Already Initialized",
        NVML_ERROR_NOT_FOUND => c"Not Found",
        NVML_ERROR_INSUFFICIENT_SIZE => c"Insufficient Size",
        NVML_ERROR_INSUFFICIENT_POWER => c"Insufficient External Power",
        NVML_ERROR_DRIVER_NOT_LOADED => c"Driver Not Loaded",
        NVML_ERROR_TIMEOUT => c"Timeout",
        NVML_ERROR_IRQ_ISSUE => c"Interrupt request issue",
        NVML_ERROR_LIBRARY_NOT_FOUND => c"NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND => c"Function Not Found",
        NVML_ERROR_CORRUPTED_INFOROM => c"Corrupted infoROM",
        NVML_ERROR_GPU_IS_LOST => c"GPU is lost",
        NVML_ERROR_RESET_REQUIRED => c"GPU requires restart",
        NVML_ERROR_OPERATING_SYSTEM => c"The operating system has blocked the request.",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH => c"RM has detected an NVML/RM version mismatch.",
        NVML_ERROR_IN_USE => c"In use by another client",
        NVML_ERROR_MEMORY => c"Insufficient Memory",
        NVML_ERROR_NO_DATA => c"No data",
        NVML_ERROR_VGPU_ECC_NOT_SUPPORTED => {
            c"The requested vgpu operation is not available on target device, because ECC is enabled"
        }
        NVML_ERROR_INSUFFICIENT_RESOURCES => c"Insufficient resources",
        NVML_ERROR_FREQ_NOT_SUPPORTED => c"Frequency not supported",
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH => c"Argument version mismatch",
        NVML_ERROR_DEPRECATED => c"Deprecated",
        NVML_ERROR_NOT_READY => c"Not ready",
        NVML_ERROR_GPU_NOT_FOUND => c"GPU not found",
        NVML_ERROR_INVALID_STATE => c"Invalid state",
        _ => c"Unknown Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live init for the length of a test (tests run in parallel; the
    /// count keeps NVML up while any of them holds one).
    struct Init;
    impl Init {
        fn new() -> Init {
            // SAFETY: no arguments.
            let r = unsafe { nvmlInit_v2() };
            assert_eq!(r, NVML_SUCCESS);
            Init
        }
    }
    impl Drop for Init {
        fn drop(&mut self) {
            // SAFETY: no arguments; undoes this guard's init.
            let r = unsafe { nvmlShutdown() };
            assert_eq!(r, NVML_SUCCESS);
        }
    }

    fn handle(idx: u32) -> nvmlDevice_t {
        let mut h: nvmlDevice_t = std::ptr::null_mut();
        // SAFETY: `h` is a writable handle.
        let r = unsafe { nvmlDeviceGetHandleByIndex_v2(idx, &mut h) };
        assert_eq!(r, NVML_SUCCESS);
        assert!(!h.is_null());
        h
    }

    type StrQuery = unsafe extern "C" fn(nvmlDevice_t, *mut c_char, c_uint) -> nvmlReturn_t;
    type U32Query = unsafe extern "C" fn(nvmlDevice_t, *mut c_uint) -> nvmlReturn_t;
    type U64Query = unsafe extern "C" fn(nvmlDevice_t, *mut c_ulonglong) -> nvmlReturn_t;

    /// A NUL-terminated string from a buffer NVML wrote.
    fn c_str(buf: &[c_char]) -> String {
        assert!(buf.contains(&0));
        // SAFETY: the buffer holds a NUL (checked), so the string ends in it.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
        s.to_str().unwrap().to_string()
    }

    fn string(f: StrQuery, h: nvmlDevice_t) -> String {
        let mut buf = [0 as c_char; 96];
        // SAFETY: the buffer holds the 96 bytes the call is told.
        let r = unsafe { f(h, buf.as_mut_ptr(), 96) };
        assert_eq!(r, NVML_SUCCESS);
        c_str(&buf)
    }

    fn u32_of(f: U32Query, h: nvmlDevice_t) -> u32 {
        let mut v = 0;
        // SAFETY: `v` is writable.
        let r = unsafe { f(h, &mut v) };
        assert_eq!(r, NVML_SUCCESS);
        v
    }

    fn u64_of(f: U64Query, h: nvmlDevice_t) -> u64 {
        let mut v = u64::MAX;
        // SAFETY: `v` is writable.
        let r = unsafe { f(h, &mut v) };
        assert_eq!(r, NVML_SUCCESS);
        v
    }

    fn clock(h: nvmlDevice_t, kind: nvmlClockType_t) -> Result<u32, nvmlReturn_t> {
        let mut v = 0;
        // SAFETY: `v` is writable.
        let r = unsafe { nvmlDeviceGetClockInfo(h, kind, &mut v) };
        if r == NVML_SUCCESS {
            Ok(v)
        } else {
            Err(r)
        }
    }

    fn ecc(
        h: nvmlDevice_t,
        kind: nvmlMemoryErrorType_t,
        location: Option<nvmlMemoryLocation_t>,
    ) -> u64 {
        let mut v = u64::MAX;
        let r = match location {
            // SAFETY: `v` is writable.
            None => unsafe { nvmlDeviceGetTotalEccErrors(h, kind, NVML_VOLATILE_ECC, &mut v) },
            Some(l) => {
                // SAFETY: `v` is writable.
                unsafe { nvmlDeviceGetMemoryErrorCounter(h, kind, NVML_VOLATILE_ECC, l, &mut v) }
            }
        };
        assert_eq!(r, NVML_SUCCESS);
        v
    }

    fn by_uuid(uuid: &CStr) -> Result<nvmlDevice_t, nvmlReturn_t> {
        let mut h: nvmlDevice_t = std::ptr::null_mut();
        // SAFETY: a NUL-terminated string and a writable handle.
        let r = unsafe { nvmlDeviceGetHandleByUUID(uuid.as_ptr(), &mut h) };
        if r == NVML_SUCCESS {
            Ok(h)
        } else {
            Err(r)
        }
    }

    #[test]
    fn init_is_counted_and_the_system_answers() {
        let _g = Init::new();
        // A second init and its shutdown leave the first one live.
        drop(Init::new());
        let mut n = 0;
        // SAFETY: `n` is writable.
        let r = unsafe { nvmlDeviceGetCount_v2(&mut n) };
        assert_eq!(r, NVML_SUCCESS);
        assert_eq!(n as usize, devices().len());
        assert!(n >= 1);
        // SAFETY: a null out-pointer is refused, not written.
        let r = unsafe { nvmlDeviceGetCount_v2(std::ptr::null_mut()) };
        assert_eq!(r, NVML_ERROR_INVALID_ARGUMENT);
        let mut v = [0 as c_char; 80];
        // SAFETY: the buffer holds the 80 bytes the call is told.
        let r = unsafe { nvmlSystemGetDriverVersion(v.as_mut_ptr(), 80) };
        assert_eq!(r, NVML_SUCCESS);
        assert_eq!(c_str(&v), device::DRIVER_VERSION);
        // Too small a buffer is refused whole.
        // SAFETY: the buffer holds more than the 4 bytes the call is told.
        let r = unsafe { nvmlSystemGetDriverVersion(v.as_mut_ptr(), 4) };
        assert_eq!(r, NVML_ERROR_INSUFFICIENT_SIZE);
        // SAFETY: no pointer arguments; the result is a static string.
        let s = unsafe { CStr::from_ptr(nvmlErrorString(NVML_ERROR_TIMEOUT)) };
        assert_eq!(s.to_str().unwrap(), "Timeout");
    }

    #[test]
    fn handles_by_index_and_uuid_name_the_same_device() {
        let _g = Init::new();
        for idx in 0..devices().len() {
            let h = handle(idx as u32);
            let uuid = string(nvmlDeviceGetUUID, h);
            // The string the worker builds from the CUDA UUID bytes.
            let b = device::uuid_bytes(idx);
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let want = format!(
                "GPU-{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            assert_eq!(uuid, want);
            let c = std::ffi::CString::new(uuid).unwrap();
            assert_eq!(by_uuid(&c), Ok(h));
            assert_eq!(u32_of(nvmlDeviceGetIndex, h) as usize, idx);
            assert_eq!(string(nvmlDeviceGetName, h), device::NAME);
            assert_eq!(string(nvmlDeviceGetSerial, h), device::serial(idx));
        }
        let bad = c"GPU-00000000-0000-0000-0000-000000000000";
        assert_eq!(by_uuid(bad), Err(NVML_ERROR_NOT_FOUND));
        let mut h: nvmlDevice_t = std::ptr::null_mut();
        let n = devices().len() as u32;
        // SAFETY: a writable handle.
        let r = unsafe { nvmlDeviceGetHandleByIndex_v2(n, &mut h) };
        assert_eq!(r, NVML_ERROR_INVALID_ARGUMENT);
        // A handle NVML did not give out is refused, never dereferenced.
        assert_eq!(
            clock(0x1234 as nvmlDevice_t, NVML_CLOCK_SM),
            Err(NVML_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            clock(std::ptr::null_mut(), NVML_CLOCK_SM),
            Err(NVML_ERROR_INVALID_ARGUMENT)
        );
    }

    #[test]
    fn pci_info_names_the_bus() {
        let _g = Init::new();
        let mut p = nvmlPciInfo_t::default();
        // SAFETY: `p` is writable.
        let r = unsafe { nvmlDeviceGetPciInfo_v3(handle(0), &mut p) };
        assert_eq!(r, NVML_SUCCESS);
        assert_eq!(c_str(&p.busId), "00000000:18:00.0");
        assert_eq!(c_str(&p.busIdLegacy), "0000:18:00.0");
        assert_eq!((p.domain, p.bus, p.device), (0, 0x18, 0));
        assert_eq!(p.pciDeviceId, 0x2330_10DE);
        assert_eq!(pci_location(1), (0, 0x28));
        assert_eq!(pci_location(7), (0, 0x88));
        assert_eq!(pci_location(15), (1, 0x08));
        for id in [c"0000:18:00.0", c"00000000:18:00.0"] {
            let mut h: nvmlDevice_t = std::ptr::null_mut();
            // SAFETY: a NUL-terminated string and a writable handle.
            let r = unsafe { nvmlDeviceGetHandleByPciBusId_v2(id.as_ptr(), &mut h) };
            assert_eq!(r, NVML_SUCCESS);
            assert_eq!(h, handle(0));
        }
    }

    #[test]
    fn readings_follow_the_faults() {
        let clean = reading_of(&[]);
        assert_eq!(
            clean,
            Reading {
                sm_clock_mhz: 1980,
                mem_clock_mhz: 2619,
                temperature_c: 45,
                power_mw: 350_000,
                throttle_reasons: 0,
                ecc_uncorrected: 0,
            }
        );
        let hot = reading_of(&[Fault::Throttle("thermal".into())]);
        assert_eq!((hot.sm_clock_mhz, hot.temperature_c), (1200, 92));
        assert_eq!(hot.throttle_reasons, 0x40 | 0x20);
        let capped = reading_of(&[Fault::Throttle("power".into())]);
        assert_eq!((capped.sm_clock_mhz, capped.throttle_reasons), (1400, 0x4));
        let bad = reading_of(&[Fault::Ecc(3), Fault::Slow(0.5), Fault::Xid(79)]);
        assert_eq!(bad.ecc_uncorrected, 3);
        assert_eq!(bad.sm_clock_mhz, 1980);
        assert_eq!(bad.throttle_reasons, 0);
        let both = reading_of(&[
            Fault::Throttle("power".into()),
            Fault::Throttle("thermal".into()),
        ]);
        assert_eq!(both.sm_clock_mhz, 1200);
        assert_eq!(both.throttle_reasons, 0x4 | 0x20 | 0x40);
    }

    #[test]
    fn exported_readings_are_those_of_the_device_faults() {
        let _g = Init::new();
        for d in devices() {
            let h = handle(d.idx as u32);
            let want = reading_of(&d.faults());
            assert_eq!(clock(h, NVML_CLOCK_SM), Ok(want.sm_clock_mhz));
            assert_eq!(clock(h, NVML_CLOCK_MEM), Ok(want.mem_clock_mhz));
            assert_eq!(clock(h, 77), Err(NVML_ERROR_INVALID_ARGUMENT));
            let mut v = 0;
            // SAFETY: `v` is writable.
            let r = unsafe { nvmlDeviceGetMaxClockInfo(h, NVML_CLOCK_SM, &mut v) };
            assert_eq!((r, v), (NVML_SUCCESS, SM_CLOCK_MHZ));
            // SAFETY: `v` is writable.
            let r = unsafe { nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU, &mut v) };
            assert_eq!((r, v), (NVML_SUCCESS, want.temperature_c));
            assert_eq!(u32_of(nvmlDeviceGetPowerUsage, h), want.power_mw);
            assert_eq!(u32_of(nvmlDeviceGetEnforcedPowerLimit, h), 700_000);
            assert_eq!(u32_of(nvmlDeviceGetCurrPcieLinkGeneration, h), 5);
            assert_eq!(u32_of(nvmlDeviceGetMaxPcieLinkGeneration, h), 5);
            assert_eq!(u32_of(nvmlDeviceGetCurrPcieLinkWidth, h), 16);
            assert_eq!(u32_of(nvmlDeviceGetMaxPcieLinkWidth, h), 16);
            assert_eq!(
                u64_of(nvmlDeviceGetCurrentClocksThrottleReasons, h),
                want.throttle_reasons
            );
            assert_eq!(
                u64_of(nvmlDeviceGetCurrentClocksEventReasons, h),
                want.throttle_reasons
            );
            let unc = NVML_MEMORY_ERROR_TYPE_UNCORRECTED;
            let cor = NVML_MEMORY_ERROR_TYPE_CORRECTED;
            assert_eq!(ecc(h, unc, None), want.ecc_uncorrected);
            let dram = Some(NVML_MEMORY_LOCATION_DRAM);
            assert_eq!(ecc(h, unc, dram), want.ecc_uncorrected);
            assert_eq!(ecc(h, unc, Some(NVML_MEMORY_LOCATION_L2_CACHE)), 0);
            assert_eq!(ecc(h, cor, None), 0);
        }
    }

    #[test]
    fn xid_faults_are_delivered_once_to_sets_registered_for_them() {
        let xid = u64::from(nvmlEventTypeXidCriticalError);
        let dbe = u64::from(nvmlEventTypeDoubleBitEccError);
        assert_eq!(start_events(&[Fault::Xid(79)], xid), vec![(xid, 79)]);
        // Not registered for XIDs: nothing.
        let clock_events = u64::from(nvmlEventTypeClock);
        assert_eq!(start_events(&[Fault::Xid(79)], clock_events), vec![]);
        assert_eq!(start_events(&[], xid), vec![]);
        assert_eq!(start_events(&[Fault::Ecc(2)], xid | dbe), vec![(dbe, 0)]);

        // Through a set: one XID 79, however often the device registers.
        let faults = [Fault::Xid(79), Fault::Throttle("thermal".into())];
        let mut set = EventSet::default();
        register(&mut set, 0, &faults, xid);
        register(&mut set, 0, &faults, xid);
        assert_eq!(
            Vec::from(set.pending),
            vec![Pending {
                device: 0,
                kind: xid,
                data: 79
            }]
        );
    }

    #[test]
    fn event_sets_wait_free_and_refuse_bad_handles() {
        let _g = Init::new();
        let h = handle(0);
        let xid = u64::from(nvmlEventTypeXidCriticalError);
        assert_ne!(u64_of(nvmlDeviceGetSupportedEventTypes, h) & xid, 0);
        let mut set: nvmlEventSet_t = std::ptr::null_mut();
        // SAFETY: `set` is writable.
        let r = unsafe { nvmlEventSetCreate(&mut set) };
        assert_eq!(r, NVML_SUCCESS);
        assert!(!set.is_null());
        // SAFETY: handles from this library.
        let r = unsafe { nvmlDeviceRegisterEvents(h, xid, set) };
        assert_eq!(r, NVML_SUCCESS);
        // SAFETY: as above; an event type the device lacks.
        let r = unsafe { nvmlDeviceRegisterEvents(h, 1 << 40, set) };
        assert_eq!(r, NVML_ERROR_NOT_SUPPORTED);
        let mut data = nvmlEventData_t {
            device: std::ptr::null_mut(),
            eventType: 0,
            eventData: 0,
            gpuInstanceId: 0,
            computeInstanceId: 0,
        };
        let mut wait = |set: nvmlEventSet_t, ms: c_uint| {
            // SAFETY: `data` is writable; the set handle is only looked up.
            let r = unsafe { nvmlEventSetWait_v2(set, &mut data, ms) };
            (r, data.device, data.eventType, data.eventData)
        };
        // What device 0's faults queued (none in a plain test run), then
        // nothing: a timeout, after the timeout.
        for (kind, code) in start_events(&devices()[0].faults(), xid) {
            assert_eq!(wait(set, 0), (NVML_SUCCESS, h, kind, code));
        }
        assert_eq!(wait(set, 0).0, NVML_ERROR_TIMEOUT);
        let t = Instant::now();
        assert_eq!(wait(set, 30).0, NVML_ERROR_TIMEOUT);
        assert!(t.elapsed() >= Duration::from_millis(30));
        // SAFETY: a set handle from this library, only looked up.
        let r = unsafe { nvmlEventSetFree(set) };
        assert_eq!(r, NVML_SUCCESS);
        // Freed: refused.
        // SAFETY: as above.
        let r = unsafe { nvmlEventSetFree(set) };
        assert_eq!(r, NVML_ERROR_INVALID_ARGUMENT);
        assert_eq!(wait(set, 0).0, NVML_ERROR_INVALID_ARGUMENT);
        // SAFETY: as above.
        let r = unsafe { nvmlDeviceRegisterEvents(h, xid, set) };
        assert_eq!(r, NVML_ERROR_INVALID_ARGUMENT);
    }
}
