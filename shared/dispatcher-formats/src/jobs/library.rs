//! Job files read by the YAML library, every byte: the reference the fast reader is held
//! to, and the reader of every file the fast reader leaves alone.

use std::collections::BTreeMap;

use dispatcher_core::model::{Container, Job, JobKind, labels};
use serde::Deserialize;

use super::JobFileError;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFile {
    presubmits: Option<BTreeMap<String, Option<Vec<RawJob>>>>,
    postsubmits: Option<BTreeMap<String, Option<Vec<RawJob>>>>,
    periodics: Option<Vec<RawJob>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawJob {
    name: Name,
    agent: Option<String>,
    cluster: Option<String>,
    labels: Option<UniqueMap>,
    spec: Option<RawSpec>,
}

/// A job's name: a string. YAML reads `name: ~` (or `null`) as no name at all, which the
/// library would otherwise turn into a job named `~`; Go's loader refuses numbers and
/// booleans for a string field.
#[derive(Debug, Default)]
struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match yaml_serde::Value::deserialize(d)? {
            yaml_serde::Value::String(s) => Ok(Name(s)),
            yaml_serde::Value::Null => Err(serde::de::Error::custom("the job's name is null")),
            other => Err(serde::de::Error::custom(format!(
                "the job's name must be a string, found {}",
                crate::yaml::kind(&other)
            ))),
        }
    }
}

/// Labels, refusing a key given twice: YAML forbids it, and which value would win is
/// the parser's accident (a duplicated `cluster` key is refused the same way).
#[derive(Debug, Default)]
struct UniqueMap(BTreeMap<String, Scalar>);

impl<'de> Deserialize<'de> for UniqueMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of labels")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, Scalar>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate label key {k}")));
                    }
                    out.insert(k, v);
                }
                Ok(UniqueMap(out))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<UniqueMap, E> {
                Ok(UniqueMap::default())
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSpec {
    containers: Option<Vec<RawContainer>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawContainer {
    image: Option<String>,
    env: Option<Vec<RawEnv>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEnv {
    name: String,
    value: Option<Scalar>,
}

/// A label or env value: Kubernetes wants strings, but YAML lets `true` or `1` through
/// unquoted, and Go's loader turns them into their text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = yaml_serde::Value::deserialize(d)?;
        match v {
            yaml_serde::Value::Null => Ok(Scalar(String::new())),
            other => crate::yaml::scalar_text(&other).map(Scalar).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "expected a string, found {}",
                    crate::yaml::kind(&other)
                ))
            }),
        }
    }
}

pub(super) fn parse_text(text: &str) -> Result<Vec<Job>, JobFileError> {
    if is_blank(text) {
        return Ok(Vec::new());
    }
    // Before the library: its scanner is quadratic in flow nesting.
    crate::yaml::guard::check(text, crate::yaml::MAX_DOCUMENT_BYTES).map_err(|e| JobFileError {
        line: Some(e.line),
        message: e.message,
    })?;
    let raw: RawFile = yaml_serde::from_str(text).map_err(|e| JobFileError {
        line: crate::yaml::error_line(&e),
        message: e.to_string(),
    })?;
    let mut jobs = Vec::new();
    for (kind, section) in [
        (JobKind::Presubmit, raw.presubmits),
        (JobKind::Postsubmit, raw.postsubmits),
    ] {
        for list in section
            .into_iter()
            .flat_map(BTreeMap::into_values)
            .flatten()
        {
            jobs.extend(list.into_iter().map(|j| convert(j, kind)));
        }
    }
    jobs.extend(
        raw.periodics
            .into_iter()
            .flatten()
            .map(|j| convert(j, JobKind::Periodic)),
    );
    if let Some(j) = jobs.iter().find(|j| j.name.is_empty()) {
        return Err(JobFileError {
            line: None,
            message: format!("a {:?} job has no name", j.kind).to_lowercase(),
        });
    }
    Ok(jobs)
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

fn convert(j: RawJob, kind: JobKind) -> Job {
    Job {
        name: j.name.0,
        kind,
        // As the fast path stores it: the default agent as empty.
        agent: j.agent.filter(|a| a != "kubernetes").unwrap_or_default(),
        cluster: j.cluster.filter(|c| !c.is_empty()),
        labels: j
            .labels
            .unwrap_or_default()
            .0
            .into_iter()
            .filter(|(k, _)| labels::is_read(k))
            .map(|(k, v)| (k, v.0))
            .collect(),
        containers: j
            .spec
            .and_then(|s| s.containers)
            .unwrap_or_default()
            .into_iter()
            .map(|c| Container {
                image: c.image.unwrap_or_default(),
                cluster_types: c
                    .env
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| e.name == "CLUSTER_TYPE")
                    .map(|e| e.value.map(|v| v.0).unwrap_or_default())
                    .collect(),
            })
            .collect(),
    }
}
