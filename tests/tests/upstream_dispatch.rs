//! ci-tools' `cmd/prow-job-dispatcher/main_test.go` (HEAD `52352cd19`), translated: file-level
//! placement, hysteresis and movement budget, delta dispatch, the blocked-cluster exception of
//! upgrade periodics, and the reconciliation of inventory changes. Go's `clusterVolume` with
//! preset volumes is our engine over job files whose pinned jobs carry that volume; Go's
//! `previousAssignments` is our previous plan; Go's digest files and markers are our store's
//! markers (`dispatcher-app`'s recompute and push decision). Each test names the Go test it
//! comes from; a case that differs on purpose says why.
//!
//! Not translated: `TestVerifyProwSchedulerCacheBound` (incident controls, a later feature),
//! `TestSortedStringKeys` (a Go helper; our maps are ordered), `TestPublishedInventoryDigestLifecycle`,
//! `TestFullDispatchInvalidatesDigestBeforeGobReplacement`,
//! `TestWorkingDirectoryIsRestoredBeforeRelativeMarkerCleanup` and
//! `TestAssignmentsRequireMetadataMigration` (Go's gob and digest files, and its working
//! directory; ours publishes generations and keeps no process state), `TestSendSlackMessage`
//! (no Slack).

mod upstream_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use dispatcher_app::Stores;
use dispatcher_app::local::LocalRepo;
use dispatcher_app::ports::{Demand, FallbackChange, FallbackReport};
use dispatcher_app::push::{self, PushCommit, PushDecision, PushEvent, PushRepository};
use dispatcher_app::recompute::{FallbackStatus, RecomputeRequest, Trigger};
use dispatcher_app::records::{FALLBACK_PENDING, INVENTORY_BLOB, INVENTORY_DIGEST};
use dispatcher_app::{DemandSource, FallbackPublisher, Recomputer, SourceError};
use dispatcher_core::model::{
    DemandModel, DispatcherConfig, Job, JobFile, JobKind, Volumes, labels,
};
use dispatcher_core::plan::FileReason;
use dispatcher_core::rules::{Decision, Fallback, Rule, Rules, resolve_target};
use dispatcher_core::{Mode, Plan, Settings, Strategy};
use dispatcher_formats::writeback::{build_farm_of, config_for_plan};
use dispatcher_formats::{
    CLUSTERS_PATH, CONFIG_PATH, InputPaths, Release, assemble, parse_config, parse_inventory,
    parse_job_file,
};
use upstream_support::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Go's package-level `c`: `determineE2EByJob`, `default: api.ci`, build01 (aws) and build02
/// (gcp) in the build farm, and the `api.ci` and `build01` groups.
fn go_config() -> DispatcherConfig {
    let mut cfg = config("api.ci");
    cfg.determine_e2e_by_job = true;
    farm(&mut cfg, "aws", "build01", &[]);
    farm(&mut cfg, "gcp", "build02", &[]);
    group(
        &mut cfg,
        "api.ci",
        &[
            "pull-ci-openshift-release-master-build01-dry",
            "pull-ci-openshift-release-master-core-dry",
            "pull-ci-openshift-release-master-services-dry",
            "periodic-acme-cert-issuer-for-build01",
        ],
        &[
            ".*-postsubmits.yaml$",
            ".*openshift/release/.*-periodics.yaml$",
            ".*-periodics.yaml$",
        ],
    );
    group(
        &mut cfg,
        "build01",
        &[
            "periodic-build01-upgrade",
            "periodic-ci-image-import-to-build01",
            "pull-ci-openshift-config-master-format",
            "pull-ci-openshift-psap-special-resource-operator-release-4.6-images",
            "pull-ci-openshift-psap-special-resource-operator-release-4.6-unit",
            "pull-ci-openshift-psap-special-resource-operator-release-4.6-verify",
        ],
        &[".*openshift-priv/.*-presubmits.yaml$"],
    );
    cfg
}

fn of_kind(mut j: Job, kind: JobKind) -> Job {
    j.kind = kind;
    j
}

fn periodic(name: &str) -> Job {
    of_kind(job(name), JobKind::Periodic)
}

fn postsubmit(name: &str) -> Job {
    of_kind(job(name), JobKind::Postsubmit)
}

/// A job pinned by the `ci-operator.openshift.io/cluster` label.
fn pinned(j: Job, cluster: &str) -> Job {
    labelled(j, &[(labels::CLUSTER, cluster)])
}

/// `file` with its size in bytes (Go orders files by it).
fn sized(mut f: JobFile, size: u64) -> JobFile {
    f.size = size;
    f
}

/// Go's preset `clusterVolumeMap`: one job per cluster, pinned there, carrying that volume,
/// in a file of its own. Returns the file and the volumes.
fn preload(loads: &[(&str, f64)]) -> (JobFile, Vec<(String, f64)>) {
    let jobs = loads
        .iter()
        .map(|(c, _)| pinned(job(&format!("preload-{c}")), c))
        .collect();
    let volumes = loads
        .iter()
        .map(|(c, v)| (format!("preload-{c}"), *v))
        .collect();
    (file("preload/preload-presubmits.yaml", jobs), volumes)
}

fn volumes(pairs: &[(String, f64)]) -> Volumes {
    let refs: Vec<(&str, f64)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    runs(&refs)
}

fn balanced() -> Settings {
    Settings::default()
}

fn churn(hysteresis_percent: f64, movement_budget_percent: f64) -> Settings {
    Settings {
        hysteresis_percent,
        movement_budget_percent,
        ..Settings::default()
    }
}

fn strategy(strategy: Strategy) -> Settings {
    Settings {
        strategy,
        ..Settings::default()
    }
}

fn min_demand(minimum: f64) -> DemandModel {
    DemandModel {
        minimum,
        ..DemandModel::default()
    }
}

/// A plan as the previous plan of a test: `Some(c)` sets a job's cluster, `None` drops the
/// job (it was not placed before).
fn previous(mut plan: Plan, jobs: &[(&str, Option<&str>)]) -> Plan {
    for (name, cluster) in jobs {
        match cluster {
            Some(c) => {
                plan.jobs
                    .get_mut(*name)
                    .expect("the job is in the plan")
                    .cluster = Some((*c).to_owned());
            }
            None => {
                plan.jobs.remove(*name);
            }
        }
    }
    plan
}

fn job_cluster<'p>(plan: &'p Plan, name: &str) -> Option<&'p str> {
    plan.jobs[name].cluster.as_deref()
}

/// The file-level cluster (Go's `findClusterForJobConfig` result) of `ci-operator/jobs/<relative>`.
fn file_cluster<'p>(plan: &'p Plan, relative: &str) -> Option<&'p str> {
    plan.files[&format!("{JOBS}{relative}")].cluster.as_deref()
}

fn cluster_demand(plan: &Plan, cluster: &str) -> f64 {
    plan.clusters.get(cluster).map_or(0.0, |c| c.demand)
}

/// HEAD's `stableClusterTieBreak`: FNV-64a over (path, 0x00, cluster).
fn tie_break(path: &str, cluster: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes().chain([0]).chain(cluster.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Which of two equally scored clusters wins the tie for the file at `path`.
fn tie_winner<'a>(path: &str, a: &'a str, b: &'a str) -> &'a str {
    if (tie_break(path, b), b) < (tie_break(path, a), a) {
        b
    } else {
        a
    }
}

// ---------------------------------------------------------------------------------------
// Placement
// ---------------------------------------------------------------------------------------

/// Go: `TestDispatchJobs`, both cases. The basic case's golden `buildFarm` (the five files of
/// `testdata/TestDispatchJobs/basic_case`, with their jobs' clusters, clouds and volumes) is
/// reproduced by the balanced strategy.
#[test]
fn go_test_dispatch_jobs() {
    // "nil config": no config at all is an error and nothing is placed. Ours has no nil
    // config; its counterpart is a release without `_config.yaml`.
    let release = Release {
        clusters: Some(b"aws:\n- name: build01\n".to_vec()),
        ..Release::default()
    };
    let loaded = assemble(release, None, "the release");
    let err = dispatcher_core::run(&loaded.inputs(), &balanced()).expect_err("no config");
    assert!(
        err.0
            .iter()
            .any(|d| d.file == CONFIG_PATH && d.message.contains("not found")),
        "{err}"
    );

    // "basic case". Go walks `testdata/TestDispatchJobs`, so the paths it hashes are
    // `basic_case/<file>`. HEAD's 75% stickiness never fires here (no file's most used
    // static cluster is both in its cloud and under its threshold), and ours places by
    // demand rather than file size and then searches locally: the result is the same.
    let cfg = go_config();
    let inv = farm_inventory(&cfg);
    let etcd = "pull-ci-openshift-cluster-etcd-operator-master";
    let gcp = "pull-ci-openshift-cluster-api-provider-gcp-master";
    let tools = "pull-ci-openshift-ci-tools-master";
    let files = vec![
        sized(
            file(
                "basic_case/cluster-etcd-operator-master-presubmits.yaml",
                vec![
                    on(job(&format!("{etcd}-e2e-aws")), "api.ci"),
                    on(
                        cluster_type(job(&format!("{etcd}-e2e-aws-disruptive")), "aws"),
                        "api.ci",
                    ),
                    on(
                        cluster_type(job(&format!("{etcd}-e2e-azure")), "azure4"),
                        "api.ci",
                    ),
                    on(
                        cluster_type(job(&format!("{etcd}-e2e-gcp")), "gcp"),
                        "api.ci",
                    ),
                    on(job(&format!("{etcd}-e2e-gcp-upgrade")), "api.ci"),
                    on(job(&format!("{etcd}-e2e-metal-ipi")), "api.ci"),
                    on(job(&format!("{etcd}-images")), "build01"),
                    on(job(&format!("{etcd}-unit")), "build01"),
                    on(job(&format!("{etcd}-verify")), "build01"),
                    on(job(&format!("{etcd}-verify-deps")), "build01"),
                ],
            ),
            22488,
        ),
        sized(
            file(
                "basic_case/cluster-api-provider-gcp-presubmits.yaml",
                vec![
                    on(
                        cluster_type(job(&format!("{gcp}-e2e-gcp")), "gcp"),
                        "api.ci",
                    ),
                    on(
                        cluster_type(job(&format!("{gcp}-e2e-gcp-operator")), "gcp"),
                        "api.ci",
                    ),
                    on(job(&format!("{gcp}-goimports")), "build01"),
                    on(job(&format!("{gcp}-govet")), "build01"),
                    on(job(&format!("{gcp}-images")), "build01"),
                    on(job(&format!("{gcp}-unit")), "build01"),
                ],
            ),
            12710,
        ),
        sized(
            file(
                "basic_case/ci-tools-presubmits.yaml",
                vec![
                    on(job(&format!("{tools}-breaking-changes")), "build01"),
                    on(job(&format!("{tools}-e2e")), "api.ci"),
                    on(job(&format!("{tools}-format")), "build01"),
                    on(job(&format!("{tools}-images")), "build01"),
                    on(job(&format!("{tools}-integration")), "build01"),
                    on(job(&format!("{tools}-lint")), "build01"),
                    on(job(&format!("{tools}-unit")), "build01"),
                    on(job(&format!("{tools}-validate-vendor")), "build01"),
                ],
            ),
            12619,
        ),
        sized(
            file(
                "basic_case/wildfly-operator-presubmits.yaml",
                vec![on(
                    postsubmit("branch-ci-wildfly-wildfly-operator-master-images"),
                    "api.ci",
                )],
            ),
            1647,
        ),
        sized(
            file(
                "basic_case/xyz-operator-presubmits.yaml",
                vec![on(
                    postsubmit("branch-ci-xyz-xyz-operator-master-images"),
                    "api.ci",
                )],
            ),
            1631,
        ),
    ];
    let vols = volumes(&[
        (format!("{gcp}-e2e-gcp"), 24.0),
        (format!("{tools}-breaking-changes"), 43.0),
        (format!("{tools}-e2e"), 12.0),
        (format!("{etcd}-unit"), 6.0),
        (format!("{gcp}-e2e-gcp-operator"), 3.0),
        (
            "branch-ci-wildfly-wildfly-operator-master-images".to_owned(),
            2.0,
        ),
        ("branch-ci-xyz-xyz-operator-master-images".to_owned(), 10.0),
    ]);
    let plan = run(&cfg, &inv, &files, Some(&vols), None, &balanced()).expect("plans");
    let mut got = build_farm_of(&plan);
    for clusters in got.values_mut() {
        for names in clusters.values_mut() {
            names.sort();
        }
    }
    let expected: BTreeMap<String, BTreeMap<String, Vec<String>>> = [
        (
            "aws".to_owned(),
            [(
                "build01".to_owned(),
                vec!["ci-tools-presubmits.yaml".to_owned()],
            )]
            .into(),
        ),
        (
            "gcp".to_owned(),
            [(
                "build02".to_owned(),
                vec![
                    "cluster-api-provider-gcp-presubmits.yaml".to_owned(),
                    "cluster-etcd-operator-master-presubmits.yaml".to_owned(),
                    "wildfly-operator-presubmits.yaml".to_owned(),
                    "xyz-operator-presubmits.yaml".to_owned(),
                ],
            )]
            .into(),
        ),
    ]
    .into();
    assert_eq!(got, expected);
    // The volumes Go accumulates on the way: build01 carries the pinned aws e2e job (1) and
    // ci-tools (61); build02 the rest.
    assert_eq!(cluster_demand(&plan, "build01"), 62.0);
    assert_eq!(cluster_demand(&plan, "build02"), 57.0);
}

/// Go: `TestDispatchJobConfig`, all three cases: the file-level cluster of
/// `repo-presubmits.yaml` under Go's config `c`, with build01 preloaded as Go presets it.
#[test]
fn go_test_dispatch_job_config() {
    struct Case {
        name: &'static str,
        jobs: Vec<Job>,
        preload_build01: f64,
        expected: &'static str,
        jobs_expected: &'static [(&'static str, &'static str)],
    }
    let cases = [
        Case {
            name: "basic case: non e2e job chooses build01",
            jobs: vec![cluster_type(job("job"), "openstack")],
            preload_build01: 0.0,
            expected: "build01",
            jobs_expected: &[("job", "build01")],
        },
        Case {
            name: "basic case: aws e2e job chooses build01",
            jobs: vec![cluster_type(job("job"), "aws")],
            preload_build01: 1.0,
            expected: "build01",
            jobs_expected: &[("job", "build01")],
        },
        Case {
            name: "basic case: aws and gcp e2e job chooses build02",
            jobs: vec![
                cluster_type(job("job"), "aws"),
                cluster_type(job("job1"), "gcp"),
            ],
            preload_build01: 1.0,
            // Differs on purpose: no job of this file follows the file's cluster (both are
            // pinned to their cloud's cluster), so it carries no demand and ours lists it
            // where most of its jobs run, ties by name (build01), instead of scoring an
            // empty move (Go: build02, whose score is lower because build01 is preloaded).
            // The jobs' clusters are the same as Go's.
            expected: "build01",
            jobs_expected: &[("job", "build01"), ("job1", "build02")],
        },
    ];
    let cfg = go_config();
    let inv = farm_inventory(&cfg);
    for c in cases {
        let mut files = vec![file("repo-presubmits.yaml", c.jobs)];
        let mut vols = Vec::new();
        if c.preload_build01 > 0.0 {
            let (f, v) = preload(&[("build01", c.preload_build01)]);
            files.push(f);
            vols = v;
        }
        let plan =
            run(&cfg, &inv, &files, Some(&volumes(&vols)), None, &balanced()).expect("plans");
        assert_eq!(
            file_cluster(&plan, "repo-presubmits.yaml"),
            Some(c.expected),
            "{}",
            c.name
        );
        for (name, cluster) in c.jobs_expected {
            assert_eq!(
                job_cluster(&plan, name),
                Some(*cluster),
                "{}: {name}",
                c.name
            );
        }
    }
}

/// Go: `TestFindClusterForJobConfigRespectsHysteresisAndMovementBudget`, all three cases: a
/// relocatable periodic that was on build01 before. Go's absolute budget (0, or -1 for
/// unlimited) is our percentage of the total demand (0%, or 100%).
#[test]
fn go_test_find_cluster_for_job_config_respects_hysteresis_and_movement_budget() {
    let mut cfg = config("build01");
    farm(&mut cfg, "aws", "build01", &[]);
    farm(&mut cfg, "aws", "build02", &[]);
    let inv = inventory(vec![
        cluster("build01", "aws", 100),
        cluster("build02", "aws", 100),
    ]);
    let place = |load01: f64, load02: f64, demand: f64, settings: &Settings| {
        let (pre, mut vols) = preload(&[("build01", load01), ("build02", load02)]);
        vols.push(("job".to_owned(), demand));
        let files = vec![file("periodics.yaml", vec![periodic("job")]), pre];
        let vols = volumes(&vols);
        let first = run(&cfg, &inv, &files, Some(&vols), None, settings).expect("plans");
        let prev = previous(first, &[("job", Some("build01"))]);
        run(&cfg, &inv, &files, Some(&vols), Some(&prev), settings).expect("plans")
    };

    // "hysteresis keeps near-optimal prior placement": 11/100 is within 10% of 10/100.
    let plan = place(10.0, 9.0, 1.0, &churn(10.0, 100.0));
    assert_eq!(file_cluster(&plan, "periodics.yaml"), Some("build01"));
    assert_eq!(job_cluster(&plan, "job"), Some("build01"));
    assert_eq!(
        plan.files[&format!("{JOBS}periodics.yaml")].reason,
        FileReason::Hysteresis
    );

    // "movement budget prevents routine churn". Go's build02 is empty; ours has no preload
    // job there (a job weighs at least the minimum demand).
    let plan = place_without_build02(&cfg, &inv, &churn(0.0, 0.0));
    assert_eq!(job_cluster(&plan, "job"), Some("build01"));
    assert_eq!(
        plan.files[&format!("{JOBS}periodics.yaml")].reason,
        FileReason::BudgetExhausted
    );

    // "unlimited budget permits meaningful rebalance".
    let plan = place_without_build02(&cfg, &inv, &churn(0.0, 100.0));
    assert_eq!(job_cluster(&plan, "job"), Some("build02"));
    assert_eq!(
        plan.files[&format!("{JOBS}periodics.yaml")].reason,
        FileReason::Rebalanced
    );
    assert_eq!(plan.summary.budget_used, 10.0);
}

/// The last two cases of the test above: build01 carries 100, build02 nothing, the job 10.
fn place_without_build02(
    cfg: &DispatcherConfig,
    inv: &dispatcher_core::model::Inventory,
    settings: &Settings,
) -> Plan {
    let (pre, mut vols) = preload(&[("build01", 100.0)]);
    vols.push(("job".to_owned(), 10.0));
    let files = vec![file("periodics.yaml", vec![periodic("job")]), pre];
    let vols = volumes(&vols);
    let first = run(cfg, inv, &files, Some(&vols), None, settings).expect("plans");
    let prev = previous(first, &[("job", Some("build01"))]);
    run(cfg, inv, &files, Some(&vols), Some(&prev), settings).expect("plans")
}

/// Go: `TestPreviousClusterAndMovementUseOnlyExistingRelocatableJobs`. A file whose two
/// pinned jobs ran on build02 and whose one relocatable job ran on build01, plus a new
/// relocatable job: its previous cluster is build01 (the pinned jobs do not count), and
/// moving it to build02 moves only the existing relocatable demand, 3.
#[test]
fn go_test_previous_cluster_and_movement_use_only_existing_relocatable_jobs() {
    let cfg = config("build01");
    let inv = inventory(vec![
        cluster("build01", "aws", 100),
        cluster("build02", "aws", 100),
    ]);
    // build01 is heavily loaded, so that the file moves to build02 (Go asks
    // `movedDemandForCandidate("build02")` directly).
    let (pre, mut vols) = preload(&[("build01", 1000.0)]);
    vols.extend([
        ("pinned-1".to_owned(), 100.0),
        ("pinned-2".to_owned(), 100.0),
        ("existing".to_owned(), 3.0),
        ("new".to_owned(), 50.0),
    ]);
    let files = vec![
        file(
            "org/repo/org-repo-main-presubmits.yaml",
            vec![
                pinned(job("pinned-1"), "build02"),
                pinned(job("pinned-2"), "build02"),
                job("existing"),
                job("new"),
            ],
        ),
        pre,
    ];
    let vols = volumes(&vols);
    let settings = churn(0.0, 100.0);
    let first = run(&cfg, &inv, &files, Some(&vols), None, &settings).expect("plans");
    let prev = previous(
        first,
        &[
            ("pinned-1", Some("build02")),
            ("pinned-2", Some("build02")),
            ("existing", Some("build01")),
            ("new", None),
        ],
    );
    let plan = run(&cfg, &inv, &files, Some(&vols), Some(&prev), &settings).expect("plans");
    let f = &plan.files[&format!("{JOBS}org/repo/org-repo-main-presubmits.yaml")];
    assert_eq!(f.previous.as_deref(), Some("build01"));
    assert_eq!(f.cluster.as_deref(), Some("build02"));
    assert_eq!(plan.summary.moved_jobs, 1);
    assert_eq!(plan.summary.moved_demand, 3.0);
    assert_eq!(plan.summary.budget_used, 3.0);
}

/// Go: `TestMovementBudgetUsesConfiguredJobs`: the budget is a percentage of the demand of
/// the configured jobs (each counted once, those without samples at the minimum demand),
/// not of every name Prometheus returns: (9 + 5) × 10% = 1.4.
#[test]
fn go_test_movement_budget_uses_configured_jobs() {
    let cfg = config("build01");
    let inv = inventory(vec![cluster("build01", "aws", 100)]);
    let files = vec![file(
        "periodics.yaml",
        vec![
            periodic("sampled"),
            periodic("without-samples"),
            periodic("sampled"),
        ],
    )];
    let vols = runs(&[("sampled", 9.0), ("deleted", 100.0)]);
    let settings = Settings {
        demand: min_demand(5.0),
        ..churn(10.0, 10.0)
    };
    let first = run(&cfg, &inv, &files, Some(&vols), None, &settings).expect("plans");
    let plan = run(&cfg, &inv, &files, Some(&vols), Some(&first), &settings).expect("plans");
    assert_eq!(plan.summary.total_demand, 14.0);
    assert_eq!(plan.summary.budget_demand, Some(1.4));
}

/// Go: `TestStaticJobVolumeAccumulationIsDeterministic`, both cases (presubmits and
/// postsubmits, 100 iterations each): one job of volume 2^53 and eight of volume 1 under
/// repositories `08-small` … `00-large`. The demand is summed in repository order (the large
/// job first, so the small ones vanish in rounding) however the file lists them, the file
/// goes to the tie-break winner, and only that cluster records the volume.
#[test]
fn go_test_static_job_volume_accumulation_is_deterministic() {
    let cfg = config("api.ci");
    let inv = inventory(vec![
        cluster("build01", "aws", 100),
        cluster("build02", "aws", 100),
    ]);
    let large = 2f64.powi(53);
    let mut pairs: Vec<(String, f64)> = vec![("large".to_owned(), large)];
    for i in 1..=8 {
        pairs.push((format!("small-{i:02}"), 1.0));
    }
    let vols = volumes(&pairs);
    let expected = tie_winner("jobs.yaml", "build01", "build02");
    let other = if expected == "build01" {
        "build02"
    } else {
        "build01"
    };
    for section in ["presubmits", "postsubmits"] {
        let mut yaml = format!("{section}:\n");
        for i in (1..=8).rev() {
            yaml.push_str(&format!("  {i:02}-small:\n  - name: small-{i:02}\n"));
        }
        yaml.push_str("  00-large:\n  - name: large\n");
        let jobs = parse_job_file(yaml.as_bytes()).expect("parses");
        let files = vec![file("jobs.yaml", jobs)];
        for i in 0..100 {
            let plan = run(&cfg, &inv, &files, Some(&vols), None, &balanced()).expect("plans");
            assert_eq!(
                plan.files[&format!("{JOBS}jobs.yaml")].movable_demand,
                large,
                "{section} iteration {i}"
            );
            assert_eq!(
                file_cluster(&plan, "jobs.yaml"),
                Some(expected),
                "{section} iteration {i}"
            );
            assert_eq!(
                cluster_demand(&plan, expected),
                large,
                "{section} iteration {i}"
            );
            assert_eq!(cluster_demand(&plan, other), 0.0, "{section} iteration {i}");
        }
    }
}

/// Go: `TestFindClusterForJobConfigUsesProportionalCapacity`: build01 (capacity 100) carries
/// 80, build05 (capacity 50) 20; a job of 10 scores 0.9 there and 0.6 here.
#[test]
fn go_test_find_cluster_for_job_config_uses_proportional_capacity() {
    let cfg = config("api.ci");
    let inv = inventory(vec![
        cluster("build01", "aws", 100),
        cluster("build05", "aws", 50),
    ]);
    let (pre, mut vols) = preload(&[("build01", 80.0), ("build05", 20.0)]);
    vols.push(("periodic-a".to_owned(), 10.0));
    let files = vec![file("periodic-a.yaml", vec![periodic("periodic-a")]), pre];
    let plan = run(&cfg, &inv, &files, Some(&volumes(&vols)), None, &balanced()).expect("plans");
    assert_eq!(file_cluster(&plan, "periodic-a.yaml"), Some("build05"));
    assert_eq!(job_cluster(&plan, "periodic-a"), Some("build05"));
}

/// Go: `TestFindClusterForJobConfigProjectsOnlyCandidateDemand`: a file with a job pinned to
/// build01 (1000) and a relocatable one (1) goes to build05: the pinned demand counts only
/// where it runs.
#[test]
fn go_test_find_cluster_for_job_config_projects_only_candidate_demand() {
    let cfg = config("api.ci");
    let inv = inventory(vec![
        cluster("build01", "aws", 100),
        cluster("build05", "aws", 50),
    ]);
    let files = vec![file(
        "mixed-periodics.yaml",
        vec![
            pinned(periodic("pinned"), "build01"),
            periodic("relocatable"),
        ],
    )];
    let vols = runs(&[("pinned", 1000.0), ("relocatable", 1.0)]);
    let plan = run(&cfg, &inv, &files, Some(&vols), None, &balanced()).expect("plans");
    assert_eq!(file_cluster(&plan, "mixed-periodics.yaml"), Some("build05"));
    assert_eq!(job_cluster(&plan, "relocatable"), Some("build05"));
    assert_eq!(cluster_demand(&plan, "build01"), 1000.0);
    assert_eq!(cluster_demand(&plan, "build05"), 1.0);
}

/// Go: `TestFindClusterForJobConfigPreservesManualClusterAssignments`, both cases: a job whose
/// static cluster is the manual cluster app.ci stays there and adds nothing to the build
/// farm; when app.ci is blocked it follows its file to the tie-break winner.
#[test]
fn go_test_find_cluster_for_job_config_preserves_manual_cluster_assignments() {
    let mut cfg = config("api.ci");
    cfg.manual_clusters = vec!["app.ci".to_owned()];
    farm(&mut cfg, "aws", "build01", &[]);
    farm(&mut cfg, "aws", "build02", &[]);
    let path = "manual-periodics.yaml";
    let candidate = tie_winner(path, "build01", "build02");
    let files = vec![file(path, vec![on(periodic("manual-job"), "app.ci")])];
    let vols = runs(&[("manual-job", 7.0)]);
    for (name, app_ci_blocked, expected) in [
        ("manual cluster remains assigned", false, "app.ci"),
        ("blocked manual cluster relocates", true, candidate),
    ] {
        let mut clusters = vec![
            cluster("build01", "aws", 100),
            cluster("build02", "aws", 100),
        ];
        if app_ci_blocked {
            // A manual cluster is blocked by listing it blocked in the inventory.
            clusters.push(blocked(cluster("app.ci", "aws", 100)));
        }
        let plan = run(
            &cfg,
            &inventory(clusters),
            &files,
            Some(&vols),
            None,
            &balanced(),
        )
        .expect("plans");
        assert_eq!(file_cluster(&plan, path), Some(candidate), "{name}");
        assert_eq!(job_cluster(&plan, "manual-job"), Some(expected), "{name}");
        if app_ci_blocked {
            assert_eq!(cluster_demand(&plan, candidate), 7.0, "{name}");
        } else {
            assert_eq!(plan.jobs["manual-job"].rule, Rule::ManualCluster, "{name}");
            assert_eq!(cluster_demand(&plan, "app.ci"), 7.0, "{name}");
            assert_eq!(
                cluster_demand(&plan, "build01") + cluster_demand(&plan, "build02"),
                0.0,
                "{name}"
            );
        }
    }
}

/// Go: `TestFindClusterForJobConfigStickinessIncludesProjectedDemand`, both cases, with our
/// `classic` strategy (HEAD's 75% stickiness): a job whose static cluster is build05
/// (capacity 50, share 50 of 150).
#[test]
fn go_test_find_cluster_for_job_config_stickiness_includes_projected_demand() {
    let cfg = config("api.ci");
    let inv = inventory(vec![
        cluster("build01", "aws", 100),
        cluster("build05", "aws", 50),
    ]);
    let files = vec![file(
        "periodic-a.yaml",
        vec![on(periodic("periodic-a"), "build05")],
    )];
    let classic = strategy(Strategy::Classic);

    // "small group remains on existing cluster".
    let vols = runs(&[("periodic-a", 10.0)]);
    let plan = run(&cfg, &inv, &files, Some(&vols), None, &classic).expect("plans");
    assert_eq!(file_cluster(&plan, "periodic-a.yaml"), Some("build05"));
    assert_eq!(
        plan.files[&format!("{JOBS}periodic-a.yaml")].reason,
        FileReason::Sticky
    );

    // "oversized group uses proportional scoring": Go build01.
    let vols = runs(&[("periodic-a", 100.0)]);
    let plan = run(&cfg, &inv, &files, Some(&vols), None, &classic).expect("plans");
    // Differs on purpose: our `classic` is the Go dispatcher's classic balancing, the
    // baseline we measure against (dispatcher-semantics.md §8 step 3.3: stickiness looks at
    // the volume accumulated so far, without the file's own), so the file sticks. HEAD's
    // fix (add the projected demand) is superseded by the balanced strategy (F13), which
    // scores by capacity: 100/100 on build01 against 100/50 on build05.
    assert_eq!(file_cluster(&plan, "periodic-a.yaml"), Some("build05"));
    let plan = run(&cfg, &inv, &files, Some(&vols), None, &balanced()).expect("plans");
    assert_eq!(file_cluster(&plan, "periodic-a.yaml"), Some("build01"));
}

/// Go: `TestFindClusterForJobConfigBreaksTiesDeterministically` (50 iterations): equal
/// scores go to the lower FNV-64a of (path, cluster).
#[test]
fn go_test_find_cluster_for_job_config_breaks_ties_deterministically() {
    let cfg = config("api.ci");
    let inv = inventory(vec![
        cluster("build01", "aws", 100),
        cluster("build02", "aws", 100),
    ]);
    let files = vec![file("periodic-a.yaml", vec![periodic("periodic-a")])];
    let expected = tie_winner("periodic-a.yaml", "build01", "build02");
    for i in 0..50 {
        let plan = run(&cfg, &inv, &files, None, None, &balanced()).expect("plans");
        assert_eq!(
            file_cluster(&plan, "periodic-a.yaml"),
            Some(expected),
            "iteration {i}"
        );
    }
}

/// Go: `TestFindClusterForJobConfigTieBreakIsIndependentOfCheckoutRoot`: the same release
/// read from two checkout directories whose names would flip the tie if they were hashed
/// places the file on the same cluster, the winner for `org/repo/periodic-a.yaml`.
#[test]
fn go_test_find_cluster_for_job_config_tie_break_is_independent_of_checkout_root() {
    let relative = "org/repo/periodic-a.yaml";
    let rooted = |root: &str| tie_winner(&format!("{root}/{JOBS}{relative}"), "build01", "build02");
    let first = "checkout-a";
    let second = (0..1000)
        .map(|i| format!("checkout-{i}"))
        .find(|r| rooted(r) != rooted(first))
        .expect("checkout roots that expose root-dependent hashing");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut selected = Vec::new();
    for root in [first, second.as_str()] {
        let release = dir.path().join(root);
        write(
            &release,
            CONFIG_PATH,
            "default: api.ci\nbuildFarm:\n  aws:\n    build01: {}\n    build02: {}\n",
        );
        write(
            &release,
            CLUSTERS_PATH,
            "aws:\n- name: build01\n  capacity: 100\n- name: build02\n  capacity: 100\n",
        );
        write(
            &release,
            &format!("{JOBS}{relative}"),
            "periodics:\n- agent: kubernetes\n  name: periodic-a\n",
        );
        let loaded = dispatcher_formats::load(
            &InputPaths {
                release,
                ..InputPaths::default()
            },
            &|| {},
        )
        .expect("loads");
        let plan = dispatcher_core::run(&loaded.inputs(), &balanced()).expect("plans");
        selected.push(file_cluster(&plan, relative).map(str::to_owned));
    }
    let winner = tie_winner(relative, "build01", "build02");
    assert_eq!(selected, vec![Some(winner.to_owned()); 2]);
}

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Go: `TestGetCloudProvidersForE2ETests`, all three cases: the clouds of a file's jobs
/// (`CLUSTER_TYPE` aws or gcp; openstack is none), and the preference they give the file
/// (one cloud only).
#[test]
fn go_test_get_cloud_providers_for_e2e_tests() {
    struct Case {
        name: &'static str,
        jobs: Vec<Job>,
        clouds: &'static [&'static str],
        preference: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "openstack",
            jobs: vec![cluster_type(job("job"), "openstack")],
            clouds: &[],
            preference: None,
        },
        Case {
            name: "aws",
            jobs: vec![cluster_type(job("job"), "aws")],
            clouds: &["aws"],
            preference: Some("aws"),
        },
        Case {
            name: "several cloud providers",
            jobs: vec![
                cluster_type(job("job"), "aws"),
                cluster_type(job("job1"), "aws"),
                cluster_type(job("job2"), "gcp"),
            ],
            clouds: &["aws", "gcp"],
            preference: None,
        },
    ];
    let cfg = go_config();
    let inv = farm_inventory(&cfg);
    for Case {
        name,
        jobs,
        clouds,
        preference,
    } in cases
    {
        let got: BTreeSet<&str> = jobs.iter().filter_map(Job::raw_cloud).collect();
        assert_eq!(got, clouds.iter().copied().collect(), "{name}");
        let files = vec![file("repo-presubmits.yaml", jobs.clone())];
        let plan = run(&cfg, &inv, &files, None, None, &balanced()).expect("plans");
        assert_eq!(
            plan.files[&format!("{JOBS}repo-presubmits.yaml")]
                .cloud
                .as_deref(),
            preference,
            "{name}"
        );
    }
}

/// Go: `TestSynchronizeBuildFarmUsesAuthoritativeInventory`. The inventory decides which
/// clusters and clouds the build farm has: build12 moves to aws with its file, build01
/// (absent) goes, build02 (new) comes, empty; writing that back changes `_config.yaml` once,
/// and a second time not at all.
#[test]
fn go_test_synchronize_build_farm_uses_authoritative_inventory() {
    // Go's config has no `default`; ours needs one.
    let text = "default: build02\nbuildFarm:\n  aws:\n    build01: {}\n  gcp:\n    build12:\n      filenames:\n      - existing-presubmits.yaml\n";
    let (cfg, diags) = parse_config(text.as_bytes(), CONFIG_PATH);
    assert!(
        diags
            .iter()
            .all(|d| d.severity != dispatcher_core::Severity::Fatal),
        "{diags:?}"
    );
    let inv = inventory(vec![
        cluster("build02", "gcp", 100),
        cluster("build12", "aws", 100),
    ]);
    let rules = Rules::compile(&cfg, &inv, "vsphere02", CONFIG_PATH).expect("compiles");
    let clouds: BTreeMap<&str, Vec<&str>> = rules
        .farm_cloud
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        clouds,
        BTreeMap::from([("aws", vec!["build12"]), ("gcp", vec!["build02"])])
    );

    // The assignment survives the provider move: the config as written sends the file to
    // build12.
    let files = vec![file(
        "org/repo/existing-presubmits.yaml",
        vec![job("pull-existing")],
    )];
    let plan = run(&cfg, &inv, &files, None, None, &strategy(Strategy::Resolve)).expect("plans");
    assert_eq!(job_cluster(&plan, "pull-existing"), Some("build12"));
    assert_eq!(plan.jobs["pull-existing"].rule, Rule::BuildFarm);
    let expected: BTreeMap<String, BTreeMap<String, Vec<String>>> = [
        (
            "aws".to_owned(),
            [(
                "build12".to_owned(),
                vec!["existing-presubmits.yaml".to_owned()],
            )]
            .into(),
        ),
        ("gcp".to_owned(), [("build02".to_owned(), vec![])].into()),
    ]
    .into();
    assert_eq!(build_farm_of(&plan), expected);

    // Changed once, then unchanged.
    let synced = config_for_plan(text, &plan).expect("the build farm changes");
    assert_eq!(config_for_plan(&synced, &plan), None);
    let (cfg2, _) = parse_config(synced.as_bytes(), CONFIG_PATH);
    assert_eq!(cfg2.build_farm, expected);
}

/// Go: `TestSynchronizeBuildFarmRejectsDuplicateDispatcherCluster`: a cluster under two
/// clouds of `buildFarm` is refused.
#[test]
fn go_test_synchronize_build_farm_rejects_duplicate_dispatcher_cluster() {
    let mut cfg = config("build01");
    farm(&mut cfg, "aws", "build01", &[]);
    farm(&mut cfg, "gcp", "build01", &[]);
    let inv = inventory(vec![cluster("build01", "aws", 100)]);
    let files = vec![file("org/repo/a-presubmits.yaml", vec![job("a")])];
    let err = run(&cfg, &inv, &files, None, None, &balanced()).expect_err("refused");
    assert!(err.contains("also listed under buildFarm"), "{err}");
}

/// Go: `TestDispatchDeltaJobs` ("capabilities"): jobs that gained `capability/intranet` are
/// re-placed on the only intranet cluster, build01; the others keep build02. The previous
/// plan is a full run over the file before the labels were added (every job on build02,
/// as Go's stored assignments say).
#[test]
fn go_test_dispatch_delta_jobs() {
    let cfg = go_config();
    let inv = inventory(vec![
        capable(cluster("build01", "aws", 100), &["intranet"]),
        cluster("build02", "gcp", 100),
    ]);
    let base = "pull-ci-openshift-cluster-api-provider-gcp-master";
    let path = "capabilities/cluster-api-provider-gcp-presubmits.yaml";
    let intranet = |j: Job| labelled(j, &[("capability/intranet", "intranet")]);
    let jobs = |with_capability: bool| {
        let cap = |j: Job| if with_capability { intranet(j) } else { j };
        vec![
            on(
                cap(cluster_type(job(&format!("{base}-e2e-gcp")), "gcp")),
                "build02",
            ),
            on(
                cap(cluster_type(
                    job(&format!("{base}-e2e-gcp-operator")),
                    "gcp",
                )),
                "build02",
            ),
            on(job(&format!("{base}-goimports")), "build02"),
            on(job(&format!("{base}-govet")), "build02"),
        ]
    };
    let old = vec![file(path, jobs(false))];
    let prev = run(&cfg, &inv, &old, None, None, &balanced()).expect("plans");
    for name in ["e2e-gcp", "e2e-gcp-operator", "goimports", "govet"] {
        assert_eq!(
            job_cluster(&prev, &format!("{base}-{name}")),
            Some("build02")
        );
    }
    // Go keeps a stored demand (7) and uses the minimum (5) for a record without one; ours
    // reads demand from the volumes (a delta recompute without Prometheus uses the current
    // generation's), floored at the same minimum.
    let vols = volumes(&[(format!("{base}-e2e-gcp"), 7.0)]);
    let settings = Settings {
        mode: Mode::Delta,
        demand: min_demand(5.0),
        ..Settings::default()
    };
    let new = vec![file(path, jobs(true))];
    let plan = run(&cfg, &inv, &new, Some(&vols), Some(&prev), &settings).expect("plans");
    let e2e = &plan.jobs[&format!("{base}-e2e-gcp")];
    assert_eq!(e2e.cluster.as_deref(), Some("build01"));
    assert_eq!(e2e.rule, Rule::Capability);
    assert_eq!(e2e.demand, 7.0);
    // Differs on purpose: Go keeps the group a stored record had ("preserved-group.yaml");
    // a plan entry names the file the job is defined in now.
    assert_eq!(e2e.file, format!("{JOBS}{path}"));
    let operator = &plan.jobs[&format!("{base}-e2e-gcp-operator")];
    assert_eq!(operator.cluster.as_deref(), Some("build01"));
    assert_eq!(operator.rule, Rule::Capability);
    assert_eq!(operator.demand, 5.0);
    assert_eq!(operator.file, format!("{JOBS}{path}"));
    assert_eq!(
        job_cluster(&plan, &format!("{base}-govet")),
        Some("build02")
    );
    assert_eq!(
        job_cluster(&plan, &format!("{base}-goimports")),
        Some("build02")
    );
}

/// Go: `TestBlockedClustersForJob`, all three cases, through target resolution: build01 and
/// build02 are blocked; `periodic-build01-upgrade` may still run on build01, but not on
/// build02; other jobs may run on neither.
#[test]
fn go_test_blocked_clusters_for_job() {
    let inv = inventory(vec![
        blocked(cluster("build01", "aws", 100)),
        blocked(cluster("build02", "aws", 100)),
        cluster("build03", "aws", 100),
        cluster("build77", "aws", 100),
    ]);
    let decided = |cluster: &str, relocatable: bool| Decision {
        cluster: Some(cluster.to_owned()),
        relocatable,
        rule: if relocatable {
            Rule::Default
        } else {
            Rule::GroupName
        },
        detail: String::new(),
        set: Arc::from(Vec::<String>::new()),
    };
    let target = |job: &str, file: &str, d: &Decision| {
        resolve_target(&inv, "api.ci", job, Some(file), d).expect("a target")
    };
    // "keeps blocked clusters for non-matching job": build01 and build02 stay blocked.
    let job = "periodic-something-else";
    assert_eq!(
        target(job, "build03", &decided("build01", false)),
        ("build03".to_owned(), Fallback::FollowsFile)
    );
    assert_eq!(
        target(job, "build02", &decided("build01", true)),
        ("api.ci".to_owned(), Fallback::Default)
    );
    // "removes determined cluster for matching upgrade job": only build02 stays blocked.
    let job = "periodic-build01-upgrade";
    assert_eq!(
        target(job, "build03", &decided("build01", false)),
        ("build01".to_owned(), Fallback::None)
    );
    assert_eq!(
        target(job, "build02", &decided("build01", true)),
        ("api.ci".to_owned(), Fallback::Default)
    );
    // "keeps blocked clusters when determined cluster not blocked".
    let job = "periodic-build77-upgrade";
    assert_eq!(
        target(job, "build03", &decided("build77", false)),
        ("build77".to_owned(), Fallback::None)
    );
    assert_eq!(
        target(job, "build01", &decided("build77", true)),
        ("api.ci".to_owned(), Fallback::Default)
    );
}

/// Go: `TestAddToVolumeSkipsBlockedRelocationForMatchingUpgradePeriodic`: both periodics are
/// in `groups.build01`, which is blocked; the upgrade periodic stays there, the other one
/// follows its file to build02.
#[test]
fn go_test_add_to_volume_skips_blocked_relocation_for_matching_upgrade_periodic() {
    let mut cfg = config("api.ci");
    farm(&mut cfg, "aws", "build01", &[]);
    farm(&mut cfg, "gcp", "build02", &[]);
    group(
        &mut cfg,
        "build01",
        &["periodic-build01-upgrade", "periodic-something-else"],
        &[],
    );
    let inv = inventory(vec![
        blocked(cluster("build01", "aws", 100)),
        cluster("build02", "gcp", 100),
    ]);
    let files = vec![file(
        "foo-periodics.yaml",
        vec![
            periodic("periodic-build01-upgrade"),
            periodic("periodic-something-else"),
        ],
    )];
    let vols = runs(&[
        ("periodic-build01-upgrade", 1.0),
        ("periodic-something-else", 1.0),
    ]);
    let plan = run(&cfg, &inv, &files, Some(&vols), None, &balanced()).expect("plans");
    assert_eq!(file_cluster(&plan, "foo-periodics.yaml"), Some("build02"));
    assert_eq!(
        job_cluster(&plan, "periodic-build01-upgrade"),
        Some("build01")
    );
    assert_eq!(
        job_cluster(&plan, "periodic-something-else"),
        Some("build02")
    );
}

// ---------------------------------------------------------------------------------------
// Reconciling inventory changes, and the backup PR
// ---------------------------------------------------------------------------------------

/// Go: `TestClusterInventoryDigestIsCanonical`: the same clusters, capabilities and blocked
/// clusters in another order give the same inventory digest.
#[test]
fn go_test_cluster_inventory_digest_is_canonical() {
    let first = "gcp:\n- name: build02\n  capacity: 50\n  capabilities: [kvm, amd64]\naws:\n- name: build01\n  capacity: 100\n  capabilities: [arm64, amd64]\n- name: build04\n  blocked: true\n- name: build03\n  blocked: true\n";
    let second = "aws:\n- name: build03\n  blocked: true\n- name: build04\n  blocked: true\n- name: build01\n  capacity: 100\n  capabilities: [amd64, arm64]\ngcp:\n- name: build02\n  capacity: 50\n  capabilities: [amd64, kvm]\n";
    let digest = |text: &str| {
        let (inv, diags) = parse_inventory(text.as_bytes(), CLUSTERS_PATH);
        assert!(diags.is_empty(), "{diags:?}");
        dispatcher_formats::inventory_digest(&inv)
    };
    assert_eq!(digest(first), digest(second));
}

/// A release on disk, a store, and fakes for Prometheus and the backup PR.
struct World {
    _dir: tempfile::TempDir,
    release: PathBuf,
    stores: Stores,
    prometheus_down: Arc<AtomicBool>,
    pr: Arc<FakePr>,
}

/// The inventory every reconciler test starts from.
const INVENTORY: &str = "aws:\n- name: build01\n  capacity: 100\n  capabilities:\n  - amd64\n- name: build02\n  capacity: 100\n";

/// [`INVENTORY`] with build01 at capacity 50.
fn half_capacity() -> String {
    INVENTORY.replace(
        "  capacity: 100\n  capabilities",
        "  capacity: 50\n  capabilities",
    )
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let release = dir.path().join("release");
        write(&release, CONFIG_PATH, "default: build01\n");
        write(&release, CLUSTERS_PATH, INVENTORY);
        write(
            &release,
            "ci-operator/jobs/org/repo/org-repo-main-presubmits.yaml",
            "presubmits:\n  org/repo:\n  - agent: kubernetes\n    name: pull-ci-org-repo-main-unit\n    spec:\n      containers:\n      - image: ci-operator:latest\n",
        );
        let stores = dispatcher_app::local::open(&dir.path().join("store")).expect("store");
        Self {
            _dir: dir,
            release,
            stores,
            prometheus_down: Arc::default(),
            pr: Arc::default(),
        }
    }

    fn recomputer(&self, with_pr: bool) -> Recomputer {
        Recomputer {
            stores: self.stores.clone(),
            repo: Arc::new(LocalRepo {
                path: self.release.clone(),
                clusters: None,
                limits: Default::default(),
            }),
            demand: Arc::new(FakePrometheus(Arc::clone(&self.prometheus_down))),
            fallback: with_pr.then(|| Arc::clone(&self.pr) as Arc<dyn FallbackPublisher>),
            settings: Settings::default(),
            max_deleted: dispatcher_app::publish::MAX_DELETED,
            notifier: None,
            pull_requests: None,
        }
    }

    fn set_inventory(&self, text: &str) {
        write(&self.release, CLUSTERS_PATH, text);
    }

    /// A recompute by `trigger`; `Ok` when it published.
    async fn recompute(&self, trigger: Trigger, attempt: &str, now: i64) -> Result<(), String> {
        let request = RecomputeRequest {
            trigger,
            ..RecomputeRequest::weekly()
        };
        self.recomputer(false)
            .run(&request, attempt, now)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// What a push that touches no watched path asks for: a full recompute when the
    /// inventory is not the last one processed, else nothing.
    async fn push(&self) -> PushDecision {
        let event = PushEvent {
            git_ref: "refs/heads/main".to_owned(),
            before: "before".to_owned(),
            after: "after".to_owned(),
            deleted: false,
            forced: false,
            commits: vec![PushCommit {
                modified: vec!["README.md".to_owned()],
                ..PushCommit::default()
            }],
            repository: PushRepository {
                full_name: "openshift/release".to_owned(),
                default_branch: "main".to_owned(),
            },
        };
        let repo = LocalRepo {
            path: self.release.clone(),
            clusters: None,
            limits: Default::default(),
        };
        push::decide(&event, "openshift/release", &repo, &*self.stores.table)
            .await
            .expect("decides")
    }

    async fn marker(&self, name: &str) -> Option<String> {
        self.stores.table.marker(name).await.expect("marker")
    }

    async fn generation(&self) -> u64 {
        self.stores
            .table
            .pointer()
            .await
            .expect("pointer")
            .map_or(0, |p| p.generation)
    }
}

fn is_full(d: &PushDecision) -> bool {
    matches!(
        d,
        PushDecision::Recompute {
            mode: Mode::Full,
            ..
        }
    )
}

struct FakePrometheus(Arc<AtomicBool>);

#[async_trait]
impl DemandSource for FakePrometheus {
    async fn demand(&self, _now: i64) -> Result<Demand, SourceError> {
        if self.0.load(Ordering::SeqCst) {
            return Err(SourceError::retryable("prometheus", "the query timed out"));
        }
        Ok(Demand {
            volumes: runs(&[("pull-ci-org-repo-main-unit", 3.0)]),
            runs_digest: "sha256:runs".to_owned(),
            durations_digest: None,
            cpu_digest: None,
            memory_digest: None,
            warnings: Vec::new(),
        })
    }
}

#[derive(Default)]
struct FakePr {
    failing: AtomicBool,
    calls: AtomicUsize,
}

#[async_trait]
impl FallbackPublisher for FakePr {
    async fn publish(&self, change: &FallbackChange) -> Result<FallbackReport, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(SourceError::retryable("github", "502 Bad Gateway"));
        }
        Ok(FallbackReport {
            pull_request: 1,
            created: true,
            commit: format!("pr-of-generation-{}", change.generation),
            pushed: true,
            api_calls: 1,
        })
    }
}

/// Go: `TestFullDispatchControllerRetriesFailuresFromAnyTrigger`: a generation that failed,
/// whatever triggered it (here the weekly schedule), is retried as a full recompute by the
/// next trigger; once one succeeds, the next is routine again. Go's force flags
/// [false, true, false] are our push decisions after each run.
#[tokio::test]
async fn go_test_full_dispatch_controller_retries_failures_from_any_trigger() {
    let world = World::new();
    world
        .recompute(Trigger::Cron, "a-1", 1_000)
        .await
        .expect("publishes");
    assert!(!is_full(&world.push().await));

    // The inventory changes; the weekly run fails (Prometheus is down).
    world.set_inventory(&half_capacity());
    world.prometheus_down.store(true, Ordering::SeqCst);
    assert!(world.recompute(Trigger::Cron, "a-2", 2_000).await.is_err());
    assert_eq!(world.generation().await, 1);
    // The retry is a full recompute, on any trigger.
    assert!(is_full(&world.push().await));
    world.prometheus_down.store(false, Ordering::SeqCst);
    world
        .recompute(Trigger::Manual, "a-3", 3_000)
        .await
        .expect("publishes");
    assert!(!is_full(&world.push().await));
}

/// Go: `TestClusterConfigReconcilerRetriesFailedGeneration`: an unpublished inventory asks
/// for a full recompute; a failed one leaves it unpublished, so the next push asks again;
/// after a successful one an unchanged inventory asks for nothing.
#[tokio::test]
async fn go_test_cluster_config_reconciler_retries_failed_generation() {
    let world = World::new();
    assert!(is_full(&world.push().await));
    world.prometheus_down.store(true, Ordering::SeqCst);
    assert!(world.recompute(Trigger::Push, "a-1", 1_000).await.is_err());
    assert_eq!(world.marker(INVENTORY_BLOB).await, None);
    assert!(is_full(&world.push().await));
    world.prometheus_down.store(false, Ordering::SeqCst);
    world
        .recompute(Trigger::Push, "a-2", 2_000)
        .await
        .expect("publishes");
    assert_eq!(
        world.push().await,
        PushDecision::Ignore("no watched path changed".to_owned())
    );
}

/// Go: `TestClusterConfigReconcilerForcesUnpublishedInventory`, six of seven cases: an
/// inventory that is not the one last published (capacity, capabilities, provider or
/// blocked state changed, or none published) asks for a full recompute; the published one
/// does not, and a successful recompute records what it published. Not translated: "compiler
/// version changed" (Go versions its digest format; ours compares `_clusters.yaml` blobs,
/// which no dispatcher version changes).
#[tokio::test]
async fn go_test_cluster_config_reconciler_forces_unpublished_inventory() {
    // "missing digest".
    let world = World::new();
    assert!(is_full(&world.push().await));
    world
        .recompute(Trigger::Push, "a-1", 1_000)
        .await
        .expect("publishes");
    // "matching digest reuses snapshot"; the digest of what was published is recorded.
    assert!(!is_full(&world.push().await));
    let (inv, _) = parse_inventory(INVENTORY.as_bytes(), CLUSTERS_PATH);
    assert_eq!(
        world.marker(INVENTORY_DIGEST).await,
        Some(dispatcher_formats::inventory_digest(&inv))
    );
    for (name, current) in [
        ("capacity changed", half_capacity()),
        ("capabilities changed", INVENTORY.replace("amd64", "arm64")),
        ("provider changed", INVENTORY.replace("aws:", "gcp:")),
        (
            "blocked state changed",
            format!("{INVENTORY}- name: build03\n  blocked: true\n"),
        ),
    ] {
        world.set_inventory(&current);
        assert!(is_full(&world.push().await), "{name}");
    }
    world.set_inventory(INVENTORY);
    assert!(!is_full(&world.push().await));
}

/// Go: `TestClusterConfigReconcilerDoesNotAdvanceDigestOnFailure`: published with build01 at
/// capacity 50, now 100; the recompute fails before publishing, and the markers of what was
/// processed stay where they were.
#[tokio::test]
async fn go_test_cluster_config_reconciler_does_not_advance_digest_on_failure() {
    let world = World::new();
    world.set_inventory(&half_capacity());
    world
        .recompute(Trigger::Cron, "a-1", 1_000)
        .await
        .expect("publishes");
    let (blob, digest) = (
        world.marker(INVENTORY_BLOB).await,
        world.marker(INVENTORY_DIGEST).await,
    );
    assert!(blob.is_some() && digest.is_some());

    world.set_inventory(INVENTORY);
    assert!(is_full(&world.push().await));
    world.prometheus_down.store(true, Ordering::SeqCst);
    assert!(world.recompute(Trigger::Push, "a-2", 2_000).await.is_err());
    assert_eq!(world.marker(INVENTORY_BLOB).await, blob);
    assert_eq!(world.marker(INVENTORY_DIGEST).await, digest);
    assert_eq!(world.generation().await, 1);
}

/// Go: `TestClusterConfigReconcilerForcesProviderChange`: a cluster moving from aws to gcp
/// asks for a full recompute, which succeeds.
#[tokio::test]
async fn go_test_cluster_config_reconciler_forces_provider_change() {
    let world = World::new();
    world.set_inventory("aws:\n- name: build01\n  capacity: 100\n");
    world
        .recompute(Trigger::Cron, "a-1", 1_000)
        .await
        .expect("publishes");
    world.set_inventory("gcp:\n- name: build01\n  capacity: 100\n");
    assert!(is_full(&world.push().await));
    world
        .recompute(Trigger::Push, "a-2", 2_000)
        .await
        .expect("publishes");
    assert!(!is_full(&world.push().await));
}

/// Go: `TestFallbackPublicationMarkerLifecycle`: nothing is pending at first; a backup PR
/// that fails after its generation was published stays pending; the retry that succeeds
/// clears it; retrying again finds nothing pending.
#[tokio::test]
async fn go_test_fallback_publication_marker_lifecycle() {
    let world = World::new();
    let recomputer = world.recomputer(true);
    assert_eq!(recomputer.retry_fallback().await.expect("retries"), None);

    world.pr.failing.store(true, Ordering::SeqCst);
    let outcome = recomputer
        .run(&RecomputeRequest::weekly(), "a-1", 1_000)
        .await
        .expect("publishes");
    assert!(
        matches!(outcome.fallback, FallbackStatus::Failed(_)),
        "{:?}",
        outcome.fallback
    );
    assert_eq!(world.marker(FALLBACK_PENDING).await.as_deref(), Some("1"));

    world.pr.failing.store(false, Ordering::SeqCst);
    let retried = recomputer.retry_fallback().await.expect("retries");
    assert!(
        matches!(retried, Some(FallbackStatus::Published(_))),
        "{retried:?}"
    );
    assert_eq!(world.marker(FALLBACK_PENDING).await.as_deref(), Some(""));
    assert_eq!(world.pr.calls.load(Ordering::SeqCst), 2);

    assert_eq!(recomputer.retry_fallback().await.expect("retries"), None);
    assert_eq!(world.pr.calls.load(Ordering::SeqCst), 2);
}
