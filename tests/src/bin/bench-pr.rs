//! Benchmark of pull request plans on the real corpus, with a local GitHub mock: a config
//! pull request from the signed event to the posted comment, against `dispatcher plan
//! --previous` of the same tarball (the bound: at most 1.5x), and a pull request
//! changing 20 job files from the event to the status (bound: 1 s, and no tarball).
//! Prints figures measured side by side in one run; a program, not a timed test.
//!
//! `./infra/bench.sh pr`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Body;
use dispatcher_app::RepoSource;
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_core::{Settings, Strategy};
use dispatcher_formats::InputPaths;
use dispatcher_github::{GitHub, GitHubConfig};
use dispatcher_tests::corpus_dir;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 3;
const T0: i64 = 1_800_000_000;
const SECRET: &[u8] = b"bench";
const REPO: &str = "/repos/acme/release";
const CLUSTERS: &str = "core-services/sanitize-prow-jobs/_clusters.yaml";

fn settings() -> Settings {
    Settings {
        strategy: Strategy::Balanced,
        vsphere_cluster: "vsphere".to_owned(),
        ..Settings::default()
    }
}

/// The head of a pull request as GitHub's tarball: every member under a top directory,
/// with `_clusters.yaml` replaced.
fn head_tarball(members: &[(String, Vec<u8>)], clusters: &[u8]) -> Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut append = |path: &str, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("acme-release-head/{path}"), data)?;
        Ok(())
    };
    for (path, data) in members.iter().filter(|(p, _)| p != CLUSTERS) {
        append(path, data)?;
    }
    append(CLUSTERS, clusters)?;
    Ok(tar.into_inner()?.finish()?)
}

async fn on(server: &MockServer, verb: &str, route: &str, body: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path(format!("{REPO}{route}")))
        .respond_with(body)
        .mount(server)
        .await;
}

fn signed(number: u64, head: &str, delivery: &str) -> Result<axum::http::Request<Body>> {
    let body = json!({
        "action": "synchronize", "number": number,
        "pull_request": {"number": number, "draft": false, "head": {"sha": head}, "base": {"ref": "main"}},
        "repository": {"full_name": "acme/release", "default_branch": "main"}
    })
    .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET)?;
    mac.update(body.as_bytes());
    Ok(axum::http::Request::post("/github")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(Body::from(body))?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let Some(c) = corpus_dir() else {
        eprintln!(
            "bench-pr needs the corpus (../shared/corpus beside the repository, or DISPATCHER_CORPUS)"
        );
        std::process::exit(2);
    };
    let tarball = c.join("release-7659af06.tar.gz");
    let clusters = c.join("clusters-2022.yaml");
    let week1 = c.join("volumes-7659af06.week1.json.gz");
    let dir = tempfile::tempdir()?;
    let stores = dispatcher_app::local::open(&dir.path().join("store"))?;
    let local = dispatcher_tests::corpus_recomputer(&c, stores.clone(), settings());
    local.run(&RecomputeRequest::weekly(), "weekly", T0).await?;
    let pointer = stores.serving().await?.context("a generation")?;
    let serving = dispatcher_app::publish::load_plan(&stores, &pointer.snapshot).await?;
    let previous = dir.path().join("previous.json");
    std::fs::write(&previous, serving.to_json())?;

    // The pull request blocks build03.
    let inventory = std::fs::read_to_string(&clusters)?.replace(
        "  - name: build03\n",
        "  - name: build03\n    blocked: true\n",
    );
    let members = dispatcher_tests::tar_members(&tarball)?;
    let head = head_tarball(&members, inventory.as_bytes())?;
    let head_file = dir.path().join("head.tar.gz");
    std::fs::write(&head_file, &head)?;

    let github = MockServer::start().await;
    on(
        &github,
        "GET",
        "/pulls/7/files",
        ResponseTemplate::new(200)
            .set_body_json(json!([{"filename": CLUSTERS, "status": "modified"}])),
    )
    .await;
    on(
        &github,
        "GET",
        "/pulls/7",
        ResponseTemplate::new(200).set_body_json(json!({"head": {"sha": "head1"}})),
    )
    .await;
    on(
        &github,
        "GET",
        "/tarball/head1",
        ResponseTemplate::new(200).set_body_bytes(head),
    )
    .await;
    let jobs: Vec<&(String, Vec<u8>)> = members
        .iter()
        .filter(|(p, _)| p.starts_with("ci-operator/jobs/") && p.ends_with(".yaml"))
        .step_by(500)
        .take(20)
        .collect();
    let files: Vec<Value> = jobs
        .iter()
        .map(|(p, _)| json!({"filename": p, "status": "modified"}))
        .collect();
    on(
        &github,
        "GET",
        "/pulls/8/files",
        ResponseTemplate::new(200).set_body_json(json!(files)),
    )
    .await;
    on(
        &github,
        "GET",
        "/pulls/8",
        ResponseTemplate::new(200).set_body_json(json!({"head": {"sha": "head2"}})),
    )
    .await;
    for (p, bytes) in &jobs {
        on(
            &github,
            "GET",
            &format!("/contents/{p}"),
            ResponseTemplate::new(200).set_body_bytes(bytes.clone()),
        )
        .await;
    }
    for n in [7, 8] {
        on(
            &github,
            "GET",
            &format!("/issues/{n}/comments"),
            ResponseTemplate::new(200).set_body_json(json!([])),
        )
        .await;
        on(
            &github,
            "POST",
            &format!("/issues/{n}/comments"),
            ResponseTemplate::new(201).set_body_json(json!({"id": n})),
        )
        .await;
    }
    for h in ["head1", "head2"] {
        on(
            &github,
            "POST",
            &format!("/statuses/{h}"),
            ResponseTemplate::new(201).set_body_json(json!({})),
        )
        .await;
    }
    let crab = GitHub::client(
        Some("t".to_owned()),
        Some(&github.uri()),
        Duration::from_secs(30),
    )?;
    let gh = Arc::new(GitHub::new(crab, GitHubConfig::new("acme", "release")));
    let mut recomputer = local.clone();
    recomputer.repo = gh.clone();
    recomputer.pull_requests = Some(gh.clone());
    let (tx, mut results) = mpsc::unbounded_channel();
    let webhook = dispatcher_api::webhook_router(Arc::new(dispatcher_api::WebhookState {
        secret: SECRET.to_vec(),
        repo: "acme/release".to_owned(),
        source: gh.clone() as Arc<dyn RepoSource>,
        table: stores.table.clone(),
        handoff: Arc::new(dispatcher_tests::LambdaInvoke {
            recomputer: Arc::new(recomputer),
            results: tx,
            now: || T0 + 60,
            submitted: Default::default(),
        }),
        prs: Some(gh.clone()),
        now: || T0 + 60,
        deadline: dispatcher_api::webhook::DEADLINE,
    }));

    let mut event = Duration::MAX;
    let mut baseline = Duration::MAX;
    let mut jobs_time = Duration::MAX;
    let mut outcome = Value::Null;
    for run in 0..RUNS {
        let t = Instant::now();
        let loaded = dispatcher_formats::load(
            &InputPaths {
                release: head_file.clone(),
                volumes: Some(week1.clone()),
                previous: Some(previous.clone()),
                ..InputPaths::default()
            },
            &|| {},
        )?;
        let plan = dispatcher_core::run(&loaded.inputs(), &settings())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        std::hint::black_box(plan.to_json());
        baseline = baseline.min(t.elapsed());

        let t = Instant::now();
        let r = webhook
            .clone()
            .oneshot(signed(7, "head1", &format!("c-{run}"))?)
            .await?;
        anyhow::ensure!(r.status() == 202, "the config delivery: {}", r.status());
        outcome = results
            .recv()
            .await
            .context("a result")?
            .map_err(|e| anyhow::anyhow!(e))?;
        event = event.min(t.elapsed());

        let t = Instant::now();
        let r = webhook
            .clone()
            .oneshot(signed(8, "head2", &format!("j-{run}"))?)
            .await?;
        anyhow::ensure!(r.status() == 202, "the job-files delivery: {}", r.status());
        results
            .recv()
            .await
            .context("a result")?
            .map_err(|e| anyhow::anyhow!(e))?;
        jobs_time = jobs_time.min(t.elapsed());
    }
    let requests = github.received_requests().await.unwrap_or_default();
    let count = |prefix: &str| {
        requests
            .iter()
            .filter(|r| r.url.path().starts_with(&format!("{REPO}{prefix}")))
            .count()
    };
    let comment = requests
        .iter()
        .find(|r| {
            r.url.path() == format!("{REPO}/issues/7/comments") && r.method.as_str() == "POST"
        })
        .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .and_then(|v| v["body"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "## Pull request plans on the real corpus ({} jobs; best of {RUNS} runs each)\n",
        serving.summary.jobs
    );
    println!("| step | time | ratio |");
    println!("|---|---:|---:|");
    println!(
        "| `dispatcher plan --previous` of the head's tarball (read, place, serialise) | {:.0} ms | 1.00x |",
        ms(baseline)
    );
    println!(
        "| a config pull request (blocks build03): signed event -> webhook -> plan from the head's tarball -> comment and status | {:.0} ms | {:.2}x (bound 1.5x) |",
        ms(event),
        event.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "| a pull request changing 20 job files: signed event -> status | {:.0} ms | (bound 1 s) |",
        ms(jobs_time)
    );
    println!(
        "\nGitHub calls in all {RUNS} rounds: {} tarball downloads (the config pull request's only), {} file fetches (20 per job-files round), {} comments posted, {} statuses. Outcome of the config plan: {}. The comment is {} bytes.",
        count("/tarball/"),
        count("/contents/"),
        requests
            .iter()
            .filter(|r| r.url.path().ends_with("/comments") && r.method.as_str() == "POST")
            .count(),
        count("/statuses/"),
        outcome["outcome"],
        comment.len()
    );
    let mut per_pair = BTreeMap::new();
    for line in comment.lines().filter(|l| l.starts_with("| build03 |")) {
        per_pair.insert(line.to_owned(), ());
    }
    anyhow::ensure!(
        count("/tarball/") == RUNS,
        "only the config pull request downloads the tarball"
    );
    anyhow::ensure!(
        !per_pair.is_empty(),
        "the comment shows the moves off build03"
    );
    anyhow::ensure!(
        event.as_secs_f64() <= 1.5 * baseline.as_secs_f64(),
        "the config pull request took over 1.5x plan --previous"
    );
    anyhow::ensure!(
        jobs_time <= Duration::from_secs(1),
        "the job-files pull request took over 1 s"
    );
    Ok(())
}
