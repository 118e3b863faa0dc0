//! The NVML stand-in through the real nvml-wrapper crate, loaded from the
//! built shared object exactly as the worker's telemetry loads
//! `libnvidia-ml.so.1`: the calls of `crates/worker/src/cuda/telemetry.rs`
//! on a clean device and on one with injected faults.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, MemoryLocation, TemperatureSensor,
};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

/// The cdylib cargo built for this test. `cargo test` compiles the
/// library (cdylib and rlib at once) into the test's own `deps/` folder
/// and does not copy it up to `target/debug/` (only `cargo build` does), so
/// `deps/` first: a `target/debug/` copy may be stale.
fn library() -> PathBuf {
    let name = "libmfubench_simgpu.so";
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    [
        deps.join(name),
        deps.parent().unwrap().join(name),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/debug")
            .join(name),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| panic!("{name} is not built next to {}", exe.display()))
}

use mfubench_core::simgpu::nvml_uuid;

#[test]
fn telemetry_calls_through_nvml_wrapper() {
    // Before the library is loaded: its device table and faults are read
    // once, at first use.
    std::env::set_var("MFUBENCH_SIMGPU_DEVICES", "2");
    std::env::set_var(
        "MFUBENCH_SIMGPU_FAULTS",
        "xid=79@*:1;throttle=thermal@*:1;ecc=3@*:1",
    );
    let lib = library();
    let nvml = Nvml::builder().lib_path(lib.as_os_str()).init().unwrap();

    assert_eq!(nvml.device_count().unwrap(), 2);
    assert_eq!(nvml.sys_driver_version().unwrap(), "575.57.08-simulated");

    // Identity, found by the UUID the worker derives from CUDA's bytes.
    for idx in 0..2u32 {
        let uuid = nvml_uuid(&mfubench_simgpu::device::uuid_bytes(idx as usize));
        let d = nvml.device_by_uuid(uuid.as_str()).unwrap();
        assert_eq!(d.uuid().unwrap(), uuid);
        assert_eq!(d.index().unwrap(), idx);
        assert_eq!(nvml.device_by_index(idx).unwrap().uuid().unwrap(), uuid);
        assert_eq!(d.name().unwrap(), "NVIDIA H100 80GB HBM3 (simulated)");
        assert_eq!(
            d.serial().unwrap(),
            mfubench_simgpu::device::serial(idx as usize)
        );
        let pci = d.pci_info().unwrap();
        let bus = 0x18 + idx * 0x10;
        assert_eq!(pci.bus_id, format!("00000000:{bus:02X}:00.0"));
        assert_eq!((pci.domain, pci.bus, pci.device), (0, bus, 0));
        assert_eq!(pci.pci_device_id, 0x2330_10DE);
        assert_eq!(d.max_clock_info(Clock::SM).unwrap(), 1980);
        assert_eq!(d.enforced_power_limit().unwrap(), 700_000);
        assert_eq!(d.current_pcie_link_gen().unwrap(), 5);
        assert_eq!(d.max_pcie_link_gen().unwrap(), 5);
        assert_eq!(d.current_pcie_link_width().unwrap(), 16);
        assert_eq!(d.max_pcie_link_width().unwrap(), 16);
        assert_eq!(
            d.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
                .unwrap(),
            0
        );
    }
    assert!(matches!(
        nvml.device_by_uuid("GPU-00000000-0000-0000-0000-000000000000"),
        Err(NvmlError::NotFound)
    ));

    // Device 0: clean.
    let d0 = nvml.device_by_index(0).unwrap();
    assert_eq!(d0.clock_info(Clock::SM).unwrap(), 1980);
    assert_eq!(d0.clock_info(Clock::Memory).unwrap(), 2619);
    assert_eq!(d0.temperature(TemperatureSensor::Gpu).unwrap(), 45);
    assert_eq!(d0.power_usage().unwrap(), 350_000);
    assert_eq!(
        d0.current_throttle_reasons_strict().unwrap(),
        ThrottleReasons::empty()
    );
    assert_eq!(
        d0.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
            .unwrap(),
        0
    );

    // Device 1: thermal throttling and 3 uncorrected ECC errors.
    let d1 = nvml.device_by_index(1).unwrap();
    assert_eq!(d1.clock_info(Clock::SM).unwrap(), 1200);
    assert_eq!(d1.temperature(TemperatureSensor::Gpu).unwrap(), 92);
    assert_eq!(
        d1.current_throttle_reasons_strict().unwrap(),
        ThrottleReasons::HW_THERMAL_SLOWDOWN | ThrottleReasons::SW_THERMAL_SLOWDOWN
    );
    assert_eq!(
        d1.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
            .unwrap(),
        3
    );
    assert_eq!(
        d1.memory_error_counter(
            MemoryError::Uncorrected,
            EccCounter::Volatile,
            MemoryLocation::Device
        )
        .unwrap(),
        3
    );

    // The XID watch as XidWatcher::open sets it up, on a second (leaked)
    // init: NVML counts inits, so dropping neither ends the other.
    let second: &'static Nvml = Box::leak(Box::new(
        Nvml::builder().lib_path(lib.as_os_str()).init().unwrap(),
    ));
    let watch = |uuid: &str| {
        let d = second.device_by_uuid(uuid).unwrap();
        assert!(d
            .supported_event_types()
            .unwrap()
            .contains(EventTypes::CRITICAL_XID_ERROR));
        let set = second.create_event_set().unwrap();
        d.register_events(EventTypes::CRITICAL_XID_ERROR, set)
            .map_err(|e| e.error)
            .unwrap()
    };
    let uuid0 = d0.uuid().unwrap();
    let uuid1 = d1.uuid().unwrap();
    let set1 = watch(&uuid1);
    let ev = set1.wait(0).unwrap();
    assert!(ev.event_type.contains(EventTypes::CRITICAL_XID_ERROR));
    assert!(matches!(ev.event_data, Some(XidError::Value(79))));
    assert_eq!(ev.device.uuid().unwrap(), uuid1);
    // Once: the next poll finds nothing pending.
    assert!(matches!(set1.wait(0), Err(NvmlError::Timeout)));
    // A clean device's set: nothing, and a timed wait lasts its timeout.
    let set0 = watch(&uuid0);
    assert!(matches!(set0.wait(0), Err(NvmlError::Timeout)));
    let t = Instant::now();
    assert!(matches!(set0.wait(50), Err(NvmlError::Timeout)));
    assert!(t.elapsed() >= Duration::from_millis(50));
    set0.release_events().unwrap();
    drop(set1);

    // A third init, dropped (nvmlShutdown): the first still answers.
    drop(Nvml::builder().lib_path(lib.as_os_str()).init().unwrap());
    assert_eq!(
        nvml.device_by_index(1)
            .unwrap()
            .clock_info(Clock::SM)
            .unwrap(),
        1200
    );
}
