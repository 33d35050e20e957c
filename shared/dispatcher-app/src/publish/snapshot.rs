//! The snapshot of a generation: its objects, their keys, and reading them back. Keys are
//! content-addressed by the plan's digest, so racing publishers never overwrite each other.

use dispatcher_core::Plan;
use dispatcher_core::plan::ClusterState;
use dispatcher_core::report;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use dispatcher_core::StoredInputs;

use crate::codec::{CodecError, gunzip_json, gzip_json};
use crate::model::{Applied, Assignments, Change, Overridden, Pointer};
use crate::store::{StoreError, Stores};

use super::{Generation, Release};

/// Why a snapshot object could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The object a generation names is not in the snapshot store.
    #[error("snapshot object {key} is missing")]
    Missing {
        /// The object's key.
        key: String,
    },
    /// The object is there but not what it should be, or could not be encoded.
    #[error("snapshot object {key}")]
    Codec {
        /// The object's key.
        key: String,
        /// What is wrong with it.
        #[source]
        source: CodecError,
    },
    /// The snapshot store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SnapshotError {
    /// Whether reading or writing again may succeed: a store fault may pass, and an object
    /// missing or broken may still be being written by a publisher that has not claimed yet.
    pub fn is_retryable(&self) -> bool {
        match self {
            SnapshotError::Store(e) => e.is_retryable(),
            SnapshotError::Missing { .. } | SnapshotError::Codec { .. } => true,
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

/// The plan of a snapshot.
pub fn plan_key(snapshot: &str) -> String {
    format!("{snapshot}/plan.json.gz")
}

/// The answer table of a snapshot: what the lookup function reads.
pub fn assignments_key(snapshot: &str) -> String {
    format!("{snapshot}/assignments.json.gz")
}

/// The changes a claim of `generation` is about to write; unique per plan, so that a
/// taken-over claim's list survives.
pub(super) fn changes_key(generation: u64, digest: &str) -> String {
    let short = &digest.trim_start_matches("sha256:")[..16];
    format!("generations/{generation:010}/{short}/changes.json.gz")
}

/// Where a release's stored inputs live: addressed by the digests of the inputs, so that
/// every generation of one release shares one object.
pub fn release_key(inputs: &StoredInputs) -> String {
    let digests = serde_json::to_string(&inputs.digests).unwrap_or_default();
    let id = plan_digest(&digests);
    format!("releases/{}.json.gz", id.trim_start_matches("sha256:"))
}

/// Stores what `next` applies beyond its plan (the baseline plan, the release's inputs)
/// and says where.
pub(super) async fn store_applied(
    stores: &Stores,
    next: &Generation<'_>,
) -> Result<Applied, SnapshotError> {
    let mut applied = Applied {
        overrides: next.overrides.to_vec(),
        ..Applied::default()
    };
    if !next.overrides.is_empty() {
        let prefix = snapshot_prefix(&plan_digest(&next.baseline.to_json()));
        put_gzipped(stores, plan_key(&prefix), next.baseline).await?;
        applied.baseline = Some(prefix);
    }
    applied.release = match next.release {
        Release::None => None,
        Release::Stored(key) => Some(key.to_owned()),
        Release::New(inputs) => {
            let key = release_key(inputs);
            if stores.snapshots.get(&key).await?.is_none() {
                put_gzipped(stores, key.clone(), inputs).await?;
            }
            Some(key)
        }
    };
    Ok(applied)
}

/// Stores `plan` as the plan of `snapshot` (a preview, which its publish writes again
/// with the same bytes).
pub async fn store_plan(stores: &Stores, snapshot: &str, plan: &Plan) -> Result<(), SnapshotError> {
    put_gzipped(stores, plan_key(snapshot), plan).await
}

async fn put_gzipped<T: serde::Serialize>(
    stores: &Stores,
    key: String,
    value: &T,
) -> Result<(), SnapshotError> {
    let bytes = gzip_json(value).map_err(|source| SnapshotError::Codec {
        key: key.clone(),
        source,
    })?;
    Ok(stores
        .snapshots
        .put(&key, bytes, "application/gzip")
        .await?)
}

/// The answer table of a generation: its plan's, and for each job its overrides moved,
/// the baseline answer and when the override ends (the latest end among the overrides of
/// the cluster it left, or of all when it left none of theirs).
pub(super) fn assignments_of_generation(next: &Generation<'_>, digest: &str) -> Assignments {
    let mut table = assignments_of(next.plan, digest);
    if next.overrides.is_empty() {
        return table;
    }
    let latest = next
        .overrides
        .iter()
        .map(|o| o.expires_at)
        .max()
        .unwrap_or(0);
    let until_for = |left: Option<&str>| {
        next.overrides
            .iter()
            .filter(|o| Some(o.cluster.as_str()) == left)
            .map(|o| o.expires_at)
            .max()
            .unwrap_or(latest)
    };
    let baseline: BTreeMap<&String, Option<&String>> = next
        .baseline
        .jobs
        .iter()
        .map(|(n, e)| (n, e.cluster.as_ref()))
        .collect();
    for (job, before) in baseline {
        let now = table.jobs.get(job);
        if now != before {
            let until = until_for(before.map(String::as_str));
            let entry = Overridden {
                baseline: before.cloned(),
                until,
            };
            table.overridden.insert(job.clone(), entry);
        }
    }
    table
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
        overridden: BTreeMap::new(),
    }
}

/// Reads and decodes the object `key`.
pub(crate) async fn read<T: DeserializeOwned>(
    stores: &Stores,
    key: String,
) -> Result<T, SnapshotError> {
    let Some(bytes) = stores.snapshots.get(&key).await? else {
        return Err(SnapshotError::Missing { key });
    };
    gunzip_json(&bytes).map_err(|source| SnapshotError::Codec { key, source })
}

/// The answer table of a snapshot.
pub async fn load_assignments(
    stores: &Stores,
    snapshot: &str,
) -> Result<Assignments, SnapshotError> {
    read(stores, assignments_key(snapshot)).await
}

/// The plan of a snapshot.
pub async fn load_plan(stores: &Stores, snapshot: &str) -> Result<Plan, SnapshotError> {
    read(stores, plan_key(snapshot)).await
}

/// The plan of a generation without its overrides: what the next plan follows.
pub async fn load_baseline(stores: &Stores, pointer: &Pointer) -> Result<Plan, SnapshotError> {
    let snapshot = pointer
        .applied
        .baseline
        .as_deref()
        .unwrap_or(&pointer.snapshot);
    load_plan(stores, snapshot).await
}

/// The assignment changes generation `generation` (of plan `digest`) made.
pub async fn load_changes(
    stores: &Stores,
    generation: u64,
    digest: &str,
) -> Result<Vec<Change>, SnapshotError> {
    read(stores, changes_key(generation, digest)).await
}

/// The release inputs stored under `key`.
pub async fn load_release(stores: &Stores, key: &str) -> Result<StoredInputs, SnapshotError> {
    read(stores, key.to_owned()).await
}

/// What a snapshot holds, written before any claim.
pub(super) struct Contents<'a> {
    pub plan: &'a Plan,
    pub snapshot: &'a str,
    pub assignments: &'a Assignments,
    pub changes_key: &'a str,
    pub changes: &'a [Change],
}

impl Contents<'_> {
    /// Writes every object; returns how many were put.
    pub(super) async fn write(&self, stores: &Stores) -> Result<usize, SnapshotError> {
        let gzipped = |key: String, value: Result<Vec<u8>, CodecError>| {
            value
                .map(|bytes| (key.clone(), bytes, "application/gzip"))
                .map_err(|source| SnapshotError::Codec { key, source })
        };
        let snapshot = self.snapshot;
        let inputs =
            serde_json::to_vec_pretty(&self.plan.inputs).map_err(|e| SnapshotError::Codec {
                key: format!("{snapshot}/inputs.json"),
                source: CodecError::Json(e),
            })?;
        let objects = [
            gzipped(plan_key(snapshot), gzip_json(self.plan))?,
            gzipped(assignments_key(snapshot), gzip_json(self.assignments))?,
            (
                format!("{snapshot}/summary.md"),
                report::markdown(self.plan).into_bytes(),
                "text/markdown",
            ),
            (
                format!("{snapshot}/summary.svg"),
                report::svg(self.plan).into_bytes(),
                "image/svg+xml",
            ),
            (
                format!("{snapshot}/inputs.json"),
                inputs,
                "application/json",
            ),
            gzipped(self.changes_key.to_owned(), gzip_json(self.changes))?,
        ];
        let puts = objects.len();
        for (key, body, content_type) in objects {
            stores.snapshots.put(&key, body, content_type).await?;
        }
        Ok(puts)
    }
}
