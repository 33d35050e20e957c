//! The plan's sections from the final targets: file entries with their candidates, the
//! moves against the previous plan, cluster entries, and the summary.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use super::choose::FileChoice;
use super::files::FileState;
use super::finalize::{Finals, unschedulable_summary};
use super::ladder::JobState;
use super::{Run, finish_diagnostics};
use crate::balance::Pool;
use crate::model::Inventory;
use crate::optimum::{self, DemandClass};
use crate::plan::{
    Candidate, ClusterEntry, ClusterState, FileEntry, JobEntry, Mode, PLAN_FORMAT, Parameters,
    Plan, Strategy, Summary, round3, round6,
};

/// Final demand per cluster.
struct Loads {
    /// On every cluster that has any, pool or not.
    by_cluster: BTreeMap<String, f64>,
    /// On each pool cluster.
    pool: Vec<f64>,
    /// Each pool cluster's capacity share of the pool's demand.
    target: Vec<f64>,
}

/// What changed against the previous plan.
#[derive(Default)]
struct Moves {
    jobs: usize,
    demand: f64,
    /// Moves the run could not avoid (exempt from the budget).
    forced_jobs: usize,
    forced_demand: f64,
    moved_in: BTreeMap<String, f64>,
    moved_out: BTreeMap<String, f64>,
    new_jobs: usize,
    removed_jobs: usize,
}

impl Run<'_> {
    /// The plan.
    pub(super) fn into_plan(mut self, choices: &[FileChoice], finals: Finals) -> Plan {
        let loads = self.loads(&finals.entries);
        let files = self.file_entries(choices, &loads);
        let moves = self.moves(&finals.entries);
        let clusters = self.cluster_entries(&finals.entries, &files, &loads, &moves);
        let summary = self.summary(choices, &finals, &loads, &moves);
        self.diagnostics
            .extend(unschedulable_summary(&finals.unschedulable));
        let settings = self.settings;
        Plan {
            format: PLAN_FORMAT,
            strategy: settings.strategy,
            mode: settings.mode,
            parameters: Parameters {
                vsphere_cluster: settings.vsphere_cluster.clone(),
                hysteresis_percent: settings.hysteresis_percent,
                movement_budget_percent: settings.movement_budget_percent,
                demand: settings.demand,
            },
            inputs: self.inputs.digests.clone(),
            summary,
            clusters,
            files,
            jobs: self.jobs_by_name(finals.entries),
            unschedulable: finals.unschedulable,
            diagnostics: finish_diagnostics(self.diagnostics),
        }
    }

    /// The plan's `jobs` map.
    fn jobs_by_name(&self, entries: Vec<JobEntry>) -> BTreeMap<String, JobEntry> {
        let mut entries: Vec<Option<JobEntry>> = entries.into_iter().map(Some).collect();
        let mut sorted = Vec::with_capacity(self.by_name.len());
        for &i in &self.by_name {
            if let Some(e) = entries[i].take() {
                sorted.push((self.jobs[i].job.name.clone(), e));
            }
        }
        // Already in key order, so the map is built without a second sort's work.
        sorted.into_iter().collect()
    }

    fn loads(&self, entries: &[JobEntry]) -> Loads {
        let by_cluster = loads_by_cluster(entries, &self.jobs);
        let pool: Vec<f64> = self
            .pool
            .names
            .iter()
            .map(|n| by_cluster.get(n).copied().unwrap_or(0.0))
            .collect();
        let pool_total: f64 = pool.iter().sum();
        let cap_sum: f64 = self.pool.cap.iter().sum();
        let target = self
            .pool
            .cap
            .iter()
            .map(|c| {
                if cap_sum > 0.0 {
                    c / cap_sum * pool_total
                } else {
                    0.0
                }
            })
            .collect();
        Loads {
            by_cluster,
            pool,
            target,
        }
    }

    /// Per-file entries, with candidates for balanced files.
    fn file_entries(&self, choices: &[FileChoice], loads: &Loads) -> BTreeMap<String, FileEntry> {
        self.files
            .par_iter()
            .zip(choices.par_iter())
            .map(|(f, choice)| {
                let mut candidates = Vec::new();
                if f.movable_demand > 0.0 && self.settings.strategy != Strategy::Resolve {
                    candidates = candidates_of(
                        f,
                        choice.cluster.as_deref(),
                        &self.pool,
                        self.inputs.inventory,
                        loads,
                    );
                }
                let demand: f64 = f.jobs.iter().map(|&ji| self.jobs[ji].demand).sum();
                let entry = FileEntry {
                    cluster: choice.cluster.clone(),
                    reason: choice.reason,
                    jobs: f.jobs.len(),
                    demand: round3(demand),
                    movable_demand: round3(f.movable_demand),
                    previous: f.previous.clone(),
                    cloud: f.cloud.clone(),
                    group_path: f.facts.matches_group_path(),
                    candidates,
                };
                (f.file.path.clone(), entry)
            })
            // Collected in path order, then built as a map without reordering.
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    }

    /// Moves against the previous plan.
    fn moves(&self, entries: &[JobEntry]) -> Moves {
        let Some(previous) = self.inputs.previous else {
            return Moves::default();
        };
        let mut moves = Moves::default();
        for ((j, e), previous_entry) in self.jobs.iter().zip(entries).zip(&self.previous) {
            if let (Some(p), Some(n)) = (j.previous, e.cluster.as_deref())
                && p != n
            {
                moves.jobs += 1;
                moves.demand += j.demand;
                *moves.moved_in.entry(n.to_owned()).or_default() += j.demand;
                *moves.moved_out.entry(p.to_owned()).or_default() += j.demand;
                if self.is_forced(j, p) {
                    moves.forced_jobs += 1;
                    moves.forced_demand += j.demand;
                }
            }
            if previous_entry.is_none() {
                moves.new_jobs += 1;
            }
        }
        moves.removed_jobs =
            previous.jobs.len() - self.previous.iter().filter(|e| e.is_some()).count();
        moves
    }

    /// Whether a job's move off `previous` was unavoidable: its previous cluster is
    /// blocked, removed or no longer eligible, its rule now says otherwise, or its file is
    /// being reunited on one cluster. Only balancing moves are charged to the budget.
    fn is_forced(&self, j: &JobState<'_>, previous: &str) -> bool {
        if !j.is_movable() {
            return true;
        }
        let f = &self.files[j.file];
        !self.pool.admits(f.mask, previous) || f.previous.as_deref() != Some(previous)
    }

    fn cluster_entries(
        &self,
        entries: &[JobEntry],
        files: &BTreeMap<String, FileEntry>,
        loads: &Loads,
        moves: &Moves,
    ) -> BTreeMap<String, ClusterEntry> {
        let inventory = self.inputs.inventory;
        let all: f64 = loads.by_cluster.values().sum();
        let job_count = count(entries.iter().filter_map(|e| e.cluster.as_deref()));
        let file_count = count(files.values().filter_map(|f| f.cluster.as_deref()));
        let mut names: BTreeSet<String> = inventory.clusters.keys().cloned().collect();
        names.extend(loads.by_cluster.keys().cloned());
        names
            .into_iter()
            .map(|n| {
                let c = inventory.clusters.get(&n);
                let state = match c {
                    None => ClusterState::Unmanaged,
                    Some(c) if c.blocked => ClusterState::Blocked,
                    Some(c) if c.reserved => ClusterState::Reserved,
                    Some(c) if c.cordoned => ClusterState::Cordoned,
                    Some(_) => ClusterState::Active,
                };
                let demand = loads.by_cluster.get(&n).copied().unwrap_or(0.0);
                let share = |x: f64| if all > 0.0 { round6(x / all) } else { 0.0 };
                let entry = ClusterEntry {
                    state,
                    provider: c.map(|c| c.provider.clone()),
                    capacity: c.map(|c| c.capacity),
                    jobs: job_count.get(n.as_str()).copied().unwrap_or(0),
                    files: file_count.get(n.as_str()).copied().unwrap_or(0),
                    demand: round3(demand),
                    share: share(demand),
                    target_share: self.pool.index(&n).map(|i| share(loads.target[i])),
                    moved_in_demand: round3(moves.moved_in.get(&n).copied().unwrap_or(0.0)),
                    moved_out_demand: round3(moves.moved_out.get(&n).copied().unwrap_or(0.0)),
                };
                (n, entry)
            })
            .collect()
    }

    fn summary(
        &self,
        choices: &[FileChoice],
        finals: &Finals,
        loads: &Loads,
        moves: &Moves,
    ) -> Summary {
        let settings = self.settings;
        // Everything on a pool cluster that did not come from a balanced file is fixed.
        let mut fixed_on_pool = loads.pool.clone();
        for (f, choice) in self.files.iter().zip(choices) {
            if let Some(i) = choice.balanced_index(&self.pool) {
                fixed_on_pool[i] = (fixed_on_pool[i] - f.movable_demand).max(0.0);
            }
        }
        let classes = self.demand_classes(choices);
        Summary {
            jobs: self.jobs.len(),
            files: self.files.len(),
            kubernetes_jobs: self.jobs.iter().filter(|j| j.job.is_kubernetes()).count(),
            placed_jobs: finals
                .entries
                .iter()
                .filter(|e| e.cluster.is_some())
                .count(),
            unschedulable_jobs: finals.unschedulable.len(),
            moved_jobs: moves.jobs,
            moved_demand: round3(moves.demand),
            forced_moved_jobs: moves.forced_jobs,
            forced_moved_demand: round3(moves.forced_demand),
            removed_jobs: moves.removed_jobs,
            new_jobs: moves.new_jobs,
            total_demand: round3(self.total_demand),
            budget_demand: self
                .churn()
                .filter(|_| settings.strategy == Strategy::Balanced && settings.mode == Mode::Full)
                .map(|c| round3(c.budget)),
            budget_used: round3(moves.demand - moves.forced_demand),
            max_deviation: round6(optimum::max_deviation(&self.pool.cap, &loads.pool)),
            fractional_optimum_deviation: round6(optimum::fractional_optimum(
                &self.pool.cap,
                &fixed_on_pool,
                &classes,
            )),
        }
    }

    /// Balanced files' movable demand grouped by eligibility, for the fractional optimum.
    fn demand_classes(&self, choices: &[FileChoice]) -> Vec<DemandClass> {
        let mut by_mask: BTreeMap<u128, f64> = BTreeMap::new();
        for (f, choice) in self.files.iter().zip(choices) {
            if choice.balanced_index(&self.pool).is_some() {
                *by_mask.entry(f.mask).or_default() += f.movable_demand;
            }
        }
        by_mask
            .into_iter()
            .map(|(mask, demand)| DemandClass { mask, demand })
            .collect()
    }
}

/// Scores of every cluster for one file, given the final loads; rejected clusters say why.
fn candidates_of(
    f: &FileState<'_>,
    chosen: Option<&str>,
    pool: &Pool,
    inventory: &Inventory,
    loads: &Loads,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for c in inventory.clusters.values() {
        let mut rejected = Vec::new();
        if c.blocked {
            rejected.push("blocked".to_owned());
        }
        if c.reserved {
            rejected.push("reserved".to_owned());
        }
        if c.cordoned && chosen != Some(c.name.as_str()) {
            rejected.push("cordoned".to_owned());
        }
        if let Some(cloud) = &f.cloud
            && !f.relaxed
            && c.provider != *cloud
        {
            rejected.push(format!("cloud-mismatch (file wants {cloud})"));
        }
        let score = pool
            .index(&c.name)
            .filter(|_| rejected.is_empty())
            .map(|i| {
                let own = if chosen == Some(c.name.as_str()) {
                    f.movable_demand
                } else {
                    0.0
                };
                let t = loads.target[i].max(f64::MIN_POSITIVE);
                round6((loads.pool[i] - own + f.movable_demand) / t)
            });
        out.push(Candidate {
            cluster: c.name.clone(),
            score,
            rejected,
        });
    }
    out
}

/// Demand per cluster of the final targets.
fn loads_by_cluster(entries: &[JobEntry], jobs: &[JobState<'_>]) -> BTreeMap<String, f64> {
    let mut load: BTreeMap<String, f64> = BTreeMap::new();
    for (j, e) in jobs.iter().zip(entries) {
        if let Some(c) = e.cluster.as_deref() {
            match load.get_mut(c) {
                Some(l) => *l += j.demand,
                None => {
                    load.insert(c.to_owned(), j.demand);
                }
            }
        }
    }
    load
}

/// How often each name occurs.
fn count<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in names {
        *counts.entry(n).or_default() += 1;
    }
    counts
}
