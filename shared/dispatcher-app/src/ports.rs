//! Ports to the outside world the use cases need besides the store.

use std::collections::BTreeMap;

use async_trait::async_trait;
use dispatcher_formats::Release;
pub use dispatcher_formats::volumes::Demand;
use serde::Serialize;

use crate::recompute::RecomputeRequest;
use crate::store::BoxError;

/// A failure of an outside service, classified so that the caller knows whether to retry.
/// The message says what was attempted; the cause, when there is one, is the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The service is down, slow, throttling, or its answer was cut short: the same call
    /// may work later.
    #[error("{service}: {what}")]
    Unavailable {
        /// Which service (`github`, `prometheus`, `handoff`, ...).
        service: &'static str,
        /// What was attempted, or what went wrong.
        what: String,
        /// The adapter's own error.
        #[source]
        source: Option<BoxError>,
    },
    /// The object asked for does not exist (HTTP 404): an answer, not a fault.
    #[error("{service}: {what}: not found")]
    NotFound {
        /// Which service.
        service: &'static str,
        /// What was asked for.
        what: String,
    },
    /// The service answered, and the answer will not change by asking again (bad
    /// credentials, a missing object, content we must refuse).
    #[error("{service}: {what}")]
    Refused {
        /// Which service.
        service: &'static str,
        /// What was attempted, or what went wrong.
        what: String,
        /// The adapter's own error.
        #[source]
        source: Option<BoxError>,
    },
}

impl SourceError {
    /// A failure that may pass.
    pub fn retryable(service: &'static str, what: impl Into<String>) -> Self {
        Self::Unavailable {
            service,
            what: what.into(),
            source: None,
        }
    }

    /// A failure that will not pass by itself.
    pub fn permanent(service: &'static str, what: impl Into<String>) -> Self {
        Self::Refused {
            service,
            what: what.into(),
            source: None,
        }
    }

    /// The same failure, caused by `cause`.
    pub fn because(self, cause: impl Into<BoxError>) -> Self {
        match self {
            Self::Unavailable { service, what, .. } => Self::Unavailable {
                service,
                what,
                source: Some(cause.into()),
            },
            Self::Refused { service, what, .. } => Self::Refused {
                service,
                what,
                source: Some(cause.into()),
            },
            not_found @ Self::NotFound { .. } => not_found,
        }
    }

    /// Whether the same call may work later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Which service failed.
    pub fn service(&self) -> &'static str {
        match self {
            Self::Unavailable { service, .. }
            | Self::Refused { service, .. }
            | Self::NotFound { service, .. } => service,
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

/// Where job volumes come from (Prometheus, or saved responses).
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
    /// The generation the files match.
    pub generation: u64,
    /// Path -> new content.
    pub files: BTreeMap<String, String>,
    /// The PR's title.
    pub title: String,
    /// The PR's body (the run summary).
    pub body: String,
}

/// What the backup PR publisher did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackReport {
    /// The PR's number.
    pub pull_request: u64,
    /// Whether the PR was opened now (rather than updated).
    pub created: bool,
    /// The commit the branch points at.
    pub commit: String,
    /// Whether the branch moved: `false` when it already held these files on this base,
    /// so that a recompute that changes nothing pushes nothing (no rehearsals re-run).
    pub pushed: bool,
    /// GitHub API calls made.
    pub api_calls: usize,
}

/// The PR that keeps the static `cluster:` fields a true backup.
#[async_trait]
pub trait FallbackPublisher: Send + Sync {
    /// Brings the PR up to date with `change`: one commit on its branch, the PR opened if none is.
    async fn publish(&self, change: &FallbackChange) -> Result<FallbackReport, SourceError>;
}

/// Hands a recompute over to run asynchronously.
#[async_trait]
pub trait Handoff: Send + Sync {
    /// Queues `request`; returns once it is accepted, not run.
    async fn submit(&self, request: &RecomputeRequest) -> Result<(), SourceError>;
}

/// Something operators should hear about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Note {
    /// A generation was published.
    Published {
        /// Its number.
        generation: u64,
        /// Why.
        cause: crate::Cause,
        /// Assignments that changed.
        changed: usize,
        /// Demand that moved.
        moved_demand: f64,
    },
    /// An override entered a state (active, expired, revoked, rejected, failed).
    Override {
        /// Its id.
        id: String,
        /// The state it entered.
        state: crate::control::State,
        /// Who made it happen.
        actor: String,
        /// What it does, in a few words.
        what: String,
        /// The generation serving after it.
        generation: Option<u64>,
    },
    /// A recompute failed; the last good generation keeps serving.
    RecomputeFailed {
        /// Where it failed.
        stage: String,
        /// Why.
        error: String,
    },
    /// The backup PR has been pending for longer than a day.
    BackupPrPending {
        /// The generation it waits for.
        generation: String,
        /// Since when (seconds since the epoch).
        since: i64,
    },
}

/// Tells operators (a chat channel's incoming webhook). Best effort: a failure to notify
/// is logged, never fails the action it reports.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends `note`.
    async fn notify(&self, note: &Note) -> Result<(), SourceError>;
}

/// A chat command taken, to run after its request was answered (Slack waits 3 s at most).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChatRequest {
    /// The command's text (`drain build03 1h nodes failing`).
    pub text: String,
    /// Who sent it (the chat's user id): the actor.
    pub user: String,
    /// Where the answer goes.
    pub response_url: String,
    /// The request's own id (Slack's trigger id): a redelivered command plans once.
    pub key: String,
}

/// Runs chat commands after their request was answered.
#[async_trait]
pub trait ChatQueue: Send + Sync {
    /// Queues `request`; returns once it is accepted, not run.
    async fn submit(&self, request: &ChatRequest) -> Result<(), SourceError>;
}

/// Posts a chat command's answer to the URL the chat gave with it.
#[async_trait]
pub trait ChatReply: Send + Sync {
    /// Posts `text` to `response_url`.
    async fn reply(&self, response_url: &str, text: &str) -> Result<(), SourceError>;
}

/// Counts the lookup's answers (CloudWatch on AWS). Called on the request path: it must
/// not block or fail.
pub trait AnswerMetrics: Send + Sync {
    /// One answer at `now`: its source (`generation`, `override`, `ephemeral`,
    /// `not-found`), its cluster, and the generation serving.
    fn answered(&self, source: &'static str, cluster: Option<&str>, generation: u64, now: i64);
}

/// A file a pull request changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PrFile {
    /// Its path at the head.
    pub path: String,
    /// `added`, `modified`, `removed`, `renamed`, ...
    pub status: String,
    /// Its path before a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// The release repository's pull requests: what a plan of one reads and writes.
#[async_trait]
pub trait PullRequests: Send + Sync {
    /// The files pull request `number` changes, at most `max` (more: an error).
    async fn files(&self, number: u64, max: usize) -> Result<Vec<PrFile>, SourceError>;
    /// The pull request's head commit now.
    async fn head(&self, number: u64) -> Result<String, SourceError>;
    /// A file's bytes at `commit` (reachable through the base repository, forks' heads
    /// included), at most `max` bytes; `None` when it does not exist there.
    async fn contents(
        &self,
        path: &str,
        commit: &str,
        max: usize,
    ) -> Result<Option<Vec<u8>>, SourceError>;
    /// Posts `body` as the pull request's comment carrying `marker`, editing the one that
    /// carries it already: never a second.
    async fn upsert_comment(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<(), SourceError>;
    /// Sets the commit status `context` on `commit`.
    async fn set_status(
        &self,
        commit: &str,
        context: &str,
        state: &str,
        description: &str,
    ) -> Result<(), SourceError>;
}
