//! Ports to the outside world the use cases need besides the store.

use std::collections::BTreeMap;

use async_trait::async_trait;
use dispatcher_core::model::Volumes;
use dispatcher_formats::Release;
use dispatcher_formats::volumes::Vector;

use crate::recompute::RecomputeRequest;

/// A failure of an outside service, classified so that the caller knows whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service}: {message}")]
pub struct SourceError {
    pub service: &'static str,
    pub retryable: bool,
    pub message: String,
}

impl SourceError {
    pub fn retryable(service: &'static str, message: impl Into<String>) -> Self {
        Self {
            service,
            retryable: true,
            message: message.into(),
        }
    }

    pub fn permanent(service: &'static str, message: impl Into<String>) -> Self {
        Self {
            service,
            retryable: false,
            message: message.into(),
        }
    }
}

/// The release repository.
#[async_trait]
pub trait RepoSource: Send + Sync {
    /// The head commit of the default branch.
    async fn head(&self) -> Result<String, SourceError>;

    /// The release at `commit`, with every job file's bytes (to write the PR).
    async fn release(&self, commit: &str) -> Result<Release, SourceError>;

    /// The blob SHA of a file at `commit`, `None` when the file does not exist there.
    async fn blob_sha(&self, commit: &str, path: &str) -> Result<Option<String>, SourceError>;
}

/// Job volumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    pub volumes: Volumes,
    /// Digests (or descriptions) of the responses, for the plan's provenance.
    pub runs_digest: String,
    pub durations_digest: Option<String>,
    /// Digest of the CPU-seconds vector, when it was queried.
    pub cpu_digest: Option<String>,
    /// Digest of the memory byte-seconds vector, when it was queried.
    pub memory_digest: Option<String>,
    pub warnings: Vec<String>,
}

impl Demand {
    /// The demand of the vectors measured, each with the digest of its response: runs
    /// always, durations, CPU and memory when they were queried.
    pub fn from_vectors(
        runs: (Vector, String),
        durations: Option<(Vector, String)>,
        cpu: Option<(Vector, String)>,
        memory: Option<(Vector, String)>,
    ) -> Self {
        let (mut runs, runs_digest) = runs;
        let mut warnings = std::mem::take(&mut runs.warnings);
        let mut take = |v: Option<(Vector, String)>| {
            v.map(|(mut v, d)| {
                warnings.append(&mut v.warnings);
                (v, d)
            })
        };
        let (durations, cpu, memory) = (take(durations), take(cpu), take(memory));
        let (durations_digest, cpu_digest, memory_digest) = (
            durations.as_ref().map(|v| v.1.clone()),
            cpu.as_ref().map(|v| v.1.clone()),
            memory.as_ref().map(|v| v.1.clone()),
        );
        Self {
            volumes: dispatcher_formats::volumes::volumes_of(
                runs,
                durations.map(|v| v.0),
                cpu.map(|v| v.0),
                memory.map(|v| v.0),
            ),
            runs_digest,
            durations_digest,
            cpu_digest,
            memory_digest,
            warnings,
        }
    }
}

#[async_trait]
pub trait DemandSource: Send + Sync {
    /// Volumes over the window ending at `now` (seconds since the epoch).
    async fn demand(&self, now: i64) -> Result<Demand, SourceError>;
}

/// One commit's worth of changed files for the backup PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackChange {
    /// The commit the files were read at: the PR's base.
    pub base_commit: String,
    pub generation: u64,
    /// Path -> new content.
    pub files: BTreeMap<String, String>,
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackReport {
    pub pull_request: u64,
    pub created: bool,
    pub commit: String,
    /// Whether the branch moved: `false` when it already held these files on this base,
    /// so that a recompute that changes nothing pushes nothing (no rehearsals re-run).
    pub pushed: bool,
    pub api_calls: usize,
}

/// The PR that keeps the static `cluster:` fields a true backup.
#[async_trait]
pub trait FallbackPublisher: Send + Sync {
    async fn publish(&self, change: &FallbackChange) -> Result<FallbackReport, SourceError>;
}

/// Hands a recompute over to run asynchronously.
#[async_trait]
pub trait Handoff: Send + Sync {
    async fn submit(&self, request: &RecomputeRequest) -> Result<(), SourceError>;
}
