//! The simulated GPU's settings (`--sim-gpu N`, `--sim-fault SPEC`): the
//! environment variables the launcher sets for the ranks, and the fault
//! specs, parsed here so the launcher refuses a bad one (exit 2) before
//! anything starts and the stand-in libraries (crates/simgpu) read the same
//! thing. The simulation itself lives in crates/simgpu.
//!
//! A fault spec is `KIND@HOST:GPU`: `HOST` a host name or `*`, `GPU` a device
//! index on that host (global, before `CUDA_VISIBLE_DEVICES`) or `*`.
//! Kinds: `xid=79` (an XID event on that GPU at start), `slow=0.3` (its GEMMs
//! run at 30 % speed), `corrupt` (one bit flipped in a GEMM output, the first
//! and then every 64th), `hang=all_reduce` (its next collective of that kind
//! never completes; also all_gather, reduce_scatter, send_recv),
//! `throttle=thermal` (clocks down, thermal slowdown reasons set; or
//! `power`), `ecc=N` (N volatile uncorrected ECC errors), `link_slow=0.1`
//! (its NCCL traffic at 10 % speed).
//!
//! Any spec may end in `,after=SECONDS` (e.g. `slow=0.5@hostA:1,after=20`):
//! the fault applies only once SECONDS have passed since the process first
//! used the simulated libraries; without it, from the start.

/// Simulated GPUs per host (`--sim-gpu N`).
pub const DEVICES_VAR: &str = "MFUBENCH_SIMGPU_DEVICES";
/// Memory per simulated GPU, GiB (default 80).
pub const MEM_GIB_VAR: &str = "MFUBENCH_SIMGPU_MEM_GIB";
/// Seed of the random per-operation delays (unset: no delays).
pub const SEED_VAR: &str = "MFUBENCH_SIMGPU_SEED";
/// Injected faults, `;`-separated specs (`--sim-fault`, repeatable).
pub const FAULTS_VAR: &str = "MFUBENCH_SIMGPU_FAULTS";
/// Set to `0` to turn the race checker off (on by default).
pub const RACE_VAR: &str = "MFUBENCH_SIMGPU_RACE_CHECK";
/// The text every output of a simulated run carries.
pub const BANNER: &str = "SIMULATED GPU — timings are CPU timings";
/// What a simulated device's name ends with.
pub const NAME_MARK: &str = "(simulated)";
/// The simulator's shared object (crates/simgpu).
pub const LIB_FILE: &str = "libmfubench_simgpu.so";
/// The names the launcher links it under: the libraries the CUDA backend,
/// cudarc and nvml-wrapper open.
pub const LINK_NAMES: &[&str] = &[
    "libcuda.so.1",
    "libcuda.so",
    "libcublasLt.so.12",
    "libcublasLt.so.13",
    "libnccl.so.2",
    "libnvidia-ml.so.1",
    "libnvidia-ml.so",
];

/// NVML's UUID string ("GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx") of the
/// 16 bytes the CUDA driver reports: how the CUDA backend finds its NVML
/// device, and how the simulated NVML names its devices.
pub fn nvml_uuid(bytes: &[u8; 16]) -> String {
    let h: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// One kind of fault.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub enum Fault {
    /// An XID event with this code.
    Xid(u64),
    /// GEMMs at this fraction of their speed.
    Slow(f64),
    /// A bit flipped in one GEMM output per step.
    Corrupt,
    /// The next collective of this kind never completes.
    Hang(String),
    /// Throttled clocks, with this reason ("thermal" or "power").
    Throttle(String),
    /// Volatile uncorrected ECC errors.
    Ecc(u64),
    /// NCCL traffic at this fraction of its speed.
    LinkSlow(f64),
}

/// A fault and where it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The fault.
    pub fault: Fault,
    /// Host name, or None for any.
    pub host: Option<String>,
    /// Global device index, or None for any.
    pub gpu: Option<usize>,
    /// `,after=SECONDS`: the fault applies only once this many seconds have
    /// passed since the process first used the simulated libraries; None
    /// (no suffix) applies it from the start.
    pub after_s: Option<f64>,
}

/// Parses one spec; the error says what is wrong and what would fix it.
pub fn parse(spec: &str) -> Result<Spec, String> {
    let usage = "expected KIND@HOST:GPU[,after=SECONDS], e.g. xid=79@hostA:1, slow=0.3@*:0, corrupt@*:*, hang=all_reduce@hostB:0, throttle=thermal@*:0, ecc=4@*:0, link_slow=0.1@hostC:*, slow=0.5@hostA:1,after=20";
    let (body, suffixes) = match spec.split_once(',') {
        Some((b, rest)) => (b, Some(rest)),
        None => (spec, None),
    };
    let mut after_s = None;
    for suffix in suffixes.into_iter().flat_map(|r| r.split(',')) {
        let bad_after = || format!("--sim-fault {spec:?}: after= takes seconds, e.g. after=30");
        match suffix.split_once('=') {
            Some(("after", v)) => {
                if after_s.is_some() {
                    return Err(format!("--sim-fault {spec:?}: after= given twice"));
                }
                match v.trim().parse::<f64>() {
                    Ok(s) if s.is_finite() && s >= 0.0 => after_s = Some(s),
                    _ => return Err(bad_after()),
                }
            }
            None if suffix == "after" => return Err(bad_after()),
            _ => {
                return Err(format!(
                    "--sim-fault {spec:?}: unknown suffix {suffix:?} (the only one is ,after=SECONDS): {usage}"
                ))
            }
        }
    }
    let (kind, place) = body
        .split_once('@')
        .ok_or_else(|| format!("--sim-fault {spec:?}: no '@': {usage}"))?;
    let (host, gpu) = place
        .rsplit_once(':')
        .ok_or_else(|| format!("--sim-fault {spec:?}: no ':GPU' after the host: {usage}"))?;
    let host = match host {
        "*" => None,
        "" => {
            return Err(format!(
                "--sim-fault {spec:?}: empty host (use * for any): {usage}"
            ))
        }
        h => Some(h.to_string()),
    };
    let gpu = match gpu {
        "*" => None,
        g => Some(g.parse::<usize>().map_err(|_| {
            format!("--sim-fault {spec:?}: GPU {g:?} is not an index or *: {usage}")
        })?),
    };
    let (name, value) = match kind.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (kind, None),
    };
    let frac = |v: Option<&str>| -> Result<f64, String> {
        let v = v.ok_or_else(|| {
            format!("--sim-fault {spec:?}: {name} needs a value (e.g. {name}=0.3)")
        })?;
        match v.parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
            _ => Err(format!(
                "--sim-fault {spec:?}: {name}={v} must be a fraction in (0, 1]"
            )),
        }
    };
    let count = |v: Option<&str>| -> Result<u64, String> {
        v.and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| {
            format!("--sim-fault {spec:?}: {name} needs a whole number (e.g. {name}=79)")
        })
    };
    let fault = match name {
        "xid" => Fault::Xid(count(value)?),
        "slow" => Fault::Slow(frac(value)?),
        "corrupt" => Fault::Corrupt,
        "hang" => match value {
            Some(k @ ("all_reduce" | "all_gather" | "reduce_scatter" | "send_recv")) => Fault::Hang(k.into()),
            _ => return Err(format!("--sim-fault {spec:?}: hang= takes all_reduce, all_gather, reduce_scatter or send_recv")),
        },
        "throttle" => match value {
            Some(k @ ("thermal" | "power")) => Fault::Throttle(k.into()),
            _ => return Err(format!("--sim-fault {spec:?}: throttle= takes thermal or power")),
        },
        "ecc" => Fault::Ecc(count(value)?),
        "link_slow" => Fault::LinkSlow(frac(value)?),
        other => return Err(format!("--sim-fault {spec:?}: unknown kind {other:?}: {usage}")),
    };
    Ok(Spec {
        fault,
        host,
        gpu,
        after_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_their_places() {
        assert_eq!(
            parse("xid=79@hostA:1").unwrap(),
            Spec {
                fault: Fault::Xid(79),
                host: Some("hostA".into()),
                gpu: Some(1),
                after_s: None,
            }
        );
        assert_eq!(parse("slow=0.3@*:*").unwrap().fault, Fault::Slow(0.3));
        assert_eq!(
            parse("hang=all_reduce@h:0").unwrap().fault,
            Fault::Hang("all_reduce".into())
        );
        assert!(parse("slow=3@*:0").unwrap_err().contains("fraction"));
        assert!(parse("melt@*:0").unwrap_err().contains("unknown kind"));
        assert!(parse("corrupt").unwrap_err().contains("'@'"));
    }

    #[test]
    fn after_suffix_delays_a_fault() {
        assert_eq!(
            parse("slow=0.5@*:1,after=20").unwrap(),
            Spec {
                fault: Fault::Slow(0.5),
                host: None,
                gpu: Some(1),
                after_s: Some(20.0),
            }
        );
        let t = parse("throttle=thermal@hostA:0,after=2.5").unwrap();
        assert_eq!(t.fault, Fault::Throttle("thermal".into()));
        assert_eq!((t.host.as_deref(), t.gpu), (Some("hostA"), Some(0)));
        assert_eq!(t.after_s, Some(2.5));
        assert_eq!(parse("corrupt@*:*,after=0").unwrap().after_s, Some(0.0));
        assert_eq!(parse("corrupt@*:*").unwrap().after_s, None);
        for bad in [
            "after=-1",
            "after=x",
            "after=",
            "after",
            "after=nan",
            "after=inf",
        ] {
            let spec = format!("slow=0.5@*:1,{bad}");
            let e = parse(&spec).unwrap_err();
            assert!(e.contains(&format!("{spec:?}")), "{e}");
            assert!(e.contains("after= takes seconds, e.g. after=30"), "{e}");
        }
        let e = parse("slow=0.5@*:1,after=1,after=2").unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = parse("slow=0.5@*:1,later=3").unwrap_err();
        assert!(
            e.contains("unknown suffix") && e.contains(",after=SECONDS"),
            "{e}"
        );
        // The suffix does not hide a bad spec before it.
        assert!(parse("slow=3@*:0,after=5")
            .unwrap_err()
            .contains("fraction"));
    }
}
