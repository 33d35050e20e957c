//! The control function: the control API under `/control/v1/` (API Gateway's `AWS_IAM`
//! authoriser verifies the caller; the actor is the caller's IAM principal), Slack's
//! `/dispatch` (answered at once; the function invokes itself with the command), and the
//! sweep that ends overrides (a schedule, every minute). `dispatcher serve` serves the same
//! routers locally behind a bearer token.
#![warn(missing_docs)]

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use dispatcher_api::{ControlAuth, ControlState, SlackState, control_router, slack_router};
use dispatcher_app::Stores;
use dispatcher_app::control::{Control, State, chat};
use dispatcher_app::ports::{ChatQueue, ChatRequest};
use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;
use dispatcher_slack::Slack;
use serde_json::{Value, json};

/// Everything an invocation needs, built at cold start.
pub struct Wiring {
    /// The use case.
    pub control: Control,
    /// The control API and, when configured, the Slack route.
    pub router: Router,
    /// Where chat answers go.
    pub slack: Arc<Slack>,
}

/// The wiring over `stores`; `queue` takes chat commands (the function itself, on AWS).
pub async fn wiring(
    cfg: &RuntimeConfig,
    aws: &Aws,
    stores: Stores,
    queue: Arc<dyn ChatQueue>,
) -> Result<Wiring> {
    let webhook = aws
        .optional_secret(cfg.slack.webhook.as_ref())
        .await
        .context("Failed to read the Slack webhook URL")?;
    let slack = Arc::new(Slack::new(
        webhook,
        &cfg.slack.response_prefix,
        cfg.slack.timeout,
    )?);
    let control = Control {
        stores,
        settings: cfg.engine.clone(),
        limits: cfg.controls.clone(),
        notifier: Some(slack.clone()),
    };
    let mut router = control_router(Arc::new(ControlState {
        control: control.clone(),
        auth: ControlAuth::Iam,
        now: dispatcher_api::now,
    }));
    if let (Some(secret), Some(channel)) = (&cfg.slack.signing_secret, &cfg.slack.channel) {
        let secret = aws
            .secret(secret)
            .await
            .context("Failed to read the Slack signing secret")?;
        anyhow::ensure!(!secret.is_empty(), "the Slack signing secret is empty");
        router = router.merge(slack_router(Arc::new(SlackState {
            signing_secret: secret.into_bytes(),
            channel: channel.clone(),
            queue,
            now: dispatcher_api::now,
        })));
    }
    Ok(Wiring {
        control,
        router,
        slack,
    })
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlFailure {
    /// The sweep could not end what it should; the next minute's sweep tries again.
    #[error("the sweep failed")]
    Sweep(#[source] dispatcher_app::control::ControlError),
    /// An event that is neither an HTTP request nor one of ours.
    #[error("not an event the control function takes")]
    Event(#[source] serde_json::Error),
    /// The HTTP request could not be answered.
    #[error("the request: {0}")]
    Http(String),
}

/// One invocation: `{"action": "sweep"}` (the schedule), `{"action": "chat", "request"}`
/// (a queued chat command), or an API Gateway request.
pub async fn handle(
    w: &Wiring,
    function: &str,
    event: Value,
    now: i64,
) -> Result<Value, ControlFailure> {
    match event.get("action").and_then(Value::as_str) {
        Some("sweep") => sweep(w, function, now).await,
        Some("chat") => {
            let request: ChatRequest =
                serde_json::from_value(event["request"].clone()).map_err(ControlFailure::Event)?;
            chat::answer(&w.control, w.slack.as_ref(), &request, now).await;
            Ok(json!({"answered": request.key}))
        }
        _ => dispatcher_api::lambda::answer_event(w.router.clone(), event)
            .await
            .map_err(|e| ControlFailure::Http(e.to_string())),
    }
}

async fn sweep(w: &Wiring, function: &str, now: i64) -> Result<Value, ControlFailure> {
    let report = w.control.sweep(now).await.map_err(ControlFailure::Sweep)?;
    let overrides = w.control.list().await.map_err(ControlFailure::Sweep)?;
    let count = |s: State| overrides.iter().filter(|o| o.state == s).count() as f64;
    dispatcher_aws::metrics::put(
        function,
        now * 1000,
        &[
            (dispatcher_aws::metrics::SWEEP_RAN, 1.0, "Count"),
            (
                dispatcher_aws::metrics::OVERRIDES_ACTIVE,
                count(State::Active),
                "Count",
            ),
            (
                dispatcher_aws::metrics::OVERRIDES_PENDING,
                count(State::Pending),
                "Count",
            ),
            (
                dispatcher_aws::metrics::OVERRIDES_FAILED,
                count(State::Failed),
                "Count",
            ),
        ],
    );
    Ok(serde_json::to_value(report).unwrap_or_default())
}

impl From<ControlFailure> for lambda_runtime::Diagnostic {
    fn from(e: ControlFailure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: match e {
                ControlFailure::Sweep(_) => "SweepFailed",
                ControlFailure::Event(_) => "UnknownEvent",
                ControlFailure::Http(_) => "RequestFailed",
            }
            .to_owned(),
            error_message: dispatcher_core::chain(&e),
        }
    }
}
