//! The one error type of the report crate. Every variant names the file it
//! is about, so a person reading `mfubench: error: …` knows which input to
//! look at; the launcher maps all of them to exit code 2.

use std::path::PathBuf;

/// Why a report or comparison could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The input path does not exist or cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file or directory named by the user.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A directory was given but it holds no run.json.
    #[error("{}: no run.json in this directory (give a run directory or a run.json file)", path.display())]
    NoRunFile {
        /// The directory.
        path: PathBuf,
    },
    /// The file ends in the middle of the JSON document.
    #[error("{}: truncated: the file ends at line {line}, column {column} in the middle of the JSON document (was the run interrupted while writing?)", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 1-based line where the text stops.
        line: usize,
        /// 1-based column where the text stops.
        column: usize,
    },
    /// The file is not valid JSON.
    #[error("{}: not valid JSON at line {line}, column {column}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// Valid JSON that does not match the run.json schema (missing field,
    /// wrong type, unknown enum value).
    #[error("{}: not a valid mfubench run.json (schema version {schema}): {message} (line {line}, column {column})", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// Schema version the file claims (0 when absent).
        schema: u32,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What does not match.
        message: String,
    },
    /// Written by a newer mfubench whose layout this build cannot read.
    #[error("{}: schema_version {found} is newer than this mfubench understands (up to {supported}); use a newer mfubench to read it", path.display())]
    FutureSchema {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u64,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The schema parses but the content is inconsistent (e.g. no ranks,
    /// a world size that differs from the number of rank records).
    #[error("{}: inconsistent run.json: {message}", path.display())]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        message: String,
    },
    /// An output file could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// `compare` on runs of different configurations without `--force`.
    #[error("{} and {} ran different configurations; differing fields: {}; pass --force to compare anyway", baseline.display(), new.display(), fields.join(", "))]
    ConfigMismatch {
        /// Baseline run file.
        baseline: PathBuf,
        /// New run file.
        new: PathBuf,
        /// `field: baseline → new` for every difference.
        fields: Vec<String>,
    },
    /// An option value is out of range (e.g. a negative tolerance).
    #[error("{option}: {message}")]
    BadOption {
        /// The option, e.g. `--max-regression`.
        option: String,
        /// What is wrong with its value.
        message: String,
    },
}

impl From<mfubench_fsio::FsError> for ReportError {
    fn from(e: mfubench_fsio::FsError) -> ReportError {
        use mfubench_fsio::FsError;
        match e {
            FsError::Read { path, source } => ReportError::Read { path, source },
            FsError::Write { path, source } => ReportError::Write { path, source },
            FsError::NotAFile { path } => ReportError::Inconsistent {
                path,
                message: "not a regular file".into(),
            },
            FsError::TooLarge { ref path, .. } => {
                let path = path.clone();
                let full = e.to_string();
                let prefix = format!("{}: ", path.display());
                ReportError::Inconsistent {
                    message: full.strip_prefix(&prefix).unwrap_or(&full).to_string(),
                    path,
                }
            }
        }
    }
}
