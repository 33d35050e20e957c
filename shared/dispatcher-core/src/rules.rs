//! The per-job rule ladder and target resolution (dispatcher-semantics.md §5–§6).
//!
//! This is shared by `resolve` (what the sanitizer writes) and by the balancing strategies,
//! so the static fallback and the API agree on every non-relocatable job.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::diag::Diagnostic;
use crate::model::{DispatcherConfig, Inventory, Job, labels};

/// The rule that decided a job's cluster. Every plan entry carries exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Resolve only: the job's static `cluster:` names a usable build-farm or manual
    /// cluster, which `sanitize-prow-jobs` keeps as it is (ci-tools `cddfe66ae`).
    StaticCluster,
    NoClusterAgent,
    ManualCluster,
    Vsphere,
    SshBastion,
    LabelPin,
    Capability,
    Kvm,
    E2eCloud,
    NoBuilds,
    GroupName,
    GroupPath,
    /// Relocatable: the file is listed under a cluster in `buildFarm` (resolve only).
    BuildFarm,
    /// Relocatable: nothing matched, so `default` (resolve only).
    Default,
    /// Relocatable, placed with its file by a balancing strategy.
    Balanced,
    /// No cluster could take the job; it keeps its previous cluster if it had one.
    Unschedulable,
}

impl Rule {
    /// Rules whose target is picked from a set by `len(basename) mod n`.
    pub fn is_set_based(self) -> bool {
        matches!(
            self,
            Rule::Capability | Rule::Kvm | Rule::E2eCloud | Rule::NoBuilds
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::StaticCluster => "static-cluster",
            Rule::NoClusterAgent => "no-cluster-agent",
            Rule::ManualCluster => "manual-cluster",
            Rule::Vsphere => "vsphere",
            Rule::SshBastion => "ssh-bastion",
            Rule::LabelPin => "label-pin",
            Rule::Capability => "capability",
            Rule::Kvm => "kvm",
            Rule::E2eCloud => "e2e-cloud",
            Rule::NoBuilds => "no-builds",
            Rule::GroupName => "group-name",
            Rule::GroupPath => "group-path",
            Rule::BuildFarm => "build-farm",
            Rule::Default => "default",
            Rule::Balanced => "balanced",
            Rule::Unschedulable => "unschedulable",
        }
    }
}

/// What the ladder decided for one job (D and R in the reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// D: `None` for non-Kubernetes agents.
    pub cluster: Option<String>,
    /// R: the file-level choice may override D.
    pub relocatable: bool,
    pub rule: Rule,
    pub detail: String,
    /// For set-based rules: the clusters the rule picks from (sorted or config order),
    /// shared between the jobs that pick from it.
    pub set: Arc<[String]>,
}

/// Per-file inputs of the ladder: the group paths and `buildFarm` entries matching it.
#[derive(Debug, Clone)]
pub struct FileFacts<'p, 'a> {
    pub path: &'p str,
    pub basename_len: usize,
    /// Group path patterns matching the file: (cluster, the pattern as written).
    group_paths: Vec<(&'a str, &'a str)>,
    /// `buildFarm` entries listing the file's basename: (cloud, cluster).
    farm: Vec<(&'a str, &'a str)>,
}

impl FileFacts<'_, '_> {
    /// Whether a group path regex matches the file (then `buildFarm` does not list it).
    pub fn matches_group_path(&self) -> bool {
        !self.group_paths.is_empty()
    }

    /// Every entry that claims the file, sorted, as `groups.<c>.paths "<re>"` or
    /// `buildFarm.<cloud>.<c>`: more than one is an error (the Go dispatcher aborts).
    pub fn claims(&self) -> Vec<String> {
        let mut hits: Vec<String> = self
            .group_paths
            .iter()
            .map(|(c, re)| format!("groups.{c}.paths {re:?}"))
            .collect();
        hits.extend(
            self.farm
                .iter()
                .map(|(cloud, c)| format!("buildFarm.{cloud}.{c}")),
        );
        hits.sort();
        hits
    }

    /// Whether more than one entry claims the file.
    pub fn is_contested(&self) -> bool {
        self.group_paths.len() + self.farm.len() > 1
    }
}

/// Why the ladder could not decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderError {
    pub rule: Rule,
    pub reason: String,
}

/// The config compiled once per run: regexes, lookup tables, the reconciled build farm.
#[derive(Debug)]
pub struct Rules<'a> {
    pub config: &'a DispatcherConfig,
    pub inventory: &'a Inventory,
    pub vsphere_cluster: String,
    /// Keep a usable static `cluster:` as it is, as the sanitizer does (resolve only).
    keep_static: bool,
    group_jobs: FastMap<&'a str, &'a str>,
    /// (cluster, the pattern as written, the pattern compiled with Go's meaning).
    group_paths: Vec<(&'a str, &'a str, Regex)>,
    farm_files: FastMap<&'a str, Vec<(&'a str, &'a str)>>,
    /// provider -> sorted build-farm clusters (usable, not reserved): `BuildFarmCloud`.
    pub farm_cloud: BTreeMap<String, Arc<[String]>>,
    kvm: Arc<[String]>,
    no_builds: Arc<[String]>,
    /// The set of rules that pick from none, shared.
    no_set: Arc<[String]>,
}

/// Membership and lookup maps of the run. Only ever queried, never iterated, so their
/// order cannot reach a plan; the hasher is the fast non-keyed one of rustc.
pub(crate) type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// Anything that went wrong while compiling: fatal diagnostics.
pub type CompileErrors = Vec<Diagnostic>;

impl<'a> Rules<'a> {
    /// Compiles the config. Regexes that do not compile and job names in two groups are
    /// fatal: placement would otherwise depend on which one wins.
    pub fn compile(
        config: &'a DispatcherConfig,
        inventory: &'a Inventory,
        vsphere_cluster: &str,
        config_file: &str,
    ) -> Result<Self, CompileErrors> {
        let mut errors = Vec::new();
        let mut group_jobs: FastMap<&str, &str> = FastMap::default();
        for (cluster, group) in &config.groups {
            for job in &group.jobs {
                if let Some(other) = group_jobs.insert(job, cluster)
                    && other != cluster
                {
                    errors.push(Diagnostic::fatal(
                        config_file,
                        format!("groups.{cluster}.jobs"),
                        format!("job {job:?} is also listed in groups.{other}.jobs"),
                    ));
                }
            }
        }
        let mut group_paths = Vec::new();
        for (cluster, group) in &config.groups {
            for (i, p) in group.paths.iter().enumerate() {
                let compiled = crate::re2::go_regex(p)
                    .map_err(|e| format!("Go's regexp (RE2) refuses it: {e}"))
                    .and_then(|rust| Regex::new(&rust).map_err(|e| first_line(&e.to_string())));
                match compiled {
                    Ok(re) => group_paths.push((cluster.as_str(), p.as_str(), re)),
                    Err(e) => errors.push(Diagnostic::fatal(
                        config_file,
                        format!("groups.{cluster}.paths[{i}]"),
                        format!("regex {p:?} does not compile: {e}"),
                    )),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut farm_files: FastMap<&str, Vec<(&str, &str)>> = FastMap::default();
        for (cloud, clusters) in &config.build_farm {
            for (cluster, files) in clusters {
                for f in files {
                    farm_files
                        .entry(f.as_str())
                        .or_default()
                        .push((cloud.as_str(), cluster.as_str()));
                }
            }
        }
        let mut farm_cloud: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in inventory.clusters.values() {
            if !c.blocked && !c.reserved {
                farm_cloud
                    .entry(c.provider.clone())
                    .or_default()
                    .push(c.name.clone());
            }
        }
        Ok(Self {
            config,
            inventory,
            vsphere_cluster: vsphere_cluster.to_owned(),
            keep_static: false,
            group_jobs,
            group_paths,
            farm_files,
            farm_cloud: farm_cloud.into_iter().map(|(k, v)| (k, v.into())).collect(),
            kvm: config.kvm.as_slice().into(),
            no_builds: config.no_builds.as_slice().into(),
            no_set: Arc::from([]),
        })
    }

    /// Keeps a job's static `cluster:` when it names a cluster the inventory schedules and
    /// does not block, or a manual cluster that is not blocked: what `sanitize-prow-jobs`
    /// does since ci-tools `cddfe66ae`, before any other rule. `resolve` computes what the
    /// sanitizer writes, so it keeps them too; balancing never does.
    pub fn keeping_static_clusters(mut self) -> Self {
        self.keep_static = true;
        self
    }

    /// Whether the sanitizer keeps `cluster` as a job's static field.
    pub fn keeps_static(&self, cluster: &str) -> bool {
        !cluster.is_empty()
            && !self.inventory.is_blocked(cluster)
            && (self.inventory.clusters.contains_key(cluster)
                || self.config.manual_clusters.iter().any(|m| m == cluster))
    }

    /// The cloud after `cloudMapping`, applied once for every use (F19).
    pub fn mapped_cloud<'s>(&'s self, job: &'s Job) -> Option<&'s str> {
        job.raw_cloud().map(|raw| {
            self.config
                .cloud_mapping
                .get(raw)
                .map_or(raw, String::as_str)
        })
    }

    /// What the ladder needs to know about a file, computed once for all its jobs.
    pub fn file_facts<'p, 'r>(&'r self, path: &'p str) -> FileFacts<'p, 'r> {
        FileFacts {
            path,
            basename_len: crate::model::basename(path).len(),
            group_paths: self
                .group_paths
                .iter()
                .filter(|(_, _, re)| re.is_match(path))
                .map(|(c, p, _)| (*c, *p))
                .collect(),
            farm: self
                .farm_files
                .get(crate::model::basename(path))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The rule ladder for a job of the file at `path`; see [`Rules::decide_in`].
    pub fn decide(
        &self,
        job: &Job,
        path: &str,
        incumbent: Option<&str>,
    ) -> Result<Decision, LadderError> {
        self.decide_in(job, &self.file_facts(path), incumbent)
    }

    /// The rule ladder (first match wins).
    ///
    /// `incumbent` is where the job runs now; it only matters for cordoned clusters, which
    /// keep what they have but receive nothing new.
    pub fn decide_in(
        &self,
        job: &Job,
        file: &FileFacts<'_, '_>,
        incumbent: Option<&str>,
    ) -> Result<Decision, LadderError> {
        let basename_len = file.basename_len;
        let path = file.path;
        let fixed = |cluster: &str, rule: Rule, detail: String| Decision {
            cluster: Some(cluster.to_owned()),
            relocatable: false,
            rule,
            detail,
            set: Arc::clone(&self.no_set),
        };
        // 0 (the sanitizer since cddfe66ae)
        if self.keep_static
            && let Some(c) = job.cluster.as_deref().filter(|c| self.keeps_static(c))
        {
            return Ok(fixed(
                c,
                Rule::StaticCluster,
                format!("static cluster {c} is a usable cluster: kept as it is"),
            ));
        }
        // 1
        if !job.is_kubernetes() {
            return Ok(Decision {
                cluster: None,
                relocatable: false,
                rule: Rule::NoClusterAgent,
                detail: format!("agent {:?} is not kubernetes", job.agent),
                set: Arc::clone(&self.no_set),
            });
        }
        // 1a (HEAD)
        if let Some(c) = job.cluster.as_deref()
            && self.config.manual_clusters.iter().any(|m| m == c)
        {
            return Ok(fixed(
                c,
                Rule::ManualCluster,
                format!("static cluster {c} is in manualClusters"),
            ));
        }
        // 2
        let mut carried_relocatable = false;
        if job.name.contains("vsphere") && !job.is_applyconfig() {
            if job
                .labels
                .get(labels::CLOUD_CLUSTER_PROFILE)
                .is_some_and(|p| p == labels::VSPHERE_ELASTIC_POC)
            {
                carried_relocatable = true;
            } else {
                return Ok(fixed(
                    &self.vsphere_cluster,
                    Rule::Vsphere,
                    "job name contains \"vsphere\"".to_owned(),
                ));
            }
        }
        // 3
        if job.labels.contains_key(labels::SSH_BASTION)
            && let Some(b) = self.config.ssh_bastion.as_deref().filter(|b| !b.is_empty())
        {
            return Ok(fixed(
                b,
                Rule::SshBastion,
                format!("label {}", labels::SSH_BASTION),
            ));
        }
        // 4
        if let Some(c) = job.labels.get(labels::CLUSTER) {
            return Ok(fixed(
                c,
                Rule::LabelPin,
                format!("label {}={c}", labels::CLUSTER),
            ));
        }
        // 5
        let required = job.capabilities();
        if !required.is_empty() {
            return self.by_capabilities(job, &required, basename_len, incumbent);
        }
        // 6
        if job.labels.contains_key(labels::KVM) && !self.kvm.is_empty() {
            return self.pick(
                &self.kvm,
                basename_len,
                incumbent,
                Rule::Kvm,
                format!("label {}", labels::KVM),
            );
        }
        // 7
        if self.config.determine_e2e_by_job
            && let Some(cloud) = self.mapped_cloud(job)
            && let Some(set) = self.farm_cloud.get(cloud).filter(|s| !s.is_empty())
        {
            let raw = job.raw_cloud().unwrap_or_default();
            let detail = if raw == cloud {
                format!("e2e cloud {cloud}")
            } else {
                format!("e2e cloud {raw} mapped to {cloud}")
            };
            return self.pick(set, basename_len, incumbent, Rule::E2eCloud, detail);
        }
        // 8
        if job.labels.contains_key(labels::NO_BUILDS) && !self.no_builds.is_empty() {
            return self.pick(
                &self.no_builds,
                basename_len,
                incumbent,
                Rule::NoBuilds,
                format!("label {}", labels::NO_BUILDS),
            );
        }
        // 9
        let mut decided: Option<Decision> = None;
        if let Some(c) = self.group_jobs.get(job.name.as_str()) {
            let mut d = fixed(c, Rule::GroupName, format!("listed in groups.{c}.jobs"));
            d.relocatable = carried_relocatable;
            decided = Some(d);
        }
        if file.is_contested() {
            return Err(LadderError {
                rule: Rule::GroupPath,
                reason: format!(
                    "path {path} matches more than one entry: {}",
                    file.claims().join(", ")
                ),
            });
        }
        if decided.is_none()
            && let Some((cluster, re)) = file.group_paths.first()
        {
            let mut d = fixed(
                cluster,
                Rule::GroupPath,
                format!("path matches groups.{cluster}.paths {re:?}"),
            );
            d.relocatable = carried_relocatable;
            decided = Some(d);
        }
        if decided.is_none()
            && let Some((_, cluster)) = file.farm.first()
        {
            decided = Some(Decision {
                cluster: Some((*cluster).to_owned()),
                relocatable: true,
                rule: Rule::BuildFarm,
                detail: format!("file listed in buildFarm under {cluster}"),
                set: Arc::clone(&self.no_set),
            });
        }
        if let Some(d) = decided {
            return Ok(d);
        }
        // 10
        Ok(Decision {
            cluster: Some(self.config.default.clone()),
            relocatable: true,
            rule: Rule::Default,
            detail: "no rule matched: default".to_owned(),
            set: Arc::clone(&self.no_set),
        })
    }

    fn by_capabilities(
        &self,
        job: &Job,
        required: &BTreeSet<String>,
        basename_len: usize,
        incumbent: Option<&str>,
    ) -> Result<Decision, LadderError> {
        let capable: Vec<String> = self
            .inventory
            .clusters
            .values()
            .filter(|c| !c.blocked && required.is_subset(&c.capabilities))
            .map(|c| c.name.clone())
            .collect();
        let wanted = required.iter().cloned().collect::<Vec<_>>().join(", ");
        if capable.is_empty() {
            return Err(LadderError {
                rule: Rule::Capability,
                reason: format!(
                    "no usable cluster has capabilities [{wanted}]{}",
                    self.capability_hint(required)
                ),
            });
        }
        let mut set = capable;
        let mut detail = format!("requires [{wanted}]");
        if self.config.determine_e2e_by_job
            && let Some(cloud) = self.mapped_cloud(job)
        {
            let same_cloud: Vec<String> = set
                .iter()
                .filter(|n| self.inventory.clusters[*n].provider == cloud)
                .cloned()
                .collect();
            if !same_cloud.is_empty() {
                set = same_cloud;
                detail.push_str(&format!(" on cloud {cloud}"));
            }
        }
        self.pick(
            &set.into(),
            basename_len,
            incumbent,
            Rule::Capability,
            detail,
        )
    }

    /// Explains a capability miss: which clusters have the capabilities but are blocked,
    /// or what each usable cluster lacks.
    fn capability_hint(&self, required: &BTreeSet<String>) -> String {
        let blocked: Vec<&str> = self
            .inventory
            .clusters
            .values()
            .filter(|c| c.blocked && required.is_subset(&c.capabilities))
            .map(|c| c.name.as_str())
            .collect();
        if !blocked.is_empty() {
            return format!(" (only on blocked {})", blocked.join(", "));
        }
        let missing: Vec<String> = self
            .inventory
            .clusters
            .values()
            .filter(|c| !c.blocked)
            .map(|c| {
                let lack: Vec<&str> = required
                    .difference(&c.capabilities)
                    .map(String::as_str)
                    .collect();
                format!("{}: missing [{}]", c.name, lack.join(", "))
            })
            .collect();
        if missing.is_empty() {
            " (no usable cluster in the inventory)".to_owned()
        } else {
            format!(" ({})", missing.join("; "))
        }
    }

    /// `set[len(basename) mod n]`, avoiding a cordoned pick for a job that is not already
    /// there (the pick is then made among the set's other clusters, so that only the jobs
    /// that would newly land on the cordoned cluster change).
    fn pick(
        &self,
        set: &Arc<[String]>,
        basename_len: usize,
        incumbent: Option<&str>,
        rule: Rule,
        detail: String,
    ) -> Result<Decision, LadderError> {
        let first = &set[basename_len % set.len()];
        let chosen = if self.inventory.is_cordoned(first) && incumbent != Some(first.as_str()) {
            let open: Vec<&String> = set
                .iter()
                .filter(|c| !self.inventory.is_cordoned(c))
                .collect();
            if open.is_empty() {
                return Err(LadderError {
                    rule,
                    reason: format!("{detail}: every candidate is cordoned ({})", set.join(", ")),
                });
            }
            open[basename_len % open.len()].clone()
        } else {
            first.clone()
        };
        Ok(Decision {
            cluster: Some(chosen),
            relocatable: false,
            rule,
            detail,
            set: Arc::clone(set),
        })
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `^periodic-build[0-9]{2}-upgrade$`: cluster-upgrade periodics keep running on their own
/// blocked cluster.
pub fn is_cluster_upgrade_job(name: &str) -> bool {
    name.strip_prefix("periodic-build")
        .and_then(|r| r.strip_suffix("-upgrade"))
        .is_some_and(|digits| digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// How the final target was reached when the decided cluster could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    None,
    /// A pinned job whose pin is blocked follows its file.
    FollowsFile,
    /// The target was blocked: `default`.
    Default,
}

/// Target resolution (§6): `file_cluster` is C, `decision` gives D and R.
pub fn resolve_target(
    inventory: &Inventory,
    default: &str,
    job_name: &str,
    file_cluster: Option<&str>,
    decision: &Decision,
) -> Result<(String, Fallback), String> {
    let d = decision
        .cluster
        .as_deref()
        .expect("resolve_target is only called for Kubernetes jobs");
    let exempt = inventory.is_blocked(d) && is_cluster_upgrade_job(job_name);
    let blocked = |c: &str| inventory.is_blocked(c) && !(exempt && c == d);
    let c = file_cluster.unwrap_or(d);
    let (t, fallback) = if c == d || decision.relocatable {
        (c, Fallback::None)
    } else if !blocked(d) {
        (d, Fallback::None)
    } else {
        (c, Fallback::FollowsFile)
    };
    if blocked(t) {
        if inventory.is_blocked(default) {
            return Err(format!(
                "target {t} is blocked and the default cluster {default} is blocked too"
            ));
        }
        return Ok((default.to_owned(), Fallback::Default));
    }
    Ok((t.to_owned(), fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_job_pattern() {
        assert!(is_cluster_upgrade_job("periodic-build02-upgrade"));
        assert!(!is_cluster_upgrade_job("periodic-build2-upgrade"));
        assert!(!is_cluster_upgrade_job("periodic-build023-upgrade"));
        assert!(!is_cluster_upgrade_job("periodic-build02-upgrade-x"));
        assert!(!is_cluster_upgrade_job("xperiodic-build02-upgrade"));
    }
}
