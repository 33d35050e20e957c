//! Answering "which cluster for this job?" from an in-memory copy of the current
//! generation.
//!
//! The copy is the generation's answer table (one object in the snapshot store). The
//! pointer is re-read at most every [`REFRESH`]; when it names a new generation, that
//! generation's table is loaded before the next answer. So an answer is at most `REFRESH`
//! behind the published generation, and a warm lookup does no network round trip except
//! one pointer read per `REFRESH`. Every answer comes from a whole generation: the table of
//! generation N, or (before anything is loaded) nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::model::Assignments;
use crate::publish;
use crate::{StoreError, Stores};
use tokio::time::Instant;

/// How often the pointer is re-read: the staleness bound of answers.
pub const REFRESH: Duration = Duration::from_secs(10);
/// How long an `ephemeralcluster*` job keeps its cluster.
pub const EPHEMERAL_TTL: i64 = 24 * 60 * 60;
const EPHEMERAL_PREFIX: &str = "ephemeralcluster";
/// What an ephemeral job's choice is remembered under, before the job's name (the lookup
/// role may write only these, and [`ROUND_ROBIN`]).
pub const EPHEMERAL_CHOICE: &str = "ephemeral#";
/// The counter the ephemeral choices take turns by.
pub const ROUND_ROBIN: &str = "ephemeral-round-robin";
/// The longest job name a lookup accepts, in bytes: Kubernetes' bound on object names (a
/// DNS subdomain, 253 characters; Prow job names are ASCII). Prow bounds no job name
/// itself (its config checks only the characters, and truncates the name to 63 in the
/// `prow.k8s.io/job` label), so no real job is longer, while every longer name would be
/// remembered as an ephemeral choice or looked up for nothing.
pub const MAX_JOB_NAME: usize = 253;

/// How fast one lookup instance makes new ephemeral choices, each of which writes to the
/// store: a token bucket of `burst` tokens refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EphemeralLimit {
    /// Tokens added per second (a fraction allowed).
    pub per_second: f64,
    /// The most new choices at once, after a quiet spell.
    pub burst: u32,
}

impl Default for EphemeralLimit {
    /// 20 a second with a burst of 100: openshift/release starts a few ephemeral cluster
    /// jobs a minute, so only a flood of made-up names meets the limit.
    fn default() -> Self {
        Self {
            per_second: 20.0,
            burst: 100,
        }
    }
}

/// A token bucket on the caller's clock (seconds since the epoch). Whole seconds are fine
/// grained enough: the bucket then refills in steps of `per_second`, never past `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    limit: EphemeralLimit,
    tokens: f64,
    /// The latest time seen; `None` before the first take (the bucket starts full).
    at: Option<i64>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: EphemeralLimit) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            at: None,
        }
    }

    /// Takes one token at `now`; `false` (and nothing taken) when the bucket is empty.
    pub fn take(&mut self, now: i64) -> bool {
        if let Some(at) = self.at {
            // A clock that steps back adds nothing, and the bucket keeps the later time.
            let elapsed = now.saturating_sub(at).max(0) as f64;
            self.tokens =
                (self.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        }
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One generation, as served.
#[derive(Debug)]
pub struct Served {
    pub generation: u64,
    pub snapshot: String,
    /// Shared between the refreshes that find the same generation: a refresh copies no
    /// table.
    jobs: Arc<HashMap<String, String>>,
    usable: Arc<Vec<String>>,
    checked: Instant,
}

impl Served {
    /// The same generation, checked again now.
    fn rechecked(&self) -> Self {
        Self {
            generation: self.generation,
            snapshot: self.snapshot.clone(),
            jobs: Arc::clone(&self.jobs),
            usable: Arc::clone(&self.usable),
            checked: Instant::now(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Generation,
    Ephemeral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Cluster {
        cluster: String,
        generation: u64,
        source: Source,
    },
    /// Unknown job, a job without a cluster, or nothing published yet: Prow falls back to
    /// the job's static `cluster:`.
    NotFound,
}

/// Why a lookup has no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// A job name longer than [`MAX_JOB_NAME`]: refused before the store is read.
    #[error("a job name of {length} bytes, longer than {MAX_JOB_NAME}")]
    NameTooLong {
        /// The name's length in bytes.
        length: usize,
    },
    /// A new `ephemeralcluster*` job beyond this instance's [`EphemeralLimit`]: nothing
    /// written.
    #[error("Too many new ephemeral clusters")]
    TooManyEphemeral,
    /// An `ephemeralcluster*` job, and no cluster takes new work.
    #[error("no usable cluster for an ephemeral cluster job")]
    NoUsableCluster,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("snapshot: {0}")]
    Snapshot(String),
}

/// The lookup use case: one per instance, holding the generation it serves and its bound
/// on new ephemeral choices.
pub struct LookupService {
    stores: Stores,
    served: RwLock<Option<Arc<Served>>>,
    refreshing: tokio::sync::Mutex<()>,
    refresh: Duration,
    explained: tokio::sync::Mutex<Option<(u64, Arc<dispatcher_core::Plan>)>>,
    new_ephemeral: Mutex<TokenBucket>,
}

impl LookupService {
    pub fn new(stores: Stores) -> Self {
        Self::with_refresh(stores, REFRESH)
    }

    pub fn with_refresh(stores: Stores, refresh: Duration) -> Self {
        Self {
            stores,
            served: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            refresh,
            explained: tokio::sync::Mutex::new(None),
            new_ephemeral: Mutex::new(TokenBucket::new(EphemeralLimit::default())),
        }
    }

    /// The same service with another bound on new ephemeral choices.
    #[must_use]
    pub fn with_ephemeral_limit(mut self, limit: EphemeralLimit) -> Self {
        self.new_ephemeral = Mutex::new(TokenBucket::new(limit));
        self
    }

    /// Refuses a name no job can have before anything else is done with it.
    fn check_name(job: &str) -> Result<(), LookupError> {
        if job.len() > MAX_JOB_NAME {
            return Err(LookupError::NameTooLong { length: job.len() });
        }
        Ok(())
    }

    fn cached(&self) -> Option<Arc<Served>> {
        self.served.read().ok().and_then(|s| s.clone())
    }

    fn store(&self, s: Option<Arc<Served>>) {
        if let Ok(mut guard) = self.served.write() {
            *guard = s;
        }
    }

    /// The generation to answer from, refreshed when it may be stale.
    pub async fn current(&self) -> Result<Option<Arc<Served>>, LookupError> {
        if let Some(s) = self.cached().filter(|s| s.checked.elapsed() < self.refresh) {
            return Ok(Some(s));
        }
        let _one = self.refreshing.lock().await;
        let cached = self.cached();
        if let Some(s) = cached
            .as_ref()
            .filter(|s| s.checked.elapsed() < self.refresh)
        {
            return Ok(Some(s.clone()));
        }
        match self.refresh_from_store(cached.as_deref()).await {
            Ok(fresh) => {
                let fresh = fresh.map(Arc::new);
                self.store(fresh.clone());
                Ok(fresh)
            }
            // Availability over freshness: with a whole generation loaded, keep answering
            // from it, and try the store again one interval later rather than on every
            // request (Prow's single scheduler worker would wait on each attempt).
            Err(e) if cached.is_some() => {
                let kept = cached.as_deref().map(|s| Arc::new(s.rechecked()));
                tracing::warn!(
                    error = %e,
                    generation = kept.as_ref().map(|s| s.generation),
                    retry_in = ?self.refresh,
                    "the store is unavailable; answering from the loaded generation"
                );
                self.store(kept.clone());
                Ok(kept)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the pointer and, when it names another generation, that generation's table.
    async fn refresh_from_store(
        &self,
        cached: Option<&Served>,
    ) -> Result<Option<Served>, LookupError> {
        let Some(pointer) = self
            .stores
            .table
            .pointer()
            .await?
            .filter(|p| p.generation > 0)
        else {
            return Ok(None);
        };
        if let Some(s) = cached.filter(|s| s.generation == pointer.generation) {
            return Ok(Some(s.rechecked()));
        }
        let key = publish::assignments_key(&pointer.snapshot);
        let bytes = self
            .stores
            .snapshots
            .get(&key)
            .await?
            .ok_or_else(|| LookupError::Snapshot(format!("{key} is missing")))?;
        let table: Assignments =
            crate::codec::gunzip_json(&bytes).map_err(LookupError::Snapshot)?;
        tracing::info!(
            generation = pointer.generation,
            jobs = table.jobs.len(),
            "serving a new generation"
        );
        Ok(Some(Served {
            generation: pointer.generation,
            snapshot: pointer.snapshot.clone(),
            jobs: Arc::new(table.jobs.into_iter().collect()),
            usable: Arc::new(table.usable),
            checked: Instant::now(),
        }))
    }

    /// The cluster for `job` now (`now` in seconds since the epoch, for ephemeral choices).
    pub async fn answer(&self, job: &str, now: i64) -> Result<Answer, LookupError> {
        Self::check_name(job)?;
        let Some(served) = self.current().await? else {
            return Ok(Answer::NotFound);
        };
        if job.starts_with(EPHEMERAL_PREFIX) {
            return self.ephemeral(job, &served, now).await;
        }
        Ok(match served.jobs.get(job) {
            Some(c) => Answer::Cluster {
                cluster: c.clone(),
                generation: served.generation,
                source: Source::Generation,
            },
            None => Answer::NotFound,
        })
    }

    /// Round-robin over the clusters that take new work, remembered for 24 hours in the
    /// store so that the choice survives restarts (F9). Capability and capacity do not
    /// restrict it: an ephemeral cluster job only provisions a cluster elsewhere.
    async fn ephemeral(&self, job: &str, served: &Served, now: i64) -> Result<Answer, LookupError> {
        let key = format!("{EPHEMERAL_CHOICE}{job}");
        let table = &self.stores.table;
        let answer = |cluster: String| Answer::Cluster {
            cluster,
            generation: served.generation,
            source: Source::Ephemeral,
        };
        let remembered = table.recall(&key, now).await?;
        if let Some(c) = remembered.as_ref().filter(|c| served.usable.contains(c)) {
            return Ok(answer(c.clone()));
        }
        if served.usable.is_empty() {
            return Err(LookupError::NoUsableCluster);
        }
        // Bounded before anything is written: made-up names must not fill the table.
        let allowed = self
            .new_ephemeral
            .lock()
            .is_ok_and(|mut bucket| bucket.take(now));
        if !allowed {
            return Err(LookupError::TooManyEphemeral);
        }
        if remembered.is_some() {
            // Its cluster stopped taking new work: choose again.
            table.forget(&key).await?;
        }
        let n = table.increment(ROUND_ROBIN).await?;
        let index = usize::try_from(n.saturating_sub(1)).unwrap_or(0) % served.usable.len();
        let chosen = served.usable[index].clone();
        if table
            .remember(&key, &chosen, now + EPHEMERAL_TTL, now)
            .await?
        {
            return Ok(answer(chosen));
        }
        // Another request chose first: its choice stands.
        Ok(answer(table.recall(&key, now).await?.unwrap_or(chosen)))
    }

    /// A job's plan entry and its file's decision (rule, candidates, scores), from the
    /// current generation's snapshot (loaded once per generation).
    pub async fn explain(&self, job: &str) -> Result<Option<serde_json::Value>, LookupError> {
        Self::check_name(job)?;
        let Some(served) = self.current().await? else {
            return Ok(None);
        };
        let mut cache = self.explained.lock().await;
        let plan = match cache.as_ref() {
            Some((g, p)) if *g == served.generation => p.clone(),
            _ => {
                let p = Arc::new(
                    publish::load_plan(&self.stores, &served.snapshot)
                        .await
                        .map_err(|e| LookupError::Snapshot(e.to_string()))?,
                );
                *cache = Some((served.generation, p.clone()));
                p
            }
        };
        let Some(entry) = plan.jobs.get(job) else {
            return Ok(None);
        };
        let file = plan.files.get(&entry.file);
        Ok(Some(serde_json::json!({
            "job": job,
            "generation": served.generation,
            "entry": entry,
            "file": file,
            "inputs": plan.inputs,
        })))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use crate::model::{GenerationRecord, JobItem, Pending, Pointer};
    use crate::store::{Claim, WriteStats};
    use crate::{AssignmentStore, SnapshotStore};
    use async_trait::async_trait;

    use super::*;

    /// A table and snapshot store in memory that counts what is asked of it: one
    /// generation whose usable clusters are `build01` and `build02`.
    #[derive(Default)]
    struct Counted {
        published: bool,
        reads: AtomicUsize,
        writes: AtomicUsize,
        counter: AtomicU64,
        remembered: Mutex<HashMap<String, String>>,
    }

    impl Counted {
        fn published() -> Arc<Self> {
            Arc::new(Self {
                published: true,
                ..Self::default()
            })
        }

        fn stores(self: &Arc<Self>) -> Stores {
            Stores {
                table: self.clone(),
                snapshots: self.clone(),
            }
        }

        fn touched(&self) -> (usize, usize) {
            (
                self.reads.load(Ordering::SeqCst),
                self.writes.load(Ordering::SeqCst),
            )
        }

        fn read(&self) {
            self.reads.fetch_add(1, Ordering::SeqCst);
        }

        fn write(&self) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }

        fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
            self.remembered.lock().expect("not poisoned")
        }
    }

    fn unused() -> StoreError {
        StoreError::Other("not used by lookups".to_owned())
    }

    #[async_trait]
    impl AssignmentStore for Counted {
        async fn pointer(&self) -> Result<Option<Pointer>, StoreError> {
            self.read();
            Ok(self.published.then(|| {
                serde_json::from_value(serde_json::json!({"generation": 1, "snapshot": "s"}))
                    .expect("a pointer")
            }))
        }
        async fn job(&self, _: &str) -> Result<Option<JobItem>, StoreError> {
            Err(unused())
        }
        async fn jobs(&self, _: &[String]) -> Result<Vec<JobItem>, StoreError> {
            Err(unused())
        }
        async fn write_jobs(&self, _: &[JobItem]) -> Result<WriteStats, StoreError> {
            Err(unused())
        }
        async fn claim(&self, _: u64, _: &Pending, _: i64) -> Result<Claim, StoreError> {
            Err(unused())
        }
        async fn commit(
            &self,
            _: u64,
            _: &str,
            _: &Pointer,
            _: &GenerationRecord,
        ) -> Result<(), StoreError> {
            Err(unused())
        }
        async fn generation(&self, _: u64) -> Result<Option<GenerationRecord>, StoreError> {
            Err(unused())
        }
        async fn remember(
            &self,
            key: &str,
            value: &str,
            _: i64,
            _: i64,
        ) -> Result<bool, StoreError> {
            self.write();
            let mut map = self.map();
            if map.contains_key(key) {
                return Ok(false);
            }
            map.insert(key.to_owned(), value.to_owned());
            Ok(true)
        }
        async fn recall(&self, key: &str, _: i64) -> Result<Option<String>, StoreError> {
            self.read();
            Ok(self.map().get(key).cloned())
        }
        async fn forget(&self, key: &str) -> Result<(), StoreError> {
            self.write();
            self.map().remove(key);
            Ok(())
        }
        async fn increment(&self, _: &str) -> Result<u64, StoreError> {
            self.write();
            Ok(self.counter.fetch_add(1, Ordering::SeqCst) + 1)
        }
        async fn marker(&self, _: &str) -> Result<Option<String>, StoreError> {
            Err(unused())
        }
        async fn set_marker(&self, _: &str, _: &str) -> Result<(), StoreError> {
            Err(unused())
        }
    }

    #[async_trait]
    impl SnapshotStore for Counted {
        async fn put(&self, _: &str, _: Vec<u8>, _: &str) -> Result<(), StoreError> {
            Err(unused())
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.read();
            Ok(Some(crate::codec::gzip_json(&Assignments {
                plan_digest: "d".to_owned(),
                jobs: BTreeMap::from([("pull-ci-a".to_owned(), "build01".to_owned())]),
                usable: vec!["build01".to_owned(), "build02".to_owned()],
            })))
        }
    }

    #[test]
    fn the_bucket_allows_its_burst_then_its_rate_on_the_callers_clock() {
        let mut bucket = TokenBucket::new(EphemeralLimit {
            per_second: 20.0,
            burst: 100,
        });
        assert_eq!((0..100).filter(|_| bucket.take(1_000)).count(), 100);
        assert!(!bucket.take(1_000), "the 101st within the second");
        // One second later: 20 more, not 100.
        assert_eq!((0..100).filter(|_| bucket.take(1_001)).count(), 20);
        // A clock that steps back refills nothing.
        assert!(!bucket.take(990));
        assert!(!bucket.take(1_001));
        // A long quiet spell refills up to the burst, no further.
        assert_eq!((0..500).filter(|_| bucket.take(100_000)).count(), 100);

        let mut slow = TokenBucket::new(EphemeralLimit {
            per_second: 0.5,
            burst: 1,
        });
        assert!(slow.take(0));
        assert!(!slow.take(1), "half a token after one second");
        assert!(slow.take(2));
    }

    #[tokio::test]
    async fn an_overlong_name_is_refused_before_the_store_is_read() {
        let store = Counted::published();
        let service = LookupService::new(store.stores());
        for name in [
            "a".repeat(MAX_JOB_NAME + 1),
            format!("{EPHEMERAL_PREFIX}{}", "x".repeat(2048)),
        ] {
            let refused = service.answer(&name, 1_000).await;
            assert!(
                matches!(refused, Err(LookupError::NameTooLong { length }) if length == name.len()),
                "{refused:?}"
            );
            let explained = service.explain(&name).await;
            assert!(
                matches!(explained, Err(LookupError::NameTooLong { .. })),
                "{explained:?}"
            );
        }
        assert_eq!(store.touched(), (0, 0), "neither read nor written");
        // The bound itself is a name like any other.
        let longest = "a".repeat(MAX_JOB_NAME);
        assert_eq!(
            service.answer(&longest, 1_000).await.expect("answered"),
            Answer::NotFound
        );
        let known = service.answer("pull-ci-a", 1_000).await.expect("answered");
        assert!(matches!(known, Answer::Cluster { ref cluster, .. } if cluster == "build01"));
    }

    #[tokio::test]
    async fn new_ephemeral_choices_beyond_the_bucket_are_refused_without_writing() {
        let store = Counted::published();
        let service = LookupService::new(store.stores()).with_ephemeral_limit(EphemeralLimit {
            per_second: 20.0,
            burst: 100,
        });
        let now = 1_000;
        for i in 0..100 {
            let a = service
                .answer(&format!("ephemeralcluster-{i}"), now)
                .await
                .expect("within the burst");
            assert!(matches!(
                a,
                Answer::Cluster {
                    source: Source::Ephemeral,
                    ..
                }
            ));
        }
        let (_, writes) = store.touched();
        let refused = service.answer("ephemeralcluster-100", now).await;
        assert!(
            matches!(refused, Err(LookupError::TooManyEphemeral)),
            "{refused:?}"
        );
        assert_eq!(store.touched().1, writes, "nothing written for the refusal");
        assert!(!store.map().contains_key("ephemeral#ephemeralcluster-100"));
        // A remembered name is answered still, the same cluster, without a write.
        let first = store.map()["ephemeral#ephemeralcluster-0"].clone();
        let again = service
            .answer("ephemeralcluster-0", now)
            .await
            .expect("remembered");
        assert!(matches!(again, Answer::Cluster { ref cluster, .. } if *cluster == first));
        assert_eq!(store.touched().1, writes);
        // A second later the bucket has refilled by the rate.
        assert!(
            service
                .answer("ephemeralcluster-100", now + 1)
                .await
                .is_ok()
        );
    }
}
