//! Dense peak TFLOP/s per device and dtype, from vendor datasheets (sparse
//! figures are 2× these). A device is looked up by the name the driver
//! reports and its SM count: names alone are ambiguous (an "H100" may be the
//! SXM or the PCIe part) and the boost clock overstates the sustained peak,
//! so clocks are never used.

use serde::Serialize;

use crate::config::Dtype;

/// One device model of the table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeviceSpec {
    /// Key used on the command line (`--gpu h100-sxm`).
    pub key: &'static str,
    /// Human-readable name.
    pub name: &'static str,
    /// Lower-case substrings, one of which the driver's name must contain.
    #[serde(skip)]
    pub name_patterns: &'static [&'static str],
    /// SM count of the part; used to tell variants apart.
    pub sm_count: u32,
    /// Dense bf16 tensor TFLOP/s.
    pub bf16: f64,
    /// Dense fp16 tensor TFLOP/s.
    pub fp16: f64,
    /// Dense fp8 tensor TFLOP/s, if the part has fp8.
    pub fp8: Option<f64>,
    /// Dense tf32 tensor TFLOP/s.
    pub tf32: f64,
    /// Non-tensor fp32 TFLOP/s.
    pub fp32: f64,
    /// fp64 TFLOP/s (tensor core where the part has it).
    pub fp64: f64,
}

impl DeviceSpec {
    /// Dense peak for a GEMM dtype, TFLOP/s.
    pub fn peak(&self, dtype: Dtype) -> Option<f64> {
        match dtype {
            Dtype::Bf16 => Some(self.bf16),
            Dtype::Fp16 => Some(self.fp16),
            Dtype::Fp8 => self.fp8,
            Dtype::Tf32 => Some(self.tf32),
            Dtype::F32 => Some(self.fp32),
            Dtype::F64 => Some(self.fp64),
        }
    }
}

/// The table. Order matters for name matching: more specific patterns first.
pub const DEVICES: &[DeviceSpec] = &[
    // Source: https://resources.nvidia.com/en-us-grace-cpu/grace-hopper-superchip (GH200 datasheet: H100 tensor figures)
    DeviceSpec {
        key: "gh200",
        name: "NVIDIA GH200 (H100 96/144 GB)",
        name_patterns: &["gh200"],
        sm_count: 132,
        bf16: 989.0,
        fp16: 989.0,
        fp8: Some(1979.0),
        tf32: 495.0,
        fp32: 67.0,
        fp64: 67.0,
    },
    // Source: https://www.nvidia.com/en-us/data-center/h200/ (H200 NVL column)
    DeviceSpec {
        key: "h200-nvl",
        name: "NVIDIA H200 NVL",
        name_patterns: &["h200 nvl"],
        sm_count: 132,
        bf16: 835.0,
        fp16: 835.0,
        fp8: Some(1670.5),
        tf32: 418.0,
        fp32: 60.0,
        fp64: 60.0,
    },
    // Source: https://www.nvidia.com/en-us/data-center/h200/ (H200 SXM column)
    DeviceSpec {
        key: "h200",
        name: "NVIDIA H200 SXM",
        name_patterns: &["h200"],
        sm_count: 132,
        bf16: 989.0,
        fp16: 989.0,
        fp8: Some(1979.0),
        tf32: 495.0,
        fp32: 67.0,
        fp64: 67.0,
    },
    // Source: https://www.nvidia.com/en-us/data-center/h100/ (H100 NVL column; fp8 3,341 sparse / 2)
    DeviceSpec {
        key: "h100-nvl",
        name: "NVIDIA H100 NVL",
        name_patterns: &["h100 nvl"],
        sm_count: 132,
        bf16: 835.0,
        fp16: 835.0,
        fp8: Some(1670.5),
        tf32: 417.0,
        fp32: 60.0,
        fp64: 60.0,
    },
    // Source: https://www.nvidia.com/en-us/data-center/h100/ (H100 SXM column)
    DeviceSpec {
        key: "h100-sxm",
        name: "NVIDIA H100 SXM",
        name_patterns: &["h100 80gb hbm3", "h100-sxm", "h100 sxm", "h100"],
        sm_count: 132,
        bf16: 989.0,
        fp16: 989.0,
        fp8: Some(1979.0),
        tf32: 495.0,
        fp32: 67.0,
        fp64: 67.0,
    },
    // Source: https://www.nvidia.com/en-us/data-center/h100/ (H100 PCIe column)
    DeviceSpec {
        key: "h100-pcie",
        name: "NVIDIA H100 PCIe",
        name_patterns: &["h100 pcie", "h100-pcie", "h100"],
        sm_count: 114,
        bf16: 756.0,
        fp16: 756.0,
        fp8: Some(1513.0),
        tf32: 378.0,
        fp32: 51.0,
        fp64: 51.0,
    },
    // Source: https://www.nvidia.com/en-us/data-center/hgx/ (HGX B200, per GPU)
    DeviceSpec {
        key: "b200",
        name: "NVIDIA B200",
        name_patterns: &["b200"],
        sm_count: 148,
        bf16: 2250.0,
        fp16: 2250.0,
        fp8: Some(4500.0),
        tf32: 1100.0,
        fp32: 75.0,
        fp64: 37.0,
    },
    // Source: https://www.nvidia.com/en-us/data-center/a100/
    DeviceSpec {
        key: "a100",
        name: "NVIDIA A100 (SXM4 / PCIe)",
        name_patterns: &["a100"],
        sm_count: 108,
        bf16: 312.0,
        fp16: 312.0,
        fp8: None,
        tf32: 156.0,
        fp32: 19.5,
        fp64: 19.5,
    },
    // Source: https://www.nvidia.com/en-us/data-center/l40s/
    DeviceSpec {
        key: "l40s",
        name: "NVIDIA L40S",
        name_patterns: &["l40s"],
        sm_count: 142,
        bf16: 362.05,
        fp16: 362.05,
        fp8: Some(733.0),
        tf32: 183.0,
        fp32: 91.6,
        fp64: 1.4,
    },
];

/// Looks a device up by its `--gpu` key (e.g. `h100-sxm`).
/// Short names people use for a device, and the key they mean: a bare
/// "H100" is the SXM part (what clusters are built from); the PCIe and NVL
/// parts have their own keys.
pub const ALIASES: [(&str, &str); 1] = [("h100", "h100-sxm")];

/// Looks a device up by key (`h100-sxm`), ignoring case and `-`/`_`/space
/// (`H100_SXM`, `h100sxm`), or by an alias of [`ALIASES`] (`h100`).
pub fn by_key(key: &str) -> Option<&'static DeviceSpec> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let k = norm(key);
    let k = ALIASES
        .iter()
        .find(|(alias, _)| norm(alias) == k)
        .map(|(_, target)| norm(target))
        .unwrap_or(k);
    DEVICES.iter().find(|d| norm(d.key) == k)
}

/// Keys of all devices.
pub fn keys() -> Vec<&'static str> {
    DEVICES.iter().map(|d| d.key).collect()
}

/// Looks a device up by the name the driver reports and its SM count.
///
/// A device matches strongly when the name contains its first (specific)
/// pattern — the longer that pattern, the stronger ("h200 nvl" beats
/// "h200") — and weakly through a generic one (a bare "H100"). With an SM
/// count, the strongest match of that count wins, and a count that matches
/// no candidate (a MIG slice, an unknown variant) gives `None`: the table's
/// peak would be wrong. Without one, a unique strongest match or a single
/// candidate wins; an ambiguous name is not guessed.
pub fn by_device(name: &str, sm_count: Option<u32>) -> Option<&'static DeviceSpec> {
    const STRONG: usize = 1000;
    let lower = name.to_ascii_lowercase();
    let score = |d: &DeviceSpec| {
        if lower.contains(d.name_patterns[0]) {
            STRONG + d.name_patterns[0].len()
        } else if d.name_patterns.iter().any(|p| lower.contains(p)) {
            1
        } else {
            0
        }
    };
    let candidates: Vec<(&'static DeviceSpec, usize)> = DEVICES
        .iter()
        .map(|d| (d, score(d)))
        .filter(|(_, s)| *s > 0)
        .collect();
    if let Some(sm) = sm_count {
        let same_sm = candidates.iter().filter(|(d, _)| d.sm_count == sm);
        // Ties go to the earlier table entry.
        let top = same_sm.clone().map(|(_, s)| *s).max()?;
        return same_sm.clone().find(|(_, s)| *s == top).map(|(d, _)| *d);
    }
    let top = candidates.iter().map(|(_, s)| *s).max()?;
    let at_top: Vec<_> = candidates.iter().filter(|(_, s)| *s == top).collect();
    match (at_top.as_slice(), candidates.as_slice()) {
        ([(d, s)], _) if *s >= STRONG => Some(d),
        (_, [(d, _)]) => Some(d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_aliases_and_spellings() {
        for k in [
            "h100", "H100", "h100-sxm", "H100_SXM", "h100sxm", "H100 SXM",
        ] {
            assert_eq!(by_key(k).map(|d| d.key), Some("h100-sxm"), "{k}");
        }
        assert_eq!(by_key("h100-pcie").map(|d| d.key), Some("h100-pcie"));
        assert_eq!(by_key("H200_NVL").map(|d| d.key), Some("h200-nvl"));
        assert!(by_key("h1000").is_none());
        assert!(by_key("").is_none());
    }

    #[test]
    fn design_table_values() {
        let sxm = by_key("h100-sxm").unwrap();
        assert_eq!((sxm.bf16, sxm.fp8, sxm.tf32), (989.0, Some(1979.0), 495.0));
        let pcie = by_key("h100-pcie").unwrap();
        assert_eq!(
            (pcie.bf16, pcie.fp8, pcie.tf32),
            (756.0, Some(1513.0), 378.0)
        );
        let a100 = by_key("a100").unwrap();
        assert_eq!((a100.bf16, a100.fp8, a100.tf32), (312.0, None, 156.0));
        let b200 = by_key("b200").unwrap();
        assert_eq!(
            (b200.bf16, b200.fp8, b200.tf32),
            (2250.0, Some(4500.0), 1100.0)
        );
        assert_eq!(by_key("H200").unwrap().peak(Dtype::Bf16), Some(989.0));
        assert_eq!(a100.peak(Dtype::Fp8), None);
        // Datasheet rows corrected in 0.2.
        assert_eq!(by_key("gh200").unwrap().tf32, 495.0);
        let h200nvl = by_key("h200-nvl").unwrap();
        assert_eq!((h200nvl.fp64, h200nvl.fp8), (60.0, Some(1670.5)));
        assert_eq!(by_key("h100-nvl").unwrap().fp8, Some(1670.5));
    }

    #[test]
    fn lookup_by_driver_name_and_sm_count() {
        assert_eq!(
            by_device("NVIDIA H100 80GB HBM3", Some(132)).unwrap().key,
            "h100-sxm"
        );
        assert_eq!(
            by_device("NVIDIA H100 PCIe", Some(114)).unwrap().key,
            "h100-pcie"
        );
        // The name alone does not say which H100: the SM count decides.
        assert_eq!(
            by_device("NVIDIA H100", Some(114)).unwrap().key,
            "h100-pcie"
        );
        assert_eq!(by_device("NVIDIA H100", Some(132)).unwrap().key, "h100-sxm");
        assert!(by_device("NVIDIA H100", None).is_none());
        assert_eq!(by_device("NVIDIA H200", Some(132)).unwrap().key, "h200");
        assert_eq!(by_device("NVIDIA H200 NVL", None).unwrap().key, "h200-nvl");
        assert_eq!(
            by_device("NVIDIA H200 NVL", Some(132)).unwrap().key,
            "h200-nvl"
        );
        assert_eq!(by_device("NVIDIA H200", None).unwrap().key, "h200");
        // A MIG slice reports the part's name with fewer SMs: not the full peak.
        assert!(by_device("NVIDIA H100 80GB HBM3 MIG 1g.10gb", Some(16)).is_none());
        assert_eq!(
            by_device("NVIDIA GH200 480GB", Some(132)).unwrap().key,
            "gh200"
        );
        assert_eq!(
            by_device("NVIDIA A100-SXM4-80GB", Some(108)).unwrap().key,
            "a100"
        );
        assert_eq!(by_device("NVIDIA B200", Some(148)).unwrap().key, "b200");
        assert_eq!(by_device("NVIDIA L40S", Some(142)).unwrap().key, "l40s");
        assert_eq!(
            by_device("NVIDIA H100 NVL", Some(132)).unwrap().key,
            "h100-nvl"
        );
        assert!(by_device("NVIDIA GeForce RTX 4090", Some(128)).is_none());
    }
}
