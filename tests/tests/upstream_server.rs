//! ci-tools' `pkg/dispatcher/server_test.go` and `pkg/dispatcher/ephemeralcluster_test.go`
//! (HEAD `52352cd19`), and the classic lookup server (`pkg/dispatcher/server.go` at
//! `aaacbe804`, which has no test of its own), translated: what Prow's external scheduler
//! and the ci-tools clients get from `POST /`, and the round-robin of `ephemeralcluster*`
//! jobs. Each test names the Go test it comes from; a case that differs on purpose says
//! why.
//!
//! Ours is the lookup router over the local store (SQLite and files), in process: a plan is
//! published as a generation, and requests go through the router with `tower`'s `oneshot`.

mod upstream_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use dispatcher_api::{LookupState, lookup_router};
use dispatcher_app::Cause;
use dispatcher_app::LookupService;
use dispatcher_app::Stores;
use dispatcher_app::model::Assignments;
use dispatcher_app::publish::{self, PublishOptions};
use dispatcher_app::records::EPHEMERAL_TTL;
use dispatcher_core::model::Job;
use dispatcher_core::{Plan, Settings};
use http_body_util::BodyExt;
use tower::ServiceExt;
use upstream_support::*;

/// When the requests of these tests are made (seconds since the epoch).
const NOW: i64 = 1_700_000_000;

/// A plan of these jobs, one file each, over these usable clusters (the first is
/// `default`).
fn plan(clusters: &[&str], jobs: Vec<Job>) -> Plan {
    let files: Vec<_> = jobs
        .into_iter()
        .map(|j| {
            file(
                &format!("org/{0}/org-{0}-main-presubmits.yaml", j.name),
                vec![j],
            )
        })
        .collect();
    let inv = inventory(clusters.iter().map(|c| cluster(c, "aws", 100)).collect());
    run(
        &config(clusters[0]),
        &inv,
        &files,
        None,
        None,
        &Settings::default(),
    )
    .expect("the plan")
}

/// An empty local store.
fn store() -> (Stores, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    (
        dispatcher_app::local::open(dir.path()).expect("the local store"),
        dir,
    )
}

async fn publish(stores: &Stores, plan: &Plan) -> u64 {
    publish::publish(stores, plan, &PublishOptions::new(Cause::Manual, NOW))
        .await
        .expect("published")
        .generation
}

/// The lookup router answering at `now`; it re-reads the generation pointer on every
/// request, so a publish is seen at once.
fn app(stores: &Stores, now: fn() -> i64) -> Router {
    lookup_router(Arc::new(LookupState {
        service: Arc::new(LookupService::with_refresh(stores.clone(), Duration::ZERO)),
        now,
    }))
}

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, String, HeaderMap) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body.to_owned()))
        .expect("a request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

/// `POST /` with `{"job": job}`: the status and, for a 200, the answer.
async fn lookup(app: &Router, job: &str) -> (StatusCode, Option<serde_json::Value>) {
    let body = serde_json::json!({ "job": job }).to_string();
    let (status, body, _) = send(app, Method::POST, "/", &body).await;
    let answer =
        (status == StatusCode::OK).then(|| serde_json::from_str(&body).expect("a JSON answer"));
    (status, answer)
}

/// The cluster an ephemeral job gets (it must get one).
async fn ephemeral(app: &Router, job: &str) -> String {
    let (status, answer) = lookup(app, job).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let answer = answer.expect("an answer");
    assert_eq!(answer["source"], "ephemeral-cluster", "{job}");
    answer["cluster"].as_str().expect("a cluster").to_owned()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Go: `TestSnapshotServerReadinessAndGenerationResponse`.
#[tokio::test]
async fn go_test_snapshot_server_readiness_and_generation_response() {
    let (stores, _dir) = store();
    let app = app(&stores, || NOW);

    // Differs on purpose: Go's `/readyz` answers 503 until a snapshot is loaded, a
    // Kubernetes readiness probe. A Lambda behind API Gateway has no readiness probe; ours
    // has no `/readyz`, and `/healthz` says what is served.
    let (status, ..) = send(&app, Method::GET, "/readyz", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body, _) = send(&app, Method::GET, "/healthz", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "ok: nothing published yet\n")
    );

    // Differs on purpose: Go answers "before-publish" from its legacy gob (200 build02,
    // source legacy-gob-fallback). Ours has no gob: before the first generation every job
    // is 404 and Prow uses the job's static cluster (F10).
    assert_eq!(
        lookup(&app, "before-publish").await.0,
        StatusCode::NOT_FOUND
    );

    // Generation 7, where "job" runs on build01. Ours numbers generations from 1 by
    // publishing; seven distinct plans reach 7.
    let base = plan(&["build01"], vec![job("job")]);
    let mut generation = 0;
    for g in 1..=7 {
        let mut p = base.clone();
        p.inputs.config = format!("sha256:{g:064}");
        generation = publish(&stores, &p).await;
    }
    assert_eq!(generation, 7);

    let (status, body, _) = send(&app, Method::GET, "/healthz", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "ok: generation 7\n")
    );

    let (status, body, headers) = send(&app, Method::POST, "/", r#"{"job":"job"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    // Differs on purpose: our header is `X-Dispatcher-Generation` and the answer's fields
    // are `generation` and `source: generation` (README "Serving lookups"), not Go's
    // `X-Dispatcher-Policy-Generation`, `policyGeneration` and `source: baseline`. Prow
    // reads only `cluster`.
    assert_eq!(header(&headers, "x-dispatcher-generation"), Some("7"));
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"cluster": "build01", "generation": 7, "source": "generation"})
    );
    assert!(!body.contains("validUntil"), "{body}");

    // Differs on purpose: Go answers a job missing from the snapshot from its legacy gob
    // (200 build03); ours has no gob: 404, and Prow uses the static cluster.
    assert_eq!(
        lookup(&app, "missing-from-snapshot").await.0,
        StatusCode::NOT_FOUND
    );
}

/// Go: `TestErrOutWhenNoClusterIsAvailable`: 500 `Failed to get the cluster`, as the Go
/// server answers the scheduler's error.
///
/// Ours never publishes a generation without a usable cluster (F4b), so the generation's
/// answer table is rewritten with no usable cluster to reach that state.
#[tokio::test]
async fn go_test_err_out_when_no_cluster_is_available() {
    let (stores, _dir) = store();
    publish(&stores, &plan(&["b01"], vec![job("job")])).await;
    let pointer = stores.table.pointer().await.unwrap().unwrap();
    let key = publish::assignments_key(&pointer.snapshot);
    let bytes = stores.snapshots.get(&key).await.unwrap().unwrap();
    let mut table: Assignments = dispatcher_app::codec::gunzip_json(&bytes).unwrap();
    table.usable.clear();
    stores
        .snapshots
        .put(
            &key,
            dispatcher_app::codec::gzip_json(&table).unwrap(),
            "application/json",
        )
        .await
        .unwrap();

    let app = app(&stores, || NOW);
    let (status, body, _) = send(
        &app,
        Method::POST,
        "/",
        r#"{"job":"ephemeralcluster-foobar"}"#,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to get the cluster\n"
        )
    );
}

/// Go: `TestDispatch`: round-robin over b01, b02, b03; a job asking again keeps its cluster.
/// Go calls the scheduler directly; through the server only `ephemeralcluster*` names reach
/// it, so ours are prefixed.
#[tokio::test]
async fn go_test_dispatch() {
    let (stores, _dir) = store();
    publish(&stores, &plan(&["b01", "b02", "b03"], vec![job("job")])).await;
    let app = app(&stores, || NOW);
    for (job, want) in [
        ("ephemeralcluster-pj1", "b01"),
        ("ephemeralcluster-pj2", "b02"),
        ("ephemeralcluster-pj1", "b01"),
    ] {
        assert_eq!(ephemeral(&app, job).await, want, "{job}");
    }
}

/// Go: `TestCacheExpires`: once the 24 hours have passed, the job is given the next
/// cluster of the round-robin.
#[tokio::test]
async fn go_test_cache_expires() {
    let (stores, _dir) = store();
    publish(&stores, &plan(&["b01", "b02", "b03"], vec![job("job")])).await;
    let foo = "ephemeralcluster-foo";
    assert_eq!(ephemeral(&app(&stores, || NOW), foo).await, "b01");
    // Go: one nanosecond past the TTL; ours counts seconds.
    let later = app(&stores, || NOW + EPHEMERAL_TTL + 1);
    assert_eq!(ephemeral(&later, foo).await, "b02");
}

/// Go: `TestReset`: a full dispatch resets the scheduler to the new clusters b04, b05, b06,
/// forgetting every choice and restarting the round-robin, so the job gets b04.
#[tokio::test]
async fn go_test_reset() {
    let (stores, _dir) = store();
    publish(&stores, &plan(&["b01", "b02", "b03"], vec![job("job")])).await;
    let app = app(&stores, || NOW);
    let foo = "ephemeralcluster-foo";
    assert_eq!(ephemeral(&app, foo).await, "b01");

    publish(&stores, &plan(&["b04", "b05", "b06"], vec![job("job")])).await;
    // Differs on purpose: ours keeps the round-robin's counter in the store across
    // generations (so that it survives cold starts and is shared by every instance, F9),
    // and keeps a job's choice for 24 hours while its cluster still takes work. The job's
    // b01 is gone, so it chooses again, and the counter's second turn gives the second
    // cluster, b05, where Go's restarted round-robin gives b04.
    assert_eq!(ephemeral(&app, foo).await, "b05");
}

/// Go: classic `Server.RequestHandler` (`aaacbe804`), which has no Go test: `POST /` with
/// `{"job": NAME}`, the body read by Go's `json.Decoder` (the first JSON value; the `job`
/// key matched case-insensitively, the last of several winning; other keys ignored).
#[tokio::test]
async fn go_classic_request_handler() {
    let (stores, _dir) = store();
    let mut legacy = job("legacy");
    legacy.agent = "jenkins".to_owned();
    publish(
        &stores,
        &plan(&["build01"], vec![job("pull-ci-known"), legacy]),
    )
    .await;
    let app = app(&stores, || NOW);

    const OK: StatusCode = StatusCode::OK;
    const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    let cases: &[(&str, StatusCode)] = &[
        (r#"{"job":"pull-ci-known"}"#, OK),
        (r#"{"JOB":"pull-ci-known"}"#, OK),
        (r#"{"Job":"pull-ci-known","extra":[1,{"x":null}]}"#, OK),
        (r#"{"job":"other","JOB":"pull-ci-known"}"#, OK),
        (r#"{"job":"pull-ci-known"} trailing garbage"#, OK),
        (r#"{"job":"pull-ci-known"}{"job":"other"}"#, OK),
        ("  \n{\"job\":\"pull-ci-known\"}\n", OK),
        (r#"{"job":"pull-ci-known","job":null}"#, OK),
        // Unknown; a job without a cluster (a non-Kubernetes agent); a rehearsal, whose
        // prefix is not stripped (ci-tools `8376c7f08`).
        (r#"{"job":"no-such-job"}"#, NOT_FOUND),
        (r#"{"job":"legacy"}"#, NOT_FOUND),
        (r#"{"job":"rehearse-1234-pull-ci-known"}"#, NOT_FOUND),
        // Decoder errors.
        ("not json", BAD),
        ("", BAD),
        (r#"["pull-ci-known"]"#, BAD),
        (r#""pull-ci-known""#, BAD),
        (r#"{"job":5}"#, BAD),
        (r#"{"job":"pull-ci-known""#, BAD),
        // Differs on purpose (README "Serving lookups"): Go decodes these without error
        // into an empty job name and answers 404; ours refuses a body without a job string
        // as a bad request. Both are non-200: Prow falls back to the static cluster.
        ("{}", BAD),
        (r#"{"job":""}"#, BAD),
        (r#"{"job":null}"#, BAD),
        ("null", BAD),
        (r#"{"name":"pull-ci-known"}"#, BAD),
    ];
    for (body, want) in cases {
        let (status, text, headers) = send(&app, Method::POST, "/", body).await;
        assert_eq!(status, *want, "{body}: {text}");
        match status {
            StatusCode::OK => {
                assert_eq!(header(&headers, "content-type"), Some("application/json"));
                assert!(text.ends_with('\n'), "{text:?}");
                let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                // Ours adds `generation` and `source`; Prow reads only `cluster`.
                assert_eq!(answer["cluster"], "build01", "{body}");
            }
            _ => assert_eq!(
                header(&headers, "content-type"),
                Some("text/plain; charset=utf-8"),
                "{body}"
            ),
        }
        if status == NOT_FOUND {
            assert_eq!(text, "Cluster not found\n", "{body}");
        }
    }

    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let (status, text, _) = send(&app, method.clone(), "/", r#"{"job":"pull-ci-known"}"#).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "Invalid request method\n"),
            "{method}"
        );
    }
    let (status, text, _) = send(
        &app,
        Method::POST,
        "/elsewhere",
        r#"{"job":"pull-ci-known"}"#,
    )
    .await;
    assert_eq!((status, text.as_str()), (NOT_FOUND, "Not found\n"));
    // Differs on purpose (wire-contracts.md §1.7: any path other than `/` is 404): Go
    // checks the method before the path, so it answers 405 here.
    let (status, ..) = send(&app, Method::GET, "/elsewhere", "").await;
    assert_eq!(status, NOT_FOUND);
}

/// Go: classic `Server.EventHandler` (`aaacbe804`), which has no Go test: `GET
/// /event?dispatch=true` runs a forced dispatch synchronously, unauthenticated.
#[tokio::test]
async fn go_classic_event_handler() {
    let (stores, _dir) = store();
    publish(&stores, &plan(&["build01"], vec![job("job")])).await;
    let pointer = stores.table.pointer().await.unwrap().unwrap().generation;
    let app = app(&stores, || NOW);
    // Differs on purpose (F17): the lookup exposes nothing that mutates; recomputes come
    // from the schedule, the signed webhook or an authorised trigger.
    for uri in ["/event?dispatch=true", "/event?dispatch=false", "/event"] {
        let (status, ..) = send(&app, Method::GET, uri, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
    let now = stores.table.pointer().await.unwrap().unwrap().generation;
    assert_eq!(now, pointer, "nothing was recomputed");
}
