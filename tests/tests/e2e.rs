//! End to end: a weekly recompute, then a signed push that blocks a cluster in
//! `_clusters.yaml` -> webhook -> recompute -> the lookup answers another cluster for a job
//! that was there, and the backup PR's commit carries the new `cluster:` line. DynamoDB and
//! S3 are the emulator, Prometheus is real, GitHub is a local mock serving tarballs of the
//! sample release. Once through the local server, once through recorded Lambda event shapes.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_cli::serve::local::LocalServer;
use dispatcher_config::RuntimeConfig;
use dispatcher_formats::InputPaths;
use dispatcher_tests::{copy_tree, sample};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tower::ServiceExt;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TEMPLATE: &str = include_str!("../../template.yaml");
const SECRET: &str = "webhook-s3cret";
const REPO: &str = "/repos/acme/release";
const CLUSTERS: &str = "core-services/sanitize-prow-jobs/_clusters.yaml";
/// A job of the sample that the weekly run puts on build03.
const JOB: &str = "pull-ci-acme-widget-main-unit";
const JOB_FILE: &str = "ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml";

fn require(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None if std::env::var_os("DISPATCHER_REQUIRE_EMULATOR").is_some() => {
            panic!("{var} is required")
        }
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED e2e: {var} is unset; ./infra/test.sh starts the emulator and Prometheus"
            );
            None
        }
    }
}

/// The sample release as GitHub serves a tarball: under `acme-release-<sha>/`, with
/// `overlay` files replaced and build03 blocked when `blocked`.
fn tarball(sha: &str, overlay: &BTreeMap<String, String>, blocked: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&sample().join("release"), dir.path());
    for (file, text) in overlay {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    if blocked {
        let p = dir.path().join(CLUSTERS);
        let text = std::fs::read_to_string(&p).unwrap().replace(
            "  - name: build03\n",
            "  - name: build03\n    blocked: true\n",
        );
        std::fs::write(&p, text).unwrap();
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(format!("acme-release-{sha}"), dir.path())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

async fn json(server: &MockServer, verb: &str, route: &str, body: Value) {
    Mock::given(method(verb))
        .and(path(format!("{REPO}{route}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// One commit of the release on the GitHub mock.
async fn commit(server: &MockServer, sha: &str, overlay: &BTreeMap<String, String>, blocked: bool) {
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/tarball/{sha}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(tarball(sha, overlay, blocked)))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/contents/{CLUSTERS}")))
        .and(query_param("ref", sha))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "file", "sha": format!("blob-{sha}")})),
        )
        .mount(server)
        .await;
    json(
        server,
        "GET",
        &format!("/git/commits/{sha}"),
        json!({"sha": sha, "tree": {"sha": format!("tree-{sha}")}}),
    )
    .await;
}

/// The second commit, `bbbb`: the backup PR of the first generation merged (its files as
/// the mock received them), then build03 blocked. It becomes the branch's head, as the push
/// that brings it says.
async fn merge_and_block(server: &MockServer) {
    let overlay = pr_files(server, 0).await;
    assert!(!overlay.is_empty(), "the first generation opened a PR");
    commit(server, "bbbb", &overlay, true).await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/git/ref/heads/main")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": {"sha": "bbbb", "type": "commit"}})),
        )
        // Ahead of the first head's answer.
        .with_priority(1)
        .mount(server)
        .await;
}

/// GitHub with the release at `aaaa` (the head).
async fn github() -> MockServer {
    let server = MockServer::start().await;
    json(
        &server,
        "GET",
        "",
        json!({"default_branch": "main", "full_name": "acme/release"}),
    )
    .await;
    json(
        &server,
        "GET",
        "/git/ref/heads/main",
        json!({"object": {"sha": "aaaa", "type": "commit"}}),
    )
    .await;
    commit(&server, "aaaa", &BTreeMap::new(), false).await;
    json(&server, "POST", "/git/trees", json!({"sha": "new-tree"})).await;
    json(
        &server,
        "POST",
        "/git/commits",
        json!({"sha": "new-commit"}),
    )
    .await;
    json(
        &server,
        "PATCH",
        "/git/refs/heads/automate-prow-job-dispatcher",
        json!({"object": {"sha": "new-commit"}}),
    )
    .await;
    // No backup branch yet (the mock answers 404 to reading it): it is created.
    json(
        &server,
        "POST",
        "/git/refs",
        json!({"ref": "refs/heads/automate-prow-job-dispatcher", "object": {"sha": "new-commit"}}),
    )
    .await;
    json(&server, "GET", "/pulls", json!([])).await;
    json(&server, "POST", "/pulls", json!({"number": 17})).await;
    json(&server, "POST", "/issues/17/labels", json!([])).await;
    server
}

/// The configuration the functions would read, pointing at the emulator, Prometheus and
/// the GitHub mock.
async fn config(github: &MockServer) -> Option<RuntimeConfig> {
    require("AWS_ENDPOINT_URL")?;
    let prometheus = require("DISPATCHER_TEST_PROMETHEUS_URL")?;
    let clients = dispatcher_aws::Clients::from_env(true).await;
    let (_, table, bucket) = dispatcher_aws::emulator::fresh(&clients, TEMPLATE)
        .await
        .unwrap();
    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("DISPATCHER_TABLE", table),
        ("DISPATCHER_BUCKET", bucket),
        (
            "AWS_ENDPOINT_URL",
            std::env::var("AWS_ENDPOINT_URL").unwrap(),
        ),
        ("DISPATCHER_GITHUB_REPO", "acme/release".to_owned()),
        ("DISPATCHER_GITHUB_API", github.uri()),
        ("DISPATCHER_GITHUB_TOKEN", "t0ken".to_owned()),
        ("DISPATCHER_PROMETHEUS_URL", prometheus),
        ("DISPATCHER_WEBHOOK_SECRET", SECRET.to_owned()),
        ("DISPATCHER_LOOKUP_REFRESH", "0s".to_owned()),
    ]);
    Some(RuntimeConfig::from_lookup(|k| vars.get(k).cloned()).unwrap())
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn push_payload() -> String {
    json!({
        "ref": "refs/heads/main", "before": "aaaa", "after": "bbbb",
        "created": false, "deleted": false, "forced": false,
        "commits": [{"id": "bbbb", "added": [], "removed": [], "modified": [CLUSTERS]}],
        "head_commit": {"id": "bbbb"},
        "repository": {"full_name": "acme/release", "default_branch": "main"},
        "pusher": {"name": "someone"}
    })
    .to_string()
}

async fn call(router: &Router, req: axum::http::Request<Body>) -> (u16, String) {
    let r = router.clone().oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn cluster_of(router: &Router, job: &str) -> String {
    let (status, body) = call(
        router,
        axum::http::Request::post("/")
            .body(Body::from(format!(r#"{{"job":"{job}"}}"#)))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["cluster"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The files of the backup PR trees the mock received after its first `skip` requests.
async fn pr_files(github: &MockServer, skip: usize) -> BTreeMap<String, String> {
    let requests = github.received_requests().await.unwrap();
    requests
        .iter()
        .skip(skip)
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == format!("{REPO}/git/trees"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .flat_map(|b| b["tree"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| {
            Some((
                e["path"].as_str()?.to_owned(),
                e["content"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

async fn received(github: &MockServer) -> usize {
    github.received_requests().await.unwrap().len()
}

/// The job's `cluster:` line in a job file's text.
fn static_cluster(text: &str, job: &str) -> String {
    let files = dispatcher_formats::parse_job_file(text.as_bytes()).unwrap();
    files
        .into_iter()
        .find(|j| j.name == job)
        .and_then(|j| j.cluster)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_blocking_a_cluster_moves_its_jobs_through_the_local_server() {
    let github = github().await;
    let Some(cfg) = config(&github).await else {
        return;
    };
    let inputs = InputPaths {
        release: sample().join("release"),
        ..InputPaths::default()
    };
    let server = LocalServer::build(&cfg, &inputs, "trigger-token".to_owned())
        .await
        .unwrap();
    let mut done = server.handoff.completions();

    // The weekly run, through the manual trigger.
    let (status, body) = call(
        &server.router,
        axum::http::Request::post("/recompute")
            .header("authorization", "Bearer trigger-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    done.wait_for(|c| c.as_ref().is_some_and(|c| c.count == 1))
        .await
        .unwrap();
    assert!(
        done.borrow().as_ref().unwrap().last.is_ok(),
        "{:?}",
        done.borrow().as_ref().unwrap().last
    );
    assert_eq!(cluster_of(&server.router, JOB).await, "build03");
    merge_and_block(&github).await;
    let before_push = received(&github).await;

    // The push that blocks build03.
    let body = push_payload();
    let delivery = |id: &str| {
        axum::http::Request::post("/github")
            .header("x-github-event", "push")
            .header("x-github-delivery", id)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(body.as_bytes()))
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let (status, text) = call(&server.router, delivery("delivery-1")).await;
    assert_eq!(status, 202, "{text}");
    assert!(text.contains("Full"), "{text}");
    done.wait_for(|c| c.as_ref().is_some_and(|c| c.count == 2))
        .await
        .unwrap();
    let last = done.borrow().as_ref().unwrap().last.clone().unwrap();
    assert_eq!(
        (last.commit.as_str(), last.published.generation),
        ("bbbb", 2)
    );

    let moved = cluster_of(&server.router, JOB).await;
    assert_ne!(moved, "build03");
    // The backup PR's new commit carries the job's new static cluster.
    let files = pr_files(&github, before_push).await;
    let file = files
        .get(JOB_FILE)
        .unwrap_or_else(|| panic!("the PR does not carry {JOB_FILE}: {:?}", files.keys()));
    assert_eq!(static_cluster(file, JOB), moved);
    assert!(
        matches!(
            last.fallback,
            dispatcher_app::recompute::FallbackStatus::Published(_)
        ),
        "{:?}",
        last.fallback
    );

    // A replayed delivery changes nothing: it is answered before anything is decided or
    // handed off (the weekly run and the push were the two recomputes).
    assert_eq!(server.handoff.submitted(), 2);
    let (status, text) = call(&server.router, delivery("delivery-1")).await;
    assert_eq!((status, text.as_str()), (200, "duplicate delivery\n"));
    assert_eq!(server.handoff.submitted(), 2, "nothing was handed off");
    assert_eq!(
        server
            .stores
            .table
            .pointer()
            .await
            .unwrap()
            .unwrap()
            .generation,
        2
    );
}

fn event(name: &str, replace: &[(&str, &str)]) -> lambda_http::Request {
    let mut text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/events")
            .join(name),
    )
    .unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    dispatcher_api::lambda::without_stage(lambda_http::request::from_str(&text).unwrap())
}

async fn lambda_call(router: &Router, req: lambda_http::Request) -> (u16, String) {
    let r = router.clone().oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_through_recorded_lambda_event_shapes() {
    let github = github().await;
    let Some(cfg) = config(&github).await else {
        return;
    };
    let aws = dispatcher_aws::Aws::default();
    let stores = dispatcher_cli::store::open_with(&cfg.store, &dispatcher_aws::Aws::default())
        .await
        .unwrap();
    let recomputer = Arc::new(
        recompute::recomputer(&cfg, &aws, stores.clone())
            .await
            .unwrap(),
    );
    let lookup = lookup::router(&cfg, stores.clone());

    // The weekly schedule: EventBridge's envelope.
    let schedule: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/events/eventbridge-schedule.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let check = || async {
        recompute::handle(
            &recomputer,
            lambda_runtime::LambdaEvent::new(
                serde_json::json!({"action": "check"}),
                lambda_runtime::Context::default(),
            ),
            dispatcher_api::now() + 7200,
        )
        .await
        .unwrap()
    };
    // The scheduled freshness check: nothing has succeeded yet.
    assert_eq!(check().await["secondsSinceLastSuccess"], Value::Null);
    let first = recompute::handle(
        &recomputer,
        lambda_runtime::LambdaEvent::new(schedule, lambda_runtime::Context::default()),
        dispatcher_api::now(),
    )
    .await
    .unwrap();
    assert_eq!(first["generation"], 1);
    let age = check().await["secondsSinceLastSuccess"].as_i64().unwrap();
    assert!((7200..7300).contains(&age), "{age}");
    merge_and_block(&github).await;
    let before_push = received(&github).await;

    // Lookups as a REST API (v1, stage Prod in the path) and an HTTP API (v2, on the
    // $default stage and on a named one) deliver them.
    for shape in [
        "apigw-v1-lookup.json",
        "apigw-v2-lookup.json",
        "apigw-v2-lookup-stage.json",
    ] {
        let (status, body) = lambda_call(&lookup, event(shape, &[("JOB", JOB)])).await;
        assert_eq!(status, 200, "{shape}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["cluster"],
            "build03",
            "{shape}"
        );
    }

    // The push, as API Gateway delivers it to the webhook function.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handoff = Arc::new(dispatcher_tests::LambdaInvoke {
        recomputer: recomputer.clone(),
        results: tx,
        now: dispatcher_api::now,
        submitted: Default::default(),
    });
    let source = recompute::github(&cfg, &aws).await.unwrap();
    let webhook = webhook::router(&cfg, &aws, &stores, source, handoff, None)
        .await
        .unwrap();
    let body = push_payload();
    let escaped = serde_json::to_string(&body).unwrap();
    let request = event(
        "apigw-v2-webhook.json",
        &[
            ("\"BODY\"", &escaped),
            ("DELIVERY", "delivery-lambda"),
            ("SIGNATURE", &sign(body.as_bytes())),
        ],
    );
    let (status, text) = lambda_call(&webhook, request).await;
    assert_eq!(status, 202, "{text}");
    let second = rx.recv().await.unwrap().unwrap();
    assert_eq!(second["generation"], 2);
    assert_eq!(second["commit"], "bbbb");

    let (status, body) = lambda_call(&lookup, event("apigw-v2-lookup.json", &[("JOB", JOB)])).await;
    assert_eq!(status, 200);
    let moved = serde_json::from_str::<Value>(&body).unwrap()["cluster"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(moved, "build03");
    let files = pr_files(&github, before_push).await;
    assert_eq!(static_cluster(&files[JOB_FILE], JOB), moved);

    // A forged signature changes nothing.
    let forged = event(
        "apigw-v2-webhook.json",
        &[
            ("\"BODY\"", &escaped),
            ("DELIVERY", "delivery-forged"),
            ("SIGNATURE", &sign(b"something else")),
        ],
    );
    let (status, _) = lambda_call(&webhook, forged).await;
    assert_eq!(status, 403);
    // A method Prow never uses: 405.
    let get = event(
        "apigw-v2-lookup.json",
        &[
            ("JOB", JOB),
            ("\"method\": \"POST\"", "\"method\": \"GET\""),
            ("POST /", "GET /"),
        ],
    );
    let (status, _) = lambda_call(&lookup, get).await;
    assert_eq!(status, 405);
}

/// The markers a recompute advances only when it succeeds (F3, F11).
async fn markers(stores: &dispatcher_app::Stores) -> (Option<String>, Option<String>) {
    let t = &stores.table;
    (
        t.marker(dispatcher_app::records::INVENTORY_BLOB)
            .await
            .unwrap(),
        t.marker(dispatcher_app::records::LAST_SUCCESS)
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_recompute_keeps_the_last_good_generation_and_its_markers() {
    let github = github().await;
    let Some(cfg) = config(&github).await else {
        return;
    };
    let aws = dispatcher_aws::Aws::default();
    let stores = dispatcher_cli::store::open_with(&cfg.store, &dispatcher_aws::Aws::default())
        .await
        .unwrap();
    let good = recompute::recomputer(&cfg, &aws, stores.clone())
        .await
        .unwrap();
    let first = good
        .run(
            &RecomputeRequest::weekly(),
            "weekly-1",
            dispatcher_api::now(),
        )
        .await
        .unwrap();
    assert_eq!(first.published.generation, 1);
    let before = markers(&stores).await;
    assert!(before.0.is_some() && before.1.is_some(), "{before:?}");
    merge_and_block(&github).await;

    // Prometheus down (F2): the run fails, retryably, and nothing moves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut down = cfg.clone();
    if let Some(p) = down.prometheus.as_mut() {
        p.url = format!("http://127.0.0.1:{port}");
    }
    let no_volumes = recompute::recomputer(&down, &aws, stores.clone())
        .await
        .unwrap();
    let e = no_volumes
        .run(
            &RecomputeRequest::weekly(),
            "weekly-2",
            dispatcher_api::now(),
        )
        .await
        .expect_err("no volumes, no generation");
    assert!(e.is_retryable() && e.stage() == "prometheus", "{e}");
    let pointer = stores.table.pointer().await.unwrap().unwrap();
    assert_eq!((pointer.generation, pointer.pending), (1, None));
    assert_eq!(markers(&stores).await, before);

    // GitHub refusing the tarball (the commit is gone): the same, and not worth a retry.
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/tarball/bbbb")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .with_priority(1)
        .mount(&github)
        .await;
    let e = good
        .run(
            &RecomputeRequest::weekly(),
            "weekly-3",
            dispatcher_api::now(),
        )
        .await
        .expect_err("no release, no generation");
    assert!(!e.is_retryable() && e.stage() == "github", "{e}");
    assert_eq!(stores.table.pointer().await.unwrap().unwrap().generation, 1);
    assert_eq!(markers(&stores).await, before);
    // The lookup still answers the last good generation.
    let lookup = lookup::router(&cfg, stores.clone());
    assert_eq!(cluster_of(&lookup, JOB).await, "build03");
}
