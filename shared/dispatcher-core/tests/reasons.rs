//! Why a job has no cluster is data; its text is what plans and diagnostics have always
//! said, to the byte. Each case writes the expected text out in full.

mod common;

use common::*;
use dispatcher_core::model::{Inventory, labels};
use dispatcher_core::rules::{
    CapabilityShortfall, Decision, LadderError, LadderReason, Rule, Rules, TargetError,
    resolve_target,
};
use dispatcher_core::{Settings, Severity};

const P: &str = "ci-operator/jobs/o/r/o-r-main-presubmits.yaml";

fn blocked(mut c: dispatcher_core::model::Cluster) -> dispatcher_core::model::Cluster {
    c.blocked = true;
    c
}

fn decide(w: &World, job: &dispatcher_core::model::Job) -> Result<Decision, LadderError> {
    let rules =
        Rules::compile(&w.config, &w.inventory, "vsphere02", "_config.yaml").expect("compiles");
    rules.decide(job, P, None)
}

fn gpu_job() -> dispatcher_core::model::Job {
    label(job("needs-gpu"), "capability/gpu", "gpu")
}

#[test]
fn capabilities_only_on_blocked_clusters() {
    let w = World::new(
        "build02",
        vec![
            blocked(caps(cluster("build01", "aws", 100), &["gpu"])),
            cluster("build02", "aws", 100),
        ],
    );
    let e = decide(&w, &gpu_job()).unwrap_err();
    assert_eq!(e.rule, Rule::Capability);
    assert!(matches!(
        &e.reason,
        LadderReason::MissingCapabilities {
            shortfall: CapabilityShortfall::OnlyOnBlocked(c),
            ..
        } if c == &["build01"]
    ));
    assert_eq!(
        e.to_string(),
        "no usable cluster has capabilities [gpu] (only on blocked build01)"
    );
}

#[test]
fn capabilities_each_usable_cluster_lacks() {
    let w = World::new(
        "build02",
        vec![
            caps(cluster("build01", "aws", 100), &["arm64"]),
            cluster("build02", "aws", 100),
        ],
    );
    let j = label(gpu_job(), "capability/arm64", "arm64");
    assert_eq!(
        decide(&w, &j).unwrap_err().to_string(),
        "no usable cluster has capabilities [arm64, gpu] (build01: missing [gpu]; build02: missing [arm64, gpu])"
    );
}

#[test]
fn capabilities_without_any_usable_cluster() {
    let w = World::new("build01", vec![blocked(cluster("build01", "aws", 100))]);
    assert_eq!(
        decide(&w, &gpu_job()).unwrap_err().to_string(),
        "no usable cluster has capabilities [gpu] (no usable cluster in the inventory)"
    );
}

#[test]
fn every_candidate_cordoned() {
    let mut w = World::new(
        "build03",
        vec![
            cluster("build01", "aws", 100),
            cluster("build02", "aws", 100),
            cluster("build03", "aws", 100),
        ],
    );
    w.cluster_mut("build01").cordoned = true;
    w.cluster_mut("build02").cordoned = true;
    w.config.kvm = vec!["build02".into(), "build01".into()];
    let e = decide(&w, &label(job("virt"), labels::KVM, "1")).unwrap_err();
    assert_eq!(e.rule, Rule::Kvm);
    assert_eq!(
        e.to_string(),
        "label devices.kubevirt.io/kvm: every candidate is cordoned (build02, build01)"
    );
}

#[test]
fn a_file_claimed_by_several_entries() {
    let mut w = World::new("build01", vec![cluster("build01", "aws", 100)]);
    w.config.groups.insert("build02".into(), Default::default());
    w.config.groups.get_mut("build02").unwrap().paths =
        vec![r#"main-presubmits\.yaml$|"x""#.into()];
    w.config.groups.insert("build01".into(), Default::default());
    w.config.groups.get_mut("build01").unwrap().paths = vec![".*presubmits.yaml$".into()];
    w.config.build_farm.insert("aws".into(), Default::default());
    w.config
        .build_farm
        .get_mut("aws")
        .unwrap()
        .insert("build01".into(), vec!["o-r-main-presubmits.yaml".into()]);
    let e = decide(&w, &job("plain")).unwrap_err();
    assert_eq!(e.rule, Rule::GroupPath);
    assert_eq!(
        e.to_string(),
        r#"path ci-operator/jobs/o/r/o-r-main-presubmits.yaml matches more than one entry: buildFarm.aws.build01, groups.build01.paths ".*presubmits.yaml$", groups.build02.paths "main-presubmits\\.yaml$|\"x\"""#
    );
    // The file is reported once, by the file check, with the same list.
    w.files = vec![file(P, vec![job("plain")])];
    let diags = dispatcher_core::validate(&w.inputs(None), &Settings::default());
    let found: Vec<&str> = diags
        .iter()
        .filter(|d| d.file == P)
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        found,
        [
            r#"file matches more than one entry: buildFarm.aws.build01, groups.build01.paths ".*presubmits.yaml$", groups.build02.paths "main-presubmits\\.yaml$|\"x\""; its relocatable jobs are unschedulable"#
        ]
    );
}

#[test]
fn target_and_default_blocked() {
    let mut inv = Inventory::default();
    for c in [
        cluster("build01", "aws", 100),
        blocked(cluster("build02", "aws", 100)),
        blocked(cluster("build03", "aws", 100)),
    ] {
        inv.clusters.insert(c.name.clone(), c);
    }
    let decision = Decision {
        cluster: Some("build01".into()),
        relocatable: true,
        rule: Rule::Default,
        detail: String::new(),
        set: std::sync::Arc::from(Vec::<String>::new()),
    };
    let e = resolve_target(&inv, "build02", "job", Some("build03"), &decision).unwrap_err();
    assert_eq!(
        e,
        TargetError::TargetAndDefaultBlocked {
            target: "build03".into(),
            default: "build02".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "target build03 is blocked and the default cluster build02 is blocked too"
    );
}

#[test]
fn no_cluster_accepts_new_files() {
    let mut w = World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            cluster("build02", "aws", 100),
            blocked(cluster("build03", "aws", 100)),
        ],
    );
    w.cluster_mut("build01").reserved = true;
    w.cluster_mut("build02").cordoned = true;
    w.files = vec![file(P, vec![job("plain")])];
    let plan = w.plan(&Settings::default(), None);
    let reason =
        "no cluster accepts new files (build01 reserved, build02 cordoned, build03 blocked)";
    assert_eq!(plan.unschedulable.len(), 1);
    assert_eq!(plan.unschedulable[0].reason, reason);
    assert_eq!(plan.jobs["plain"].detail, reason);
    let summary: Vec<_> = plan
        .diagnostics
        .iter()
        .filter(|d| d.file == "plan")
        .map(|d| (d.severity, d.key.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        summary,
        [(
            Severity::Error,
            "unschedulable (1 job(s), e.g. plain)",
            reason
        )]
    );
}

#[test]
fn a_pattern_go_refuses() {
    let mut w = World::new("build01", vec![cluster("build01", "aws", 100)]);
    w.config.groups.insert("build01".into(), Default::default());
    w.config.groups.get_mut("build01").unwrap().paths = vec!["a**".into()];
    let errors = Rules::compile(&w.config, &w.inventory, "vsphere02", "_config.yaml").unwrap_err();
    let re2 = dispatcher_core::re2::go_regex("a**").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "groups.build01.paths[0]");
    assert_eq!(
        errors[0].message,
        format!("regex \"a**\" does not compile: Go's regexp (RE2) refuses it: {re2}")
    );
}
