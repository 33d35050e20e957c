//! Benchmark of the incident controls on the real corpus: planning a drain against
//! `dispatcher plan --previous` of the same inputs (the bound: at most 2x), and
//! what applying it writes (only the moved jobs' items). Prints figures measured side by
//! side in one run; a program, not a timed test.
//!
//! `./infra/bench.sh controls`

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dispatcher_app::Stores;
use dispatcher_app::control::{Control, Limits, PlanRequest};
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_core::overrides::OverrideKind;
use dispatcher_core::{Settings, Strategy};
use dispatcher_formats::InputPaths;
use dispatcher_tests::corpus_dir;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 3;
const T0: i64 = 1_800_000_000;

fn settings() -> Settings {
    Settings {
        strategy: Strategy::Balanced,
        vsphere_cluster: "vsphere".to_owned(),
        ..Settings::default()
    }
}

/// `dispatcher plan --previous`: read and parse the release, place following the
/// previous plan, serialise.
fn plan_previous(
    tarball: &Path,
    clusters: &Path,
    volumes: &Path,
    previous: &Path,
) -> Result<usize> {
    let loaded = dispatcher_formats::load(
        &InputPaths {
            release: tarball.to_owned(),
            clusters: Some(clusters.to_owned()),
            volumes: Some(volumes.to_owned()),
            previous: Some(previous.to_owned()),
            ..InputPaths::default()
        },
        &|| {},
    )?;
    let plan =
        dispatcher_core::run(&loaded.inputs(), &settings()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(plan.to_json().len())
}

fn drain(cluster: &str, key: String) -> PlanRequest {
    PlanRequest {
        kind: OverrideKind::Drain,
        cluster: cluster.to_owned(),
        capability: None,
        capacity: None,
        duration: "1h".to_owned(),
        reason: "benchmark".to_owned(),
        incident_url: None,
        idempotency_key: key,
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let Some(c) = corpus_dir() else {
        eprintln!(
            "bench-controls needs the corpus (../shared/corpus beside the repository, or DISPATCHER_CORPUS)"
        );
        std::process::exit(2);
    };
    let tarball = c.join("release-7659af06.tar.gz");
    let clusters = c.join("clusters-2022.yaml");
    let week1 = c.join("volumes-7659af06.week1.json.gz");
    let dir = tempfile::tempdir()?;
    let stores: Stores = dispatcher_app::local::open(&dir.path().join("store"))?;
    let recomputer = dispatcher_tests::corpus_recomputer(&c, stores.clone(), settings());
    let t = Instant::now();
    let weekly = recomputer
        .run(&RecomputeRequest::weekly(), "weekly", T0)
        .await?;
    let recompute_time = t.elapsed();
    let pointer = stores.serving().await?.context("a generation")?;
    let serving = dispatcher_app::publish::load_plan(&stores, &pointer.snapshot).await?;
    let previous = dir.path().join("previous.json");
    std::fs::write(&previous, serving.to_json())?;

    let control = Control {
        stores: stores.clone(),
        settings: settings(),
        limits: Limits {
            prow_cache: Some(Duration::from_secs(10)),
            ..Limits::default()
        },
        notifier: None,
    };
    // The busiest cluster a drain may empty (every job it has can go elsewhere).
    let mut by_demand: Vec<(&String, f64)> = serving
        .clusters
        .iter()
        .map(|(n, e)| (n, e.demand))
        .collect();
    by_demand.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut chosen = None;
    for (name, _) in &by_demand {
        if control
            .plan(drain(name, format!("probe-{name}")), "bench", T0)
            .await
            .is_ok()
        {
            chosen = Some((*name).clone());
            break;
        }
    }
    let cluster = chosen.context("no cluster can be drained")?;

    let mut baseline = Duration::MAX;
    let mut planning = Duration::MAX;
    let mut last = None;
    for run in 0..RUNS {
        // Side by side, alternating, so that a noisy neighbour hits both alike.
        let t = Instant::now();
        plan_previous(&tarball, &clusters, &week1, &previous)?;
        baseline = baseline.min(t.elapsed());
        let t = Instant::now();
        let p = control
            .plan(drain(&cluster, format!("bench-{run}")), "alice", T0)
            .await?;
        planning = planning.min(t.elapsed());
        last = Some(p);
    }
    let plan = last.context("a plan")?;
    let applied = control.apply(&plan.id, "alice", true, T0 + 1).await?;
    let active = control.approve(&applied.id, "bob", T0 + 2).await?;
    let generation = active
        .history
        .last()
        .and_then(|e| e.generation)
        .context("a generation")?;
    let record = stores
        .table
        .generation(generation)
        .await?
        .context("its record")?;
    let names: Vec<String> = serving.jobs.keys().cloned().collect();
    let written = stores
        .table
        .jobs(&names)
        .await?
        .into_iter()
        .filter(|i| i.generation == generation)
        .count();

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "## Incident controls on the real corpus ({} jobs; best of {RUNS} runs each)\n",
        serving.summary.jobs
    );
    println!(
        "The weekly recompute that made generation {} (and stored its release): {:.0} ms.\n",
        weekly.published.generation,
        ms(recompute_time)
    );
    println!("| step | time | ratio |");
    println!("|---|---:|---:|");
    println!(
        "| `dispatcher plan --previous` (read the release, place, serialise) | {:.0} ms | 1.00x |",
        ms(baseline)
    );
    println!(
        "| plan a drain of {cluster} (stored release, place, preview, store the plan) | {:.0} ms | {:.2}x |",
        ms(planning),
        planning.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "\nThe drain moves {} jobs ({} demand, {:.1}% of the placed demand; {} unprotected). Applying it published generation {generation}: {} assignments changed, {} job items written (of {} jobs).",
        plan.impact.moved_jobs,
        plan.impact.moved_demand,
        plan.impact.moved_share * 100.0,
        plan.impact.unprotected_jobs,
        record.changed,
        written,
        names.len()
    );
    anyhow::ensure!(
        written == plan.impact.moved_jobs,
        "an apply must write only the moved jobs' items"
    );
    anyhow::ensure!(
        planning <= baseline * 2,
        "planning a drain took over 2x plan --previous"
    );
    Ok(())
}
