//! Through the recompute function's Lambda handler: a recompute that fails for good (its
//! inputs are unusable) ends the invocation successfully with the failure recorded, so
//! that Lambda does not retry it into the dead-letter queue; a transient failure fails the
//! invocation, so that Lambda's retry applies.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::sync::Arc;

use async_trait::async_trait;
use dispatcher_app::local::{FileDemand, LocalRepo};
use dispatcher_app::records::Markers;
use dispatcher_app::{Recomputer, RepoSource, SourceError};
use dispatcher_config::RuntimeConfig;
use dispatcher_formats::Release;
use dispatcher_tests::{copy_tree, sample};
use serde_json::json;

const T0: i64 = 1_800_000_000;

/// GitHub down: every call may work later.
struct Unreachable;

#[async_trait]
impl RepoSource for Unreachable {
    async fn head(&self) -> Result<String, SourceError> {
        Err(SourceError::retryable("github", "connection reset"))
    }
    async fn release(&self, _: &str) -> Result<Release, SourceError> {
        Err(SourceError::retryable("github", "connection reset"))
    }
    async fn blob_sha(&self, _: &str, _: &str) -> Result<Option<String>, SourceError> {
        Err(SourceError::retryable("github", "connection reset"))
    }
}

fn recomputer(repo: Arc<dyn RepoSource>, stores: dispatcher_app::Stores) -> Recomputer {
    let vars = std::collections::BTreeMap::<&str, String>::new();
    let cfg = RuntimeConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let demand = Arc::new(FileDemand {
        runs: sample().join("volumes.json"),
        durations: None,
        cpu: None,
        memory: None,
    });
    recompute::recomputer_over(&cfg, stores, repo, demand, None)
}

async fn invoke(r: &Recomputer) -> Result<serde_json::Value, String> {
    let event = lambda_runtime::LambdaEvent::new(
        json!({"trigger": "push", "mode": "full"}),
        lambda_runtime::Context::default(),
    );
    recompute::handle(r, event, T0).await.map_err(|e| {
        let d: lambda_runtime::Diagnostic = e.into();
        d.error_type
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_recorded_not_retried_and_a_transient_one_is_retried() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let stores = dispatcher_app::local::open(&dir.path().join("store")).unwrap();
    let release = dir.path().join("release");
    copy_tree(&sample().join("release"), &release);
    std::fs::write(
        release.join("core-services/sanitize-prow-jobs/_config.yaml"),
        "buildFarm: {}\n",
    )
    .unwrap();
    let broken = recomputer(
        Arc::new(LocalRepo {
            path: release,
            clusters: None,
            limits: Default::default(),
        }),
        stores.clone(),
    );
    let answer = invoke(&broken)
        .await
        .expect("a permanent failure ends the invocation");
    assert_eq!(answer["retried"], false, "{answer}");
    assert_eq!(answer["failed"], "inputs", "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("default"),
        "{answer}"
    );
    let (at, what) = Markers(stores.table.as_ref())
        .last_failure()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at, T0);
    assert!(what.starts_with("inputs: "), "{what}");
    assert!(
        stores.serving().await.unwrap().is_none(),
        "nothing published"
    );

    let down = recomputer(Arc::new(Unreachable), stores.clone());
    assert_eq!(invoke(&down).await.unwrap_err(), "Retryable");
}
