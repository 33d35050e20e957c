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

use crate::text;

pub struct TriggerState {
    pub token: String,
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

pub fn trigger_router(state: Arc<TriggerState>) -> Router {
    Router::new()
        .route("/recompute", post(trigger))
        .with_state(state)
}

async fn trigger(
    State(state): State<Arc<TriggerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if state.token.is_empty() || !bool::from(presented.as_bytes().ct_eq(state.token.as_bytes())) {
        return text(StatusCode::UNAUTHORIZED, "a bearer token is required");
    }
    let body: Body = if body.is_empty() {
        Body::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
        }
    };
    let request = RecomputeRequest {
        trigger: Trigger::Manual,
        mode: body.mode.unwrap_or(Mode::Full),
        delivery_id: None,
        after: None,
        paths: Vec::new(),
        allow_deletions: body.allow_deletions,
    };
    match state.handoff.submit(&request).await {
        Ok(()) => text(
            StatusCode::ACCEPTED,
            &format!("accepted: {:?} recompute", request.mode),
        ),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
