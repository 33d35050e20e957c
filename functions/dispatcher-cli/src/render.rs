//! Text rendering of plans for operators.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dispatcher_core::Plan;

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// The per-cluster table printed at the end of `plan` and `resolve`.
pub fn cluster_table(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} {:<10} {:<5} {:>4} {:>7} {:>12} {:>8} {:>8} {:>11} {:>11}",
        "cluster",
        "state",
        "cloud",
        "cap",
        "jobs",
        "demand",
        "target",
        "share",
        "moved in",
        "moved out"
    );
    for (name, c) in &plan.clusters {
        let state = serde_json::to_value(c.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{:<12} {:<10} {:<5} {:>4} {:>7} {:>12.1} {:>8} {:>8} {:>11.1} {:>11.1}",
            name,
            state,
            c.provider.as_deref().unwrap_or("-"),
            c.capacity.map_or("-".to_owned(), |x| x.to_string()),
            c.jobs,
            c.demand,
            c.target_share.map_or("-".to_owned(), pct),
            pct(c.share),
            c.moved_in_demand,
            c.moved_out_demand,
        );
    }
    let m = &plan.summary;
    let _ = writeln!(
        s,
        "{} jobs ({} kubernetes) in {} files; {} placed, {} unschedulable",
        m.jobs, m.kubernetes_jobs, m.files, m.placed_jobs, m.unschedulable_jobs
    );
    let _ = writeln!(
        s,
        "balance: max deviation {} from capacity targets (fractional optimum {})",
        pct(m.max_deviation),
        pct(m.fractional_optimum_deviation)
    );
    if m.moved_jobs > 0 || m.budget_demand.is_some() || m.new_jobs > 0 || m.removed_jobs > 0 {
        let _ = writeln!(
            s,
            "moved: {} jobs, demand {:.1} of {:.1} ({}); forced {} jobs, demand {:.1}; budgeted {:.1}{}; {} new, {} removed",
            m.moved_jobs,
            m.moved_demand,
            m.total_demand,
            pct(if m.total_demand > 0.0 {
                m.moved_demand / m.total_demand
            } else {
                0.0
            }),
            m.forced_moved_jobs,
            m.forced_moved_demand,
            m.budget_used,
            m.budget_demand
                .map_or(String::new(), |b| format!(" of budget {b:.1}")),
            m.new_jobs,
            m.removed_jobs,
        );
    }
    s
}

/// Why a job is where it is.
pub fn explain(plan: &Plan, job: &str) -> Option<String> {
    let e = plan.jobs.get(job)?;
    let mut s = String::new();
    let _ = writeln!(s, "job:     {job}");
    let _ = writeln!(
        s,
        "cluster: {}",
        e.cluster
            .as_deref()
            .unwrap_or("(none: lookup answers 404, Prow uses the static cluster)")
    );
    let _ = writeln!(s, "rule:    {}", e.rule.as_str());
    if !e.detail.is_empty() {
        let _ = writeln!(s, "detail:  {}", e.detail);
    }
    let _ = writeln!(s, "demand:  {}", e.demand);
    let _ = writeln!(s, "file:    {}", e.file);
    if let Some(u) = plan.unschedulable.iter().find(|u| u.job == job) {
        let _ = writeln!(s, "unschedulable: {}", u.reason);
    }
    if let Some(f) = plan.files.get(&e.file) {
        let reason = serde_json::to_value(f.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "file cluster: {} ({reason}); {} jobs, demand {}, of which {} follows the file",
            f.cluster.as_deref().unwrap_or("-"),
            f.jobs,
            f.demand,
            f.movable_demand
        );
        if let Some(p) = &f.previous {
            let _ = writeln!(s, "previous file cluster: {p}");
        }
        if let Some(c) = &f.cloud {
            let _ = writeln!(s, "cloud preference: {c}");
        }
        if !f.candidates.is_empty() {
            let _ = writeln!(
                s,
                "candidates (score = (assigned + this file) / capacity target; 1.0 is on target):"
            );
            for c in &f.candidates {
                let mark = if f.cluster.as_deref() == Some(c.cluster.as_str()) {
                    "*"
                } else {
                    " "
                };
                let score = c.score.map_or("-".to_owned(), |x| format!("{x:.4}"));
                let _ = writeln!(
                    s,
                    "  {mark} {:<12} {:>8}  {}",
                    c.cluster,
                    score,
                    c.rejected.join(", ")
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "inputs: config {}, inventory {}",
        plan.inputs.config, plan.inputs.inventory
    );
    Some(s)
}

/// Moved jobs and demand per cluster pair between two plans.
pub fn diff(old: &Plan, new: &Plan) -> String {
    let mut pairs: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    let (mut added, mut removed) = (0, 0);
    let none = || "(none)".to_owned();
    for (name, n) in &new.jobs {
        match old.jobs.get(name) {
            None => added += 1,
            Some(o) if o.cluster != n.cluster => {
                let key = (
                    o.cluster.clone().unwrap_or_else(none),
                    n.cluster.clone().unwrap_or_else(none),
                );
                let e = pairs.entry(key).or_default();
                e.0 += 1;
                e.1 += n.demand;
            }
            Some(_) => {}
        }
    }
    for name in old.jobs.keys() {
        if !new.jobs.contains_key(name) {
            removed += 1;
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} {:<12} {:>7} {:>12}",
        "from", "to", "jobs", "demand"
    );
    let (mut jobs, mut demand) = (0, 0.0);
    for ((from, to), (n, d)) in &pairs {
        let _ = writeln!(s, "{from:<12} {to:<12} {n:>7} {d:>12.1}");
        jobs += n;
        demand += d;
    }
    let _ = writeln!(
        s,
        "{jobs} job(s) moved, demand {demand:.1}; {added} added, {removed} removed"
    );
    s
}
