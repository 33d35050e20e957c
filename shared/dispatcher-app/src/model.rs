//! What is stored: the generation pointer, one item per job, generation records, and the
//! snapshot objects of each generation.

use std::collections::BTreeMap;

use dispatcher_core::Plan;
use dispatcher_core::overrides::OverrideSpec;
use dispatcher_core::plan::InputDigests;
use serde::{Deserialize, Serialize};

/// Why a generation was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The weekly schedule.
    Weekly,
    /// A push to the release repository.
    Push,
    /// An operator.
    Manual,
    /// `dispatcher rollback`.
    Rollback,
    /// An override started or ended.
    Override,
}

impl Cause {
    /// The cause as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Weekly => "weekly",
            Cause::Push => "push",
            Cause::Manual => "manual",
            Cause::Rollback => "rollback",
            Cause::Override => "override",
        }
    }
}

/// The single item readers resolve against: the current generation, and the publish in
/// flight, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pointer {
    /// 0 before the first publish (only `pending` is set then).
    #[serde(default)]
    pub generation: u64,
    /// The snapshot prefix the generation's objects live under.
    #[serde(default)]
    pub snapshot: String,
    /// The digest of the generation's plan.
    #[serde(default)]
    pub plan_digest: String,
    /// When it was published (seconds since the epoch).
    #[serde(default)]
    pub published_at: i64,
    /// Why it was made.
    #[serde(default = "manual")]
    pub cause: Cause,
    /// The digests of the inputs the plan was made from.
    #[serde(default)]
    pub inputs: InputDigests,
    /// What the generation applied beyond its release: the overrides, the baseline plan
    /// and the stored inputs.
    #[serde(default, flatten)]
    pub applied: Applied,
    /// A publish in progress on top of this generation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

fn manual() -> Cause {
    Cause::Manual
}

/// A publish that has claimed the next generation but not committed it yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The generation being made.
    pub generation: u64,
    /// The digest of the plan being published.
    pub plan_digest: String,
    /// Who holds the claim: only the same publisher (a retry of the same request) resumes
    /// it while the lease runs, whatever plan another publisher brings.
    #[serde(default)]
    pub owner: String,
    /// Snapshot key of the jobs it may have written: a takeover rewrites them.
    pub changes: String,
    /// Change lists of the claims this one took over (and those took over): their jobs may
    /// carry this generation too, so they are rewritten as well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherited: Vec<String>,
    /// When the claim was made (seconds since the epoch).
    pub started_at: i64,
    /// After this, another publisher may take the generation over.
    pub lease_until: i64,
}

impl Pending {
    /// The claim to store when `self` replaces `held` (a stale claim, or an earlier
    /// attempt of the same owner): whatever `held` may have written is inherited.
    pub fn replacing(&self, held: Option<&Pending>) -> Pending {
        let mut next = self.clone();
        if let Some(h) = held {
            for key in h.inherited.iter().chain(std::iter::once(&h.changes)) {
                if *key != next.changes && !next.inherited.contains(key) {
                    next.inherited.push(key.clone());
                }
            }
        }
        next
    }

    /// The claim to store when `self` claims the generation after `base` at `now`, on the
    /// pointer as read (`current`); `None` when it is lost: the pointer moved, or holds a
    /// live claim of another owner. Both table adapters decide by this, then write on the
    /// condition that the pointer is still as read.
    pub fn claiming(&self, current: Option<&Pointer>, base: u64, now: i64) -> Option<Pending> {
        let held = current.and_then(|p| p.pending.as_ref());
        let moved = current.map_or(0, |p| p.generation) != base;
        if moved || held.is_some_and(|h| !h.yields_to(&self.owner, now)) {
            return None;
        }
        Some(self.replacing(held))
    }

    /// Whether `self`, seen on the pointer at `now`, lets `owner` claim the generation.
    pub fn yields_to(&self, owner: &str, now: i64) -> bool {
        self.owner == owner || self.lease_until < now
    }
}

/// One job's assignment.
///
/// The invariant readers rely on: an item is either at a generation `<=` the pointer's, and
/// then `cluster` is its answer, or at exactly the pointer's generation + 1 (a publish in
/// flight or interrupted), and then `previous` is its answer. No other state exists, so a
/// reader never sees a mix of two generations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobItem {
    /// The job's name.
    pub job: String,
    /// `None`: a tombstone (the job is gone or has no cluster at this generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The generation that set `cluster`.
    pub generation: u64,
    /// The rule that decided it, when it was set.
    #[serde(default)]
    pub rule: String,
    /// The answer before `generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Its changes, oldest first: entries are only ever appended (the oldest are dropped
    /// past [`crate::publish::HISTORY_LIMIT`]; every change is also in its generation's
    /// immutable change list in the snapshot store). Items are never deleted, so the
    /// history of a job that is gone stays readable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Change>,
}

impl JobItem {
    /// The answer at pointer generation `current`.
    pub fn resolve(&self, current: u64) -> Option<&str> {
        if self.generation <= current {
            self.cluster.as_deref()
        } else {
            self.previous.as_deref()
        }
    }
}

/// One assignment change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Change {
    /// The job.
    pub job: String,
    /// Its cluster before (`None`: the job was new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Its cluster after (`None`: the job was deleted or left unplaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Why the generation was made.
    pub cause: Cause,
    /// The generation that made the change.
    pub generation: u64,
    /// When (seconds since the epoch).
    pub at: i64,
}

/// What `status` shows about a generation without loading its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// The generation's number.
    pub generation: u64,
    /// Its snapshot prefix.
    pub snapshot: String,
    /// The digest of its plan.
    pub plan_digest: String,
    /// Why it was made.
    pub cause: Cause,
    /// When it was published (seconds since the epoch).
    pub published_at: i64,
    /// The generation the plan was computed against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    /// The digests of the plan's inputs.
    pub inputs: InputDigests,
    /// The overrides, the baseline plan and the stored inputs.
    #[serde(default, flatten)]
    pub applied: Applied,
    /// Jobs in the plan.
    pub jobs: usize,
    /// Jobs placed on a cluster.
    pub placed_jobs: usize,
    /// Jobs no cluster can run.
    pub unschedulable_jobs: usize,
    /// Assignments that changed against the base generation.
    pub changed: usize,
    /// Jobs deleted against the base.
    pub deleted: usize,
    /// Per cluster: its demand and shares.
    pub clusters: BTreeMap<String, ClusterShare>,
    /// The changes per cluster pair with their demand (empty in records written before
    /// this was kept, and when nothing changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<Moved>,
}

impl GenerationRecord {
    /// The demand of the jobs that left a cluster (new jobs are not moves).
    pub fn moved_demand(&self) -> f64 {
        self.moved
            .iter()
            .filter(|m| m.from.is_some())
            .map(|m| m.demand)
            .sum()
    }
}

/// Jobs and demand that changed from one cluster to another in a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    /// From (`None`: new jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// To (`None`: deleted or left without a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// How many jobs.
    pub jobs: usize,
    /// Their demand in the generation's plan (a deleted job's is 0).
    pub demand: f64,
}

/// A generation's `changes` per cluster pair, in pair order, weighed by `plan`'s demand.
pub fn moved_by_pair(plan: &Plan, changes: &[Change]) -> Vec<Moved> {
    let mut pairs: BTreeMap<(Option<&str>, Option<&str>), Moved> = BTreeMap::new();
    for c in changes {
        let slot = pairs
            .entry((c.from.as_deref(), c.to.as_deref()))
            .or_insert_with(|| Moved {
                from: c.from.clone(),
                to: c.to.clone(),
                jobs: 0,
                demand: 0.0,
            });
        slot.jobs += 1;
        slot.demand += plan.jobs.get(&c.job).map_or(0.0, |e| e.demand);
    }
    pairs.into_values().collect()
}

/// A cluster's part of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterShare {
    /// The demand placed on it.
    pub demand: f64,
    /// Its share of the placed demand.
    pub share: f64,
    /// The share it should have, when the config sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_share: Option<f64>,
}

/// What a generation applied beyond the plan of its release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The overrides the plan applies, each with its end: the lookup answers a moved
    /// job's baseline cluster once its override ended, whether or not anything ran since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<OverrideSpec>,
    /// The snapshot prefix of the plan without the overrides (none: the plan is its own
    /// baseline). A recompute follows the baseline, so that an override's moves never
    /// stick once it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The key of the release's inputs as the engine read them: an override is planned
    /// from them without the repository (none: a plan published by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// A job an override moved: where it runs without the override, and until when the
/// override holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overridden {
    /// Its baseline answer (`None`: no cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// When the override that moved it ends (seconds since the epoch).
    pub until: i64,
}

/// The compact per-generation answer table: what a warm lookup loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignments {
    /// The digest of the plan the table belongs to.
    pub plan_digest: String,
    /// Job -> cluster, for jobs with a cluster.
    pub jobs: BTreeMap<String, String>,
    /// Clusters that take new work (active), for `ephemeralcluster*` jobs.
    pub usable: Vec<String>,
    /// Jobs an override moved, answered from their baseline once it ends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overridden: BTreeMap<String, Overridden>,
}

/// Seconds since the epoch as an RFC 3339 date and time (UTC), for people reading a
/// message or a page.
pub fn utc(at: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(at).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}
