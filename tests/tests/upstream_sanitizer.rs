//! ci-tools' `pkg/sanitizer/determinize_test.go` (HEAD `52352cd19`), translated: what
//! `sanitize-prow-jobs` writes into a job's static `cluster:` field is what our `resolve`
//! computes. Each test names the Go test it comes from; a case that differs on purpose
//! says why.

mod upstream_support;

use dispatcher_core::rules::Rule;
use dispatcher_core::{Settings, Strategy};
use dispatcher_formats::writeback::is_ci_operator_latest;
use upstream_support::*;

fn resolve() -> Settings {
    Settings {
        strategy: Strategy::Resolve,
        ..Settings::default()
    }
}

/// Go: `TestDefaultJobConfig`. Every Kubernetes job of a file without any matching rule
/// gets `default`, including one whose static field names the alias `default`.
#[test]
fn go_test_default_job_config() {
    let cfg = config("api.ci");
    // Go's empty JobBases share the name ""; ours need distinct names. A usable cluster
    // must exist, or nothing is placed at all (F4b), so one that no rule names is added.
    let inv = inventory(vec![cluster("build99", "aws", 100)]);
    let files = vec![file(
        "a/b/a-b-presubmits.yaml",
        vec![
            job("pre-a-0"),
            job("pre-a-1"),
            on(job("pre-a-2"), "default"),
            job("pre-b-0"),
        ],
    )];
    let plan = run(&cfg, &inv, &files, None, None, &resolve()).unwrap();
    for (name, e) in &plan.jobs {
        assert_eq!(e.cluster.as_deref(), Some("api.ci"), "{name}");
    }
}

/// Go: `TestDetermineClusterPreservesValidBuildFarmCluster`, all six cases.
#[test]
fn go_test_determine_cluster_preserves_valid_build_farm_cluster() {
    struct Case {
        name: &'static str,
        job_cluster: &'static str,
        blocked: &'static [&'static str],
        build_farm: &'static [&'static str],
        manual: &'static [&'static str],
        group: bool,
        expected: &'static str,
        rule: Rule,
    }
    let cases = [
        Case {
            name: "preserves existing valid build farm cluster",
            job_cluster: "build01",
            blocked: &[],
            build_farm: &["build01", "build02"],
            manual: &[],
            group: false,
            expected: "build01",
            rule: Rule::StaticCluster,
        },
        Case {
            name: "preserves existing manual cluster",
            job_cluster: "app.ci",
            blocked: &[],
            build_farm: &[],
            manual: &["app.ci"],
            group: false,
            expected: "app.ci",
            rule: Rule::StaticCluster,
        },
        Case {
            name: "does not preserve blocked manual cluster",
            job_cluster: "app.ci",
            blocked: &["app.ci"],
            build_farm: &[],
            manual: &["app.ci"],
            group: false,
            expected: "api.ci",
            rule: Rule::ManualCluster,
        },
        Case {
            name: "uses algorithm when cluster is blocked",
            job_cluster: "build01",
            blocked: &["build01"],
            build_farm: &["build01", "build02"],
            manual: &[],
            group: true,
            expected: "special-cluster",
            rule: Rule::GroupName,
        },
        Case {
            name: "uses algorithm when cluster is not in build farm",
            job_cluster: "some-other-cluster",
            blocked: &[],
            build_farm: &["build01", "build02"],
            manual: &[],
            group: true,
            expected: "special-cluster",
            rule: Rule::GroupName,
        },
        Case {
            name: "uses algorithm when cluster is empty",
            job_cluster: "",
            blocked: &[],
            build_farm: &[],
            manual: &[],
            group: true,
            expected: "special-cluster",
            rule: Rule::GroupName,
        },
    ];
    for c in cases {
        let mut cfg = config("api.ci");
        cfg.manual_clusters = c.manual.iter().map(|s| (*s).to_owned()).collect();
        if c.group {
            group(&mut cfg, "special-cluster", &["test-job"], &[]);
        }
        // Go's blocked set and build farm, as one inventory; a usable cluster that no
        // rule names keeps the run from refusing to place anything (F4b).
        let mut clusters = vec![cluster("build99", "aws", 100)];
        for name in c.build_farm {
            clusters.push(cluster(name, "aws", 100));
        }
        for name in c.blocked {
            match clusters.iter_mut().find(|x| x.name == *name) {
                Some(x) => x.blocked = true,
                None => clusters.push(blocked(cluster(name, "aws", 100))),
            }
        }
        let j = if c.job_cluster.is_empty() {
            job("test-job")
        } else {
            on(job("test-job"), c.job_cluster)
        };
        let files = vec![file("org/repo/test.yaml", vec![j])];
        let plan = run(&cfg, &inventory(clusters), &files, None, None, &resolve()).unwrap();
        let e = &plan.jobs["test-job"];
        assert_eq!(e.cluster.as_deref(), Some(c.expected), "{}", c.name);
        assert_eq!(e.rule, c.rule, "{}", c.name);
    }
}

/// Go: `TestIsCIOperatorLatest`, all five cases.
#[test]
fn go_test_is_ci_operator_latest() {
    for (image, expected) in [
        ("ci-operator:latest", true),
        (
            "quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest",
            true,
        ),
        ("registry/namespace/ci-operator:latest", true),
        ("registry/namespace/ci-operator:other", false),
        ("other-image:latest", false),
    ] {
        assert_eq!(is_ci_operator_latest(image), expected, "{image}");
    }
}
