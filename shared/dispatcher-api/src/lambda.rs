//! The routers behind API Gateway: Lambda's HTTP events in, the same routers as locally.

use axum::Router;
use lambda_http::RequestExt;

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

/// Answers one API Gateway event (HTTP API payload 2.0, or REST) with `router`, for a
/// function that also takes other events (the control function's sweep and chat
/// commands): the response in the HTTP API's format 2.0.
pub async fn answer_event(
    router: Router,
    event: serde_json::Value,
) -> Result<serde_json::Value, lambda_http::Error> {
    use tower::ServiceExt as _;
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(event)?;
    let request: lambda_http::Request = request.into();
    let request = without_stage(request).map(|b| axum::body::Body::from(b.to_vec()));
    let response = router.oneshot(request).await?;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await?;
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.into())))
        .collect();
    let (body, base64) = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => (text, false),
        Err(_) => {
            use base64::Engine as _;
            (
                base64::engine::general_purpose::STANDARD.encode(&bytes),
                true,
            )
        }
    };
    Ok(serde_json::json!({
        "statusCode": parts.status.as_u16(),
        "headers": headers,
        "body": body,
        "isBase64Encoded": base64,
    }))
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
