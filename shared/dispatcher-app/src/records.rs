//! What the table holds beside job items and generations, by role, each with one home for
//! its meaning: the durable markers a recompute leaves, the webhook deliveries already
//! seen, and the ephemeral clusters chosen. The use cases speak of these; `keys` spells
//! them for the adapters, and `template.yaml`'s IAM conditions name their prefixes.

use crate::store::{AssignmentStore, StoreError};

/// The blob SHA of the last `_clusters.yaml` a publish processed (the webhook's
/// authoritative "did the inventory change" check).
pub const INVENTORY_BLOB: &str = "inventory-blob";
/// The inventory digest of the last published generation.
pub const INVENTORY_DIGEST: &str = "inventory-digest";
/// The generation whose backup PR is not done yet (empty: none).
pub const FALLBACK_PENDING: &str = "fallback-pending";
/// When (Unix seconds) a recompute last succeeded, published or not: a run whose plan is
/// already current adds no generation, yet proves the pipeline works.
pub const LAST_SUCCESS: &str = "last-success";

/// `GENERATION AT`: the generation a recompute last found answering as its plan would,
/// and when (Unix seconds). Such a recompute publishes nothing.
pub const VERIFIED: &str = "verified";

/// `AT STAGE: ERROR` of the last recompute that failed for good (not retried).
pub const LAST_FAILURE: &str = "last-failure";

/// Remembered keys of webhook deliveries.
pub const DELIVERY: &str = "delivery#";
/// How long a delivery is remembered: GitHub redelivers for days.
pub const DELIVERY_TTL: i64 = 7 * 24 * 60 * 60;

/// Remembered keys of ephemeral-cluster choices (the lookup's role may write only these,
/// and [`ROUND_ROBIN`]).
pub const EPHEMERAL_CHOICE: &str = "ephemeral#";
/// How long a job keeps its ephemeral cluster.
pub const EPHEMERAL_TTL: i64 = 24 * 60 * 60;
/// The counter that turns the ephemeral round-robin.
pub const ROUND_ROBIN: &str = "ephemeral-round-robin";

/// Where the backup PR stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupPr {
    /// No recompute has recorded one yet.
    NeverMade,
    /// The job files' static fields match the generation it was last made for.
    UpToDate,
    /// The static fields do not match this generation yet.
    Pending(String),
}

/// The durable markers.
pub struct Markers<'a>(pub &'a dyn AssignmentStore);

impl Markers<'_> {
    /// The blob of the last processed inventory.
    pub async fn inventory_blob(&self) -> Result<Option<String>, StoreError> {
        self.0.marker(INVENTORY_BLOB).await
    }

    /// What a published recompute processed: the inventory's blob and digest, and when.
    /// Written only after the publish (F3), so a failed run leaves the trigger standing.
    pub async fn processed(
        &self,
        blob: Option<&str>,
        inventory_digest: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.0
            .set_marker(INVENTORY_BLOB, blob.unwrap_or_default())
            .await?;
        self.0
            .set_marker(INVENTORY_DIGEST, inventory_digest)
            .await?;
        self.0.set_marker(LAST_SUCCESS, &at.to_string()).await
    }

    /// Whether a backup PR is pending.
    pub async fn fallback_pending(&self) -> Result<bool, StoreError> {
        Ok(matches!(self.backup_pr().await?, BackupPr::Pending(_)))
    }

    /// Where the backup PR stands.
    pub async fn backup_pr(&self) -> Result<BackupPr, StoreError> {
        Ok(match self.0.marker(FALLBACK_PENDING).await?.as_deref() {
            None => BackupPr::NeverMade,
            Some("") => BackupPr::UpToDate,
            Some(g) => BackupPr::Pending(g.to_owned()),
        })
    }

    /// The backup PR of `generation` is not done yet.
    pub async fn set_fallback_pending(&self, generation: u64) -> Result<(), StoreError> {
        self.0
            .set_marker(FALLBACK_PENDING, &generation.to_string())
            .await
    }

    /// The static fields match the current generation.
    pub async fn clear_fallback_pending(&self) -> Result<(), StoreError> {
        self.0.set_marker(FALLBACK_PENDING, "").await
    }

    /// A recompute found generation `generation` answering as its plan would, at `at`.
    pub async fn verified(&self, generation: u64, at: i64) -> Result<(), StoreError> {
        self.0
            .set_marker(VERIFIED, &format!("{generation} {at}"))
            .await
    }

    /// A recompute failed for good at `stage` with `error`, at `at`.
    pub async fn failed(&self, stage: &str, error: &str, at: i64) -> Result<(), StoreError> {
        self.0
            .set_marker(LAST_FAILURE, &format!("{at} {stage}: {error}"))
            .await
    }

    /// The last recompute that failed for good: when, and `stage: error`.
    pub async fn last_failure(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self.0.marker(LAST_FAILURE).await?.and_then(|v| {
            let (at, what) = v.split_once(' ')?;
            Some((at.parse().ok()?, what.to_owned()))
        }))
    }

    /// The generation last verified, and when.
    pub async fn last_verified(&self) -> Result<Option<(u64, i64)>, StoreError> {
        Ok(self.0.marker(VERIFIED).await?.and_then(|v| {
            let (g, at) = v.split_once(' ')?;
            Some((g.parse().ok()?, at.parse().ok()?))
        }))
    }

    /// When a recompute last succeeded (Unix seconds).
    pub async fn last_success(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .marker(LAST_SUCCESS)
            .await?
            .and_then(|v| v.parse().ok()))
    }
}

/// Webhook deliveries already taken.
pub struct Deliveries<'a>(pub &'a dyn AssignmentStore);

impl Deliveries<'_> {
    /// Takes `delivery` (of the push to `after`) unless it was taken already: `true` the
    /// first time.
    pub async fn take(&self, delivery: &str, after: &str, now: i64) -> Result<bool, StoreError> {
        self.0
            .remember(&key(DELIVERY, delivery), after, now + DELIVERY_TTL, now)
            .await
    }

    /// Forgets a delivery that could not be handled, so that its redelivery is not taken
    /// for a duplicate.
    pub async fn forget(&self, delivery: &str) -> Result<(), StoreError> {
        self.0.forget(&key(DELIVERY, delivery)).await
    }
}

/// Ephemeral clusters chosen for jobs.
pub struct EphemeralChoices<'a>(pub &'a dyn AssignmentStore);

impl EphemeralChoices<'_> {
    /// The cluster chosen for `job`, while remembered.
    pub async fn recall(&self, job: &str, now: i64) -> Result<Option<String>, StoreError> {
        self.0.recall(&key(EPHEMERAL_CHOICE, job), now).await
    }

    /// Remembers `cluster` for `job` for [`EPHEMERAL_TTL`] unless another request chose
    /// first: `true` when this choice stands.
    pub async fn remember(&self, job: &str, cluster: &str, now: i64) -> Result<bool, StoreError> {
        self.0
            .remember(
                &key(EPHEMERAL_CHOICE, job),
                cluster,
                now + EPHEMERAL_TTL,
                now,
            )
            .await
    }

    /// Forgets the choice of `job` (its cluster stopped taking new work).
    pub async fn forget(&self, job: &str) -> Result<(), StoreError> {
        self.0.forget(&key(EPHEMERAL_CHOICE, job)).await
    }

    /// The next turn of the round-robin, from 1.
    pub async fn next_turn(&self) -> Result<u64, StoreError> {
        self.0.increment(ROUND_ROBIN).await
    }
}

fn key(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}
