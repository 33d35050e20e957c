//! Target resolution (dispatcher-semantics.md §6): the decided cluster, the file's cluster
//! and blocked clusters give the cluster a job finally runs on.

use super::Decision;
use crate::model::Inventory;

/// How the final target was reached when the decided cluster could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The decided cluster (or, for a relocatable job, the file's) is used.
    None,
    /// A pinned job whose pin is blocked follows its file.
    FollowsFile,
    /// The target was blocked: `default`.
    Default,
}

/// Why target resolution finds no cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The target is blocked, and so is `default`, where blocked targets go.
    #[error("target {target} is blocked and the default cluster {default} is blocked too")]
    TargetAndDefaultBlocked {
        /// The blocked target.
        target: String,
        /// The blocked `default`.
        default: String,
    },
}

/// Target resolution (§6): `file_cluster` is C, `decision` gives D and R.
///
/// # Panics
///
/// When the decision has no cluster: only Kubernetes jobs have a target.
pub fn resolve_target(
    inventory: &Inventory,
    default: &str,
    job_name: &str,
    file_cluster: Option<&str>,
    decision: &Decision,
) -> Result<(String, Fallback), TargetError> {
    let d = decision
        .cluster
        .as_deref()
        .expect("resolve_target is only called for Kubernetes jobs");
    let exempt = inventory.is_blocked(d) && is_cluster_upgrade_job(job_name);
    let blocked = |c: &str| inventory.is_blocked(c) && !(exempt && c == d);
    let c = file_cluster.unwrap_or(d);
    let (t, fallback) = if c == d || decision.relocatable {
        (c, Fallback::None)
    } else if !blocked(d) {
        (d, Fallback::None)
    } else {
        (c, Fallback::FollowsFile)
    };
    if blocked(t) {
        if inventory.is_blocked(default) {
            return Err(TargetError::TargetAndDefaultBlocked {
                target: t.to_owned(),
                default: default.to_owned(),
            });
        }
        return Ok((default.to_owned(), Fallback::Default));
    }
    Ok((t.to_owned(), fallback))
}

/// `^periodic-build[0-9]{2}-upgrade$`: cluster-upgrade periodics keep running on their own
/// blocked cluster.
pub fn is_cluster_upgrade_job(name: &str) -> bool {
    name.strip_prefix("periodic-build")
        .and_then(|r| r.strip_suffix("-upgrade"))
        .is_some_and(|digits| digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_job_pattern() {
        assert!(is_cluster_upgrade_job("periodic-build02-upgrade"));
        assert!(!is_cluster_upgrade_job("periodic-build2-upgrade"));
        assert!(!is_cluster_upgrade_job("periodic-build023-upgrade"));
        assert!(!is_cluster_upgrade_job("periodic-build02-upgrade-x"));
        assert!(!is_cluster_upgrade_job("xperiodic-build02-upgrade"));
    }
}
