//! `core-services/sanitize-prow-jobs/_clusters.yaml`: provider -> clusters.

use std::collections::BTreeSet;

use dispatcher_core::Diagnostic;
use dispatcher_core::model::{Cluster, Inventory};
use yaml_serde::{Mapping, Value};

use crate::yaml::{Findings, get, key_text, root_mapping, scalar_text};

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
    let providers = match root_mapping(bytes, file, "provider -> clusters") {
        Ok(Some(m)) => m,
        Ok(None) => return (inv, Vec::new()),
        Err(d) => return (inv, vec![d]),
    };
    let mut f = Findings::new(file);
    for (p, list) in &providers {
        let provider = key_text(p);
        let Some(items) = provider_clusters(&mut f, &provider, list) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let Some((key, c)) = cluster(&mut f, &provider, i, item) else {
                continue;
            };
            if let Some(prev) = inv.clusters.get(&c.name) {
                let message = format!("duplicate cluster name (also under {})", prev.provider);
                f.fatal(key, message);
                continue;
            }
            inv.clusters.insert(c.name.clone(), c);
        }
    }
    (inv, f.into_list())
}

/// The cluster list of a provider ci-tools accepts.
fn provider_clusters<'v>(
    f: &mut Findings<'_>,
    provider: &str,
    list: &'v Value,
) -> Option<&'v [Value]> {
    if provider.is_empty() {
        f.fatal("", "empty provider name");
        return None;
    }
    if !KNOWN_PROVIDERS.contains(&provider) {
        f.fatal(
            provider,
            format!(
                "unsupported cloud provider {provider:?}: ci-tools accepts {}",
                KNOWN_PROVIDERS.join(" and ")
            ),
        );
        return None;
    }
    match list {
        Value::Sequence(items) => Some(items.as_slice()),
        Value::Null => Some(&[]),
        other => {
            f.wrong_type(provider, "a list of clusters", other);
            None
        }
    }
}

/// Item `i` of a provider's list, and the key that names it in findings
/// (`provider.name`, or `provider[i]` while it has no name).
fn cluster(
    f: &mut Findings<'_>,
    provider: &str,
    i: usize,
    item: &Value,
) -> Option<(String, Cluster)> {
    let Value::Mapping(m) = item else {
        f.wrong_type(format!("{provider}[{i}]"), "a cluster mapping", item);
        return None;
    };
    let name = get(m, "name").and_then(scalar_text).unwrap_or_default();
    let key = if name.is_empty() {
        format!("{provider}[{i}]")
    } else {
        format!("{provider}.{name}")
    };
    f.case_clashes(m, &key);
    f.unknown_keys(m, FIELDS, &key);
    if name.trim().is_empty() {
        f.fatal(format!("{key}.name"), "empty cluster name");
        return None;
    }
    let mut blocked = f.flag(m, "blocked", &key);
    let reserved = f.flag(m, "reserved", &key);
    let cordoned = f.flag(m, "cordoned", &key);
    let capacity = capacity(f, m, &key, &mut blocked);
    let capabilities: BTreeSet<String> = f.strings(m, "capabilities", &key).into_iter().collect();
    if blocked && cordoned {
        f.warning(key.clone(), "both blocked and cordoned: blocked wins");
    }
    let cluster = Cluster {
        name,
        provider: provider.to_owned(),
        capacity,
        capabilities,
        blocked,
        reserved,
        cordoned,
    };
    Some((key, cluster))
}

/// A cluster's capacity, clamped as the Go loader clamps it (with a warning); a negative
/// one blocks the cluster.
fn capacity(f: &mut Findings<'_>, m: &Mapping, key: &str, blocked: &mut bool) -> u32 {
    let at = format!("{key}.capacity");
    let n = match get(m, "capacity") {
        None | Some(Value::Null) => return 100,
        Some(Value::Number(n)) => n,
        Some(other) => {
            f.wrong_type(at, "an integer", other);
            return 100;
        }
    };
    match n.as_i64() {
        Some(c) if c < 0 => {
            f.warning(
                at,
                format!("negative capacity {c}: the cluster is treated as blocked"),
            );
            *blocked = true;
            100
        }
        Some(0) => {
            f.warning(at, "capacity 0 is treated as 100");
            100
        }
        Some(c) if c > 100 => {
            f.warning(at, format!("capacity {c} is clamped to 100"));
            100
        }
        Some(c) => u32::try_from(c).unwrap_or(100),
        None => {
            f.fatal(at, format!("expected an integer, found {n}"));
            100
        }
    }
}

#[cfg(test)]
mod tests {
    use dispatcher_core::Severity;

    use super::*;
    use crate::yaml::assert_one_finding;

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
        let unsupported = "unsupported cloud provider";
        assert_one_finding(&diags, Severity::Fatal, "azure", unsupported);
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
