#![doc = include_str!("../README.md")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dispatcher_app::ports::{
    FallbackChange, FallbackPublisher, FallbackReport, RepoSource, SourceError,
};
use dispatcher_config::GitHubSettings;
use dispatcher_formats::release::ReleaseError;
use dispatcher_formats::{Parse, ReadOptions, Release, Source};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct GitHubConfig {
    pub owner: String,
    pub repo: String,
    /// The branch the backup PR is pushed to, in the repository itself.
    pub branch: String,
    pub labels: Vec<String>,
    /// Inline file contents per tree request (GitHub limits request sizes).
    pub tree_batch_bytes: usize,
    pub retry: Retry,
    /// What a release tarball may hold.
    pub limits: dispatcher_formats::Limits,
}

impl GitHubConfig {
    pub fn new(owner: impl Into<String>, repo: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            repo: repo.into(),
            branch: "automate-prow-job-dispatcher".to_owned(),
            labels: vec![
                "rehearsals-ack".to_owned(),
                "priority/ci-critical".to_owned(),
            ],
            tree_batch_bytes: 8 * 1024 * 1024,
            retry: Retry::default(),
            limits: dispatcher_formats::Limits::default(),
        }
    }
}

/// Retries of rate-limited and failed (5xx) calls.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    /// The first wait; it doubles each time.
    pub base: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_secs(2),
        }
    }
}

pub struct GitHub {
    crab: Octocrab,
    config: GitHubConfig,
    /// API calls made, for reports and tests.
    calls: AtomicUsize,
}

/// What a failed call says about retrying.
fn classify(e: &CallError) -> (bool, String) {
    let by_status = |status: u16, message: &str| {
        let rate_limited =
            status == 429 || (status == 403 && message.to_ascii_lowercase().contains("rate limit"));
        (
            status >= 500 || rate_limited,
            format!("HTTP {status}: {message}"),
        )
    };
    match e {
        CallError::Status(status, message) => by_status(status.as_u16(), message),
        CallError::Crab(octocrab::Error::GitHub { source, .. }) => {
            by_status(source.status_code.as_u16(), &source.message)
        }
        CallError::Crab(e @ (octocrab::Error::Serde { .. } | octocrab::Error::Json { .. })) => {
            (false, e.to_string())
        }
        // Transport trouble: connection refused, reset, timeout.
        CallError::Crab(other) => (true, other.to_string()),
    }
}

/// A failed call: what octocrab reports, or an error status we read ourselves.
enum CallError {
    Crab(octocrab::Error),
    Status(http::StatusCode, String),
}

impl From<octocrab::Error> for CallError {
    fn from(e: octocrab::Error) -> Self {
        CallError::Crab(e)
    }
}

/// An HTTP error answer: its status, and GitHub's message when the body has one.
fn status_error(status: http::StatusCode, body: &str) -> CallError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    CallError::Status(status, message)
}

/// The tarball's bytes as a blocking reader over the chunks the download sends.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    current: bytes::Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        format!("the download failed: {e}"),
                    ));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[derive(Deserialize)]
struct Repository {
    default_branch: String,
}

impl GitHub {
    pub fn new(crab: Octocrab, config: GitHubConfig) -> Self {
        Self {
            crab,
            config,
            calls: AtomicUsize::new(0),
        }
    }

    /// The adapter the configuration describes, with `token` (read from its secret) and
    /// `retry`: the webhook retries little, to fit its deadline.
    pub fn from_settings(
        settings: &GitHubSettings,
        token: Option<String>,
        retry: Retry,
        limits: dispatcher_formats::Limits,
    ) -> Result<Self, SourceError> {
        let crab = Self::client(token, settings.api.as_deref(), settings.timeout)?;
        let (owner, repo) = settings.owner_and_name();
        let config = GitHubConfig {
            branch: settings.branch.clone(),
            labels: settings.labels.clone(),
            retry,
            limits,
            ..GitHubConfig::new(owner, repo)
        };
        Ok(Self::new(crab, config))
    }

    /// An octocrab client for `token` against `base` (the public API when `None`).
    pub fn client(
        token: Option<String>,
        base: Option<&str>,
        timeout: Duration,
    ) -> Result<Octocrab, SourceError> {
        let mut b = Octocrab::builder()
            .set_connect_timeout(Some(timeout))
            .set_read_timeout(Some(timeout));
        if let Some(base) = base {
            b = b
                .base_uri(base)
                .map_err(|e| SourceError::permanent("github", format!("base URL {base}: {e}")))?;
        }
        if let Some(t) = token {
            b = b.personal_token(t);
        }
        b.build()
            .map_err(|e| SourceError::permanent("github", format!("client: {e}")))
    }

    fn route(&self, tail: &str) -> String {
        format!("/repos/{}/{}/{tail}", self.config.owner, self.config.repo)
    }

    /// Runs `call` with retries on rate limits and 5xx.
    async fn with_retry<T, E, F, Fut>(&self, what: &str, mut call: F) -> Result<T, SourceError>
    where
        E: Into<CallError>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut wait = self.config.retry.base;
        let mut attempt = 1;
        loop {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let (retryable, message) = classify(&e.into());
                    if !retryable || attempt >= self.config.retry.attempts {
                        return Err(SourceError {
                            service: "github",
                            retryable,
                            message: format!("{what}: {message}"),
                        });
                    }
                    tracing::warn!(call = what, attempt, error = %message, "GitHub call failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }

    async fn get(&self, what: &str, route: String) -> Result<Value, SourceError> {
        self.with_retry(what, || self.crab.get::<Value, _, ()>(route.clone(), None))
            .await
    }

    async fn post(&self, what: &str, route: String, body: Value) -> Result<Value, SourceError> {
        self.with_retry(what, || {
            self.crab.post::<_, Value>(route.clone(), Some(&body))
        })
        .await
    }

    async fn patch(&self, what: &str, route: String, body: Value) -> Result<Value, SourceError> {
        self.with_retry(what, || {
            self.crab.patch::<Value, _, _>(route.clone(), Some(&body))
        })
        .await
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    async fn default_branch(&self) -> Result<String, SourceError> {
        let repo: Repository = serde_json::from_value(
            self.get(
                "get repository",
                self.route("").trim_end_matches('/').to_owned(),
            )
            .await?,
        )
        .map_err(|e| SourceError::permanent("github", format!("repository: {e}")))?;
        Ok(repo.default_branch)
    }

    fn sha(v: &Value, pointer: &str, what: &str) -> Result<String, SourceError> {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                SourceError::permanent("github", format!("{what}: no {pointer} in the answer"))
            })
    }
}

#[async_trait]
impl RepoSource for GitHub {
    async fn head(&self) -> Result<String, SourceError> {
        let branch = self.default_branch().await?;
        let r = self
            .get(
                "get branch head",
                self.route(&format!("git/ref/heads/{branch}")),
            )
            .await?;
        Self::sha(&r, "/object/sha", "branch head")
    }

    async fn release(&self, commit: &str) -> Result<Release, SourceError> {
        let route = self.route(&format!("tarball/{commit}"));
        // Retried until GitHub answers with a status; the body is then streamed into the
        // reader, which parses it as it arrives (the archive is never held whole).
        let response = self
            .with_retry("download tarball", || async {
                let response = self
                    .crab
                    ._get(route.as_str())
                    .await
                    .map_err(CallError::Crab)?;
                let status = response.status();
                if status.is_success() {
                    return Ok(response);
                }
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_default();
                Err(status_error(status, &body))
            })
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, String>>(16);
        let mut body = response.into_body();
        let download = tokio::spawn(async move {
            let mut total = 0usize;
            while let Some(frame) = body.frame().await {
                let chunk = match frame {
                    Ok(f) => match f.into_data() {
                        Ok(d) => Ok(d),
                        Err(_) => continue,
                    },
                    Err(e) => Err(e.to_string()),
                };
                let failed = chunk.is_err();
                total += chunk.as_ref().map_or(0, bytes::Bytes::len);
                // The reader stopped (it failed, or needs no more): so do we.
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
            total
        });
        let opts = ReadOptions {
            parse: Parse::Fast,
            keep_text: true,
            limits: self.config.limits,
        };
        let reader = Box::new(ChunkReader {
            rx,
            current: bytes::Bytes::new(),
        });
        let read = tokio::task::spawn_blocking(move || {
            dispatcher_formats::release::read(Source::Stream(reader), opts, &|| {})
        })
        .await
        .map_err(|e| SourceError::permanent("release", e.to_string()))?;
        let total = download.await.unwrap_or(0);
        tracing::info!(commit, bytes = total, "release tarball streamed");
        // A download cut short (an incomplete archive, a broken stream) is retryable: the
        // next attempt downloads it again. A member the release must not hold is not.
        read.map_err(|e| {
            let message = format!("release tarball: {}", dispatcher_core::chain(&e));
            match e {
                ReleaseError::Io { .. } | ReleaseError::Incomplete { .. } => {
                    SourceError::retryable("github", message)
                }
                ReleaseError::Member { .. } | ReleaseError::NoJobs(_) => {
                    SourceError::permanent("github", message)
                }
            }
        })
    }

    async fn blob_sha(&self, commit: &str, path: &str) -> Result<Option<String>, SourceError> {
        let route = self.route(&format!("contents/{path}?ref={commit}"));
        match self.get("get file", route).await {
            Ok(v) => Ok(v.get("sha").and_then(Value::as_str).map(str::to_owned)),
            Err(e) if e.message.contains("HTTP 404") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl FallbackPublisher for GitHub {
    async fn publish(&self, change: &FallbackChange) -> Result<FallbackReport, SourceError> {
        let start = self.calls();
        let base_branch = self.default_branch().await?;
        let base = self
            .get(
                "get base commit",
                self.route(&format!("git/commits/{}", change.base_commit)),
            )
            .await?;
        let mut tree = Self::sha(&base, "/tree/sha", "base commit")?;

        // Inline contents in trees of bounded size, each on top of the last: a handful of
        // calls for thousands of files, and no call per blob.
        let mut batch: Vec<Value> = Vec::new();
        let mut size = 0;
        let files: Vec<(&String, &String)> = change.files.iter().collect();
        for (i, (path, content)) in files.iter().enumerate() {
            size += content.len();
            batch.push(json!({"path": path, "mode": "100644", "type": "blob", "content": content}));
            if size >= self.config.tree_batch_bytes || i + 1 == files.len() {
                let t = self
                    .post(
                        "create tree",
                        self.route("git/trees"),
                        json!({"base_tree": tree, "tree": batch}),
                    )
                    .await?;
                tree = Self::sha(&t, "/sha", "tree")?;
                batch = Vec::new();
                size = 0;
            }
        }
        let branch = &self.config.branch;
        // The branch already holding this tree on this base: nothing to push. Every push
        // re-runs the PR's rehearsals, and most delta recomputes change no file.
        let current = match self
            .get(
                "get backup branch",
                self.route(&format!("git/ref/heads/{branch}")),
            )
            .await
        {
            Ok(r) => Some(Self::sha(&r, "/object/sha", "backup branch")?),
            Err(e) if e.message.contains("HTTP 404") => None,
            Err(e) => return Err(e),
        };
        let unchanged = match &current {
            Some(head) => {
                let c = self
                    .get(
                        "get backup commit",
                        self.route(&format!("git/commits/{head}")),
                    )
                    .await?;
                c.pointer("/tree/sha").and_then(Value::as_str) == Some(tree.as_str())
                    && c.pointer("/parents/0/sha").and_then(Value::as_str)
                        == Some(change.base_commit.as_str())
            }
            None => false,
        };
        let commit = match (&current, unchanged) {
            (Some(head), true) => head.clone(),
            _ => {
                let message = format!("{}\n\n{}", change.title, change.body);
                let commit = self
                    .post(
                        "create commit",
                        self.route("git/commits"),
                        json!({"message": message, "tree": tree, "parents": [change.base_commit]}),
                    )
                    .await?;
                let commit = Self::sha(&commit, "/sha", "commit")?;
                if current.is_some() {
                    self.patch(
                        "update branch",
                        self.route(&format!("git/refs/heads/{branch}")),
                        json!({"sha": commit, "force": true}),
                    )
                    .await?;
                } else {
                    self.post(
                        "create branch",
                        self.route("git/refs"),
                        json!({"ref": format!("refs/heads/{branch}"), "sha": commit}),
                    )
                    .await?;
                }
                commit
            }
        };

        let open = self
            .get(
                "find pull request",
                self.route(&format!(
                    "pulls?state=open&head={}:{branch}",
                    self.config.owner
                )),
            )
            .await?;
        let existing = open
            .as_array()
            .and_then(|a| a.first())
            .and_then(|p| p.get("number"))
            .and_then(Value::as_u64);
        let (number, created) = match existing {
            Some(n) => {
                self.patch(
                    "update pull request",
                    self.route(&format!("pulls/{n}")),
                    json!({"title": change.title, "body": change.body}),
                )
                .await?;
                (n, false)
            }
            None => {
                let pr = self
                    .post(
                        "create pull request",
                        self.route("pulls"),
                        json!({"title": change.title, "head": branch, "base": base_branch, "body": change.body, "maintainer_can_modify": true}),
                    )
                    .await?;
                let n = pr.get("number").and_then(Value::as_u64).ok_or_else(|| {
                    SourceError::permanent("github", "create pull request: no number")
                })?;
                (n, true)
            }
        };
        if !self.config.labels.is_empty() {
            self.post(
                "add labels",
                self.route(&format!("issues/{number}/labels")),
                json!({"labels": self.config.labels}),
            )
            .await?;
        }
        let report = FallbackReport {
            pull_request: number,
            created,
            commit,
            pushed: !unchanged,
            api_calls: self.calls() - start,
        };
        tracing::info!(
            pull_request = number,
            created,
            pushed = !unchanged,
            files = change.files.len(),
            api_calls = report.api_calls,
            "backup PR updated"
        );
        Ok(report)
    }
}
