//! Benchmark of publishing generations, against DynamoDB and S3 in the emulator. Prints the
//! write requests and items of publishing the corpus plan for the first time and then week
//! 2's plan on top of it, against a naive full rewrite, and wall times as ratios.
//!
//! `./infra/bench.sh store` (starts the emulator, then runs this program).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use dispatcher_app::model::{GenerationRecord, JobItem, Pending, Pointer};
use dispatcher_app::publish::{self, PublishOptions, Published};
use dispatcher_app::store::{AssignmentStore, Claim, StoreError, WriteStats};
use dispatcher_app::{Cause, Stores};
use dispatcher_core::{Plan, Settings, Strategy};
use dispatcher_formats::InputPaths;
use dispatcher_tests::corpus_dir;

const TEMPLATE: &str = include_str!("../../../template.yaml");

fn plan(c: &Path, volumes: &str, previous: Option<&Plan>, hysteresis: f64) -> Result<Plan> {
    let dir = tempfile::tempdir()?;
    let prev = match previous {
        Some(p) => {
            let path = dir.path().join("previous.json");
            std::fs::write(&path, p.to_json())?;
            Some(path)
        }
        None => None,
    };
    let loaded = dispatcher_formats::load(
        &InputPaths {
            release: c.join("release-7659af06.tar.gz"),
            clusters: Some(c.join("clusters-2022.yaml")),
            volumes: Some(c.join(volumes)),
            previous: prev,
            ..InputPaths::default()
        },
        &|| {},
    )?;
    let settings = Settings {
        strategy: Strategy::Balanced,
        vsphere_cluster: "vsphere".to_owned(),
        hysteresis_percent: hysteresis,
        ..Settings::default()
    };
    dispatcher_core::run(&loaded.inputs(), &settings).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The table, with the time spent in the commit (one `TransactWriteItems`) measured: moto
/// copies its whole state for every transaction (test-infrastructure.md), so with tens of
/// thousands of items there a commit takes seconds that DynamoDB spends in milliseconds.
struct TimedCommit {
    inner: Arc<dyn AssignmentStore>,
    spent: std::sync::Mutex<Duration>,
}

#[async_trait]
impl AssignmentStore for TimedCommit {
    async fn pointer(&self) -> Result<Option<Pointer>, StoreError> {
        self.inner.pointer().await
    }
    async fn job(&self, name: &str) -> Result<Option<JobItem>, StoreError> {
        self.inner.job(name).await
    }
    async fn jobs(&self, names: &[String]) -> Result<Vec<JobItem>, StoreError> {
        self.inner.jobs(names).await
    }
    async fn write_jobs(&self, items: &[JobItem]) -> Result<WriteStats, StoreError> {
        self.inner.write_jobs(items).await
    }
    async fn claim(&self, base: u64, pending: &Pending, now: i64) -> Result<Claim, StoreError> {
        self.inner.claim(base, pending, now).await
    }
    async fn commit(
        &self,
        base: u64,
        owner: &str,
        pointer: &Pointer,
        record: &GenerationRecord,
    ) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.commit(base, owner, pointer, record).await;
        if let Ok(mut spent) = self.spent.lock() {
            *spent += t.elapsed();
        }
        r
    }
    async fn generation(&self, n: u64) -> Result<Option<GenerationRecord>, StoreError> {
        self.inner.generation(n).await
    }
    async fn remember(
        &self,
        key: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner.remember(key, value, expires_at, now).await
    }
    async fn recall(&self, key: &str, now: i64) -> Result<Option<String>, StoreError> {
        self.inner.recall(key, now).await
    }
    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.inner.forget(key).await
    }
    async fn increment(&self, name: &str) -> Result<u64, StoreError> {
        self.inner.increment(name).await
    }
    async fn marker(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.inner.marker(name).await
    }
    async fn set_marker(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.inner.set_marker(name, value).await
    }

    async fn swap_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        self.inner.swap_marker(name, expected, value).await
    }
}

/// A publish's wall time, and the part of it spent in the commit.
async fn timed_publish(
    stores: &Stores,
    plan: &Plan,
    now: i64,
) -> Result<(Duration, Duration, Published)> {
    let timed = Arc::new(TimedCommit {
        inner: stores.table.clone(),
        spent: std::sync::Mutex::new(Duration::ZERO),
    });
    let through = Stores {
        table: timed.clone(),
        snapshots: stores.snapshots.clone(),
    };
    let t = Instant::now();
    let p = publish::publish(&through, plan, &PublishOptions::new(Cause::Weekly, now)).await?;
    let commit = timed.spent.lock().map(|d| *d).unwrap_or_default();
    Ok((t.elapsed(), commit, p))
}

/// What a publisher that rewrites every item costs: one item per placed job.
async fn naive(stores: &Stores, plan: &Plan) -> Result<(Duration, WriteStats)> {
    let items: Vec<JobItem> = plan
        .jobs
        .iter()
        .filter_map(|(job, e)| {
            e.cluster.clone().map(|c| JobItem {
                job: job.clone(),
                cluster: Some(c),
                generation: 1,
                rule: e.rule.as_str().to_owned(),
                previous: None,
                history: vec![],
            })
        })
        .collect();
    let t = Instant::now();
    let w = stores.table.write_jobs(&items).await?;
    Ok((t.elapsed(), w))
}

#[tokio::main]
async fn main() -> Result<()> {
    let Some(c) = corpus_dir() else {
        bail!(
            "bench-store needs the corpus (../shared/corpus beside the repository, or DISPATCHER_CORPUS)"
        );
    };
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        bail!("bench-store runs against the emulator: use ./infra/bench.sh store");
    }
    let week1 = plan(&c, "volumes-7659af06.week1.json.gz", None, 10.0)?;
    let week2 = plan(&c, "volumes-7659af06.week2.json.gz", Some(&week1), 10.0)?;
    let week2_eager = plan(&c, "volumes-7659af06.week2.json.gz", Some(&week1), 0.0)?;
    let clients = dispatcher_aws::Clients::from_env(true).await;

    let (naive_store, ..) = dispatcher_aws::emulator::fresh(&clients, TEMPLATE)
        .await
        .context("provision")?;
    let (naive_time, naive_writes) = naive(&naive_store, &week1).await?;

    println!("## Publishing generations (moto 5.1.22, one run)\n");
    println!(
        "| publish | assignments changed | table write requests | items written | goal: changed/25 + 5 | naive full rewrite: requests / items | wall time / naive | without the commit / naive |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, p: &Published, t: Duration, commit: Duration| {
        let goal = p.changed.div_ceil(25) + 5;
        println!(
            "| {name} | {} | {} | {} | {} | {} / {} | {:.2}x | {:.2}x |",
            p.changed,
            p.writes.requests,
            p.writes.items,
            goal,
            naive_writes.requests,
            naive_writes.items,
            t.as_secs_f64() / naive_time.as_secs_f64(),
            t.saturating_sub(commit).as_secs_f64() / naive_time.as_secs_f64()
        );
    };
    for (label, second) in [
        ("week 2 (10% hysteresis)", &week2),
        ("week 2 (no hysteresis)", &week2_eager),
    ] {
        let (stores, ..) = dispatcher_aws::emulator::fresh(&clients, TEMPLATE)
            .await
            .context("provision")?;
        let (t1, c1, p1) = timed_publish(&stores, &week1, 1).await?;
        row("week 1, first publish", &p1, t1, c1);
        let (t2, c2, p2) = timed_publish(&stores, second, 2).await?;
        row(&format!("{label} on top of week 1"), &p2, t2, c2);
        if p2.writes.requests > p2.changed.div_ceil(25) + 5 {
            bail!("{label}: {} requests exceed the goal", p2.writes.requests);
        }
    }
    println!(
        "\nNaive full rewrite of the {} placed jobs: {} requests in {:.1} s (the unit of the last two columns). Each publish also puts 6 snapshot objects. The commit is one TransactWriteItems, which moto runs by copying its whole state (seconds, with 80k items in the server); DynamoDB runs it in milliseconds.",
        naive_writes.items,
        naive_writes.requests,
        naive_time.as_secs_f64()
    );
    Ok(())
}
