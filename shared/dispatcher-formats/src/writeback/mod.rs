//! Writing a plan back as the file-based backup: the `cluster:` field of changed jobs, the
//! ci-operator image of jobs that land on or leave the arm64 cluster, and the `buildFarm`
//! section of `_config.yaml`, changing no other byte.
//!
//! No YAML library preserves formatting on a round trip, so the edits are textual, guided
//! by the block structure of the files (`document`, on the line model the fast reader
//! shares), and every rewritten job file is verified by parsing it again: all jobs must be
//! identical to the original except for the clusters and images we set (`jobs`). The
//! arm64 image rule is in `images`, the `buildFarm` section in `build_farm`.

mod build_farm;
mod document;
mod images;
mod jobs;

use dispatcher_core::Plan;
use dispatcher_core::model::JobFile;

pub use build_farm::{build_farm_of, config_for_plan, rewrite_build_farm};
pub use images::{
    ARM64_CLUSTER, ARM64_IMAGE, PROWGEN_IMAGE, is_ci_operator_latest, switched_image,
};
pub use jobs::rewrite_job_clusters;

use crate::jobs::JobFileError;

/// Why a file could not be written back. A file that fails is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WritebackError {
    /// The file is laid out in a way the write-back does not edit (flow style, ...).
    #[error("line {line}: {message}")]
    Layout {
        /// 1-based.
        line: usize,
        /// What is there.
        message: String,
    },
    /// The file does not parse, so a rewrite of it cannot be checked.
    #[error("the file does not parse")]
    Parse(#[source] JobFileError),
    /// The rewritten file does not parse: an edit broke it.
    #[error("the rewritten file does not parse")]
    Reparse(#[source] JobFileError),
    /// The rewritten file has another number of jobs.
    #[error("the rewritten file does not verify: {before} jobs became {after}")]
    JobCount {
        /// Jobs in the file as it was.
        before: usize,
        /// Jobs in the rewritten file.
        after: usize,
    },
    /// A job of the rewritten file differs by more than its cluster and image.
    #[error("the rewritten file does not verify: job {job} changed beyond its cluster and image")]
    JobChanged {
        /// The job's name.
        job: String,
    },
}

/// A scalar as YAML text: plain when that reads back as the same string, else quoted.
pub fn yaml_scalar(s: &str) -> String {
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    // A colon is plain inside a scalar (`ci-operator:latest`), as Go's marshaller writes
    // it, but not at its end, where it would start a mapping.
    let plain = !special
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
        && !s.ends_with(':')
        && s.parse::<f64>().is_err();
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Whether writing `plan` back changes any byte of `file`: a `cluster:` field or a
/// ci-operator image.
pub fn needs_rewrite(file: &JobFile, plan: &Plan) -> bool {
    file.jobs.iter().any(|j| {
        planned_cluster(plan, &j.name).is_some_and(|c| {
            j.cluster.as_deref() != Some(c.as_str())
                || j.containers
                    .first()
                    .is_some_and(|x| switched_image(j.kind, &c, &x.image).is_some())
        })
    })
}

/// The cluster a plan gives a job, for [`rewrite_job_clusters`]: never empty (F8).
pub fn planned_cluster(plan: &Plan, job: &str) -> Option<String> {
    plan.jobs
        .get(job)
        .and_then(|e| e.cluster.clone())
        .filter(|c| !c.is_empty())
}

/// A job file's new text under a plan and the number of jobs changed, if any `cluster:`
/// field or image changes.
pub fn job_file_for_plan(
    text: &str,
    plan: &Plan,
) -> Result<Option<(String, usize)>, WritebackError> {
    rewrite_job_clusters(text, &|name| planned_cluster(plan, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_quoted_when_plain_would_change_them() {
        assert_eq!(yaml_scalar("build01"), "build01");
        assert_eq!(yaml_scalar("app.ci"), "app.ci");
        assert_eq!(yaml_scalar("yes"), "'yes'");
        assert_eq!(yaml_scalar("123"), "'123'");
        assert_eq!(yaml_scalar("a: b"), "'a: b'");
        assert_eq!(yaml_scalar("ci-operator:latest"), "ci-operator:latest");
        assert_eq!(yaml_scalar("a:"), "'a:'");
    }
}
