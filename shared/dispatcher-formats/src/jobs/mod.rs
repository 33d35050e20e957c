//! Prow job files (`presubmits`, `postsubmits`, `periodics`): only the fields the rules read.
//!
//! Two readers give the same jobs: the fast one (`fast`), which reads the block YAML that
//! ci-operator-prowgen writes and leaves every file it does not fully understand, and the
//! YAML library (`library`), which reads those and is the reference.

mod fast;
mod library;

use dispatcher_core::model::Job;

use crate::yaml::maybe_gunzip;
use library::parse_text;

/// Why a job file could not be read. A message rather than a chain of causes: the fast
/// and full readers' answers are compared whole (`==`), and the message becomes the
/// file's diagnostic as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct JobFileError {
    /// 1-based line in the original file, when the reader knows it.
    pub line: Option<usize>,
    /// What is wrong, as the YAML library or the reader says it.
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
    match fast::read(text) {
        Some(jobs) => Ok(jobs),
        None => parse_text(text),
    }
}

/// The fast path alone, without the fallback: what the corpus and property tests hold to
/// [`parse_job_file_full`]. `None` where it leaves the file to the library.
pub fn parse_job_file_fast_only(text: &str) -> Option<Vec<Job>> {
    fast::read(text)
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

#[cfg(test)]
mod tests {
    use dispatcher_core::model::JobKind;

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
    fn a_value_after_a_tab_is_left_to_the_library() {
        // YAML ends the key at `:` and a tab; the fast reader once read on to the `: `
        // inside the quotes and took `cluster:\t'b` for a key it skips.
        let text = "periodics:\n- name: a\n  cluster:\t'b: c'\n";
        assert_eq!(parse_job_file_fast_only(text), None);
        let jobs = parse_job_file(text.as_bytes()).unwrap();
        assert_eq!(jobs[0].cluster.as_deref(), Some("b: c"));
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
