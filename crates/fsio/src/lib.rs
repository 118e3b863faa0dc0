//! # mfubench-fsio: the file I/O every other crate shares
//!
//! Two jobs, each written once:
//! - [`write_atomic`]: results already measured are never lost or seen
//!   half-written. A file is written to a temporary name in the same folder,
//!   synced, then renamed over the target (atomic on POSIX file systems), so
//!   a reader — a person, node_exporter's textfile collector, a CI job, the
//!   launcher's report — sees either the old file or the whole new one. The
//!   worker writes run.json, vary.json and accept.json this way after every
//!   mode or stage; the report writes its summaries and plots this way.
//! - [`read_capped`] and [`schema_version`]: the one policy for reading the
//!   versioned JSON files mfubench writes (run.json, vary.json,
//!   accept.json): a regular file no larger than a cap (a huge or endless
//!   file is refused before it is read), and the `schema_version` looked at
//!   alone before the typed parse, so that a newer layout is reported as
//!   newer rather than as a confusing field error.
//!
//! The worker depends on this crate and not on the report crate, which
//! keeps tables, JUnit and Prometheus code out of the MPI binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What went wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Writing (or renaming into place) failed.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The target file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a regular file (a folder, a device, a pipe).
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Larger than the cap for its kind of file.
    #[error("{}: {size} bytes, more than the {} MiB a {what} may have{hint}", path.display(), max >> 20)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
        /// The kind of file ("run.json").
        what: &'static str,
        /// How to read it anyway, if there is a way (starts with "; ").
        hint: String,
    },
}

/// Writes `data` to `path` through a temporary file in the same directory
/// and a rename (atomic on POSIX file systems).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    // Dot-prefixed so that node_exporter ignores it (it reads *.prom only);
    // pid + counter so that concurrent writers of one file never share it.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp.{}.{seq}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename durable too (best effort).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| FsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Appends `line` and a newline to `path` (created if absent) in one write,
/// then syncs the file: a line appended is on disk when this returns, and
/// a kill during the write leaves at most the last line cut (readers of
/// such logs drop a line that does not parse).
pub fn append_line(path: &Path, line: &[u8]) -> Result<(), FsError> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.push(b'\n');
    let result = (|| {
        let mut f = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(&buf)?;
        f.sync_data()
    })();
    result.map_err(|source| FsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a regular file of at most `max` bytes; `what` and `hint` name the
/// kind of file and how to read a larger one in the error.
pub fn read_capped(
    path: &Path,
    max: u64,
    what: &'static str,
    hint: &str,
) -> Result<Vec<u8>, FsError> {
    let read_err = |source| FsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(FsError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > max {
        return Err(FsError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            max,
            what,
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!("; {hint}")
            },
        });
    }
    std::fs::read(path).map_err(read_err)
}

/// The `schema_version` of a JSON document, looked at alone (None when the
/// document is not JSON, not an object, or has no whole-number version).
pub fn schema_version(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Head {
        schema_version: Option<serde_json::Value>,
    }
    // serde would also read a struct from an array: objects only.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Head>(bytes)
        .ok()
        .and_then(|h| h.schema_version)
        .and_then(|v| v.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.json");
        write_atomic(&p, b"{\"a\":1}").unwrap();
        write_atomic(&p, b"{\"a\":2}").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":2}");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let e = write_atomic(&d.path().join("no/such/dir/x"), b"1").unwrap_err();
        assert!(e.to_string().contains("cannot write"), "{e}");
    }

    #[test]
    fn capped_reads_refuse_large_files_and_folders() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("accept.json");
        std::fs::write(&p, vec![b' '; 2048]).unwrap();
        assert_eq!(
            read_capped(&p, 4096, "accept.json", "").unwrap().len(),
            2048
        );
        let e = read_capped(&p, 1024, "accept.json", "set X to read it")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2048 bytes")
                && e.contains("accept.json")
                && e.ends_with("; set X to read it"),
            "{e}"
        );
        assert!(matches!(
            read_capped(d.path(), 1024, "x", ""),
            Err(FsError::NotAFile { .. })
        ));
    }

    #[test]
    fn the_version_is_read_alone() {
        assert_eq!(
            schema_version(b"{\"schema_version\": 7, \"x\": [1,2]}"),
            Some(7)
        );
        assert_eq!(schema_version(b"{\"x\": 1}"), None);
        assert_eq!(schema_version(b"[1]"), None);
        assert_eq!(schema_version(b"{\"schema_version\": \"3\"}"), None);
    }
}
