//! Resolve: the config as written, no balancing (what `sanitize-prow-jobs` computes).

use super::FileChoice;
use crate::engine::Run;
use crate::engine::files::FileState;
use crate::model::Job;
use crate::plan::FileReason;
use crate::rules::{Decision, Rule, is_cluster_upgrade_job};

impl Run<'_> {
    /// Every file's `buildFarm` listing as written.
    pub(in crate::engine) fn choose_as_written(&self) -> Vec<FileChoice> {
        self.files
            .iter()
            .map(|f| {
                let listed = f
                    .jobs
                    .iter()
                    .filter_map(|&ji| self.jobs[ji].decision())
                    .find(|d| d.rule == Rule::BuildFarm)
                    .and_then(|d| d.cluster.clone());
                FileChoice::unbalanced(listed, FileReason::Resolved)
            })
            .collect()
    }

    /// Resolve's C for one job: the sanitizer passes the file's most used static cluster
    /// only when the job's own target is blocked; otherwise C is empty and the target
    /// stands.
    pub(in crate::engine) fn resolve_file_cluster<'f>(
        &self,
        job: &Job,
        decision: &Decision,
        file: &'f FileState<'_>,
    ) -> Option<&'f str> {
        let target = decision.cluster.as_deref()?;
        let blocked =
            self.inputs.inventory.is_blocked(target) && !is_cluster_upgrade_job(&job.name);
        if blocked {
            file.static_most_used.as_deref()
        } else {
            None
        }
    }
}
