//! The local adapters: a release directory or tarball as the repository, a volumes file as
//! Prometheus, and an in-process hand-off to a recompute worker.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dispatcher_formats::volumes::Vector;
use dispatcher_formats::{Parse, ReadOptions, Release, Source};
use tokio::sync::{mpsc, watch};

use crate::ports::{Demand, DemandSource, Handoff, RepoSource, SourceError};
use crate::recompute::{Outcome, RecomputeError, RecomputeRequest, Recomputer};

/// A release checkout or tarball on disk. Its "commit" is the digest of its job files.
#[derive(Debug, Clone)]
pub struct LocalRepo {
    /// The checkout directory, or the tarball.
    pub path: PathBuf,
    /// An inventory overriding the release's own.
    pub clusters: Option<PathBuf>,
    /// What the release may hold.
    pub limits: dispatcher_formats::Limits,
}

impl LocalRepo {
    fn read(&self) -> Result<Release, SourceError> {
        let opts = ReadOptions {
            parse: Parse::Fast,
            keep_text: true,
            limits: self.limits,
        };
        let mut release =
            dispatcher_formats::release::read(Source::Path(self.path.clone()), opts, &|| {})
                .map_err(|e| SourceError::permanent("release", "the release").because(e))?;
        if let Some(c) = &self.clusters {
            release.clusters = Some(std::fs::read(c).map_err(|e| {
                SourceError::permanent("release", c.display().to_string()).because(e)
            })?);
        }
        Ok(release)
    }
}

#[async_trait]
impl RepoSource for LocalRepo {
    /// A local release has no history: one fixed "commit".
    async fn head(&self) -> Result<String, SourceError> {
        Ok("local".to_owned())
    }

    async fn release(&self, _commit: &str) -> Result<Release, SourceError> {
        let repo = self.clone();
        tokio::task::spawn_blocking(move || repo.read())
            .await
            .map_err(|e| SourceError::permanent("release", "the reader stopped").because(e))?
    }

    async fn blob_sha(&self, _commit: &str, path: &str) -> Result<Option<String>, SourceError> {
        let repo = self.clone();
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let bytes = match (&repo.clusters, path.as_str()) {
                (Some(c), dispatcher_formats::CLUSTERS_PATH) => Some(std::fs::read(c)),
                _ if repo.path.is_dir() => Some(std::fs::read(repo.path.join(&path))),
                _ => None,
            };
            let bytes = match bytes {
                Some(Ok(b)) => Some(b),
                Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
                Some(Err(e)) => {
                    return Err(SourceError::permanent("release", path.to_owned()).because(e));
                }
                // A tarball: read it whole (local mode only).
                None => {
                    let release = repo.read()?;
                    match path.as_str() {
                        dispatcher_formats::CLUSTERS_PATH => release.clusters,
                        dispatcher_formats::CONFIG_PATH => release.config,
                        other => release.texts.get(other).cloned(),
                    }
                }
            };
            Ok(bytes.map(|b| dispatcher_formats::digest::sha256(&b)))
        })
        .await
        .map_err(|e| SourceError::permanent("release", "the reader stopped").because(e))?
    }
}

/// Prometheus vector responses saved as files.
#[derive(Debug, Clone)]
pub struct FileDemand {
    /// Run counts per job (the one vector a plan needs).
    pub runs: PathBuf,
    /// Job seconds per job.
    pub durations: Option<PathBuf>,
    /// CPU seconds per job.
    pub cpu: Option<PathBuf>,
    /// Memory byte-seconds per job.
    pub memory: Option<PathBuf>,
}

#[async_trait]
impl DemandSource for FileDemand {
    async fn demand(&self, _now: i64) -> Result<Demand, SourceError> {
        let read = |p: &PathBuf| -> Result<(Vector, String), SourceError> {
            let bytes = std::fs::read(p).map_err(|e| {
                SourceError::permanent("volumes", p.display().to_string()).because(e)
            })?;
            let v = dispatcher_formats::parse_vector(&bytes).map_err(|e| {
                SourceError::permanent("volumes", p.display().to_string()).because(e)
            })?;
            Ok((v, dispatcher_formats::digest::sha256(&bytes)))
        };
        let optional = |p: &Option<PathBuf>| p.as_ref().map(read).transpose();
        let (runs, runs_digest) = read(&self.runs)?;
        let (durations, cpu, memory) = (
            optional(&self.durations)?,
            optional(&self.cpu)?,
            optional(&self.memory)?,
        );
        Ok(Demand::from_vectors(
            (runs, runs_digest),
            durations,
            cpu,
            memory,
        ))
    }
}

/// What the local worker reports after each recompute.
#[derive(Debug, Clone)]
pub struct Completed {
    /// How many recomputes finished (successfully or not).
    pub count: u64,
    /// The last recompute: what it did, or why it failed.
    pub last: Result<Outcome, Arc<RecomputeError>>,
}

/// Hands recomputes to an in-process worker that runs them one at a time, the way the
/// recompute function runs asynchronous invocations.
#[derive(Clone)]
pub struct LocalHandoff {
    queue: mpsc::Sender<RecomputeRequest>,
    done: watch::Receiver<Option<Completed>>,
    submitted: Arc<std::sync::atomic::AtomicU64>,
}

impl LocalHandoff {
    /// Starts the worker on the current runtime. `now` reads the clock.
    pub fn start(recomputer: Arc<Recomputer>, now: fn() -> i64) -> Self {
        let (queue, mut rx) = mpsc::channel::<RecomputeRequest>(64);
        let (tx, done) = watch::channel(None);
        tokio::spawn(async move {
            let mut count = 0;
            while let Some(request) = rx.recv().await {
                let at = now();
                let attempt = crate::publish::fresh_owner(at);
                let last = recomputer
                    .run(&request, &attempt, at)
                    .await
                    .map_err(Arc::new);
                if let Err(e) = &last {
                    tracing::error!(error = %dispatcher_core::chain(e.as_ref()), trigger = ?request.trigger, "recompute failed; the last good generation keeps serving");
                }
                count += 1;
                let _ = tx.send(Some(Completed { count, last }));
            }
        });
        Self {
            queue,
            done,
            submitted: Arc::default(),
        }
    }

    /// Watches completions (tests wait on it instead of sleeping).
    pub fn completions(&self) -> watch::Receiver<Option<Completed>> {
        self.done.clone()
    }

    /// How many recomputes were handed off so far.
    pub fn submitted(&self) -> u64 {
        self.submitted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl Handoff for LocalHandoff {
    async fn submit(&self, request: &RecomputeRequest) -> Result<(), SourceError> {
        self.queue
            .send(request.clone())
            .await
            .map_err(|_| SourceError::retryable("handoff", "the recompute worker stopped"))?;
        self.submitted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}
