//! Loosely typed YAML read the way the Go loaders read it (`sigs.k8s.io/yaml`: YAML 1.1
//! through `encoding/json`, so keys match case-insensitively and scalars become the text a
//! string field gets), and the findings about a file that it leads to.

use dispatcher_core::Diagnostic;
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
fn unknown_key_message(key: &str, known: &[&str]) -> String {
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
fn case_clashes(map: &Mapping) -> Vec<(String, String)> {
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

/// A key as text, whatever its YAML type.
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
/// `Err` says what was found instead.
fn boolean(v: &Value) -> Result<bool, String> {
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

/// What a value is, for messages.
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

/// A list of strings; `null` is an empty list. `Err` says what is not a string.
fn string_list(v: &Value) -> Result<Vec<String>, String> {
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

/// `prefix.key`, or `key` at the top.
fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The findings about one file as it is read, each naming the key at fault (a dotted
/// path); the typed reads report what they cannot read and give the Go loader's zero value.
pub(crate) struct Findings<'a> {
    file: &'a str,
    list: Vec<Diagnostic>,
}

impl<'a> Findings<'a> {
    pub(crate) fn new(file: &'a str) -> Self {
        Self {
            file,
            list: Vec::new(),
        }
    }

    /// What was found, in the order it was.
    pub(crate) fn into_list(self) -> Vec<Diagnostic> {
        self.list
    }

    /// A problem that makes the file unusable.
    pub(crate) fn fatal(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(Diagnostic::fatal(self.file, key, message));
    }

    /// Something the Go loaders would silently accept or change.
    pub(crate) fn warning(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(Diagnostic::warning(self.file, key, message));
    }

    /// A value of the wrong type at `key`: fatal.
    pub(crate) fn wrong_type(&mut self, key: impl Into<String>, expected: &str, found: &Value) {
        self.fatal(key, format!("expected {expected}, found {}", kind(found)));
    }

    /// Warns about each key of `map` (under `prefix`) that matches none of `known`.
    pub(crate) fn unknown_keys(&mut self, map: &Mapping, known: &[&str], prefix: &str) {
        for k in unknown_keys(map, known) {
            let message = unknown_key_message(&k, known);
            self.warning(join(prefix, &k), message);
        }
    }

    /// Refuses each key of `map` (under `prefix`) given again in another case.
    pub(crate) fn case_clashes(&mut self, map: &Mapping, prefix: &str) {
        for (earlier, later) in case_clashes(map) {
            self.fatal(
                join(prefix, &later),
                format!(
                    "{earlier} and {later} are the same key to Go's loader, which reads only the last one: keep one"
                ),
            );
        }
    }

    /// The list of strings at `key` of `map` (under `prefix`); empty when absent or wrong.
    pub(crate) fn strings(&mut self, map: &Mapping, key: &str, prefix: &str) -> Vec<String> {
        match get(map, key).map(string_list) {
            None => Vec::new(),
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                self.fatal(join(prefix, key), e);
                Vec::new()
            }
        }
    }

    /// The boolean at `key` of `map` (under `prefix`); false when absent or wrong.
    pub(crate) fn flag(&mut self, map: &Mapping, key: &str, prefix: &str) -> bool {
        match get(map, key).map(boolean) {
            None => false,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                self.fatal(join(prefix, key), e);
                false
            }
        }
    }

    /// The mapping at `key` of `map` (the top of the file); `None` when absent, null or
    /// of another type.
    pub(crate) fn mapping<'m>(&mut self, map: &'m Mapping, key: &str) -> Option<&'m Mapping> {
        match get(map, key) {
            Some(Value::Mapping(m)) => Some(m),
            Some(Value::Null) | None => None,
            Some(other) => {
                self.wrong_type(key, "a mapping", other);
                None
            }
        }
    }
}

/// Asserts that `diags` holds exactly one finding, of `severity` at `key`, whose message
/// says `part`.
#[cfg(test)]
pub(crate) fn assert_one_finding(
    diags: &[Diagnostic],
    severity: dispatcher_core::Severity,
    key: &str,
    part: &str,
) {
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!((d.severity, d.key.as_str()), (severity, key), "{d}");
    assert!(d.message.contains(part), "{d}");
}
