//! `dispatcher serve`: the lookup, webhook and manual trigger on localhost, over the store
//! the environment names (the embedded local store by default), with the Lambdas' code.

mod listener;
pub mod local;
mod sample;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use dispatcher_app::Handoff as _;
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_config::{RuntimeConfig, StoreConfig};
use tokio::net::TcpListener;

use crate::args::ServeArgs;
use dispatcher_formats::InputPaths;
use local::LocalServer;

/// A random token for the manual trigger when none is configured.
fn token(config: &RuntimeConfig) -> Result<String> {
    if let Some(t) = &config.trigger_token {
        return Ok(t.clone());
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("Failed to read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `dispatcher serve`: the lookup, the webhook and the manual trigger on one local port, until interrupted.
pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = RuntimeConfig::from_env()?;
    // The flag over the environment over the default, as for the functions.
    if let Some(c) = &args.vsphere_cluster {
        config.engine.vsphere_cluster = c.clone();
    }
    let (inputs, scratch) = if args.demo {
        let dir = std::env::temp_dir().join(format!(
            "dispatcher-demo-{}-{}",
            std::process::id(),
            dispatcher_api::now()
        ));
        sample::write_sample(&dir)?;
        // A fresh store beside the sample: the demo never touches a configured store.
        config.store = StoreConfig::Local {
            dir: dir.join("store"),
        };
        let inputs = InputPaths {
            release: dir.join("release"),
            volumes: Some(dir.join("volumes.json")),
            ..InputPaths::default()
        };
        (inputs, Some(dir))
    } else {
        let release: PathBuf = args.release.clone().context("--release is required")?;
        let inputs = InputPaths {
            release,
            clusters: args.clusters.clone(),
            volumes: args.volumes.clone(),
            durations: args.demand.durations.clone(),
            cpu: args.demand.cpu_seconds.clone(),
            memory: args.demand.memory_byte_seconds.clone(),
            ..InputPaths::default()
        };
        (inputs, None)
    };
    let server = LocalServer::build(&config, &inputs, token(&config)?).await?;

    start_recompute(&server, &inputs.release).await?;
    spawn_sweep(server.control.clone());
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("Failed to listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    // One write, and a closed stdout is not fatal: the banner is for a person, and a reader
    // that stops after the address (a test, `| head -1`) must not take the server down.
    let mut banner = vec![
        format!("serving on http://{addr}"),
        format!(
            "  lookup:    curl -s -d '{{\"job\":\"pull-ci-acme-widget-main-unit\"}}' http://{addr}/"
        ),
        format!("  explain:   curl -s http://{addr}/explain/pull-ci-acme-widget-main-unit"),
        format!(
            "  recompute: curl -s -X POST -H 'Authorization: Bearer {}' http://{addr}/recompute",
            server.token
        ),
        format!(
            "  controls:  curl -s -H 'Authorization: Bearer {}' http://{addr}/control/v1/status",
            server.token
        ),
    ];
    if server.webhook {
        banner.push(format!(
            "  webhook:   POST http://{addr}/github (signed with DISPATCHER_WEBHOOK_SECRET)"
        ));
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", banner.join("\n")).and_then(|()| out.flush());
    }
    listener::serve_connections(listener, server.router, config.serve).await;
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(ExitCode::SUCCESS)
}

/// The sweep that ends overrides, every minute as on AWS (the lookup already answers a
/// job's baseline once its override ended; the sweep publishes the generation without it).
fn spawn_sweep(control: dispatcher_app::control::Control) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match control.sweep(dispatcher_api::now()).await {
                Ok(r) if !r.expired.is_empty() || !r.rejected.is_empty() => {
                    tracing::info!(expired = ?r.expired, rejected = ?r.rejected, generation = ?r.generation, "sweep");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %dispatcher_core::chain(&e), "the sweep failed; it runs again in a minute")
                }
            }
        }
    });
}

/// The start-up recompute. With nothing published yet it runs before serving, so that the
/// first lookup has an answer. With a whole generation in the store, that generation is
/// served at once and the recompute runs behind it: a failed or refused recompute must not
/// keep the last good generation from serving. A publish that another process left half
/// done (killed) holds the next generation until its lease ends; the recompute is handed in
/// again then, when it may take that publish over.
async fn start_recompute(server: &LocalServer, release: &Path) -> Result<()> {
    let pointer = server.stores.table.pointer().await?;
    let serving = pointer.as_ref().map_or(0, |p| p.generation);
    let at = dispatcher_api::now();
    if let Some(held) = pointer
        .as_ref()
        .and_then(|p| p.pending.as_ref())
        .filter(|h| h.lease_until >= at)
    {
        println!(
            "a publish of generation {} started at {} holds the store until {} (UTC), its publisher probably dead: serving generation {serving} meanwhile; recomputing {} when the publish may be taken over (`dispatcher publish --take-over` takes it over now)",
            held.generation,
            dispatcher_app::model::utc(held.started_at),
            dispatcher_app::model::utc(held.lease_until),
            release.display()
        );
        let handoff = server.handoff.clone();
        let wait = u64::try_from(held.lease_until - at + 1).unwrap_or(0);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            if let Err(e) = handoff.submit(&RecomputeRequest::weekly()).await {
                tracing::error!(error = %e, "the recompute after the held publish could not be handed in");
            }
        });
        return Ok(());
    }
    if serving > 0 {
        println!(
            "serving generation {serving}; recomputing {} behind it",
            release.display()
        );
        server.handoff.submit(&RecomputeRequest::weekly()).await?;
        return Ok(());
    }
    let outcome = server
        .recomputer
        .run(
            &RecomputeRequest::weekly(),
            &dispatcher_app::publish::fresh_owner(at),
            at,
        )
        .await
        .map_err(|e| anyhow::anyhow!("the first recompute failed: {e}"))?;
    println!(
        "generation {} published ({} assignments changed) from {}",
        outcome.published.generation,
        outcome.published.changed,
        release.display()
    );
    Ok(())
}
