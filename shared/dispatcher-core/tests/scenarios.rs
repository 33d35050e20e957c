//! Named scenarios: one behaviour each, on a small world.

mod common;

use common::*;
use dispatcher_core::model::JobFile;
use dispatcher_core::model::labels;
use dispatcher_core::plan::{ClusterState, FileReason};
use dispatcher_core::rules::Rule;
use dispatcher_core::{Mode, Plan, Settings, Severity, Strategy};

fn resolve() -> Settings {
    Settings {
        strategy: Strategy::Resolve,
        ..Settings::default()
    }
}

fn two_clouds() -> World {
    World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            cluster("build03", "aws", 100),
            cluster("build02", "gcp", 100),
        ],
    )
}

const P: &str = "ci-operator/jobs/o/r/o-r-main-presubmits.yaml";

#[test]
fn the_ladder_takes_the_first_matching_rule() {
    let mut w = World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            caps(cluster("build02", "gcp", 100), &["arm64"]),
            cluster("build03", "aws", 100),
        ],
    );
    w.config.ssh_bastion = Some("build03".into());
    w.config.kvm = vec!["build02".into()];
    w.config.no_builds = vec!["build03".into()];
    w.config.groups.insert("app.ci".into(), Default::default());
    w.config.groups.get_mut("app.ci").unwrap().jobs = vec!["grouped".into()];
    w.config.manual_clusters = vec!["app.ci".into()];
    let mut jenkins = job("legacy");
    jenkins.agent = "jenkins".into();
    let mut manual = job("manual");
    manual.cluster = Some("app.ci".into());
    let mut applyconfig = job("periodic-vsphere-apply");
    applyconfig.containers[0].image = "registry/applyconfig:latest".into();
    w.files = vec![file(
        P,
        vec![
            jenkins,
            manual,
            label(job("e2e-vsphere"), labels::SSH_BASTION, "x"),
            label(job("bastion"), labels::SSH_BASTION, ""),
            label(
                label(job("pinned"), labels::CLUSTER, "build03"),
                labels::KVM,
                "1",
            ),
            label(job("arm"), "capability/arm64", "arm64"),
            label(job("virt"), labels::KVM, "1"),
            label(job("nobuild"), labels::NO_BUILDS, "true"),
            job("grouped"),
            job("plain"),
            applyconfig,
        ],
    )];
    let plan = w.plan(&resolve(), None);
    let rule = |j: &str| plan.jobs[j].rule;
    assert_eq!(rule("legacy"), Rule::NoClusterAgent);
    assert_eq!(cluster_of(&plan, "legacy"), None);
    // The sanitizer keeps a usable static cluster before any rule (ci-tools cddfe66ae);
    // balancing reads the ladder's manual-cluster rule instead.
    assert_eq!(
        (rule("manual"), cluster_of(&plan, "manual")),
        (Rule::StaticCluster, Some("app.ci"))
    );
    let balanced = w.plan(&Settings::default(), None);
    assert_eq!(
        (
            balanced.jobs["manual"].rule,
            cluster_of(&balanced, "manual")
        ),
        (Rule::ManualCluster, Some("app.ci"))
    );
    assert_eq!(
        (rule("e2e-vsphere"), cluster_of(&plan, "e2e-vsphere")),
        (Rule::Vsphere, Some("vsphere02"))
    );
    assert_eq!(
        (rule("bastion"), cluster_of(&plan, "bastion")),
        (Rule::SshBastion, Some("build03"))
    );
    assert_eq!(
        (rule("pinned"), cluster_of(&plan, "pinned")),
        (Rule::LabelPin, Some("build03"))
    );
    assert_eq!(
        (rule("arm"), cluster_of(&plan, "arm")),
        (Rule::Capability, Some("build02"))
    );
    assert_eq!(
        (rule("virt"), cluster_of(&plan, "virt")),
        (Rule::Kvm, Some("build02"))
    );
    assert_eq!(
        (rule("nobuild"), cluster_of(&plan, "nobuild")),
        (Rule::NoBuilds, Some("build03"))
    );
    assert_eq!(
        (rule("grouped"), cluster_of(&plan, "grouped")),
        (Rule::GroupName, Some("app.ci"))
    );
    assert_eq!(
        (rule("plain"), cluster_of(&plan, "plain")),
        (Rule::Default, Some("build01"))
    );
    // applyconfig jobs are exempt from the vsphere name rule.
    assert_eq!(rule("periodic-vsphere-apply"), Rule::Default);
}

#[test]
fn vsphere_elastic_poc_jobs_stay_relocatable() {
    let mut w = two_clouds();
    w.config.groups.insert("build03".into(), Default::default());
    w.config.groups.get_mut("build03").unwrap().jobs = vec!["e2e-vsphere-poc".into()];
    w.files = vec![file(
        P,
        vec![label(
            job("e2e-vsphere-poc"),
            labels::CLOUD_CLUSTER_PROFILE,
            labels::VSPHERE_ELASTIC_POC,
        )],
    )];
    let plan = w.plan(&resolve(), None);
    assert_eq!(plan.jobs["e2e-vsphere-poc"].rule, Rule::GroupName);
    assert_eq!(cluster_of(&plan, "e2e-vsphere-poc"), Some("build03"));
}

#[test]
fn group_paths_match_the_repo_relative_path_unanchored() {
    let mut w = two_clouds();
    w.config.groups.insert("build03".into(), Default::default());
    w.config.groups.get_mut("build03").unwrap().paths = vec!["[^-]infra-periodics.yaml".into()];
    w.files = vec![
        file("ci-operator/jobs/infra-periodics.yaml", vec![job("a")]),
        file(
            "ci-operator/jobs/openshift/release/openshift-release-infra-periodics.yaml",
            vec![job("b")],
        ),
    ];
    let plan = w.plan(&resolve(), None);
    assert_eq!(
        (plan.jobs["a"].rule, cluster_of(&plan, "a")),
        (Rule::GroupPath, Some("build03"))
    );
    assert_eq!(plan.jobs["b"].rule, Rule::Default);
    assert!(plan.files["ci-operator/jobs/infra-periodics.yaml"].group_path);
}

#[test]
fn a_file_claimed_by_a_group_path_and_build_farm_is_reported_and_not_placed() {
    let mut w = two_clouds();
    w.config.groups.insert("build03".into(), Default::default());
    w.config.groups.get_mut("build03").unwrap().paths = vec!["infra-periodics".into()];
    w.config.build_farm.insert(
        "aws".into(),
        [(
            "build01".to_owned(),
            vec!["infra-periodics.yaml".to_owned()],
        )]
        .into(),
    );
    w.files = vec![file(
        "ci-operator/jobs/infra-periodics.yaml",
        vec![job("a")],
    )];
    let want = r#"buildFarm.aws.build01, groups.build03.paths "infra-periodics""#;
    let plan = w.plan(&Settings::default(), None);
    assert_eq!(plan.jobs["a"].rule, Rule::Unschedulable);
    assert!(
        plan.unschedulable[0].reason.contains(want),
        "{:?}",
        plan.unschedulable
    );
    // Validation names the same entries, on the file.
    let d = dispatcher_core::validate(&w.inputs(None), &Settings::default())
        .into_iter()
        .find(|d| d.file == "ci-operator/jobs/infra-periodics.yaml")
        .expect("a diagnostic on the file");
    assert_eq!(d.severity, Severity::Error);
    assert!(d.message.contains(want), "{}", d.message);
}

#[test]
fn capability_jobs_prefer_their_cloud_and_pick_by_file_name_length() {
    let mut w = World::new(
        "build01",
        vec![
            caps(cluster("build01", "aws", 100), &["arm64"]),
            caps(cluster("build05", "aws", 100), &["arm64"]),
            caps(cluster("build02", "gcp", 100), &["arm64"]),
        ],
    );
    w.config.determine_e2e_by_job = true;
    let path = "ci-operator/jobs/o/r/ab.yaml"; // basename length 7
    w.files = vec![file(
        path,
        vec![
            label(job("any"), "capability/arm64", "arm64"),
            label(
                label(job("on-aws"), "capability/arm64", "arm64"),
                labels::CLOUD,
                "aws",
            ),
        ],
    )];
    let plan = w.plan(&resolve(), None);
    // sorted [build01, build02, build05][7 % 3 = 1]
    assert_eq!(cluster_of(&plan, "any"), Some("build02"));
    // sorted aws [build01, build05][7 % 2 = 1]
    assert_eq!(cluster_of(&plan, "on-aws"), Some("build05"));
}

#[test]
fn a_job_no_cluster_can_take_is_listed_and_keeps_its_previous_cluster() {
    let mut w = World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            caps(cluster("build05", "aws", 100), &["gpu"]),
        ],
    );
    w.files = vec![file(
        P,
        vec![label(job("gpu-job"), "capability/gpu", "gpu"), job("plain")],
    )];
    let first = w.plan(&Settings::default(), None);
    assert_eq!(cluster_of(&first, "gpu-job"), Some("build05"));

    w.cluster_mut("build05").blocked = true;
    let second = w.plan(&Settings::default(), Some(&first));
    assert_eq!(second.unschedulable.len(), 1);
    let u = &second.unschedulable[0];
    assert_eq!(u.job, "gpu-job");
    assert!(
        u.reason.contains("gpu") && u.reason.contains("blocked build05"),
        "{}",
        u.reason
    );
    assert_eq!(u.kept.as_deref(), Some("build05"));
    assert_eq!(second.jobs["gpu-job"].rule, Rule::Unschedulable);
    // The rest of the run proceeds (F7).
    assert_eq!(cluster_of(&second, "plain"), Some("build01"));
    // Without a previous cluster there is no answer: lookup 404s and Prow uses the static field.
    let fresh = w.plan(&Settings::default(), None);
    assert_eq!(cluster_of(&fresh, "gpu-job"), None);
}

#[test]
fn pinned_jobs_on_a_blocked_cluster_follow_their_file_except_cluster_upgrades() {
    let mut w = two_clouds();
    w.cluster_mut("build03").blocked = true;
    w.files = vec![file(
        P,
        vec![
            job("relocatable"),
            label(job("pinned"), labels::CLUSTER, "build03"),
            label(job("periodic-build03-upgrade"), labels::CLUSTER, "build03"),
        ],
    )];
    let plan = w.plan(&Settings::default(), None);
    let c = cluster_of(&plan, "relocatable").unwrap();
    assert_ne!(c, "build03");
    assert_eq!(cluster_of(&plan, "pinned"), Some(c));
    assert!(plan.jobs["pinned"].detail.contains("blocked"));
    assert_eq!(
        cluster_of(&plan, "periodic-build03-upgrade"),
        Some("build03")
    );
}

#[test]
fn a_blocked_default_is_reported_and_its_jobs_are_unschedulable_in_resolve() {
    let mut w = two_clouds();
    w.cluster_mut("build01").blocked = true;
    w.files = vec![file(P, vec![job("plain")])];
    let diags = dispatcher_core::validate(&w.inputs(None), &Settings::default());
    assert!(
        diags
            .iter()
            .any(|d| d.key == "default" && d.severity == Severity::Error)
    );
    let plan = w.plan(&resolve(), None);
    assert_eq!(plan.unschedulable.len(), 1);
    assert!(
        plan.unschedulable[0]
            .reason
            .contains("default cluster build01 is blocked")
    );
}

#[test]
fn balancing_is_capacity_weighted_and_respects_cloud() {
    let mut w = World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            cluster("build05", "aws", 50),
            cluster("build02", "gcp", 100),
        ],
    );
    let mut files = Vec::new();
    for i in 0..60 {
        let name = format!("j{i:02}");
        let j = if i % 3 == 0 {
            label(job(&name), labels::CLOUD, "gcp")
        } else {
            job(&name)
        };
        files.push(file(
            &format!("ci-operator/jobs/o/r{i:02}/f{i:02}.yaml"),
            vec![j],
        ));
        w = w.volume(&name, 10.0);
    }
    w.files = files;
    let plan = w.plan(&Settings::default(), None);
    let d = |c: &str| plan.clusters[c].demand;
    assert_eq!(d("build01") + d("build05") + d("build02"), 600.0);
    assert_eq!(d("build01"), 240.0);
    assert_eq!(d("build05"), 120.0);
    assert_eq!(d("build02"), 240.0);
    for i in (0..60).step_by(3) {
        assert_eq!(cluster_of(&plan, &format!("j{i:02}")), Some("build02"));
    }
    let f = &plan.files["ci-operator/jobs/o/r00/f00.yaml"];
    assert!(
        f.candidates
            .iter()
            .any(|c| c.cluster == "build01"
                && c.rejected.iter().any(|r| r.contains("cloud-mismatch")))
    );
    assert!(plan.summary.max_deviation < 1e-9);
}

#[test]
fn reserved_clusters_only_take_jobs_that_need_them_and_cordoned_keep_what_they_have() {
    let mut w = World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            cluster("build03", "aws", 100),
            caps(cluster("build09", "aws", 100), &["gpu"]),
        ],
    );
    w.cluster_mut("build09").reserved = true;
    let mut files = vec![file(
        "ci-operator/jobs/o/g/gpu.yaml",
        vec![label(job("gpu"), "capability/gpu", "gpu")],
    )];
    for i in 0..10 {
        files.push(file(
            &format!("ci-operator/jobs/o/r/f{i}.yaml"),
            vec![job(&format!("j{i}"))],
        ));
    }
    w.files = files;
    let first = w.plan(&Settings::default(), None);
    assert_eq!(cluster_of(&first, "gpu"), Some("build09"));
    assert_eq!(first.clusters["build09"].jobs, 1);
    assert_eq!(first.clusters["build09"].state, ClusterState::Reserved);

    // Cordon build03: its files stay, new files go elsewhere.
    w.cluster_mut("build03").cordoned = true;
    w.files
        .push(file("ci-operator/jobs/o/r/new.yaml", vec![job("new")]));
    let second = w.plan(&Settings::default(), Some(&first));
    for i in 0..10 {
        let j = format!("j{i}");
        if cluster_of(&first, &j) == Some("build03") {
            assert_eq!(
                cluster_of(&second, &j),
                Some("build03"),
                "{j} keeps its cordoned cluster"
            );
        }
    }
    assert_eq!(cluster_of(&second, "new"), Some("build01"));
    assert_eq!(second.clusters["build03"].state, ClusterState::Cordoned);
}

fn churn_world() -> World {
    let mut w = World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            cluster("build03", "aws", 100),
        ],
    );
    for i in 0..40 {
        let name = format!("j{i:02}");
        w.files.push(file(
            &format!("ci-operator/jobs/o/r/f{i:02}.yaml"),
            vec![job(&name)],
        ));
        w = w.volume(&name, 10.0);
    }
    w
}

#[test]
fn hysteresis_keeps_files_when_the_gain_is_small() {
    let w = churn_world();
    let first = w.plan(&Settings::default(), None);
    // Shift 6% of the load: within the 10% hysteresis.
    let mut w2 = w.clone();
    for (name, v) in w2.volumes.runs.iter_mut() {
        if cluster_of(&first, name) == Some("build01") {
            *v = 10.6;
        }
    }
    let second = w2.plan(&Settings::default(), Some(&first));
    assert_eq!(second.summary.moved_jobs, 0);
    assert!(
        second
            .files
            .values()
            .any(|f| f.reason == FileReason::Hysteresis)
    );
}

#[test]
fn the_budget_binds_and_a_second_run_continues_the_rebalance() {
    let mut w = churn_world();
    let first = w.plan(&Settings::default(), None);
    // A new, empty cluster: everything would like to move.
    w.inventory
        .clusters
        .insert("build05".into(), cluster("build05", "aws", 100));
    let second = w.plan(&Settings::default(), Some(&first));
    let budget = second.summary.budget_demand.unwrap();
    assert_eq!(budget, 40.0);
    assert!(
        second.summary.moved_demand <= budget + 1e-9,
        "{:?}",
        second.summary
    );
    assert!(second.summary.moved_demand > 0.0);
    assert_eq!(second.summary.forced_moved_jobs, 0);
    assert!(
        second
            .files
            .values()
            .any(|f| f.reason == FileReason::BudgetExhausted)
    );
    let third = w.plan(&Settings::default(), Some(&second));
    assert!(third.clusters["build05"].demand > second.clusters["build05"].demand);
    assert!(third.summary.max_deviation < second.summary.max_deviation);
}

#[test]
fn forced_moves_are_exempt_from_the_budget() {
    let mut w = churn_world();
    let first = w.plan(&Settings::default(), None);
    w.cluster_mut("build03").blocked = true;
    let second = w.plan(&Settings::default(), Some(&first));
    let on_build03 = first.clusters["build03"].demand;
    assert!(on_build03 > 40.0, "more than the budget must move");
    assert_eq!(second.summary.forced_moved_demand, on_build03);
    assert_eq!(second.summary.budget_used, 0.0);
    assert_eq!(second.clusters["build03"].jobs, 0);
}

#[test]
fn a_second_run_on_the_same_inputs_moves_nothing() {
    let w = churn_world();
    let first = w.plan(&Settings::default(), None);
    let second = w.plan(&Settings::default(), Some(&first));
    assert_eq!(second.summary.moved_jobs, 0);
    assert_eq!(first.jobs, second.jobs);
}

#[test]
fn delta_places_new_jobs_like_the_sanitizer_and_moves_nothing_else() {
    let mut w = churn_world();
    w.config.build_farm.insert("aws".into(), Default::default());
    let first = w.plan(&Settings::default(), None);
    // A new job in an existing file, a new file, a deleted job, and heavier volumes.
    let f0 = w.files[0].path.clone();
    let f0_cluster = cluster_of(&first, "j00").unwrap().to_owned();
    w.files[0].jobs.push(job("j00-new"));
    w.files.push(file(
        "ci-operator/jobs/o/r/brand-new.yaml",
        vec![job("fresh")],
    ));
    w.files.retain(|f| !f.path.ends_with("f39.yaml"));
    for v in w.volumes.runs.values_mut() {
        *v *= 3.0;
    }
    let delta = Settings {
        mode: Mode::Delta,
        ..Settings::default()
    };
    let second = w.plan(&delta, Some(&first));
    for (name, e) in &first.jobs {
        if let Some(now) = second.jobs.get(name) {
            assert_eq!(now.cluster, e.cluster, "{name} moved in delta mode");
        }
    }
    assert_eq!(
        cluster_of(&second, "j00-new"),
        Some(f0_cluster.as_str()),
        "{f0}"
    );
    // A new file goes where the sanitizer put it: not listed in buildFarm, so default.
    assert_eq!(cluster_of(&second, "fresh"), Some("build01"));
    assert_eq!(second.summary.removed_jobs, 1);
    assert_eq!(second.summary.new_jobs, 2);
    assert_eq!(second.summary.moved_jobs, 0);
}

#[test]
fn delta_applies_a_changed_pin() {
    let mut w = churn_world();
    let first = w.plan(&Settings::default(), None);
    let target = if cluster_of(&first, "j00") == Some("build01") {
        "build03"
    } else {
        "build01"
    };
    let j = w.files[0].jobs.pop().unwrap();
    w.files[0].jobs.push(label(j, labels::CLUSTER, target));
    let second = w.plan(
        &Settings {
            mode: Mode::Delta,
            ..Settings::default()
        },
        Some(&first),
    );
    assert_eq!(cluster_of(&second, "j00"), Some(target));
    assert_eq!(second.summary.forced_moved_jobs, 1);
}

#[test]
fn duplicate_job_names_warn_and_the_first_path_wins() {
    let mut w = two_clouds();
    w.files = vec![
        file(
            "ci-operator/jobs/o/b.yaml",
            vec![label(job("dup"), labels::CLUSTER, "build02")],
        ),
        file(
            "ci-operator/jobs/o/a.yaml",
            vec![label(job("dup"), labels::CLUSTER, "build03")],
        ),
    ];
    let plan = w.plan(&Settings::default(), None);
    assert_eq!(cluster_of(&plan, "dup"), Some("build03"));
    assert_eq!(plan.jobs["dup"].file, "ci-operator/jobs/o/a.yaml");
    let warn = plan.diagnostics.iter().find(|d| d.key == "dup").unwrap();
    assert_eq!(warn.severity, Severity::Warning);
    assert_eq!(warn.file, "ci-operator/jobs/o/b.yaml");
}

#[test]
fn a_file_matching_two_entries_isolates_its_jobs() {
    let mut w = two_clouds();
    w.config.groups.insert("build03".into(), Default::default());
    w.config.groups.get_mut("build03").unwrap().paths = vec!["shared".into()];
    w.config.build_farm.insert(
        "aws".into(),
        [("build01".to_owned(), vec!["shared.yaml".to_owned()])]
            .into_iter()
            .collect(),
    );
    w.files = vec![
        file(
            "ci-operator/jobs/o/shared.yaml",
            vec![
                job("ambiguous"),
                label(job("pinned"), labels::CLUSTER, "build02"),
            ],
        ),
        file(P, vec![job("fine")]),
    ];
    let diags = dispatcher_core::validate(&w.inputs(None), &Settings::default());
    assert!(
        diags
            .iter()
            .any(|d| d.file == "ci-operator/jobs/o/shared.yaml" && d.severity == Severity::Error)
    );
    let plan = w.plan(&Settings::default(), None);
    assert_eq!(plan.jobs["ambiguous"].rule, Rule::Unschedulable);
    assert_eq!(cluster_of(&plan, "pinned"), Some("build02"));
    assert!(cluster_of(&plan, "fine").is_some());
}

#[test]
fn validation_rejects_ambiguous_configs() {
    let mut w = two_clouds();
    w.config.groups.insert("build03".into(), Default::default());
    w.config.groups.get_mut("build03").unwrap().jobs = vec!["x".into(), "y".into(), "y".into()];
    w.config.groups.insert("build02".into(), Default::default());
    w.config.groups.get_mut("build02").unwrap().jobs = vec!["x".into()];
    w.config.groups.get_mut("build02").unwrap().paths = vec!["(unclosed".into()];
    w.config.kvm = vec!["build99".into()];
    let diags = dispatcher_core::validate(&w.inputs(None), &Settings::default());
    let has = |sev: Severity, key: &str| {
        diags
            .iter()
            .any(|d| d.severity == sev && d.key.contains(key))
    };
    assert!(has(Severity::Fatal, "groups.*.jobs x"), "{diags:#?}");
    assert!(
        has(Severity::Error, "groups.build03.jobs"),
        "one duplicate is an error"
    );
    assert!(has(Severity::Fatal, "groups.build02.paths[0]"));
    assert!(has(Severity::Error, "kvm[0]"));
    let err = dispatcher_core::run(&w.inputs(None), &Settings::default()).unwrap_err();
    assert!(err.0.iter().all(|d| d.severity == Severity::Fatal));
}

#[test]
fn an_empty_inventory_refuses_to_place_anything() {
    let mut w = two_clouds();
    for c in w.inventory.clusters.values_mut() {
        c.blocked = true;
    }
    w.files = vec![file(P, vec![job("a")])];
    let err = dispatcher_core::run(&w.inputs(None), &Settings::default()).unwrap_err();
    assert!(err.0[0].message.contains("no usable cluster"));
}

#[test]
fn classic_sticks_below_75_percent_and_skips_reduced_capacity() {
    let mut w = World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            cluster("build03", "aws", 100),
            cluster("build05", "aws", 40),
        ],
    );
    for i in 0..20 {
        let name = format!("j{i:02}");
        let mut j = job(&name);
        j.cluster = Some(if i < 3 {
            "build05".into()
        } else {
            "build01".into()
        });
        w.files
            .push(file(&format!("ci-operator/jobs/o/r/f{i:02}.yaml"), vec![j]));
        w = w.volume(&name, 10.0);
    }
    let classic = Settings {
        strategy: Strategy::Classic,
        ..Settings::default()
    };
    let plan = w.plan(&classic, None);
    // build05's share is 40/240 of 200 = 33.3; sticky files stay while it is below 25.
    assert_eq!(plan.clusters["build05"].demand, 30.0);
    assert!(plan.files.values().any(|f| f.reason == FileReason::Sticky));
    assert!(
        plan.files
            .values()
            .any(|f| f.reason == FileReason::LeastLoaded)
    );
    let again = w.plan(&classic, None);
    assert_eq!(plan.to_json(), again.to_json());
}

#[test]
fn plan_snapshot() {
    let mut w = two_clouds();
    w.cluster_mut("build03").capabilities = ["arm64".to_owned()].into_iter().collect();
    w.files = vec![
        file(
            P,
            vec![job("unit"), label(job("e2e-aws"), labels::CLOUD, "aws")],
        ),
        file(
            "ci-operator/jobs/o/r/o-r-main-postsubmits.yaml",
            vec![label(job("images"), "capability/arm64", "arm64")],
        ),
    ];
    let w = w
        .volume("unit", 40.0)
        .volume("e2e-aws", 10.0)
        .volume("images", 5.0);
    let plan = w.plan(&Settings::default(), None);
    insta::assert_json_snapshot!(plan);
}

#[test]
fn the_parallel_json_writer_gives_serde_jsons_bytes() {
    // Enough files and jobs to span several chunks, with names JSON must escape.
    let files: Vec<JobFile> = (0..3000)
        .map(|i| {
            file(
                &format!("ci-operator/jobs/o/r{i}/\"q\"-{i}\u{e9}.yaml"),
                vec![job(&format!("pull-{i}-\\a")), job(&format!("pull-{i}-\tb"))],
            )
        })
        .collect();
    let w = World::new(
        "build01",
        vec![
            cluster("build01", "aws", 100),
            cluster("build02", "gcp", 50),
        ],
    )
    .with_files(files);
    let plan = w.plan(&Settings::default(), None);
    assert_eq!(plan.jobs.len(), 6000);
    let whole = serde_json::to_string(&plan).unwrap() + "\n";
    assert_eq!(plan.to_json(), whole);
    assert_eq!(Plan::from_json(&plan.to_json()).unwrap(), plan);

    // And with both maps empty.
    let empty = World::new("build01", vec![cluster("build01", "aws", 100)])
        .plan(&Settings::default(), None);
    assert!(empty.jobs.is_empty() && empty.files.is_empty());
    assert_eq!(
        empty.to_json(),
        serde_json::to_string(&empty).unwrap() + "\n"
    );
}
