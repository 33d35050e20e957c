//! Helpers for reading loosely typed YAML the way the Go loaders do (`sigs.k8s.io/yaml`:
//! YAML 1.1 through `encoding/json`, so keys match case-insensitively).

use yaml_serde::{Mapping, Value};

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

/// Gunzips when the bytes start with the gzip magic (the Go loaders accept both).
pub(crate) fn maybe_gunzip(bytes: &[u8]) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
    use std::io::Read;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(std::borrow::Cow::Owned(out))
    } else {
        Ok(std::borrow::Cow::Borrowed(bytes))
    }
}
