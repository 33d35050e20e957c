//! GitHub push deliveries (wire-contracts.md §2): the signature is verified over the raw
//! bytes before anything is parsed; `ping` answers 200; a push to the default branch of the
//! configured repository is deduplicated on its delivery id, decided, and handed to the
//! recompute asynchronously with a 202, well inside GitHub's 10 seconds.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use dispatcher_app::AssignmentStore;
use dispatcher_app::push::{self, PushDecision, PushEvent};
use dispatcher_app::recompute::{RecomputeRequest, Trigger};
use dispatcher_app::{Handoff, RepoSource};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::text;

/// API Gateway rejects larger bodies anyway.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// How long a delivery id is remembered: GitHub redelivers by hand, within days.
pub const DELIVERY_TTL: i64 = 7 * 24 * 60 * 60;
/// What a delivery id is remembered under, before the id (the webhook role may write only
/// these).
pub const DELIVERY: &str = "delivery#";
/// How long deciding and handing off may take: inside the function's 8 s, so that a slow
/// GitHub or Lambda API cannot get the function killed with the delivery recorded (a
/// redelivery would then be taken for a duplicate), and inside GitHub's 10 s.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(6);

pub struct WebhookState {
    /// The webhook secret, read once at cold start.
    pub secret: Vec<u8>,
    /// `owner/name` of the release repository.
    pub repo: String,
    pub source: Arc<dyn RepoSource>,
    pub table: Arc<dyn AssignmentStore>,
    pub handoff: Arc<dyn Handoff>,
    pub now: fn() -> i64,
    /// [`DEADLINE`], shorter in tests.
    pub deadline: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not sha256=<64 hex digits>")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks `X-Hub-Signature-256` against HMAC-SHA256(secret, body), in constant time.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digits = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

pub fn webhook_router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/github", post(deliver))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The JSON of a delivery: the body itself, or its `payload` field when form-encoded.
fn payload(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    let form = header(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok(body.to_vec());
    }
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned().into_bytes())
        .ok_or_else(|| "a form delivery without a payload field".to_owned())
}

async fn deliver(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Nothing is parsed, logged or stored before the signature holds.
    match verify_signature(
        &state.secret,
        &body,
        header(&headers, "x-hub-signature-256"),
    ) {
        Ok(()) => {}
        Err(e @ (SignatureError::Missing | SignatureError::Malformed)) => {
            tracing::warn!(reason = %e, "webhook delivery rejected");
            return text(StatusCode::UNAUTHORIZED, "");
        }
        Err(e) => {
            tracing::warn!(reason = %e, "webhook delivery rejected");
            return text(StatusCode::FORBIDDEN, "");
        }
    }
    let event = header(&headers, "x-github-event")
        .unwrap_or_default()
        .to_owned();
    let delivery = header(&headers, "x-github-delivery")
        .unwrap_or_default()
        .to_owned();
    match event.as_str() {
        "ping" => return text(StatusCode::OK, "pong"),
        "push" => {}
        other => return text(StatusCode::ACCEPTED, &format!("ignored: event {other}")),
    }
    if delivery.is_empty() {
        return text(StatusCode::BAD_REQUEST, "no X-GitHub-Delivery header");
    }
    let push: PushEvent = match payload(&headers, &body)
        .and_then(|p| serde_json::from_slice(&p).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("not a push payload: {e}")),
    };
    let now = (state.now)();
    let key = format!("{DELIVERY}{delivery}");
    match state
        .table
        .remember(&key, &push.after, now + DELIVERY_TTL, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(delivery = %delivery, "duplicate delivery ignored");
            return text(StatusCode::OK, "duplicate delivery");
        }
        Err(e) => {
            tracing::error!(delivery = %delivery, error = %e, "cannot record the delivery");
            return text(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    }
    // From here on a failure must forget the delivery, so that a redelivery is not
    // mistaken for a duplicate.
    let handled = async {
        match push::decide(
            &push,
            &state.repo,
            state.source.as_ref(),
            state.table.as_ref(),
        )
        .await?
        {
            PushDecision::Ignore(reason) => {
                Ok((StatusCode::ACCEPTED, format!("ignored: {reason}")))
            }
            PushDecision::Recompute {
                mode,
                reason,
                paths,
            } => {
                let request = RecomputeRequest {
                    trigger: Trigger::Push,
                    mode,
                    delivery_id: Some(delivery.clone()),
                    after: Some(push.after.clone()),
                    paths,
                    allow_deletions: false,
                };
                state.handoff.submit(&request).await?;
                tracing::info!(delivery = %delivery, after = %push.after, mode = ?mode, reason = %reason, "recompute handed off");
                Ok((
                    StatusCode::ACCEPTED,
                    format!("accepted: {mode:?} recompute ({reason})"),
                ))
            }
        }
    };
    let outcome = match tokio::time::timeout(state.deadline, handled).await {
        Ok(r) => r,
        Err(_) => Err(dispatcher_app::SourceError::retryable(
            "webhook",
            format!(
                "deciding and handing off took longer than {:?}",
                state.deadline
            ),
        )),
    };
    match outcome {
        Ok((status, message)) => text(status, &message),
        Err::<_, dispatcher_app::SourceError>(e) => {
            tracing::error!(delivery = %delivery, error = %e, retryable = e.retryable, "push not handled");
            if let Err(f) = state.table.forget(&key).await {
                tracing::error!(delivery = %delivery, error = %f, "cannot forget the delivery");
            }
            text(
                StatusCode::BAD_GATEWAY,
                "the push could not be handled; redeliver it",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_published_test_vector() {
        let secret = b"It's a Secret to Everybody";
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            verify_signature(secret, b"Hello, World!", Some(sig)),
            Ok(())
        );
        assert_eq!(
            verify_signature(secret, b"Hello, World?", Some(sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(secret, b"Hello, World!", None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(
                secret,
                b"Hello, World!",
                Some(&sig.replace("sha256=", "sha1="))
            ),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(secret, b"Hello, World!", Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(secret, b"Hello, World!", Some("sha256=abcd")),
            Err(SignatureError::Malformed)
        );
    }
}
