//! The GitHub adapter against a local mock with GitHub-shaped answers: the tarball at a
//! commit (through the redirect GitHub answers with), blob SHAs, and the backup PR's calls
//! in order, through rate limits and 5xx answers.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use dispatcher_app::ports::{FallbackChange, FallbackPublisher, RepoSource};
use dispatcher_github::{GitHub, GitHubConfig, Retry};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const REPO: &str = "/repos/acme/release";

fn github(server: &MockServer) -> GitHub {
    let crab = GitHub::client(
        Some("t0ken".to_owned()),
        Some(&server.uri()),
        Duration::from_secs(5),
    )
    .unwrap();
    let config = GitHubConfig {
        tree_batch_bytes: 40,
        retry: Retry {
            attempts: 4,
            base: Duration::from_millis(10),
        },
        ..GitHubConfig::new("acme", "release")
    };
    GitHub::new(crab, config)
}

/// A tarball of the sample release as GitHub serves it: under `acme-release-<sha>/`.
fn tarball() -> Vec<u8> {
    let sample =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sample/release");
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("acme-release-0123abc", sample).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

async fn json_mock(server: &MockServer, verb: &str, route: &str, status: u16, body: Value) {
    Mock::given(method(verb))
        .and(path(format!("{REPO}{route}")))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

async fn once(server: &MockServer, verb: &str, route: &str, status: u16, body: Value) {
    Mock::given(method(verb))
        .and(path(format!("{REPO}{route}")))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .up_to_n_times(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn reads_the_release_at_a_commit_and_blob_shas() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/tarball/0123abc")))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/codeload/acme/release/0123abc", server.uri()),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/codeload/acme/release/0123abc"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(tarball()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/contents/core-services/sanitize-prow-jobs/_clusters.yaml")))
        .and(query_param("ref", "0123abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"type": "file", "sha": "b10b", "path": "core-services/sanitize-prow-jobs/_clusters.yaml"})))
        .mount(&server)
        .await;
    json_mock(
        &server,
        "GET",
        "",
        200,
        json!({"default_branch": "main", "full_name": "acme/release"}),
    )
    .await;
    json_mock(
        &server,
        "GET",
        "/git/ref/heads/main",
        200,
        json!({"ref": "refs/heads/main", "object": {"sha": "0123abc", "type": "commit"}}),
    )
    .await;
    let gh = github(&server);
    assert_eq!(gh.head().await.unwrap(), "0123abc");
    let release = gh.release("0123abc").await.unwrap();
    assert_eq!(release.files.len(), 6);
    assert!(release.config.is_some() && release.clusters.is_some());
    assert_eq!(release.texts.len(), 6, "the PR needs every job file's text");
    assert_eq!(
        gh.blob_sha("0123abc", "core-services/sanitize-prow-jobs/_clusters.yaml")
            .await
            .unwrap()
            .as_deref(),
        Some("b10b")
    );
    // Not there: a 404 is an answer, not an error.
    assert_eq!(gh.blob_sha("0123abc", "missing.yaml").await.unwrap(), None);
}

fn change() -> FallbackChange {
    FallbackChange {
        base_commit: "base0".to_owned(),
        generation: 7,
        files: BTreeMap::from([
            (
                "ci-operator/jobs/a/a-presubmits.yaml".to_owned(),
                "presubmits: {}\n# a file long enough to need its own tree\n".to_owned(),
            ),
            (
                "ci-operator/jobs/b/b-presubmits.yaml".to_owned(),
                "presubmits: {}\n".to_owned(),
            ),
            (
                "core-services/sanitize-prow-jobs/_config.yaml".to_owned(),
                "default: build01\n".to_owned(),
            ),
        ]),
        title: "Automate prow job dispatcher: generation 7".to_owned(),
        body: "summary".to_owned(),
    }
}

fn calls(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path().trim_start_matches(REPO)))
        .collect()
}

#[tokio::test]
async fn a_first_pr_creates_the_branch_and_the_pull_request() {
    let server = MockServer::start().await;
    main_at_base0(&server).await;
    // A rate limit, then a server error, then success.
    once(&server, "POST", "/git/trees", 403, json!({"message": "API rate limit exceeded for installation ID 1.", "documentation_url": "https://docs.github.com"})).await;
    once(
        &server,
        "POST",
        "/git/trees",
        502,
        json!({"message": "Server Error"}),
    )
    .await;
    json_mock(&server, "POST", "/git/trees", 201, json!({"sha": "tree1"})).await;
    json_mock(
        &server,
        "GET",
        "/git/ref/heads/automate-prow-job-dispatcher",
        404,
        json!({"message": "Not Found"}),
    )
    .await;
    json_mock(
        &server,
        "POST",
        "/git/commits",
        201,
        json!({"sha": "commit1"}),
    )
    .await;
    json_mock(
        &server,
        "POST",
        "/git/refs",
        201,
        json!({"ref": "refs/heads/automate-prow-job-dispatcher", "object": {"sha": "commit1"}}),
    )
    .await;
    json_mock(&server, "GET", "/pulls", 200, json!([])).await;
    json_mock(&server, "POST", "/pulls", 201, json!({"number": 42})).await;
    json_mock(&server, "POST", "/issues/42/labels", 200, json!([])).await;

    let report = github(&server).publish(&change()).await.unwrap();
    assert_eq!(
        (report.pull_request, report.created, report.commit.as_str()),
        (42, true, "commit1")
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        calls(&requests),
        vec![
            "GET ",
            "GET /git/commits/base0",
            "POST /git/trees",
            "POST /git/trees",
            "POST /git/trees", // rate limited, 502, then the first batch
            "POST /git/trees", // the second batch
            "GET /git/ref/heads/automate-prow-job-dispatcher",
            "POST /git/commits",
            "POST /git/refs",
            "GET /pulls",
            "POST /pulls",
            "POST /issues/42/labels",
        ]
    );
    assert!(report.pushed);
    assert_eq!(report.api_calls, requests.len());
    let body = |i: usize| -> Value { serde_json::from_slice(&requests[i].body).unwrap() };
    // Trees chain on each other, starting from the base commit's tree.
    assert_eq!(body(4)["base_tree"], "tree0");
    assert_eq!(body(5)["base_tree"], "tree1");
    // 40-byte batches: the long file alone, then the two short ones.
    let batch = |i: usize| -> Vec<Value> {
        body(i)["tree"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].clone())
            .collect()
    };
    assert_eq!(
        batch(4),
        vec![json!("ci-operator/jobs/a/a-presubmits.yaml")]
    );
    assert_eq!(batch(5).len(), 2);
    assert_eq!(body(5)["tree"][0]["content"], "presubmits: {}\n");
    assert_eq!(body(7)["parents"], json!(["base0"]));
    assert_eq!(body(7)["tree"], "tree1");
    assert_eq!(body(8)["ref"], "refs/heads/automate-prow-job-dispatcher");
    assert_eq!(body(10)["base"], "main");
    assert_eq!(
        body(11)["labels"],
        json!(["rehearsals-ack", "priority/ci-critical"])
    );
    assert_eq!(
        requests[9].url.query(),
        Some("state=open&head=acme:automate-prow-job-dispatcher")
    );
    assert!(requests.iter().all(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer t0ken")
    }));
}

#[tokio::test]
async fn an_existing_pr_is_updated_not_duplicated() {
    let server = MockServer::start().await;
    main_at_base0(&server).await;
    json_mock(&server, "POST", "/git/trees", 201, json!({"sha": "tree1"})).await;
    backup_branch(&server, "commit1", "tree-before", "base0").await;
    json_mock(
        &server,
        "POST",
        "/git/commits",
        201,
        json!({"sha": "commit2"}),
    )
    .await;
    json_mock(
        &server,
        "PATCH",
        "/git/refs/heads/automate-prow-job-dispatcher",
        200,
        json!({"object": {"sha": "commit2"}}),
    )
    .await;
    open_pull_request_5(&server).await;
    let report = github(&server).publish(&change()).await.unwrap();
    assert_eq!((report.pull_request, report.created), (5, false));
    let requests = server.received_requests().await.unwrap();
    let names = calls(&requests);
    assert!(!names.iter().any(|c| c == "POST /pulls"), "{names:?}");
    let patch: Value = serde_json::from_slice(
        &requests[names
            .iter()
            .position(|c| c.starts_with("PATCH /git/refs"))
            .unwrap()]
        .body,
    )
    .unwrap();
    assert_eq!(patch["force"], true);
    assert!(report.pushed);
}

/// The repository's default branch `main`, at commit `base0` with tree `tree0`.
async fn main_at_base0(server: &MockServer) {
    json_mock(server, "GET", "", 200, json!({"default_branch": "main"})).await;
    json_mock(
        server,
        "GET",
        "/git/commits/base0",
        200,
        json!({"sha": "base0", "tree": {"sha": "tree0"}}),
    )
    .await;
}

/// An open backup pull request, number 5, that accepts updates and labels.
async fn open_pull_request_5(server: &MockServer) {
    json_mock(
        server,
        "GET",
        "/pulls",
        200,
        json!([{"number": 5, "state": "open"}]),
    )
    .await;
    json_mock(server, "PATCH", "/pulls/5", 200, json!({"number": 5})).await;
    json_mock(server, "POST", "/issues/5/labels", 200, json!([])).await;
}

/// The backup branch at `commit`, whose tree is `tree` on parent `parent`.
async fn backup_branch(server: &MockServer, commit: &str, tree: &str, parent: &str) {
    json_mock(
        server,
        "GET",
        "/git/ref/heads/automate-prow-job-dispatcher",
        200,
        json!({"ref": "refs/heads/automate-prow-job-dispatcher", "object": {"sha": commit, "type": "commit"}}),
    )
    .await;
    json_mock(
        server,
        "GET",
        &format!("/git/commits/{commit}"),
        200,
        json!({"sha": commit, "tree": {"sha": tree}, "parents": [{"sha": parent}]}),
    )
    .await;
}

#[tokio::test]
async fn a_branch_that_already_holds_the_files_is_not_pushed_again() {
    let server = MockServer::start().await;
    main_at_base0(&server).await;
    json_mock(&server, "POST", "/git/trees", 201, json!({"sha": "tree1"})).await;
    // The branch holds tree1 on base0 already: what this change would commit.
    backup_branch(&server, "commit1", "tree1", "base0").await;
    open_pull_request_5(&server).await;
    let report = github(&server).publish(&change()).await.unwrap();
    assert!(!report.pushed);
    assert_eq!(report.commit, "commit1");
    let names = calls(&server.received_requests().await.unwrap());
    assert!(
        !names
            .iter()
            .any(|c| c == "POST /git/commits" || c.starts_with("PATCH /git/refs")),
        "{names:?}"
    );
    // The PR still says which generation it carries.
    assert!(names.iter().any(|c| c == "PATCH /pulls/5"), "{names:?}");
}

#[tokio::test]
async fn persistent_server_errors_are_reported_retryable_and_client_errors_are_not() {
    let server = MockServer::start().await;
    json_mock(&server, "GET", "", 200, json!({"default_branch": "main"})).await;
    json_mock(
        &server,
        "GET",
        "/git/commits/base0",
        500,
        json!({"message": "boom"}),
    )
    .await;
    let e = github(&server).publish(&change()).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1 + 4,
        "four attempts"
    );

    let server = MockServer::start().await;
    json_mock(&server, "GET", "", 404, json!({"message": "Not Found"})).await;
    let e = github(&server).publish(&change()).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
}

#[tokio::test]
async fn a_tarball_is_retried_on_server_errors_but_not_on_a_missing_commit() {
    let server = MockServer::start().await;
    json_mock(
        &server,
        "GET",
        "/tarball/gone",
        404,
        json!({"message": "Not Found"}),
    )
    .await;
    let e = github(&server).release("gone").await.unwrap_err();
    assert!(
        !e.is_retryable() && matches!(e, dispatcher_app::SourceError::NotFound { .. }),
        "{e}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let server = MockServer::start().await;
    once(
        &server,
        "GET",
        "/tarball/0123abc",
        502,
        json!({"message": "Server Error"}),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/tarball/0123abc")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(tarball()))
        .mount(&server)
        .await;
    let release = github(&server).release("0123abc").await.unwrap();
    assert_eq!(release.files.len(), 6);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_github_asks_and_a_long_one_is_not() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "{REPO}/contents/core-services/sanitize-prow-jobs/_clusters.yaml"
        )))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    json_mock(
        &server,
        "GET",
        "/contents/core-services/sanitize-prow-jobs/_clusters.yaml",
        200,
        json!({"sha": "blob1", "type": "file"}),
    )
    .await;
    let gh = github(&server);
    let started = std::time::Instant::now();
    let blob = gh
        .blob_sha("c1", "core-services/sanitize-prow-jobs/_clusters.yaml")
        .await
        .unwrap();
    assert_eq!(blob.as_deref(), Some("blob1"));
    // The test's own backoff is 10 ms: only Retry-After makes it wait this long.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gh.calls(), 2);

    // Out of requests for the next hour: failed at once, retryable, saying so.
    let server = MockServer::start().await;
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string())
                .set_body_json(json!({"message": "API rate limit exceeded for installation"})),
        )
        .mount(&server)
        .await;
    let gh = github(&server);
    let started = std::time::Instant::now();
    let e = gh.head().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("asks to wait"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(gh.calls(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_and_no_client_exceeds_its_call_budget() {
    let server = MockServer::start().await;
    once(&server, "GET", "", 500, json!({"message": "oops"})).await;
    once(&server, "GET", "", 502, json!({"message": "bad gateway"})).await;
    json_mock(&server, "GET", "", 200, json!({"default_branch": "main"})).await;
    json_mock(
        &server,
        "GET",
        "/git/ref/heads/main",
        200,
        json!({"object": {"sha": "c9"}}),
    )
    .await;
    let gh = github(&server);
    assert_eq!(gh.head().await.unwrap(), "c9");
    assert_eq!(
        gh.calls(),
        4,
        "two failures, then the repository and the commit"
    );

    let failing = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"message": "unavailable"})))
        .mount(&failing)
        .await;
    let crab = GitHub::client(None, Some(&failing.uri()), Duration::from_secs(5)).unwrap();
    let gh = GitHub::new(
        crab,
        GitHubConfig {
            retry: Retry {
                attempts: 10,
                base: Duration::from_millis(1),
            },
            max_calls: 3,
            ..GitHubConfig::new("acme", "release")
        },
    );
    let e = gh.head().await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("budget of 3"), "{e}");
    assert_eq!(failing.received_requests().await.unwrap().len(), 3);
}
