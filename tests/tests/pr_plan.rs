//! Plans of pull requests end to end, with a local GitHub mock answering as GitHub does: a
//! signed `pull_request` delivery -> webhook -> the recompute function's handler -> one
//! comment (edited by later pushes, never a second) and the `dispatcher/plan` status.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use dispatcher_api::{WebhookState, webhook_router};
use dispatcher_app::RepoSource;
use dispatcher_app::ports::PullRequests;
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_config::RuntimeConfig;
use dispatcher_github::{GitHub, GitHubConfig, Retry};
use dispatcher_tests::{copy_tree, sample, sample_recomputer};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "pr-s3cret";
const REPO: &str = "/repos/acme/release";
const CLUSTERS: &str = "core-services/sanitize-prow-jobs/_clusters.yaml";
const CONFIG: &str = "core-services/sanitize-prow-jobs/_config.yaml";
const T0: i64 = 1_800_000_000;

/// The sample release at `sha` as GitHub's tarball, with `edits` applied.
fn tarball(sha: &str, edits: &[(&str, &dyn Fn(String) -> String)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&sample().join("release"), dir.path());
    for (file, edit) in edits {
        let p = dir.path().join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, edit(text)).unwrap();
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(format!("acme-release-{sha}"), dir.path())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn block_build03(text: String) -> String {
    text.replace(
        "  - name: build03\n",
        "  - name: build03\n    blocked: true\n",
    )
}

struct World {
    github: MockServer,
    webhook: Router,
    results: mpsc::UnboundedReceiver<Result<Value, String>>,
    /// Hand-offs the webhook submitted.
    submitted: Arc<AtomicUsize>,
}

async fn world() -> World {
    let github = MockServer::start().await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let stores = dispatcher_app::local::open(&dir).unwrap();
    let vars = BTreeMap::<&str, String>::new();
    let cfg = RuntimeConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let local = sample_recomputer(&cfg, stores.clone(), sample().join("release"));
    local
        .run(&RecomputeRequest::weekly(), "weekly", T0)
        .await
        .unwrap();
    let crab = GitHub::client(
        Some("t0ken".to_owned()),
        Some(&github.uri()),
        Duration::from_secs(5),
    )
    .unwrap();
    let gh = Arc::new(GitHub::new(
        crab,
        GitHubConfig {
            retry: Retry {
                attempts: 4,
                base: Duration::from_millis(10),
            },
            ..GitHubConfig::new("acme", "release")
        },
    ));
    let mut recomputer = local.clone();
    recomputer.repo = gh.clone();
    recomputer.pull_requests = Some(gh.clone());
    let (tx, results) = mpsc::unbounded_channel();
    let submitted = Arc::new(AtomicUsize::new(0));
    let webhook = webhook_router(Arc::new(WebhookState {
        secret: SECRET.as_bytes().to_vec(),
        repo: "acme/release".to_owned(),
        source: gh.clone() as Arc<dyn RepoSource>,
        table: stores.table.clone(),
        handoff: Arc::new(dispatcher_tests::LambdaInvoke {
            recomputer: Arc::new(recomputer),
            results: tx,
            now: || T0 + 60,
            submitted: submitted.clone(),
        }),
        prs: Some(gh as Arc<dyn PullRequests>),
        now: || T0 + 60,
        deadline: dispatcher_api::webhook::DEADLINE,
    }));
    World {
        github,
        webhook,
        results,
        submitted,
    }
}

async fn on(server: &MockServer, verb: &str, route: &str, status: u16, body: Value) {
    Mock::given(method(verb))
        .and(path(format!("{REPO}{route}")))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

/// The pull request as GitHub answers for it: its files, its head, no comment yet, and
/// statuses and comments accepted.
async fn pull_request(w: &World, head: &str, files: &[&str], comments: Value) {
    let files: Vec<Value> = files
        .iter()
        .map(|f| json!({"filename": f, "status": "modified"}))
        .collect();
    on(&w.github, "GET", "/pulls/7/files", 200, json!(files)).await;
    on(
        &w.github,
        "GET",
        "/pulls/7",
        200,
        json!({"number": 7, "head": {"sha": head}}),
    )
    .await;
    on(&w.github, "GET", "/issues/7/comments", 200, comments).await;
    on(
        &w.github,
        "POST",
        "/issues/7/comments",
        201,
        json!({"id": 99}),
    )
    .await;
    on(
        &w.github,
        "PATCH",
        "/issues/comments/99",
        200,
        json!({"id": 99}),
    )
    .await;
    on(
        &w.github,
        "POST",
        &format!("/statuses/{head}"),
        201,
        json!({"state": "success"}),
    )
    .await;
}

/// A signed delivery of `pull_request` `action` for head `head`, from a fork, into the
/// default branch.
async fn deliver(w: &World, delivery: &str, action: &str, head: &str) -> (u16, String) {
    deliver_into(w, delivery, action, head, "main").await
}

/// The same, into branch `base`.
async fn deliver_into(
    w: &World,
    delivery: &str,
    action: &str,
    head: &str,
    base: &str,
) -> (u16, String) {
    let body = json!({
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7, "draft": false, "state": "open",
            "head": {"sha": head, "ref": "fix", "repo": {"full_name": "someone/release", "fork": true}},
            "base": {"sha": "base0", "ref": base, "repo": {"full_name": "acme/release"}}
        },
        "repository": {"full_name": "acme/release", "default_branch": "main"},
        "sender": {"login": "someone"}
    })
    .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let req = axum::http::Request::post("/github")
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(Body::from(body))
        .unwrap();
    let r = w.webhook.clone().oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let text = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

fn calls(requests: &[Request], verb: &str, prefix: &str) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| {
            r.method.as_str() == verb && r.url.path().starts_with(&format!("{REPO}{prefix}"))
        })
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_blocking_a_cluster_gets_one_comment_edited_on_later_pushes() {
    let mut w = world().await;
    pull_request(&w, "head1", &[CLUSTERS], json!([])).await;
    let edit: &dyn Fn(String) -> String = &block_build03;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/tarball/head1")))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(tarball("head1", &[(CLUSTERS, edit)])),
        )
        .mount(&w.github)
        .await;
    let (status, text) = deliver(&w, "d-1", "opened", "head1").await;
    assert_eq!(status, 202, "{text}");
    let result = w.results.recv().await.unwrap().unwrap();
    assert!(
        result["outcome"]
            .as_str()
            .unwrap()
            .contains("commented: true"),
        "{result}"
    );
    let requests = w.github.received_requests().await.unwrap();
    let posted = calls(&requests, "POST", "/issues/7/comments");
    assert_eq!(posted.len(), 1);
    let body = posted[0]["body"].as_str().unwrap();
    assert!(
        body.starts_with(dispatcher_app::pull_request::MARKER),
        "{body}"
    );
    assert!(body.contains("| from | to | jobs | demand |"), "{body}");
    assert!(
        body.contains("\n| build03 | "),
        "the moves from build03, per pair: {body}"
    );
    assert!(body.contains("```mermaid"), "{body}");
    let statuses = calls(&requests, "POST", "/statuses/head1");
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0]["state"], "success");
    assert_eq!(statuses[0]["context"], "dispatcher/plan");
    assert!(
        statuses[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("moves "),
        "{}",
        statuses[0]
    );

    // A second push: the same comment edited, no second one.
    w.github.reset().await;
    pull_request(&w, "head2", &[CLUSTERS], json!([{"id": 99, "body": body}])).await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/tarball/head2")))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(tarball("head2", &[(CLUSTERS, edit)])),
        )
        .mount(&w.github)
        .await;
    assert_eq!(deliver(&w, "d-2", "synchronize", "head2").await.0, 202);
    w.results.recv().await.unwrap().unwrap();
    let requests = w.github.received_requests().await.unwrap();
    assert_eq!(calls(&requests, "POST", "/issues/7/comments").len(), 0);
    assert_eq!(calls(&requests, "PATCH", "/issues/comments/99").len(), 1);
    assert_eq!(calls(&requests, "POST", "/statuses/head2").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_re2_refuses_fails_the_status_naming_file_and_key() {
    let mut w = world().await;
    pull_request(&w, "head3", &[CONFIG], json!([])).await;
    let edit: &dyn Fn(String) -> String = &|text: String| {
        format!("{text}\ngroups:\n  build01:\n    paths:\n      - \"(?=lookahead)\"\n")
    };
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/tarball/head3")))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(tarball("head3", &[(CONFIG, edit)])),
        )
        .mount(&w.github)
        .await;
    assert_eq!(deliver(&w, "d-3", "opened", "head3").await.0, 202);
    w.results.recv().await.unwrap().unwrap();
    let requests = w.github.received_requests().await.unwrap();
    let statuses = calls(&requests, "POST", "/statuses/head3");
    assert_eq!(statuses[0]["state"], "failure", "{statuses:?}");
    let description = statuses[0]["description"].as_str().unwrap();
    assert!(
        description.contains(CONFIG) && description.contains("groups"),
        "{description}"
    );
    let body = calls(&requests, "POST", "/issues/7/comments")[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(body.contains("Validation errors"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_files_are_fetched_alone_and_a_readme_or_a_stale_head_posts_nothing() {
    let mut w = world().await;
    // A README: nothing planned, nothing posted.
    pull_request(&w, "head4", &["README.md"], json!([])).await;
    let before = w.submitted.load(Ordering::SeqCst);
    let (status, text) = deliver(&w, "d-4", "opened", "head4").await;
    assert_eq!(status, 202);
    assert!(text.contains("ignored"), "{text}");
    // Counted when submitted, not when the plan ends: no race with a task still running.
    assert_eq!(
        w.submitted.load(Ordering::SeqCst),
        before,
        "nothing handed off"
    );
    // Into another branch than the default: nothing planned, before any call to GitHub.
    let (status, text) = deliver_into(&w, "d-4b", "opened", "head4", "release-4.1").await;
    assert_eq!(status, 202);
    assert!(text.contains("not the default branch"), "{text}");
    assert_eq!(
        w.submitted.load(Ordering::SeqCst),
        before,
        "nothing handed off"
    );

    // A job file adding a job: fetched alone (no tarball), a success, no comment; GitHub
    // throttles the file once (Retry-After: 2, waited out) and fails the head twice
    // (500, retried).
    w.github.reset().await;
    let file = "ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml";
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/contents/{file}")))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(json!({"message": "secondary rate limit"})),
        )
        .up_to_n_times(1)
        .mount(&w.github)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/pulls/7")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "oops"})))
        .up_to_n_times(2)
        .mount(&w.github)
        .await;
    pull_request(&w, "head5", &[file], json!([])).await;
    let started = std::time::Instant::now();
    let text = std::fs::read_to_string(sample().join("release").join(file)).unwrap();
    let added = text.replace(
        "pull-ci-acme-widget-main-unit",
        "pull-ci-acme-widget-main-unit-two",
    );
    let both = format!("{text}{}", &added[added.find("  - ").unwrap_or(0)..]);
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/contents/{file}")))
        .respond_with(ResponseTemplate::new(200).set_body_string(both))
        .mount(&w.github)
        .await;
    assert_eq!(deliver(&w, "d-5", "synchronize", "head5").await.0, 202);
    let result = w.results.recv().await.unwrap().unwrap();
    assert!(
        result["outcome"]
            .as_str()
            .unwrap()
            .contains("commented: false"),
        "{result} {:?}",
        calls(
            &w.github.received_requests().await.unwrap(),
            "POST",
            "/issues/7/comments"
        )
    );
    let requests = w.github.received_requests().await.unwrap();
    assert!(
        calls(&requests, "GET", "/tarball").is_empty(),
        "no tarball for job files"
    );
    assert_eq!(
        calls(&requests, "GET", "/contents/").len(),
        2,
        "throttled once"
    );
    let heads = requests
        .iter()
        .filter(|r| r.url.path() == format!("{REPO}/pulls/7"))
        .count();
    assert_eq!(heads, 3, "two 500s retried, then the head");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After waited out"
    );
    assert_eq!(
        calls(&requests, "POST", "/statuses/head5")[0]["state"],
        "success"
    );
    assert!(calls(&requests, "POST", "/issues/7/comments").is_empty());

    // The head moved on while planning: the result is dropped.
    w.github.reset().await;
    pull_request(&w, "head7", &[file], json!([])).await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/contents/{file}")))
        .respond_with(ResponseTemplate::new(200).set_body_string(text))
        .mount(&w.github)
        .await;
    assert_eq!(deliver(&w, "d-6", "synchronize", "head6").await.0, 202);
    let result = w.results.recv().await.unwrap().unwrap();
    assert!(
        result["outcome"].as_str().unwrap().contains("Stale"),
        "{result}"
    );
    let requests = w.github.received_requests().await.unwrap();
    assert!(calls(&requests, "POST", "/statuses").is_empty());
    assert!(calls(&requests, "POST", "/issues").is_empty());
}
