//! `POST /slack/commands`: Slack's slash command `/dispatch`. The signature (`v0` HMAC of
//! `v0:timestamp:body` with the signing secret, the timestamp within 5 minutes) is checked
//! over the raw bytes before anything is parsed; only the configured channel may command;
//! the answer comes at once (Slack waits 3 s) and the work is queued, its answer posted to
//! the command's response URL.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use dispatcher_app::control::chat;
use dispatcher_app::ports::{ChatQueue, ChatRequest};

use crate::webhook::verify_hex_mac;

/// The largest command body (Slack's are well under 4 KiB).
pub const MAX_BODY: usize = 16 * 1024;
/// How far a request's timestamp may be from now, in seconds: Slack's advice against
/// replays.
pub const MAX_SKEW: i64 = 5 * 60;

/// What the Slack route needs.
pub struct SlackState {
    /// The app's signing secret.
    pub signing_secret: Vec<u8>,
    /// The one channel id commands are taken from.
    pub channel: String,
    /// Where commands are run after the answer.
    pub queue: Arc<dyn ChatQueue>,
    /// The clock (seconds since the epoch).
    pub now: fn() -> i64,
}

/// `POST /slack/commands`.
pub fn slack_router(state: Arc<SlackState>) -> Router {
    Router::new()
        .route("/slack/commands", post(command))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// An answer only the commanding user sees.
fn ephemeral(text: &str) -> Response {
    let body = serde_json::json!({"response_type": "ephemeral", "text": text});
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether Slack signed `body` at a time near `now`.
fn signed(state: &SlackState, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(ts) = header(headers, "x-slack-request-timestamp") else {
        return false;
    };
    let Ok(at) = ts.trim().parse::<i64>() else {
        return false;
    };
    if ((state.now)() - at).abs() > MAX_SKEW || state.signing_secret.is_empty() {
        return false;
    }
    let Some(hex) = header(headers, "x-slack-signature").and_then(|s| s.strip_prefix("v0=")) else {
        return false;
    };
    verify_hex_mac(
        &state.signing_secret,
        &[b"v0:", ts.as_bytes(), b":", body],
        hex,
    )
    .is_ok()
}

async fn command(
    State(state): State<Arc<SlackState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !signed(&state, &headers, &body) {
        return (StatusCode::UNAUTHORIZED, "").into_response();
    }
    let field = |name: &str| {
        url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let channel = field("channel_id");
    if channel != state.channel {
        tracing::warn!(channel = %channel, user = %field("user_id"), "a command from another channel");
        return ephemeral(
            ":no_entry: /dispatch takes commands only in the dispatcher's incident channel",
        );
    }
    let request = ChatRequest {
        text: field("text"),
        user: field("user_id"),
        response_url: field("response_url"),
        key: field("trigger_id"),
    };
    if request.user.is_empty() || request.response_url.is_empty() {
        return ephemeral("the command came without a user or a response URL");
    }
    if let Err(usage) = chat::parse(&request.text) {
        return ephemeral(&usage);
    }
    match state.queue.submit(&request).await {
        Ok(()) => ephemeral(&format!("working on `{}`…", request.text.trim())),
        Err(e) => {
            tracing::error!(error = %dispatcher_core::chain(&e), "a chat command could not be queued");
            ephemeral(
                ":warning: the dispatcher could not take the command now; nothing was changed",
            )
        }
    }
}
