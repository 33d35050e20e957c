//! The recompute function: the weekly schedule, the webhook's hand-off, an operator's
//! invoke and the freshness check, over GitHub, Prometheus and the stores; its wiring and
//! its Lambda handler. `dispatcher serve` runs the same recompute with local sources.
#![warn(missing_docs)]

use std::sync::Arc;

use anyhow::{Context, Result};
use dispatcher_app::ports::Notifier;
use dispatcher_app::recompute::{Invocation, InvocationError, Outcome, parse_invocation};
use dispatcher_app::records::Markers;
use dispatcher_app::{
    DemandSource, FallbackPublisher, RecomputeError, Recomputer, RepoSource, Stores,
};
use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;
use dispatcher_github::{GitHub, Retry};
use dispatcher_prometheus::PrometheusDemand;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};

/// The release repository and the backup PR, with the token read now.
pub async fn github(cfg: &RuntimeConfig, aws: &Aws) -> Result<Arc<GitHub>> {
    let token = aws
        .optional_secret(cfg.github.token.as_ref())
        .await
        .context("Failed to read the GitHub token")?;
    Ok(Arc::new(GitHub::from_settings(
        &cfg.github,
        token,
        Retry::default(),
        cfg.release_limits,
    )?))
}

/// The Prometheus demand source, if one is configured, with its token read now.
pub async fn prometheus(cfg: &RuntimeConfig, aws: &Aws) -> Result<Option<Arc<dyn DemandSource>>> {
    let Some(p) = &cfg.prometheus else {
        return Ok(None);
    };
    let token = aws
        .optional_secret(p.token.as_ref())
        .await
        .context("Failed to read the Prometheus token")?;
    Ok(Some(Arc::new(PrometheusDemand::from_settings(p, token)?)))
}

/// The recompute use case over `stores`, reading the GitHub and Prometheus secrets now:
/// the function builds one per invocation, so that a rotated secret applies to the next
/// run without a cold start (two Secrets Manager reads, for a run of minutes).
pub async fn recomputer(cfg: &RuntimeConfig, aws: &Aws, stores: Stores) -> Result<Recomputer> {
    let gh = github(cfg, aws).await?;
    let demand = prometheus(cfg, aws)
        .await?
        .context("DISPATCHER_PROMETHEUS_URL is required by the recompute function")?;
    let mut recomputer = recomputer_over(cfg, stores, gh.clone(), demand, Some(gh));
    recomputer.notifier = notifier(cfg, aws).await?;
    Ok(recomputer)
}

/// Slack's incoming webhook, when one is configured.
pub async fn notifier(cfg: &RuntimeConfig, aws: &Aws) -> Result<Option<Arc<dyn Notifier>>> {
    let Some(url) = aws
        .optional_secret(cfg.slack.webhook.as_ref())
        .await
        .context("Failed to read the Slack webhook URL")?
    else {
        return Ok(None);
    };
    let slack =
        dispatcher_slack::Slack::new(Some(url), &cfg.slack.response_prefix, cfg.slack.timeout)?;
    Ok(Some(Arc::new(slack)))
}

/// The recompute use case over these sources, as the function and `dispatcher serve` both
/// build it: the one place that says what it takes from the configuration (the backup PR
/// only with `DISPATCHER_GITHUB_PULL_REQUESTS` and a GitHub client).
pub fn recomputer_over(
    cfg: &RuntimeConfig,
    stores: Stores,
    repo: Arc<dyn RepoSource>,
    demand: Arc<dyn DemandSource>,
    github: Option<Arc<GitHub>>,
) -> Recomputer {
    Recomputer {
        stores,
        repo,
        demand,
        fallback: github
            .clone()
            .filter(|_| cfg.github.pull_requests)
            .map(|g| g as Arc<dyn FallbackPublisher>),
        settings: cfg.engine.clone(),
        max_deleted: cfg.max_deleted,
        notifier: None,
        pull_requests: github.map(|g| g as Arc<dyn dispatcher_app::ports::PullRequests>),
    }
}

/// Why an invocation failed, typed for Lambda's error reports (retryable or not).
#[derive(Debug, thiserror::Error)]
pub enum RecomputeFailure {
    /// The event is not one the function knows.
    #[error("the invocation")]
    Invocation(#[from] InvocationError),
    /// The sources could not be set up (their secrets, most likely): may pass.
    #[error("setting up the sources: {0:#}")]
    Setup(anyhow::Error),
    /// The recompute itself failed.
    #[error(transparent)]
    Recompute(#[from] RecomputeError),
    /// A pull request's plan failed in a way a retry may fix.
    #[error(transparent)]
    PullRequest(dispatcher_app::pull_request::PrPlanError),
}

impl RecomputeFailure {
    fn is_retryable(&self) -> bool {
        match self {
            RecomputeFailure::Invocation(_) => false,
            RecomputeFailure::Setup(_) => true,
            RecomputeFailure::Recompute(e) => e.is_retryable(),
            RecomputeFailure::PullRequest(e) => e.is_retryable(),
        }
    }
}

impl From<RecomputeFailure> for Diagnostic {
    fn from(e: RecomputeFailure) -> Self {
        Diagnostic {
            error_type: if e.is_retryable() {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .to_owned(),
            error_message: dispatcher_core::chain(&e),
        }
    }
}

fn summary(o: &Outcome) -> Value {
    json!({
        "commit": o.commit,
        "mode": o.mode,
        "generation": o.published.generation,
        "unchanged": o.published.unchanged,
        "changed": o.published.changed,
        "fallback": format!("{:?}", o.fallback),
    })
}

/// The recompute function's handler: any JSON (a schedule envelope, the webhook's
/// hand-off, an operator's invoke, the scheduled freshness check).
pub async fn handle(
    recomputer: &Recomputer,
    event: LambdaEvent<Value>,
    now: i64,
) -> Result<Value, RecomputeFailure> {
    let invocation = parse_invocation(&event.payload)?;
    let function = &event.context.env_config.function_name;
    let request = match invocation {
        Invocation::Recompute(r) => r,
        Invocation::FreshnessCheck => {
            let age = recomputer.since_last_success(now).await?;
            // Before the first success nothing is put: the alarm treats missing data as
            // breaching, so a stack that never recomputed is not reported healthy.
            if let Some(seconds) = age {
                let hours = seconds as f64 / 3600.0;
                dispatcher_aws::metrics::put(
                    function,
                    now * 1000,
                    &[(dispatcher_aws::metrics::HOURS_SINCE_SUCCESS, hours, "None")],
                );
            }
            if let Err(e) = recomputer.announce_late_backup_pr(now).await {
                tracing::warn!(error = %dispatcher_core::chain(&e), "could not check for a late backup PR");
            }
            // A backup PR that failed after its generation was published is retried here,
            // every half hour, until the static fields match (F15).
            let fallback = match recomputer.retry_fallback().await {
                Ok(status) => status.map(|s| format!("{s:?}")),
                Err(e) => {
                    let error = dispatcher_core::chain(&e);
                    tracing::error!(stage = e.stage(), retryable = e.is_retryable(), error = %error, "retrying the backup PR failed; the next check tries again");
                    Some(format!("failed: {error}"))
                }
            };
            return Ok(json!({ "secondsSinceLastSuccess": age, "fallbackRetry": fallback }));
        }
    };
    if let Some(pr) = &request.pull_request {
        return plan_pull_request(recomputer, pr, now).await;
    }
    match recomputer
        .run(&request, &event.context.request_id, now)
        .await
    {
        Ok(outcome) => {
            dispatcher_aws::metrics::put(
                function,
                now * 1000,
                &[
                    (dispatcher_aws::metrics::RECOMPUTE_SUCCEEDED, 1.0, "Count"),
                    (
                        dispatcher_aws::metrics::CHANGED_ASSIGNMENTS,
                        outcome.published.changed as f64,
                        "Count",
                    ),
                    (dispatcher_aws::metrics::HOURS_SINCE_SUCCESS, 0.0, "None"),
                ],
            );
            Ok(summary(&outcome))
        }
        // Only a new push can fix bad inputs: a retry would fail the same way and end in the
        // dead-letter queue. The failure is recorded, counted and announced instead.
        Err(e) if !e.is_retryable() => {
            let error = dispatcher_core::chain(&e);
            tracing::error!(stage = e.stage(), retryable = false, error = %error, "recompute failed for good (not retried); the last good generation keeps serving");
            Markers(recomputer.stores.table.as_ref())
                .failed(e.stage(), &error, now)
                .await
                .map_err(|s| RecomputeFailure::Recompute(s.into()))?;
            dispatcher_aws::metrics::put(
                function,
                now * 1000,
                &[(dispatcher_aws::metrics::RECOMPUTE_FAILED, 1.0, "Count")],
            );
            Ok(json!({ "failed": e.stage(), "error": error, "retried": false }))
        }
        Err(e) => {
            tracing::error!(stage = e.stage(), retryable = true, error = %dispatcher_core::chain(&e), "recompute failed; Lambda retries it, the last good generation keeps serving");
            Err(e.into())
        }
    }
}

/// A pull request's plan: a permanent failure (a file too large, a refused call) ends the
/// invocation with the failure said; a transient one fails it, so that Lambda retries.
async fn plan_pull_request(
    recomputer: &Recomputer,
    pr: &dispatcher_app::pull_request::PullRequestRef,
    now: i64,
) -> Result<Value, RecomputeFailure> {
    let max =
        usize::try_from(dispatcher_formats::Limits::default().member_bytes).unwrap_or(usize::MAX);
    match recomputer.plan_pull_request(pr, max, now).await {
        Ok(outcome) => Ok(
            json!({ "pullRequest": pr.number, "head": pr.head, "outcome": format!("{outcome:?}") }),
        ),
        Err(e) if !e.is_retryable() => {
            let error = dispatcher_core::chain(&e);
            tracing::error!(pr = pr.number, error = %error, "the pull request could not be planned (not retried)");
            Ok(json!({ "pullRequest": pr.number, "failed": error, "retried": false }))
        }
        Err(e) => {
            tracing::error!(pr = pr.number, error = %dispatcher_core::chain(&e), "planning the pull request failed; Lambda retries it");
            Err(RecomputeFailure::PullRequest(e))
        }
    }
}
