//! The file-level choice: the cluster each file (and so each job that follows it) goes to.
//!
//! Some files keep their cluster whatever the strategy (here); the others are chosen by the
//! mode and strategy: `resolve` takes the config as written, `delta` keeps existing files
//! and places new ones, `classic` and `balanced` balance them.

mod balanced;
mod classic;
mod delta;
mod resolve;

use super::Run;
use super::files::{FileState, most_common};
use crate::balance::{BalancedFile, Churn, Pool, Start};
use crate::fnv::tie_hash;
use crate::plan::{FileReason, Mode, Strategy};

/// The cluster chosen for a file, and why.
#[derive(Debug, Clone)]
pub(super) struct FileChoice {
    pub cluster: Option<String>,
    pub reason: FileReason,
    /// Whether the file's movable demand was balanced over its eligible clusters (for the
    /// fractional optimum).
    pub balanced: bool,
}

impl FileChoice {
    /// A cluster that balancing did not choose.
    fn unbalanced(cluster: Option<String>, reason: FileReason) -> Self {
        Self {
            cluster,
            reason,
            balanced: false,
        }
    }

    /// No cluster at all.
    fn none() -> Self {
        Self::unbalanced(None, FileReason::NoEligibleCluster)
    }

    /// The pool position of a file whose movable demand was balanced.
    pub fn balanced_index(&self, pool: &Pool) -> Option<usize> {
        self.cluster
            .as_deref()
            .and_then(|c| pool.index(c))
            .filter(|_| self.balanced)
    }
}

impl Run<'_> {
    /// Every file's cluster, by file index.
    pub(super) fn choose_files(&self) -> Vec<FileChoice> {
        if self.settings.strategy == Strategy::Resolve {
            return self.choose_as_written();
        }
        let mut chosen: Vec<Option<FileChoice>> =
            self.files.iter().map(|f| self.settled_choice(f)).collect();
        let fixed_load = self.fixed_load();
        if self.settings.mode == Mode::Delta {
            self.choose_delta(&mut chosen, fixed_load);
        } else {
            match self.settings.strategy {
                Strategy::Classic => self.choose_classic(&mut chosen),
                Strategy::Balanced | Strategy::Resolve => {
                    self.choose_balanced(&mut chosen, &fixed_load);
                }
            }
        }
        chosen
            .into_iter()
            .map(|c| c.unwrap_or_else(FileChoice::none))
            .collect()
    }

    /// The cluster of a file that keeps it whatever the strategy: one without movable
    /// demand, one on a cordoned cluster, and every file when no cluster takes new ones.
    fn settled_choice(&self, f: &FileState<'_>) -> Option<FileChoice> {
        if f.movable_demand <= 0.0 && !f.jobs.iter().any(|&ji| self.jobs[ji].is_movable()) {
            return Some(FileChoice::unbalanced(
                self.unmovable_home(f),
                FileReason::NoMovableDemand,
            ));
        }
        if let Some(incumbent) = f.incumbent.as_deref().filter(|c| self.keeps_cordoned(c)) {
            return Some(FileChoice::unbalanced(
                Some(incumbent.to_owned()),
                FileReason::CordonedKeep,
            ));
        }
        self.pool.names.is_empty().then(FileChoice::none)
    }

    /// Where a file that no job follows is listed: its previous cluster, else where its
    /// jobs run, so that `buildFarm` lists it where it lives; else a stable hash spreads
    /// such files.
    fn unmovable_home(&self, f: &FileState<'_>) -> Option<String> {
        let previous = self
            .previous_file_cluster(f)
            .filter(|c| self.may_stay(f, c))
            .map(str::to_owned);
        let majority = most_common(
            f.jobs
                .iter()
                .filter_map(|&ji| self.jobs[ji].fixed_cluster()),
        )
        .filter(|c| self.pool.admits(f.mask, c));
        previous.or(majority).or_else(|| {
            self.pool
                .members(f.mask)
                .min_by_key(|&i| (tie_hash(&f.file.path, &self.pool.names[i]), i))
                .map(|i| self.pool.names[i].clone())
        })
    }

    /// The file's cluster in the previous plan.
    fn previous_file_cluster(&self, f: &FileState<'_>) -> Option<&str> {
        self.inputs
            .previous
            .and_then(|p| p.files.get(&f.file.path))
            .and_then(|e| e.cluster.as_deref())
    }

    /// Per pool cluster: the demand that is there whatever the files' choices (fixed jobs,
    /// and unschedulable jobs that keep their previous cluster).
    fn fixed_load(&self) -> Vec<f64> {
        let mut fixed_load = vec![0.0; self.pool.names.len()];
        for j in &self.jobs {
            if let Some(i) = j.fixed_cluster().and_then(|c| self.pool.index(c)) {
                fixed_load[i] += j.demand;
            }
            if let (Err(_), Some(p)) = (&j.ladder, j.previous)
                && let Some(i) = self.pool.index(p)
            {
                fixed_load[i] += j.demand;
            }
        }
        fixed_load
    }

    /// The churn controls: none without a previous plan.
    pub(super) fn churn(&self) -> Option<Churn> {
        self.inputs.previous.map(|_| Churn {
            hysteresis: self.settings.hysteresis_percent / 100.0,
            budget: self.settings.movement_budget_percent / 100.0 * self.total_demand,
        })
    }
}

/// The file as the balancer sees it.
fn balance_input<'f>(f: &'f FileState<'_>, start: Start, cost: f64) -> BalancedFile<'f> {
    BalancedFile {
        path: &f.file.path,
        demand: f.movable_demand,
        mask: f.mask,
        start,
        cost,
    }
}
