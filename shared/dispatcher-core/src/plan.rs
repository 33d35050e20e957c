//! The plan: the output of a run, and the `--previous` input of the next one.
//!
//! Every map is a `BTreeMap` and every list is sorted, so identical inputs give a
//! byte-identical JSON document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diag::Diagnostic;
use crate::model::DemandModel;
use crate::rules::Rule;

/// Version of the plan document; bumped on incompatible changes.
pub const PLAN_FORMAT: u32 = 1;

/// How relocatable jobs are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Capacity-normalised balancing with hysteresis and a movement budget.
    Balanced,
    /// The Go dispatcher's classic balancing, with deterministic ties.
    Classic,
    /// The config applied as written, no balancing (what the sanitizer does).
    Resolve,
}

/// Which jobs a run places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Place every job.
    Full,
    /// Place only jobs absent from the previous plan; move nothing else.
    Delta,
}

/// Every job's cluster, and why: the output of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`] when it was written.
    pub format: u32,
    /// The strategy that placed it.
    pub strategy: Strategy,
    /// The mode it was placed in.
    pub mode: Mode,
    /// The settings it was placed with.
    pub parameters: Parameters,
    /// What it was placed from.
    pub inputs: InputDigests,
    /// Totals: jobs, moves, balance.
    pub summary: Summary,
    /// Per cluster: its state, load and moves.
    pub clusters: BTreeMap<String, ClusterEntry>,
    /// Per job file (by path): its cluster and why.
    pub files: BTreeMap<String, FileEntry>,
    /// Per job name: its cluster and the rule that decided it.
    pub jobs: BTreeMap<String, JobEntry>,
    /// The jobs no cluster can take, sorted.
    pub unschedulable: Vec<Unschedulable>,
    /// Findings about the inputs, sorted.
    pub diagnostics: Vec<Diagnostic>,
}

/// The settings of the run that made a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// Target of the name-based vsphere rule.
    pub vsphere_cluster: String,
    /// The hysteresis, in percent of a file's score.
    pub hysteresis_percent: f64,
    /// The movement budget, in percent of the total demand.
    pub movement_budget_percent: f64,
    /// How volumes were weighed into demand.
    pub demand: DemandModel,
}

/// `sha256:<hex>` digests of the inputs, computed by the reader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDigests {
    /// The dispatcher config, as canonical JSON of the parsed file.
    pub config: String,
    /// The inventory, as canonical JSON of the parsed file.
    pub inventory: String,
    /// Every job file's path and size and the fields the rules read.
    pub jobs: String,
    /// The runs vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<String>,
    /// The job-seconds vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations: Option<String>,
    /// The CPU-seconds vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// The memory byte-seconds vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// The previous plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// A plan's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Distinct job names.
    pub jobs: usize,
    /// Job files.
    pub files: usize,
    /// Jobs that run on Kubernetes (the others have no cluster).
    pub kubernetes_jobs: usize,
    /// Jobs with a cluster in this plan.
    pub placed_jobs: usize,
    /// Jobs no cluster can take.
    pub unschedulable_jobs: usize,
    /// Jobs of the previous plan whose cluster changed (forced moves included).
    pub moved_jobs: usize,
    /// Their demand.
    pub moved_demand: f64,
    /// Of those, moves the run could not avoid: a blocked, removed or no longer eligible
    /// cluster, or a changed rule. Exempt from the budget.
    pub forced_moved_jobs: usize,
    /// Their demand.
    pub forced_moved_demand: f64,
    /// Jobs of the previous plan that no longer exist.
    pub removed_jobs: usize,
    /// Jobs absent from the previous plan.
    pub new_jobs: usize,
    /// Demand of the Kubernetes jobs.
    pub total_demand: f64,
    /// Movement budget in demand units (`None` without a previous plan).
    pub budget_demand: Option<f64>,
    /// Budgeted (non-forced) demand moved.
    pub budget_used: f64,
    /// Max relative deviation of a balanced cluster's demand from its capacity target.
    pub max_deviation: f64,
    /// The same for the best fractional placement under the same hard constraints: the
    /// floor no integral placement can beat.
    pub fractional_optimum_deviation: f64,
}

/// What a cluster takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterState {
    /// Balanced: in the build farm and accepting new files.
    Active,
    /// Takes nothing; its jobs go elsewhere.
    Blocked,
    /// Keeps what it has, receives nothing new.
    Cordoned,
    /// Receives only jobs that require one of its capabilities or are pinned to it.
    Reserved,
    /// A target named by the config (groups, pins, manualClusters) but not in the inventory.
    Unmanaged,
}

impl ClusterState {
    /// The state's name in the plan.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Active => "active",
            ClusterState::Blocked => "blocked",
            ClusterState::Cordoned => "cordoned",
            ClusterState::Reserved => "reserved",
            ClusterState::Unmanaged => "unmanaged",
        }
    }
}

/// One cluster's part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEntry {
    /// What it takes.
    pub state: ClusterState,
    /// Its cloud, when the inventory has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Its capacity, when the inventory has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Jobs placed on it.
    pub jobs: usize,
    /// Files whose file-level cluster is this one (what `buildFarm` lists).
    pub files: usize,
    /// Demand placed on it.
    pub demand: f64,
    /// Share of all placed demand.
    pub share: f64,
    /// For active clusters: capacity share of the balanced demand, as a share of all demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_share: Option<f64>,
    /// Demand of the jobs that moved onto it.
    pub moved_in_demand: f64,
    /// Demand of the jobs that moved off it.
    pub moved_out_demand: f64,
}

/// Why a file's cluster is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileReason {
    /// The lowest score among eligible clusters.
    BestScore,
    /// Kept on its previous cluster, which is already the best.
    Kept,
    /// Kept: another cluster scores better, but by less than the hysteresis.
    Hysteresis,
    /// Kept: moving would help beyond the hysteresis, but the movement budget is spent.
    BudgetExhausted,
    /// Budgeted move: reduces imbalance the most per unit of demand moved.
    Rebalanced,
    /// Its previous cluster is blocked, removed or no longer eligible.
    ForcedMove,
    /// On a cordoned cluster, which keeps what it has.
    CordonedKeep,
    /// Classic: the most used cluster is below 75% of its share.
    Sticky,
    /// Classic: the least raw volume among full-capacity clusters.
    LeastLoaded,
    /// No job follows the file's cluster; chosen by a stable hash.
    NoMovableDemand,
    /// Resolve: the config as written.
    Resolved,
    /// Delta: existing files keep their cluster.
    DeltaKept,
    /// No eligible cluster: its jobs fall back to their decided cluster.
    NoEligibleCluster,
}

impl FileReason {
    /// The reason's name in the plan.
    pub fn as_str(self) -> &'static str {
        match self {
            FileReason::BestScore => "best-score",
            FileReason::Kept => "kept",
            FileReason::Hysteresis => "hysteresis",
            FileReason::BudgetExhausted => "budget-exhausted",
            FileReason::Rebalanced => "rebalanced",
            FileReason::ForcedMove => "forced-move",
            FileReason::CordonedKeep => "cordoned-keep",
            FileReason::Sticky => "sticky",
            FileReason::LeastLoaded => "least-loaded",
            FileReason::NoMovableDemand => "no-movable-demand",
            FileReason::Resolved => "resolved",
            FileReason::DeltaKept => "delta-kept",
            FileReason::NoEligibleCluster => "no-eligible-cluster",
        }
    }
}

/// One job file's part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file-level cluster (C), listed in `buildFarm` unless the path is in a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Why the cluster is what it is.
    pub reason: FileReason,
    /// Its placed jobs.
    pub jobs: usize,
    /// Their demand.
    pub demand: f64,
    /// Demand of the jobs that follow the file's cluster.
    pub movable_demand: f64,
    /// Where its movable jobs were in the previous plan (the most common cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The mapped cloud shared by the file's jobs, if it restricts eligibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// Whether the path matches a group regex (then it is not listed in `buildFarm`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group_path: bool,
    /// Balanced files: every cluster's score, and why the rejected ones were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

/// One cluster considered for a balanced file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The cluster.
    pub cluster: String,
    /// `(assigned + projected demand) / capacity target`: 1.0 means exactly on target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Why the file may not go there (`blocked`, `reserved`, `cordoned`, a cloud mismatch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<String>,
}

/// One job's part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEntry {
    /// `None` for non-Kubernetes agents and unschedulable jobs without a previous cluster.
    pub cluster: Option<String>,
    /// The file that defines it (the first, by path, when several do).
    pub file: String,
    /// The rule that decided its cluster.
    pub rule: Rule,
    /// Its demand.
    pub demand: f64,
    /// How the rule matched, and any fallback taken.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A job no cluster can take.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Unschedulable {
    /// The job.
    pub job: String,
    /// Its file.
    pub file: String,
    /// Why no cluster can take it.
    pub reason: String,
    /// The previous cluster the job keeps, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

impl Plan {
    /// The plan as compact JSON (a real plan is 18 MB; `jq` pretty-prints) with a final
    /// newline: exactly `serde_json::to_string`'s bytes, but the `files` and `jobs` maps
    /// (nearly all of it) are written in parallel chunks, which compact JSON allows since
    /// an entry's text does not depend on its neighbours.
    ///
    /// # Panics
    ///
    /// Never for a plan: its types serialise without fail (derived impls, string map keys,
    /// numbers, a NaN written as `null`) into memory, which cannot fail either.
    pub fn to_json(&self) -> String {
        let bytes = self
            .encode()
            .expect("a plan's types always serialise into memory");
        String::from_utf8(bytes).expect("serde_json writes UTF-8 and the joints are ASCII")
    }

    /// The bytes of [`Plan::to_json`].
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        // The fields before the two maps, in declaration order; the rest is appended.
        #[derive(Serialize)]
        struct Head<'a> {
            format: u32,
            strategy: Strategy,
            mode: Mode,
            parameters: &'a Parameters,
            inputs: &'a InputDigests,
            summary: &'a Summary,
            clusters: &'a BTreeMap<String, ClusterEntry>,
        }
        let (files, jobs) = rayon::join(|| map_chunks(&self.files), || map_chunks(&self.jobs));
        let (files, jobs) = (files?, jobs?);
        let head = Head {
            format: self.format,
            strategy: self.strategy,
            mode: self.mode,
            parameters: &self.parameters,
            inputs: &self.inputs,
            summary: &self.summary,
            clusters: &self.clusters,
        };
        let mut out = serde_json::to_vec(&head)?;
        out.pop(); // the head's closing brace
        let bulk: usize = files.iter().chain(&jobs).map(Vec::len).sum();
        out.reserve(bulk + 4096);
        out.extend_from_slice(b",\"files\":");
        push_map(&mut out, &files);
        out.extend_from_slice(b",\"jobs\":");
        push_map(&mut out, &jobs);
        out.extend_from_slice(b",\"unschedulable\":");
        serde_json::to_writer(&mut out, &self.unschedulable)?;
        out.extend_from_slice(b",\"diagnostics\":");
        serde_json::to_writer(&mut out, &self.diagnostics)?;
        out.extend_from_slice(b"}\n");
        Ok(out)
    }

    /// A plan from its JSON (the `--previous` input).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// A string-keyed map's entries as compact JSON, written in parallel chunks, each entry
/// followed by a comma. The chunks are copied once, into the plan's text: with 200k jobs
/// every extra copy of the tens of megabytes is a visible share of the time.
fn map_chunks<V: Serialize + Sync>(
    map: &BTreeMap<String, V>,
) -> Result<Vec<Vec<u8>>, serde_json::Error> {
    use rayon::prelude::*;
    let entries: Vec<(&String, &V)> = map.iter().collect();
    entries
        .par_chunks(2048)
        .map(|chunk| {
            let mut out = Vec::with_capacity(chunk.len() * 512);
            for (k, v) in chunk {
                serde_json::to_writer(&mut out, k)?;
                out.push(b':');
                serde_json::to_writer(&mut out, v)?;
                out.push(b',');
            }
            Ok(out)
        })
        .collect()
}

/// Appends the map written by [`map_chunks`] as a JSON object.
fn push_map(out: &mut Vec<u8>, chunks: &[Vec<u8>]) {
    out.push(b'{');
    for c in chunks {
        out.extend_from_slice(c);
    }
    // Every entry ended with a comma; the last one's becomes the closing brace.
    if out.last() == Some(&b',') {
        out.pop();
    }
    out.push(b'}');
}

/// Rounds a demand figure for output, so that float noise does not show.
pub(crate) fn round3(x: f64) -> f64 {
    // `+ 0.0` turns the -0.0 of an empty float sum into 0.0.
    (x * 1000.0).round() / 1000.0 + 0.0
}

/// Rounds a share or score for output.
pub(crate) fn round6(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0 + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names reports print are the plan's names.
    #[test]
    fn names_are_the_serialised_names() {
        let serialised = |v: serde_json::Value| v.as_str().map(str::to_owned);
        for s in [
            ClusterState::Active,
            ClusterState::Blocked,
            ClusterState::Cordoned,
            ClusterState::Reserved,
            ClusterState::Unmanaged,
        ] {
            let v = serde_json::to_value(s).expect("serialises");
            assert_eq!(serialised(v).as_deref(), Some(s.as_str()));
        }
        for r in [
            FileReason::BestScore,
            FileReason::Kept,
            FileReason::Hysteresis,
            FileReason::BudgetExhausted,
            FileReason::Rebalanced,
            FileReason::ForcedMove,
            FileReason::CordonedKeep,
            FileReason::Sticky,
            FileReason::LeastLoaded,
            FileReason::NoMovableDemand,
            FileReason::Resolved,
            FileReason::DeltaKept,
            FileReason::NoEligibleCluster,
        ] {
            let v = serde_json::to_value(r).expect("serialises");
            assert_eq!(serialised(v).as_deref(), Some(r.as_str()));
        }
    }
}
