//! Benchmark of the pages on the real corpus: the time to the first byte of a job's page
//! from a warm server (the bound: 5 ms), beside the time of a lookup on the same
//! server. Prints figures measured in one run; a program, not a timed test.
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
    let router = lookup::router(&cfg, stores);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let page = format!("GET /ui/jobs/{job} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let body = format!("{{\"job\":\"{job}\"}}");
    let lookup = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let addr2 = addr.clone();
    let (cold, answer) = tokio::task::spawn_blocking(move || first_byte(&addr2, &page)).await??;
    anyhow::ensure!(
        answer.starts_with("HTTP/1.1 200"),
        "the job's page: {}",
        &answer[..answer.len().min(200)]
    );
    let page = format!("GET /ui/jobs/{job} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (pages, lookups) =
        tokio::task::spawn_blocking(move || -> Result<(Vec<Duration>, Vec<Duration>)> {
            let (mut pages, mut lookups) = (Vec::new(), Vec::new());
            for _ in 0..REQUESTS {
                let (t, answer) = first_byte(&addr, &page)?;
                anyhow::ensure!(
                    answer.starts_with("HTTP/1.1 200") && answer.contains("Its file's candidates"),
                    "a job page"
                );
                pages.push(t);
                let (t, answer) = first_byte(&addr, &lookup)?;
                anyhow::ensure!(
                    answer.starts_with("HTTP/1.1 200"),
                    "a lookup: {}",
                    &answer[..answer.len().min(300)]
                );
                lookups.push(t);
            }
            Ok((pages, lookups))
        })
        .await??;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (p50, p99) = (
        percentile(pages.clone(), 0.5),
        percentile(pages.clone(), 0.99),
    );
    let (l50, l99) = (percentile(lookups.clone(), 0.5), percentile(lookups, 0.99));
    println!(
        "## The pages on the real corpus ({} jobs; {REQUESTS} requests each, alternating, fresh connections)\n",
        plan.summary.jobs
    );
    println!("| request | first byte p50 | p99 |");
    println!("|---|---:|---:|");
    println!(
        "| `GET /ui/jobs/{{job}}` (warm: the plan loaded) | {:.2} ms | {:.2} ms |",
        ms(p50),
        ms(p99)
    );
    println!(
        "| `POST /` (the lookup, same server) | {:.2} ms | {:.2} ms |",
        ms(l50),
        ms(l99)
    );
    println!(
        "\nThe first page of the generation (it loads the plan once): {:.0} ms.",
        ms(cold)
    );
    anyhow::ensure!(
        p50 <= Duration::from_millis(5),
        "a warm job page's first byte took over 5 ms"
    );
    Ok(())
}
