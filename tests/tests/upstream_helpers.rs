//! ci-tools' `pkg/dispatcher/helpers_test.go` (HEAD `52352cd19`), translated: the inventory
//! loader (`loadClusterConfigFromBytes`), a file's most used static cluster
//! (`FindMostUsedCluster`), target resolution (`DetermineTargetCluster`) and inventory
//! change detection (`HasCapacityOrCapabilitiesChanged`), each checked against ours. Each
//! test names the Go test it comes from; a case that differs on purpose says why.

mod upstream_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dispatcher_core::model::{Inventory, Job, JobKind};
use dispatcher_core::rules::{Decision, Fallback, Rule, resolve_target};
use dispatcher_core::{Diagnostic, Settings, Severity, Strategy};
use dispatcher_formats::{inventory_digest, parse_inventory};
use upstream_support::*;

const CLUSTERS: &str = "core-services/sanitize-prow-jobs/_clusters.yaml";

fn resolve() -> Settings {
    Settings {
        strategy: Strategy::Resolve,
        ..Settings::default()
    }
}

/// `job` of this kind (Go's tables fill presubmits, postsubmits and periodics).
fn of_kind(mut j: Job, kind: JobKind) -> Job {
    j.kind = kind;
    j
}

fn fatal(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Fatal)
        .collect()
}

/// Go: `TestFindMostUsedCluster`, all six cases.
///
/// Ours has no public `FindMostUsedCluster`: the file's most used static cluster is what a
/// `resolve` run hands to target resolution as C when a job's own target is blocked (what
/// `sanitize-prow-jobs` does). So each case's jobs go into one file together with a probe
/// job listed in a group whose cluster is blocked; the probe follows the file's most used
/// static cluster, and Go's "" (no cluster) shows as the probe falling back to `default`.
#[test]
fn go_test_find_most_used_cluster() {
    type Case = (&'static str, Vec<Job>, &'static str);
    let pre = |c: &str| on(of_kind(job("x"), JobKind::Presubmit), c);
    let post = |c: &str| on(of_kind(job("x"), JobKind::Postsubmit), c);
    let periodic = |c: &str| on(of_kind(job("x"), JobKind::Periodic), c);
    let cases: Vec<Case> = vec![
        ("no jobs", vec![], ""),
        ("single presubmit job", vec![pre("build01")], "build01"),
        (
            "multiple jobs same cluster",
            vec![pre("build01"), post("build01"), periodic("build01")],
            "build01",
        ),
        (
            "multiple jobs different clusters",
            vec![pre("build01"), post("build02"), periodic("build01")],
            "build01",
        ),
        (
            "equal usage chooses lexical cluster",
            vec![pre("build02"), pre("build01")],
            "build01",
        ),
        (
            "empty cluster does not win a named tie",
            // Go's `JobBase{}` has no cluster: ours is `None`.
            vec![job("x"), pre("build02"), pre("build01")],
            "build01",
        ),
    ];
    let inv = inventory(vec![
        cluster("build01", "aws", 100),
        cluster("build02", "gcp", 100),
        cluster("build03", "aws", 100),
        blocked(cluster("gone", "aws", 100)),
    ]);
    let mut cfg = config("build03");
    group(&mut cfg, "gone", &["probe"], &[]);
    for (name, jobs, expected) in cases {
        // Go's jobs have no names; ours need distinct ones.
        let mut jobs: Vec<Job> = jobs
            .into_iter()
            .enumerate()
            .map(|(i, mut j)| {
                j.name = format!("job-{i}");
                j
            })
            .collect();
        jobs.push(job("probe"));
        let files = vec![file("org/repo/org-repo-main-presubmits.yaml", jobs)];
        let plan = run(&cfg, &inv, &files, None, None, &resolve()).unwrap();
        let probe = &plan.jobs["probe"];
        let want = if expected.is_empty() {
            // No most used cluster: C = D, which is blocked, so `default`.
            "build03"
        } else {
            expected
        };
        assert_eq!(probe.cluster.as_deref(), Some(want), "{name}");
        assert_eq!(probe.rule, Rule::GroupName, "{name}");
        let follows = if expected.is_empty() {
            "target blocked: default cluster"
        } else {
            "pinned cluster gone is blocked: follows its file"
        };
        assert!(probe.detail.contains(follows), "{name}: {}", probe.detail);
    }
}

/// Go: `TestDetermineTargetCluster`, all five cases: `resolve_target` with C = `cluster`,
/// D = `determinedCluster`, R = `canBeRelocated`, Go's blocked set as blocked inventory
/// clusters.
#[test]
fn go_test_determine_target_cluster() {
    struct Case {
        name: &'static str,
        blocked: &'static [&'static str],
        relocatable: bool,
        want: &'static str,
        fallback: Fallback,
    }
    let cases = [
        Case {
            name: "relocate to cluster for a test group",
            blocked: &[],
            relocatable: true,
            want: "build01",
            fallback: Fallback::None,
        },
        Case {
            name: "can't relocate to cluster for a test group",
            blocked: &[],
            relocatable: false,
            want: "build02",
            fallback: Fallback::None,
        },
        Case {
            name: "both clusters are blocked, relocate to default",
            blocked: &["build01", "build02"],
            relocatable: false,
            want: "build03",
            fallback: Fallback::Default,
        },
        Case {
            name: "determined is blocked, relocate to a group cluster despite canBeRelocated=false",
            blocked: &["build02"],
            relocatable: false,
            want: "build01",
            fallback: Fallback::FollowsFile,
        },
        Case {
            name: "group cluster is blocked, use determined cluster",
            blocked: &["build01"],
            relocatable: false,
            want: "build02",
            fallback: Fallback::None,
        },
    ];
    for c in cases {
        let inv = inventory(
            ["build01", "build02", "build03"]
                .into_iter()
                .map(|n| {
                    let x = cluster(n, "aws", 100);
                    if c.blocked.contains(&n) {
                        blocked(x)
                    } else {
                        x
                    }
                })
                .collect(),
        );
        let decision = Decision {
            cluster: Some("build02".to_owned()),
            relocatable: c.relocatable,
            rule: if c.relocatable {
                Rule::BuildFarm
            } else {
                Rule::GroupName
            },
            detail: String::new(),
            set: Arc::from(Vec::<String>::new()),
        };
        let got = resolve_target(&inv, "build03", "some-job", Some("build01"), &decision);
        assert_eq!(got, Ok((c.want.to_owned(), c.fallback)), "{}", c.name);
    }
}

/// The usable clusters of an inventory as Go's `ClusterMap` shows them (name -> provider,
/// capacity, capabilities), and its blocked set. Ours keeps blocked clusters in the
/// inventory with `blocked: true`; Go drops them into a separate set.
type Usable = BTreeMap<String, (String, u32, Vec<String>)>;

fn split(inv: &Inventory) -> (Usable, BTreeSet<String>) {
    let usable = inv
        .clusters
        .values()
        .filter(|c| !c.blocked)
        .map(|c| {
            (
                c.name.clone(),
                (
                    c.provider.clone(),
                    c.capacity,
                    c.capabilities.iter().cloned().collect(),
                ),
            )
        })
        .collect();
    let blocked = inv
        .clusters
        .values()
        .filter(|c| c.blocked)
        .map(|c| c.name.clone())
        .collect();
    (usable, blocked)
}

fn usable(rows: &[(&str, &str, u32, &[&str])]) -> Usable {
    rows.iter()
        .map(|(n, p, cap, caps)| {
            (
                (*n).to_owned(),
                (
                    (*p).to_owned(),
                    *cap,
                    caps.iter().map(|s| (*s).to_owned()).collect(),
                ),
            )
        })
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Go: `TestLoadClusterConfigFromBytes`, all three cases. Go's loader returns no error for
/// any of them; ours has no fatal diagnostic (it warns where it clamps).
#[test]
fn go_test_load_cluster_config_from_bytes() {
    let cases: [(&str, &str, Usable, BTreeSet<String>); 3] = [
        (
            "Valid config with AWS and GCP",
            "
aws:
  - name: build01
    capacity: 80
    capabilities:
      - aarch64
      - amd64
      - intranet
  - name: build03
  - name: build09
    blocked: true
  - name: build99
    capacity: -99 #will be blocked as well
gcp:
  - name: build02
    capacity: 60
    capabilities:
      - intranet
",
            usable(&[
                ("build01", "aws", 80, &["aarch64", "amd64", "intranet"]),
                ("build03", "aws", 100, &[]),
                ("build02", "gcp", 60, &["intranet"]),
            ]),
            names(&["build09", "build99"]),
        ),
        (
            "Config with missing capacities and capabilities",
            "
aws:
  - name: build01
    capacity: 101 #capacity to 100
gcp:
  - name: build02
    capabilities:
      - intranet
  - name: build03
    blocked: true
",
            usable(&[
                ("build01", "aws", 100, &[]),
                ("build02", "gcp", 100, &["intranet"]),
            ]),
            names(&["build03"]),
        ),
        (
            "Empty config",
            "\naws: []\ngcp: []\n",
            usable(&[]),
            names(&[]),
        ),
    ];
    for (name, yaml, want_usable, want_blocked) in cases {
        let (inv, diags) = parse_inventory(yaml.as_bytes(), CLUSTERS);
        assert!(fatal(&diags).is_empty(), "{name}: {diags:?}");
        let (got_usable, got_blocked) = split(&inv);
        assert_eq!(got_usable, want_usable, "{name}");
        assert_eq!(got_blocked, want_blocked, "{name}");
    }
}

/// Go: `TestLoadClusterConfigFromBytesRejectsDuplicateClusters`.
#[test]
fn go_test_load_cluster_config_from_bytes_rejects_duplicate_clusters() {
    let (_, diags) = parse_inventory(
        b"\naws:\n- name: build01\ngcp:\n- name: build01\n",
        CLUSTERS,
    );
    let fatal = fatal(&diags);
    assert_eq!(fatal.len(), 1, "{diags:?}");
    assert!(fatal[0].message.contains("duplicate"), "{}", fatal[0]);
}

/// Go: `TestLoadClusterConfigFromBytesRejectsEmptyClusterName`.
#[test]
fn go_test_load_cluster_config_from_bytes_rejects_empty_cluster_name() {
    let (inv, diags) = parse_inventory(b"\naws:\n- capacity: 100\n", CLUSTERS);
    let fatal = fatal(&diags);
    assert_eq!(fatal.len(), 1, "{diags:?}");
    assert!(fatal[0].message.contains("empty"), "{}", fatal[0]);
    assert!(inv.clusters.is_empty());
}

/// Go: `TestLoadClusterConfigFromBytesRejectsUnsupportedProvider`.
#[test]
fn go_test_load_cluster_config_from_bytes_rejects_unsupported_provider() {
    let (inv, diags) = parse_inventory(b"\nawss:\n- name: build01\n", CLUSTERS);
    let fatal = fatal(&diags);
    assert_eq!(fatal.len(), 1, "{diags:?}");
    assert!(
        fatal[0].message.contains("unsupported cloud provider"),
        "{}",
        fatal[0]
    );
    assert!(inv.clusters.is_empty());
}

/// Go: `TestHasCapacityOrCapabilitiesChanged`, all five cases.
///
/// Ours has no `force` flag to compute: a change of `_clusters.yaml` (its blob SHA) starts
/// a full recompute, and a plan records the digest of the inventory as placement sees it
/// (`inventory_digest`, canonical JSON of the parsed inventory). The counterpart of Go's
/// "changed" is that digest changing.
#[test]
fn go_test_has_capacity_or_capabilities_changed() {
    type Row = (&'static str, &'static str, u32, &'static [&'static str]);
    let inv = |rows: &[Row]| {
        inventory(
            rows.iter()
                .map(|(n, p, cap, caps)| capable(cluster(n, p, *cap), caps))
                .collect(),
        )
    };
    const ARM: &[&str] = &["aarch64", "intranet", "rce", "sshd-bastion"];
    const AMD: &[&str] = &["amd64", "intranet", "rce", "sshd-bastion"];
    let base: &[Row] = &[("build01", "AWS", 10, ARM), ("build02", "GCP", 20, AMD)];
    let cases: [(&str, &[Row], &[Row], bool); 5] = [
        ("No change in capacity or capabilities", base, base, false),
        (
            "Change in capacity for build01",
            base,
            &[("build01", "AWS", 15, ARM), ("build02", "GCP", 20, AMD)],
            true,
        ),
        (
            "Change in capabilities for build02",
            base,
            &[("build01", "AWS", 10, ARM), ("build02", "GCP", 20, ARM)],
            true,
        ),
        (
            "Change in provider for build01",
            &[("build01", "AWS", 10, &["amd64"])],
            &[("build01", "GCP", 10, &["amd64"])],
            true,
        ),
        (
            "No corresponding clusters in next map",
            base,
            &[("build03", "AWS", 15, ARM)],
            // Differs on purpose: Go only compares clusters present in both maps, because
            // it only decides whether the dispatch it runs anyway (clusters were enabled
            // and disabled) is forced. Ours has no unforced full run: any change of the
            // inventory, clusters added or removed included, is a change.
            true,
        ),
    ];
    for (name, prev, next, changed) in cases {
        let (prev, next) = (inv(prev), inv(next));
        assert_eq!(
            inventory_digest(&prev) != inventory_digest(&next),
            changed,
            "{name}"
        );
    }
}
