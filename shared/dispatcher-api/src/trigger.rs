//! The local server's manual recompute: `POST /recompute` with a bearer token, handed off
//! like a push. (In AWS the manual trigger is an IAM-authorised invoke of the recompute
//! function; nothing mutating is reachable without authentication, F17.)

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use dispatcher_app::Handoff;
use dispatcher_app::recompute::{RecomputeRequest, Trigger};
use dispatcher_core::Mode;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::text;

/// What the manual trigger needs.
pub struct TriggerState {
    /// The bearer token callers must present (empty: every call is refused).
    pub token: String,
    /// Where recomputes go.
    pub handoff: Arc<dyn Handoff>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    mode: Option<Mode>,
    /// Leave to delete more than the usual share of the serving generation's jobs.
    #[serde(default)]
    allow_deletions: bool,
}

/// `POST /recompute`.
pub fn trigger_router(state: Arc<TriggerState>) -> Router {
    Router::new()
        .route("/recompute", post(trigger))
        .with_state(state)
}

async fn trigger(
    State(state): State<Arc<TriggerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if state.token.is_empty() || !bool::from(presented.as_bytes().ct_eq(state.token.as_bytes())) {
        return Err(ApiError::Unauthenticated("a bearer token is required"));
    }
    let body: Body = if body.is_empty() {
        Body::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))?
    };
    let request = RecomputeRequest {
        trigger: Trigger::Manual,
        mode: body.mode.unwrap_or(Mode::Full),
        delivery_id: None,
        after: None,
        paths: Vec::new(),
        allow_deletions: body.allow_deletions,
        pull_request: None,
    };
    state
        .handoff
        .submit(&request)
        .await
        .map_err(|e| ApiError::Unavailable {
            answer: e.to_string(),
            cause: e.into(),
        })?;
    Ok(text(
        StatusCode::ACCEPTED,
        &format!("accepted: {:?} recompute", request.mode),
    ))
}
