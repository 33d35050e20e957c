//! The ci-operator image of jobs that land on or leave the arm64 cluster, as the Go
//! sanitizer (and `make jobs`) writes it.

use std::ops::Range;

use dispatcher_core::model::JobKind;

use super::document::{Document, MappingItem};

/// The Go sanitizer's arm64 build cluster (ci-tools `api.ClusterARM01`).
pub const ARM64_CLUSTER: &str = "arm01";
/// The ci-operator image the Go sanitizer writes for jobs on [`ARM64_CLUSTER`].
pub const ARM64_IMAGE: &str = "ci-operator-arm64:latest";
/// The ci-operator image ci-operator-prowgen writes today (ci-tools `pkg/prowgen`), which
/// `make jobs` regenerates for a job that is not on [`ARM64_CLUSTER`].
pub const PROWGEN_IMAGE: &str = "quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest";

/// ci-tools' `isCIOperatorLatest`: `ci-operator:latest` under any registry, or the proxy
/// spelling prowgen writes.
pub fn is_ci_operator_latest(image: &str) -> bool {
    image.rsplit('/').next() == Some("ci-operator:latest") || image == PROWGEN_IMAGE
}

/// The first container's new image for a job placed on `cluster`, if it must change: the
/// Go sanitizer switches pre- and postsubmits landing on the arm64 cluster to the arm64
/// image (any spelling of `ci-operator:latest`), and never periodics. We also switch a job
/// that leaves the arm64 cluster back to prowgen's image, which is what `make jobs`
/// regenerates for it (the Go sanitizer alone would leave the arm64 image on an amd64
/// cluster).
pub fn switched_image(kind: JobKind, cluster: &str, image: &str) -> Option<&'static str> {
    if kind == JobKind::Periodic {
        return None;
    }
    let arm64 = cluster == ARM64_CLUSTER;
    let on_arm64_image = image.rsplit('/').next() == Some(ARM64_IMAGE);
    if arm64 && is_ci_operator_latest(image) {
        Some(ARM64_IMAGE)
    } else if !arm64 && on_arm64_image {
        Some(PROWGEN_IMAGE)
    } else {
        None
    }
}

/// The byte range of the first container's `image:` value of a job, if it has one in
/// block style (`spec:` > `containers:` > first item > `image:`).
pub(super) fn first_image(doc: &Document<'_>, job: &MappingItem) -> Option<Range<usize>> {
    let spec = job.get("spec")?;
    if !spec.value.is_empty() {
        return None; // an inline (flow) spec
    }
    let spec_end = doc.block_end(spec.line, job.key_indent, job.end);
    let first = doc.first_significant(spec.line + 1..spec_end)?;
    let indent = doc.lines[first].indent;
    let containers = (first..spec_end).find(|&i| {
        doc.lines[i].indent == indent
            && !doc.lines[i].is_blank()
            && doc.entry(i).is_some_and(|e| e.key == "containers")
    })?;
    let end = doc.block_end(containers, indent, spec_end);
    let container = doc
        .sequence_items(containers + 1, end)
        .ok()?
        .into_iter()
        .next()?;
    container.get("image").map(|e| e.value.clone())
}
