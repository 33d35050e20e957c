#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use dispatcher_app::SourceError;
use dispatcher_app::control::utc;
use dispatcher_app::ports::{ChatReply, Note, Notifier};

/// Where answers may be posted when nothing else is configured.
pub const SLACK_HOOKS: &str = "https://hooks.slack.com/";

/// Posts to Slack.
#[derive(Clone)]
pub struct Slack {
    client: reqwest::Client,
    /// The incoming webhook notifications go to (a secret).
    webhook: Option<String>,
    /// The prefix every response URL must have.
    response_prefix: String,
}

impl Slack {
    /// A client posting notifications to `webhook` (if any) and answers to response URLs
    /// under `response_prefix`.
    pub fn new(
        webhook: Option<String>,
        response_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        // reqwest is built without a crypto provider of its own: ring, as everywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SourceError::permanent("slack", "client").because(e))?;
        Ok(Self {
            client,
            webhook,
            response_prefix: response_prefix.to_owned(),
        })
    }

    async fn post(&self, url: &str, body: serde_json::Value) -> Result<(), SourceError> {
        let response = self
            .client
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| SourceError::retryable("slack", "post").because(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let what = format!("post answered {status}");
        Err(if status.is_server_error() || status.as_u16() == 429 {
            SourceError::retryable("slack", what)
        } else {
            SourceError::permanent("slack", what)
        })
    }
}

#[async_trait]
impl ChatReply for Slack {
    async fn reply(&self, response_url: &str, text: &str) -> Result<(), SourceError> {
        if !response_url.starts_with(&self.response_prefix) {
            return Err(SourceError::permanent(
                "slack",
                format!(
                    "refusing to post to {response_url:?}: not under {}",
                    self.response_prefix
                ),
            ));
        }
        // In the channel: an incident's actions are everyone's business.
        let body = serde_json::json!({"response_type": "in_channel", "text": text});
        self.post(response_url, body).await
    }
}

#[async_trait]
impl Notifier for Slack {
    async fn notify(&self, note: &Note) -> Result<(), SourceError> {
        let Some(url) = &self.webhook else {
            return Ok(());
        };
        self.post(url, serde_json::json!({"text": text(note)}))
            .await
    }
}

/// A notification as one line of text.
pub fn text(note: &Note) -> String {
    match note {
        Note::Published {
            generation,
            cause,
            changed,
            moved_demand,
        } => format!(
            ":package: generation {generation} published ({}): {changed} assignments changed, {moved_demand} demand moved",
            cause.as_str()
        ),
        Note::Override {
            id,
            state,
            actor,
            what,
            generation,
        } => format!(
            ":traffic_light: override {id} ({what}) is {} by {actor}{}",
            state.as_str(),
            generation
                .map(|g| format!("; generation {g} serving"))
                .unwrap_or_default()
        ),
        Note::RecomputeFailed { stage, error } => {
            format!(
                ":rotating_light: a recompute failed at {stage}: {error}; the last good generation keeps serving"
            )
        }
        Note::BackupPrPending { generation, since } => format!(
            ":hourglass: the backup PR of generation {generation} has been pending since {}",
            utc(*since)
        ),
    }
}
