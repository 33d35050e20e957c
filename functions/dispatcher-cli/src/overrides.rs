//! `dispatcher override`: the incident controls from a terminal, through the same use case
//! the control API runs, on the store the environment names (the local store, or
//! DynamoDB and S3 with the caller's AWS credentials). Answers are printed as the control
//! API writes them, so that scripts read one shape.

use std::process::ExitCode;

use anyhow::{Context, Result};
use dispatcher_app::control::{Control, ControlError, PlanRequest};
use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;

use crate::args::{OverrideArgs, OverrideCommand};

/// Runs one `dispatcher override` command.
pub async fn run(args: OverrideArgs) -> Result<ExitCode> {
    let cfg = RuntimeConfig::from_env()?;
    let stores = crate::store::open_with(&cfg.store, &Aws::default()).await?;
    let control = Control {
        stores,
        settings: cfg.engine.clone(),
        limits: cfg.controls.clone(),
        notifier: None,
    };
    let actor = actor(args.actor)?;
    let now = dispatcher_api::now();
    let answer = match args.command {
        OverrideCommand::Plan(p) => {
            let request = PlanRequest {
                kind: p.kind,
                cluster: p.cluster,
                capability: p.capability,
                capacity: p.capacity,
                duration: p.duration,
                reason: p.reason,
                incident_url: p.incident_url,
                idempotency_key: p.idempotency_key.unwrap_or_else(|| {
                    format!("cli-{}", dispatcher_app::publish::fresh_owner(now))
                }),
            };
            control
                .plan(request, &actor, now)
                .await
                .map(|r| dispatcher_api::control::plan_answer(&r))
        }
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
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_refusal() => {
            eprintln!("refused ({}): {e}", e.code());
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(anyhow::Error::new(e).context("the control action failed")),
    }
}

fn to_json<T: serde::Serialize>(
    r: Result<T, ControlError>,
) -> Result<serde_json::Value, ControlError> {
    r.map(|v| serde_json::to_value(v).unwrap_or_default())
}

/// `--actor`, or the login name.
fn actor(given: Option<String>) -> Result<String> {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .context("--actor is required when USER is not set: the audit trail names who acts")
}
