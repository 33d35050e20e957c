//! The parsed inputs of a placement run: dispatcher config, cluster inventory, job files and
//! volumes. Parsing lives outside the core (`dispatcher-formats`); these are plain values.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Where job files live in the release repository; paths below it are what HEAD hashes.
pub const JOBS_DIR: &str = "ci-operator/jobs/";

/// Label keys and values the rule ladder reads (dispatcher-semantics.md §4).
pub mod labels {
    /// Pins a job to a cluster.
    pub const CLUSTER: &str = "ci-operator.openshift.io/cluster";
    /// The job's e2e cloud.
    pub const CLOUD: &str = "ci-operator.openshift.io/cloud";
    /// The job's cluster profile; [`VSPHERE_ELASTIC_POC`] keeps a vsphere job relocatable.
    pub const CLOUD_CLUSTER_PROFILE: &str = "ci-operator.openshift.io/cloud-cluster-profile";
    /// The cluster profile of vsphere jobs that may run on any cluster.
    pub const VSPHERE_ELASTIC_POC: &str = "vsphere-elastic-poc";
    /// The job needs kvm: `kvm` clusters.
    pub const KVM: &str = "devices.kubevirt.io/kvm";
    /// The job needs the ssh bastion: `sshBastion`.
    pub const SSH_BASTION: &str = "dptp.openshift.io/ssh-bastion";
    /// The job runs no builds: `noBuilds` clusters.
    pub const NO_BUILDS: &str = "ci.openshift.io/no-builds";
    /// `capability/X: X` requires capability `X`.
    pub const CAPABILITY_PREFIX: &str = "capability/";

    /// Whether the rules read a label; readers keep only these.
    pub fn is_read(key: &str) -> bool {
        key.starts_with(CAPABILITY_PREFIX)
            || matches!(
                key,
                CLUSTER | CLOUD | CLOUD_CLUSTER_PROFILE | KVM | SSH_BASTION | NO_BUILDS
            )
    }
}

/// `core-services/sanitize-prow-jobs/_config.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatcherConfig {
    /// Where jobs go that no rule places, and where blocked targets fall back to.
    pub default: String,
    /// The target of the ssh-bastion label.
    pub ssh_bastion: Option<String>,
    /// The clusters kvm jobs are picked from.
    pub kvm: Vec<String>,
    /// The clusters no-builds jobs are picked from.
    pub no_builds: Vec<String>,
    /// Whether a job's e2e cloud picks its cluster (`determineE2EByJob`).
    pub determine_e2e_by_job: bool,
    /// Raw cloud -> cloud of the build farm.
    pub cloud_mapping: BTreeMap<String, String>,
    /// cluster -> manual assignments.
    pub groups: BTreeMap<String, Group>,
    /// cloud -> cluster -> job-file basenames (the generated section).
    pub build_farm: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Valid targets that are never auto-scheduled (HEAD's `manualClusters`).
    pub manual_clusters: Vec<String>,
}

/// One entry of `groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Job names.
    pub jobs: Vec<String>,
    /// Go RE2 regexes, matched unanchored against the repo-relative file path.
    pub paths: Vec<String>,
}

/// `_clusters.yaml`, normalised: capacity clamped to 1..=100, capabilities a sorted set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// By name.
    pub clusters: BTreeMap<String, Cluster>,
}

/// One build cluster of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Its name, as jobs and the config name it.
    pub name: String,
    /// Its cloud (`aws`, `gcp`).
    pub provider: String,
    /// Desired percentage of load, 1..=100 after normalisation.
    pub capacity: u32,
    /// What it offers jobs that require capabilities (`arm64`, `gpu`, ...).
    pub capabilities: BTreeSet<String>,
    /// Takes no jobs; its jobs go elsewhere.
    pub blocked: bool,
    /// Ours: receives only jobs that require one of its capabilities or are pinned to it.
    pub reserved: bool,
    /// Ours: keeps what it has, receives nothing new.
    pub cordoned: bool,
}

impl Cluster {
    /// A usable cluster: no capabilities, neither blocked, reserved nor cordoned.
    pub fn new(name: &str, provider: &str, capacity: u32) -> Self {
        Self {
            name: name.to_owned(),
            provider: provider.to_owned(),
            capacity,
            capabilities: BTreeSet::new(),
            blocked: false,
            reserved: false,
            cordoned: false,
        }
    }
}

impl Inventory {
    /// Whether the inventory has the cluster and does not block it.
    pub fn usable(&self, name: &str) -> bool {
        self.clusters.get(name).is_some_and(|c| !c.blocked)
    }

    /// Whether the inventory blocks the cluster.
    pub fn is_blocked(&self, name: &str) -> bool {
        self.clusters.get(name).is_some_and(|c| c.blocked)
    }

    /// Whether the cluster is cordoned (and not blocked, which says more).
    pub fn is_cordoned(&self, name: &str) -> bool {
        self.clusters
            .get(name)
            .is_some_and(|c| c.cordoned && !c.blocked)
    }
}

/// Which section of a Prow job file a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Runs on pull requests.
    Presubmit,
    /// Runs on merges.
    Postsubmit,
    /// Runs on a schedule.
    Periodic,
}

/// The fields of a Prow job that the rules read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its name, unique across the release (the first definition wins).
    pub name: String,
    /// The section it came from.
    pub kind: JobKind,
    /// Empty means Kubernetes (readers store a written `kubernetes` as empty).
    pub agent: String,
    /// The static `cluster:` field (Prow's fallback).
    pub cluster: Option<String>,
    /// The labels the rules read ([`labels::is_read`]).
    pub labels: Labels,
    /// Its containers, for the e2e cloud and the applyconfig exception.
    pub containers: Vec<Container>,
}

/// A job's labels: a handful of key-value pairs, kept sorted by key in one small vector.
/// A map node per job (a `BTreeMap` allocates room for eleven entries) made the jobs of a
/// large release several times bigger, and every pass over them slower.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key`, returning its previous value, like a map.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for Labels {
    /// A key given twice keeps its last value, like a map.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut out = Labels::new();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out
    }
}

impl<const N: usize> From<[(String, String); N]> for Labels {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        Labels(map.into_iter().collect())
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(labels: Labels) -> Self {
        labels.0.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = String;

    fn index(&self, key: &str) -> &String {
        self.get(key).unwrap_or_else(|| panic!("no label {key:?}"))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// The fields of a job's container that the rules read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Its image.
    pub image: String,
    /// Values of `CLUSTER_TYPE` environment variables, in order.
    pub cluster_types: Vec<String>,
}

impl Job {
    /// Whether it runs on Kubernetes: only those have a cluster.
    pub fn is_kubernetes(&self) -> bool {
        self.agent.is_empty() || self.agent == "kubernetes"
    }

    /// Exactly one container whose image contains `applyconfig`.
    pub fn is_applyconfig(&self) -> bool {
        self.containers.len() == 1 && self.containers[0].image.contains("applyconfig")
    }

    /// The raw cloud: the cloud label if non-empty, else the first `CLUSTER_TYPE` that is
    /// `aws` or `gcp`.
    pub fn raw_cloud(&self) -> Option<&str> {
        if let Some(v) = self.labels.get(labels::CLOUD).filter(|v| !v.is_empty()) {
            return Some(v);
        }
        self.containers
            .iter()
            .flat_map(|c| c.cluster_types.iter())
            .find(|v| *v == "aws" || *v == "gcp")
            .map(String::as_str)
    }

    /// Required capabilities: `capability/X: X` labels only, as a sorted set (F1: one
    /// extractor for every use).
    pub fn capabilities(&self) -> BTreeSet<String> {
        self.labels
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(labels::CAPABILITY_PREFIX)
                    .filter(|suffix| !suffix.is_empty() && *suffix == v)
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// One Prow job file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    /// Repo-relative path, e.g. `ci-operator/jobs/org/repo/org-repo-main-presubmits.yaml`.
    pub path: String,
    /// Size in bytes (the classic strategy orders files by it).
    pub size: u64,
    /// Its jobs, in file order.
    pub jobs: Vec<Job>,
}

impl JobFile {
    /// Its file name, which `buildFarm` lists.
    pub fn basename(&self) -> &str {
        basename(&self.path)
    }
}

/// The last component of a path.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Job volumes from Prometheus, per job name: runs over the window, and optionally the
/// window's job-hours, CPU-hours and memory GiB-hours (HEAD's demand queries).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volumes {
    /// Runs over the window.
    pub runs: BTreeMap<String, f64>,
    /// Job-hours over the window.
    pub hours: Option<BTreeMap<String, f64>>,
    /// CPU-hours over the window.
    pub cpu_hours: Option<BTreeMap<String, f64>>,
    /// Memory GiB-hours over the window.
    pub memory_gib_hours: Option<BTreeMap<String, f64>>,
}

/// How runs, job-hours, CPU-hours and memory GiB-hours become one demand figure (HEAD's
/// formula: the weighted sum, floored at the minimum).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DemandModel {
    /// Weight of a run.
    pub run_weight: f64,
    /// Weight of a job-hour.
    pub hour_weight: f64,
    /// Weight of a CPU-hour.
    #[serde(default = "default_cpu_hour_weight")]
    pub cpu_hour_weight: f64,
    /// Weight of a memory GiB-hour.
    #[serde(default = "default_memory_gib_hour_weight")]
    pub memory_gib_hour_weight: f64,
    /// Floor for every job, so that jobs without samples are not free (F14).
    pub minimum: f64,
}

fn default_cpu_hour_weight() -> f64 {
    1.0
}

fn default_memory_gib_hour_weight() -> f64 {
    0.25
}

impl Default for DemandModel {
    fn default() -> Self {
        Self {
            run_weight: 1.0,
            hour_weight: 1.0,
            cpu_hour_weight: default_cpu_hour_weight(),
            memory_gib_hour_weight: default_memory_gib_hour_weight(),
            minimum: 1.0,
        }
    }
}

/// A setting of the demand model that cannot weigh anything: which one, and its value.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum DemandModelError {
    /// A weight that is NaN, infinite or negative.
    #[error("{field} must be a finite, non-negative number, not {value}")]
    Weight {
        /// The field of [`DemandModel`].
        field: &'static str,
        /// What it was.
        value: f64,
    },
    /// A minimum that is NaN, infinite, zero or negative.
    #[error("minimum must be a finite, positive number, not {0}")]
    Minimum(f64),
    /// Every weight is zero: every job would weigh the minimum.
    #[error(
        "every weight is 0: at least one of run, hour, CPU-hour and memory GiB-hour weights must be positive"
    )]
    NoWeight,
}

/// The weighted demand of a job is not a finite number (a sample or weight too large).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the weighted demand of job {job} is not finite ({runs} runs, {hours} job-hours, {cpu_hours} CPU-hours, {memory_gib_hours} GiB-hours)"
)]
pub struct DemandOverflow {
    /// The job.
    pub job: String,
    /// Its runs over the window.
    pub runs: f64,
    /// Its job-hours.
    pub hours: f64,
    /// Its CPU-hours.
    pub cpu_hours: f64,
    /// Its memory GiB-hours.
    pub memory_gib_hours: f64,
}

impl DemandModel {
    /// Checks every setting, naming the first that cannot weigh anything.
    pub fn check(&self) -> Result<(), DemandModelError> {
        for (field, value) in [
            ("run_weight", self.run_weight),
            ("hour_weight", self.hour_weight),
            ("cpu_hour_weight", self.cpu_hour_weight),
            ("memory_gib_hour_weight", self.memory_gib_hour_weight),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(DemandModelError::Weight { field, value });
            }
        }
        if !self.minimum.is_finite() || self.minimum <= 0.0 {
            return Err(DemandModelError::Minimum(self.minimum));
        }
        if self.run_weight + self.hour_weight + self.cpu_hour_weight + self.memory_gib_hour_weight
            == 0.0
        {
            return Err(DemandModelError::NoWeight);
        }
        Ok(())
    }

    /// The demand of `job`: its weighted volumes floored at the minimum; the minimum alone
    /// without volumes.
    pub fn demand(&self, volumes: Option<&Volumes>, job: &str) -> Result<f64, DemandOverflow> {
        let Some(v) = volumes else {
            return Ok(self.minimum);
        };
        let get =
            |m: Option<&BTreeMap<String, f64>>| m.and_then(|m| m.get(job).copied()).unwrap_or(0.0);
        self.combine(
            job,
            [
                get(Some(&v.runs)),
                get(v.hours.as_ref()),
                get(v.cpu_hours.as_ref()),
                get(v.memory_gib_hours.as_ref()),
            ],
        )
    }

    /// Runs, job-hours, CPU-hours and GiB-hours weighed into one figure, floored at the
    /// minimum; a sum that is not finite is an error naming the job.
    pub fn combine(&self, job: &str, terms: [f64; 4]) -> Result<f64, DemandOverflow> {
        let [runs, hours, cpu_hours, memory_gib_hours] = terms;
        let d = runs * self.run_weight
            + hours * self.hour_weight
            + cpu_hours * self.cpu_hour_weight
            + memory_gib_hours * self.memory_gib_hour_weight;
        if d.is_finite() {
            Ok(d.max(self.minimum))
        } else {
            Err(DemandOverflow {
                job: job.to_owned(),
                runs,
                hours,
                cpu_hours,
                memory_gib_hours,
            })
        }
    }
}
