//! Between Lambda events and the use cases.

use axum::Router;
use dispatcher_app::recompute::{Invocation, Outcome, parse_invocation};
use dispatcher_app::{RecomputeError, Recomputer};
use lambda_http::RequestExt;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};

use crate::metrics;

/// Routes on the path the client sent, without any stage: `lambda_http` prefixes a REST
/// API's stage (`/Prod/`), and an HTTP API's `rawPath` carries a named stage (`/dev/`)
/// itself (wire-contracts.md §3.1, §3.3); either would miss the `/` route.
pub fn without_stage(mut req: lambda_http::Request) -> lambda_http::Request {
    let mut raw = req.raw_http_path().to_owned();
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(stage) = ctx.stage.as_deref().filter(|s| *s != "$default")
    {
        let prefix = format!("/{stage}");
        if raw == prefix {
            raw = "/".to_owned();
        } else if let Some(rest) = raw.strip_prefix(&prefix).filter(|r| r.starts_with('/')) {
            raw = rest.to_owned();
        }
    }
    if raw.is_empty() || raw == req.uri().path() {
        return req;
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{raw}?{q}"),
        None => raw,
    };
    if let Ok(uri) = path_and_query.parse::<http::Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

/// Serves a router behind API Gateway (REST or HTTP API).
pub async fn serve_http(router: Router) -> Result<(), lambda_http::Error> {
    let service = tower::ServiceBuilder::new()
        .map_request(without_stage)
        .service(router);
    lambda_http::run(service).await
}

/// A failed recompute, typed for Lambda's error reports (retryable or not).
#[derive(Debug)]
pub struct RecomputeFailure(pub RecomputeError);

impl std::fmt::Display for RecomputeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<RecomputeFailure> for Diagnostic {
    fn from(e: RecomputeFailure) -> Self {
        Diagnostic {
            error_type: if e.0.retryable {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .to_owned(),
            error_message: e.0.to_string(),
        }
    }
}

fn summary(o: &Outcome) -> Value {
    json!({
        "commit": o.commit,
        "mode": o.mode,
        "generation": o.published.generation,
        "unchanged": o.published.unchanged,
        "changed": o.published.changed,
        "fallback": format!("{:?}", o.fallback),
    })
}

/// The recompute function's handler: any JSON (a schedule envelope, the webhook's
/// hand-off, an operator's invoke, the scheduled freshness check).
pub async fn recompute(
    recomputer: &Recomputer,
    event: LambdaEvent<Value>,
    now: i64,
) -> Result<Value, RecomputeFailure> {
    let invocation = parse_invocation(&event.payload).map_err(|message| {
        RecomputeFailure(RecomputeError {
            stage: "input",
            retryable: false,
            message,
        })
    })?;
    let function = &event.context.env_config.function_name;
    let request = match invocation {
        Invocation::Recompute(r) => r,
        Invocation::FreshnessCheck => {
            let age = recomputer
                .since_last_success(now)
                .await
                .map_err(RecomputeFailure)?;
            // Before the first success nothing is put: the alarm treats missing data as
            // breaching, so a stack that never recomputed is not reported healthy.
            if let Some(seconds) = age {
                let hours = seconds as f64 / 3600.0;
                metrics::put(
                    function,
                    now * 1000,
                    &[(metrics::HOURS_SINCE_SUCCESS, hours, "None")],
                );
            }
            // A backup PR that failed after its generation was published is retried here,
            // every half hour, until the static fields match (F15).
            let fallback = match recomputer.retry_fallback().await {
                Ok(status) => status.map(|s| format!("{s:?}")),
                Err(e) => {
                    tracing::error!(stage = e.stage, retryable = e.retryable, error = %e.message, "retrying the backup PR failed; the next check tries again");
                    Some(format!("failed: {e}"))
                }
            };
            return Ok(json!({ "secondsSinceLastSuccess": age, "fallbackRetry": fallback }));
        }
    };
    match recomputer
        .run(&request, &event.context.request_id, now)
        .await
    {
        Ok(outcome) => {
            metrics::put(
                function,
                now * 1000,
                &[
                    (metrics::RECOMPUTE_SUCCEEDED, 1.0, "Count"),
                    (
                        metrics::CHANGED_ASSIGNMENTS,
                        outcome.published.changed as f64,
                        "Count",
                    ),
                    (metrics::HOURS_SINCE_SUCCESS, 0.0, "None"),
                ],
            );
            Ok(summary(&outcome))
        }
        Err(e) => {
            tracing::error!(stage = e.stage, retryable = e.retryable, error = %e.message, "recompute failed; the last good generation keeps serving");
            Err(RecomputeFailure(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> lambda_http::Request {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/events")
            .join(name);
        let text = std::fs::read_to_string(&path).expect("fixture");
        lambda_http::request::from_str(&text).expect("an API Gateway event")
    }

    #[test]
    fn every_event_shape_routes_on_the_path_without_its_stage() {
        for name in [
            "apigw-v1-lookup.json",
            "apigw-v2-lookup.json",
            "apigw-v2-lookup-stage.json",
        ] {
            let req = without_stage(fixture(name));
            assert_eq!(req.uri().path(), "/", "{name}");
        }
        assert_eq!(
            without_stage(fixture("apigw-v2-webhook.json")).uri().path(),
            "/github"
        );
    }

    /// An HTTP API delivers a form body base64-encoded (wire-contracts.md §3.1): the
    /// webhook must see, and verify the signature over, the bytes GitHub sent.
    #[test]
    fn a_base64_form_delivery_reaches_the_webhook_as_sent() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/events/apigw-v2-webhook.json");
        let text = std::fs::read_to_string(path)
            .expect("fixture")
            .replace("application/json", "application/x-www-form-urlencoded")
            .replace(
                "\"BODY\"",
                "\"cGF5bG9hZD0lN0IlMjJ6ZW4lMjIlM0ElMjJoaSUyMiU3RA==\"",
            )
            .replace("\"isBase64Encoded\": false", "\"isBase64Encoded\": true");
        let req = lambda_http::request::from_str(&text).expect("an API Gateway event");
        assert_eq!(
            req.body().as_ref(),
            b"payload=%7B%22zen%22%3A%22hi%22%7D".as_slice()
        );
    }
}
