//! The bundled sample release, so that `serve --demo` works from anywhere.

use std::path::Path;

use anyhow::{Context, Result};

/// The bundled sample release, so that `serve --demo` works from anywhere.
const SAMPLE: &[(&str, &str)] = &[
    (
        "release/core-services/sanitize-prow-jobs/_config.yaml",
        include_str!(
            "../../../../tests/fixtures/sample/release/core-services/sanitize-prow-jobs/_config.yaml"
        ),
    ),
    (
        "release/core-services/sanitize-prow-jobs/_clusters.yaml",
        include_str!(
            "../../../../tests/fixtures/sample/release/core-services/sanitize-prow-jobs/_clusters.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml",
        include_str!(
            "../../../../tests/fixtures/sample/release/ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/widget/acme-widget-main-postsubmits.yaml",
        include_str!(
            "../../../../tests/fixtures/sample/release/ci-operator/jobs/acme/widget/acme-widget-main-postsubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/gadget/acme-gadget-main-presubmits.yaml",
        include_str!(
            "../../../../tests/fixtures/sample/release/ci-operator/jobs/acme/gadget/acme-gadget-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/gadget/acme-gadget-main-periodics.yaml",
        include_str!(
            "../../../../tests/fixtures/sample/release/ci-operator/jobs/acme/gadget/acme-gadget-main-periodics.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/lab/acme-lab-main-presubmits.yaml",
        include_str!(
            "../../../../tests/fixtures/sample/release/ci-operator/jobs/acme/lab/acme-lab-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/infra-periodics.yaml",
        include_str!(
            "../../../../tests/fixtures/sample/release/ci-operator/jobs/infra-periodics.yaml"
        ),
    ),
    (
        "volumes.json",
        include_str!("../../../../tests/fixtures/sample/volumes.json"),
    ),
];

pub(super) fn write_sample(dir: &Path) -> Result<()> {
    for (rel, text) in SAMPLE {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }
    Ok(())
}
