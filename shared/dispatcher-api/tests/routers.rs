//! The routers in process (no server, no port), over the embedded local store with a
//! published generation of the bundled sample.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use dispatcher_api::{LookupState, WebhookState, lookup_router, webhook_router};
use dispatcher_app::local::LocalRepo;
use dispatcher_app::publish::{self, PublishOptions};
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_app::{Cause, Stores};
use dispatcher_app::{Handoff, LookupService, RepoSource, SourceError};
use dispatcher_core::{Mode, Plan, Settings};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::BodyExt;
use sha2::Sha256;
use tokio::sync::Mutex;
use tower::ServiceExt;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sample")
}

fn sample_plan() -> Plan {
    let loaded = dispatcher_formats::load(
        &dispatcher_formats::InputPaths {
            release: sample().join("release"),
            volumes: Some(sample().join("volumes.json")),
            ..Default::default()
        },
        &|| {},
    )
    .expect("sample loads");
    dispatcher_core::run(&loaded.inputs(), &Settings::default()).expect("sample plans")
}

async fn published() -> (Stores, Plan, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let stores = dispatcher_app::local::open(dir.path()).expect("local store");
    let plan = sample_plan();
    publish::publish(&stores, &plan, &PublishOptions::new(Cause::Manual, 1))
        .await
        .expect("publish");
    (stores, plan, dir)
}

fn lookup_app(stores: Stores) -> Router {
    lookup_router(Arc::new(LookupState {
        service: Arc::new(LookupService::new(stores)),
        now: || 1_000,
    }))
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, Option<String>) {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        content_type,
    )
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .body(Body::from(body.to_owned()))
        .expect("request")
}

#[tokio::test]
async fn lookup_answers_the_prow_contract() {
    let (stores, plan, _dir) = published().await;
    let app = lookup_app(stores);
    let job = "pull-ci-acme-widget-main-unit";
    let want = plan.jobs[job].cluster.clone().expect("placed");

    // No Content-Type at all: read the JSON anyway; extra fields are ignored.
    let (status, body, ct) =
        send(&app, post("/", &format!(r#"{{"job":"{job}","extra":1}}"#))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["cluster"], want.as_str());
    assert_eq!(v["generation"], 1);
    assert!(body.ends_with('\n'));

    let (status, body, ct) = send(&app, post("/", r#"{"job":"no-such-job"}"#)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "Cluster not found\n")
    );
    assert_eq!(ct.as_deref(), Some("text/plain; charset=utf-8"));
    // A Kubernetes-less job has no cluster: 404, never a 200 without one.
    let (status, ..) = send(&app, post("/", r#"{"job":"pull-ci-acme-lab-main-legacy"}"#)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for bad in ["not json", r#"{"job": 1}"#, r#"{"name":"x"}"#, ""] {
        let (status, ..) = send(&app, post("/", bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, body, _) = send(
        &app,
        Request::get("/").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "Invalid request method\n")
    );
    let (status, ..) = send(&app, post("/elsewhere", r#"{"job":"x"}"#)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body, _) = send(
        &app,
        Request::get("/healthz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "ok: generation 1\n")
    );
    let (status, body, _) = send(
        &app,
        Request::get(format!("/explain/{job}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["entry"]["rule"], "balanced");
    assert!(
        v["file"]["candidates"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
}

#[tokio::test]
async fn nothing_published_means_not_found() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = lookup_app(dispatcher_app::local::open(dir.path()).expect("local store"));
    let (status, ..) = send(&app, post("/", r#"{"job":"anything"}"#)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ephemeral_jobs_get_a_round_robin_cluster_that_sticks_and_survives_restarts() {
    let (stores, plan, _dir) = published().await;
    let usable: Vec<String> = plan
        .clusters
        .iter()
        .filter(|(_, c)| c.state == dispatcher_core::plan::ClusterState::Active)
        .map(|(n, _)| n.clone())
        .collect();
    let app = lookup_app(stores.clone());
    let mut chosen = Vec::new();
    for i in 0..usable.len() {
        let (status, body, _) = send(
            &app,
            post("/", &format!(r#"{{"job":"ephemeralcluster-ci-{i}"}}"#)),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        chosen.push(v["cluster"].as_str().expect("cluster").to_owned());
        assert_eq!(v["source"], "ephemeral-cluster");
    }
    let mut sorted = chosen.clone();
    sorted.sort();
    assert_eq!(
        sorted, usable,
        "round-robin visits every usable cluster once"
    );
    // A new service instance (a cold start) answers the same.
    let again = lookup_app(stores);
    let (_, body, _) = send(&again, post("/", r#"{"job":"ephemeralcluster-ci-0"}"#)).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["cluster"], chosen[0].as_str());
}

/// Records what was handed off.
#[derive(Default)]
struct Recorded(Mutex<Vec<RecomputeRequest>>);

#[async_trait]
impl Handoff for Recorded {
    async fn submit(&self, request: &RecomputeRequest) -> Result<(), SourceError> {
        self.0.lock().await.push(request.clone());
        Ok(())
    }
}

const SECRET: &[u8] = b"s3cret";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn push_body(paths: &[&str]) -> String {
    serde_json::json!({
        "ref": "refs/heads/main",
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "created": false, "deleted": false, "forced": false,
        "commits": [{"id": "2222", "added": [], "removed": [], "modified": paths}],
        "head_commit": {"id": "2222"},
        "repository": {"full_name": "acme/release", "default_branch": "main"},
        "pusher": {"name": "someone"}
    })
    .to_string()
}

fn delivery(
    event: &str,
    id: &str,
    body: &str,
    signature: Option<String>,
    content_type: &str,
) -> Request<Body> {
    let mut r = Request::post("/github")
        .header("x-github-event", event)
        .header("x-github-delivery", id)
        .header("content-type", content_type);
    if let Some(s) = signature {
        r = r.header("x-hub-signature-256", s);
    }
    r.body(Body::from(body.to_owned())).expect("request")
}

async fn webhook() -> (Router, Arc<Recorded>, Stores, tempfile::TempDir) {
    let handoff = Arc::new(Recorded::default());
    let source = Arc::new(LocalRepo {
        path: sample().join("release"),
        clusters: None,
        limits: Default::default(),
    });
    let (app, stores, dir) =
        webhook_with(source, handoff.clone(), dispatcher_api::webhook::DEADLINE).await;
    (app, handoff, stores, dir)
}

/// The webhook over a published sample, with the given repository and hand-off.
async fn webhook_with(
    source: Arc<dyn RepoSource>,
    handoff: Arc<dyn Handoff>,
    deadline: std::time::Duration,
) -> (Router, Stores, tempfile::TempDir) {
    let (stores, _plan, dir) = published().await;
    // The last processed inventory is the sample's own: only job changes are deltas.
    let blob = dispatcher_formats::digest::sha256(
        &std::fs::read(
            sample()
                .join("release")
                .join(dispatcher_formats::CLUSTERS_PATH),
        )
        .expect("inventory"),
    );
    stores
        .table
        .set_marker(dispatcher_app::records::INVENTORY_BLOB, &blob)
        .await
        .expect("marker");
    let app = webhook_router(Arc::new(WebhookState {
        secret: SECRET.to_vec(),
        repo: "acme/release".to_owned(),
        source,
        table: stores.table.clone(),
        handoff,
        prs: None,
        now: || 1_000,
        deadline,
    }));
    (app, stores, dir)
}

/// A repository whose API is down.
struct Unreachable;

#[async_trait]
impl RepoSource for Unreachable {
    async fn head(&self) -> Result<String, SourceError> {
        Err(SourceError::retryable("github", "HTTP 502"))
    }
    async fn release(&self, _commit: &str) -> Result<dispatcher_formats::Release, SourceError> {
        Err(SourceError::retryable("github", "HTTP 502"))
    }
    async fn blob_sha(&self, _commit: &str, _path: &str) -> Result<Option<String>, SourceError> {
        Err(SourceError::retryable("github", "HTTP 502"))
    }
}

/// A hand-off that never answers the first time, then records.
#[derive(Default)]
struct HangsOnce {
    hung: std::sync::atomic::AtomicBool,
    recorded: Recorded,
}

#[async_trait]
impl Handoff for HangsOnce {
    async fn submit(&self, request: &RecomputeRequest) -> Result<(), SourceError> {
        if !self.hung.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.recorded.submit(request).await
    }
}

fn signed_push(id: &str, body: &str) -> Request<Body> {
    delivery(
        "push",
        id,
        body,
        Some(sign(body.as_bytes())),
        "application/json",
    )
}

#[tokio::test]
async fn a_push_whose_inventory_cannot_be_checked_is_recomputed_in_full() {
    let handoff = Arc::new(Recorded::default());
    let (app, _stores, _dir) = webhook_with(
        Arc::new(Unreachable),
        handoff.clone(),
        dispatcher_api::webhook::DEADLINE,
    )
    .await;
    let jobs = push_body(&["ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml"]);
    let (status, body, _) = send(&app, signed_push("d-1", &jobs)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let handed = handoff.0.lock().await.clone();
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].mode, Mode::Full, "not knowing is not dropping");
}

#[tokio::test]
async fn a_hand_off_past_the_deadline_forgets_the_delivery_for_its_redelivery() {
    let handoff = Arc::new(HangsOnce::default());
    let (app, _stores, _dir) = webhook_with(
        Arc::new(LocalRepo {
            path: sample().join("release"),
            clusters: None,
            limits: Default::default(),
        }),
        handoff.clone(),
        std::time::Duration::from_millis(200),
    )
    .await;
    let jobs = push_body(&["ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml"]);
    let (status, body, _) = send(&app, signed_push("d-1", &jobs)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    // GitHub's redelivery is not taken for a duplicate.
    let (status, body, _) = send(&app, signed_push("d-1", &jobs)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(handoff.recorded.0.lock().await.len(), 1);
}

#[tokio::test]
async fn pushes_elsewhere_are_ignored_and_huge_pushes_hand_off_a_bounded_message() {
    let (app, handoff, _stores, _dir) = webhook().await;
    let elsewhere = push_body(&["core-services/sanitize-prow-jobs/_clusters.yaml"])
        .replace("acme/release", "acme/fork");
    let (status, body, _) = send(&app, signed_push("d-1", &elsewhere)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(body.starts_with("ignored"), "{body}");
    // A merged backup PR touches thousands of job files.
    let paths: Vec<String> = (0..5000)
        .map(|i| format!("ci-operator/jobs/acme/r{i}/acme-r{i}-main-presubmits.yaml"))
        .collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let huge = push_body(&refs);
    let (status, body, _) = send(&app, signed_push("d-2", &huge)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let handed = handoff.0.lock().await.clone();
    assert_eq!(handed.len(), 1, "only the push to the release repository");
    assert_eq!(
        handed[0].paths.len(),
        dispatcher_app::push::MAX_HANDOFF_PATHS
    );
    assert!(serde_json::to_vec(&handed[0]).unwrap().len() < 64 * 1024);
}

#[tokio::test]
async fn the_webhook_verifies_before_anything_and_changes_nothing_when_it_fails() {
    let (app, handoff, _stores, _dir) = webhook().await;
    let body = push_body(&["ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml"]);
    let cases = [
        (None, StatusCode::UNAUTHORIZED),
        (
            Some(sign(body.as_bytes()).replace("sha256=", "sha1=")),
            StatusCode::UNAUTHORIZED,
        ),
        (Some("sha256=not-hex".to_owned()), StatusCode::UNAUTHORIZED),
        (Some(sign(b"another body")), StatusCode::FORBIDDEN),
    ];
    for (i, (signature, want)) in cases.into_iter().enumerate() {
        let (status, ..) = send(
            &app,
            delivery(
                "push",
                &format!("bad-{i}"),
                &body,
                signature,
                "application/json",
            ),
        )
        .await;
        assert_eq!(status, want, "case {i}");
    }
    assert!(handoff.0.lock().await.is_empty(), "nothing was handed off");
    // A well-signed delivery with one of those ids is still new: nothing was recorded.
    let (status, ..) = send(
        &app,
        delivery(
            "push",
            "bad-3",
            &body,
            Some(sign(body.as_bytes())),
            "application/json",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn pushes_are_decided_handed_off_and_deduplicated() {
    let (app, handoff, _stores, _dir) = webhook().await;
    let ping = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let (status, ..) = send(
        &app,
        delivery(
            "ping",
            "p-1",
            ping,
            Some(sign(ping.as_bytes())),
            "application/json",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let jobs = push_body(&["ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml"]);
    let (status, body, _) = send(
        &app,
        delivery(
            "push",
            "d-1",
            &jobs,
            Some(sign(jobs.as_bytes())),
            "application/json",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The replay changes nothing.
    let (status, ..) = send(
        &app,
        delivery(
            "push",
            "d-1",
            &jobs,
            Some(sign(jobs.as_bytes())),
            "application/json",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let inventory = push_body(&["core-services/sanitize-prow-jobs/_clusters.yaml"]);
    let (status, ..) = send(
        &app,
        delivery(
            "push",
            "d-2",
            &inventory,
            Some(sign(inventory.as_bytes())),
            "application/json",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let docs = push_body(&["README.md"]);
    let (status, body, _) = send(
        &app,
        delivery(
            "push",
            "d-3",
            &docs,
            Some(sign(docs.as_bytes())),
            "application/json",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(body.starts_with("ignored"), "{body}");

    let other_branch = push_body(&["core-services/sanitize-prow-jobs/_clusters.yaml"])
        .replace("refs/heads/main", "refs/heads/feature");
    let (_, body, _) = send(
        &app,
        delivery(
            "push",
            "d-4",
            &other_branch,
            Some(sign(other_branch.as_bytes())),
            "application/json",
        ),
    )
    .await;
    assert!(body.starts_with("ignored"), "{body}");

    // GitHub's default content type: the form's payload field, signed as sent.
    let form = format!(
        "payload={}",
        url::form_urlencoded::byte_serialize(jobs.as_bytes()).collect::<String>()
    );
    let (status, ..) = send(
        &app,
        delivery(
            "push",
            "d-5",
            &form,
            Some(sign(form.as_bytes())),
            "application/x-www-form-urlencoded",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let handed: Vec<(Mode, Option<String>)> = handoff
        .0
        .lock()
        .await
        .iter()
        .map(|r| (r.mode, r.delivery_id.clone()))
        .collect();
    assert_eq!(
        handed,
        vec![
            (Mode::Delta, Some("d-1".to_owned())),
            (Mode::Full, Some("d-2".to_owned())),
            (Mode::Delta, Some("d-5".to_owned()))
        ]
    );
}

#[tokio::test]
async fn oversized_deliveries_are_refused() {
    let (app, handoff, _stores, _dir) = webhook().await;
    let big = "x".repeat(dispatcher_api::webhook::MAX_BODY + 1);
    let (status, ..) = send(
        &app,
        delivery(
            "push",
            "big",
            &big,
            Some(sign(big.as_bytes())),
            "application/json",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(handoff.0.lock().await.is_empty());
}

/// The table of `inner`, counting what is read from it and written to it.
struct Counted {
    inner: Arc<dyn dispatcher_app::AssignmentStore>,
    reads: std::sync::atomic::AtomicUsize,
    writes: std::sync::atomic::AtomicUsize,
}

impl Counted {
    fn wrap(stores: &Stores) -> (Arc<Self>, Stores) {
        let counted = Arc::new(Self {
            inner: stores.table.clone(),
            reads: 0.into(),
            writes: 0.into(),
        });
        let wrapped = Stores {
            table: counted.clone(),
            snapshots: stores.snapshots.clone(),
        };
        (counted, wrapped)
    }

    fn read(&self) {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Reads and writes so far.
    fn touched(&self) -> (usize, usize) {
        (
            self.reads.load(std::sync::atomic::Ordering::SeqCst),
            self.writes.load(std::sync::atomic::Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl dispatcher_app::AssignmentStore for Counted {
    async fn pointer(&self) -> Result<Option<dispatcher_app::Pointer>, dispatcher_app::StoreError> {
        self.read();
        self.inner.pointer().await
    }
    async fn job(
        &self,
        name: &str,
    ) -> Result<Option<dispatcher_app::JobItem>, dispatcher_app::StoreError> {
        self.read();
        self.inner.job(name).await
    }
    async fn jobs(
        &self,
        names: &[String],
    ) -> Result<Vec<dispatcher_app::JobItem>, dispatcher_app::StoreError> {
        self.read();
        self.inner.jobs(names).await
    }
    async fn write_jobs(
        &self,
        items: &[dispatcher_app::JobItem],
    ) -> Result<dispatcher_app::WriteStats, dispatcher_app::StoreError> {
        self.write();
        self.inner.write_jobs(items).await
    }
    async fn claim(
        &self,
        base: u64,
        pending: &dispatcher_app::model::Pending,
        now: i64,
    ) -> Result<dispatcher_app::store::Claim, dispatcher_app::StoreError> {
        self.write();
        self.inner.claim(base, pending, now).await
    }
    async fn commit(
        &self,
        base: u64,
        owner: &str,
        pointer: &dispatcher_app::Pointer,
        record: &dispatcher_app::model::GenerationRecord,
    ) -> Result<(), dispatcher_app::StoreError> {
        self.write();
        self.inner.commit(base, owner, pointer, record).await
    }
    async fn generation(
        &self,
        n: u64,
    ) -> Result<Option<dispatcher_app::model::GenerationRecord>, dispatcher_app::StoreError> {
        self.read();
        self.inner.generation(n).await
    }
    async fn remember(
        &self,
        key: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, dispatcher_app::StoreError> {
        self.write();
        self.inner.remember(key, value, expires_at, now).await
    }
    async fn recall(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, dispatcher_app::StoreError> {
        self.read();
        self.inner.recall(key, now).await
    }
    async fn forget(&self, key: &str) -> Result<(), dispatcher_app::StoreError> {
        self.write();
        self.inner.forget(key).await
    }
    async fn increment(&self, name: &str) -> Result<u64, dispatcher_app::StoreError> {
        self.write();
        self.inner.increment(name).await
    }
    async fn marker(&self, name: &str) -> Result<Option<String>, dispatcher_app::StoreError> {
        self.read();
        self.inner.marker(name).await
    }
    async fn set_marker(&self, name: &str, value: &str) -> Result<(), dispatcher_app::StoreError> {
        self.write();
        self.inner.set_marker(name, value).await
    }

    async fn swap_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, dispatcher_app::StoreError> {
        self.write();
        self.inner.swap_marker(name, expected, value).await
    }
}

#[tokio::test]
async fn a_name_longer_than_any_job_is_refused_without_touching_the_store() {
    let (stores, _plan, _dir) = published().await;
    let (counted, wrapped) = Counted::wrap(&stores);
    let app = lookup_app(wrapped);
    let max = dispatcher_app::lookup::MAX_JOB_NAME;
    assert_eq!(max, 253);
    let plain = "a".repeat(max + 1);
    let ephemeral = format!("ephemeralcluster-{}", "x".repeat(max + 1 - 17));
    for name in [&plain, &ephemeral] {
        assert_eq!(name.len(), 254);
        let (status, body, _) = send(&app, post("/", &format!(r#"{{"job":"{name}"}}"#))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("253"), "{body}");
        let (status, ..) = send(
            &app,
            Request::get(format!("/explain/{name}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        counted.touched(),
        (0, 0),
        "the store was neither read nor written"
    );
    assert_eq!(
        stores
            .table
            .recall(&format!("ephemeral#{ephemeral}"), 1_000)
            .await
            .expect("recall"),
        None
    );
    // 253 is still a name: a new ephemeral job of that length gets its cluster.
    let longest = format!("ephemeralcluster-{}", "x".repeat(max - 17));
    let (status, body, _) = send(&app, post("/", &format!(r#"{{"job":"{longest}"}}"#))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(counted.touched().1 > 0, "the counting store sees writes");
}

#[tokio::test]
async fn new_ephemeral_names_beyond_the_rate_get_429_and_nothing_is_written() {
    let (stores, _plan, _dir) = published().await;
    let (counted, wrapped) = Counted::wrap(&stores);
    // The clock stands still at 1,000: every request within one second. The default
    // bucket: 20 a second, a burst of 100.
    let app = lookup_app(wrapped);
    let mut first = None;
    for i in 0..100 {
        let (status, body, _) = send(
            &app,
            post("/", &format!(r#"{{"job":"ephemeralcluster-flood-{i}"}}"#)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "the {i}th new name: {body}");
        if i == 0 {
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            first = v["cluster"].as_str().map(str::to_owned);
        }
    }
    let (_, writes) = counted.touched();
    let response = app
        .clone()
        .oneshot(post("/", r#"{"job":"ephemeralcluster-flood-100"}"#))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"Too many new ephemeral clusters\n");
    assert_eq!(counted.touched().1, writes, "nothing written for the 101st");
    assert_eq!(
        stores
            .table
            .recall("ephemeral#ephemeralcluster-flood-100", 1_000)
            .await
            .expect("recall"),
        None
    );
    // A remembered name is still answered, its cluster unchanged, and writes nothing.
    let (status, body, _) = send(&app, post("/", r#"{"job":"ephemeralcluster-flood-0"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["cluster"].as_str(), first.as_deref());
    assert_eq!(counted.touched().1, writes);
    // Ordinary jobs are not rationed.
    let (status, ..) = send(
        &app,
        post("/", r#"{"job":"pull-ci-acme-widget-main-unit"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
