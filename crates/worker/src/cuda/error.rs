//! The CUDA backend's errors: the driver's, cuBLASLt's, NCCL's and the
//! library search's, and how each becomes a [`BackendError`].

use cudarc::driver::{result as cu, sys};

use super::{discovery, gemm, nccl};
use crate::backend::BackendError;

/// Errors of the CUDA backend's libraries.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// A driver API call failed.
    #[error("CUDA driver: {call}: {err}")]
    Driver {
        /// What was called.
        call: &'static str,
        /// cudarc's error.
        err: cu::DriverError,
    },
    /// cuBLASLt failed.
    #[error(transparent)]
    Cublas(#[from] gemm::CublasError),
    /// NCCL failed.
    #[error(transparent)]
    Nccl(#[from] nccl::NcclError),
    /// A library is missing.
    #[error(transparent)]
    Discovery(#[from] discovery::DiscoveryError),
    /// A call of the safe layer (`cuda/launch.rs`) was given buffers or a
    /// stream that do not fit it; nothing was enqueued.
    #[error("{call}: {what}")]
    Invalid {
        /// The library call that was not made.
        call: &'static str,
        /// What did not fit.
        what: String,
    },
}

impl From<CudaError> for BackendError {
    fn from(e: CudaError) -> BackendError {
        match e {
            CudaError::Discovery(_) => BackendError::Unavailable(e.to_string()),
            CudaError::Driver { err, .. } if err.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                BackendError::OutOfMemory(e.to_string())
            }
            _ => BackendError::Failed(e.to_string()),
        }
    }
}

pub(crate) fn drv<T>(call: &'static str, r: Result<T, cu::DriverError>) -> Result<T, CudaError> {
    r.map_err(|err| CudaError::Driver { call, err })
}
