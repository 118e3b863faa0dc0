//! GPU telemetry through NVML (nvml-wrapper), optional at run time: SM
//! clock, temperature, power and throttle reasons at the start and end of
//! every mode, so that a slow GPU is explained, not just flagged.
//!
//! NVML numbers devices without regard to `CUDA_VISIBLE_DEVICES`, so the
//! device is found by the UUID the CUDA driver reports for our ordinal.
//!
//! The acceptance suite takes a fuller reading after every stage
//! ([`Telemetry::reading`]): clocks, power and its limit, temperature,
//! throttle reasons (unknown bits kept), volatile ECC counts and the PCIe
//! link, and the GPU's identity ([`Telemetry::identity`]: UUID, serial,
//! PCI bus id). XID errors come as events only, to an event set registered
//! before they happen (`nvmlDeviceRegisterEvents`): [`XidWatcher`]
//! registers one for critical XIDs when the suite opens and drains it
//! without blocking after every stage.

use mfubench_core::accept::{GpuReading, GpuTelemetry, Stage, XidWatch};
use mfubench_core::config::Mode;
use mfubench_core::result::TelemetrySample;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::{Bits, NvmlError};
use nvml_wrapper::event::EventSet;
use nvml_wrapper::Nvml;

/// This node's GPU facts for the acceptance suite's config stage, from
/// NVML (all of the node's GPUs, by NVML index): `gpu.driver`, `gpu.cuda`
/// (the driver's CUDA version), `gpu.count`, and per GPU `gpu.<i>.model`,
/// `gpu.<i>.pcie_max_gen` (the link generation the GPU and its slot
/// support: the current one drops at idle, which would read as drift) and
/// `gpu.<i>.pcie_width` (the current width: a link trained down to x8 is a
/// real fault). With `nccl`, also `nccl` (the version of the NCCL the CUDA
/// backend loads). Empty without NVML (a CPU node).
pub fn node_gpu_facts(nccl: bool) -> std::collections::BTreeMap<String, String> {
    let mut f = std::collections::BTreeMap::new();
    let Ok(nvml) = Nvml::init() else {
        return f;
    };
    if let Ok(v) = nvml.sys_driver_version() {
        f.insert("gpu.driver".into(), v);
    }
    if let Ok(v) = nvml.sys_cuda_driver_version() {
        f.insert("gpu.cuda".into(), super::probe::cuda_version_string(v));
    }
    if let Ok(n) = nvml.device_count() {
        f.insert("gpu.count".into(), n.to_string());
        for i in 0..n {
            let Ok(d) = nvml.device_by_index(i) else {
                continue;
            };
            if let Ok(v) = d.name() {
                f.insert(format!("gpu.{i}.model"), v);
            }
            if let Ok(v) = d.max_pcie_link_gen() {
                f.insert(format!("gpu.{i}.pcie_max_gen"), v.to_string());
            }
            if let Ok(v) = d.current_pcie_link_width() {
                f.insert(format!("gpu.{i}.pcie_width"), v.to_string());
            }
        }
    }
    let version = nccl
        .then(super::nccl::NcclLib::open)
        .and_then(Result::ok)
        .and_then(|l| l.version().ok());
    if let Some(v) = version {
        f.insert("nccl".into(), super::nccl::version_string(v));
    }
    f
}

/// NVML clock-event ("throttle") reason bits, from nvml.h.
const THROTTLE_BITS: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// Names of the reasons set in an NVML throttle-reason mask; unknown bits
/// as hex.
pub fn throttle_names(bits: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bits;
    for (b, name) in THROTTLE_BITS {
        if bits & b != 0 {
            out.push((*name).to_string());
            rest &= !b;
        }
    }
    if rest != 0 {
        out.push(format!("other({rest:#x})"));
    }
    out
}

/// The raw throttle-reason mask from nvml-wrapper's `_strict` query.
///
/// The plain `current_throttle_reasons` drops bits the wrapper does not
/// know (`from_bits_truncate`): a reason added by a newer driver would read
/// as "no throttling". The strict variant returns those masks as
/// `IncorrectBits`, which still carries every bit, so they are kept and
/// reported by [`throttle_names`] as `other(…)`. `None`: NVML could not say.
pub fn throttle_bits(strict: Result<ThrottleReasons, NvmlError>) -> Option<u64> {
    match strict {
        Ok(r) => Some(r.bits()),
        Err(NvmlError::IncorrectBits(Bits::U64(b))) => Some(b),
        Err(NvmlError::IncorrectBits(Bits::U32(b))) => Some(u64::from(b)),
        Err(_) => None,
    }
}

pub use mfubench_core::simgpu::nvml_uuid;

/// Most events one poll takes from the set: a storm of XIDs cannot keep a
/// rank polling forever (the rest wait for the next poll).
const MAX_EVENTS_PER_POLL: usize = 10_000;

/// The state of a watch that could not be set up, from NVML's error:
/// `NotSupported` (the GPU or driver has no XID events) and a library
/// without the event functions are "not supported"; anything else failed.
pub fn xid_watch_error(e: &NvmlError) -> XidWatch {
    match e {
        NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_) => XidWatch::NotSupported {
            reason: format!("NVML: {e}"),
        },
        _ => XidWatch::Failed {
            reason: format!("NVML: {e}"),
        },
    }
}

/// Drains an event set: calls `next` (a zero-timeout wait) until it says
/// `Timeout` (nothing pending), returning the XID code of every event (None
/// where NVML reports the code as unknown; events that are not XIDs are
/// left out); at most `limit` events. Any other error ends the poll with
/// that error.
pub fn drain_xids(
    limit: usize,
    mut next: impl FnMut() -> Result<(EventTypes, Option<XidError>), NvmlError>,
) -> Result<Vec<Option<u64>>, String> {
    let mut codes = Vec::new();
    for _ in 0..limit {
        match next() {
            Ok((kind, data)) => {
                if kind.contains(EventTypes::CRITICAL_XID_ERROR) {
                    codes.push(match data {
                        Some(XidError::Value(v)) => Some(v),
                        Some(XidError::Unknown) | None => None,
                    });
                }
            }
            Err(NvmlError::Timeout) => break,
            Err(e) => return Err(format!("NVML: {e}")),
        }
    }
    Ok(codes)
}

/// An NVML event set registered for critical XID errors of one GPU.
pub struct XidWatcher {
    set: EventSet<'static>,
}

impl XidWatcher {
    /// Registers an event set for the critical XIDs of the GPU `uuid`; the
    /// watch's state (`NotSupported`, `Failed`) when that cannot be done.
    ///
    /// The event set borrows its NVML handle for as long as it lives, and
    /// the watch lasts until the process ends: the handle of this second
    /// `nvmlInit` (NVML counts them) is leaked on purpose, once per suite,
    /// but only once the set is registered. When the watch cannot be set
    /// up, the handle is dropped again (`nvmlShutdown`).
    pub fn open(uuid: &str) -> Result<XidWatcher, XidWatch> {
        let nvml = Nvml::init().map_err(|e| XidWatch::Failed {
            reason: format!("NVML unavailable: {e}"),
        })?;
        let raw: *mut Nvml = Box::into_raw(Box::new(nvml));
        // SAFETY: `raw` comes from Box::into_raw just above and is freed at
        // most once, below, only on the error path.
        let nvml: &'static Nvml = unsafe { &*raw };
        match Self::register(nvml, uuid) {
            // Leaked for good: the set borrows the handle until the process
            // ends.
            Ok(set) => Ok(XidWatcher { set }),
            Err(e) => {
                // SAFETY: `register` failed, so every value that borrowed
                // the handle (the device, the event set) was dropped inside
                // it; the error holds only strings, and `nvml` is not used
                // again. The box is therefore unborrowed and freed once.
                drop(unsafe { Box::from_raw(raw) });
                Err(e)
            }
        }
    }

    /// The registration of [`XidWatcher::open`]: on `Err`, nothing that
    /// borrows `nvml` is left.
    fn register(nvml: &'static Nvml, uuid: &str) -> Result<EventSet<'static>, XidWatch> {
        let device = nvml.device_by_uuid(uuid).map_err(|e| xid_watch_error(&e))?;
        let supported = device
            .supported_event_types()
            .map_err(|e| xid_watch_error(&e))?;
        if !supported.contains(EventTypes::CRITICAL_XID_ERROR) {
            return Err(XidWatch::NotSupported {
                reason: "the GPU's supported NVML event types lack critical XID errors".into(),
            });
        }
        let set = nvml.create_event_set().map_err(|e| xid_watch_error(&e))?;
        device
            .register_events(EventTypes::CRITICAL_XID_ERROR, set)
            .map_err(|e| xid_watch_error(&e.error))
    }

    /// The XIDs delivered since the last poll, without blocking (timeout
    /// 0); see [`drain_xids`].
    pub fn poll(&self) -> Result<Vec<Option<u64>>, String> {
        drain_xids(MAX_EVENTS_PER_POLL, || {
            self.set.wait(0).map(|d| (d.event_type, d.event_data))
        })
    }
}

/// NVML handle for one device.
pub struct Telemetry {
    nvml: Nvml,
    uuid: String,
}

impl Telemetry {
    /// Opens NVML (`libnvidia-ml.so.1`) and checks the device is visible to
    /// it; `Err` with the reason when NVML is absent.
    pub fn open(uuid: String) -> Result<Telemetry, String> {
        let nvml = Nvml::init().map_err(|e| format!("NVML unavailable: {e}"))?;
        nvml.device_by_uuid(uuid.as_str())
            .map_err(|e| format!("NVML does not know {uuid}: {e}"))?;
        Ok(Telemetry { nvml, uuid })
    }

    /// The driver version NVML reports, e.g. "570.124.06".
    pub fn driver_version(&self) -> Option<String> {
        self.nvml.sys_driver_version().ok()
    }

    /// The GPU's identity (serial and PCI bus id where NVML reports them),
    /// with no readings yet and no XID watch ([`XidWatcher`] sets it).
    pub fn identity(&self) -> GpuTelemetry {
        let d = self.nvml.device_by_uuid(self.uuid.as_str()).ok();
        GpuTelemetry {
            uuid: self.uuid.clone(),
            serial: d.as_ref().and_then(|d| d.serial().ok()),
            pci_bus_id: d.as_ref().and_then(|d| d.pci_info().ok()).map(|p| p.bus_id),
            readings: Vec::new(),
            xid: XidWatch::NotRecorded,
        }
    }

    /// A reading after `stage`; fields NVML cannot read stay empty.
    pub fn reading(&self, stage: Stage) -> GpuReading {
        let mut r = GpuReading {
            stage: Some(stage),
            ..Default::default()
        };
        let Ok(d) = self.nvml.device_by_uuid(self.uuid.as_str()) else {
            return r;
        };
        r.sm_clock_mhz = d.clock_info(Clock::SM).ok();
        r.max_sm_clock_mhz = d.max_clock_info(Clock::SM).ok();
        r.power_w = d.power_usage().ok().map(|mw| mw as f64 / 1000.0);
        r.power_limit_w = d.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0);
        r.temperature_c = d.temperature(TemperatureSensor::Gpu).ok();
        r.throttle_bits = throttle_bits(d.current_throttle_reasons_strict());
        r.throttle_reasons = r.throttle_bits.map(throttle_names).unwrap_or_default();
        r.ecc_corrected = d
            .total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
            .ok();
        r.ecc_uncorrected = d
            .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
            .ok();
        r.pcie_gen = d.current_pcie_link_gen().ok();
        r.pcie_max_gen = d.max_pcie_link_gen().ok();
        r.pcie_width = d.current_pcie_link_width().ok();
        r.pcie_max_width = d.max_pcie_link_width().ok();
        r
    }

    /// The readings of a soak window ([`mfubench_core::soak::WindowTelemetry`]
    /// without the XIDs and host fields); fields NVML cannot read stay
    /// empty.
    pub fn window(&self) -> mfubench_core::soak::WindowTelemetry {
        let mut w = mfubench_core::soak::WindowTelemetry::default();
        if let Ok(d) = self.nvml.device_by_uuid(self.uuid.as_str()) {
            w.sm_clock_mhz = d.clock_info(Clock::SM).ok().map(f64::from);
            w.mem_clock_mhz = d.clock_info(Clock::Memory).ok().map(f64::from);
            w.temperature_c = d.temperature(TemperatureSensor::Gpu).ok().map(f64::from);
            w.power_w = d.power_usage().ok().map(|mw| mw as f64 / 1000.0);
            if let Some(bits) = throttle_bits(d.current_throttle_reasons_strict()) {
                w.throttle_reasons = throttle_names(bits);
            }
            w.ecc_uncorrected = d
                .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                .ok();
        }
        w
    }

    /// The GPU's serial number, where NVML reports one.
    pub fn serial(&self) -> Option<String> {
        self.nvml
            .device_by_uuid(self.uuid.as_str())
            .ok()
            .and_then(|d| d.serial().ok())
    }

    /// The NVML UUID of the device.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// One sample; fields NVML cannot read stay empty.
    pub fn sample(&self, mode: Mode, at: &str) -> TelemetrySample {
        let mut s = TelemetrySample {
            mode,
            at: at.to_string(),
            sm_clock_mhz: None,
            temperature_c: None,
            power_w: None,
            throttle_reasons: Vec::new(),
        };
        if let Ok(d) = self.nvml.device_by_uuid(self.uuid.as_str()) {
            s.sm_clock_mhz = d.clock_info(Clock::SM).ok();
            s.temperature_c = d.temperature(TemperatureSensor::Gpu).ok();
            s.power_w = d.power_usage().ok().map(|mw| mw as f64 / 1000.0);
            if let Some(bits) = throttle_bits(d.current_throttle_reasons_strict()) {
                s.throttle_reasons = throttle_names(bits);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_reason_names() {
        assert!(throttle_names(0).is_empty());
        assert_eq!(
            throttle_names(0x4 | 0x40),
            vec!["sw_power_cap", "hw_thermal_slowdown"]
        );
        assert_eq!(throttle_names(0x1000), vec!["other(0x1000)"]);
    }

    #[test]
    fn unknown_throttle_bits_are_kept() {
        // sw_power_cap plus a bit nvml-wrapper does not know: the strict
        // query reports the whole mask as IncorrectBits.
        let raw = 0x4 | 0x8000_0000_0000;
        let got = throttle_bits(Err(NvmlError::IncorrectBits(Bits::U64(raw))));
        assert_eq!(got, Some(raw));
        assert_eq!(
            throttle_names(got.unwrap()),
            vec!["sw_power_cap", "other(0x800000000000)"]
        );
        let known = ThrottleReasons::SW_POWER_CAP | ThrottleReasons::HW_SLOWDOWN;
        assert_eq!(throttle_bits(Ok(known)), Some(0x4 | 0x8));
        assert_eq!(throttle_bits(Err(NvmlError::NotSupported)), None);
        // The names table agrees with nvml-wrapper's flag values.
        for (bit, name) in THROTTLE_BITS {
            assert!(
                ThrottleReasons::from_bits(*bit).is_some(),
                "{name} {bit:#x}"
            );
        }
    }

    #[test]
    fn uuid_format_matches_nvml() {
        let b: [u8; 16] = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(nvml_uuid(&b), "GPU-12345678-9abc-def0-0123-456789abcdef");
    }

    #[test]
    fn xid_polls_drain_until_nothing_is_pending() {
        // Two XIDs (79, then one NVML cannot name), a non-XID event, then
        // nothing pending: the poll returns the two codes.
        let mut queue = vec![
            Ok((EventTypes::CRITICAL_XID_ERROR, Some(XidError::Value(79)))),
            Ok((EventTypes::CRITICAL_XID_ERROR, Some(XidError::Unknown))),
            Ok((EventTypes::CLOCK_CHANGE, None)),
            Err(NvmlError::Timeout),
            Ok((EventTypes::CRITICAL_XID_ERROR, Some(XidError::Value(13)))),
            Err(NvmlError::Timeout),
        ]
        .into_iter();
        let got = drain_xids(100, || queue.next().unwrap());
        assert_eq!(got, Ok(vec![Some(79), None]));
        // The next poll sees what came after.
        assert_eq!(
            drain_xids(100, || queue.next().unwrap()),
            Ok(vec![Some(13)])
        );
        // Nothing pending: an empty poll.
        assert_eq!(drain_xids(100, || Err(NvmlError::Timeout)), Ok(vec![]));
        // A lost GPU ends the poll with the reason.
        let e = drain_xids(100, || Err(NvmlError::GpuLost)).unwrap_err();
        assert!(e.starts_with("NVML: "), "{e}");
        // A storm is bounded per poll.
        let storm = drain_xids(5, || {
            Ok((EventTypes::CRITICAL_XID_ERROR, Some(XidError::Value(13))))
        });
        assert_eq!(storm.unwrap().len(), 5);
    }

    #[test]
    fn xid_watch_errors_say_not_supported() {
        assert!(matches!(
            xid_watch_error(&NvmlError::NotSupported),
            XidWatch::NotSupported { .. }
        ));
        assert!(matches!(
            xid_watch_error(&NvmlError::NoPermission),
            XidWatch::Failed { .. }
        ));
        // Without a GPU driver (CI), opening a watch is a state, not a
        // panic, and never a clean "watched" list.
        let w = XidWatcher::open("GPU-00000000-0000-0000-0000-000000000000");
        assert!(!matches!(w, Ok(_) | Err(XidWatch::Watched { .. })));
    }

    #[test]
    fn missing_nvml_is_an_error_not_a_panic() {
        // No GPU driver on CI machines: opening must fail cleanly. On a GPU
        // machine a made-up UUID is unknown to NVML.
        let r = Telemetry::open("GPU-00000000-0000-0000-0000-000000000000".into());
        assert!(r.is_err());
    }
}
