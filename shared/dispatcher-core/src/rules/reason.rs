//! Why the ladder finds no cluster for a job, as data. The text of each reason (its
//! `Display`) is what the plan's `unschedulable[]` and the diagnostics say.

use std::fmt;
use std::sync::Arc;

use super::Rule;
use super::facts::Claim;

/// Why the ladder could not decide a job's cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct LadderError {
    /// The rule that matched but could not place the job.
    pub rule: Rule,
    /// Why it could not.
    pub reason: LadderReason,
}

/// The ways the ladder rejects a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LadderReason {
    /// No unblocked cluster has every capability the job requires.
    #[error(
        "no usable cluster has capabilities [{}] ({shortfall})",
        Listed(required, ", ")
    )]
    MissingCapabilities {
        /// The capabilities the job requires, sorted.
        required: Vec<String>,
        /// What the inventory offers instead.
        shortfall: CapabilityShortfall,
    },
    /// A set-based rule matched, and every cluster of its set is cordoned.
    #[error("{detail}: every candidate is cordoned ({})", Listed(candidates, ", "))]
    EveryCandidateCordoned {
        /// How the rule matched (the decision's detail).
        detail: String,
        /// The rule's set.
        candidates: Arc<[String]>,
    },
    /// More than one group path or `buildFarm` entry claims the job's file.
    #[error("path {path} matches more than one entry: {}", Listed(claims, ", "))]
    ClaimedBySeveral {
        /// The file.
        path: String,
        /// The entries claiming it, in the order of their keys.
        claims: Vec<Claim>,
    },
}

/// Why no usable cluster has the required capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapabilityShortfall {
    /// Only blocked clusters have them.
    OnlyOnBlocked(Vec<String>),
    /// Every cluster of the inventory is blocked, or there is none.
    NoUsableCluster,
    /// What each usable cluster lacks.
    Missing(Vec<ClusterShortfall>),
}

/// The required capabilities one usable cluster lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterShortfall {
    /// The cluster.
    pub cluster: String,
    /// The capabilities it lacks, sorted.
    pub missing: Vec<String>,
}

impl fmt::Display for CapabilityShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapabilityShortfall::OnlyOnBlocked(clusters) => {
                write!(f, "only on blocked {}", Listed(clusters, ", "))
            }
            CapabilityShortfall::NoUsableCluster => {
                f.write_str("no usable cluster in the inventory")
            }
            CapabilityShortfall::Missing(clusters) => write!(f, "{}", Listed(clusters, "; ")),
        }
    }
}

impl fmt::Display for ClusterShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: missing [{}]",
            self.cluster,
            Listed(&self.missing, ", ")
        )
    }
}

/// Items written one after another with a separator, as `join` would, without building
/// the strings first.
pub(crate) struct Listed<'a, T>(pub &'a [T], pub &'static str);

impl<T: fmt::Display> fmt::Display for Listed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(self.1)?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}
