//! `dispatcher serve`: the lookup, webhook and manual trigger on localhost, over the store
//! the environment names (the embedded local store by default), with the Lambdas' code.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use axum::serve::ListenerExt as _;
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_runtime::{LocalInputs, LocalServer, RuntimeConfig, now};
use dispatcher_store::StoreConfig;

use crate::ServeArgs;

/// The bundled sample release, so that `serve --demo` works from anywhere.
const SAMPLE: &[(&str, &str)] = &[
    (
        "release/core-services/sanitize-prow-jobs/_config.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/core-services/sanitize-prow-jobs/_config.yaml"
        ),
    ),
    (
        "release/core-services/sanitize-prow-jobs/_clusters.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/core-services/sanitize-prow-jobs/_clusters.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/widget/acme-widget-main-postsubmits.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/widget/acme-widget-main-postsubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/gadget/acme-gadget-main-presubmits.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/gadget/acme-gadget-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/gadget/acme-gadget-main-periodics.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/gadget/acme-gadget-main-periodics.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/lab/acme-lab-main-presubmits.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/lab/acme-lab-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/infra-periodics.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/infra-periodics.yaml"
        ),
    ),
    (
        "volumes.json",
        include_str!("../../../tests/fixtures/sample/volumes.json"),
    ),
];

fn write_sample(dir: &Path) -> Result<()> {
    for (rel, text) in SAMPLE {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }
    Ok(())
}

/// A random token for the manual trigger when none is configured.
fn token() -> Result<String> {
    if let Some(t) = std::env::var("DISPATCHER_TRIGGER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        return Ok(t);
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("Failed to read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = RuntimeConfig::from_env()?;
    // The flag over the environment over the default, as for the functions.
    if let Some(c) = &args.vsphere_cluster {
        config.engine.vsphere_cluster = c.clone();
    }
    let (inputs, scratch) = if args.demo {
        let dir =
            std::env::temp_dir().join(format!("dispatcher-demo-{}-{}", std::process::id(), now()));
        write_sample(&dir)?;
        // A fresh store beside the sample: the demo never touches a configured store.
        config.store = StoreConfig::Local {
            dir: dir.join("store"),
        };
        let inputs = LocalInputs {
            release: dir.join("release"),
            clusters: None,
            volumes: Some(dir.join("volumes.json")),
            durations: None,
            cpu: None,
            memory: None,
        };
        (inputs, Some(dir))
    } else {
        let release: PathBuf = args.release.clone().context("--release is required")?;
        let inputs = LocalInputs {
            release,
            clusters: args.clusters.clone(),
            volumes: args.volumes.clone(),
            durations: args.durations.clone(),
            cpu: args.cpu_seconds.clone(),
            memory: args.memory_byte_seconds.clone(),
        };
        (inputs, None)
    };
    let server = LocalServer::build(&config, &inputs, token()?).await?;

    // Place and publish before serving, so that the first lookup has an answer.
    let at = now();
    let outcome = server
        .recomputer
        .run(
            &RecomputeRequest::weekly(),
            &dispatcher_store::publish::fresh_owner(at),
            at,
        )
        .await
        .map_err(|e| anyhow::anyhow!("the first recompute failed: {e}"))?;
    println!(
        "generation {} published ({} assignments changed) from {}",
        outcome.published.generation,
        outcome.published.changed,
        inputs.release.display()
    );
    let listener = tokio::net::TcpListener::bind(args.addr)
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
    // Small answers on kept-alive connections: do not wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, server.router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(ExitCode::SUCCESS)
}
