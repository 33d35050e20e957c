//! Benchmark of the lookup: the local lookup server under wrk (64 connections, 30 s)
//! against nginx serving one static JSON file on the same machine; in-process handler
//! latency; the lookup Lambda binary's cold start to its first answer (behind a local
//! stand-in for the Lambda runtime API, reading DynamoDB and S3 in the emulator) and its
//! size. The binary is `DISPATCHER_LOOKUP_BIN` (what `./infra/bench.sh lookup` sets: the
//! Lambda bootstrap `cargo lambda build` made, the artifact that ships), else the release
//! `lookup` beside this program. With `DISPATCHER_BASELINE_LOOKUP` naming another lookup
//! binary (an earlier build), both are started in turn against the same generation, for a
//! ratio; with `DISPATCHER_BASELINE_SERVE` naming another `dispatcher` binary, its
//! `serve` is put under the same load beside this build's.
//!
//! `./infra/bench.sh lookup` (installs wrk and nginx from Debian, starts the emulator,
//! builds the release binaries and the bootstraps, then runs this program).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Body;
use dispatcher_app::Cause;
use dispatcher_app::publish::{self, PublishOptions};
use dispatcher_core::{Settings, Strategy};
use dispatcher_formats::InputPaths;
use dispatcher_tests::corpus_dir;
use tokio::sync::Notify;
use tower::{Service, ServiceExt};

const CONNECTIONS: u32 = 64;
const SECONDS: u32 = 30;
/// Cold starts of each binary, taken in turn: enough that the median stands still on a
/// shared machine whose noise moves single runs by 30%.
const COLD_RUNS: usize = 21;

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(port: u16) -> Result<()> {
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on {port}")
}

/// A child stopped when dropped: asked with SIGTERM first, because a SIGKILL to nginx's
/// master leaves its worker orphaned and spinning on a core the next measurement needs;
/// killed if it has not exited within 5 s.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let asked = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while asked && Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn millis(v: &str) -> f64 {
    let v = v.trim();
    let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// On a shared 2-core machine, four busy threads (two of wrk, two of the server) preempt one
/// another and the tail latency measures the scheduler, not the server. Each side gets a core
/// of its own instead, the same for our server and for nginx.
fn pinned(program: &str, core: usize) -> Command {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if cores >= 2 && taskset {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &core.to_string(), program]);
        cmd
    } else {
        Command::new(program)
    }
}

const LOAD_CORE: usize = 0;
const SERVER_CORE: usize = 1;

fn wrk(url: &str, script: Option<&Path>) -> Result<Wrk> {
    let mut cmd = pinned("wrk", LOAD_CORE);
    cmd.args([
        "-t1",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{SECONDS}s"),
        "--latency",
    ]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .arg(url)
        .output()
        .context("run wrk (./infra/bench.sh lookup installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    };
    let rps = line("Requests/sec:")
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()));
    let p = |q: &str| line(q).and_then(|l| l.split_whitespace().nth(1).map(millis));
    let mut errors = 0;
    if let Some(l) = line("Non-2xx or 3xx responses:") {
        errors += l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    if let Some(l) = line("Socket errors:") {
        errors += l
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|v| v.parse::<u64>().ok())
            .sum::<u64>();
    }
    match (rps, p("50%"), p("99%")) {
        (Some(rps), Some(p50_ms), Some(p99_ms)) => Ok(Wrk {
            rps,
            p50_ms,
            p99_ms,
            errors,
        }),
        _ => bail!("cannot read wrk's output:\n{text}"),
    }
}

/// A local store holding the corpus plan as its current generation; returns the job names.
async fn store_with_corpus(c: &Path, dir: &Path) -> Result<Vec<String>> {
    let loaded = dispatcher_formats::load(
        &InputPaths {
            release: c.join("release-7659af06.tar.gz"),
            clusters: Some(c.join("clusters-2022.yaml")),
            volumes: Some(c.join("volumes-7659af06.week1.json.gz")),
            ..InputPaths::default()
        },
        &|| {},
    )?;
    let settings = Settings {
        strategy: Strategy::Balanced,
        vsphere_cluster: "vsphere".to_owned(),
        ..Settings::default()
    };
    let plan =
        dispatcher_core::run(&loaded.inputs(), &settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stores = dispatcher_app::local::open(dir)?;
    publish::publish(&stores, &plan, &PublishOptions::new(Cause::Manual, 1)).await?;
    Ok(plan
        .jobs
        .iter()
        .filter(|(_, e)| e.cluster.is_some())
        .map(|(n, _)| n.clone())
        .collect())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn in_process(router: Router, jobs: &[String]) -> Result<(Duration, Duration, Duration)> {
    let mut svc = router.into_service::<Body>();
    let mut samples = Vec::with_capacity(200_000);
    for i in 0..220_000 {
        let job = &jobs[i % jobs.len()];
        let req =
            axum::http::Request::post("/").body(Body::from(format!(r#"{{"job":"{job}"}}"#)))?;
        let t = Instant::now();
        let resp = svc.ready().await?.call(req).await?;
        let elapsed = t.elapsed();
        if resp.status() != 200 {
            bail!("{job}: {}", resp.status());
        }
        // The first 20,000 warm up the cache and the allocator.
        if i >= 20_000 {
            samples.push(elapsed);
        }
    }
    samples.sort();
    Ok((
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    ))
}

/// A stand-in for the Lambda runtime API: hands out one API Gateway v2 event and waits for
/// its response.
async fn cold_start(binary: &Path, store: &Emulated, job: &str) -> Result<Duration> {
    let answered = Arc::new(Notify::new());
    let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let event = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/events/apigw-v2-lookup.json"),
    )?
    .replace("JOB", job);
    let app = {
        let answered = answered.clone();
        let served = served.clone();
        Router::new()
            .route(
                "/2018-06-01/runtime/invocation/next",
                axum::routing::get(move || {
                    let (event, served) = (event.clone(), served.clone());
                    async move {
                        if served.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            // One invocation only: the next one never comes.
                            std::future::pending::<()>().await;
                        }
                        axum::http::Response::builder()
                            .header("lambda-runtime-aws-request-id", "req-1")
                            .header("lambda-runtime-deadline-ms", "99999999999999")
                            .header(
                                "lambda-runtime-invoked-function-arn",
                                "arn:aws:lambda:us-east-1:1:function:lookup",
                            )
                            .header(
                                "lambda-runtime-trace-id",
                                "Root=1-00000000-000000000000000000000000",
                            )
                            .body(Body::from(event))
                            .unwrap_or_default()
                    }
                }),
            )
            .route(
                "/2018-06-01/runtime/invocation/req-1/response",
                axum::routing::post(move |body: String| {
                    let answered = answered.clone();
                    async move {
                        if body.contains("cluster") {
                            answered.notify_one();
                        }
                        axum::http::StatusCode::ACCEPTED
                    }
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    let child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "lookup")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("DISPATCHER_TABLE", &store.table)
        .env("DISPATCHER_BUCKET", &store.bucket)
        .envs(
            [
                "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_REGION",
                "AWS_EC2_METADATA_DISABLED",
            ]
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let _child = Killed(child);
    tokio::time::timeout(Duration::from_secs(10), answered.notified())
        .await
        .context("the lookup binary did not answer")?;
    let elapsed = started.elapsed();
    server.abort();
    Ok(elapsed)
}

/// `dispatcher serve` (the binary `dispatcher`) on the corpus, in a store of its own under
/// `dir`, under wrk posting the job names of `script`. With nothing published, `serve`
/// plans and publishes before it listens, so the load meets a server at rest. (On a store
/// that already serves, it would recompute behind the lookups, on the same core, while wrk
/// measures.)
fn serve_under_load(dispatcher: &Path, c: &Path, dir: &Path, script: &Path) -> Result<Wrk> {
    let port = free_port()?;
    let serve = pinned(&dispatcher.to_string_lossy(), SERVER_CORE)
        .env("TOKIO_WORKER_THREADS", "1")
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--vsphere-cluster",
            "vsphere",
        ])
        .arg("--release")
        .arg(c.join("release-7659af06.tar.gz"))
        .arg("--clusters")
        .arg(c.join("clusters-2022.yaml"))
        .arg("--volumes")
        .arg(c.join("volumes-7659af06.week1.json.gz"))
        .env("DISPATCHER_LOCAL_DIR", dir.join("serve-store"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("start {} serve", dispatcher.display()))?;
    let _serve = Killed(serve);
    wait_port(port)?;
    wrk(&format!("http://127.0.0.1:{port}/"), Some(script))
}

#[tokio::main]
async fn main() -> Result<()> {
    let Some(c) = corpus_dir() else {
        bail!(
            "bench-lookup needs the corpus (../shared/corpus beside the repository, or DISPATCHER_CORPUS)"
        );
    };
    // The binaries it runs sit beside it (the same target directory and profile), unless
    // told otherwise.
    let bin = match std::env::var_os("DISPATCHER_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark's own directory")?
            .to_owned(),
    };
    let tmp = tempfile::tempdir()?;
    let store = tmp.path().join("store");
    let jobs = store_with_corpus(&c, &store).await?;
    println!(
        "## Lookup ({} jobs served; load generator and server pinned to one core each)\n",
        jobs.len()
    );

    let names = tmp.path().join("jobs.txt");
    std::fs::write(
        &names,
        jobs.iter()
            .take(5000)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    let script = tmp.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            r#"local jobs = {{}}
for line in io.lines("{}") do jobs[#jobs + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #jobs + 1
  return wrk.format(nil, nil, nil, '{{"job":"' .. jobs[i] .. '"}}')
end
"#,
            names.display()
        ),
    )?;
    let ours = serve_under_load(
        &bin.join("dispatcher"),
        &c,
        &tmp.path().join("ours"),
        &script,
    )?;
    let baseline_serve = match std::env::var_os("DISPATCHER_BASELINE_SERVE") {
        Some(b) => {
            let b = PathBuf::from(b);
            let w = serve_under_load(&b, &c, &tmp.path().join("baseline"), &script)?;
            Some((b, w))
        }
        None => None,
    };

    // nginx serving one static JSON file.
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("cluster.json"), "{\"cluster\":\"build01\"}\n")?;
    let nginx_port = free_port()?;
    let conf = tmp.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {pid};\nerror_log {err} crit;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n  server {{\n    listen 127.0.0.1:{nginx_port};\n    root {site};\n    default_type application/json;\n  }}\n}}\n",
            pid = tmp.path().join("nginx.pid").display(),
            err = tmp.path().join("nginx.err").display(),
            tmp = tmp.path().display(),
            site = site.display(),
        ),
    )?;
    let nginx = pinned("nginx", SERVER_CORE)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start nginx (./infra/bench.sh lookup installs it)")?;
    let _nginx = Killed(nginx);
    wait_port(nginx_port)?;
    let theirs = wrk(&format!("http://127.0.0.1:{nginx_port}/cluster.json"), None)?;
    drop(_nginx);

    println!(
        "### Under load: wrk (1 thread), {CONNECTIONS} connections, {SECONDS} s; each server on one worker\n"
    );
    println!("| server | requests/s | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---:|");
    let mut rows = vec![(
        "dispatcher serve (POST /, 5,000 distinct jobs)".to_owned(),
        &ours,
    )];
    if let Some((b, w)) = &baseline_serve {
        rows.push((format!("baseline {} serve (the same)", b.display()), w));
    }
    rows.push(("nginx, one static JSON file (GET)".to_owned(), &theirs));
    for (name, w) in rows {
        println!(
            "| {name} | {:.0} | {:.3} ms | {:.3} ms | {} |",
            w.rps, w.p50_ms, w.p99_ms, w.errors
        );
    }
    println!(
        "\nThroughput: {:.0}% of nginx (goal at least 50%); p99 {:.3} ms (goal under 2 ms); {} errors (goal 0).",
        ours.rps / theirs.rps * 100.0,
        ours.p99_ms,
        ours.errors
    );
    if let Some((_, w)) = &baseline_serve {
        println!(
            "Against the baseline: throughput {:.2}x, p99 {:.2}x.",
            ours.rps / w.rps,
            ours.p99_ms / w.p99_ms
        );
    }
    println!();

    // In process: the lookup router alone, and the lookup function's router (the pages
    // beside it), in turn on the same store.
    let stores = dispatcher_app::local::open(&store)?;
    let bare = dispatcher_api::lookup_router(Arc::new(dispatcher_api::LookupState {
        service: Arc::new(dispatcher_app::LookupService::new(stores.clone())),
        now: dispatcher_api::now,
    }));
    let cfg = dispatcher_config::RuntimeConfig::from_lookup(|_| None)?;
    let shipped = lookup::router(&cfg, stores);
    println!("### In process: 200,000 requests after warm-up\n");
    println!("| router | p50 | p99 | max |\n|---|---:|---:|---:|");
    for (name, router) in [
        ("the lookup router alone", bare),
        ("the lookup function's (with the pages)", shipped),
    ] {
        let (p50, p99, max) = in_process(router, &jobs).await?;
        println!(
            "| {name} | {:.1} µs | {:.1} µs | {:.1} µs |",
            us(p50),
            us(p99),
            us(max)
        );
    }
    println!("\nGoal: p99 under 50 µs.\n");

    // The Lambda binary, cold: the functions read DynamoDB and S3, here in the emulator.
    let emulated = publish_to_emulator(&store).await?;
    let lookup =
        std::env::var_os("DISPATCHER_LOOKUP_BIN").map_or_else(|| bin.join("lookup"), PathBuf::from);
    let baseline = std::env::var_os("DISPATCHER_BASELINE_LOOKUP").map(PathBuf::from);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..COLD_RUNS {
        // In turn, so that both see the same machine.
        ours.push(cold_start(&lookup, &emulated, &jobs[0]).await?);
        if let Some(b) = &baseline {
            theirs.push(cold_start(b, &emulated, &jobs[0]).await?);
        }
    }
    println!("### The lookup Lambda binary\n");
    println!(
        "Cold start to first answer (process start, runtime API poll, the pointer and the generation's {} answers from DynamoDB and S3 in the emulator, answer), {COLD_RUNS} runs each:\n",
        jobs.len()
    );
    println!("| binary | median | best | worst | size |\n|---|---:|---:|---:|---:|");
    let median = |v: &mut Vec<Duration>| -> Result<(Duration, Duration, Duration)> {
        v.sort();
        Ok((v[COLD_RUNS / 2], v[0], v[COLD_RUNS - 1]))
    };
    let row = |name: &str, path: &Path, (m, b, w): (Duration, Duration, Duration)| -> Result<()> {
        let size = std::fs::metadata(path)?.len();
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} MB |",
            ms(m),
            ms(b),
            ms(w),
            size as f64 / 1e6
        );
        Ok(())
    };
    let ours_m = median(&mut ours)?;
    row("this build", &lookup, ours_m)?;
    if let Some(b) = &baseline {
        let theirs_m = median(&mut theirs)?;
        row(&b.display().to_string(), b, theirs_m)?;
        println!(
            "\nMedian cold start: {:.2}x the baseline's.",
            ours_m.0.as_secs_f64() / theirs_m.0.as_secs_f64()
        );
    }
    Ok(())
}

/// A table and bucket in the emulator serving the local store's generation.
struct Emulated {
    table: String,
    bucket: String,
}

/// Publishes the plan the local `store` serves into a fresh table and bucket in the
/// emulator the environment points at.
async fn publish_to_emulator(store: &Path) -> Result<Emulated> {
    std::env::var("AWS_ENDPOINT_URL").context(
        "the cold start reads the emulator: run ./infra/bench.sh lookup, which starts one",
    )?;
    let local = dispatcher_app::local::open(store)?;
    let pointer = local
        .serving()
        .await?
        .context("the local store serves nothing")?;
    let plan = publish::load_plan(&local, &pointer.snapshot).await?;
    let clients = dispatcher_aws::Clients::from_env(true).await;
    let (stores, table, bucket) =
        dispatcher_aws::emulator::fresh(&clients, include_str!("../../../template.yaml")).await?;
    publish::publish(&stores, &plan, &PublishOptions::new(Cause::Manual, 1)).await?;
    Ok(Emulated { table, bucket })
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
