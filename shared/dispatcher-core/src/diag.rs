//! Diagnostics: what validation and placement found wrong with the inputs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a finding is.
///
/// `Fatal` means the inputs cannot be placed at all (an ambiguous or unusable config); `Error`
/// makes `validate` fail but placement isolates it (F7); `Warning` is informational.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fatal,
    Error,
    Warning,
}

/// One finding, naming the file and the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    /// A dotted key path (`groups.app.ci.paths[1]`), a job name, or a line (`line 12`).
    pub key: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        severity: Severity,
        file: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn fatal(file: impl Into<String>, key: impl Into<String>, msg: impl Into<String>) -> Self {
        Self::new(Severity::Fatal, file, key, msg)
    }

    pub fn error(file: impl Into<String>, key: impl Into<String>, msg: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, key, msg)
    }

    pub fn warning(
        file: impl Into<String>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, file, key, msg)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.key.is_empty() {
            write!(f, "{sev}: {}: {}", self.file, self.message)
        } else {
            write!(f, "{sev}: {}: {}: {}", self.file, self.key, self.message)
        }
    }
}

/// Fatal findings that stop a run, returned instead of a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} fatal problem(s) in the inputs; first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
pub struct FatalInputs(pub Vec<Diagnostic>);
