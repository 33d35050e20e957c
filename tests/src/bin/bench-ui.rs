//! Benchmark of the pages on the real corpus: the time to the first byte of a job's page
//! from a warm server (the bound: 5 ms), of the other pages, and of a lookup on the
//! same server, in turn. Prints figures measured in one run; a program, not a timed test.
//!
//! `./infra/bench.sh ui`

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_core::{Settings, Strategy};
use dispatcher_tests::corpus_dir;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUESTS: usize = 200;

/// Sends `request` on a fresh connection; the time to the first byte of the answer, and
/// the answer.
fn first_byte(addr: &str, request: &str) -> Result<(Duration, String)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let t = Instant::now();
    s.write_all(request.as_bytes())?;
    let mut one = [0u8; 1];
    s.read_exact(&mut one)?;
    let elapsed = t.elapsed();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)?;
    Ok((
        elapsed,
        format!("{}{}", one[0] as char, String::from_utf8_lossy(&rest)),
    ))
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let Some(c) = corpus_dir() else {
        eprintln!(
            "bench-ui needs the corpus (../shared/corpus beside the repository, or DISPATCHER_CORPUS)"
        );
        std::process::exit(2);
    };
    let dir = tempfile::tempdir()?;
    let stores = dispatcher_app::local::open(&dir.path().join("store"))?;
    let settings = Settings {
        strategy: Strategy::Balanced,
        vsphere_cluster: "vsphere".to_owned(),
        ..Settings::default()
    };
    let recomputer = dispatcher_tests::corpus_recomputer(&c, stores.clone(), settings);
    recomputer
        .run(&RecomputeRequest::weekly(), "weekly", 1_800_000_000)
        .await?;
    let plan = dispatcher_app::publish::load_plan(
        &stores,
        &stores.serving().await?.context("a generation")?.snapshot,
    )
    .await?;
    // A job of a balanced file: its page has the most to show (candidates, scores).
    let job = plan
        .jobs
        .iter()
        .find(|(_, e)| {
            e.cluster.is_some()
                && plan
                    .files
                    .get(&e.file)
                    .is_some_and(|f| f.candidates.len() > 2)
        })
        .map(|(n, _)| n.clone())
        .context("a balanced job")?;
    let vars = std::collections::BTreeMap::<&str, String>::new();
    let cfg = dispatcher_config::RuntimeConfig::from_lookup(|k| vars.get(k).cloned())?;
    let service = dispatcher_app::LookupService::new(stores.clone());
    let router = lookup::router(&cfg, stores);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let body = format!("{{\"job\":\"{job}\"}}");
    let lookup = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // (what the table calls it, the request, a text its answer must hold)
    let requests: Vec<(String, String, &str)> = vec![
        (
            "`GET /ui/jobs/{job}` of a balanced job (warm: the plan loaded)".to_owned(),
            get(&format!("/ui/jobs/{job}")),
            "Its file's candidates",
        ),
        ("`GET /ui` (this generation)".to_owned(), get("/ui"), "<svg"),
        (
            "`GET /ui/jobs?q=installer` (search, 50 shown)".to_owned(),
            get("/ui/jobs?q=installer"),
            "data-filter",
        ),
        (
            "`GET /ui/jobs?q=no-such-job` (no match: every name scanned)".to_owned(),
            get("/ui/jobs?q=no-such-job"),
            "No job of this generation matches",
        ),
        (
            "`GET /ui/history`".to_owned(),
            get("/ui/history"),
            "/ui/generations/1",
        ),
        (
            "`GET /ui/generations/1` (from its record)".to_owned(),
            get("/ui/generations/1"),
            "<svg",
        ),
        (
            "`POST /` (the lookup, same server)".to_owned(),
            lookup,
            "cluster",
        ),
    ];
    let first = requests[0].1.clone();
    let addr2 = addr.clone();
    let (cold, answer) = tokio::task::spawn_blocking(move || first_byte(&addr2, &first)).await??;
    anyhow::ensure!(
        answer.starts_with("HTTP/1.1 200"),
        "the job's page: {}",
        &answer[..answer.len().min(200)]
    );
    let (requests, times) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut times = vec![Vec::new(); requests.len()];
        for _ in 0..REQUESTS {
            for ((name, request, holds), samples) in requests.iter().zip(&mut times) {
                let (t, answer) = first_byte(&addr, request)?;
                anyhow::ensure!(
                    answer.starts_with("HTTP/1.1 200") && answer.contains(holds),
                    "{name}: {}",
                    &answer[..answer.len().min(300)]
                );
                samples.push(t);
            }
        }
        Ok((requests, times))
    })
    .await??;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "## The pages on the real corpus ({} jobs; {REQUESTS} requests each, in turn, fresh connections)\n",
        plan.summary.jobs
    );
    println!("| request | first byte p50 | p99 |");
    println!("|---|---:|---:|");
    for ((name, _, _), samples) in requests.iter().zip(&times) {
        println!(
            "| {name} | {:.2} ms | {:.2} ms |",
            ms(percentile(samples.clone(), 0.5)),
            ms(percentile(samples.clone(), 0.99))
        );
    }
    println!(
        "\nThe first page of the generation (it loads the plan once): {:.0} ms.",
        ms(cold)
    );
    search_side_by_side(&service, &plan).await?;
    anyhow::ensure!(
        percentile(times[0].clone(), 0.5) <= Duration::from_millis(5),
        "a warm job page's first byte took over 5 ms"
    );
    Ok(())
}

/// The pages' search (an index of the generation's names) beside the scan it replaced
/// (each name lowered and tested where it lies in memory), in process and in turn, on the
/// same names and texts; both must find the same jobs.
async fn search_side_by_side(
    service: &dispatcher_app::LookupService,
    plan: &dispatcher_core::Plan,
) -> Result<()> {
    let table: std::collections::HashMap<&str, &str> = plan
        .jobs
        .iter()
        .filter_map(|(n, e)| e.cluster.as_deref().map(|c| (n.as_str(), c)))
        .collect();
    let scan = |text: &str| -> Vec<(String, String)> {
        let needle = text.to_lowercase();
        let mut found: Vec<(String, String)> = table
            .iter()
            .filter(|(j, _)| j.to_lowercase().contains(&needle))
            .map(|(j, c)| ((*j).to_owned(), (*c).to_owned()))
            .collect();
        found.sort();
        found.truncate(51);
        found
    };
    println!(
        "\n### Search in process, the index beside the scan it replaced ({REQUESTS} each, in turn)\n"
    );
    println!("| text | index p50 | scan p50 | scan / index |\n|---|---:|---:|---:|");
    for text in ["installer", "no-such-job"] {
        let (mut index, mut scanned) = (Vec::new(), Vec::new());
        for _ in 0..REQUESTS {
            let t = Instant::now();
            let a = service.search(text, 51).await?;
            index.push(t.elapsed());
            let t = Instant::now();
            let b = scan(text);
            scanned.push(t.elapsed());
            anyhow::ensure!(a == b, "{text}: the index and the scan disagree");
        }
        let (i, s) = (percentile(index, 0.5), percentile(scanned, 0.5));
        println!(
            "| `{text}` | {:.3} ms | {:.3} ms | {:.0}x |",
            i.as_secs_f64() * 1e3,
            s.as_secs_f64() * 1e3,
            s.as_secs_f64() / i.as_secs_f64()
        );
    }
    Ok(())
}
