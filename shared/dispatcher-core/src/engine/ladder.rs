//! The ladder phase: each job's decision, and where that puts the job before file-level
//! choices are made; then the previous clusters the rules still allow, which the job keeps.

use rayon::prelude::*;

use super::Run;
use crate::checks;
use crate::model::Job;
use crate::plan::{Mode, Strategy};
use crate::rules::{Decision, LadderError, is_cluster_upgrade_job};

/// One job of the run.
pub(super) struct JobState<'a> {
    pub job: &'a Job,
    /// Index of its file in [`Run::files`].
    pub file: usize,
    pub demand: f64,
    /// Its cluster in the previous plan.
    pub previous: Option<&'a str>,
    /// What the ladder decided and where that puts the job, or why it could not decide.
    pub ladder: Result<Decided, LadderError>,
}

/// A job the ladder decided.
pub(super) struct Decided {
    pub decision: Decision,
    pub place: Place,
}

/// Where a job goes before file-level choices are made.
#[derive(Debug, Clone)]
pub(super) enum Place {
    /// A non-Kubernetes agent: no cluster.
    NonKubernetes,
    /// Its cluster, whatever its file's.
    Fixed { cluster: String, by: FixedBy },
    /// Follows its file's cluster (relocatable, or pinned to a blocked cluster).
    Movable,
}

/// What fixed a job's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FixedBy {
    /// The ladder's decision.
    Decision,
    /// The previous cluster, still in the set the rule picks from.
    PreviousInRuleSet,
    /// The previous cluster, which delta mode keeps.
    Delta,
}

impl FixedBy {
    /// What the job's `detail` adds to the decision's.
    pub fn note(self, cluster: &str) -> String {
        match self {
            FixedBy::Decision => String::new(),
            FixedBy::PreviousInRuleSet => {
                format!("kept previous cluster {cluster}, still in the rule's set")
            }
            FixedBy::Delta => "delta: kept previous cluster".to_owned(),
        }
    }
}

impl JobState<'_> {
    pub fn decision(&self) -> Option<&Decision> {
        self.ladder.as_ref().ok().map(|d| &d.decision)
    }

    pub fn place(&self) -> Option<&Place> {
        self.ladder.as_ref().ok().map(|d| &d.place)
    }

    /// Whether the job follows its file's cluster.
    pub fn is_movable(&self) -> bool {
        matches!(self.place(), Some(Place::Movable))
    }

    /// The job's cluster when it does not depend on its file's.
    pub fn fixed_cluster(&self) -> Option<&str> {
        match self.place() {
            Some(Place::Fixed { cluster, .. }) => Some(cluster),
            _ => None,
        }
    }
}

impl<'a> Run<'a> {
    /// Runs the ladder for every job. Jobs are independent here, so both cores share them;
    /// the indexed collect keeps the order.
    pub(super) fn decide_jobs(&mut self, winners: &[(usize, &'a Job)], demands: Vec<f64>) {
        let this = &*self;
        let jobs = winners
            .par_iter()
            .zip(this.previous.par_iter())
            .zip(demands.into_par_iter())
            .map(|((&(file, job), previous_entry), demand)| {
                let previous = previous_entry.and_then(|e| e.cluster.as_deref());
                // Where the job runs now: the previous plan's answer, else its static field.
                let incumbent = if this.inputs.previous.is_some() {
                    previous
                } else {
                    job.cluster.as_deref()
                };
                let ladder = this
                    .rules
                    .decide_in(job, &this.files[file].facts, incumbent)
                    .map(|decision| Decided {
                        place: this.first_place(job, &decision),
                        decision,
                    });
                JobState {
                    job,
                    file,
                    demand,
                    previous,
                    ladder,
                }
            })
            .collect();
        self.jobs = jobs;
        let decisions = self.jobs.iter().filter_map(JobState::decision);
        let unknown = checks::unknown_targets(decisions, self.inputs);
        self.diagnostics.extend(unknown);
    }

    /// The place a job's decision gives before previous plans are considered.
    fn first_place(&self, job: &Job, decision: &Decision) -> Place {
        let Some(target) = decision.cluster.as_deref() else {
            return Place::NonKubernetes;
        };
        if self.settings.strategy == Strategy::Resolve {
            // Resolve is decided per job, with the file's most used static cluster standing
            // in for C when the target is blocked (what the sanitizer does).
            return Place::Movable;
        }
        let blocked =
            self.inputs.inventory.is_blocked(target) && !is_cluster_upgrade_job(&job.name);
        if decision.relocatable || blocked {
            Place::Movable
        } else {
            Place::Fixed {
                cluster: target.to_owned(),
                by: FixedBy::Decision,
            }
        }
    }

    /// Jobs keep a previous cluster the rules still allow: a set-based rule keeps a
    /// previous cluster still in its set, and delta mode keeps a movable job where its
    /// file may stay.
    pub(super) fn keep_previous_clusters(&mut self) {
        if self.inputs.previous.is_none() {
            return;
        }
        for ji in 0..self.jobs.len() {
            if let Some(place) = self.previous_place(&self.jobs[ji])
                && let Ok(decided) = &mut self.jobs[ji].ladder
            {
                decided.place = place;
            }
        }
    }

    /// The place that keeps the job on its previous cluster, when the rules allow it and
    /// the job would otherwise go elsewhere.
    fn previous_place(&self, j: &JobState<'_>) -> Option<Place> {
        let p = j.previous?;
        let Ok(Decided { decision, place }) = &j.ladder else {
            return None;
        };
        let by = match place {
            Place::Fixed { cluster, .. }
                if cluster != p
                    && decision.rule.is_set_based()
                    && decision.set.iter().any(|s| s == p)
                    && self.inputs.inventory.usable(p) =>
            {
                FixedBy::PreviousInRuleSet
            }
            Place::Movable
                if self.settings.mode == Mode::Delta && self.may_stay(&self.files[j.file], p) =>
            {
                FixedBy::Delta
            }
            _ => return None,
        };
        Some(Place::Fixed {
            cluster: p.to_owned(),
            by,
        })
    }
}
