//! What a [`CudaBackend`] records about its device: the details of
//! `RankRecord.device_info` and the device record of
//! [`crate::backend::Backend::device`] (apart from [`super::device`], which
//! reads the device and knows nothing of the backend).

use std::collections::BTreeMap;

use super::backend::CudaBackend;
use super::probe::{cublas_version_string, cuda_version_string};
use super::{gemm, nccl, telemetry};

impl CudaBackend {
    /// Details for `RankRecord.device_info`.
    pub fn device_info_map(&self) -> BTreeMap<String, String> {
        let i = &self.info;
        let mut m = self.notes.clone();
        m.insert("gpu_name".into(), i.name.clone());
        if i.name.ends_with(mfubench_core::simgpu::NAME_MARK) {
            m.insert("simulated".into(), "true".into());
        }
        m.insert("sm_count".into(), i.sm_count.to_string());
        m.insert(
            "compute_capability".into(),
            format!("{}.{}", i.compute_capability.0, i.compute_capability.1),
        );
        m.insert(
            "memory_gib".into(),
            format!("{:.1}", i.total_mem as f64 / (1u64 << 30) as f64),
        );
        m.insert("ordinal".into(), i.ordinal.to_string());
        m.insert("uuid".into(), telemetry::nvml_uuid(&i.uuid));
        if let Some(serial) = self.telemetry.as_ref().and_then(|t| t.serial()) {
            m.insert("serial".into(), serial);
        }
        m.insert(
            "cuda_version".into(),
            cuda_version_string(i.driver_cuda_version),
        );
        m.insert(
            "cublaslt_version".into(),
            cublas_version_string(self.lt.version()),
        );
        m.insert("cublaslt_lib".into(), self.lt.what.clone());
        if let Ok(v) = self.nccl.version() {
            m.insert("nccl_version".into(), nccl::version_string(v));
        }
        m.insert("nccl_lib".into(), self.nccl.what.clone());
        m.insert("gemm_batch_chunk".into(), self.mem.batch_chunk.to_string());
        m.insert(
            "l2_mib".into(),
            format!("{:.1}", i.l2_bytes as f64 / (1u64 << 20) as f64),
        );
        m.insert(
            "operand_rotation_mib".into(),
            (gemm::rotation_bytes(i.l2_bytes) >> 20).to_string(),
        );
        if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
            m.insert("cuda_visible_devices".into(), v);
        }
        m
    }

    /// Dense peak of the configured dtype from core's table, by device name
    /// and SM count.
    pub fn spec_peak_tflops(&self) -> Option<f64> {
        mfubench_core::peak::by_device(&self.info.name, Some(self.info.sm_count))
            .and_then(|d| d.peak(self.dtype))
    }

    /// The record of [`crate::backend::Backend::device`]: the details of
    /// [`CudaBackend::device_info_map`] with the library versions apart.
    pub(super) fn device_record(&self) -> crate::backend::DeviceRecord {
        let mut info = self.device_info_map();
        let mut versions = BTreeMap::new();
        for key in [
            "driver_version",
            "cuda_version",
            "cublaslt_version",
            "nccl_version",
        ] {
            if let Some(v) = info.remove(key) {
                versions.insert(key.trim_end_matches("_version").to_string(), v);
            }
        }
        crate::backend::DeviceRecord {
            device: format!("GPU {}", self.info.ordinal),
            name: self.info.name.clone(),
            info,
            versions,
            spec_peak_tflops: self.spec_peak_tflops(),
        }
    }
}
