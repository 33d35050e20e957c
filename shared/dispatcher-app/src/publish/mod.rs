//! Publishing a plan as the next generation, so that nothing is ever lost or torn:
//!
//! 1. the snapshot goes to the snapshot store first (content-addressed by the plan's digest,
//!    so racing publishers cannot overwrite each other), with the list of changes;
//! 2. the next generation is claimed on the pointer item with a conditional write on the
//!    generation the plan was computed against (exactly one of several racing publishers
//!    wins; the others learn it before writing anything);
//! 3. only the items whose assignment changed are written, in batches of 25, each carrying
//!    the new generation and its previous answer (a deleted job's item stays, as a
//!    tombstone that keeps its history);
//! 4. the pointer moves and the generation's record is written, in one conditional
//!    transaction on the claim.
//!
//! A reader resolves an item against the pointer ([`JobItem::resolve`]), so at every step
//! every lookup answers the old generation's cluster or, once the pointer moved, the new
//! one's; the lookup function reads the answer table of the pointer's snapshot, which is
//! whole before the pointer names it. A publish interrupted anywhere is completed by the
//! same publisher (the same owner) running it again; another publisher takes the claim
//! over after its lease, and rewrites every job the claims it replaces may have written.

use std::collections::{BTreeMap, BTreeSet};

use dispatcher_core::Plan;
use dispatcher_core::plan::ClusterState;
use sha2::{Digest, Sha256};

use crate::codec::{gunzip_json, gzip_json};
use crate::model::{
    Assignments, Cause, Change, ClusterShare, GenerationRecord, JobItem, Pending, Pointer,
};
use crate::store::{Claim, StoreError, Stores, WriteStats};
use dispatcher_core::report;

/// How long a claim holds before another publisher may take it over: longer than any
/// publisher runs (a Lambda is stopped at 15 minutes).
pub const LEASE_SECONDS: i64 = 20 * 60;

/// Items keep at most this many changes; every change is also in its generation's change
/// list.
pub const HISTORY_LIMIT: usize = 200;

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub cause: Cause,
    /// Seconds since the epoch; the store never reads a clock.
    pub now: i64,
    /// Who publishes. A retry of the same request must pass the same owner to resume its
    /// claim; while the claim's lease runs, every other owner loses.
    pub owner: String,
    /// The generation the plan was computed against (0: none). When set and the pointer is
    /// elsewhere, the publish is lost: the plan's churn and budget were measured against a
    /// generation that is no longer current.
    pub expected_base: Option<u64>,
    /// Take over another owner's claim even while its lease runs: for an operator who
    /// knows that publisher is dead.
    pub take_over: bool,
    /// Refuse a plan that takes the cluster away from more than this share of the jobs the
    /// current generation places (F4b).
    pub max_unassigned: f64,
    /// Refuse a plan that deletes more than this share of the jobs the current generation
    /// places: a release cut short looks like one whose jobs were deleted.
    pub max_deleted: f64,
}

/// The share of the serving generation's jobs a plan may delete unless an operator allows
/// more: real pushes delete a handful of jobs, a truncated release thousands.
pub const MAX_DELETED: f64 = 0.10;

/// Deletions this few are always allowed, whatever the share: in a small installation one
/// pull request may well remove a tenth of the jobs.
pub const DELETIONS_ALWAYS_ALLOWED: usize = 20;

impl PublishOptions {
    /// Options with a fresh owner, no expected base, the F4b limit of 25% and the deletion
    /// limit of 10%.
    pub fn new(cause: Cause, now: i64) -> Self {
        Self {
            cause,
            now,
            owner: fresh_owner(now),
            expected_base: None,
            take_over: false,
            max_unassigned: 0.25,
            max_deleted: MAX_DELETED,
        }
    }

    /// The same publisher as an earlier attempt (a retried request).
    pub fn owned_by(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Publish only on top of generation `base` (0: the first publish).
    pub fn expecting(mut self, base: u64) -> Self {
        self.expected_base = Some(base);
        self
    }
}

/// Seconds since the epoch as an RFC 3339 date and time, for people reading a message.
fn utc(at: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(at).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A token that no other publisher shares: the process's random hasher seed over the time,
/// the process id and a counter.
pub fn fresh_owner(now: i64) -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = std::collections::hash_map::RandomState::new();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", seed.hash_one((now, std::process::id(), n)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub generation: u64,
    pub snapshot: String,
    pub plan_digest: String,
    /// The plan was already the current generation: nothing was written.
    pub unchanged: bool,
    /// Assignments that changed against the previous generation.
    pub changed: usize,
    pub deleted: usize,
    /// Table writes: the claim, the item batches, the commit transaction.
    pub writes: WriteStats,
    /// Objects put into the snapshot store.
    pub snapshot_puts: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The plan must not replace the current generation (F4b).
    #[error("refusing to publish: {0}")]
    Refused(String),
    /// Another publisher holds or took the generation: nothing of ours is visible.
    #[error("lost generation {generation}: {reason}")]
    Lost { generation: u64, reason: String },
    #[error("snapshot {key}: {message}")]
    Snapshot { key: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PublishError {
    /// Whether running the same publish again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PublishError::Store(e) => e.is_retryable(),
            PublishError::Snapshot { .. } => true,
            PublishError::Refused(_) | PublishError::Lost { .. } => false,
        }
    }
}

/// `sha256:` of the plan document: the identity of a snapshot.
pub fn plan_digest(json: &str) -> String {
    let d = Sha256::digest(json.as_bytes());
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The snapshot prefix of a plan.
pub fn snapshot_prefix(digest: &str) -> String {
    format!("snapshots/{}", digest.trim_start_matches("sha256:"))
}

pub fn plan_key(snapshot: &str) -> String {
    format!("{snapshot}/plan.json.gz")
}

pub fn assignments_key(snapshot: &str) -> String {
    format!("{snapshot}/assignments.json.gz")
}

fn changes_key(generation: u64, digest: &str) -> String {
    let short = &digest.trim_start_matches("sha256:")[..16];
    format!("generations/{generation:010}/{short}/changes.json.gz")
}

/// The answer table of a plan.
pub fn assignments_of(plan: &Plan, digest: &str) -> Assignments {
    Assignments {
        plan_digest: digest.to_owned(),
        jobs: plan
            .jobs
            .iter()
            .filter_map(|(n, e)| e.cluster.clone().map(|c| (n.clone(), c)))
            .collect(),
        usable: plan
            .clusters
            .iter()
            .filter(|(_, c)| c.state == ClusterState::Active)
            .map(|(n, _)| n.clone())
            .collect(),
    }
}

fn refuse_unusable(
    plan: &Plan,
    base: &BTreeMap<String, String>,
    opts: &PublishOptions,
) -> Result<(), PublishError> {
    if plan.summary.placed_jobs == 0 {
        return Err(PublishError::Refused("the plan places no job".to_owned()));
    }
    if !plan
        .clusters
        .values()
        .any(|c| c.state == ClusterState::Active)
    {
        return Err(PublishError::Refused(
            "the plan has no usable cluster".to_owned(),
        ));
    }
    let deleted = base.keys().filter(|j| !plan.jobs.contains_key(*j)).count();
    if deleted > DELETIONS_ALWAYS_ALLOWED && deleted as f64 > opts.max_deleted * base.len() as f64 {
        return Err(PublishError::Refused(format!(
            "the plan deletes {deleted} of the {} jobs the current generation places ({:.1}%, more than the {:.1}% allowed): a release cut short looks like this; if the jobs really are gone, allow it explicitly (dispatcher publish --max-deleted-percent, or a manual recompute with \"allowDeletions\": true)",
            base.len(),
            100.0 * deleted as f64 / base.len() as f64,
            100.0 * opts.max_deleted
        )));
    }
    let lost = base
        .keys()
        .filter(|j| plan.jobs.get(*j).is_none_or(|e| e.cluster.is_none()))
        .count();
    if !base.is_empty() && lost as f64 > opts.max_unassigned * base.len() as f64 {
        return Err(PublishError::Refused(format!(
            "the plan would take the cluster away from {lost} of the {} jobs the current generation places",
            base.len()
        )));
    }
    Ok(())
}

async fn load_assignments(stores: &Stores, snapshot: &str) -> Result<Assignments, PublishError> {
    let key = assignments_key(snapshot);
    let bytes = stores
        .snapshots
        .get(&key)
        .await?
        .ok_or_else(|| PublishError::Snapshot {
            key: key.clone(),
            message: "missing".to_owned(),
        })?;
    gunzip_json(&bytes).map_err(|message| PublishError::Snapshot { key, message })
}

/// Loads the plan of a snapshot.
pub async fn load_plan(stores: &Stores, snapshot: &str) -> Result<Plan, PublishError> {
    let key = plan_key(snapshot);
    let bytes = stores
        .snapshots
        .get(&key)
        .await?
        .ok_or_else(|| PublishError::Snapshot {
            key: key.clone(),
            message: "missing".to_owned(),
        })?;
    gunzip_json(&bytes).map_err(|message| PublishError::Snapshot { key, message })
}

/// Publishes `plan` as the next generation.
pub async fn publish(
    stores: &Stores,
    plan: &Plan,
    opts: &PublishOptions,
) -> Result<Published, PublishError> {
    let json = plan.to_json();
    let digest = plan_digest(&json);
    let snapshot = snapshot_prefix(&digest);
    let pointer = stores.table.pointer().await?;
    let base = pointer.as_ref().map_or(0, |p| p.generation);
    let generation = base + 1;
    if let Some(p) = pointer
        .as_ref()
        .filter(|p| p.generation > 0 && p.plan_digest == digest)
    {
        // Already current (a retried trigger, or a rollback to where we are).
        return Ok(Published {
            generation: p.generation,
            snapshot: p.snapshot.clone(),
            plan_digest: digest,
            unchanged: true,
            changed: 0,
            deleted: 0,
            writes: WriteStats::default(),
            snapshot_puts: 0,
        });
    }
    if let Some(expected) = opts.expected_base.filter(|e| *e != base) {
        return Err(PublishError::Lost {
            generation,
            reason: format!(
                "the plan was computed against generation {expected}, but generation {base} is current"
            ),
        });
    }
    let base_table = match pointer.as_ref().filter(|p| p.generation > 0) {
        Some(p) => load_assignments(stores, &p.snapshot).await?.jobs,
        None => BTreeMap::new(),
    };
    refuse_unusable(plan, &base_table, opts)?;

    let assignments = assignments_of(plan, &digest);
    let mut changes: Vec<Change> = Vec::new();
    let names: BTreeSet<&String> = base_table.keys().chain(assignments.jobs.keys()).collect();
    for job in names {
        let (from, to) = (base_table.get(job), assignments.jobs.get(job));
        if from != to {
            changes.push(Change {
                job: job.clone(),
                from: from.cloned(),
                to: to.cloned(),
                cause: opts.cause,
                generation,
                at: opts.now,
            });
        }
    }

    // 1. The snapshot, and the list of jobs we are about to write.
    let changes_key = changes_key(generation, &digest);
    let put = |key: String, body: Vec<u8>, content_type: &'static str| async move {
        stores.snapshots.put(&key, body, content_type).await
    };
    put(plan_key(&snapshot), gzip_json(plan), "application/gzip").await?;
    put(
        assignments_key(&snapshot),
        gzip_json(&assignments),
        "application/gzip",
    )
    .await?;
    put(
        format!("{snapshot}/summary.md"),
        report::markdown(plan).into_bytes(),
        "text/markdown",
    )
    .await?;
    put(
        format!("{snapshot}/summary.svg"),
        report::svg(plan).into_bytes(),
        "image/svg+xml",
    )
    .await?;
    put(
        format!("{snapshot}/inputs.json"),
        serde_json::to_vec_pretty(&plan.inputs).unwrap_or_default(),
        "application/json",
    )
    .await?;
    put(changes_key.clone(), gzip_json(&changes), "application/gzip").await?;
    let puts = 6;

    // 2. The claim.
    let pending = Pending {
        generation,
        plan_digest: digest.clone(),
        owner: opts.owner.clone(),
        changes: changes_key,
        inherited: Vec::new(),
        started_at: opts.now,
        lease_until: opts.now + LEASE_SECONDS,
    };
    let mut writes = WriteStats::default();
    // Taking over regardless of the lease: as if every lease had run out.
    let at = if opts.take_over { i64::MAX } else { opts.now };
    let stored = match stores.table.claim(base, &pending, at).await? {
        Claim::Won { stored } => stored,
        Claim::Lost(now) => {
            let reason = match now.map(|p| *p) {
                Some(p) if p.generation != base => {
                    format!("the pointer moved to generation {}", p.generation)
                }
                Some(Pointer {
                    pending: Some(other),
                    ..
                }) => format!(
                    "the publish of {} started at {} holds it until {} (UTC); if its publisher is dead, take it over now with --take-over",
                    other.plan_digest,
                    utc(other.started_at),
                    utc(other.lease_until)
                ),
                _ => "the claim failed".to_owned(),
            };
            return Err(PublishError::Lost { generation, reason });
        }
    };
    writes.requests += 1;
    writes.items += 1;

    // 3. Changed items, and whatever the claims we replaced may have written: those items
    // may carry this generation with their plan's answers.
    let mut write_set: BTreeSet<String> = changes.iter().map(|c| c.job.clone()).collect();
    for key in &stored.inherited {
        let bytes = stores
            .snapshots
            .get(key)
            .await?
            .ok_or_else(|| PublishError::Snapshot {
                key: key.clone(),
                message: "the change list of a replaced claim is missing".to_owned(),
            })?;
        let theirs: Vec<Change> =
            gunzip_json(&bytes).map_err(|message| PublishError::Snapshot {
                key: key.clone(),
                message,
            })?;
        write_set.extend(theirs.into_iter().map(|c| c.job));
    }
    // Histories are appended to, so the items being replaced are read first; before the
    // first generation there is nothing to read.
    let mut existing: BTreeMap<String, JobItem> = BTreeMap::new();
    if base > 0 || !stored.inherited.is_empty() {
        let names: Vec<String> = write_set.iter().cloned().collect();
        for item in stores.table.jobs(&names).await? {
            existing.insert(item.job.clone(), item);
        }
    }
    let by_job: BTreeMap<&str, &Change> = changes.iter().map(|c| (c.job.as_str(), c)).collect();
    let items: Vec<JobItem> = write_set
        .iter()
        .map(|job| {
            let mut history: Vec<Change> = existing
                .remove(job)
                .map(|i| i.history)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.generation < generation)
                .collect();
            if let Some(c) = by_job.get(job.as_str()) {
                history.push((*c).clone());
            }
            if history.len() > HISTORY_LIMIT {
                history.drain(..history.len() - HISTORY_LIMIT);
            }
            JobItem {
                job: job.clone(),
                cluster: assignments.jobs.get(job).cloned(),
                generation,
                rule: plan
                    .jobs
                    .get(job)
                    .map(|e| e.rule.as_str().to_owned())
                    .unwrap_or_default(),
                previous: base_table.get(job).cloned(),
                history,
            }
        })
        .collect();
    writes += stores.table.write_jobs(&items).await?;

    // 4. The pointer.
    let record = GenerationRecord {
        generation,
        snapshot: snapshot.clone(),
        plan_digest: digest.clone(),
        cause: opts.cause,
        published_at: opts.now,
        base: (base > 0).then_some(base),
        inputs: plan.inputs.clone(),
        jobs: plan.summary.jobs,
        placed_jobs: plan.summary.placed_jobs,
        unschedulable_jobs: plan.summary.unschedulable_jobs,
        changed: changes.len(),
        deleted: changes.iter().filter(|c| c.to.is_none()).count(),
        clusters: plan
            .clusters
            .iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    ClusterShare {
                        demand: c.demand,
                        share: c.share,
                        target_share: c.target_share,
                    },
                )
            })
            .collect(),
    };
    let next = Pointer {
        generation,
        snapshot: snapshot.clone(),
        plan_digest: digest.clone(),
        published_at: opts.now,
        cause: opts.cause,
        inputs: plan.inputs.clone(),
        pending: None,
    };
    match stores.table.commit(base, &opts.owner, &next, &record).await {
        Ok(()) => {}
        Err(StoreError::Conflict(reason)) => return Err(PublishError::Lost { generation, reason }),
        Err(e) => return Err(e.into()),
    }
    writes.requests += 1;
    writes.items += 2;
    tracing::info!(
        generation,
        plan.digest = %digest,
        changed = changes.len(),
        write.requests = writes.requests,
        "published"
    );
    Ok(Published {
        generation,
        snapshot,
        plan_digest: digest,
        unchanged: false,
        changed: changes.len(),
        deleted: record.deleted,
        writes,
        snapshot_puts: puts,
    })
}

/// Republishes generation `to`'s snapshot as a new generation, cause `rollback`; `opts`
/// carries the time, the owner and the operator's overrides.
pub async fn rollback(
    stores: &Stores,
    to: u64,
    opts: &PublishOptions,
) -> Result<Published, PublishError> {
    let current = stores.table.pointer().await?.map_or(0, |p| p.generation);
    if to == 0 || to > current {
        return Err(PublishError::Refused(format!(
            "there is no generation {to} (the current one is {current})"
        )));
    }
    let record = stores
        .table
        .generation(to)
        .await?
        .ok_or_else(|| PublishError::Refused(format!("there is no generation {to}")))?;
    let plan = load_plan(stores, &record.snapshot).await?;
    let opts = PublishOptions {
        cause: Cause::Rollback,
        ..opts.clone()
    };
    publish(stores, &plan, &opts).await
}

/// A job's answer now: the cluster and the generation it is served from.
pub async fn lookup(stores: &Stores, job: &str) -> Result<Option<(String, u64)>, StoreError> {
    let Some(pointer) = stores.table.pointer().await?.filter(|p| p.generation > 0) else {
        return Ok(None);
    };
    Ok(stores.table.job(job).await?.and_then(|i| {
        i.resolve(pointer.generation)
            .map(|c| (c.to_owned(), pointer.generation))
    }))
}

/// A job's changes up to the current generation.
pub async fn history(stores: &Stores, job: &str) -> Result<Vec<Change>, StoreError> {
    let current = stores.table.pointer().await?.map_or(0, |p| p.generation);
    Ok(stores
        .table
        .job(job)
        .await?
        .map(|i| {
            i.history
                .into_iter()
                .filter(|c| c.generation <= current)
                .collect()
        })
        .unwrap_or_default())
}
