//! ci-tools' `pkg/dispatcher/config_test.go` (HEAD `52352cd19`), translated: loading and
//! validating `_config.yaml` and the per-job rule ladder (`DetermineClusterForJob`). Go's
//! `LoadConfig` is our `parse_config` plus `Rules::compile` (which compiles the group
//! regexes), Go's `Validate` and `SynchronizeBuildFarm` errors are our fatal diagnostics,
//! and Go's `DetermineClusterForJob` is `upstream_support::decide`. Each test names the Go
//! test it comes from; a case that differs on purpose says why.

mod upstream_support;

use std::collections::BTreeMap;

use dispatcher_core::model::{DispatcherConfig, Inventory, Job, labels};
use dispatcher_core::rules::{Rule, Rules};
use dispatcher_core::{Diagnostic, Inputs, Settings, Severity};
use dispatcher_formats::writeback::rewrite_build_farm;
use dispatcher_formats::{CLUSTERS_PATH, CONFIG_PATH, Release, assemble, parse_config};
use upstream_support::*;

const FILE: &str = "_config.yaml";

/// `groups.api.ci.jobs` of every Go fixture.
const API_CI_JOBS: &[&str] = &[
    "pull-ci-openshift-release-master-build01-dry",
    "pull-ci-openshift-release-master-core-dry",
    "pull-ci-openshift-release-master-services-dry",
    "periodic-acme-cert-issuer-for-build01",
];

/// `groups.<build01>.jobs` of every Go fixture.
const BUILD01_JOBS: &[&str] = &[
    "periodic-build01-upgrade",
    "periodic-ci-image-import-to-build01",
    "pull-ci-openshift-config-master-format",
    "pull-ci-openshift-psap-special-resource-operator-release-4.6-images",
    "pull-ci-openshift-psap-special-resource-operator-release-4.6-unit",
    "pull-ci-openshift-psap-special-resource-operator-release-4.6-verify",
];

const OLD_BUILD01: &str = "ci/api-build01-ci-devcluster-openshift-com:6443";

/// `testdata/TestLoadConfig/good_config.yaml`.
const GOOD_CONFIG: &str = r#"default: api.ci
groups:
  "api.ci":
    paths:
      - ".*-postsubmits.yaml$"
      - ".*-periodics.yaml$"
    jobs:
      - pull-ci-openshift-release-master-build01-dry
      - pull-ci-openshift-release-master-core-dry
      - pull-ci-openshift-release-master-services-dry
      - periodic-acme-cert-issuer-for-build01
  "ci/api-build01-ci-devcluster-openshift-com:6443":
    paths:
      - ".*openshift-priv/.*-presubmits.yaml$"
    jobs:
      - periodic-build01-upgrade
      - periodic-ci-image-import-to-build01
      - pull-ci-openshift-config-master-format
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-images
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-unit
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-verify
"#;

/// `testdata/TestLoadConfig/good_config_with_build_farm.yaml`.
const GOOD_CONFIG_WITH_BUILD_FARM: &str = r#"default: api.ci
groups:
  "api.ci":
    paths:
      - ".*-postsubmits.yaml$"
      - ".*openshift/release/.*-periodics.yaml$"
      - ".*-periodics.yaml$"
    jobs:
      - pull-ci-openshift-release-master-build01-dry
      - pull-ci-openshift-release-master-core-dry
      - pull-ci-openshift-release-master-services-dry
      - periodic-acme-cert-issuer-for-build01
  "build01":
    paths:
      - ".*openshift-priv/.*-presubmits.yaml$"
    jobs:
      - periodic-build01-upgrade
      - periodic-ci-image-import-to-build01
      - pull-ci-openshift-config-master-format
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-images
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-unit
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-verify
buildFarm:
  aws:
    build01: {}
  gcp: 
    build02: {}
"#;

/// `testdata/TestLoadConfig/good_config_with_build_farm_with_jobs.yaml`.
const GOOD_CONFIG_WITH_BUILD_FARM_WITH_JOBS: &str = r#"default: api.ci
noBuilds:
  - build03
kvm:
  - build02
groups:
  "api.ci":
    paths:
      - ".*-postsubmits.yaml$"
      - ".*-periodics.yaml$"
    jobs:
      - pull-ci-openshift-release-master-build01-dry
      - pull-ci-openshift-release-master-core-dry
      - pull-ci-openshift-release-master-services-dry
      - periodic-acme-cert-issuer-for-build01
  "build01":
    paths:
      - ".*openshift-priv/.*-presubmits.yaml$"
    jobs:
      - periodic-build01-upgrade
      - periodic-ci-image-import-to-build01
      - pull-ci-openshift-config-master-format
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-images
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-unit
      - pull-ci-openshift-psap-special-resource-operator-release-4.6-verify
buildFarm:
  aws:
    build01:
      filenames:
        - "some-build-farm-presubmits.yaml"
  gcp: 
    build02: {}
"#;

/// `testdata/TestLoadConfig/invalid_regex.yaml`.
const INVALID_REGEX: &str = r#"default: api.ci
groups:
  "default":
    paths:
      - "["
      - "[0-9]++"
"#;

/// `testdata/TestLoadConfig/invalid_yaml.yaml`.
const INVALID_YAML: &str = "invalid yaml format\n";

/// Go's `c`.
fn config_c() -> DispatcherConfig {
    let mut cfg = config("api.ci");
    group(
        &mut cfg,
        "api.ci",
        API_CI_JOBS,
        &[".*-postsubmits.yaml$", ".*-periodics.yaml$"],
    );
    group(
        &mut cfg,
        OLD_BUILD01,
        BUILD01_JOBS,
        &[".*openshift-priv/.*-presubmits.yaml$"],
    );
    cfg
}

/// Go's `configWithBuildFarm`.
fn config_with_build_farm() -> DispatcherConfig {
    let mut cfg = config("api.ci");
    group(
        &mut cfg,
        "api.ci",
        API_CI_JOBS,
        &[
            ".*-postsubmits.yaml$",
            ".*openshift/release/.*-periodics.yaml$",
            ".*-periodics.yaml$",
        ],
    );
    group(
        &mut cfg,
        "build01",
        BUILD01_JOBS,
        &[".*openshift-priv/.*-presubmits.yaml$"],
    );
    farm(&mut cfg, "aws", "build01", &[]);
    farm(&mut cfg, "gcp", "build02", &[]);
    cfg
}

/// Go's `configWithBuildFarmWithJobs`.
fn config_with_build_farm_with_jobs() -> DispatcherConfig {
    let mut cfg = config("api.ci");
    cfg.kvm = vec!["build02".to_owned()];
    cfg.no_builds = vec!["build03".to_owned()];
    group(
        &mut cfg,
        "api.ci",
        API_CI_JOBS,
        &[".*-postsubmits.yaml$", ".*-periodics.yaml$"],
    );
    group(
        &mut cfg,
        "build01",
        BUILD01_JOBS,
        &[".*openshift-priv/.*-presubmits.yaml$"],
    );
    farm(
        &mut cfg,
        "aws",
        "build01",
        &["some-build-farm-presubmits.yaml"],
    );
    farm(&mut cfg, "gcp", "build02", &[]);
    cfg
}

/// Go's `configWithBuildFarmWithJobsAndDetermineE2EByJob`.
fn config_with_build_farm_with_jobs_and_e2e() -> DispatcherConfig {
    DispatcherConfig {
        determine_e2e_by_job: true,
        ..config_with_build_farm_with_jobs()
    }
}

/// `job` with another agent.
fn with_agent(mut j: Job, agent: &str) -> Job {
    j.agent = agent.to_owned();
    j
}

/// `job` whose only container runs `image`.
fn with_image(mut j: Job, image: &str) -> Job {
    j.containers[0].image = image.to_owned();
    j
}

/// Go's paths are either relative (`org/repo/x.yaml`) or start with `ci-operator/jobs/`;
/// `decide` wants them relative to `ci-operator/jobs/`.
fn relative(path: &str) -> &str {
    path.strip_prefix(JOBS).unwrap_or(path)
}

/// Go's `(cluster, mayBeRelocated, nil)` as ours.
fn placed(d: &Result<dispatcher_core::rules::Decision, String>) -> (Option<&str>, bool) {
    let d = d.as_ref().expect("a decision");
    (d.cluster.as_deref(), d.relocatable)
}

/// Our `validate` over a config and an inventory, without job files.
fn validate(cfg: &DispatcherConfig, inv: &Inventory) -> Vec<Diagnostic> {
    let inputs = Inputs {
        config: cfg,
        inventory: inv,
        files: &[],
        volumes: None,
        previous: None,
        digests: Default::default(),
        sources: Default::default(),
        diagnostics: vec![],
    };
    dispatcher_core::validate(&inputs, &Settings::default())
}

/// The fatal findings, as (key, message).
fn fatal(diags: &[Diagnostic]) -> Vec<(String, String)> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Fatal)
        .map(|d| (d.key.clone(), d.message.clone()))
        .collect()
}

/// Go's `IsInBuildFarm`: the cloud whose build-farm clusters include `cluster`.
fn is_in_build_farm(rules: &Rules<'_>, cluster: &str) -> Option<String> {
    rules
        .farm_cloud
        .iter()
        .find(|(_, clusters)| clusters.iter().any(|c| c == cluster))
        .map(|(cloud, _)| cloud.clone())
}

/// Go's derived `BuildFarmCloud`: provider -> sorted build-farm clusters.
fn farm_cloud(rules: &Rules<'_>) -> BTreeMap<String, Vec<String>> {
    rules
        .farm_cloud
        .iter()
        .map(|(k, v)| (k.clone(), v.to_vec()))
        .collect()
}

fn cloud_map(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

/// Go: `TestLoadConfig`, all six cases.
#[test]
fn go_test_load_config() {
    // "file not exist": our config is read from the release, not from a path of its own; a
    // release without `_config.yaml` is a fatal finding naming it, as Go's read error is.
    let release = Release {
        clusters: Some(b"aws:\n- name: build01\n".to_vec()),
        ..Release::default()
    };
    let loaded = assemble(release, None, "release");
    let fatal_config: Vec<&Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Fatal && d.file == CONFIG_PATH)
        .collect();
    assert_eq!(fatal_config.len(), 1, "{:?}", loaded.diagnostics);
    assert!(
        fatal_config[0].message.contains("not found"),
        "{}",
        fatal_config[0]
    );
    assert!(
        loaded.diagnostics.iter().all(|d| d.file != CLUSTERS_PATH),
        "{:?}",
        loaded.diagnostics
    );

    // "invalid yaml": a scalar is not a config.
    let (_, diags) = parse_config(INVALID_YAML.as_bytes(), FILE);
    assert_eq!(fatal(&diags).len(), 1, "{diags:?}");
    assert!(
        diags[0]
            .message
            .contains("expected a mapping, found a string"),
        "{}",
        diags[0]
    );

    // "invalid regex": both patterns are refused, each named by its index, as in Go's
    // aggregate error. Go's messages are `missing closing ]` and `invalid nested repetition
    // operator`; ours quote the parser (RE2-checked) after the pattern.
    let (cfg, diags) = parse_config(INVALID_REGEX.as_bytes(), FILE);
    assert!(diags.is_empty(), "{diags:?}");
    let errors = Rules::compile(&cfg, &inventory(vec![]), "vsphere02", FILE).unwrap_err();
    let found = fatal(&errors);
    assert_eq!(found.len(), 2, "{errors:?}");
    assert_eq!(found[0].0, "groups.default.paths[0]");
    assert!(
        found[0].1.starts_with("regex \"[\" does not compile"),
        "{}",
        found[0].1
    );
    assert_eq!(found[1].0, "groups.default.paths[1]");
    assert!(
        found[1]
            .1
            .contains("invalid nested repetition operator: `++`"),
        "{}",
        found[1].1
    );

    // The three good configs read as Go's fixtures, and their regexes compile. Go's derived
    // `BuildFarmCloud` is ours from the inventory (authoritative, as HEAD's
    // `SynchronizeBuildFarm` makes it): with the inventory of the listed clusters, equal.
    for (name, text, expected, cloud) in [
        ("good config", GOOD_CONFIG, config_c(), cloud_map(&[])),
        (
            "good config with build farm",
            GOOD_CONFIG_WITH_BUILD_FARM,
            config_with_build_farm(),
            cloud_map(&[("aws", &["build01"]), ("gcp", &["build02"])]),
        ),
        (
            "good config with build farm with jobs",
            GOOD_CONFIG_WITH_BUILD_FARM_WITH_JOBS,
            config_with_build_farm_with_jobs(),
            cloud_map(&[("aws", &["build01"]), ("gcp", &["build02"])]),
        ),
    ] {
        let (cfg, diags) = parse_config(text.as_bytes(), FILE);
        assert!(diags.is_empty(), "{name}: {diags:?}");
        assert_eq!(cfg, expected, "{name}");
        let inv = farm_inventory(&cfg);
        let rules = Rules::compile(&cfg, &inv, "vsphere02", FILE).unwrap();
        assert_eq!(farm_cloud(&rules), cloud, "{name}");
    }
}

/// Go: `TestManualClustersConfigRoundTrip`. We never write the config as a whole (only its
/// `buildFarm` section, in place), so the round trip is: what Go's `SaveConfig` writes for
/// `{default: api.ci, manualClusters: [app.ci]}` reads back as that config, and it still does
/// after our writer replaced `buildFarm`.
#[test]
fn go_test_manual_clusters_config_round_trip() {
    let mut want = config("api.ci");
    want.manual_clusters = vec!["app.ci".to_owned()];
    // `sigs.k8s.io/yaml` of Go's `Config`: sorted keys, `omitempty` fields left out.
    let saved =
        "default: api.ci\ngroups: null\nkvm: null\nmanualClusters:\n- app.ci\nsshBastion: \"\"\n";
    let (mut got, diags) = parse_config(saved.as_bytes(), FILE);
    assert!(diags.is_empty(), "{diags:?}");
    // Go's empty `sshBastion` string is our `Some("")`: the ladder treats both as unset.
    assert_eq!(got.ssh_bastion.as_deref(), Some(""));
    got.ssh_bastion = None;
    assert_eq!(got, want);

    let mut farm = BTreeMap::new();
    farm.insert(
        "aws".to_owned(),
        BTreeMap::from([("build01".to_owned(), vec!["a-presubmits.yaml".to_owned()])]),
    );
    let written = rewrite_build_farm(saved, &farm);
    let (mut again, diags) = parse_config(written.as_bytes(), FILE);
    assert!(diags.is_empty(), "{diags:?}");
    again.ssh_bastion = None;
    want.build_farm = farm;
    assert_eq!(again, want);
}

/// Go: `TestGetClusterForJob`, all seven cases (Go passes an empty `ClusterMap`: our
/// inventory is empty). Go's error messages are compared as strings; ours name the same
/// regexes in other words.
#[test]
fn go_test_get_cluster_for_job() {
    let c = config_c();
    let none = inventory(vec![]);

    // "some job"
    let d = decide(
        &c,
        &none,
        &job("some-job"),
        "org/repo/some-postsubmits.yaml",
    );
    assert_eq!(placed(&d).0, Some("api.ci"), "some job");

    // "job must on build01"
    let d = decide(&c, &none, &job("periodic-build01-upgrade"), "");
    assert_eq!(placed(&d).0, Some(OLD_BUILD01), "job must on build01");

    // "some periodic job in release repo"
    let d = decide(
        &c,
        &none,
        &job("promote-release-openshift-machine-os-content-e2e-aws-4.1"),
        relative("ci-operator/jobs/openshift/release/openshift-release-release-4.1-periodics.yaml"),
    );
    assert_eq!(placed(&d).0, Some("api.ci"), "some periodic job");

    // "some jenkins job"
    let d = decide(
        &c,
        &none,
        &with_agent(job("test_branch_wildfly_images"), "jenkins"),
        relative(
            "ci-operator/jobs/openshift-s2i/s2i-wildfly/openshift-s2i-s2i-wildfly-master-postsubmits.yaml",
        ),
    );
    assert_eq!(placed(&d).0, None, "some jenkins job");

    // "error: PR 15918"
    let mut cfg = config("api.ci");
    group(&mut cfg, "build01", &[], &[".*infra-periodics.yaml$"]);
    group(
        &mut cfg,
        "build02",
        &[],
        &[".*/openshift-openshift-azure-infra-periodics.yaml$"],
    );
    let path =
        "ci-operator/jobs/openshift/openshift-azure/openshift-openshift-azure-infra-periodics.yaml";
    let err = decide(&cfg, &none, &job("some-job"), relative(path)).unwrap_err();
    assert!(
        err.contains(&format!("path {path} matches more than one entry"))
            && err.contains("\".*infra-periodics.yaml$\"")
            && err.contains("\".*/openshift-openshift-azure-infra-periodics.yaml$\""),
        "PR 15918: {err}"
    );

    // "error: PR 1722"
    let mut cfg = config("api.ci");
    group(
        &mut cfg,
        "build02",
        &[],
        &[
            ".*kubevirt-kubevirt-ssp-operator-master-presubmits.yaml$",
            ".*kubevirt-ssp-operator-master-presubmits.yaml$",
        ],
    );
    let path = "ci-operator/jobs/kubevirt/kubevirt-ssp-operator/kubevirt-kubevirt-ssp-operator-master-presubmits.yaml";
    let err = decide(&cfg, &none, &job("some-job"), relative(path)).unwrap_err();
    assert!(
        err.contains(&format!("path {path} matches more than one entry"))
            && err.contains("\".*kubevirt-kubevirt-ssp-operator-master-presubmits.yaml$\"")
            && err.contains("\".*kubevirt-ssp-operator-master-presubmits.yaml$\""),
        "error: PR 1722: {err}"
    );

    // "fix: PR 1722"
    let mut cfg = config("api.ci");
    group(
        &mut cfg,
        "build02",
        &[],
        &[
            ".*/kubevirt-kubevirt-ssp-operator-master-presubmits.yaml$",
            ".*/kubevirt-ssp-operator-master-presubmits.yaml$",
        ],
    );
    let d = decide(&cfg, &none, &job("some-job"), relative(path));
    assert_eq!(placed(&d).0, Some("build02"), "fix: PR 1722");
}

/// What Go's `DetermineClusterForJob` returns in a case.
enum Want {
    /// `(cluster, mayBeRelocated, nil)`; `None` is Go's `""` without an error.
    /// With the rule that decided.
    Placed(Option<&'static str>, bool, Rule),
    /// An error mentioning this.
    Error(&'static str),
}

/// One row of Go's table: name, config, job, path relative to `ci-operator/jobs/`, Go's
/// `ClusterMap` (if it passes one) and what Go returns.
type Case<'a> = (
    &'a str,
    &'a DispatcherConfig,
    Job,
    &'a str,
    Option<Inventory>,
    Want,
);

/// Go: `TestDetermineClusterForJob`, all 22 cases. Where Go passes no `ClusterMap`, the
/// `BuildFarmCloud` it reads comes from `buildFarm`, so our inventory is `farm_inventory`;
/// where it passes one, that is our inventory.
#[test]
fn go_test_determine_cluster_for_job() {
    let with_jobs = config_with_build_farm_with_jobs();
    let e2e = config_with_build_farm_with_jobs_and_e2e();
    let mut manual = config("api.ci");
    manual.manual_clusters = vec!["app.ci".to_owned()];
    let all_caps: &[(&str, &str)] = &[
        ("capability/intranet", "intranet"),
        ("capability/arm64", "arm64"),
        ("capability/rce", "rce"),
        ("capability/sshd-bastion", "sshd-bastion"),
        (labels::CLOUD, "gcp"),
    ];
    let caps = ["intranet", "arm64", "rce", "sshd-bastion"];
    let wildfly = "openshift-s2i/s2i-wildfly/openshift-s2i-s2i-wildfly-master-postsubmits.yaml";
    let cases: Vec<Case<'_>> = vec![
        (
            "some job",
            &with_jobs,
            job("some-job"),
            "org/repo/some-postsubmits.yaml",
            None,
            Want::Placed(Some("api.ci"), false, Rule::GroupPath),
        ),
        (
            "job must on build01",
            &with_jobs,
            job("periodic-build01-upgrade"),
            "",
            None,
            Want::Placed(Some("build01"), false, Rule::GroupName),
        ),
        (
            "some periodic job in release repo",
            &with_jobs,
            job("promote-release-openshift-machine-os-content-e2e-aws-4.1"),
            "openshift/release/openshift-release-release-4.1-periodics.yaml",
            None,
            Want::Placed(Some("api.ci"), false, Rule::GroupPath),
        ),
        (
            "some jenkins job",
            &with_jobs,
            with_agent(job("test_branch_wildfly_images"), "jenkins"),
            wildfly,
            None,
            Want::Placed(None, false, Rule::NoClusterAgent),
        ),
        (
            "some job without agent",
            &with_jobs,
            job("no-agent-job"),
            wildfly,
            None,
            Want::Placed(Some("api.ci"), false, Rule::GroupPath),
        ),
        (
            "existing manual cluster assignment",
            &manual,
            on(job("manual-job"), "app.ci"),
            "",
            None,
            Want::Placed(Some("app.ci"), false, Rule::ManualCluster),
        ),
        (
            "some job in build farm",
            &with_jobs,
            job("some-build-farm-job"),
            "org/repo/some-build-farm-presubmits.yaml",
            None,
            Want::Placed(Some("build01"), true, Rule::BuildFarm),
        ),
        (
            "Vsphere job on vsphere02",
            &with_jobs,
            job("yalayala-vsphere"),
            "",
            None,
            Want::Placed(Some("vsphere02"), false, Rule::Vsphere),
        ),
        (
            "Vsphere job on vsphere02 with profile",
            &with_jobs,
            labelled(
                job("yalayala-vsphere"),
                &[(labels::CLOUD_CLUSTER_PROFILE, "vsphere-elastic")],
            ),
            "",
            None,
            Want::Placed(Some("vsphere02"), false, Rule::Vsphere),
        ),
        (
            "Vsphere job not on vsphere02 with profile",
            &with_jobs,
            labelled(
                job("yalayala-vsphere"),
                &[(labels::CLOUD_CLUSTER_PROFILE, "vsphere-elastic-poc")],
            ),
            "",
            None,
            Want::Placed(Some("api.ci"), true, Rule::Default),
        ),
        (
            "applyconfig job for vsphere",
            &with_jobs,
            with_image(
                job("pull-ci-openshift-release-master-vsphere-dry"),
                "registry.svc.ci.openshift.org/ci/applyconfig:latest",
            ),
            "",
            None,
            Want::Placed(Some("api.ci"), true, Rule::Default),
        ),
        (
            "pull-ci-openshift-os-master-unit",
            &with_jobs,
            labelled(
                job("pull-ci-openshift-os-master-unit"),
                &[(labels::KVM, "1")],
            ),
            "",
            None,
            Want::Placed(Some("build02"), false, Rule::Kvm),
        ),
        (
            "a job with cluster label",
            &with_jobs,
            labelled(
                job("pull-ci-openshift-os-master-unit"),
                &[(labels::CLUSTER, "b01")],
            ),
            "",
            None,
            Want::Placed(Some("b01"), false, Rule::LabelPin),
        ),
        (
            "a job with noBuilds label",
            &with_jobs,
            labelled(
                job("pull-ci-openshift-os-master-unit"),
                &[(labels::NO_BUILDS, "true")],
            ),
            "",
            None,
            Want::Placed(Some("build03"), false, Rule::NoBuilds),
        ),
        (
            "a job with cluster label and noBuilds label: cluster label wins",
            &with_jobs,
            labelled(
                job("pull-ci-openshift-os-master-unit"),
                &[(labels::CLUSTER, "b01"), (labels::NO_BUILDS, "true")],
            ),
            "",
            None,
            Want::Placed(Some("b01"), false, Rule::LabelPin),
        ),
        (
            "DetermineE2EByJob: cloud label has no effect if DetermineE2EByJob=false",
            &with_jobs,
            labelled(job("some-e2e-job"), &[(labels::CLOUD, "aws")]),
            "",
            None,
            Want::Placed(Some("api.ci"), true, Rule::Default),
        ),
        (
            "DetermineE2EByJob: cloud label",
            &e2e,
            labelled(job("some-e2e-job"), &[(labels::CLOUD, "aws")]),
            "",
            None,
            Want::Placed(Some("build01"), false, Rule::E2eCloud),
        ),
        (
            "DetermineE2EByJob: env var",
            &e2e,
            cluster_type(job("some-e2e-job"), "gcp"),
            "",
            None,
            Want::Placed(Some("build02"), false, Rule::E2eCloud),
        ),
        (
            "capabilities with enabled DetermineE2EByJob, cloud provider type is respected",
            &e2e,
            labelled(job("some-e2e-job"), all_caps),
            "",
            Some(inventory(vec![
                capable(cluster("build03", "aws", 100), &caps),
                capable(cluster("build02", "gcp", 100), &caps),
            ])),
            Want::Placed(Some("build02"), false, Rule::Capability),
        ),
        (
            // Go: "job some-e2e-job can't be matched with any cluster using provided
            // capabilities: arm64,intranet,rce,sshd-bastion"; ours also says what each
            // cluster lacks.
            "no cluster with all desired capabilities will return error",
            &e2e,
            labelled(job("some-e2e-job"), all_caps),
            "",
            Some(inventory(vec![
                capable(cluster("build03", "aws", 100), &["intranet"]),
                capable(cluster("build02", "aws", 100), &["arm64"]),
            ])),
            Want::Error("no usable cluster has capabilities [arm64, intranet, rce, sshd-bastion]"),
        ),
        (
            "cluster label has priority over capabilities",
            &e2e,
            labelled(
                job("some-e2e-job"),
                &[
                    ("capability/intranet", "intranet"),
                    (labels::CLUSTER, "build10"),
                ],
            ),
            "",
            Some(inventory(vec![
                capable(cluster("build03", "aws", 100), &["intranet"]),
                cluster("build10", "aws", 100),
            ])),
            Want::Placed(Some("build10"), false, Rule::LabelPin),
        ),
        (
            "capabilities have priority over kvm label",
            &e2e,
            labelled(job("some-e2e-job"), &[("capability/kvm", "kvm")]),
            "",
            Some(inventory(vec![
                capable(cluster("build03", "aws", 100), &["kvm"]),
                cluster("build02", "aws", 100),
            ])),
            Want::Placed(Some("build03"), false, Rule::Capability),
        ),
    ];
    assert_eq!(cases.len(), 22);
    for (name, cfg, j, path, inv, want) in cases {
        let inv = inv.unwrap_or_else(|| farm_inventory(cfg));
        let got = decide(cfg, &inv, &j, path);
        match want {
            Want::Placed(cluster, relocatable, rule) => {
                assert!(got.is_ok(), "{name}: {got:?}");
                assert_eq!(placed(&got), (cluster, relocatable), "{name}");
                assert_eq!(got.unwrap().rule, rule, "{name}");
            }
            Want::Error(text) => {
                let err = got.unwrap_err();
                assert!(err.contains(text), "{name}: {err}");
            }
        }
    }
}

/// Go: `TestIsInBuildFarm`, both cases. Ours: the build farm is the inventory (HEAD's
/// `SynchronizeBuildFarm`), here the clusters `buildFarm` lists.
#[test]
fn go_test_is_in_build_farm() {
    let cfg = config_with_build_farm();
    let inv = farm_inventory(&cfg);
    let rules = Rules::compile(&cfg, &inv, "vsphere02", FILE).unwrap();
    assert_eq!(
        is_in_build_farm(&rules, "build01").as_deref(),
        Some("aws"),
        "build01"
    );
    assert_eq!(is_in_build_farm(&rules, "app.ci"), None, "app.ci");
}

/// Go: `TestMatchingPathRegEx`, both cases.
#[test]
fn go_test_matching_path_reg_ex() {
    let cfg = config_c();
    let inv = inventory(vec![]);
    let rules = Rules::compile(&cfg, &inv, "vsphere02", FILE).unwrap();
    for (path, expected) in [
        (
            "./ci-operator/jobs/openshift/ci-tools/openshift-ci-tools-master-postsubmits.yaml",
            true,
        ),
        (
            "./ci-operator/jobs/openshift/ci-tools/openshift-ci-tools-master-presubmits.yaml",
            false,
        ),
    ] {
        assert_eq!(
            rules.file_facts(path).matches_group_path(),
            expected,
            "{path}"
        );
    }
}

/// Go: `TestIsSSHBastionJob`, both cases. Go tests the unexported label check; ours has it
/// only as rung 3 of the ladder, so the cases go through the ladder with `sshBastion` set:
/// the label key alone decides, as in Go.
#[test]
fn go_test_is_ssh_bastion_job() {
    let mut cfg = config("api.ci");
    cfg.ssh_bastion = Some("build01".to_owned());
    let inv = inventory(vec![cluster("build01", "aws", 100)]);
    for (label, expected) in [
        ("dptp.openshift.io/non-ssh-bastion", false),
        ("dptp.openshift.io/ssh-bastion", true),
    ] {
        let j = labelled(job("some-job"), &[(label, "true")]);
        let d = decide(&cfg, &inv, &j, "org/repo/some-presubmits.yaml").unwrap();
        assert_eq!(d.rule == Rule::SshBastion, expected, "{label}: {d:?}");
        if expected {
            assert_eq!(d.cluster.as_deref(), Some("build01"), "{label}");
        }
    }
}

/// Go: `TestValidate`, all five cases. Go's `Validate` does not look at the inventory; ours
/// checks the config against it, so each case gets the inventory in which every cluster the
/// config names (other than manual ones) exists and is usable, and any `buildFarm` cluster is
/// in it (the inventory is the build farm).
#[test]
fn go_test_validate() {
    let api_ci = || cluster("api.ci", "aws", 100);

    // "basic case": b and c are each listed in two groups; a and d once.
    let mut cfg = config("api.ci");
    group(&mut cfg, "api.ci", &["c", "d"], &[]);
    group(&mut cfg, "app.ci", &["b", "c"], &[]);
    group(&mut cfg, "build01", &["a", "b"], &[]);
    let inv = inventory(vec![
        api_ci(),
        cluster("app.ci", "aws", 100),
        cluster("build01", "aws", 100),
    ]);
    let diags = validate(&cfg, &inv);
    let found = fatal(&diags);
    assert!(!found.is_empty(), "basic case: {diags:?}");
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"groups.*.jobs b"), "basic case: {diags:?}");
    assert!(keys.contains(&"groups.*.jobs c"), "basic case: {diags:?}");
    for (key, message) in &found {
        assert!(
            key.ends_with(" b")
                || key.ends_with(" c")
                || message.starts_with("job \"b\"")
                || message.starts_with("job \"c\""),
            "basic case: only b and c: {key}: {message}"
        );
    }

    // "valid manual cluster"
    let mut cfg = config("api.ci");
    cfg.manual_clusters = vec!["app.ci".to_owned()];
    let diags = validate(&cfg, &inventory(vec![api_ci()]));
    assert!(
        diags.iter().all(|d| d.severity == Severity::Warning),
        "valid manual cluster: {diags:?}"
    );

    // "empty manual cluster"
    let mut cfg = config("api.ci");
    cfg.manual_clusters = vec![String::new()];
    let diags = validate(&cfg, &inventory(vec![api_ci()]));
    assert_eq!(
        fatal(&diags),
        vec![(
            "manualClusters[0]".to_owned(),
            "manualClusters must not contain an empty cluster name".to_owned()
        )],
        "empty manual cluster"
    );

    // "duplicate manual cluster"
    let mut cfg = config("api.ci");
    cfg.manual_clusters = vec!["app.ci".to_owned(), "app.ci".to_owned()];
    let diags = validate(&cfg, &inventory(vec![api_ci()]));
    assert_eq!(
        fatal(&diags),
        vec![(
            "manualClusters[1]".to_owned(),
            "manual cluster \"app.ci\" is listed more than once".to_owned()
        )],
        "duplicate manual cluster"
    );

    // "manual cluster overlaps build farm"
    let mut cfg = config("api.ci");
    cfg.manual_clusters = vec!["app.ci".to_owned()];
    farm(&mut cfg, "aws", "app.ci", &[]);
    let mut inv = farm_inventory(&cfg);
    inv.clusters.insert("api.ci".to_owned(), api_ci());
    let diags = validate(&cfg, &inv);
    let found = fatal(&diags);
    assert_eq!(
        found.len(),
        1,
        "manual cluster overlaps build farm: {diags:?}"
    );
    assert_eq!(found[0].0, "manualClusters[0]");
    assert!(
        found[0]
            .1
            .starts_with("manual cluster \"app.ci\" is also an automatic build-farm cluster"),
        "{}",
        found[0].1
    );
}

/// Go: `TestSynchronizeBuildFarmKeepsManualClustersOutOfAutomaticInventory`, both steps.
/// Ours has no separate synchronisation: the inventory is the build farm, and a manual
/// cluster that it schedules is a fatal finding of validation.
#[test]
fn go_test_synchronize_build_farm_keeps_manual_clusters_out_of_automatic_inventory() {
    let mut cfg = config("");
    cfg.manual_clusters = vec!["app.ci".to_owned()];

    // An inventory without the manual cluster: no manualClusters finding, and app.ci is not
    // in the build farm.
    let inv = inventory(vec![cluster("build01", "aws", 100)]);
    let diags = validate(&cfg, &inv);
    // Differs on purpose: Go's config has no `default` and `SynchronizeBuildFarm` does not
    // look at it, so Go returns no error; our validation runs every check on every load (F4),
    // so the missing `default` is its one fatal finding (Go's `Validate` reports it too).
    let keys: Vec<String> = fatal(&diags).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["default".to_owned()], "{diags:?}");
    assert!(
        diags.iter().all(|d| !d.key.starts_with("manualClusters")),
        "{diags:?}"
    );
    let rules = Rules::compile(&cfg, &inv, "vsphere02", FILE).unwrap();
    assert_eq!(is_in_build_farm(&rules, "app.ci"), None);
    assert_eq!(farm_cloud(&rules), cloud_map(&[("aws", &["build01"])]));

    // An inventory that schedules the manual cluster: refused.
    let inv = inventory(vec![
        cluster("app.ci", "aws", 100),
        cluster("build01", "aws", 100),
    ]);
    let diags = validate(&cfg, &inv);
    let manual: Vec<(String, String)> = fatal(&diags)
        .into_iter()
        .filter(|(k, _)| k != "default")
        .collect();
    assert_eq!(manual.len(), 1, "{diags:?}");
    assert_eq!(manual[0].0, "manualClusters[0]");
    assert!(
        manual[0].1.starts_with(
            "manual cluster \"app.ci\" is also an automatic build-farm cluster in the inventory"
        ),
        "{}",
        manual[0].1
    );
}

/// Go: `TestConfigDetermineCloudMapping`, both cases.
#[test]
fn go_test_config_determine_cloud_mapping() {
    let j = labelled(job("some-job"), &[(labels::CLOUD, "openstack-vexxhost")]);

    let mut with_mapping = config_with_build_farm_with_jobs_and_e2e();
    with_mapping
        .cloud_mapping
        .insert("openstack-vexxhost".to_owned(), "aws".to_owned());
    let inv = farm_inventory(&with_mapping);
    let rules = Rules::compile(&with_mapping, &inv, "vsphere02", FILE).unwrap();
    assert_eq!(rules.mapped_cloud(&j), Some("aws"), "mapping provided");

    let without = config_with_build_farm_with_jobs_and_e2e();
    let inv = farm_inventory(&without);
    let rules = Rules::compile(&without, &inv, "vsphere02", FILE).unwrap();
    assert_eq!(
        rules.mapped_cloud(&j),
        Some("openstack-vexxhost"),
        "mapping not provided"
    );
}
