//! A drain moves the drained cluster's jobs, and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use super::{OverrideKind, OverrideSpec};
use crate::plan::{Plan, round3, round6};

/// `effective` with every job, file and unschedulable entry whose baseline cluster no
/// drain names put back as `baseline` has it, and the per-cluster totals counted again.
/// A capacity override is a rebalancing by nature: its plan is kept whole.
pub fn confine(baseline: &Plan, mut effective: Plan, overrides: &[OverrideSpec]) -> Plan {
    if overrides.iter().any(|o| o.kind == OverrideKind::Capacity) {
        return effective;
    }
    let drained: BTreeSet<&str> = overrides.iter().map(|o| o.cluster.as_str()).collect();
    let stays = |cluster: &Option<String>| !cluster.as_deref().is_some_and(|c| drained.contains(c));
    let mut kept = BTreeSet::new();
    for (name, entry) in &mut effective.jobs {
        if let Some(base) = baseline.jobs.get(name).filter(|b| stays(&b.cluster)) {
            entry.clone_from(base);
            kept.insert(name.clone());
        }
    }
    for (path, entry) in &mut effective.files {
        if let Some(base) = baseline.files.get(path).filter(|b| stays(&b.cluster)) {
            entry.clone_from(base);
        }
    }
    effective.unschedulable.retain(|u| !kept.contains(&u.job));
    effective.unschedulable.extend(
        baseline
            .unschedulable
            .iter()
            .filter(|u| kept.contains(&u.job))
            .cloned(),
    );
    effective.unschedulable.sort();
    recount(&mut effective);
    effective
}

/// The per-cluster jobs, files, demand and shares, and the summary's counts, from the
/// plan's entries.
fn recount(plan: &mut Plan) {
    let mut demand: BTreeMap<&str, f64> = BTreeMap::new();
    let mut jobs: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in plan.jobs.values() {
        if let Some(c) = entry.cluster.as_deref() {
            *demand.entry(c).or_default() += entry.demand;
            *jobs.entry(c).or_default() += 1;
        }
    }
    let mut files: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in plan.files.values() {
        if let Some(c) = entry.cluster.as_deref() {
            *files.entry(c).or_default() += 1;
        }
    }
    let all: f64 = demand.values().sum();
    for (name, entry) in &mut plan.clusters {
        let d = demand.get(name.as_str()).copied().unwrap_or(0.0);
        entry.demand = round3(d);
        entry.share = if all > 0.0 { round6(d / all) } else { 0.0 };
        entry.jobs = jobs.get(name.as_str()).copied().unwrap_or(0);
        entry.files = files.get(name.as_str()).copied().unwrap_or(0);
    }
    plan.summary.placed_jobs = plan.jobs.values().filter(|e| e.cluster.is_some()).count();
    plan.summary.unschedulable_jobs = plan.unschedulable.len();
}
