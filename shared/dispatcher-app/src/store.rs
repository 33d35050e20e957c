//! The storage ports. Lookup, recompute and the CLI see only these; the AWS adapter
//! (DynamoDB + S3) and the local one (SQLite + files) implement them.

use async_trait::async_trait;

use crate::model::{GenerationRecord, JobItem, Pending, Pointer};

/// Any error an adapter gives as the cause of its failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure, classified so that callers know whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: someone else moved first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend did not answer or throttled; retrying may succeed.
    #[error("{operation}: the store is unavailable")]
    Unavailable {
        /// What was attempted.
        operation: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// Stored data that does not decode: retrying will not help.
    #[error("corrupt item {key}")]
    Corrupt {
        /// The item's or object's key.
        key: String,
        /// What is wrong with it.
        #[source]
        source: BoxError,
    },
    /// Anything else the backend refused.
    #[error("{operation}: the store refused")]
    Refused {
        /// What was attempted.
        operation: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// The backend did not answer `operation`, or throttled it, because of `cause`.
    pub fn unavailable(operation: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            operation: operation.into(),
            source: cause.into(),
        }
    }

    /// The backend refused `operation` because of `cause`.
    pub fn refused(operation: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Self::Refused {
            operation: operation.into(),
            source: cause.into(),
        }
    }

    /// The item `key` does not decode, because of `cause`.
    pub fn corrupt(key: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Self::Corrupt {
            key: key.into(),
            source: cause.into(),
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Write requests and items, for the publish report and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Requests sent (a `BatchWriteItem` of 25 items is one; retries of unprocessed items
    /// count again).
    pub requests: usize,
    /// Items written.
    pub items: usize,
    /// Retries of unprocessed items.
    pub retries: usize,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.items += o.items;
        self.retries += o.retries;
    }
}

/// Outcome of claiming the next generation.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The generation is ours: the claim as stored, whose `inherited` change lists name
    /// jobs that earlier claims (taken over, or our own earlier attempt) may have written.
    Won {
        /// The claim as the store holds it.
        stored: Pending,
    },
    /// Someone else holds it, or the pointer moved: the current pointer.
    Lost(Option<Box<Pointer>>),
}

/// The table role (DynamoDB): job items, the pointer, generation records, markers.
#[async_trait]
pub trait AssignmentStore: Send + Sync {
    /// The pointer: the serving generation, and a publish in progress.
    async fn pointer(&self) -> Result<Option<Pointer>, StoreError>;

    /// A job's item, as written (resolve it against the pointer).
    async fn job(&self, name: &str) -> Result<Option<JobItem>, StoreError>;

    /// Items of these jobs that exist, in no particular order.
    async fn jobs(&self, names: &[String]) -> Result<Vec<JobItem>, StoreError>;

    /// Writes items in batches of at most 25, retrying unprocessed ones with backoff.
    async fn write_jobs(&self, items: &[JobItem]) -> Result<WriteStats, StoreError>;

    /// Claims generation `pending.generation` if the pointer is still at `base` (0: none
    /// published) and any claim on it yields to `pending.owner` at `now`; the claim replaced
    /// is inherited ([`Pending::claiming`] decides). Exactly one of several racing claimers
    /// wins.
    async fn claim(&self, base: u64, pending: &Pending, now: i64) -> Result<Claim, StoreError>;

    /// Moves the pointer from `base` to `pointer` and writes the generation's record, both
    /// or neither, if the claim is still `owner`'s. `Conflict` when it is not.
    async fn commit(
        &self,
        base: u64,
        owner: &str,
        pointer: &Pointer,
        record: &GenerationRecord,
    ) -> Result<(), StoreError>;

    /// The record of generation `n`.
    async fn generation(&self, n: u64) -> Result<Option<GenerationRecord>, StoreError>;

    /// Records `key` until `expires_at` unless it is already recorded and unexpired at
    /// `now`: `true` the first time (webhook deliveries, ephemeral choices).
    async fn remember(
        &self,
        key: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The value of a remembered, unexpired key.
    async fn recall(&self, key: &str, now: i64) -> Result<Option<String>, StoreError>;

    /// Forgets a remembered key (a hand-off that failed must be retryable).
    async fn forget(&self, key: &str) -> Result<(), StoreError>;

    /// Adds one to a durable counter and returns the new value (1 the first time).
    async fn increment(&self, name: &str) -> Result<u64, StoreError>;

    /// A durable marker ("last processed inventory", "fallback pending"), or `None`.
    async fn marker(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Sets a durable marker.
    async fn set_marker(&self, name: &str, value: &str) -> Result<(), StoreError>;

    /// Sets a durable marker to `value` if it still holds `expected` (`None`: it is not
    /// set): `true` when it was swapped. Of several racing writers exactly one succeeds.
    async fn swap_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError>;
}

/// The snapshot role (S3, versioned): immutable objects per generation.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Puts an object (content-addressed keys: the same key always gets the same bytes).
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError>;

    /// An object, `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Both roles, as the functions and the CLI hold them.
#[derive(Clone)]
pub struct Stores {
    /// The table role.
    pub table: std::sync::Arc<dyn AssignmentStore>,
    /// The snapshot role.
    pub snapshots: std::sync::Arc<dyn SnapshotStore>,
}

impl Stores {
    /// The pointer while a generation serves; `None` before the first publish (even when
    /// one is in progress).
    pub async fn serving(&self) -> Result<Option<Pointer>, StoreError> {
        Ok(self.table.pointer().await?.filter(|p| p.generation > 0))
    }
}
