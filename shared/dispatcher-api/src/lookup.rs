//! Prow's external scheduling strategy (wire-contracts.md §1): `POST /` with
//! `{"job": NAME}` answers `200 {"cluster": ...}`, 404 for an unknown job, 400 for a bad
//! body or a name longer than any job's, 429 for new ephemeral cluster jobs beyond the
//! instance's rate, 405 for another method. Never a 200 without a cluster, never a redirect.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use dispatcher_app::lookup::{Answer, LookupError, LookupService};
use serde::Deserialize;

use crate::error::ApiError;
use crate::text;

/// What the lookup routes need.
pub struct LookupState {
    /// The lookup use case.
    pub service: Arc<LookupService>,
    /// Seconds since the epoch.
    pub now: fn() -> i64,
}

/// Prow's request body, read as Go's `json.Decoder` read it in the Go dispatcher: the first
/// JSON value of the body (anything after it is ignored), an object whose `job` key is
/// matched case-insensitively (`{"JOB": ...}`; of several, the last wins), other keys
/// ignored. Anything else, an array included, is a bad request.
struct Request {
    job: Option<String>,
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> serde::de::Visitor<'de> for RequestVisitor {
    type Value = Request;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(r#"an object {"job": NAME}"#)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
        let mut job = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key.eq_ignore_ascii_case("job") {
                // Go leaves the field alone for a null.
                if let Some(name) = map.next_value::<Option<String>>()? {
                    job = Some(name);
                }
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(Request { job })
    }
}

/// The job name of a lookup body; the error says why there is none.
fn job_of(body: &[u8]) -> Result<String, String> {
    let first = serde_json::Deserializer::from_slice(body)
        .into_iter::<Request>()
        .next()
        .ok_or_else(|| "empty body".to_owned())?;
    first
        .map_err(|e| e.to_string())?
        .job
        .filter(|j| !j.is_empty())
        .ok_or_else(|| r#"no "job" in the body"#.to_owned())
}

/// The lookup routes: `POST /` for Prow, `GET /healthz`, `GET /explain/{job}`.
pub fn lookup_router(state: Arc<LookupState>) -> Router {
    Router::new()
        .route("/", any(lookup))
        .route("/healthz", get(healthz))
        .route("/explain/{job}", get(explain))
        .fallback(|| async { ApiError::NotFound("Not found") })
        // Prow's body is a job name; anything large is not a lookup.
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

async fn lookup(
    State(state): State<Arc<LookupState>>,
    method: Method,
    body: Bytes,
) -> Result<Response, ApiError> {
    if method != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    // The JSON is read whatever the Content-Type says: the Go clients do not check it.
    let job = job_of(&body).map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))?;
    let answer = state
        .service
        .answer(&job, (state.now)())
        .await
        .map_err(|e| match e {
            LookupError::NameTooLong { .. } => {
                ApiError::BadRequest(format!("bad request body: {e}"))
            }
            // A store outage concerns every job: the log says the cause, not the name.
            other => ApiError::from(other),
        })?;
    let Answer::Cluster {
        cluster,
        generation,
        source,
    } = answer
    else {
        return Err(ApiError::NotFound("Cluster not found"));
    };
    let mut body =
        serde_json::json!({"cluster": cluster, "generation": generation, "source": source.as_str()})
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
    Ok(response)
}

async fn healthz(State(state): State<Arc<LookupState>>) -> Result<Response, ApiError> {
    let answer = match state.service.current().await.map_err(ApiError::store)? {
        Some(s) => format!("ok: generation {}", s.generation),
        None => "ok: nothing published yet".to_owned(),
    };
    Ok(text(StatusCode::OK, &answer))
}

async fn explain(
    State(state): State<Arc<LookupState>>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let Some(v) = state.service.explain(&job).await? else {
        return Err(ApiError::NotFound("Cluster not found"));
    };
    let mut response = (StatusCode::OK, format!("{v}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::job_of;

    #[test]
    fn bodies_are_read_as_gos_decoder_read_them() {
        for (body, want) in [
            (r#"{"job":"a"}"#, "a"),
            (r#"{"JOB":"a"}"#, "a"),
            (r#"{"Job":"a","extra":[1,{"x":null}]}"#, "a"),
            (r#"{"job":"a","JOB":"b"}"#, "b"),
            (r#"{"job":"a"} trailing garbage"#, "a"),
            (r#"{"job":"a"}{"job":"b"}"#, "a"),
            ("  \n{\"job\":\"a\"}\n", "a"),
            (r#"{"job":"a","job":null}"#, "a"),
        ] {
            assert_eq!(job_of(body.as_bytes()), Ok(want.to_owned()), "{body}");
        }
        for body in [
            r#"["pull-ci-a"]"#,
            r#""pull-ci-a""#,
            "",
            "not json",
            r#"{"job":5}"#,
            r#"{"job":"a""#,
            "{}",
            r#"{"job":""}"#,
            "null",
        ] {
            assert!(job_of(body.as_bytes()).is_err(), "{body} must be refused");
        }
    }
}
