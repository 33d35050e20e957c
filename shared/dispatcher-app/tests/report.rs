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
