//! Atomic file writes (mfubench-fsio's), with the report's error type: a
//! reader (a person, node_exporter's textfile collector, a CI job) sees
//! either the old file or the whole new one.

use std::path::Path;

use crate::error::ReportError;

/// Writes `data` to `path` through a temporary file in the same directory
/// and a rename ([`mfubench_fsio::write_atomic`]).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ReportError> {
    mfubench_fsio::write_atomic(path, data).map_err(|e| match e {
        mfubench_fsio::FsError::Write { path, source } => ReportError::Write { path, source },
        other => ReportError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}
