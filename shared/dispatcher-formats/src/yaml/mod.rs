//! YAML as the dispatcher reads it: whole documents through the library, bounded first
//! ([`guard`]), loosely typed the way the Go loaders read them (`go_loader`), and the line
//! model of block YAML that the job-file walkers share (`lines`).

mod go_loader;
pub mod guard;
pub(crate) mod lines;

use dispatcher_core::Diagnostic;
use yaml_serde::{Mapping, Value};

#[cfg(test)]
pub(crate) use go_loader::assert_one_finding;
pub(crate) use go_loader::{Findings, get, key_text, kind, scalar_text, unknown_keys};

/// The most bytes one document (a config, an inventory, a job file, a volumes vector) may
/// have once decompressed: far above any real one (the largest job file is 1.8 MB), far
/// below what would exhaust memory.
pub const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// The 1-based line of a YAML error, if it has one.
pub(crate) fn error_line(e: &yaml_serde::Error) -> Option<usize> {
    e.location().map(|l| l.line())
}

/// Gunzips when the bytes start with the gzip magic (the Go loaders accept both), refusing
/// more than [`MAX_DOCUMENT_BYTES`] of output: a small bomb must not become gigabytes.
pub(crate) fn maybe_gunzip(bytes: &[u8]) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
    use std::io::Read;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_DOCUMENT_BYTES as u64 + 1)
            .read_to_end(&mut out)?;
        if out.len() > MAX_DOCUMENT_BYTES {
            return Err(std::io::Error::other(format!(
                "more than {MAX_DOCUMENT_BYTES} bytes once decompressed"
            )));
        }
        Ok(std::borrow::Cow::Owned(out))
    } else {
        Ok(std::borrow::Cow::Borrowed(bytes))
    }
}

/// The root mapping of a config or an inventory (gzipped or not, with or without a byte
/// order mark), `None` for an empty document. A file that cannot be read this far is one
/// fatal finding, naming the line where the library gives one; `expected` says what the
/// root should have been.
pub(crate) fn root_mapping(
    bytes: &[u8],
    file: &str,
    expected: &str,
) -> Result<Option<Mapping>, Diagnostic> {
    let fatal = |key: String, message: String| Diagnostic::fatal(file, key, message);
    let bytes =
        maybe_gunzip(bytes).map_err(|e| fatal(String::new(), format!("cannot gunzip: {e}")))?;
    let invalid = |line: Option<usize>, message: String| {
        let key = line.map(|l| format!("line {l}")).unwrap_or_default();
        fatal(key, format!("not valid YAML: {message}"))
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| invalid(None, format!("not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    guard::check(text, MAX_DOCUMENT_BYTES).map_err(|e| invalid(Some(e.line), e.message))?;
    let root: Value =
        yaml_serde::from_str(text).map_err(|e| invalid(error_line(&e), e.to_string()))?;
    match root {
        Value::Mapping(m) => Ok(Some(m)),
        Value::Null => Ok(None),
        other => Err(fatal(
            String::new(),
            format!("expected {expected}, found {}", kind(&other)),
        )),
    }
}
