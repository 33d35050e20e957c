//! Overrides: what a drain or a capacity change moves, and what it refuses.

mod common;

use common::*;
use dispatcher_core::model::Cluster;
use dispatcher_core::overrides::{self, OverrideError, OverrideKind, OverrideSpec};
use dispatcher_core::{Plan, Settings, StoredInputs};

fn world() -> World {
    let mut files = Vec::new();
    for i in 0..24 {
        let name = format!("job-{i:02}");
        files.push(file(&format!("org/repo{i:02}/f.yaml"), vec![job(&name)]));
    }
    files.push(file(
        "org/arm/f.yaml",
        vec![label(job("arm-job"), "capability/arm64", "arm64")],
    ));
    let mut w = World::new(
        "a",
        vec![
            cluster("a", "aws", 50),
            caps(cluster("b", "aws", 50), &["arm64"]),
            caps(cluster("c", "aws", 50), &["arm64"]),
        ],
    )
    .with_files(files);
    for i in 0..24 {
        w = w.volume(&format!("job-{i:02}"), 10.0 + f64::from(i));
    }
    w
}

fn stored(w: &World) -> StoredInputs {
    StoredInputs {
        config: w.config.clone(),
        inventory: w.inventory.clone(),
        files: w.files.clone(),
        volumes: Some(w.volumes.clone()),
        digests: Default::default(),
        sources: Default::default(),
        diagnostics: vec![],
    }
}

fn spec(kind: OverrideKind, cluster: &str) -> OverrideSpec {
    OverrideSpec {
        id: format!("o-{cluster}"),
        kind,
        cluster: cluster.to_owned(),
        capability: None,
        capacity: None,
        expires_at: 3_600,
    }
}

fn with(w: &World, baseline: &Plan, specs: &[OverrideSpec]) -> Plan {
    overrides::plan(&stored(w), baseline, &Settings::default(), specs).expect("plan")
}

#[test]
fn a_drain_moves_the_drained_clusters_jobs_and_nothing_else() {
    let w = world();
    let baseline = w.plan(&Settings::default(), None);
    let on_b: Vec<&String> = baseline
        .jobs
        .iter()
        .filter(|(_, e)| e.cluster.as_deref() == Some("b"))
        .map(|(n, _)| n)
        .collect();
    assert!(!on_b.is_empty(), "the world must put jobs on b");
    let drained = with(&w, &baseline, &[spec(OverrideKind::Drain, "b")]);
    for (name, entry) in &baseline.jobs {
        let after = drained.jobs[name].cluster.as_deref();
        if entry.cluster.as_deref() == Some("b") {
            assert!(after.is_some_and(|c| c != "b"), "{name} must leave b");
        } else {
            assert_eq!(after, entry.cluster.as_deref(), "{name} must stay");
        }
    }
    let impact = overrides::impact(&baseline, &drained, &w.files);
    assert_eq!(impact.moved_jobs, on_b.len());
    assert!(impact.moves.iter().all(|m| m.from == "b"));
    assert_eq!(impact.shares["b"].after, 0.0);
    assert!(impact.shares["b"].before > 0.0);
    assert!(impact.unschedulable.is_empty());
    assert!(
        drained
            .diagnostics
            .iter()
            .any(|d| d.file == overrides::OVERRIDES_FILE && d.key == "o-b"),
        "the plan says which override it applied"
    );
}

#[test]
fn a_capability_drain_moves_only_the_jobs_that_need_it() {
    let w = world();
    let baseline = w.plan(&Settings::default(), None);
    let arm_on = baseline.jobs["arm-job"]
        .cluster
        .clone()
        .expect("arm placed");
    let mut o = spec(OverrideKind::Drain, &arm_on);
    o.capability = Some("arm64".to_owned());
    let drained = with(&w, &baseline, &[o]);
    let arm_after = drained.jobs["arm-job"].cluster.clone();
    assert!(arm_after.is_some() && arm_after != Some(arm_on.clone()));
    let impact = overrides::impact(&baseline, &drained, &w.files);
    assert_eq!(impact.moved_jobs, 1, "{:?}", impact.moves);
}

#[test]
fn draining_the_last_cluster_of_a_capability_leaves_jobs_unschedulable() {
    let mut w = world();
    w.cluster_mut("c").capabilities.clear();
    let baseline = w.plan(&Settings::default(), None);
    assert_eq!(baseline.jobs["arm-job"].cluster.as_deref(), Some("b"));
    let drained = with(&w, &baseline, &[spec(OverrideKind::Drain, "b")]);
    let impact = overrides::impact(&baseline, &drained, &w.files);
    assert_eq!(
        impact
            .unschedulable
            .iter()
            .map(|u| u.job.as_str())
            .collect::<Vec<_>>(),
        ["arm-job"]
    );
}

#[test]
fn a_lower_capacity_lowers_the_clusters_share() {
    let w = world();
    let baseline = w.plan(&Settings::default(), None);
    let mut o = spec(OverrideKind::Capacity, "a");
    o.capacity = Some(10);
    let lowered = with(&w, &baseline, &[o]);
    let impact = overrides::impact(&baseline, &lowered, &w.files);
    assert!(impact.moved_jobs > 0);
    assert!(
        impact.shares["a"].after < impact.shares["a"].before,
        "{impact:?}"
    );
    assert!(
        impact.moves.iter().all(|m| m.from == "a"),
        "{:?}",
        impact.moves
    );
}

#[test]
fn moved_jobs_whose_static_cluster_names_the_drained_one_are_unprotected() {
    let mut w = world();
    let baseline = w.plan(&Settings::default(), None);
    let on_b: Vec<String> = baseline
        .jobs
        .iter()
        .filter(|(_, e)| e.cluster.as_deref() == Some("b"))
        .map(|(n, _)| n.clone())
        .collect();
    for f in &mut w.files {
        for j in &mut f.jobs {
            if j.name == on_b[0] {
                j.cluster = Some("b".to_owned());
            }
        }
    }
    let drained = with(&w, &baseline, &[spec(OverrideKind::Drain, "b")]);
    assert_eq!(
        overrides::impact(&baseline, &drained, &w.files).unprotected_jobs,
        1
    );
}

#[test]
fn the_same_inputs_give_the_same_plan() {
    let w = world();
    let baseline = w.plan(&Settings::default(), None);
    let o = [spec(OverrideKind::Drain, "a")];
    assert_eq!(
        with(&w, &baseline, &o).to_json(),
        with(&w, &baseline, &o).to_json()
    );
}

#[test]
fn overrides_that_do_not_fit_the_inventory_are_refused() {
    let w = world();
    let inv = &w.inventory;
    let refused = |o: OverrideSpec| overrides::apply(inv, &[o]).unwrap_err();
    assert!(matches!(
        refused(spec(OverrideKind::Drain, "nope")),
        OverrideError::UnknownCluster(_)
    ));
    let mut o = spec(OverrideKind::Drain, "a");
    o.capability = Some("gpu".to_owned());
    assert!(matches!(
        refused(o),
        OverrideError::UnknownCapability { .. }
    ));
    for capacity in [None, Some(0), Some(101)] {
        let mut o = spec(OverrideKind::Capacity, "a");
        o.capacity = capacity;
        assert!(matches!(refused(o), OverrideError::Capacity(_)));
    }
    let mut blocked = w.clone();
    blocked.inventory.clusters.insert("z".into(), {
        let mut c = Cluster::new("z", "aws", 10);
        c.blocked = true;
        c
    });
    assert!(matches!(
        overrides::apply(&blocked.inventory, &[spec(OverrideKind::Drain, "z")]),
        Err(OverrideError::Blocked(_))
    ));
    let mut second = spec(OverrideKind::Capacity, "a");
    second.id = "o-a2".into();
    second.capacity = Some(5);
    assert!(matches!(
        overrides::apply(inv, &[spec(OverrideKind::Drain, "a"), second]),
        Err(OverrideError::Overlap { .. })
    ));
}

#[test]
fn in_force_drops_the_ended_and_splits_off_what_the_inventory_supersedes() {
    let w = world();
    let mut ended = spec(OverrideKind::Drain, "a");
    ended.expires_at = 100;
    let mut gone = spec(OverrideKind::Drain, "gone");
    gone.expires_at = 500;
    let kept = spec(OverrideKind::Drain, "b");
    let (live, superseded) =
        overrides::in_force(&[ended, gone.clone(), kept.clone()], &w.inventory, 100);
    assert_eq!(live, [kept]);
    assert_eq!(superseded, [gone]);
}
