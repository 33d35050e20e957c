//! `core-services/sanitize-prow-jobs/_config.yaml`.

use std::collections::BTreeMap;

use dispatcher_core::Diagnostic;
use dispatcher_core::model::{DispatcherConfig, Group};
use yaml_serde::{Mapping, Value};

use crate::yaml::{Findings, get, key_text, root_mapping, scalar_text, unknown_keys};

const KEYS: &[&str] = &[
    "default",
    "sshBastion",
    "kvm",
    "noBuilds",
    "determineE2EByJob",
    "cloudMapping",
    "groups",
    "buildFarm",
    "manualClusters",
];

/// Parses the dispatcher config. Problems that make the file unusable are fatal
/// diagnostics (and the returned config is partial); unknown keys are warnings.
pub fn parse_config(bytes: &[u8], file: &str) -> (DispatcherConfig, Vec<Diagnostic>) {
    let mut cfg = DispatcherConfig::default();
    let map = match root_mapping(bytes, file, "a mapping") {
        Ok(Some(m)) => m,
        Ok(None) => return (cfg, vec![Diagnostic::fatal(file, "", "the file is empty")]),
        Err(d) => return (cfg, vec![d]),
    };
    let mut f = Findings::new(file);
    f.unknown_keys(&map, KEYS, "");
    f.case_clashes(&map, "");
    if let Some(c) = cluster_name(&mut f, &map, "default") {
        cfg.default = c;
    }
    cfg.ssh_bastion = cluster_name(&mut f, &map, "sshBastion");
    cfg.kvm = f.strings(&map, "kvm", "");
    cfg.no_builds = f.strings(&map, "noBuilds", "");
    cfg.manual_clusters = f.strings(&map, "manualClusters", "");
    cfg.determine_e2e_by_job = f.flag(&map, "determineE2EByJob", "");
    if let Some(m) = f.mapping(&map, "cloudMapping") {
        cfg.cloud_mapping = cloud_mapping(&mut f, m);
    }
    if let Some(m) = f.mapping(&map, "groups") {
        cfg.groups = groups(&mut f, m);
    }
    if let Some(m) = f.mapping(&map, "buildFarm") {
        cfg.build_farm = build_farm(&mut f, m);
    }
    (cfg, f.into_list())
}

/// A cluster named at the top of the file (`default`, `sshBastion`), if one is.
fn cluster_name(f: &mut Findings<'_>, map: &Mapping, key: &str) -> Option<String> {
    match get(map, key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => {
            f.wrong_type(key, "a cluster name", other);
            None
        }
    }
}

/// `cloudMapping`: cloud -> cloud.
fn cloud_mapping(f: &mut Findings<'_>, m: &Mapping) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in m {
        match scalar_text(v) {
            Some(to) => {
                out.insert(key_text(k), to);
            }
            None => f.wrong_type(format!("cloudMapping.{}", key_text(k)), "a cloud name", v),
        }
    }
    out
}

/// `groups`: cluster -> the job names and path regexes it takes.
fn groups(f: &mut Findings<'_>, m: &Mapping) -> BTreeMap<String, Group> {
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let cluster = key_text(k);
        let key = format!("groups.{cluster}");
        let gm = match v {
            Value::Mapping(gm) => gm,
            Value::Null => {
                out.insert(cluster, Group::default());
                continue;
            }
            other => {
                f.wrong_type(key, "a mapping", other);
                continue;
            }
        };
        f.case_clashes(gm, &key);
        f.unknown_keys(gm, &["jobs", "paths"], &key);
        let jobs = f.strings(gm, "jobs", &key);
        let paths = f.strings(gm, "paths", &key);
        out.insert(cluster, Group { jobs, paths });
    }
    out
}

/// `buildFarm`: cloud -> cluster -> the file basenames listed under `filenames`.
fn build_farm(
    f: &mut Findings<'_>,
    m: &Mapping,
) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    for (cloud, clusters) in m {
        let cloud = key_text(cloud);
        let mut entry: BTreeMap<String, Vec<String>> = BTreeMap::new();
        match clusters {
            Value::Mapping(cm) => {
                for (c, v) in cm {
                    let c = key_text(c);
                    let files = build_farm_files(f, &format!("buildFarm.{cloud}.{c}"), v);
                    entry.insert(c, files);
                }
            }
            Value::Null => {}
            other => f.wrong_type(format!("buildFarm.{cloud}"), "a mapping", other),
        }
        out.insert(cloud, entry);
    }
    out
}

/// The files of one `buildFarm` cluster entry at `key`.
fn build_farm_files(f: &mut Findings<'_>, key: &str, v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Mapping(fm) => {
            for u in unknown_keys(fm, &["filenames"]) {
                f.warning(
                    format!("{key}.{u}"),
                    "unknown key, ignored (only filenames is read: group paths belong under groups)",
                );
            }
            f.strings(fm, "filenames", key)
        }
        other => {
            f.wrong_type(key, "a mapping", other);
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use dispatcher_core::Severity;

    use super::*;
    use crate::yaml::assert_one_finding;

    const FILE: &str = "_config.yaml";

    #[test]
    fn reads_every_key() {
        let text = r#"
buildFarm:
  aws:
    build01:
      filenames:
      - a-presubmits.yaml
    build03: {}
cloudMapping:
  equinix-ocp-metal: aws
default: build01
determineE2EByJob: true
groups:
  app.ci:
    jobs:
    - job-a
    paths:
    - '[^-]infra-periodics.yaml'
kvm:
- build02
noBuilds:
- build04
sshBastion: build01
manualClusters:
- app.ci
"#;
        let (cfg, diags) = parse_config(text.as_bytes(), FILE);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(cfg.default, "build01");
        assert_eq!(cfg.ssh_bastion.as_deref(), Some("build01"));
        assert_eq!(cfg.kvm, vec!["build02"]);
        assert_eq!(cfg.no_builds, vec!["build04"]);
        assert!(cfg.determine_e2e_by_job);
        assert_eq!(cfg.cloud_mapping["equinix-ocp-metal"], "aws");
        assert_eq!(cfg.groups["app.ci"].jobs, vec!["job-a"]);
        assert_eq!(cfg.groups["app.ci"].paths, vec!["[^-]infra-periodics.yaml"]);
        assert_eq!(cfg.build_farm["aws"]["build01"], vec!["a-presubmits.yaml"]);
        assert!(cfg.build_farm["aws"]["build03"].is_empty());
        assert_eq!(cfg.manual_clusters, vec!["app.ci"]);
    }

    #[test]
    fn unknown_keys_are_warnings_naming_the_key() {
        let (_, diags) = parse_config(b"default: build01\nsshBastionn: build01\n", FILE);
        let did_you_mean = "did you mean sshBastion?";
        assert_one_finding(&diags, Severity::Warning, "sshBastionn", did_you_mean);
        assert_eq!(diags[0].file, FILE);
    }

    #[test]
    fn a_typo_under_groups_and_the_old_build_farm_paths_are_named_in_place() {
        let text = "default: build01\ngroups:\n  app.ci:\n    pathes:\n    - x\nbuildFarm:\n  aws:\n    build01:\n      paths:\n      - y\n";
        let (cfg, diags) = parse_config(text.as_bytes(), FILE);
        let found: Vec<(&str, &str)> = diags
            .iter()
            .map(|d| (d.key.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "groups.app.ci.pathes");
        assert!(found[0].1.contains("did you mean paths?"), "{}", found[0].1);
        assert_eq!(found[1].0, "buildFarm.aws.build01.paths");
        assert!(
            found[1].1.contains("only filenames is read"),
            "{}",
            found[1].1
        );
        assert!(
            cfg.groups["app.ci"].paths.is_empty(),
            "the typo is not read"
        );
    }

    #[test]
    fn the_same_key_in_two_cases_is_an_error_not_a_coin_toss() {
        let (_, diags) = parse_config(b"default: build01\nDefault: build03\n", FILE);
        assert_one_finding(&diags, Severity::Fatal, "Default", "default and Default");
        let (_, diags) = parse_config(
            b"default: a\ngroups:\n  a:\n    jobs: [x]\n    Jobs: [y]\n",
            FILE,
        );
        assert_eq!(diags[0].key, "groups.a.Jobs", "{diags:?}");
    }

    #[test]
    fn a_byte_order_mark_is_accepted_and_yaml_errors_lead_with_their_line() {
        let (cfg, diags) = parse_config("\u{feff}default: build01\n".as_bytes(), FILE);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(cfg.default, "build01");
        let deep = format!("default: a\ngroups: {}", "[".repeat(1_000_000));
        let start = std::time::Instant::now();
        let (_, diags) = parse_config(deep.as_bytes(), FILE);
        assert!(start.elapsed().as_secs_f64() < 0.5);
        assert_eq!(
            (diags[0].key.as_str(), diags.len()),
            ("line 2", 1),
            "{diags:?}"
        );
    }

    #[test]
    fn keys_match_case_insensitively_like_go() {
        let (cfg, diags) = parse_config(b"Default: build03\nKVM: [build02]\n", FILE);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(cfg.default, "build03");
        assert_eq!(cfg.kvm, vec!["build02"]);
    }

    #[test]
    fn wrong_types_are_fatal_and_named() {
        let (_, diags) = parse_config(b"default: [a, b]\nkvm: build02\n", FILE);
        let keys: Vec<&str> = diags.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, vec!["default", "kvm"]);
        assert!(diags.iter().all(|d| d.severity == Severity::Fatal));
    }

    #[test]
    fn invalid_yaml_reports_the_line() {
        let (_, diags) = parse_config(b"default: build01\ngroups:\n  a: [\n", FILE);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Fatal);
        assert!(diags[0].key.starts_with("line "), "{:?}", diags[0]);
    }

    #[test]
    fn gzip_is_accepted() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"default: build05\n").unwrap();
        let (cfg, diags) = parse_config(&gz.finish().unwrap(), FILE);
        assert!(diags.is_empty());
        assert_eq!(cfg.default, "build05");
    }
}
