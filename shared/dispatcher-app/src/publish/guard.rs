//! What a plan must not do to the serving generation: place nothing, leave no usable
//! cluster, delete a large share of the jobs (a release cut short looks like that), or take
//! the cluster away from many jobs (F4b).

use std::collections::BTreeMap;

use dispatcher_core::Plan;
use dispatcher_core::plan::ClusterState;

use super::{PublishError, PublishOptions};

/// The share of the serving generation's jobs a plan may delete unless an operator allows
/// more: real pushes delete a handful of jobs, a truncated release thousands.
pub const MAX_DELETED: f64 = 0.10;

/// Deletions this few are always allowed, whatever the share: in a small installation one
/// pull request may well remove a tenth of the jobs.
pub const DELETIONS_ALWAYS_ALLOWED: usize = 20;

/// Refuses `plan` when it must not replace `base`, the serving answers.
pub(super) fn check(
    plan: &Plan,
    base: &BTreeMap<String, String>,
    opts: &PublishOptions,
) -> Result<(), PublishError> {
    if plan.summary.placed_jobs == 0 {
        return Err(PublishError::Refused("the plan places no job".to_owned()));
    }
    if !plan
        .clusters
        .values()
        .any(|c| c.state == ClusterState::Active)
    {
        return Err(PublishError::Refused(
            "the plan has no usable cluster".to_owned(),
        ));
    }
    let deleted = base.keys().filter(|j| !plan.jobs.contains_key(*j)).count();
    if deleted > DELETIONS_ALWAYS_ALLOWED && deleted as f64 > opts.max_deleted * base.len() as f64 {
        return Err(PublishError::Refused(format!(
            "the plan deletes {deleted} of the {} jobs the current generation places ({:.1}%, more than the {:.1}% allowed): a release cut short looks like this; if the jobs really are gone, allow it explicitly (dispatcher publish --max-deleted-percent, or a manual recompute with \"allowDeletions\": true)",
            base.len(),
            100.0 * deleted as f64 / base.len() as f64,
            100.0 * opts.max_deleted
        )));
    }
    let lost = base
        .keys()
        .filter(|j| plan.jobs.get(*j).is_none_or(|e| e.cluster.is_none()))
        .count();
    if !base.is_empty() && lost as f64 > opts.max_unassigned * base.len() as f64 {
        return Err(PublishError::Refused(format!(
            "the plan would take the cluster away from {lost} of the {} jobs the current generation places",
            base.len()
        )));
    }
    Ok(())
}
