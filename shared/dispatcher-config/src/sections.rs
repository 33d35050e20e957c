//! The sections of the configuration: what each adapter and use case is given.

use std::time::Duration;

use crate::env::Secret;

/// The release repository on GitHub, and the backup PR.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// `owner/name` of the release repository.
    pub repo: String,
    /// API base URL; the public API when unset.
    pub api: Option<String>,
    /// The token (contents and pull requests, read and write).
    pub token: Option<Secret>,
    /// Per request.
    pub timeout: Duration,
    /// Open and update the backup PR.
    pub pull_requests: bool,
    /// The backup PR's branch.
    pub branch: String,
    /// The backup PR's labels.
    pub labels: Vec<String>,
}

impl GitHubSettings {
    /// The repository's owner and name.
    pub fn owner_and_name(&self) -> (String, String) {
        match self.repo.split_once('/') {
            Some((o, n)) => (o.to_owned(), n.to_owned()),
            None => (self.repo.clone(), String::new()),
        }
    }
}

/// Where the job volumes come from.
#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    /// Prometheus or Thanos querier base URL.
    pub url: String,
    /// A bearer token, or the basic-auth password of `user`.
    pub token: Option<Secret>,
    /// Basic authentication: this user, the token secret as password.
    pub user: Option<String>,
    /// Per query.
    pub timeout: Duration,
    /// The range of the run-count query (`7d`).
    pub window: String,
    /// How far before now the window ends.
    pub offset: Duration,
    /// PromQL for job seconds per job (job-hours demand), optional.
    pub durations_query: Option<String>,
    /// PromQL for CPU seconds per job (HEAD's CPU-hours demand), optional.
    pub cpu_query: Option<String>,
    /// PromQL for memory byte-seconds per job (HEAD's GiB-hours demand), optional.
    pub memory_query: Option<String>,
    /// PromQL for run counts per job, replacing the dispatcher's own, optional.
    pub runs_query: Option<String>,
}

/// The limits of `dispatcher serve`'s own listener (the Lambdas sit behind API Gateway,
/// which has its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// From a connection's accept, or from the first byte of a later request, until its
    /// request head is complete.
    pub header_timeout: Duration,
    /// From a request's head until its answer: the body, however slowly it comes, and the
    /// handler.
    pub request_timeout: Duration,
    /// A kept-alive connection waiting for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// The chat: Slack's slash command and the notifications channel.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// The app's signing secret (`/slack/commands` is served only with one).
    pub signing_secret: Option<Secret>,
    /// The one channel id commands are taken from.
    pub channel: Option<String>,
    /// The incoming webhook notifications go to (a secret URL).
    pub webhook: Option<Secret>,
    /// The prefix every command's response URL must have.
    pub response_prefix: String,
    /// Per post.
    pub timeout: Duration,
}
