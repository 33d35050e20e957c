//! The run summary (markdown and SVG) of plans the store contract builds.

use dispatcher_core::report::markdown;

#[test]
fn the_summary_lists_moved_files_heaviest_first_and_unschedulable_jobs() {
    let mut plan = dispatcher_app::contract::plan_of(&[("a", "build01"), ("b", "build02")]);
    let path = plan.files.keys().next().cloned().unwrap_or_default();
    let mut light = plan.files[&path].clone();
    light.previous = Some("build03".to_owned());
    light.cluster = Some("build01".to_owned());
    light.movable_demand = 1.0;
    let mut heavy = light.clone();
    heavy.movable_demand = 9.0;
    let mut stayed = light.clone();
    stayed.previous = stayed.cluster.clone();
    // Named so that the name order is the reverse of the demand order: only the sort by
    // demand puts heavy first.
    plan.files.insert("a-light.yaml".to_owned(), light);
    plan.files.insert("z-heavy.yaml".to_owned(), heavy);
    plan.files.insert("stayed.yaml".to_owned(), stayed);
    plan.unschedulable
        .push(dispatcher_core::plan::Unschedulable {
            job: "gpu-job".to_owned(),
            file: "gpu.yaml".to_owned(),
            reason: "no usable cluster has capabilities [gpu]".to_owned(),
            kept: Some("build02".to_owned()),
        });
    let md = markdown(&plan);
    let heavy_at = md
        .find("`z-heavy.yaml` | build03 | build01")
        .expect("heavy listed");
    let light_at = md
        .find("`a-light.yaml` | build03 | build01")
        .expect("light listed");
    assert!(heavy_at < light_at, "{md}");
    assert!(!md.contains("stayed.yaml"), "{md}");
    assert!(
        md.contains(
            "`gpu-job` (gpu.yaml): no usable cluster has capabilities [gpu]; keeps build02"
        ),
        "{md}"
    );
    // The row of the per-cluster table, not the moved-file rows that also name build01.
    for c in ["build01", "build02", "build03"] {
        assert!(
            md.contains(&format!("\n| {c} | active | ")),
            "{c}'s row: {md}"
        );
    }
}

/// Every text of the chart fits inside it, however long the cluster names are.
#[test]
fn every_label_of_the_chart_fits_inside_it() {
    use dispatcher_core::report::{svg, text_width};
    let mut plan = dispatcher_app::contract::plan_of(&[("a", "build01"), ("b", "build02")]);
    let long = "a-build-cluster-with-a-very-long-name-in-some-region-42".to_owned();
    let mut entry = plan.clusters["build01"].clone();
    entry.share = 0.987654;
    entry.target_share = Some(0.123456);
    plan.clusters.insert(long.clone(), entry);
    let chart = svg(&plan);
    let width: f64 = chart
        .split("width=\"")
        .nth(1)
        .and_then(|w| w.split('"').next())
        .and_then(|w| w.parse().ok())
        .expect("the chart's width");
    let texts = regex_texts(&chart);
    assert!(texts.iter().any(|(_, t)| t == &long), "{chart}");
    for (x, text) in texts {
        assert!(
            x + text_width(&text) <= width,
            "{text:?} at {x} runs past {width}: {chart}"
        );
    }
}

/// `(x, text)` of every `<text>` element.
fn regex_texts(svg: &str) -> Vec<(f64, String)> {
    svg.split("<text x=\"")
        .skip(1)
        .map(|rest| {
            let x: f64 = rest.split('"').next().unwrap_or("0").parse().unwrap_or(0.0);
            let text = rest
                .split_once('>')
                .and_then(|(_, t)| t.split_once("</text>"))
                .map(|(t, _)| t.to_owned())
                .unwrap_or_default();
            (x, text)
        })
        .collect()
}

/// The backup PR's body carries the chart as Mermaid, which GitHub renders.
#[test]
fn the_summary_carries_a_mermaid_chart_of_achieved_and_target_shares() {
    let mut plan = dispatcher_app::contract::plan_of(&[("a", "build01"), ("b", "build02")]);
    plan.clusters.get_mut("build01").expect("build01").share = 0.25;
    plan.clusters
        .get_mut("build01")
        .expect("build01")
        .target_share = Some(0.5);
    let md = markdown(&plan);
    let chart = md
        .split("```mermaid\n")
        .nth(1)
        .and_then(|c| c.split("```").next())
        .expect("a mermaid block");
    assert!(chart.starts_with("xychart-beta\n"), "{chart}");
    assert!(chart.contains("x-axis [\"build01\""), "{chart}");
    assert!(chart.contains("bar [25.00"), "{chart}");
    assert!(chart.contains("line [50.00"), "{chart}");
}

#[test]
fn a_change_is_blamed_only_for_the_errors_it_adds() {
    use dispatcher_core::{Diagnostic, Severity};
    let old_error = Diagnostic::new(Severity::Error, "_config.yaml", "groups.a", "known");
    let new_error = Diagnostic::new(Severity::Error, "_config.yaml", "groups.b", "added");
    let warning = Diagnostic::new(Severity::Warning, "_config.yaml", "groups.c", "a warning");
    let mut before = dispatcher_app::contract::plan_of(&[("a", "build01")]);
    before.diagnostics = vec![old_error.clone()];
    let mut after = before.clone();
    after.diagnostics = vec![old_error, new_error.clone(), warning];
    assert_eq!(
        dispatcher_core::report::new_errors(&before, &after),
        [new_error]
    );
    assert!(dispatcher_core::report::new_errors(&after, &after).is_empty());
}
