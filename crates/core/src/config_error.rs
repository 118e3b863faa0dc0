//! The configuration's error type, shared by every section's validation
//! (config.rs, parallel.rs, accept): a module of its own so that the
//! sections do not depend on each other for it.

/// Errors from reading or validating a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid TOML, or a value has the wrong type, or a key is
    /// unknown. `line` and `col` are 1-based.
    #[error("{file}:{line}:{col}: {message}")]
    Syntax {
        /// Name of the file (as given by the caller).
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column of the offending text.
        col: usize,
        /// What is wrong, with the table name where known.
        message: String,
    },
    /// A value is well-formed but breaks a rule.
    #[error("{file}: {field}: {message}")]
    Invalid {
        /// Name of the file (as given by the caller).
        file: String,
        /// Dotted field name, e.g. `model.heads`.
        field: String,
        /// The rule that was broken, with the values involved.
        message: String,
    },
}

impl ConfigError {
    /// The dotted field name for semantic errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Syntax { .. } => None,
        }
    }
}
