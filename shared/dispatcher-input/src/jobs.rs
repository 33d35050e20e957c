//! Prow job files (`presubmits`, `postsubmits`, `periodics`): only the fields the rules read.

use std::collections::BTreeMap;

use dispatcher_core::model::{Container, Job, JobKind, labels};
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
    // The entries we never read make up most of the bytes; dropping them before the YAML
    // parser sees them is what makes the whole tree parse quickly. If the pruned text does
    // not parse, the original is parsed instead so that errors carry the real line.
    match parse_pruned(text) {
        Ok(jobs) => Ok(jobs),
        Err(_) => parse_text(text),
    }
}

fn parse_pruned(text: &str) -> Result<Vec<Job>, JobFileError> {
    let mut pruned = String::with_capacity(text.len() / 2);
    prune(text, &mut pruned);
    parse_text(&pruned)
}

/// The pruned path alone, without the fallback: what the corpus test holds to
/// [`parse_job_file_unpruned`].
pub fn parse_job_file_pruned_only(bytes: &[u8]) -> Result<Vec<Job>, JobFileError> {
    let bytes = maybe_gunzip(bytes).map_err(|e| JobFileError {
        line: None,
        message: e.to_string(),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| JobFileError {
        line: None,
        message: e.to_string(),
    })?;
    parse_pruned(text)
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

/// Keys whose values the rules never read, wherever they appear outside `labels` and `env`.
/// A `match` rather than a list: this runs on every line of every job file.
fn skipped(key: &str) -> bool {
    matches!(
        key,
        "always_run"
            | "annotations"
            | "args"
            | "branches"
            | "command"
            | "context"
            | "cron"
            | "decorate"
            | "decoration_config"
            | "extra_refs"
            | "gcs_configuration"
            | "hidden"
            | "imagePullPolicy"
            | "interval"
            | "max_concurrency"
            | "minimum_interval"
            | "nodeSelector"
            | "optional"
            | "path_alias"
            | "reporter_config"
            | "rerun_command"
            | "resources"
            | "run_if_changed"
            | "securityContext"
            | "serviceAccountName"
            | "skip_branches"
            | "skip_if_only_changed"
            | "skip_report"
            | "tolerations"
            | "trigger"
            | "utility_images"
            | "volumeMounts"
            | "volumes"
    )
}

/// Where a block of the file is, for the pruner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Other,
    /// A `labels` mapping: only the labels the rules read matter.
    Labels,
    /// Inside `env` (or another block whose keys are data): keep everything.
    Data,
}

/// Copies `src` to `out` without what the rules never read: the entries of [`skipped`]
/// keys, and the labels [`labels::is_read`] rejects.
///
/// Works on block-style YAML by indentation. An entry's value is every following line
/// indented deeper than its key, or at the key's indentation and starting with `- ` (a
/// compact sequence); blank and comment lines inside go too. An entry is dropped whole,
/// unless its key starts a list item (dropping it would drop the item): then the line
/// stays and only the value goes. A "key" that is really text inside a block scalar only
/// drops more of that scalar's text, which nothing reads. The corpus test holds this to
/// parsing without pruning, file by file.
pub(crate) fn prune(src: &str, out: &mut String) {
    // Open block keys enclosing the current line: (indent of the key, what it holds).
    let mut open: Vec<(usize, Block)> = Vec::new();
    let mut skip_indent: Option<usize> = None;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let t = trimmed.trim_end();
        let item = t.starts_with("- ") || t == "-";
        if let Some(si) = skip_indent {
            if t.is_empty() || t.starts_with('#') || indent > si || (indent == si && item) {
                continue;
            }
            skip_indent = None;
        }
        if t.is_empty() || t.starts_with('#') {
            out.push_str(line);
            continue;
        }
        // Compact sequences sit at their key's indentation.
        while open
            .last()
            .is_some_and(|&(i, _)| i > indent || (i == indent && !item))
        {
            open.pop();
        }
        let context = open.last().map_or(Block::Other, |&(_, b)| b);
        let (key_part, key_indent) = match t.strip_prefix("- ") {
            Some(rest) => (rest, indent + 2),
            None => (t, indent),
        };
        let Some((key, rest)) = key_part.split_once(':') else {
            out.push_str(line);
            continue;
        };
        let after = &key_part[key.len() + 1..];
        let is_key = after.is_empty() || after.starts_with(' ');
        let plain = !key.starts_with(['"', '\'']);
        let drop = is_key
            && plain
            && match context {
                Block::Other => skipped(key),
                Block::Labels => !labels::is_read(key),
                Block::Data => false,
            };
        if drop {
            skip_indent = Some(key_indent);
            if item {
                out.push_str(line);
            }
            continue;
        }
        out.push_str(line);
        let rest = rest.trim();
        if rest.is_empty() || rest.starts_with('#') {
            let block = match (context, key) {
                (Block::Other, "labels") => Block::Labels,
                (Block::Other, "env") => Block::Data,
                (Block::Other, _) => Block::Other,
                _ => Block::Data,
            };
            open.push((key_indent, block));
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
    ci.openshift.io/no-builds: true
    not-read: x
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
        assert_eq!(jobs[1].labels["ci.openshift.io/no-builds"], "true");
        assert!(
            !jobs[1].labels.contains_key("not-read"),
            "only labels the rules read are kept"
        );
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
        let text =
            "periodics:\n- name: a\n  labels:\n    ci-operator.openshift.io/cloud: [unclosed\n";
        let e = parse_job_file(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, Some(5), "{e:?}");
    }

    #[test]
    fn only_the_full_parse_sees_errors_in_what_the_rules_never_read() {
        let text = "periodics:\n- name: a\n  labels:\n    x: [unclosed\n";
        assert!(parse_job_file(text.as_bytes()).is_ok());
        assert!(parse_job_file_unpruned(text.as_bytes()).is_err());
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
