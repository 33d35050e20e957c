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
    /// Nothing can be placed.
    Fatal,
    /// `validate` fails; placement goes on without the part at fault.
    Error,
    /// For information.
    Warning,
}

/// One finding, naming the file and the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// The input file it is about (or a pseudo-file: `plan`, `volumes`, `demand model`).
    pub file: String,
    /// A dotted key path (`groups.app.ci.paths[1]`), a job name, or a line (`line 12`).
    pub key: String,
    /// What is wrong, and where it matters what to do.
    pub message: String,
}

impl Diagnostic {
    /// A finding of any severity.
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

    /// A finding that stops placement.
    pub fn fatal(file: impl Into<String>, key: impl Into<String>, msg: impl Into<String>) -> Self {
        Self::new(Severity::Fatal, file, key, msg)
    }

    /// A finding that placement isolates.
    pub fn error(file: impl Into<String>, key: impl Into<String>, msg: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, key, msg)
    }

    /// A finding for information.
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

/// An error and its causes on one line, `what: why: deeper why`: library errors keep their
/// cause as a source and do not repeat it in their own message, so an edge that needs one
/// string (a diagnostic, a stored failure, a log field) says each cause once with this.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // A message that already ends with its cause (an error from elsewhere) is not
        // repeated.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_chain_says_each_cause_once() {
        let e = Outer(std::io::Error::other("no such file"));
        assert_eq!(chain(&e), "cannot read x: no such file");
    }
}
