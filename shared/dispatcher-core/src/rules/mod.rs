//! The per-job rule ladder and target resolution (dispatcher-semantics.md §5–§6).
//!
//! Shared by `resolve` (what the sanitizer writes) and by the balancing strategies, so the
//! static fallback and the API agree on every non-relocatable job. [`Rules`] is the config
//! compiled once per run; the ladder ([`Rules::decide_in`]) decides a job's cluster,
//! [`resolve_target`] applies blocked clusters to it, and [`LadderError`] and
//! [`TargetError`] say, as data, why a job has none.

mod facts;
mod ladder;
mod reason;
mod target;

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, chain};
use crate::model::{DispatcherConfig, Inventory, Job};

pub use facts::{Claim, FileFacts};
pub(crate) use reason::Listed;
pub use reason::{CapabilityShortfall, ClusterShortfall, LadderError, LadderReason};
pub use target::{Fallback, TargetError, is_cluster_upgrade_job, resolve_target};

/// The rule that decided a job's cluster. Every plan entry carries exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Resolve only: the job's static `cluster:` names a usable build-farm or manual
    /// cluster, which `sanitize-prow-jobs` keeps as it is (ci-tools `cddfe66ae`).
    StaticCluster,
    /// The job does not run on Kubernetes, so it has no cluster.
    NoClusterAgent,
    /// The job's static `cluster:` is listed in `manualClusters`.
    ManualCluster,
    /// The job's name contains `vsphere`: `--vsphere-cluster`.
    Vsphere,
    /// The ssh-bastion label: `sshBastion`.
    SshBastion,
    /// The `ci-operator.openshift.io/cluster` label names the cluster.
    LabelPin,
    /// Required capabilities: picked from the clusters that have them.
    Capability,
    /// The kvm label: picked from `kvm`.
    Kvm,
    /// The job's e2e cloud: picked from that cloud's build-farm clusters.
    E2eCloud,
    /// The no-builds label: picked from `noBuilds`.
    NoBuilds,
    /// The job is listed in a group's `jobs`.
    GroupName,
    /// The job's file matches a group's `paths` regex.
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

    /// The rule's name in the plan.
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
    /// The rule that matched.
    pub rule: Rule,
    /// How the rule matched, for the plan's `detail`.
    pub detail: String,
    /// For set-based rules: the clusters the rule picks from (sorted or config order),
    /// shared between the jobs that pick from it.
    pub set: Arc<[String]>,
}

/// The config compiled once per run: regexes, lookup tables, the reconciled build farm.
#[derive(Debug)]
pub struct Rules<'a> {
    /// The config the rules come from.
    pub config: &'a DispatcherConfig,
    /// The inventory the rules pick clusters from.
    pub inventory: &'a Inventory,
    /// The target of the name-based vsphere rule.
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

/// Why a group path pattern cannot be used.
#[derive(Debug, thiserror::Error)]
enum PatternError {
    /// Go's `regexp` would refuse it, so the sanitizer in the release's CI does too.
    #[error("Go's regexp (RE2) refuses it")]
    Re2(#[source] crate::re2::Re2Error),
    /// The `regex` crate refuses the translated pattern; its message spans several lines,
    /// which one diagnostic line cannot hold.
    #[error("{}", first_line(&.0.to_string()))]
    Regex(regex::Error),
}

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
                match compile_pattern(p) {
                    Ok(re) => group_paths.push((cluster.as_str(), p.as_str(), re)),
                    Err(e) => errors.push(Diagnostic::fatal(
                        config_file,
                        format!("groups.{cluster}.paths[{i}]"),
                        format!("regex {p:?} does not compile: {}", chain(&e)),
                    )),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            config,
            inventory,
            vsphere_cluster: vsphere_cluster.to_owned(),
            keep_static: false,
            group_jobs,
            group_paths,
            farm_files: farm_files(config),
            farm_cloud: farm_cloud(inventory),
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
            && (self.inventory.clusters.contains_key(cluster) || self.is_manual(cluster))
    }

    /// Whether `cluster` is listed in `manualClusters`.
    fn is_manual(&self, cluster: &str) -> bool {
        self.config.manual_clusters.iter().any(|m| m == cluster)
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
    pub fn file_facts<'p>(&self, path: &'p str) -> FileFacts<'p, 'a> {
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
}

/// A group path pattern with Go's meaning, or why it has none.
fn compile_pattern(pattern: &str) -> Result<Regex, PatternError> {
    let rust = crate::re2::go_regex(pattern).map_err(PatternError::Re2)?;
    Regex::new(&rust).map_err(PatternError::Regex)
}

/// `buildFarm` by file basename: the (cloud, cluster) entries listing it.
fn farm_files(config: &DispatcherConfig) -> FastMap<&str, Vec<(&str, &str)>> {
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
    farm_files
}

/// The build farm as the inventory makes it (HEAD's `SynchronizeBuildFarm`): each provider's
/// usable, unreserved clusters, in name order.
fn farm_cloud(inventory: &Inventory) -> BTreeMap<String, Arc<[String]>> {
    let mut farm_cloud: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in inventory.clusters.values() {
        if !c.blocked && !c.reserved {
            farm_cloud
                .entry(c.provider.clone())
                .or_default()
                .push(c.name.clone());
        }
    }
    farm_cloud.into_iter().map(|(k, v)| (k, v.into())).collect()
}

/// A multi-line message on one line.
fn first_line(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
