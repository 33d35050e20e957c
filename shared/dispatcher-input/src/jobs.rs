//! Prow job files (`presubmits`, `postsubmits`, `periodics`): only the fields the rules read.

use std::collections::BTreeMap;

use dispatcher_core::model::{Container, Job, JobKind};
use serde::Deserialize;

use crate::yaml::maybe_gunzip;

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
    name: String,
    agent: Option<String>,
    cluster: Option<String>,
    labels: Option<BTreeMap<String, Scalar>>,
    spec: Option<RawSpec>,
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

/// Why a job file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct JobFileError {
    /// 1-based line in the original file.
    pub line: Option<usize>,
    pub message: String,
}

/// Parses one job file. Jobs come out in a fixed order: presubmits by repository, then
/// postsubmits by repository, then periodics, each in file order.
pub fn parse_job_file(bytes: &[u8]) -> Result<Vec<Job>, JobFileError> {
    let bytes = maybe_gunzip(bytes).map_err(|e| JobFileError {
        line: None,
        message: format!("cannot gunzip: {e}"),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| JobFileError {
        line: None,
        message: format!("not UTF-8: {e}"),
    })?;
    // The subtrees we never read make up most of the bytes; dropping them before the YAML
    // parser sees them is what makes the whole tree parse quickly. If the pruned text does
    // not parse, the original is parsed instead so that errors carry the real line.
    let mut pruned = String::with_capacity(text.len() / 2);
    prune(text, &mut pruned);
    match parse_text(&pruned) {
        Ok(jobs) => Ok(jobs),
        Err(_) => parse_text(text),
    }
}

/// Parses without pruning: the reference the pruned path must agree with.
pub fn parse_job_file_unpruned(bytes: &[u8]) -> Result<Vec<Job>, JobFileError> {
    let bytes = maybe_gunzip(bytes).map_err(|e| JobFileError {
        line: None,
        message: e.to_string(),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| JobFileError {
        line: None,
        message: e.to_string(),
    })?;
    parse_text(text)
}

fn parse_text(text: &str) -> Result<Vec<Job>, JobFileError> {
    if is_blank(text) {
        return Ok(Vec::new());
    }
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
        name: j.name,
        kind,
        agent: j.agent.unwrap_or_default(),
        cluster: j.cluster.filter(|c| !c.is_empty()),
        labels: j
            .labels
            .unwrap_or_default()
            .into_iter()
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

/// Keys whose block values the rules never read.
const SKIPPED: &[&str] = &[
    "args:",
    "command:",
    "volumeMounts:",
    "volumes:",
    "resources:",
    "decoration_config:",
    "branches:",
    "skip_branches:",
    "reporter_config:",
    "extra_refs:",
    "annotations:",
    "securityContext:",
    "tolerations:",
    "nodeSelector:",
    "utility_images:",
    "gcs_configuration:",
];

/// Copies `src` to `out` without the block values of [`SKIPPED`] keys.
///
/// Works on block-style YAML by indentation: a skipped key's value is every following line
/// indented deeper than the key, or at the key's indentation and starting with `- ` (a
/// compact sequence). Blank and comment lines inside are dropped too. The key line itself
/// stays, so the key maps to null. A "key" that is really text inside a block scalar only
/// drops more of that scalar's text, which nothing reads.
pub(crate) fn prune(src: &str, out: &mut String) {
    let mut skip_indent: Option<usize> = None;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        if let Some(si) = skip_indent {
            let t = trimmed.trim_end();
            if t.is_empty()
                || t.starts_with('#')
                || indent > si
                || (indent == si && (t.starts_with("- ") || t == "-"))
            {
                continue;
            }
            skip_indent = None;
        }
        out.push_str(line);
        let (key_part, key_indent) = match trimmed.strip_prefix("- ") {
            Some(rest) => (rest, indent + 2),
            None => (trimmed, indent),
        };
        for k in SKIPPED {
            if let Some(rest) = key_part.strip_prefix(k) {
                let rest = rest.trim();
                if rest.is_empty() || rest.starts_with('#') {
                    skip_indent = Some(key_indent);
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"presubmits:
  org/repo:
  - agent: kubernetes
    always_run: true
    branches:
    - ^main$
    cluster: build02
    labels:
      ci-operator.openshift.io/cloud: gcp
      capability/arm64: arm64
      pj-rehearse.openshift.io/can-be-rehearsed: "true"
    name: pull-ci-org-repo-main-e2e
    spec:
      containers:
      - args:
        - --target=e2e
        command:
        - ci-operator
        env:
        - name: CLUSTER_TYPE
          value: gcp
        image: ci-operator:latest
        resources:
          requests:
            cpu: 10m
      volumes:
      - name: x
        secret:
          secretName: y
periodics:
- agent: jenkins
  name: periodic-jenkins
  labels:
    flag: true
"#;

    #[test]
    fn reads_the_fields_the_rules_need() {
        let jobs = parse_job_file(SAMPLE.as_bytes()).unwrap();
        assert_eq!(jobs.len(), 2);
        let j = &jobs[0];
        assert_eq!(j.name, "pull-ci-org-repo-main-e2e");
        assert_eq!(j.kind, JobKind::Presubmit);
        assert_eq!(j.cluster.as_deref(), Some("build02"));
        assert_eq!(j.labels["capability/arm64"], "arm64");
        assert_eq!(j.containers[0].image, "ci-operator:latest");
        assert_eq!(j.containers[0].cluster_types, vec!["gcp"]);
        assert_eq!(jobs[1].agent, "jenkins");
        assert_eq!(jobs[1].labels["flag"], "true");
    }

    #[test]
    fn pruning_keeps_what_is_read() {
        let mut out = String::new();
        prune(SAMPLE, &mut out);
        assert!(out.len() < SAMPLE.len());
        assert!(!out.contains("--target=e2e"));
        assert!(!out.contains("secretName"));
        assert_eq!(parse_text(&out).unwrap(), parse_text(SAMPLE).unwrap());
    }

    #[test]
    fn errors_carry_the_original_line() {
        let text = "periodics:\n- name: a\n  labels:\n    x: [unclosed\n";
        let e = parse_job_file(text.as_bytes()).unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
    }

    #[test]
    fn empty_files_have_no_jobs() {
        assert!(parse_job_file(b"").unwrap().is_empty());
        assert!(parse_job_file(b"# nothing\n").unwrap().is_empty());
        assert!(parse_job_file(b"presubmits: {}\n").unwrap().is_empty());
    }

    #[test]
    fn a_job_without_a_name_is_an_error() {
        assert!(parse_job_file(b"periodics:\n- agent: kubernetes\n").is_err());
    }
}
