//! `dispatcher override`: the incident controls from a terminal, through the same use case
//! the control API runs, on the store the environment names (the local store, or
//! DynamoDB and S3 with the caller's AWS credentials), or through the control API itself
//! (`--api`: SigV4-signed, or a local server's bearer token). Answers are printed as the
//! control API writes them, so that scripts read one shape.

mod remote;

use std::process::ExitCode;

use anyhow::Result;
use dispatcher_app::control::{Control, ControlError, PlanRequest};
use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;

use crate::args::{OverrideArgs, OverrideCommand, OverridePlanArgs};

/// Runs one `dispatcher override` command.
pub async fn run(args: OverrideArgs) -> Result<ExitCode> {
    let writes = !matches!(
        args.command,
        OverrideCommand::List | OverrideCommand::Status
    );
    let actor = actor(args.actor.clone(), writes)?;
    if let Some(api) = args.api.clone() {
        return print(remote::call(&args, &api, &actor).await?);
    }
    let cfg = RuntimeConfig::from_env()?;
    let stores = crate::store::open_with(&cfg.store, &Aws::default()).await?;
    let control = Control {
        stores,
        settings: cfg.engine.clone(),
        limits: cfg.controls.clone(),
        notifier: None,
    };
    let now = dispatcher_api::now();
    let answer = match args.command {
        OverrideCommand::Plan(p) => control
            .plan(plan_request(&p, now), &actor, now)
            .await
            .map(|r| dispatcher_api::control::plan_answer(&r)),
        OverrideCommand::Apply {
            plan,
            confirm_unprotected,
        } => to_json(control.apply(&plan, &actor, confirm_unprotected, now).await),
        OverrideCommand::Approve { id } => to_json(control.approve(&id, &actor, now).await),
        OverrideCommand::Cancel { id } => to_json(control.cancel(&id, &actor, now).await),
        OverrideCommand::List => control
            .list()
            .await
            .map(|all| serde_json::json!({ "overrides": all })),
        OverrideCommand::Status => to_json(control.status().await),
        OverrideCommand::Sweep => to_json(control.sweep(now).await),
    };
    match answer {
        Ok(value) => print(Ok(value)),
        Err(e) if e.is_refusal() => print(Err(Refusal {
            code: e.code().to_owned(),
            message: e.to_string(),
        })),
        Err(e) => Err(anyhow::Error::new(e).context("the control action failed")),
    }
}

/// A control action refused, as the control API's error body says it.
pub(crate) struct Refusal {
    code: String,
    message: String,
}

/// Prints an answer as the control API writes it, whether it came from the store or the
/// API: the JSON on stdout; a refusal with its code on stderr, and exit code 1.
fn print(answer: Result<serde_json::Value, Refusal>) -> Result<ExitCode> {
    match answer {
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => {
            eprintln!("refused ({}): {}", r.code, r.message);
            Ok(ExitCode::from(1))
        }
    }
}

/// The plan request of `dispatcher override plan`, the same on the store and through the
/// API; without `--idempotency-key`, a fresh one.
fn plan_request(p: &OverridePlanArgs, now: i64) -> PlanRequest {
    PlanRequest {
        kind: p.kind,
        cluster: p.cluster.clone(),
        capability: p.capability.clone(),
        capacity: p.capacity,
        duration: p.duration.clone(),
        reason: p.reason.clone(),
        incident_url: p.incident_url.clone(),
        idempotency_key: p
            .idempotency_key
            .clone()
            .unwrap_or_else(|| format!("cli-{}", dispatcher_app::publish::fresh_owner(now))),
    }
}

fn to_json<T: serde::Serialize>(
    r: Result<T, ControlError>,
) -> Result<serde_json::Value, ControlError> {
    r.map(|v| serde_json::to_value(v).unwrap_or_default())
}

/// `--actor`, or the login name; only an action that changes something needs one.
fn actor(given: Option<String>, needed: bool) -> Result<String> {
    let named = given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty());
    match named {
        Some(a) => Ok(a),
        None if !needed => Ok(String::new()),
        None => anyhow::bail!(
            "--actor is required when USER is not set: the audit trail names who acts"
        ),
    }
}
