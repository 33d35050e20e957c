//! `dispatcher`, the operator CLI: every command through the use cases the Lambdas run, and
//! `serve`, the three functions' routers on localhost. `main` parses and calls [`run`].
#![warn(missing_docs)]

pub mod args;
pub mod commands;
pub mod overrides;
pub mod render;
pub mod serve;
pub mod store;

use std::process::ExitCode;

use anyhow::Result;

use args::{Cli, Command};

/// Runs a parsed command line; the exit code says how it went.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate(r) => commands::validate(&r),
        Command::Resolve {
            release,
            ladder_only,
            out,
        } => commands::resolve(&release, ladder_only, &out),
        Command::Plan(mut args) => {
            // `--previous live`: the serving generation's baseline plan, read from the store.
            let live = match args.previous.as_deref() {
                Some(p) if p == std::path::Path::new(store::LIVE) => {
                    args.previous = None;
                    Some(store::live_plan().await?)
                }
                _ => None,
            };
            commands::plan(&args, live)
        }
        Command::Explain { plan, job } => commands::explain(&plan, &job),
        Command::Diff { old, new, format } => commands::diff(&old, &new, format),
        Command::Sanitize { release, plan } => commands::sanitize(&release, &plan),
        Command::Publish {
            plan,
            expect_generation,
            overrides,
        } => store::publish(&plan, expect_generation, overrides.into()).await,
        Command::Rollback { to, overrides } => store::rollback(to, overrides.into()).await,
        Command::History { job } => store::history(&job).await,
        Command::Status => store::status().await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Override(args) => overrides::run(args).await,
    }
}
