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
    s.push('\n');
    s.push_str(&mermaid(plan));
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

/// Share of placed demand per cluster as a Mermaid bar chart (GitHub renders it in PR
/// bodies and comments): achieved shares as bars, targets as a line.
fn mermaid(plan: &Plan) -> String {
    let rows: Vec<(&String, f64, f64)> = plan
        .clusters
        .iter()
        .filter(|(_, c)| c.share > 0.0 || c.target_share.is_some())
        .map(|(n, c)| (n, c.share * 100.0, c.target_share.unwrap_or(0.0) * 100.0))
        .collect();
    shares_chart(
        "Share of placed demand per cluster (%): achieved (bars), target (line)",
        &rows,
    )
}

/// A Mermaid `xychart-beta` of `(cluster, bar, line)` rows in percent.
pub fn shares_chart(title: &str, rows: &[(&String, f64, f64)]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let quote = |n: &str| format!("\"{}\"", n.replace('"', "'"));
    let names: Vec<String> = rows.iter().map(|(n, _, _)| quote(n)).collect();
    let values = |f: &dyn Fn(&(&String, f64, f64)) -> f64| {
        rows.iter()
            .map(|r| format!("{:.2}", f(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let top = rows
        .iter()
        .map(|(_, a, b)| a.max(*b))
        .fold(1.0, f64::max)
        .ceil();
    let mut s = String::new();
    let _ = writeln!(s, "```mermaid\nxychart-beta");
    let _ = writeln!(s, "    title {}", quote(title));
    let _ = writeln!(s, "    x-axis [{}]", names.join(", "));
    let _ = writeln!(s, "    y-axis \"%\" 0 --> {top}");
    let _ = writeln!(s, "    bar [{}]", values(&|r| r.1));
    let _ = writeln!(s, "    line [{}]", values(&|r| r.2));
    let _ = writeln!(s, "```");
    s
}

/// The widest a character of the chart's 12 px sans-serif text is taken to be: wide
/// enough for digits, lower-case letters and `%` in the common sans-serif faces.
pub const CHAR_WIDTH: f64 = 8.0;

/// The width `text` is laid out for.
pub fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_WIDTH
}

/// Horizontal bars: target share (outline) and achieved share (filled) per cluster of
/// `plan`. The columns are as wide as their longest label, so that no label is cut at an
/// edge.
pub fn svg(plan: &Plan) -> String {
    let rows: Vec<(&str, f64, Option<f64>)> = plan
        .clusters
        .iter()
        .map(|(n, c)| (n.as_str(), c.share, c.target_share))
        .collect();
    share_chart(&rows)
}

/// The chart of [`svg`] from its rows: (cluster, achieved share, target share), drawn in
/// the order given. The pages draw past generations from their records with it.
pub fn share_chart(rows: &[(&str, f64, Option<f64>)]) -> String {
    let max = rows
        .iter()
        .map(|(_, a, t)| a.max(t.unwrap_or(0.0)))
        .fold(0.01, f64::max);
    let label_of = |achieved: f64, target: Option<f64>| match target {
        Some(t) => format!("{} / {}", pct(achieved), pct(t)),
        None => pct(achieved),
    };
    let title = "Share of demand per cluster: target (outline) and achieved (bar)";
    let names = rows
        .iter()
        .map(|(n, _, _)| text_width(&escape(n)))
        .fold(0.0, f64::max);
    let labels = rows
        .iter()
        .map(|(_, a, t)| text_width(&label_of(*a, *t)))
        .fold(0.0, f64::max);
    let (margin, bars, row) = (10.0, 420.0, 28.0);
    let left = margin + names + margin;
    let width = (left + bars + 8.0 + labels + margin).max(margin + text_width(title) + margin);
    let height = 40.0 + row * rows.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height}" viewBox="0 0 {width:.0} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<text x="{margin}" y="18">{title}</text>"#);
    for (i, (name, achieved, target)) in rows.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{margin}" y="{:.1}">{}</text>"#,
            y + 15.0,
            escape(name)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{left:.1}" y="{:.1}" width="{:.1}" height="14" fill="#4c78a8"/>"##,
            y + 4.0,
            achieved / max * bars
        );
        if let Some(t) = target {
            let _ = writeln!(
                s,
                r##"<rect x="{left:.1}" y="{:.1}" width="{:.1}" height="20" fill="none" stroke="#e45756" stroke-width="2"/>"##,
                y + 1.0,
                t / max * bars
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            left + bars + 8.0,
            y + 15.0,
            label_of(*achieved, *target)
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

/// The error-level diagnostics of `after` that `before` does not already have: what a
/// change introduces (the errors a release already has would otherwise fail every change).
pub fn new_errors(before: &Plan, after: &Plan) -> Vec<crate::Diagnostic> {
    let known: std::collections::BTreeSet<&crate::Diagnostic> = before.diagnostics.iter().collect();
    after
        .diagnostics
        .iter()
        .filter(|d| d.severity <= crate::Severity::Error && !known.contains(d))
        .cloned()
        .collect()
}

/// A change of placement, as a reviewer reads it: what `dispatcher diff --format markdown`
/// prints, and the body of a pull request's plan comment.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The placement serving now.
    pub before: &'a Plan,
    /// The placement after the change.
    pub after: &'a Plan,
    /// What moves ([`crate::overrides::impact`] of the two).
    pub impact: &'a crate::overrides::Impact,
    /// Validation errors of the change, each naming its file and key.
    pub errors: &'a [crate::Diagnostic],
    /// Static `cluster:` lines the backup PR would change, when known.
    pub static_lines: Option<usize>,
}

/// The markdown of a change: validation errors, moves per cluster pair, target and
/// achieved shares before and after (a table and a Mermaid chart), jobs that would become
/// unschedulable.
pub fn change_markdown(c: &Change<'_>) -> String {
    let i = c.impact;
    let mut s = String::new();
    let _ = writeln!(s, "### Placement plan\n");
    if !c.errors.is_empty() {
        let _ = writeln!(
            s,
            "**Validation errors** (the dispatcher would refuse the merge's inputs):\n"
        );
        for d in c.errors.iter().take(50) {
            let _ = writeln!(s, "- `{}` `{}`: {}", d.file, d.key, d.message);
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "{} existing jobs would move ({:.1} demand, {} of the placed demand).\n",
        i.moved_jobs,
        i.moved_demand,
        pct(i.moved_share)
    );
    if !i.moves.is_empty() {
        let _ = writeln!(s, "| from | to | jobs | demand |");
        let _ = writeln!(s, "|---|---|---:|---:|");
        for m in &i.moves {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} |",
                m.from,
                m.to.as_deref().unwrap_or("(none)"),
                m.jobs,
                m.demand
            );
        }
        let _ = writeln!(s);
    }
    let target = |p: &Plan, n: &str| p.clusters.get(n).and_then(|c| c.target_share);
    let _ = writeln!(
        s,
        "| cluster | target before | achieved before | target after | achieved after |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for (name, share) in &i.shares {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} |",
            target(c.before, name).map_or("-".to_owned(), pct),
            pct(share.before),
            target(c.after, name).map_or("-".to_owned(), pct),
            pct(share.after)
        );
    }
    let rows: Vec<(&String, f64, f64)> = i
        .shares
        .iter()
        .map(|(n, sh)| {
            (
                n,
                sh.after * 100.0,
                target(c.after, n).unwrap_or(0.0) * 100.0,
            )
        })
        .collect();
    let _ = writeln!(s);
    s.push_str(&shares_chart(
        "Share of placed demand after the change (%): achieved (bars), target (line)",
        &rows,
    ));
    if !i.unschedulable.is_empty() {
        let _ = writeln!(s, "\n**Jobs that would become unschedulable:**\n");
        for u in i.unschedulable.iter().take(50) {
            let _ = writeln!(s, "- `{}` (`{}`): {}", u.job, u.file, u.reason);
        }
        if i.unschedulable.len() > 50 {
            let _ = writeln!(s, "- and {} more", i.unschedulable.len() - 50);
        }
    }
    if let Some(n) = c.static_lines {
        let _ = writeln!(
            s,
            "\nThe backup PR would change {n} static `cluster:` lines."
        );
    }
    s
}
