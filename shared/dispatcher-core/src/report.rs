//! The run summary of a generation: markdown for people and for the PR body, and an SVG
//! chart of target against achieved share per cluster.

use std::fmt::Write as _;

use crate::Plan;

/// A share as a percentage with two decimals.
fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Markdown summary: per-cluster target against achieved share, moves, unschedulable jobs.
pub fn markdown(plan: &Plan) -> String {
    let m = &plan.summary;
    let mut s = String::new();
    let _ = writeln!(s, "## Dispatcher plan\n");
    let _ = writeln!(
        s,
        "{} jobs ({} Kubernetes) in {} files: {} placed, {} unschedulable. Balance: max deviation {} from the capacity targets (fractional optimum {}).\n",
        m.jobs,
        m.kubernetes_jobs,
        m.files,
        m.placed_jobs,
        m.unschedulable_jobs,
        pct(m.max_deviation),
        pct(m.fractional_optimum_deviation)
    );
    let _ = writeln!(
        s,
        "| cluster | state | jobs | demand | target share | achieved share | moved in | moved out |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for (name, c) in &plan.clusters {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {:.1} | {} | {} | {:.1} | {:.1} |",
            c.state.as_str(),
            c.jobs,
            c.demand,
            c.target_share.map_or("-".to_owned(), pct),
            pct(c.share),
            c.moved_in_demand,
            c.moved_out_demand
        );
    }
    let _ = writeln!(
        s,
        "\nMoved: {} jobs, demand {:.1} of {:.1}; forced: {} jobs, demand {:.1}; budgeted: {:.1}{}.",
        m.moved_jobs,
        m.moved_demand,
        m.total_demand,
        m.forced_moved_jobs,
        m.forced_moved_demand,
        m.budget_used,
        m.budget_demand
            .map_or(String::new(), |b| format!(" of {b:.1}"))
    );
    // The files that change cluster, heaviest first: what a reviewer of the PR checks.
    let mut moved: Vec<(&String, &crate::plan::FileEntry)> = plan
        .files
        .iter()
        .filter(|(_, f)| f.previous.is_some() && f.previous != f.cluster)
        .collect();
    if !moved.is_empty() {
        moved.sort_by(|a, b| {
            b.1.movable_demand
                .total_cmp(&a.1.movable_demand)
                .then(a.0.cmp(b.0))
        });
        let _ = writeln!(s, "\n### Moved files\n");
        let _ = writeln!(s, "| file | from | to | jobs | demand | why |");
        let _ = writeln!(s, "|---|---|---|---:|---:|---|");
        for (path, f) in moved.iter().take(50) {
            let _ = writeln!(
                s,
                "| `{path}` | {} | {} | {} | {:.1} | {} |",
                f.previous.as_deref().unwrap_or("-"),
                f.cluster.as_deref().unwrap_or("-"),
                f.jobs,
                f.movable_demand,
                f.reason.as_str()
            );
        }
        if moved.len() > 50 {
            let _ = writeln!(s, "\nand {} more files.", moved.len() - 50);
        }
    }
    if !plan.unschedulable.is_empty() {
        let _ = writeln!(s, "\n### Unschedulable jobs\n");
        for u in plan.unschedulable.iter().take(50) {
            let _ = writeln!(
                s,
                "- `{}` ({}): {}{}",
                u.job,
                u.file,
                u.reason,
                u.kept
                    .as_ref()
                    .map_or(String::new(), |k| format!("; keeps {k}"))
            );
        }
        if plan.unschedulable.len() > 50 {
            let _ = writeln!(s, "- and {} more", plan.unschedulable.len() - 50);
        }
    }
    s
}

/// Horizontal bars: target share (outline) and achieved share (filled) per cluster.
pub fn svg(plan: &Plan) -> String {
    let rows: Vec<(&String, f64, Option<f64>)> = plan
        .clusters
        .iter()
        .map(|(n, c)| (n, c.share, c.target_share))
        .collect();
    let max = rows
        .iter()
        .map(|(_, a, t)| a.max(t.unwrap_or(0.0)))
        .fold(0.01, f64::max);
    let (left, width, row) = (110.0, 420.0, 28.0);
    let height = 40.0 + row * rows.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="18">Share of demand per cluster: target (outline) and achieved (bar)</text>"#
    );
    for (i, (name, achieved, target)) in rows.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.1}">{}</text>"#,
            y + 15.0,
            escape(name)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{:.1}" width="{:.1}" height="14" fill="#4c78a8"/>"##,
            y + 4.0,
            achieved / max * width
        );
        if let Some(t) = target {
            let _ = writeln!(
                s,
                r##"<rect x="{left}" y="{:.1}" width="{:.1}" height="20" fill="none" stroke="#e45756" stroke-width="2"/>"##,
                y + 1.0,
                t / max * width
            );
        }
        let label = match target {
            Some(t) => format!("{} / {}", pct(*achieved), pct(*t)),
            None => pct(*achieved),
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{label}</text>"#,
            left + width + 8.0,
            y + 15.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
