//! `core-services/sanitize-prow-jobs/_config.yaml`.

use std::collections::BTreeMap;

use dispatcher_core::Diagnostic;
use dispatcher_core::model::{DispatcherConfig, Group};
use yaml_serde::Value;

use crate::yaml::{
    boolean, case_clashes, clash_message, get, key_text, kind, maybe_gunzip, string_list,
    unknown_key_message, unknown_keys,
};

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
    let mut diags = Vec::new();
    let mut cfg = DispatcherConfig::default();
    let bytes = match maybe_gunzip(bytes) {
        Ok(b) => b,
        Err(e) => {
            diags.push(Diagnostic::fatal(file, "", format!("cannot gunzip: {e}")));
            return (cfg, diags);
        }
    };
    let root: Value = match crate::yaml::parse_value(&bytes) {
        Ok(v) => v,
        Err((line, message)) => {
            let key = line.map(|l| format!("line {l}")).unwrap_or_default();
            diags.push(Diagnostic::fatal(
                file,
                key,
                format!("not valid YAML: {message}"),
            ));
            return (cfg, diags);
        }
    };
    let map = match root {
        Value::Mapping(m) => m,
        Value::Null => {
            diags.push(Diagnostic::fatal(file, "", "the file is empty"));
            return (cfg, diags);
        }
        other => {
            diags.push(Diagnostic::fatal(
                file,
                "",
                format!("expected a mapping, found {}", kind(&other)),
            ));
            return (cfg, diags);
        }
    };
    for k in unknown_keys(&map, KEYS) {
        let message = unknown_key_message(&k, KEYS);
        diags.push(Diagnostic::warning(file, k, message));
    }
    for (earlier, later) in case_clashes(&map) {
        diags.push(Diagnostic::fatal(
            file,
            later.clone(),
            clash_message(&earlier, &later),
        ));
    }
    let mut fatal = |key: &str, msg: String| diags.push(Diagnostic::fatal(file, key, msg));

    match get(&map, "default") {
        Some(Value::String(s)) => cfg.default = s.clone(),
        Some(Value::Null) | None => {}
        Some(other) => fatal(
            "default",
            format!("expected a cluster name, found {}", kind(other)),
        ),
    }
    match get(&map, "sshBastion") {
        Some(Value::String(s)) => cfg.ssh_bastion = Some(s.clone()),
        Some(Value::Null) | None => {}
        Some(other) => fatal(
            "sshBastion",
            format!("expected a cluster name, found {}", kind(other)),
        ),
    }
    for (key, slot) in [
        ("kvm", &mut cfg.kvm),
        ("noBuilds", &mut cfg.no_builds),
        ("manualClusters", &mut cfg.manual_clusters),
    ] {
        if let Some(v) = get(&map, key) {
            match string_list(v) {
                Ok(l) => *slot = l,
                Err(e) => fatal(key, e),
            }
        }
    }
    if let Some(v) = get(&map, "determineE2EByJob") {
        match boolean(v) {
            Ok(b) => cfg.determine_e2e_by_job = b,
            Err(e) => fatal("determineE2EByJob", e),
        }
    }
    match get(&map, "cloudMapping") {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                match crate::yaml::scalar_text(v) {
                    Some(to) => {
                        cfg.cloud_mapping.insert(key_text(k), to);
                    }
                    None => fatal(
                        &format!("cloudMapping.{}", key_text(k)),
                        format!("expected a cloud name, found {}", kind(v)),
                    ),
                }
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => fatal(
            "cloudMapping",
            format!("expected a mapping, found {}", kind(other)),
        ),
    }
    match get(&map, "groups") {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let cluster = key_text(k);
                let key = format!("groups.{cluster}");
                let gm = match v {
                    Value::Mapping(gm) => gm,
                    Value::Null => {
                        cfg.groups.insert(cluster, Group::default());
                        continue;
                    }
                    other => {
                        diags.push(Diagnostic::fatal(
                            file,
                            &key,
                            format!("expected a mapping, found {}", kind(other)),
                        ));
                        continue;
                    }
                };
                for (earlier, later) in case_clashes(gm) {
                    diags.push(Diagnostic::fatal(
                        file,
                        format!("{key}.{later}"),
                        clash_message(&earlier, &later),
                    ));
                }
                for u in unknown_keys(gm, &["jobs", "paths"]) {
                    diags.push(Diagnostic::warning(
                        file,
                        format!("{key}.{u}"),
                        unknown_key_message(&u, &["jobs", "paths"]),
                    ));
                }
                let mut g = Group::default();
                for (sub, slot) in [("jobs", &mut g.jobs), ("paths", &mut g.paths)] {
                    if let Some(v) = get(gm, sub) {
                        match string_list(v) {
                            Ok(l) => *slot = l,
                            Err(e) => {
                                diags.push(Diagnostic::fatal(file, format!("{key}.{sub}"), e))
                            }
                        }
                    }
                }
                cfg.groups.insert(cluster, g);
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => diags.push(Diagnostic::fatal(
            file,
            "groups",
            format!("expected a mapping, found {}", kind(other)),
        )),
    }
    match get(&map, "buildFarm") {
        Some(Value::Mapping(m)) => {
            for (cloud, clusters) in m {
                let cloud = key_text(cloud);
                let mut entry: BTreeMap<String, Vec<String>> = BTreeMap::new();
                match clusters {
                    Value::Mapping(cm) => {
                        for (c, v) in cm {
                            let c = key_text(c);
                            let key = format!("buildFarm.{cloud}.{c}");
                            let files = match v {
                                Value::Null => Vec::new(),
                                Value::Mapping(fm) => {
                                    for u in unknown_keys(fm, &["filenames"]) {
                                        diags.push(Diagnostic::warning(
                                            file,
                                            format!("{key}.{u}"),
                                            "unknown key, ignored (only filenames is read: group paths belong under groups)",
                                        ));
                                    }
                                    match get(fm, "filenames").map(string_list) {
                                        None => Vec::new(),
                                        Some(Ok(l)) => l,
                                        Some(Err(e)) => {
                                            diags.push(Diagnostic::fatal(
                                                file,
                                                format!("{key}.filenames"),
                                                e,
                                            ));
                                            Vec::new()
                                        }
                                    }
                                }
                                other => {
                                    diags.push(Diagnostic::fatal(
                                        file,
                                        key,
                                        format!("expected a mapping, found {}", kind(other)),
                                    ));
                                    Vec::new()
                                }
                            };
                            entry.insert(c, files);
                        }
                    }
                    Value::Null => {}
                    other => diags.push(Diagnostic::fatal(
                        file,
                        format!("buildFarm.{cloud}"),
                        format!("expected a mapping, found {}", kind(other)),
                    )),
                }
                cfg.build_farm.insert(cloud, entry);
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => diags.push(Diagnostic::fatal(
            file,
            "buildFarm",
            format!("expected a mapping, found {}", kind(other)),
        )),
    }
    (cfg, diags)
}

#[cfg(test)]
mod tests {
    use dispatcher_core::Severity;

    use super::*;

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
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Warning);
        assert_eq!(diags[0].key, "sshBastionn");
        assert_eq!(diags[0].file, FILE);
        assert!(
            diags[0].message.contains("did you mean sshBastion?"),
            "{}",
            diags[0]
        );
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
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].severity, Severity::Fatal);
        assert_eq!(diags[0].key, "Default");
        assert!(
            diags[0].message.contains("default and Default"),
            "{}",
            diags[0]
        );
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
