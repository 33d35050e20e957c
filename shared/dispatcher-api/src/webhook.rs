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
use dispatcher_app::ports::PullRequests;
use dispatcher_app::pull_request::PullRequestEvent;
use dispatcher_app::push::PushEvent;
use dispatcher_app::webhook::{Intake, Received};
use dispatcher_app::{Handoff, RepoSource};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::ApiError;
use crate::text;

/// API Gateway rejects larger bodies anyway.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// How long deciding and handing off may take: inside the function's 8 s, so that a slow
/// GitHub or Lambda API cannot get the function killed with the delivery recorded (a
/// redelivery would then be taken for a duplicate), and inside GitHub's 10 s.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(6);

/// What the webhook route needs.
pub struct WebhookState {
    /// The webhook secret, read once at cold start.
    pub secret: Vec<u8>,
    /// `owner/name` of the release repository.
    pub repo: String,
    /// The repository, for the inventory's blob at the pushed commit.
    pub source: Arc<dyn RepoSource>,
    /// Where deliveries are remembered.
    pub table: Arc<dyn AssignmentStore>,
    /// Where recomputes go.
    pub handoff: Arc<dyn Handoff>,
    /// The release repository's pull requests: `pull_request` deliveries are planned when
    /// set, acknowledged and ignored otherwise.
    pub prs: Option<Arc<dyn PullRequests>>,
    /// The clock (seconds since the epoch).
    pub now: fn() -> i64,
    /// [`DEADLINE`], shorter in tests.
    pub deadline: std::time::Duration,
}

/// Why a delivery's signature does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    /// A header that is not `sha256=` and 64 hex digits.
    #[error("X-Hub-Signature-256 is not sha256=<64 hex digits>")]
    Malformed,
    /// A well-formed signature of other bytes or another secret.
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
    verify_hex_mac(secret, &[body], hex_digits)
}

/// Checks that `hex_digits` are HMAC-SHA256(secret, the parts in order), in constant time
/// (GitHub's and Slack's signatures both are).
pub(crate) fn verify_hex_mac(
    secret: &[u8],
    parts: &[&[u8]],
    hex_digits: &str,
) -> Result<(), SignatureError> {
    let expected = hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// `POST /github`: GitHub's push and ping deliveries.
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
) -> Result<Response, ApiError> {
    // Nothing is parsed, logged or stored before the signature holds.
    verify_signature(
        &state.secret,
        &body,
        header(&headers, "x-hub-signature-256"),
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "webhook delivery rejected");
        match e {
            SignatureError::Missing | SignatureError::Malformed => ApiError::Unauthenticated(""),
            SignatureError::Mismatch => ApiError::Forbidden,
        }
    })?;
    let event = header(&headers, "x-github-event").unwrap_or_default();
    let prs = match (event, &state.prs) {
        ("ping", _) => return Ok(text(StatusCode::OK, "pong")),
        ("push", _) => None,
        ("pull_request", Some(prs)) => Some(prs.as_ref()),
        (other, _) => {
            return Ok(text(
                StatusCode::ACCEPTED,
                &format!("ignored: event {other}"),
            ));
        }
    };
    let delivery = header(&headers, "x-github-delivery")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::BadRequest("no X-GitHub-Delivery header".to_owned()))?;
    let json =
        payload(&headers, &body).map_err(|e| ApiError::BadRequest(format!("bad payload: {e}")))?;
    let intake = Intake {
        repo: &state.repo,
        source: state.source.as_ref(),
        table: state.table.as_ref(),
        handoff: state.handoff.as_ref(),
        deadline: state.deadline,
    };
    let received = match prs {
        None => {
            let push: PushEvent = serde_json::from_slice(&json)
                .map_err(|e| ApiError::BadRequest(format!("not a push payload: {e}")))?;
            intake.push(delivery, &push, (state.now)()).await?
        }
        Some(prs) => {
            let pr: PullRequestEvent = serde_json::from_slice(&json)
                .map_err(|e| ApiError::BadRequest(format!("not a pull_request payload: {e}")))?;
            intake
                .pull_request(prs, delivery, &pr, (state.now)())
                .await?
        }
    };
    let (status, answer) = match received {
        Received::Duplicate => (StatusCode::OK, "duplicate delivery".to_owned()),
        Received::Ignored(reason) => (StatusCode::ACCEPTED, format!("ignored: {reason}")),
        Received::HandedOff { mode, reason } => (
            StatusCode::ACCEPTED,
            format!("accepted: {mode:?} recompute ({reason})"),
        ),
    };
    Ok(text(status, &answer))
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
