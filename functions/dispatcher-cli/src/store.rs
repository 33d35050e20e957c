//! The store commands: publish, rollback, history, status. The store is the one the
//! environment names (`DISPATCHER_TABLE` + `DISPATCHER_BUCKET` for AWS; otherwise the local
//! store in `DISPATCHER_LOCAL_DIR`, default `.dispatcher`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use dispatcher_app::model::utc;
use dispatcher_app::publish::{self, PublishOptions, Published};
use dispatcher_app::records::{BackupPr, Markers};
use dispatcher_app::{Cause, Stores};
use dispatcher_aws::Aws;
use dispatcher_config::StoreConfig;
use dispatcher_core::Plan;

/// The store the configuration names: the embedded local one, or DynamoDB and S3.
pub async fn open_with(config: &StoreConfig, aws: &Aws) -> Result<Stores> {
    match config {
        StoreConfig::Local { dir } => {
            tracing::debug!(store.dir = %dir.display(), "using the local store");
            dispatcher_app::local::open(dir)
                .with_context(|| format!("Failed to open the local store in {}", dir.display()))
        }
        StoreConfig::Aws { .. } => Ok(aws.open(config).await?),
    }
}

async fn open() -> Result<Stores> {
    open_with(&StoreConfig::from_env()?, &Aws::default()).await
}

/// `--previous live`: the serving generation.
pub const LIVE: &str = "live";

/// The serving generation's baseline plan (what the next recompute follows), with the
/// digest of its JSON (as a `--previous` file of it would have).
pub async fn live_plan() -> Result<(Plan, String)> {
    let stores = open().await?;
    let pointer = stores
        .serving()
        .await?
        .context("--previous live: no generation is serving in the configured store")?;
    let plan = publish::load_baseline(&stores, &pointer).await?;
    let digest = dispatcher_formats::digest::sha256(plan.to_json().as_bytes());
    eprintln!(
        "previous: the baseline of generation {} ({digest})",
        pointer.generation
    );
    Ok((plan, digest))
}

fn now() -> i64 {
    dispatcher_api::now()
}

fn report(p: &Published) {
    if p.unchanged {
        println!(
            "generation {} already serves this plan; nothing written",
            p.generation
        );
    } else {
        println!(
            "published generation {}: {} assignment(s) changed, {} deleted; {} table write request(s) for {} item(s), {} snapshot object(s)",
            p.generation, p.changed, p.deleted, p.writes.requests, p.writes.items, p.snapshot_puts
        );
    }
}

/// An operator's overrides of the publish safeguards.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// Take over a publish in progress before its lease ends.
    pub take_over: bool,
    /// Lift the share limits on lost and deleted jobs.
    pub force: bool,
    /// The share of jobs the plan may delete, in percent.
    pub max_deleted_percent: Option<f64>,
}

fn options(cause: Cause, overrides: Overrides) -> PublishOptions {
    let mut opts = PublishOptions::new(cause, now());
    opts.take_over = overrides.take_over;
    if let Some(p) = overrides.max_deleted_percent {
        opts.max_deleted = p / 100.0;
    }
    if overrides.force {
        opts.max_unassigned = 1.0;
        opts.max_deleted = 1.0;
    }
    opts
}

/// Says that the backup PR is pending after a generation made by hand.
fn say_fallback_pending(p: &Published) {
    if !p.unchanged {
        println!(
            "the static cluster fields in the job files do not match generation {} yet; the next recompute updates the backup PR",
            p.generation
        );
    }
}

/// `dispatcher publish`: a plan made by hand, as the next generation.
pub async fn publish(
    plan: &Path,
    expect_generation: Option<u64>,
    overrides: Overrides,
) -> Result<ExitCode> {
    let text = std::fs::read_to_string(plan)
        .with_context(|| format!("Failed to read {}", plan.display()))?;
    let plan: Plan =
        Plan::from_json(&text).with_context(|| format!("{} is not a plan", plan.display()))?;
    let stores = open().await?;
    let mut opts = options(Cause::Manual, overrides);
    opts.expected_base = expect_generation;
    let p = publish::publish_by_hand(&stores, &plan, &opts).await?;
    report(&p);
    say_fallback_pending(&p);
    Ok(ExitCode::SUCCESS)
}

/// `dispatcher rollback`: an older generation's plan, as the next generation.
pub async fn rollback(to: u64, overrides: Overrides) -> Result<ExitCode> {
    let stores = open().await?;
    let p = publish::rollback(&stores, to, &options(Cause::Rollback, overrides)).await?;
    report(&p);
    say_fallback_pending(&p);
    Ok(ExitCode::SUCCESS)
}

/// `dispatcher history`: a job's assignment changes.
pub async fn history(job: &str) -> Result<ExitCode> {
    let stores = open().await?;
    let changes = publish::history(&stores, job).await?;
    if changes.is_empty() {
        println!("no recorded change for {job}");
    }
    for c in changes {
        println!(
            "generation {:>5}  {}  {:<8}  {} -> {}",
            c.generation,
            utc(c.at),
            c.cause.as_str(),
            c.from.as_deref().unwrap_or("(none)"),
            c.to.as_deref().unwrap_or("(none)")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `dispatcher status`: the serving generation, the publish in progress, the backup PR.
pub async fn status() -> Result<ExitCode> {
    let stores = open().await?;
    let Some(pointer) = stores.table.pointer().await? else {
        println!(
            "nothing published yet: every lookup answers 404 and Prow uses the static cluster fields"
        );
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(p) = &pointer.pending {
        println!(
            "publish in progress: generation {} of {} since {} (lease until {})",
            p.generation,
            p.plan_digest,
            utc(p.started_at),
            utc(p.lease_until)
        );
    }
    if pointer.generation == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    match Markers(stores.table.as_ref()).backup_pr().await? {
        BackupPr::UpToDate => {
            println!("backup PR: up to date with the generation it was last made for")
        }
        BackupPr::Pending(g) => println!(
            "backup PR pending: the job files' static cluster fields do not match generation {g} yet"
        ),
        BackupPr::NeverMade => println!("backup PR: none recorded yet"),
    }
    println!(
        "generation {}, published {} ({}), snapshot {}",
        pointer.generation,
        utc(pointer.published_at),
        pointer.cause.as_str(),
        pointer.snapshot
    );
    println!(
        "inputs: config {}, inventory {}, jobs {}",
        pointer.inputs.config, pointer.inputs.inventory, pointer.inputs.jobs
    );
    if let Some(r) = stores.table.generation(pointer.generation).await? {
        println!(
            "{} jobs, {} placed, {} unschedulable; {} assignment(s) changed{}",
            r.jobs,
            r.placed_jobs,
            r.unschedulable_jobs,
            r.changed,
            r.base
                .map_or(String::new(), |b| format!(" against generation {b}"))
        );
        println!(
            "{:<12} {:>12} {:>8} {:>8}",
            "cluster", "demand", "target", "share"
        );
        for (name, c) in &r.clusters {
            println!(
                "{name:<12} {:>12.1} {:>8} {:>7.2}%",
                c.demand,
                c.target_share
                    .map_or("-".to_owned(), |t| format!("{:.2}%", t * 100.0)),
                c.share * 100.0
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
