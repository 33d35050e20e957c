//! Final targets: each job's cluster, rule and detail in the plan, and the jobs no cluster
//! can take, with the reason as data until the plan needs its text.

use std::collections::BTreeMap;
use std::fmt;

use rayon::prelude::*;

use super::Run;
use super::choose::FileChoice;
use super::files::FileState;
use super::ladder::{Decided, JobState, Place};
use crate::diag::Diagnostic;
use crate::plan::{ClusterState, JobEntry, Mode, Strategy, Unschedulable, round3};
use crate::rules::{Decision, Fallback, LadderReason, Listed, Rule, TargetError, resolve_target};

/// Every job's plan entry, by job index, and the unschedulable jobs.
pub(super) struct Finals {
    pub entries: Vec<JobEntry>,
    /// Sorted, as the plan lists them.
    pub unschedulable: Vec<Unschedulable>,
}

/// Why no cluster can take a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnschedulableReason {
    /// The ladder could not decide.
    #[error(transparent)]
    Ladder(#[from] LadderReason),
    /// Target resolution found no cluster.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The job follows its file, and no cluster takes new files.
    #[error("no cluster accepts new files ({})", Listed(.0, ", "))]
    NoClusterAcceptsNewFiles(Vec<ClosedCluster>),
}

/// A cluster that takes no new files, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClosedCluster {
    pub name: String,
    pub state: ClusterState,
}

impl fmt::Display for ClosedCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.state.as_str())
    }
}

/// Where a decided job ends: its cluster, the rule the plan names, and the detail.
struct Target {
    cluster: Option<String>,
    rule: Rule,
    detail: String,
}

impl Run<'_> {
    /// Every job's final target, given the files' clusters.
    pub(super) fn finalize(&self, choices: &[FileChoice]) -> Finals {
        let (entries, missed): (Vec<JobEntry>, Vec<Option<Unschedulable>>) = self
            .jobs
            .par_iter()
            .map(|j| self.final_entry(j, &choices[j.file]))
            .unzip();
        let mut unschedulable: Vec<Unschedulable> = missed.into_iter().flatten().collect();
        unschedulable.sort();
        Finals {
            entries,
            unschedulable,
        }
    }

    /// A job's plan entry, and its `unschedulable[]` entry when no cluster can take it
    /// (it keeps its previous cluster, if it had one).
    fn final_entry(
        &self,
        j: &JobState<'_>,
        choice: &FileChoice,
    ) -> (JobEntry, Option<Unschedulable>) {
        let file = &self.files[j.file];
        let target = match &j.ladder {
            Ok(Decided { decision, place }) => self.final_target(j, decision, place, choice),
            Err(e) => Err(UnschedulableReason::Ladder(e.reason.clone())),
        };
        let (target, missed) = match target {
            Ok(target) => (target, None),
            Err(reason) => {
                let reason = reason.to_string();
                let kept = j.previous.map(str::to_owned);
                let missed = Unschedulable {
                    job: j.job.name.clone(),
                    file: file.file.path.clone(),
                    reason: reason.clone(),
                    kept: kept.clone(),
                };
                let target = Target {
                    cluster: kept,
                    rule: Rule::Unschedulable,
                    detail: reason,
                };
                (target, Some(missed))
            }
        };
        let entry = JobEntry {
            cluster: target.cluster,
            file: file.file.path.clone(),
            rule: target.rule,
            demand: round3(j.demand),
            detail: target.detail,
        };
        (entry, missed)
    }

    /// Where a decided job ends.
    fn final_target(
        &self,
        j: &JobState<'_>,
        decision: &Decision,
        place: &Place,
        choice: &FileChoice,
    ) -> Result<Target, UnschedulableReason> {
        match place {
            Place::NonKubernetes => Ok(Target {
                cluster: None,
                rule: Rule::NoClusterAgent,
                detail: decision.detail.clone(),
            }),
            Place::Fixed { cluster, by } => Ok(Target {
                cluster: Some(cluster.clone()),
                // A relocatable job can only be fixed when delta mode kept it in place.
                rule: if decision.relocatable {
                    Rule::Balanced
                } else {
                    decision.rule
                },
                detail: join(decision.detail.clone(), &by.note(cluster)),
            }),
            Place::Movable => self.follow_file(j, decision, &self.files[j.file], choice),
        }
    }

    /// Where a job that follows its file ends: the file's cluster, resolved against
    /// blocked clusters.
    fn follow_file(
        &self,
        j: &JobState<'_>,
        decision: &Decision,
        file: &FileState<'_>,
        choice: &FileChoice,
    ) -> Result<Target, UnschedulableReason> {
        let (strategy, mode) = (self.settings.strategy, self.settings.mode);
        let inventory = self.inputs.inventory;
        let file_cluster = if strategy == Strategy::Resolve {
            self.resolve_file_cluster(j.job, decision, file)
        } else {
            choice.cluster.as_deref()
        };
        // Resolve in delta mode, which no caller asks for, strands every job here too:
        // resolve's C is empty whenever the job's target is not blocked.
        let stranded = (strategy == Strategy::Balanced || mode == Mode::Delta)
            && file_cluster.is_none()
            && decision
                .cluster
                .as_deref()
                .is_some_and(|x| inventory.clusters.contains_key(x));
        if stranded {
            return Err(self.no_cluster_accepts_new_files());
        }
        let default = &self.inputs.config.default;
        let (cluster, fallback) =
            resolve_target(inventory, default, &j.job.name, file_cluster, decision)?;
        let note = match fallback {
            Fallback::None => String::new(),
            Fallback::FollowsFile => format!(
                "pinned cluster {} is blocked: follows its file",
                decision.cluster.as_deref().unwrap_or_default()
            ),
            Fallback::Default => "target blocked: default cluster".to_owned(),
        };
        let (rule, detail) = if strategy == Strategy::Resolve {
            (decision.rule, decision.detail.clone())
        } else {
            let detail = format!("relocatable ({}), placed with its file", decision.detail);
            (Rule::Balanced, detail)
        };
        Ok(Target {
            cluster: Some(cluster),
            rule,
            detail: join(detail, &note),
        })
    }

    /// Why a relocatable job found no cluster: what each one is.
    fn no_cluster_accepts_new_files(&self) -> UnschedulableReason {
        let clusters = self
            .inputs
            .inventory
            .clusters
            .values()
            .map(|c| ClosedCluster {
                name: c.name.clone(),
                // Jobs are stranded when no pool cluster is left, so a cluster neither
                // blocked nor reserved is cordoned (but see `follow_file` for resolve).
                state: if c.blocked {
                    ClusterState::Blocked
                } else if c.reserved {
                    ClusterState::Reserved
                } else {
                    ClusterState::Cordoned
                },
            })
            .collect();
        UnschedulableReason::NoClusterAcceptsNewFiles(clusters)
    }
}

/// `a; b`, or whichever is not empty; `a` is reused rather than copied.
fn join(mut a: String, b: &str) -> String {
    if !b.is_empty() {
        if !a.is_empty() {
            a.push_str("; ");
        }
        a.push_str(b);
    }
    a
}

/// One error per distinct reason, so that a blocked gpu cluster does not print a line per
/// job.
pub(super) fn unschedulable_summary(list: &[Unschedulable]) -> Vec<Diagnostic> {
    let mut by_reason: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for u in list {
        let e = by_reason.entry(&u.reason).or_insert((0, &u.job));
        e.0 += 1;
    }
    by_reason
        .into_iter()
        .map(|(reason, (n, example))| {
            Diagnostic::error(
                "plan",
                format!("unschedulable ({n} job(s), e.g. {example})"),
                reason.to_owned(),
            )
        })
        .collect()
}
