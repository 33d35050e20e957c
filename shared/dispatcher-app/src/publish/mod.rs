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

mod claim;
mod commit;
mod guard;
mod items;
mod read;
mod snapshot;

use std::collections::BTreeMap;

use dispatcher_core::overrides::OverrideSpec;
use dispatcher_core::{Plan, StoredInputs};

use crate::model::{Cause, Pointer};
use crate::records::Markers;
use crate::store::{StoreError, Stores, WriteStats};

pub use guard::{DELETIONS_ALWAYS_ALLOWED, MAX_DELETED};
pub use read::{history, lookup};
pub use snapshot::{
    SnapshotError, assignments_key, assignments_of, load_assignments, load_baseline, load_changes,
    load_plan, load_release, plan_digest, plan_key, release_key, snapshot_prefix, store_plan,
};

/// How long a claim holds before another publisher may take it over: longer than any
/// publisher runs (a Lambda is stopped at 15 minutes).
pub const LEASE_SECONDS: i64 = 20 * 60;

/// Items keep at most this many changes; every change is also in its generation's change
/// list.
pub const HISTORY_LIMIT: usize = 200;

/// How a publish is made: by whom, when, against what, and the operator's overrides.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Why the generation is made.
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
    /// Publish nothing when the plan answers every lookup as the serving generation does,
    /// with the same overrides (a recompute: no generation without a change, and every
    /// lookup keeps its table). Off for an operator's publish, which may bring new details
    /// (an explanation, input digests) with the same answers.
    pub unless_same_answers: bool,
}

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
            unless_same_answers: false,
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

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The generation serving the plan.
    pub generation: u64,
    /// Its snapshot prefix.
    pub snapshot: String,
    /// The plan's digest.
    pub plan_digest: String,
    /// The plan was already the current generation: nothing was written.
    pub unchanged: bool,
    /// Assignments that changed against the previous generation.
    pub changed: usize,
    /// Jobs deleted against the previous generation.
    pub deleted: usize,
    /// Table writes: the claim, the item batches, the commit transaction.
    pub writes: WriteStats,
    /// Objects put into the snapshot store.
    pub snapshot_puts: usize,
}

impl Published {
    /// Nothing published: `current` already answers as the plan (of `digest`) would.
    fn already(current: &Pointer, digest: String) -> Self {
        Self {
            generation: current.generation,
            snapshot: current.snapshot.clone(),
            plan_digest: digest,
            unchanged: true,
            changed: 0,
            deleted: 0,
            writes: WriteStats::default(),
            snapshot_puts: 0,
        }
    }
}

/// Why a plan was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The plan must not replace the current generation (F4b).
    #[error("refusing to publish: {0}")]
    Refused(String),
    /// Another publisher holds or took the generation: nothing of ours is visible.
    #[error("lost generation {generation}: {reason}")]
    Lost {
        /// The generation we tried to make.
        generation: u64,
        /// Who holds it, and what an operator may do.
        reason: String,
    },
    /// A snapshot object could not be written or read.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PublishError {
    /// Whether running the same publish again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PublishError::Store(e) => e.is_retryable(),
            PublishError::Snapshot(e) => e.is_retryable(),
            PublishError::Refused(_) | PublishError::Lost { .. } => false,
        }
    }
}

/// The release a generation keeps for planning overrides.
#[derive(Debug, Clone, Copy)]
pub enum Release<'a> {
    /// None: a plan published by hand.
    None,
    /// These inputs, to be stored.
    New(&'a StoredInputs),
    /// Inputs stored already, under this key.
    Stored(&'a str),
}

/// A plan to publish, with what it applies beyond its release.
#[derive(Debug, Clone, Copy)]
pub struct Generation<'a> {
    /// The plan that answers.
    pub plan: &'a Plan,
    /// The plan of the same release without `overrides` (only read when there are some).
    pub baseline: &'a Plan,
    /// The overrides `plan` applies.
    pub overrides: &'a [OverrideSpec],
    /// The release's inputs.
    pub release: Release<'a>,
}

impl<'a> Generation<'a> {
    /// A plan without overrides and without stored inputs.
    pub fn plain(plan: &'a Plan) -> Self {
        Self {
            plan,
            baseline: plan,
            overrides: &[],
            release: Release::None,
        }
    }
}

/// Publishes `plan` as the next generation.
pub async fn publish(
    stores: &Stores,
    plan: &Plan,
    opts: &PublishOptions,
) -> Result<Published, PublishError> {
    publish_generation(stores, Generation::plain(plan), opts).await
}

/// Publishes a plan with its overrides, baseline and inputs as the next generation.
pub async fn publish_generation(
    stores: &Stores,
    next: Generation<'_>,
    opts: &PublishOptions,
) -> Result<Published, PublishError> {
    let plan = next.plan;
    let digest = plan_digest(&plan.to_json());
    let pointer = stores.table.pointer().await?;
    let serving = pointer.as_ref().filter(|p| p.generation > 0);
    if let Some(p) = serving.filter(|p| p.plan_digest == digest) {
        // Already current (a retried trigger, or a rollback to where we are).
        return Ok(Published::already(p, digest));
    }
    let base = pointer.as_ref().map_or(0, |p| p.generation);
    let generation = base + 1;
    if let Some(expected) = opts.expected_base.filter(|e| *e != base) {
        return Err(PublishError::Lost {
            generation,
            reason: format!(
                "the plan was computed against generation {expected}, but generation {base} is current"
            ),
        });
    }
    let base_table = match serving {
        Some(p) => {
            let current = load_assignments(stores, &p.snapshot).await?;
            // A plan that answers every lookup as the serving generation does, with the
            // same overrides, is no new generation: nothing is published, and every lookup
            // keeps its table.
            if opts.unless_same_answers
                && p.applied.overrides == next.overrides
                && snapshot::assignments_of_generation(&next, &current.plan_digest) == current
            {
                return Ok(Published::already(p, p.plan_digest.clone()));
            }
            current.jobs
        }
        None => BTreeMap::new(),
    };
    guard::check(plan, &base_table, opts)?;
    let assignments = snapshot::assignments_of_generation(&next, &digest);
    let changes = items::changes_between(&base_table, &assignments.jobs, generation, opts);
    let snapshot = snapshot_prefix(&digest);
    let applied = snapshot::store_applied(stores, &next).await?;

    // 1. The snapshot, and the list of jobs we are about to write.
    let changes_key = snapshot::changes_key(generation, &digest);
    let contents = snapshot::Contents {
        plan,
        snapshot: &snapshot,
        assignments: &assignments,
        changes_key: &changes_key,
        changes: &changes,
    };
    let snapshot_puts = contents.write(stores).await?;
    // 2. The claim.
    let stored = claim::claim(stores, base, &digest, changes_key, opts).await?;
    let mut writes = WriteStats {
        requests: 1,
        items: 1,
        retries: 0,
    };
    // 3. The items.
    let items = items::Items {
        plan,
        generation,
        base: &base_table,
        next: &assignments.jobs,
        changes: &changes,
        inherited: &stored.inherited,
    };
    writes += items.write(stores).await?;
    // 4. The pointer.
    let commit = commit::Commit {
        plan,
        base,
        snapshot: &snapshot,
        digest: &digest,
        changes: &changes,
        applied: &applied,
    };
    let record = commit.record(opts);
    commit.commit(stores, &record, opts).await?;
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
        snapshot_puts,
    })
}

/// Publishes a plan an operator made or edited. The job files' static cluster fields do
/// not say it yet, so the backup PR is marked pending until the next recompute brings it
/// (F18).
pub async fn publish_by_hand(
    stores: &Stores,
    plan: &Plan,
    opts: &PublishOptions,
) -> Result<Published, PublishError> {
    let published = publish(stores, plan, opts).await?;
    if !published.unchanged {
        Markers(stores.table.as_ref())
            .set_fallback_pending(published.generation)
            .await?;
    }
    Ok(published)
}

/// Republishes generation `to`'s snapshot as a new generation, cause `rollback`; `opts`
/// carries the time, the owner and the operator's overrides. Like every generation made
/// by hand, it leaves the backup PR pending.
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
    publish_by_hand(stores, &plan, &opts).await
}
