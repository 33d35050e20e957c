//! Rewriting one job file: the `cluster:` value of every job whose cluster changes (added
//! among the sorted keys when it has none) and its first container's image
//! ([`super::switched_image`]), then checking the result by parsing it again.

use std::ops::Range;

use dispatcher_core::model::JobKind;

use super::document::{Document, MappingItem};
use super::images::{first_image, switched_image};
use super::{WritebackError, yaml_scalar};
use crate::jobs::parse_job_file_full;

/// A job of the file: its section and its mapping.
struct JobItem {
    kind: JobKind,
    mapping: MappingItem,
}

/// A replacement of a byte range.
type Edit = (Range<usize>, String);

/// Sets the `cluster:` field of jobs in one job file, and switches the ci-operator image
/// of those that land on or leave the arm64 cluster ([`switched_image`]). `want` maps a
/// job name to its new cluster, or `None` to leave it. Returns the new text and the number
/// of jobs changed, or `None` when nothing changes.
pub fn rewrite_job_clusters(
    text: &str,
    want: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, usize)>, WritebackError> {
    let doc = Document::new(text);
    let mut edits: Vec<Edit> = Vec::new();
    let mut changed = 0;
    for job in job_items(&doc)? {
        let Some(name) = job.mapping.get("name") else {
            continue;
        };
        let Some(target) = want(&doc.scalar(name)).filter(|t| !t.is_empty()) else {
            continue;
        };
        let before = edits.len();
        if let Some(range) = first_image(&doc, &job.mapping) {
            let image = doc.scalar_in(range.clone());
            if let Some(new) = switched_image(job.kind, &target, &image) {
                edits.push((range, yaml_scalar(new)));
            }
        }
        edits.extend(cluster_edit(&doc, &job.mapping, &target));
        if edits.len() > before {
            changed += 1;
        }
    }
    if edits.is_empty() {
        return Ok(None);
    }
    // Back to front, so that the offsets of the edits not yet made hold.
    edits.sort_by_key(|e| std::cmp::Reverse(e.0.start));
    let mut out = text.to_owned();
    for (range, with) in edits {
        out.replace_range(range, &with);
    }
    verify(text, &out, want)?;
    Ok(Some((out, changed)))
}

/// Every job of a Prow job file, in file order.
fn job_items(doc: &Document<'_>) -> Result<Vec<JobItem>, WritebackError> {
    let ls = &doc.lines;
    let n = ls.len();
    let mut items = Vec::new();
    for t in (0..n).filter(|&i| !ls[i].is_blank() && ls[i].indent == 0) {
        let Some(section) = doc.entry(t) else {
            continue;
        };
        let (kind, empty) = match section.key.as_str() {
            "periodics" => (JobKind::Periodic, "[]"),
            "presubmits" => (JobKind::Presubmit, "{}"),
            "postsubmits" => (JobKind::Postsubmit, "{}"),
            _ => continue,
        };
        if !section.value.is_empty() {
            if doc.value_text(&section) == empty {
                continue;
            }
            return Err(WritebackError::Layout {
                line: t + 1,
                message: format!("flow-style {} are not supported", section.key),
            });
        }
        let end = doc.block_end(t, 0, n);
        let job = |mapping| JobItem { kind, mapping };
        if kind == JobKind::Periodic {
            items.extend(doc.sequence_items(t + 1, end)?.into_iter().map(job));
            continue;
        }
        // A mapping by repository, each holding a list of jobs.
        let Some(first) = doc.first_significant(t + 1..end) else {
            continue;
        };
        let r = ls[first].indent;
        let repos =
            (t + 1..end).filter(|&i| !ls[i].is_blank() && ls[i].indent == r && !ls[i].is_item());
        for k in repos {
            let repo_end = doc.block_end(k, r, end);
            items.extend(doc.sequence_items(k + 1, repo_end)?.into_iter().map(job));
        }
    }
    Ok(items)
}

/// The edit that gives a job `target` as its cluster, if it does not have it: its value
/// replaced, or a `cluster:` line inserted among the sorted keys, as Prow's marshaller
/// orders them.
fn cluster_edit(doc: &Document<'_>, job: &MappingItem, target: &str) -> Option<Edit> {
    if let Some(c) = job.get("cluster") {
        return (doc.scalar(c) != target).then(|| (c.value.clone(), yaml_scalar(target)));
    }
    // Before the first key that sorts after `cluster`, but never before the `- ` line.
    let at = job
        .keys
        .iter()
        .skip(1)
        .find(|k| k.key.as_str() > "cluster")
        .map_or(job.end, |k| k.line);
    let at = trailing_blank_start(doc, at, job.keys.first().map_or(0, |k| k.line));
    let text = doc.text;
    let offset = doc.lines.get(at).map_or(text.len(), |l| l.start);
    let eol = doc.eol();
    let lead = if offset == text.len() && !text.is_empty() && !text.ends_with('\n') {
        eol
    } else {
        ""
    };
    let indent = " ".repeat(job.key_indent);
    let line = format!("{lead}{indent}cluster: {}{eol}", yaml_scalar(target));
    Some((offset..offset, line))
}

/// Moves an insertion point before blank and comment lines that end the previous value,
/// so that a new key does not land after a comment meant for the next one.
fn trailing_blank_start(doc: &Document<'_>, at: usize, floor: usize) -> usize {
    let mut i = at;
    while i > floor + 1 && doc.lines.get(i - 1).is_some_and(|l| l.is_blank()) {
        i -= 1;
    }
    i
}

/// Checks that `after` holds the jobs of `before`, with the clusters `want` gives them and
/// the images that go with those, and nothing else changed.
fn verify(
    before: &str,
    after: &str,
    want: &dyn Fn(&str) -> Option<String>,
) -> Result<(), WritebackError> {
    let old = parse_job_file_full(before.as_bytes()).map_err(WritebackError::Parse)?;
    let new = parse_job_file_full(after.as_bytes()).map_err(WritebackError::Reparse)?;
    if old.len() != new.len() {
        return Err(WritebackError::JobCount {
            before: old.len(),
            after: new.len(),
        });
    }
    for (o, n) in old.iter().zip(&new) {
        let mut expect = o.clone();
        if let Some(t) = want(&o.name).filter(|t| !t.is_empty()) {
            if let Some(c) = expect.containers.first_mut()
                && let Some(image) = switched_image(o.kind, &t, &c.image)
            {
                c.image = image.to_owned();
            }
            expect.cluster = Some(t);
        }
        if *n != expect {
            return Err(WritebackError::JobChanged {
                job: o.name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "presubmits:\n  org/repo:\n  - agent: kubernetes\n    always_run: true\n    cluster: build01\n    context: ci/prow/unit\n    name: pull-unit\n    spec:\n      containers:\n      - image: x # comment\n  org/other:\n    - agent: kubernetes\n      name: 'pull-other'\n      rerun_command: /test other\nperiodics:\n- agent: kubernetes\n  cluster: build02 # pinned by hand\n  cron: 0 * * * *\n  name: periodic-a\n";

    /// `text` rewritten with the clusters `map` gives its jobs: `None` when nothing changes.
    fn rewrite(text: &str, map: &[(&str, &str)]) -> Option<(String, usize)> {
        let want = |n: &str| {
            map.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        };
        rewrite_job_clusters(text, &want).expect("the rewrite verifies")
    }

    #[test]
    fn changes_only_the_cluster_values() {
        let out = rewrite(FILE, &[("pull-unit", "build03"), ("periodic-a", "build05")]);
        let expected = FILE
            .replace("    cluster: build01\n", "    cluster: build03\n")
            .replace(
                "  cluster: build02 # pinned by hand",
                "  cluster: build05 # pinned by hand",
            );
        assert_eq!(out, Some((expected, 2)));
    }

    #[test]
    fn inserts_a_missing_cluster_in_key_order() {
        let (out, n) = rewrite(FILE, &[("pull-other", "build04")]).unwrap();
        assert_eq!(n, 1);
        assert!(
            out.contains(
                "    - agent: kubernetes\n      cluster: build04\n      name: 'pull-other'\n"
            ),
            "{out}"
        );
        assert_eq!(out.len(), FILE.len() + "      cluster: build04\n".len());
    }

    #[test]
    fn unchanged_and_unknown_jobs_are_left_alone() {
        assert_eq!(
            rewrite(FILE, &[("pull-unit", "build01"), ("not-here", "build09")]),
            None
        );
    }

    #[test]
    fn crlf_files_keep_their_line_endings() {
        let crlf = FILE.replace('\n', "\r\n");
        let (out, _) = rewrite(
            &crlf,
            &[("pull-other", "build04"), ("pull-unit", "build03")],
        )
        .unwrap();
        assert!(!out.replace("\r\n", "").contains('\n'));
        assert!(out.contains("      cluster: build04\r\n"));
    }

    #[test]
    fn a_file_that_does_not_parse_is_not_rewritten_and_says_why() {
        let broken = format!("{FILE}x: [\n");
        let e = rewrite_job_clusters(&broken, &|_| Some("build09".to_owned())).unwrap_err();
        assert!(matches!(e, WritebackError::Parse(_)), "{e:?}");
        let chain = dispatcher_core::chain(&e);
        assert!(
            chain.starts_with("the file does not parse: line "),
            "{chain}"
        );
    }

    const IMAGES: &str = "presubmits:\n  org/repo:\n  - agent: kubernetes\n    cluster: build01\n    name: pull-a\n    spec:\n      containers:\n      - args:\n        - --x\n        image: registry.ci.openshift.org/ci/ci-operator:latest\n      - image: ci-operator:latest\n  - agent: kubernetes\n    cluster: build01\n    name: pull-b\n    spec:\n      containers:\n      - image: quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest\n  - agent: kubernetes\n    cluster: arm01\n    name: pull-c\n    spec:\n      containers:\n      - image: ci-operator-arm64:latest\n  - agent: kubernetes\n    cluster: build01\n    name: pull-d\n    spec:\n      containers:\n      - image: registry/ci-operator:other\nperiodics:\n- agent: kubernetes\n  cluster: build01\n  name: periodic-e\n  spec:\n    containers:\n    - image: ci-operator:latest\n";

    #[test]
    fn jobs_landing_on_arm01_get_the_arm64_image_as_the_go_sanitizer_writes_it() {
        let all = ["pull-a", "pull-b", "pull-c", "pull-d", "periodic-e"].map(|j| (j, "arm01"));
        let (out, n) = rewrite(IMAGES, &all).unwrap();
        assert_eq!(n, 4, "pull-c is already there");
        let expected = IMAGES
            .replace("cluster: build01", "cluster: arm01")
            // Only the first container, registry and proxy spellings alike, plain.
            .replace(
                "image: registry.ci.openshift.org/ci/ci-operator:latest",
                "image: ci-operator-arm64:latest",
            )
            .replace(
                "image: quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest",
                "image: ci-operator-arm64:latest",
            );
        assert_eq!(out, expected);
        // Periodics and other images keep theirs; the second container too.
        assert!(out.contains("      - image: ci-operator:latest\n  - agent"));
        assert!(out.contains("image: registry/ci-operator:other"));
        assert!(out.ends_with("    - image: ci-operator:latest\n"));
    }

    #[test]
    fn a_job_leaving_arm01_gets_prowgens_image_back() {
        let expected = IMAGES.replace(
            "    cluster: arm01\n    name: pull-c\n    spec:\n      containers:\n      - image: ci-operator-arm64:latest",
            "    cluster: build03\n    name: pull-c\n    spec:\n      containers:\n      - image: quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest",
        );
        assert_eq!(
            rewrite(IMAGES, &[("pull-c", "build03")]),
            Some((expected, 1))
        );
    }

    #[test]
    fn an_image_alone_is_switched_when_the_cluster_is_already_right() {
        let text = IMAGES.replace(
            "    cluster: arm01\n    name: pull-c",
            "    cluster: arm01\n    name: pull-c-old",
        );
        assert_eq!(
            rewrite(&text, &[("pull-a", "build01"), ("pull-b", "build01")]),
            None
        );
        let on_arm = IMAGES.replace(
            "image: ci-operator-arm64:latest",
            "image: ci-operator:latest",
        );
        assert_eq!(
            rewrite(&on_arm, &[("pull-c", "arm01")]),
            Some((IMAGES.to_owned(), 1))
        );
    }
}
