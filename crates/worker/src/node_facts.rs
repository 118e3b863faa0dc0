//! What a node is made of, for the acceptance suite's config stage
//! ([`mfubench_core::accept::ConfigStage`]): facts that should be the same
//! on every node of a fleet (Imbue's "golden configuration"), read from
//! /proc and /sys on any backend.
//!
//! Pure parsers of the files' text, with known answers in the tests, and
//! one I/O function ([`collect`]). The NIC list comes from /proc/net/dev
//! and each NIC's MTU and line rate from the `SIOCGIFMTU` and
//! `SIOCETHTOOL` (`ETHTOOL_GSET`) ioctls on a socket of this process: they
//! answer for the network namespace the rank runs in, where
//! /sys/class/net may show another namespace's interfaces (a sysfs mount
//! belongs to the namespace that mounted it). Facts that vary on a healthy
//! node (clock, load, temperature) are left out: they would flag every
//! node.

use std::collections::BTreeMap;

/// `model name` of the first processor in /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Logical CPUs in /proc/cpuinfo (its `processor` lines).
pub fn cpu_count(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
        .count()
}

/// `MemTotal` of /proc/meminfo in whole GiB (rounded to the nearest, so
/// that firmware reserving a few MiB more on one node is not a drift).
pub fn mem_total_gib(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((kib + (1 << 19)) >> 20)
}

/// The selected mode of a `[bracketed]` sysfs choice list, e.g.
/// `always [madvise] never` → `madvise`.
pub fn selected(choices: &str) -> Option<String> {
    let start = choices.find('[')?;
    let end = choices[start..].find(']')? + start;
    Some(choices[start + 1..end].to_string())
}

/// Network interfaces of /proc/net/dev except the loopback, sorted.
pub fn net_devices(proc_net_dev: &str) -> Vec<String> {
    let mut out: Vec<String> = proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .filter(|n| !n.is_empty() && n != "lo")
        .collect();
    out.sort();
    out
}

/// Runs interface ioctl `request` for interface `name` on a datagram socket
/// of this process (so it answers for this process's network namespace):
/// `prepare` fills the request beyond its name; the request as the kernel
/// left it, or None where the name is too long or the call failed.
///
/// # Safety
///
/// `request` must be an interface ioctl that reads `ifr_name` and reads or
/// writes only the `ifreq` (and whatever `prepare` points it at, which must
/// outlive the call).
pub(crate) unsafe fn interface_ioctl(
    name: &str,
    request: libc::c_ulong,
    prepare: impl FnOnce(&mut libc::ifreq),
) -> Option<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: a plain datagram socket, closed below; no memory is shared.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    prepare(&mut req);
    // SAFETY: ifr_name is NUL-terminated (the name is shorter than
    // IFNAMSIZ and the rest is zero); the caller vouches for the request
    // (this function's contract).
    let r = unsafe { libc::ioctl(fd, request as _, &mut req) };
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    (r == 0).then_some(req)
}

/// The MTU of interface `name` in this process's network namespace.
fn mtu(name: &str) -> Option<u32> {
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifru_mtu of the request.
    let req = unsafe { interface_ioctl(name, libc::SIOCGIFMTU as _, |_| {}) }?;
    // SAFETY: the ioctl succeeded, so the union holds the MTU.
    Some(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// `struct ethtool_cmd` of linux/ethtool.h (`ETHTOOL_GSET`'s answer; the
/// legacy call, which every driver with link settings still answers).
#[repr(C)]
#[derive(Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSET: u32 = 0x1;

/// The line rate in Mb/s from `ethtool_cmd`'s two halves; None for the
/// kernel's "unknown" (0, 0xFFFF, 0xFFFFFFFF: a link that is down, or a
/// virtual device without a speed).
pub fn link_speed_mbps(speed: u16, speed_hi: u16) -> Option<u32> {
    let v = (speed_hi as u32) << 16 | speed as u32;
    (v != 0 && v != 0xFFFF && v != u32::MAX).then_some(v)
}

/// The line rate of interface `name` in this process's network namespace,
/// Mb/s; None where the driver gives none.
fn speed_mbps(name: &str) -> Option<u32> {
    let mut cmd = EthtoolCmd {
        cmd: ETHTOOL_GSET,
        ..Default::default()
    };
    let data: *mut EthtoolCmd = &mut cmd;
    // SAFETY: SIOCETHTOOL reads ifr_name and the command `ifru_data` points
    // at, `cmd`, which outlives the call and has the layout of the kernel's
    // `struct ethtool_cmd`; ETHTOOL_GSET writes only into it.
    unsafe {
        interface_ioctl(name, SIOCETHTOOL, |req| {
            req.ifr_ifru.ifru_data = data.cast();
        })
    }?;
    link_speed_mbps(cmd.speed, cmd.speed_hi)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// This node's facts: kernel, CPU model and count, frequency governor,
/// memory, transparent and reserved huge pages, NUMA nodes, NICs with
/// their MTUs and line rates (where the driver gives one), MPI library, mfubench version and ranks on the node.
pub fn collect(ranks_on_host: u64) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            f.insert(k.to_string(), v);
        }
    };
    put(
        "kernel",
        read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
    );
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    put("cpu.model", cpu_model(&cpuinfo));
    put(
        "cpu.count",
        Some(cpu_count(&cpuinfo))
            .filter(|&n| n > 0)
            .map(|n| n.to_string()),
    );
    put(
        "cpu.governor",
        Some(
            read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|| "none (no cpufreq)".to_string()),
        ),
    );
    put(
        "memory.gib",
        read("/proc/meminfo")
            .as_deref()
            .and_then(mem_total_gib)
            .map(|g| g.to_string()),
    );
    put(
        "hugepages.transparent",
        read("/sys/kernel/mm/transparent_hugepage/enabled")
            .as_deref()
            .and_then(selected),
    );
    put(
        "hugepages.reserved",
        read("/proc/sys/vm/nr_hugepages").map(|s| s.trim().to_string()),
    );
    let numa = std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.strip_prefix("node")
                        .is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .ok();
    put("numa.nodes", numa.map(|n| n.to_string()));
    let nics = net_devices(&read("/proc/net/dev").unwrap_or_default());
    put("nic.count", Some(nics.len().to_string()));
    for n in &nics {
        put(&format!("nic.{n}.mtu"), mtu(n).map(|m| m.to_string()));
        put(
            &format!("nic.{n}.speed_mbps"),
            speed_mbps(n).map(|m| m.to_string()),
        );
    }
    put(
        "mpi.library",
        mpi::environment::library_version().ok().map(|v| {
            // MPI_Get_library_version's buffer ends in a NUL.
            v.lines()
                .next()
                .unwrap_or("")
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string()
        }),
    );
    put("mfubench", Some(mfubench_core::TOOL_VERSION.to_string()));
    put("ranks", Some(ranks_on_host.to_string()));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_on_known_text() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_count(cpuinfo), 2);
        assert_eq!(cpu_model(""), None);
        // 24 GiB less 100 MiB of firmware reservations is 24 GiB.
        let kib = 24 * 1024 * 1024 - 100 * 1024;
        assert_eq!(
            mem_total_gib(&format!("MemTotal:       {kib} kB\nMemFree: 1 kB\n")),
            Some(24)
        );
        assert_eq!(mem_total_gib("MemFree: 1 kB\n"), None);
        assert_eq!(
            selected("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(selected("none"), None);
        let dev = "Inter-|   Receive  |  Transmit\n face |bytes    packets\n    lo: 1 2 3\n  eth1: 4 5\n  eth0: 6 7\n";
        assert_eq!(net_devices(dev), ["eth0", "eth1"]);
        // ethtool's halves: 400 Gb/s needs the high half; unknown is none.
        assert_eq!(link_speed_mbps(10_000, 0), Some(10_000));
        let (lo, hi) = ((400_000u32 & 0xFFFF) as u16, (400_000u32 >> 16) as u16);
        assert_eq!(link_speed_mbps(lo, hi), Some(400_000));
        assert_eq!(link_speed_mbps(0xFFFF, 0), None);
        assert_eq!(link_speed_mbps(0xFFFF, 0xFFFF), None);
        assert_eq!(link_speed_mbps(0, 0), None);
    }

    /// On this host: the facts every node has, the loopback left out, and
    /// an MTU for every NIC listed.
    #[test]
    fn collect_reads_this_host() {
        let f = collect(2);
        for k in [
            "kernel",
            "cpu.model",
            "cpu.count",
            "memory.gib",
            "nic.count",
            "ranks",
        ] {
            assert!(f.contains_key(k), "{k} missing from {f:?}");
        }
        assert!(!f.contains_key("nic.lo.mtu"));
        let nics: usize = f["nic.count"].parse().unwrap();
        assert_eq!(
            f.keys().filter(|k| k.ends_with(".mtu")).count(),
            nics,
            "{f:?}"
        );
        assert_eq!(f["ranks"], "2");
    }
}
