//! Host buffers of the CPU dtypes: what the CPU backend computes in and
//! its MPI groups reduce (a module of its own, so the backend and the
//! groups depend on it and not on each other).

use mfubench_core::config::Dtype;

use crate::backend::BackendError;

/// A host buffer of one of the CPU dtypes.
#[derive(Debug, Clone, PartialEq)]
pub enum HostBuf {
    /// Single precision.
    F32(Vec<f32>),
    /// Double precision.
    F64(Vec<f64>),
}

impl HostBuf {
    pub(crate) fn filled(
        dtype: Dtype,
        len: usize,
        mut f: impl FnMut(usize) -> f64,
    ) -> Result<HostBuf, BackendError> {
        match dtype {
            Dtype::F32 => Ok(HostBuf::F32((0..len).map(|i| f(i) as f32).collect())),
            Dtype::F64 => Ok(HostBuf::F64((0..len).map(&mut f).collect())),
            other => Err(BackendError::Unavailable(format!(
                "the cpu backend supports f32 and f64, not {other}"
            ))),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostBuf::F32(v) => v.len(),
            HostBuf::F64(v) => v.len(),
        }
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn fill_nan(&mut self) {
        match self {
            HostBuf::F32(v) => v.fill(f32::NAN),
            HostBuf::F64(v) => v.fill(f64::NAN),
        }
    }

    pub(crate) fn get(&self, i: usize) -> f64 {
        match self {
            HostBuf::F32(v) => v[i] as f64,
            HostBuf::F64(v) => v[i],
        }
    }

    pub(crate) fn add(&mut self, i: usize, x: f64) {
        match self {
            HostBuf::F32(v) => v[i] += x as f32,
            HostBuf::F64(v) => v[i] += x,
        }
    }
}
