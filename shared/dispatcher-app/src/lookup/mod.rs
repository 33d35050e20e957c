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
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use crate::model::{Assignments, Overridden};
use crate::publish;
use crate::records::EphemeralChoices;
use crate::{StoreError, Stores};
use dispatcher_core::overrides::OverrideSpec;
use tokio::time::Instant;

mod ephemeral;
mod names;
#[cfg(test)]
mod tests;

pub use ephemeral::{EphemeralLimit, TokenBucket};
use names::NameIndex;

/// How often the pointer is re-read: the staleness bound of answers.
pub const REFRESH: Duration = Duration::from_secs(10);
const EPHEMERAL_PREFIX: &str = "ephemeralcluster";
/// The longest job name a lookup accepts, in bytes: Kubernetes' bound on object names (a
/// DNS subdomain, 253 characters; Prow job names are ASCII). Prow bounds no job name
/// itself (its config checks only the characters, and truncates the name to 63 in the
/// `prow.k8s.io/job` label), so no real job is longer, while every longer name would be
/// remembered as an ephemeral choice or looked up for nothing.
pub const MAX_JOB_NAME: usize = 253;
/// One generation, as served.
#[derive(Debug)]
pub struct Served {
    /// The generation's number.
    pub generation: u64,
    /// Its snapshot prefix.
    pub snapshot: String,
    /// Shared between the refreshes that find the same generation: a refresh copies no
    /// table.
    jobs: Arc<HashMap<String, String>>,
    usable: Arc<Vec<String>>,
    /// Jobs an override moved: past its end, their baseline answers.
    overridden: Arc<HashMap<String, Overridden>>,
    /// Its job names laid out for the pages' search, built on the first search.
    names: Arc<OnceLock<NameIndex>>,
    /// The overrides it applies, each with its end.
    applied: Arc<Vec<OverrideSpec>>,
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
            overridden: Arc::clone(&self.overridden),
            names: Arc::clone(&self.names),
            applied: Arc::clone(&self.applied),
            checked: Instant::now(),
        }
    }

    /// The answer for `job` at `now`, and whether an override gave it.
    fn cluster(&self, job: &str, now: i64) -> Option<(&str, Source)> {
        match self.overridden.get(job) {
            Some(o) if o.until <= now => o.baseline.as_deref().map(|c| (c, Source::Generation)),
            Some(_) => self.jobs.get(job).map(|c| (c.as_str(), Source::Override)),
            None => self.jobs.get(job).map(|c| (c.as_str(), Source::Generation)),
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The serving generation's table.
    Generation,
    /// The serving generation's table, for a job an active override moved.
    Override,
    /// An ephemeral-cluster choice (remembered for a day).
    Ephemeral,
}

impl Source {
    /// The source as answers and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Generation => "generation",
            Source::Override => "override",
            Source::Ephemeral => "ephemeral-cluster",
        }
    }
}

/// A lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The job runs on `cluster`.
    Cluster {
        /// The cluster.
        cluster: String,
        /// The generation answering.
        generation: u64,
        /// Where the answer came from.
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The serving generation's snapshot cannot be read.
    #[error(transparent)]
    Snapshot(#[from] publish::SnapshotError),
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
    metrics: Option<Arc<dyn crate::ports::AnswerMetrics>>,
}

impl LookupService {
    /// A service that checks for a new generation every [`REFRESH`].
    pub fn new(stores: Stores) -> Self {
        Self::with_refresh(stores, REFRESH)
    }

    /// A service that checks for a new generation every `refresh` (shorter in tests).
    pub fn with_refresh(stores: Stores, refresh: Duration) -> Self {
        Self {
            stores,
            served: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            refresh,
            explained: tokio::sync::Mutex::new(None),
            new_ephemeral: Mutex::new(TokenBucket::new(EphemeralLimit::default())),
            metrics: None,
        }
    }

    /// The same service, counting its answers in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn crate::ports::AnswerMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
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
                    error = %dispatcher_core::chain(&e),
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
        let Some(pointer) = self.stores.serving().await? else {
            return Ok(None);
        };
        if let Some(s) = cached.filter(|s| s.generation == pointer.generation) {
            return Ok(Some(s.rechecked()));
        }
        let table: Assignments = publish::load_assignments(&self.stores, &pointer.snapshot).await?;
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
            overridden: Arc::new(table.overridden.into_iter().collect()),
            names: Arc::default(),
            applied: Arc::new(pointer.applied.overrides.clone()),
            checked: Instant::now(),
        }))
    }

    /// The cluster for `job` now (`now` in seconds since the epoch: for ephemeral choices,
    /// and for overrides, which end at their time whether or not a generation follows).
    pub async fn answer(&self, job: &str, now: i64) -> Result<Answer, LookupError> {
        let answer = self.answer_uncounted(job, now).await;
        if let (Some(m), Ok(a)) = (&self.metrics, &answer) {
            match a {
                Answer::Cluster {
                    cluster,
                    generation,
                    source,
                } => m.answered(source.as_str(), Some(cluster), *generation, now),
                Answer::NotFound => {
                    let generation = self.cached().map_or(0, |s| s.generation);
                    m.answered("not-found", None, generation, now);
                }
            }
        }
        answer
    }

    async fn answer_uncounted(&self, job: &str, now: i64) -> Result<Answer, LookupError> {
        Self::check_name(job)?;
        let Some(served) = self.current().await? else {
            return Ok(Answer::NotFound);
        };
        if job.starts_with(EPHEMERAL_PREFIX) {
            return self.ephemeral(job, &served, now).await;
        }
        Ok(match served.cluster(job, now) {
            Some((c, source)) => Answer::Cluster {
                cluster: c.to_owned(),
                generation: served.generation,
                source,
            },
            None => Answer::NotFound,
        })
    }

    /// Round-robin over the clusters that take new work, remembered for 24 hours in the
    /// store so that the choice survives restarts (F9). Capability and capacity do not
    /// restrict it: an ephemeral cluster job only provisions a cluster elsewhere.
    async fn ephemeral(&self, job: &str, served: &Served, now: i64) -> Result<Answer, LookupError> {
        let choices = EphemeralChoices(self.stores.table.as_ref());
        let answer = |cluster: String| Answer::Cluster {
            cluster,
            generation: served.generation,
            source: Source::Ephemeral,
        };
        let remembered = choices.recall(job, now).await?;
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
            choices.forget(job).await?;
        }
        let n = choices.next_turn().await?;
        let index = usize::try_from(n.saturating_sub(1)).unwrap_or(0) % served.usable.len();
        let chosen = served.usable[index].clone();
        if choices.remember(job, &chosen, now).await? {
            return Ok(answer(chosen));
        }
        // Another request chose first: its choice stands.
        Ok(answer(choices.recall(job, now).await?.unwrap_or(chosen)))
    }

    /// The serving generation's plan (loaded once per generation): what `explain` and the
    /// pages read.
    pub async fn plan(&self) -> Result<Option<(u64, Arc<dispatcher_core::Plan>)>, LookupError> {
        let Some(served) = self.current().await? else {
            return Ok(None);
        };
        let mut cache = self.explained.lock().await;
        let plan = match cache.as_ref() {
            Some((g, p)) if *g == served.generation => p.clone(),
            _ => {
                let p = Arc::new(publish::load_plan(&self.stores, &served.snapshot).await?);
                *cache = Some((served.generation, p.clone()));
                p
            }
        };
        Ok(Some((served.generation, plan)))
    }

    /// The override entry of `job` in the serving generation (its baseline answer and the
    /// override's end), from the in-memory table.
    pub async fn overridden(&self, job: &str) -> Result<Option<Overridden>, LookupError> {
        Ok(self
            .current()
            .await?
            .and_then(|s| s.overridden.get(job).cloned()))
    }

    /// The overrides the serving generation applies that are still in force at `now`.
    pub async fn overrides_in_force(&self, now: i64) -> Result<Vec<OverrideSpec>, LookupError> {
        Ok(self.current().await?.map_or_else(Vec::new, |s| {
            s.applied
                .iter()
                .filter(|o| o.expires_at > now)
                .cloned()
                .collect()
        }))
    }

    /// Jobs of the serving generation whose name contains `text` (case-insensitively), in
    /// name order, at most `limit`, with their clusters.
    pub async fn search(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, LookupError> {
        let Some(served) = self.current().await? else {
            return Ok(Vec::new());
        };
        let index = served
            .names
            .get_or_init(|| NameIndex::new(served.jobs.keys().map(String::as_str)));
        let found = index.search(text.trim(), limit);
        Ok(found
            .into_iter()
            .filter_map(|j| served.jobs.get(j).map(|c| (j.to_owned(), c.clone())))
            .collect())
    }

    /// A job's plan entry and its file's decision (rule, candidates, scores), from the
    /// current generation's snapshot (loaded once per generation).
    pub async fn explain(&self, job: &str) -> Result<Option<serde_json::Value>, LookupError> {
        Self::check_name(job)?;
        let Some((generation, plan)) = self.plan().await? else {
            return Ok(None);
        };
        let Some(entry) = plan.jobs.get(job) else {
            return Ok(None);
        };
        let file = plan.files.get(&entry.file);
        Ok(Some(serde_json::json!({
            "job": job,
            "generation": generation,
            "entry": entry,
            "file": file,
            "inputs": plan.inputs,
        })))
    }
}
