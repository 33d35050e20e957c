//! The control API over HTTP: what `dispatcher override --api` sends, signed with the
//! caller's AWS credentials (SigV4) or a local server's bearer token.

use anyhow::{Context, Result};
use dispatcher_aws::Aws;
use serde_json::Value;

use super::Refusal;
use crate::args::{OverrideArgs, OverrideCommand};

/// One request to the control API: the verb, the path under `/control/v1/`, the body.
fn request(args: &OverrideArgs, actor: &str) -> Result<(&'static str, String, Option<Value>)> {
    let with_actor = |mut v: Value| {
        v["actor"] = Value::from(actor);
        Some(v)
    };
    Ok(match &args.command {
        OverrideCommand::Plan(p) => {
            let body = serde_json::to_value(super::plan_request(p, dispatcher_api::now()))?;
            ("POST", "plans".to_owned(), with_actor(body))
        }
        OverrideCommand::Apply {
            plan,
            confirm_unprotected,
        } => (
            "POST",
            format!("plans/{plan}/apply"),
            with_actor(serde_json::json!({"confirm_unprotected": confirm_unprotected})),
        ),
        OverrideCommand::Approve { id } => (
            "POST",
            format!("overrides/{id}/approve"),
            with_actor(serde_json::json!({})),
        ),
        OverrideCommand::Cancel { id } => (
            "POST",
            format!("overrides/{id}/cancel"),
            with_actor(serde_json::json!({})),
        ),
        OverrideCommand::List => ("GET", "overrides".to_owned(), None),
        OverrideCommand::Status => ("GET", "status".to_owned(), None),
        OverrideCommand::Sweep => anyhow::bail!(
            "the sweep runs on its schedule on AWS; run `dispatcher override sweep` against the store instead"
        ),
    })
}

/// Sends the command to `base` (the API's `/control/v1/` URL); answers the body, or the
/// refusal its error body says.
pub async fn call(args: &OverrideArgs, base: &str, actor: &str) -> Result<Result<Value, Refusal>> {
    let (verb, path, body) = request(args, actor)?;
    let url = format!("{}/{path}", base.trim_end_matches('/'));
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("Failed to build the HTTP client")?;
    let mut req = client
        .request(verb.parse().context("method")?, &url)
        .header("content-type", "application/json")
        .body(bytes.clone());
    req = match &args.token {
        Some(t) => req.bearer_auth(t),
        None => {
            let aws = Aws::default();
            let signed = dispatcher_aws::sigv4::headers(
                aws.config().await,
                verb,
                &url,
                "application/json",
                &bytes,
            )
            .await?;
            signed.into_iter().fold(req, |r, (k, v)| r.header(k, v))
        }
    };
    let response = req
        .send()
        .await
        .with_context(|| format!("Failed to reach {url}"))?;
    let status = response.status();
    let text = response.text().await.context("Failed to read the answer")?;
    let value: Option<Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        return Ok(Ok(value.unwrap_or(Value::String(text))));
    }
    let error = value.as_ref().map(|v| &v["error"]);
    Ok(Err(Refusal {
        code: error
            .and_then(|e| e["code"].as_str())
            .unwrap_or(status.as_str())
            .to_owned(),
        message: error
            .and_then(|e| e["message"].as_str())
            .map_or(text.clone(), str::to_owned),
    }))
}
