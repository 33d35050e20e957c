//! What a plan would change against the answers serving now: the preview an operator
//! approves.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::JobFile;
use crate::plan::{Plan, Unschedulable, round3, round6};

/// Jobs and demand that move from one cluster to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairMove {
    /// Where they run now.
    pub from: String,
    /// Where they would run (`None`: nowhere).
    pub to: Option<String>,
    /// How many jobs.
    pub jobs: usize,
    /// Their demand.
    pub demand: f64,
}

/// A cluster's share of the placed demand, before and after.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShareChange {
    /// Now.
    pub before: f64,
    /// With the plan.
    pub after: f64,
}

/// What a plan changes against the serving answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    /// Jobs that would run elsewhere.
    pub moved_jobs: usize,
    /// Their demand.
    pub moved_demand: f64,
    /// The moved demand's share of all placed demand.
    pub moved_share: f64,
    /// Per cluster pair, in order.
    pub moves: Vec<PairMove>,
    /// Per cluster.
    pub shares: BTreeMap<String, ShareChange>,
    /// Jobs no cluster could take any more, with why.
    pub unschedulable: Vec<Unschedulable>,
    /// Moved jobs whose static `cluster:` still names the cluster they leave: when a
    /// lookup fails, Prow runs them there.
    pub unprotected_jobs: usize,
}

/// What `after` changes against `before` (the serving plan, whose answers are its jobs'
/// clusters); `files` are the release's job files, for the static `cluster:` fields.
pub fn impact(before: &Plan, after: &Plan, files: &[JobFile]) -> Impact {
    let statics: BTreeMap<&str, &str> = files
        .iter()
        .flat_map(|f| f.jobs.iter())
        .filter_map(|j| j.cluster.as_deref().map(|c| (j.name.as_str(), c)))
        .collect();
    let mut pairs: BTreeMap<(String, Option<String>), (usize, f64)> = BTreeMap::new();
    let mut unprotected = 0;
    for (name, entry) in &before.jobs {
        let Some(from) = entry.cluster.as_deref() else {
            continue;
        };
        let to = after.jobs.get(name).and_then(|e| e.cluster.clone());
        if to.as_deref() == Some(from) {
            continue;
        }
        let pair = pairs.entry((from.to_owned(), to)).or_default();
        pair.0 += 1;
        pair.1 += entry.demand;
        if statics.get(name.as_str()) == Some(&from) {
            unprotected += 1;
        }
    }
    let moves: Vec<PairMove> = pairs
        .into_iter()
        .map(|((from, to), (jobs, demand))| PairMove {
            from,
            to,
            jobs,
            demand: round3(demand),
        })
        .collect();
    let moved_demand: f64 = moves.iter().map(|m| m.demand).sum();
    let (before_shares, total) = shares(before);
    let (after_shares, _) = shares(after);
    let names: BTreeSet<&String> = before_shares.keys().chain(after_shares.keys()).collect();
    let was: BTreeSet<&str> = before
        .unschedulable
        .iter()
        .map(|u| u.job.as_str())
        .collect();
    Impact {
        moved_jobs: moves.iter().map(|m| m.jobs).sum(),
        moved_demand: round3(moved_demand),
        moved_share: if total > 0.0 {
            round6(moved_demand / total)
        } else {
            0.0
        },
        moves,
        shares: names
            .into_iter()
            .map(|n| {
                let share = |m: &BTreeMap<String, f64>| m.get(n).copied().unwrap_or(0.0);
                let change = ShareChange {
                    before: share(&before_shares),
                    after: share(&after_shares),
                };
                (n.clone(), change)
            })
            .collect(),
        unschedulable: after
            .unschedulable
            .iter()
            .filter(|u| !was.contains(u.job.as_str()))
            .cloned()
            .collect(),
        unprotected_jobs: unprotected,
    }
}

/// Each cluster's share of the placed demand, and the placed demand.
fn shares(plan: &Plan) -> (BTreeMap<String, f64>, f64) {
    let mut demand: BTreeMap<String, f64> = BTreeMap::new();
    for entry in plan.jobs.values() {
        if let Some(c) = &entry.cluster {
            *demand.entry(c.clone()).or_default() += entry.demand;
        }
    }
    let total: f64 = demand.values().sum();
    for v in demand.values_mut() {
        *v = if total > 0.0 { round6(*v / total) } else { 0.0 };
    }
    (demand, total)
}
