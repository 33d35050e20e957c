//! Prow's external scheduling strategy (wire-contracts.md §1): `POST /` with
//! `{"job": NAME}` answers `200 {"cluster": ...}`, 404 for an unknown job, 400 for a bad
//! body, 405 for another method. Never a 200 without a cluster, never a redirect.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use dispatcher_app::lookup::{Answer, LookupError, LookupService, Source};
use serde::Deserialize;

use crate::text;

/// What the lookup routes need.
pub struct LookupState {
    pub service: Arc<LookupService>,
    /// Seconds since the epoch.
    pub now: fn() -> i64,
}

/// Prow's request body: extra fields are ignored.
#[derive(Deserialize)]
struct Request {
    job: String,
}

pub fn lookup_router(state: Arc<LookupState>) -> Router {
    Router::new()
        .route("/", any(lookup))
        .route("/healthz", get(healthz))
        .route("/explain/{job}", get(explain))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "Not found") })
        // Prow's body is a job name; anything large is not a lookup.
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

async fn lookup(State(state): State<Arc<LookupState>>, method: Method, body: Bytes) -> Response {
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Invalid request method");
    }
    // The JSON is read whatever the Content-Type says: the Go clients do not check it.
    let job = match serde_json::from_slice::<Request>(&body) {
        Ok(r) => r.job,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
    };
    match state.service.answer(&job, (state.now)()).await {
        Ok(Answer::Cluster {
            cluster,
            generation,
            source,
        }) => {
            let source = match source {
                Source::Generation => "generation",
                Source::Ephemeral => "ephemeral-cluster",
            };
            let mut body =
                serde_json::json!({"cluster": cluster, "generation": generation, "source": source})
                    .to_string();
            body.push('\n');
            let mut response = (StatusCode::OK, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&generation.to_string()) {
                headers.insert("x-dispatcher-generation", v);
            }
            response
        }
        Ok(Answer::NotFound) => text(StatusCode::NOT_FOUND, "Cluster not found"),
        Err(LookupError::NoUsableCluster) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to get the cluster",
        ),
        Err(e) => {
            // Prow falls back to the static cluster on any non-200; keep it rare and fast.
            tracing::error!(job = %job, error = %e, "lookup failed");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The dispatcher store is unavailable",
            )
        }
    }
}

async fn healthz(State(state): State<Arc<LookupState>>) -> Response {
    match state.service.current().await {
        Ok(Some(s)) => text(StatusCode::OK, &format!("ok: generation {}", s.generation)),
        Ok(None) => text(StatusCode::OK, "ok: nothing published yet"),
        Err(e) => {
            tracing::warn!(error = %e, "health check cannot read the store");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The dispatcher store is unavailable",
            )
        }
    }
}

async fn explain(State(state): State<Arc<LookupState>>, Path(job): Path<String>) -> Response {
    match state.service.explain(&job).await {
        Ok(Some(v)) => {
            let mut response = (StatusCode::OK, format!("{v}\n")).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Ok(None) => text(StatusCode::NOT_FOUND, "Cluster not found"),
        Err(e) => {
            tracing::error!(job = %job, error = %e, "explain failed");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The dispatcher store is unavailable",
            )
        }
    }
}
