#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod pr_plan;
mod pull_request;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dispatcher_app::ports::{RepoSource, SourceError};
use dispatcher_config::GitHubSettings;
use dispatcher_formats::release::ReleaseError;
use dispatcher_formats::{Parse, ReadOptions, Release, Source};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::Value;

/// The release repository and how the adapter treats it.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// The repository's owner (user or organisation).
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// The branch the backup PR is pushed to, in the repository itself.
    pub branch: String,
    /// Labels added to the backup PR.
    pub labels: Vec<String>,
    /// Inline file contents per tree request (GitHub limits request sizes).
    pub tree_batch_bytes: usize,
    /// How failed calls are retried.
    pub retry: Retry,
    /// What a release tarball may hold.
    pub limits: dispatcher_formats::Limits,
    /// The most API calls one client makes in an hour (the window of GitHub's own quota):
    /// beyond it every call is refused until the hour is over, so that a loop cannot spend
    /// the token's quota. Per hour, not per client's life: the webhook keeps one client for
    /// as long as its instance lives.
    pub max_calls: usize,
}

impl GitHubConfig {
    /// The repository `owner/repo` with the dispatcher's branch and labels, and the
    /// default limits and retries.
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
            max_calls: MAX_CALLS,
        }
    }
}

/// The default cap on one client's API calls an hour: a recompute makes a few dozen, a pull
/// request's plan at most one per changed file; GitHub's quota is 5,000.
pub const MAX_CALLS: usize = 1000;
/// The longest wait GitHub may ask for (`Retry-After`, `x-ratelimit-reset`) that a call
/// sits out; a longer one fails the call as retryable at once, rather than holding a
/// function for up to an hour.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(60);

/// Retries of rate-limited and failed (5xx) calls.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all, the first included: 1 never retries.
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

/// The release repository on GitHub: the source of releases and blob SHAs, and the
/// publisher of the backup PR.
pub struct GitHub {
    crab: Octocrab,
    config: GitHubConfig,
    /// API calls made, for reports and tests.
    calls: AtomicUsize,
    /// The calls the current hour still allows.
    budget: Budget,
}

/// How long a call budget lasts: GitHub's own quota is per hour.
const BUDGET_WINDOW: Duration = Duration::from_secs(3600);

/// At most `max` calls per [`BUDGET_WINDOW`], counted from the window's first call.
#[derive(Debug)]
struct Budget {
    max: usize,
    /// When the current window opened, and the calls spent in it.
    window: Mutex<(Instant, usize)>,
}

impl Budget {
    fn new(max: usize) -> Self {
        Self {
            max,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Spends one call at `now`; false when the window's calls are spent.
    fn spend(&self, now: Instant) -> bool {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if now.duration_since(w.0) >= BUDGET_WINDOW {
            *w = (now, 0);
        }
        if w.1 >= self.max {
            return false;
        }
        w.1 += 1;
        true
    }
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
        CallError::Status {
            status, message, ..
        } => by_status(status.as_u16(), message),
        CallError::Crab(octocrab::Error::GitHub { source, .. }) => {
            by_status(source.status_code.as_u16(), &source.message)
        }
        CallError::Crab(e @ (octocrab::Error::Serde { .. } | octocrab::Error::Json { .. })) => {
            (false, e.to_string())
        }
        CallError::Decode(message) => (false, format!("an answer that is not JSON: {message}")),
        CallError::TooLarge(max) => (false, format!("a file over the {max} bytes one may have")),
        // Transport trouble: connection refused, reset, timeout.
        CallError::Crab(other) => (true, other.to_string()),
    }
}

/// A failed call: what octocrab reports, or an error status we read ourselves.
enum CallError {
    Crab(octocrab::Error),
    Status {
        status: http::StatusCode,
        message: String,
        /// How long GitHub asked us to wait before trying again.
        wait: Option<Duration>,
    },
    Decode(String),
    /// A body over this many bytes.
    TooLarge(usize),
}

impl CallError {
    /// The HTTP status GitHub answered with, if it answered.
    fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(status.as_u16()),
            CallError::Crab(octocrab::Error::GitHub { source, .. }) => {
                Some(source.status_code.as_u16())
            }
            CallError::Crab(_) | CallError::Decode(_) | CallError::TooLarge(_) => None,
        }
    }

    /// The wait GitHub asked for, if any.
    fn wait(&self) -> Option<Duration> {
        match self {
            CallError::Status { wait, .. } => *wait,
            _ => None,
        }
    }
}

/// The wait an answer asks for: `Retry-After` (seconds), or on a 403 or 429 with no
/// requests left, until `x-ratelimit-reset` (Unix seconds; the adapter reads the clock
/// here, as the edge it is).
fn server_wait(headers: &http::HeaderMap, status: http::StatusCode) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    let limited =
        matches!(status.as_u16(), 403 | 429) && header("x-ratelimit-remaining") == Some("0");
    let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    limited.then(|| Duration::from_secs(reset.saturating_sub(now) + 1))
}

/// `backoff` with equal jitter: half of it, plus a random part of the other half, so that
/// clients that failed together do not retry together.
fn jittered(backoff: Duration) -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    let half = backoff / 2;
    let millis = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_millis(random % millis)
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
    CallError::Status {
        status,
        message,
        wait: None,
    }
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

/// The one field of the repository the adapter reads.
#[derive(Deserialize)]
struct Repository {
    default_branch: String,
}

impl GitHub {
    /// The adapter over a client already built (tests point one at a mock server).
    pub fn new(crab: Octocrab, config: GitHubConfig) -> Self {
        Self {
            crab,
            budget: Budget::new(config.max_calls),
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
            b = b.base_uri(base).map_err(|e| {
                SourceError::permanent("github", format!("base URL {base}")).because(e)
            })?;
        }
        if let Some(t) = token {
            b = b.personal_token(t);
        }
        b.build()
            .map_err(|e| SourceError::permanent("github", "client").because(e))
    }

    /// The API path of `tail` in the configured repository.
    fn route(&self, tail: &str) -> String {
        format!("/repos/{}/{}/{tail}", self.config.owner, self.config.repo)
    }

    /// Runs `call` with retries on rate limits, 5xx and transport failures: after the wait
    /// GitHub asks for (`Retry-After`, `x-ratelimit-reset`) when it asks, else an
    /// exponential backoff with jitter; never beyond the client's call cap.
    async fn with_retry<T, E, F, Fut>(&self, what: &str, mut call: F) -> Result<T, SourceError>
    where
        E: Into<CallError>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = self.config.retry.base;
        let mut attempt = 1;
        loop {
            if !self.budget.spend(Instant::now()) {
                return Err(SourceError::permanent(
                    "github",
                    format!(
                        "{what}: this client's budget of {} API calls an hour is spent",
                        self.config.max_calls
                    ),
                ));
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let e = match call().await {
                Ok(v) => return Ok(v),
                Err(e) => e.into(),
            };
            if e.status() == Some(404) {
                return Err(SourceError::NotFound {
                    service: "github",
                    what: what.to_owned(),
                });
            }
            let (retryable, message) = classify(&e);
            if !retryable || attempt >= self.config.retry.attempts {
                return Err(if retryable {
                    SourceError::retryable("github", format!("{what}: {message}"))
                } else {
                    SourceError::permanent("github", format!("{what}: {message}"))
                });
            }
            let wait = match e.wait() {
                Some(w) if w > MAX_SERVER_WAIT => {
                    return Err(SourceError::retryable(
                        "github",
                        format!(
                            "{what}: {message}; GitHub asks to wait {}s, longer than a call waits",
                            w.as_secs()
                        ),
                    ));
                }
                Some(w) => w,
                None => jittered(backoff),
            };
            tracing::warn!(call = what, attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), error = %message, "GitHub call failed; retrying");
            tokio::time::sleep(wait).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    /// One call of `method` on `route` with a JSON `body`: the answer as JSON, or the
    /// error with the wait GitHub asked for.
    async fn json_call(
        &self,
        method: &http::Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let response = match *method {
            http::Method::POST => self.crab._post(route, body).await,
            http::Method::PATCH => self.crab._patch(route, body).await,
            _ => self.crab._get(route).await,
        }
        .map_err(CallError::Crab)?;
        let status = response.status();
        let wait = server_wait(response.headers(), status);
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(CallError::Crab)?
            .to_bytes();
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| CallError::Decode(e.to_string()));
        }
        let mut error = status_error(status, &String::from_utf8_lossy(&bytes));
        if let CallError::Status { wait: slot, .. } = &mut error {
            *slot = wait;
        }
        Err(error)
    }

    /// A GET of `route`, retried, as JSON.
    async fn get(&self, what: &str, route: String) -> Result<Value, SourceError> {
        self.with_retry(what, || self.json_call(&http::Method::GET, &route, None))
            .await
    }

    /// A POST of `body` to `route`, retried, as JSON.
    async fn post(&self, what: &str, route: String, body: Value) -> Result<Value, SourceError> {
        self.with_retry(what, || {
            self.json_call(&http::Method::POST, &route, Some(&body))
        })
        .await
    }

    /// A PATCH of `body` to `route`, retried, as JSON.
    async fn patch(&self, what: &str, route: String, body: Value) -> Result<Value, SourceError> {
        self.with_retry(what, || {
            self.json_call(&http::Method::PATCH, &route, Some(&body))
        })
        .await
    }

    /// API calls made so far, retries included.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// The repository's default branch: the one `head` reads, and the backup PR's base.
    async fn default_branch(&self) -> Result<String, SourceError> {
        let repo: Repository = serde_json::from_value(
            self.get(
                "get repository",
                self.route("").trim_end_matches('/').to_owned(),
            )
            .await?,
        )
        .map_err(|e| SourceError::permanent("github", "repository").because(e))?;
        Ok(repo.default_branch)
    }

    /// The string at `pointer` in an answer (a SHA); an answer without it is refused.
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
                let wait = server_wait(response.headers(), status);
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_default();
                let mut error = status_error(status, &body);
                if let CallError::Status { wait: slot, .. } = &mut error {
                    *slot = wait;
                }
                Err(error)
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
        .map_err(|e| SourceError::permanent("release", "the reader stopped").because(e))?;
        let total = download.await.unwrap_or(0);
        tracing::info!(commit, bytes = total, "release tarball streamed");
        // A download cut short (an incomplete archive, a broken stream) is retryable: the
        // next attempt downloads it again. A member the release must not hold is not.
        read.map_err(|e| {
            let failure = match e {
                ReleaseError::Io { .. } | ReleaseError::Incomplete { .. } => {
                    SourceError::retryable("github", "release tarball")
                }
                ReleaseError::Member { .. } | ReleaseError::NoJobs(_) => {
                    SourceError::permanent("github", "release tarball")
                }
            };
            failure.because(e)
        })
    }

    async fn blob_sha(&self, commit: &str, path: &str) -> Result<Option<String>, SourceError> {
        let route = self.route(&format!("contents/{path}?ref={commit}"));
        match self.get("get file", route).await {
            Ok(v) => Ok(v.get("sha").and_then(Value::as_str).map(str::to_owned)),
            Err(SourceError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use super::{BUDGET_WINDOW, Budget};
    use std::time::{Duration, Instant};

    #[test]
    fn a_budget_refuses_beyond_its_calls_and_opens_again_after_the_hour() {
        let b = Budget::new(2);
        let t0 = Instant::now();
        assert!(b.spend(t0) && b.spend(t0 + Duration::from_secs(1)));
        assert!(!b.spend(t0 + BUDGET_WINDOW - Duration::from_secs(1)));
        assert!(b.spend(t0 + BUDGET_WINDOW));
        assert!(b.spend(t0 + BUDGET_WINDOW) && !b.spend(t0 + BUDGET_WINDOW));
    }
}
