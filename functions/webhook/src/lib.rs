//! The webhook function: GitHub's deliveries on the release repository, verified,
//! deduplicated, decided and handed to recompute; its wiring. `main` serves it behind API
//! Gateway; `dispatcher serve` serves the same router locally.
#![warn(missing_docs)]

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use dispatcher_api::{WebhookState, webhook_router};
use dispatcher_app::ports::PullRequests;
use dispatcher_app::{Handoff, RepoSource, Stores};
use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;
use dispatcher_github::{GitHub, Retry};

/// The release repository as the webhook reads it: one quick retry at most, since its one
/// call (the inventory's blob) must fit in the webhook's deadline, and a push whose
/// inventory cannot be checked is recomputed in full rather than dropped.
pub async fn source(cfg: &RuntimeConfig, aws: &Aws) -> Result<Arc<GitHub>> {
    let token = aws
        .optional_secret(cfg.github.token.as_ref())
        .await
        .context("Failed to read the GitHub token")?;
    let retry = Retry {
        attempts: 2,
        base: std::time::Duration::from_millis(250),
    };
    Ok(Arc::new(GitHub::from_settings(
        &cfg.github,
        token,
        retry,
        cfg.release_limits,
    )?))
}

/// The webhook's router, with the secret read once (a cold start).
pub async fn router(
    cfg: &RuntimeConfig,
    aws: &Aws,
    stores: &Stores,
    source: Arc<dyn RepoSource>,
    handoff: Arc<dyn Handoff>,
    prs: Option<Arc<dyn PullRequests>>,
) -> Result<Router> {
    let secret = cfg.webhook_secret.as_ref().context(
        "DISPATCHER_WEBHOOK_SECRET_ARN (or DISPATCHER_WEBHOOK_SECRET locally) is required",
    )?;
    let secret = aws
        .secret(secret)
        .await
        .context("Failed to read the webhook secret")?;
    // An empty key would make every signature computable by anyone.
    anyhow::ensure!(!secret.is_empty(), "the webhook secret is empty");
    // Used byte for byte, as GitHub signs with it; white space around it is probably a
    // copy-and-paste accident, so it is said, not silently cut (the deliveries would then
    // only verify with the value as stored).
    if secret.trim() != secret {
        tracing::warn!(
            "the webhook secret begins or ends with white space; it is used as stored, byte for byte"
        );
    }
    Ok(webhook_router(Arc::new(WebhookState {
        secret: secret.into_bytes(),
        repo: cfg.github.repo.clone(),
        source,
        table: stores.table.clone(),
        handoff,
        prs,
        now: dispatcher_api::now,
        deadline: dispatcher_api::webhook::DEADLINE,
    })))
}
