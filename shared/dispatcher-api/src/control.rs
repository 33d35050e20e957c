//! The control API, `/control/v1/`: JSON in and out, errors as
//! `{"error": {"code", "message"}}` with a stable code. Locally (`dispatcher serve`) a
//! bearer token authenticates and the body names the actor; on AWS, API Gateway's
//! `AWS_IAM` authoriser has verified the caller's SigV4 signature, and the actor is the
//! caller's IAM principal from the request context (the body's is ignored).

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use dispatcher_app::control::{Control, ControlError, PlanRecord, PlanRequest};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The largest control request body.
pub const MAX_BODY: usize = 16 * 1024;
/// The longest actor name a local caller may give.
const MAX_ACTOR: usize = 128;

/// Who may call, and how the actor is known.
#[derive(Debug, Clone)]
pub enum ControlAuth {
    /// `Authorization: Bearer TOKEN` (an empty token refuses every call); the body's
    /// `actor` is the actor.
    Bearer(String),
    /// API Gateway verified the caller (an `AWS_IAM` route authoriser); the actor is the
    /// caller's IAM principal.
    Iam,
}

/// What the control routes need.
pub struct ControlState {
    /// The use case.
    pub control: Control,
    /// How callers are authenticated.
    pub auth: ControlAuth,
    /// The clock, read at the edge.
    pub now: fn() -> i64,
}

/// The control routes.
pub fn control_router(state: Arc<ControlState>) -> Router {
    Router::new()
        .route("/control/v1/status", get(status))
        .route("/control/v1/overrides", get(list))
        .route("/control/v1/plans", post(plan))
        .route("/control/v1/plans/{id}/apply", post(apply))
        .route("/control/v1/overrides/{id}/approve", post(approve))
        .route("/control/v1/overrides/{id}/cancel", post(cancel))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// A control failure, answered as JSON.
#[derive(Debug)]
pub struct ControlFailure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ControlFailure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<ControlError> for ControlFailure {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::Invalid { .. } | ControlError::Override(_) => StatusCode::BAD_REQUEST,
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            e if e.is_refusal() => StatusCode::CONFLICT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::error!(error = %dispatcher_core::chain(&e), "a control action failed");
        }
        let message = if status.is_server_error() {
            "the dispatcher store is unavailable; nothing was changed that is not reported"
                .to_owned()
        } else {
            e.to_string()
        };
        Self::new(status, e.code(), message)
    }
}

impl IntoResponse for ControlFailure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

type Answer = Result<Response, ControlFailure>;

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Answer {
    Ok((status, axum::Json(value)).into_response())
}

/// The caller, authenticated, and the actor the action is recorded for.
fn actor(
    state: &ControlState,
    headers: &HeaderMap,
    ctx: Option<&lambda_http::request::RequestContext>,
    named: Option<&str>,
) -> Result<String, ControlFailure> {
    let unauthenticated =
        |m: &str| ControlFailure::new(StatusCode::UNAUTHORIZED, "unauthenticated", m);
    match &state.auth {
        ControlAuth::Bearer(token) => {
            let presented = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if token.is_empty() || !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
                return Err(unauthenticated("a bearer token is required"));
            }
            match named.map(str::trim).filter(|a| !a.is_empty()) {
                Some(a) if a.len() <= MAX_ACTOR => Ok(a.to_owned()),
                _ => Err(ControlFailure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("actor: name who acts, 1 to {MAX_ACTOR} bytes"),
                )),
            }
        }
        ControlAuth::Iam => iam_principal(ctx)
            .ok_or_else(|| unauthenticated("an IAM-signed (SigV4) request is required")),
    }
}

/// The caller's IAM principal as API Gateway's `AWS_IAM` authoriser reports it.
fn iam_principal(ctx: Option<&lambda_http::request::RequestContext>) -> Option<String> {
    use lambda_http::request::RequestContext;
    match ctx? {
        RequestContext::ApiGatewayV2(c) => c.authorizer.as_ref()?.iam.as_ref()?.user_arn.clone(),
        RequestContext::ApiGatewayV1(c) => c.identity.user_arn.clone(),
        _ => None,
    }
    .filter(|a| !a.is_empty())
}

fn context<B>(req: &Request<B>) -> Option<&lambda_http::request::RequestContext> {
    req.extensions()
        .get::<lambda_http::request::RequestContext>()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    confirm_unprotected: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    #[serde(flatten)]
    request: PlanRequestWire,
    #[serde(default)]
    actor: Option<String>,
}

/// [`PlanRequest`] as the wire spells it; unknown fields are refused, naming them.
#[derive(Deserialize)]
struct PlanRequestWire {
    kind: dispatcher_core::overrides::OverrideKind,
    cluster: String,
    #[serde(default)]
    capability: Option<String>,
    #[serde(default)]
    capacity: Option<u32>,
    duration: String,
    reason: String,
    #[serde(default)]
    incident_url: Option<String>,
    idempotency_key: String,
}

fn parse<'a, T: Deserialize<'a> + Default>(body: &'a [u8]) -> Result<T, ControlFailure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ControlFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("bad request body: {e}"),
        )
    })
}

async fn status(State(s): State<Arc<ControlState>>, req: Request<axum::body::Body>) -> Answer {
    // Reading needs the same authentication as writing, not an actor.
    if let ControlAuth::Bearer(_) = s.auth {
        actor(&s, req.headers(), None, Some("reader"))?;
    } else {
        actor(&s, req.headers(), context(&req), None)?;
    }
    json(StatusCode::OK, &s.control.status().await?)
}

async fn list(State(s): State<Arc<ControlState>>, req: Request<axum::body::Body>) -> Answer {
    if let ControlAuth::Bearer(_) = s.auth {
        actor(&s, req.headers(), None, Some("reader"))?;
    } else {
        actor(&s, req.headers(), context(&req), None)?;
    }
    json(
        StatusCode::OK,
        &serde_json::json!({"overrides": s.control.list().await?}),
    )
}

/// Splits a request into what the handlers read: headers, the API Gateway context, body.
async fn parts(
    req: Request<axum::body::Body>,
) -> Result<
    (
        HeaderMap,
        Option<lambda_http::request::RequestContext>,
        Bytes,
    ),
    ControlFailure,
> {
    let (parts, body) = req.into_parts();
    let ctx = parts
        .extensions
        .get::<lambda_http::request::RequestContext>()
        .cloned();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ControlFailure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("a control request is at most {MAX_BODY} bytes"),
        )
    })?;
    Ok((parts.headers, ctx, bytes))
}

async fn plan(State(s): State<Arc<ControlState>>, req: Request<axum::body::Body>) -> Answer {
    let (headers, ctx, body) = parts(req).await?;
    let wire: PlanBody = serde_json::from_slice(&body).map_err(|e| {
        ControlFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("bad request body: {e}"),
        )
    })?;
    let who = actor(&s, &headers, ctx.as_ref(), wire.actor.as_deref())?;
    let r = wire.request;
    let request = PlanRequest {
        kind: r.kind,
        cluster: r.cluster,
        capability: r.capability,
        capacity: r.capacity,
        duration: r.duration,
        reason: r.reason,
        incident_url: r.incident_url,
        idempotency_key: r.idempotency_key,
    };
    let record = s.control.plan(request, &who, (s.now)()).await?;
    json(StatusCode::CREATED, &plan_answer(&record))
}

/// A plan as the wire shows it: the preview an operator approves.
pub fn plan_answer(r: &PlanRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "override_id": r.override_id,
        "generation": r.generation,
        "valid_until": r.valid_until,
        "kind": r.request.kind,
        "cluster": r.request.cluster,
        "capability": r.request.capability,
        "capacity": r.request.capacity,
        "duration": r.request.duration,
        "moved_jobs": r.impact.moved_jobs,
        "moved_demand": r.impact.moved_demand,
        "moved_share": r.impact.moved_share,
        "moves": r.impact.moves,
        "shares": r.impact.shares,
        "unschedulable_jobs": r.impact.unschedulable.len(),
        "required_approvals": r.required_approvals,
        "unprotected_jobs": r.impact.unprotected_jobs,
    })
}

/// An action on a plan or an override: its body and the actor it is recorded for.
async fn action(
    s: &ControlState,
    req: Request<axum::body::Body>,
) -> Result<(ActionBody, String), ControlFailure> {
    let (headers, ctx, body) = parts(req).await?;
    let b: ActionBody = parse(&body)?;
    let who = actor(s, &headers, ctx.as_ref(), b.actor.as_deref())?;
    Ok((b, who))
}

async fn apply(
    State(s): State<Arc<ControlState>>,
    Path(id): Path<String>,
    req: Request<axum::body::Body>,
) -> Answer {
    let (b, who) = action(&s, req).await?;
    let o = s
        .control
        .apply(&id, &who, b.confirm_unprotected, (s.now)())
        .await?;
    json(StatusCode::OK, &o)
}

async fn approve(
    State(s): State<Arc<ControlState>>,
    Path(id): Path<String>,
    req: Request<axum::body::Body>,
) -> Answer {
    let (_, who) = action(&s, req).await?;
    json(
        StatusCode::OK,
        &s.control.approve(&id, &who, (s.now)()).await?,
    )
}

async fn cancel(
    State(s): State<Arc<ControlState>>,
    Path(id): Path<String>,
    req: Request<axum::body::Body>,
) -> Answer {
    let (_, who) = action(&s, req).await?;
    json(
        StatusCode::OK,
        &s.control.cancel(&id, &who, (s.now)()).await?,
    )
}
