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
    // The vectorised check is several times faster on the ASCII that job files are; the
    // standard one says where a bad byte is.
    let text = simdutf8::basic::from_utf8(&bytes)
        .or_else(|_| std::str::from_utf8(&bytes))
        .map_err(|e| JobFileError {
            line: None,
            message: format!("not UTF-8: {e}"),
        })?;
    let text = without_bom(text);
    // Most files take the fast path; the library decides whatever it leaves.
    match crate::scan::scan(text) {
        Some(jobs) => Ok(jobs),
        None => parse_text(text),
    }
}

/// The fast path alone, without the fallback: what the corpus and property tests hold to
/// [`parse_job_file_full`]. `None` where it leaves the file to the library.
pub fn parse_job_file_fast_only(text: &str) -> Option<Vec<Job>> {
    crate::scan::scan(text)
}

/// Parses every byte with the YAML library: the reference the fast path must agree with.
pub fn parse_job_file_full(bytes: &[u8]) -> Result<Vec<Job>, JobFileError> {
    let bytes = maybe_gunzip(bytes).map_err(|e| JobFileError {
        line: None,
        message: e.to_string(),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| JobFileError {
        line: None,
        message: format!("not UTF-8: {e}"),
    })?;
    parse_text(without_bom(text))
}

/// Text without a leading UTF-8 byte order mark, which YAML allows and editors write.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn parse_text(text: &str) -> Result<Vec<Job>, JobFileError> {
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
    ci.openshift.io/no-builds: "true"
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
    fn the_fast_path_reads_what_the_library_reads() {
        let fast = parse_job_file_fast_only(SAMPLE).expect("the sample is canonical Prow YAML");
        assert_eq!(fast, parse_text(SAMPLE).unwrap());
    }

    #[test]
    fn what_the_fast_path_cannot_read_the_library_does() {
        // An unquoted `true` is a boolean to YAML; Go's loader (and ours) make it "true".
        let text = SAMPLE.replace(r#"no-builds: "true""#, "no-builds: true");
        assert_eq!(parse_job_file_fast_only(&text), None);
        let jobs = parse_job_file(text.as_bytes()).unwrap();
        assert_eq!(jobs[1].labels["ci.openshift.io/no-builds"], "true");
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
        assert!(parse_job_file_full(text.as_bytes()).is_err());
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

    #[test]
    fn a_null_or_typed_name_is_an_error_and_a_quoted_one_is_a_name() {
        for name in ["~", "null", "Null", "NULL", "", "123", "true"] {
            let text = format!("periodics:\n- name: {name}\n  agent: kubernetes\n");
            let e = parse_job_file(text.as_bytes()).expect_err(name);
            assert_eq!(e.line, Some(2), "{name}: {e}");
        }
        let jobs = parse_job_file(b"periodics:\n- name: '~'\n").unwrap();
        assert_eq!(jobs[0].name, "~");
    }

    #[test]
    fn a_label_key_given_twice_is_refused_like_a_field_given_twice() {
        for key in ["ci-operator.openshift.io/cloud", "not-read-by-the-rules"] {
            let text =
                format!("periodics:\n- name: a\n  labels:\n    {key}: aws\n    {key}: gcp\n");
            let e = parse_job_file(text.as_bytes()).expect_err(key);
            assert!(e.message.contains("duplicate label key"), "{key}: {e}");
            assert_eq!(e.line, Some(4), "{key}: the labels mapping: {e}");
        }
        let e = parse_job_file(b"periodics:\n- name: a\n  cluster: b\n  cluster: c\n").unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let text = format!("\u{feff}{SAMPLE}");
        assert_eq!(
            parse_job_file(text.as_bytes()).unwrap(),
            parse_job_file(SAMPLE.as_bytes()).unwrap()
        );
        assert_eq!(parse_job_file_full(text.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn deep_flow_labels_are_refused_at_once_naming_the_line() {
        let text = format!(
            "periodics:\n- name: a\n  labels: {}x{}\n",
            "{a: ".repeat(100_000),
            "}".repeat(100_000)
        );
        let start = std::time::Instant::now();
        let e = parse_job_file(text.as_bytes()).unwrap_err();
        assert!(start.elapsed().as_secs_f64() < 0.5, "{:?}", start.elapsed());
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("nested more than"), "{e}");
    }
}
