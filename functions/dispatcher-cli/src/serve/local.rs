//! The local server: the Lambdas' routers over the configured store (the embedded one by
//! default), a recompute worker in process, the manual trigger and the control API (both
//! behind the same bearer token). GitHub and Prometheus
//! when they are configured, the release and volume files otherwise.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use dispatcher_api::{
    ControlAuth, ControlState, SlackState, TriggerState, control_router, slack_router,
    trigger_router,
};
use dispatcher_app::control::Control;
use dispatcher_app::local::{FileDemand, LocalChatQueue, LocalHandoff, LocalRepo};
use dispatcher_app::{DemandSource, Handoff, Recomputer, RepoSource, Stores};
use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;
use dispatcher_formats::InputPaths;

/// What `serve` runs.
pub struct LocalServer {
    /// The lookup, the manual trigger and (with a secret) the webhook.
    pub router: Router,
    /// The recompute worker's queue.
    pub handoff: LocalHandoff,
    /// The recompute use case the worker runs.
    pub recomputer: Arc<Recomputer>,
    /// The store everything reads and writes.
    pub stores: Stores,
    /// The incident controls (their sweep runs beside the server).
    pub control: Control,
    /// The manual trigger's bearer token.
    pub token: String,
    /// Whether the webhook is served.
    pub webhook: bool,
}

/// `POST /slack/commands` when a signing secret and a channel are configured.
async fn chat_router(
    cfg: &RuntimeConfig,
    aws: &Aws,
    control: &Control,
    slack: Arc<dispatcher_slack::Slack>,
) -> Result<Option<Router>> {
    let (Some(secret), Some(channel)) = (&cfg.slack.signing_secret, &cfg.slack.channel) else {
        return Ok(None);
    };
    let secret = aws
        .secret(secret)
        .await
        .context("Failed to read the Slack signing secret")?;
    anyhow::ensure!(!secret.is_empty(), "the Slack signing secret is empty");
    let queue = LocalChatQueue::new(control.clone(), slack, dispatcher_api::now);
    Ok(Some(slack_router(Arc::new(SlackState {
        signing_secret: secret.into_bytes(),
        channel: channel.clone(),
        queue: Arc::new(queue),
        now: dispatcher_api::now,
    }))))
}

impl LocalServer {
    /// The server over the configured store and sources: GitHub and Prometheus when they
    /// are configured, otherwise the release and volume files of `inputs`.
    pub async fn build(cfg: &RuntimeConfig, inputs: &InputPaths, token: String) -> Result<Self> {
        let aws = Aws::default();
        let stores = crate::store::open_with(&cfg.store, &aws).await?;
        // GitHub when it is configured (an API URL or a token), the files otherwise.
        let gh = if cfg.github.api.is_some() || cfg.github.token.is_some() {
            Some(recompute::github(cfg, &aws).await?)
        } else {
            None
        };
        let repo: Arc<dyn RepoSource> = match &gh {
            Some(g) => g.clone(),
            None => Arc::new(LocalRepo {
                path: inputs.release.clone(),
                clusters: inputs.clusters.clone(),
                limits: cfg.release_limits,
            }),
        };
        let demand: Arc<dyn DemandSource> = match recompute::prometheus(cfg, &aws).await? {
            Some(p) => p,
            None => Arc::new(FileDemand {
                runs: inputs
                    .volumes
                    .clone()
                    .context("--volumes is required without DISPATCHER_PROMETHEUS_URL")?,
                durations: inputs.durations.clone(),
                cpu: inputs.cpu.clone(),
                memory: inputs.memory.clone(),
            }),
        };
        let webhook_url = aws.optional_secret(cfg.slack.webhook.as_ref()).await?;
        let slack = Arc::new(dispatcher_slack::Slack::new(
            webhook_url,
            &cfg.slack.response_prefix,
            cfg.slack.timeout,
        )?);
        let mut recomputer =
            recompute::recomputer_over(cfg, stores.clone(), repo.clone(), demand, gh.clone());
        recomputer.notifier = Some(slack.clone());
        let recomputer = Arc::new(recomputer);
        let handoff = LocalHandoff::start(recomputer.clone(), dispatcher_api::now);
        let shared: Arc<dyn Handoff> = Arc::new(handoff.clone());
        let mut router =
            lookup::router(cfg, stores.clone()).merge(trigger_router(Arc::new(TriggerState {
                token: token.clone(),
                handoff: shared.clone(),
            })));
        let control = Control {
            stores: stores.clone(),
            settings: cfg.engine.clone(),
            limits: cfg.controls.clone(),
            notifier: Some(slack.clone()),
        };
        router = router.merge(control_router(Arc::new(ControlState {
            control: control.clone(),
            auth: ControlAuth::Bearer(token.clone()),
            now: dispatcher_api::now,
        })));
        if let Some(chat) = chat_router(cfg, &aws, &control, slack).await? {
            router = router.merge(chat);
        }
        let webhook = cfg.webhook_secret.is_some();
        if webhook {
            let prs = gh.map(|g| g as Arc<dyn dispatcher_app::ports::PullRequests>);
            router = router.merge(webhook::router(cfg, &aws, &stores, repo, shared, prs).await?);
        }
        Ok(Self {
            router,
            handoff,
            recomputer,
            stores,
            control,
            token,
            webhook,
        })
    }
}
