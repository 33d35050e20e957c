//! Helpers for reading loosely typed YAML the way the Go loaders do (`sigs.k8s.io/yaml`:
//! YAML 1.1 through `encoding/json`, so keys match case-insensitively).

pub mod guard;

use yaml_serde::{Mapping, Value};

/// The most bytes one document (a config, an inventory, a job file, a volumes vector) may
/// have once decompressed: far above any real one (the largest job file is 1.8 MB), far
/// below what would exhaust memory.
pub const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// Looks a key up case-insensitively, preferring an exact match.
pub(crate) fn get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    map.iter()
        .find(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(key)))
        .map(|(_, v)| v)
}

/// Keys of `map` that match none of `known` (case-insensitively).
pub(crate) fn unknown_keys(map: &Mapping, known: &[&str]) -> Vec<String> {
    map.keys()
        .map(key_text)
        .filter(|k| !known.iter().any(|n| n.eq_ignore_ascii_case(k)))
        .collect()
}

/// The warning for a key nobody reads: ignored, as the Go loaders ignore it, with the
/// known key it was probably meant to be.
pub(crate) fn unknown_key_message(key: &str, known: &[&str]) -> String {
    let lower = key.to_ascii_lowercase();
    let closest = known
        .iter()
        .map(|k| (strsim::levenshtein(&lower, &k.to_ascii_lowercase()), *k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 4));
    match closest {
        Some((_, k)) => format!("unknown key, ignored (did you mean {k}?)"),
        None => format!("unknown key, ignored (known: {})", known.join(", ")),
    }
}

/// Keys of `map` that only differ from an earlier key in case (`Default:` beside
/// `default:`): Go's loader matches keys case-insensitively and the last one wins, so one
/// of them is silently ignored. Each clash as (earlier key, later key).
pub(crate) fn case_clashes(map: &Mapping) -> Vec<(String, String)> {
    let keys: Vec<String> = map.keys().map(key_text).collect();
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(earlier) = keys[..i]
            .iter()
            .find(|e| e.eq_ignore_ascii_case(k) && *e != k)
        {
            out.push((earlier.clone(), k.clone()));
        }
    }
    out
}

/// The fatal finding for a [`case_clashes`] pair at `place` (a key path, empty at the top).
pub(crate) fn clash_message(earlier: &str, later: &str) -> String {
    format!(
        "{earlier} and {later} are the same key to Go's loader, which reads only the last one: keep one"
    )
}

pub(crate) fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => scalar_text(other).unwrap_or_else(|| format!("{other:?}")),
    }
}

/// The text of a scalar as Go would see it after YAML -> JSON for a string field.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A boolean, accepting the YAML 1.1 words Go's loader accepts (`yes`, `on`, ...).
/// `Err` carries a description of what was found.
pub(crate) fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "y" | "on" | "true" => Ok(true),
            "no" | "n" | "off" | "false" => Ok(false),
            _ => Err(format!("expected a boolean, found {s:?}")),
        },
        other => Err(format!("expected a boolean, found {}", kind(other))),
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A list of strings; `null` is an empty list.
pub(crate) fn string_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                scalar_text(x).ok_or_else(|| format!("item {i} is {}, expected a string", kind(x)))
            })
            .collect(),
        other => Err(format!("expected a list of strings, found {}", kind(other))),
    }
}

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

/// Parses a whole YAML document into a value, after [`guard::check`]: the error says the
/// line first.
pub(crate) fn parse_value(bytes: &[u8]) -> Result<Value, (Option<usize>, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| (None, format!("not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    guard::check(text, MAX_DOCUMENT_BYTES).map_err(|e| (Some(e.line), e.message))?;
    yaml_serde::from_str(text).map_err(|e| (error_line(&e), e.to_string()))
}
