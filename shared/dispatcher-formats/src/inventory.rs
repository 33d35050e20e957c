//! `core-services/sanitize-prow-jobs/_clusters.yaml`: provider -> clusters.

use std::collections::BTreeSet;

use dispatcher_core::Diagnostic;
use dispatcher_core::model::{Cluster, Inventory};
use yaml_serde::Value;

use crate::yaml::{
    boolean, case_clashes, clash_message, get, key_text, kind, maybe_gunzip, string_list,
    unknown_key_message, unknown_keys,
};

const FIELDS: &[&str] = &[
    "name",
    "capacity",
    "capabilities",
    "blocked",
    "reserved",
    "cordoned",
];

/// The providers ci-tools HEAD accepts (`knownCloudProviders`); its loader refuses the file
/// on any other, and so do we, or the release repository's own CI would fail on a file we
/// accept.
pub const KNOWN_PROVIDERS: &[&str] = &["aws", "gcp"];

/// Parses the inventory, accepting every file the Go loader accepts and warning where it
/// silently clamps. Duplicate or empty names are fatal.
pub fn parse_inventory(bytes: &[u8], file: &str) -> (Inventory, Vec<Diagnostic>) {
    let mut inv = Inventory::default();
    let mut diags = Vec::new();
    let bytes = match maybe_gunzip(bytes) {
        Ok(b) => b,
        Err(e) => {
            diags.push(Diagnostic::fatal(file, "", format!("cannot gunzip: {e}")));
            return (inv, diags);
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
            return (inv, diags);
        }
    };
    let providers = match root {
        Value::Mapping(m) => m,
        Value::Null => return (inv, diags),
        other => {
            diags.push(Diagnostic::fatal(
                file,
                "",
                format!("expected provider -> clusters, found {}", kind(&other)),
            ));
            return (inv, diags);
        }
    };
    for (p, list) in &providers {
        let provider = key_text(p);
        if provider.is_empty() {
            diags.push(Diagnostic::fatal(file, "", "empty provider name"));
            continue;
        }
        if !KNOWN_PROVIDERS.contains(&provider.as_str()) {
            diags.push(Diagnostic::fatal(
                file,
                provider.clone(),
                format!(
                    "unsupported cloud provider {provider:?}: ci-tools accepts {}",
                    KNOWN_PROVIDERS.join(" and ")
                ),
            ));
            continue;
        }
        let items = match list {
            Value::Sequence(items) => items.as_slice(),
            Value::Null => &[],
            other => {
                diags.push(Diagnostic::fatal(
                    file,
                    provider.clone(),
                    format!("expected a list of clusters, found {}", kind(other)),
                ));
                continue;
            }
        };
        for (i, item) in items.iter().enumerate() {
            let key = format!("{provider}[{i}]");
            let Value::Mapping(m) = item else {
                diags.push(Diagnostic::fatal(
                    file,
                    key,
                    format!("expected a cluster mapping, found {}", kind(item)),
                ));
                continue;
            };
            let name = get(m, "name")
                .and_then(crate::yaml::scalar_text)
                .unwrap_or_default();
            let key = if name.is_empty() {
                key
            } else {
                format!("{provider}.{name}")
            };
            for (earlier, later) in case_clashes(m) {
                diags.push(Diagnostic::fatal(
                    file,
                    format!("{key}.{later}"),
                    clash_message(&earlier, &later),
                ));
            }
            for u in unknown_keys(m, FIELDS) {
                diags.push(Diagnostic::warning(
                    file,
                    format!("{key}.{u}"),
                    unknown_key_message(&u, FIELDS),
                ));
            }
            if name.trim().is_empty() {
                diags.push(Diagnostic::fatal(
                    file,
                    format!("{key}.name"),
                    "empty cluster name",
                ));
                continue;
            }
            let mut flag = |field: &str| match get(m, field).map(boolean) {
                None => false,
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    diags.push(Diagnostic::fatal(file, format!("{key}.{field}"), e));
                    false
                }
            };
            let mut blocked = flag("blocked");
            let reserved = flag("reserved");
            let cordoned = flag("cordoned");
            let capacity = match get(m, "capacity") {
                None | Some(Value::Null) => 100,
                Some(Value::Number(n)) => match n.as_i64() {
                    Some(c) if c < 0 => {
                        diags.push(Diagnostic::warning(
                            file,
                            format!("{key}.capacity"),
                            format!("negative capacity {c}: the cluster is treated as blocked"),
                        ));
                        blocked = true;
                        100
                    }
                    Some(0) => {
                        diags.push(Diagnostic::warning(
                            file,
                            format!("{key}.capacity"),
                            "capacity 0 is treated as 100",
                        ));
                        100
                    }
                    Some(c) if c > 100 => {
                        diags.push(Diagnostic::warning(
                            file,
                            format!("{key}.capacity"),
                            format!("capacity {c} is clamped to 100"),
                        ));
                        100
                    }
                    Some(c) => u32::try_from(c).unwrap_or(100),
                    None => {
                        diags.push(Diagnostic::fatal(
                            file,
                            format!("{key}.capacity"),
                            format!("expected an integer, found {n}"),
                        ));
                        100
                    }
                },
                Some(other) => {
                    diags.push(Diagnostic::fatal(
                        file,
                        format!("{key}.capacity"),
                        format!("expected an integer, found {}", kind(other)),
                    ));
                    100
                }
            };
            let capabilities: BTreeSet<String> = match get(m, "capabilities").map(string_list) {
                None => BTreeSet::new(),
                Some(Ok(l)) => l.into_iter().collect(),
                Some(Err(e)) => {
                    diags.push(Diagnostic::fatal(file, format!("{key}.capabilities"), e));
                    BTreeSet::new()
                }
            };
            if blocked && cordoned {
                diags.push(Diagnostic::warning(
                    file,
                    key.clone(),
                    "both blocked and cordoned: blocked wins",
                ));
            }
            if let Some(prev) = inv.clusters.get(&name) {
                diags.push(Diagnostic::fatal(
                    file,
                    key.clone(),
                    format!("duplicate cluster name (also under {})", prev.provider),
                ));
                continue;
            }
            inv.clusters.insert(
                name.clone(),
                Cluster {
                    name,
                    provider: provider.clone(),
                    capacity,
                    capabilities,
                    blocked,
                    reserved,
                    cordoned,
                },
            );
        }
    }
    (inv, diags)
}

#[cfg(test)]
mod tests {
    use dispatcher_core::Severity;

    use super::*;

    const FILE: &str = "_clusters.yaml";

    #[test]
    fn reads_real_shapes_and_our_fields() {
        let text = "aws:\n  - name: build01\n    capabilities: [rce, arm64, rce]\n  - name: build05\n    blocked: true\n    capacity: 20\ngcp:\n  - name: build02\n    reserved: true\n  - name: build04\n    cordoned: true\n";
        let (inv, diags) = parse_inventory(text.as_bytes(), FILE);
        assert!(diags.is_empty(), "{diags:?}");
        let b1 = &inv.clusters["build01"];
        assert_eq!(b1.capacity, 100);
        assert_eq!(
            b1.capabilities.iter().collect::<Vec<_>>(),
            vec!["arm64", "rce"]
        );
        assert!(inv.clusters["build05"].blocked);
        assert_eq!(inv.clusters["build05"].capacity, 20);
        assert!(inv.clusters["build02"].reserved);
        assert!(inv.clusters["build04"].cordoned);
        assert_eq!(inv.clusters["build04"].provider, "gcp");
    }

    #[test]
    fn clamps_are_warnings() {
        let text = "aws:\n- name: a\n  capacity: 150\n- name: b\n  capacity: -1\n- name: c\n  capacity: 0\n";
        let (inv, diags) = parse_inventory(text.as_bytes(), FILE);
        assert_eq!(inv.clusters["a"].capacity, 100);
        assert!(inv.clusters["b"].blocked);
        assert_eq!(inv.clusters["c"].capacity, 100);
        assert_eq!(diags.len(), 3);
        assert!(
            diags
                .iter()
                .all(|d| d.severity == Severity::Warning && d.key.ends_with(".capacity"))
        );
    }

    #[test]
    fn duplicate_and_empty_names_are_fatal() {
        let text = "aws:\n- name: a\ngcp:\n- name: a\n- name: ''\n";
        let (_, diags) = parse_inventory(text.as_bytes(), FILE);
        let fatal: Vec<&Diagnostic> = diags
            .iter()
            .filter(|d| d.severity == Severity::Fatal)
            .collect();
        assert_eq!(fatal.len(), 2, "{diags:?}");
        assert!(fatal.iter().any(|d| d.message.contains("duplicate")));
        assert!(fatal.iter().any(|d| d.message.contains("empty")));
    }

    #[test]
    fn a_provider_ci_tools_does_not_know_is_fatal() {
        let (inv, diags) = parse_inventory(b"aws:\n- name: a\nazure:\n- name: b\n", FILE);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].severity, Severity::Fatal);
        assert_eq!(diags[0].key, "azure");
        assert!(
            diags[0].message.contains("unsupported cloud provider"),
            "{}",
            diags[0]
        );
        assert!(!inv.clusters.contains_key("b"));
    }

    #[test]
    fn keys_match_case_insensitively_and_unknown_fields_warn() {
        let text = "aws:\n- Name: a\n  Capacity: 30\n  owner: team-x\n";
        let (inv, diags) = parse_inventory(text.as_bytes(), FILE);
        assert_eq!(inv.clusters["a"].capacity, 30);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].key, "aws.a.owner");
    }
}
