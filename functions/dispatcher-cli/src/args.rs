//! The command line: every command, flag and value check (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::store;

/// The `dispatcher` command line.
#[derive(Parser)]
#[command(
    name = "dispatcher",
    version,
    about = "Place Prow jobs on build clusters, and explain why"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Check a release's config, inventory and job files; exit 1 on errors.
    Validate(ReleaseArgs),
    /// Apply the config as written, no rebalancing (what sanitize-prow-jobs does).
    Resolve {
        /// The release.
        #[command(flatten)]
        release: ReleaseArgs,
        /// Send every job through the rule ladder, also those whose static `cluster:` the
        /// sanitizer keeps because it names a usable cluster: shows where the static fields
        /// and the config disagree.
        #[arg(long)]
        ladder_only: bool,
        /// Where to write the plan.
        #[arg(long)]
        out: PathBuf,
    },
    /// Place every job: rules, capabilities, capacity-weighted balance, minimal churn.
    Plan(Box<PlanArgs>),
    /// Why is a job on its cluster?
    Explain {
        /// The plan.
        #[arg(long)]
        plan: PathBuf,
        /// The job's name.
        job: String,
    },
    /// What moved between two plans, per cluster pair.
    Diff {
        /// The earlier plan.
        old: PathBuf,
        /// The later plan.
        new: PathBuf,
        /// `text` (the cluster-pair table), or `markdown` (a pull request comment's body:
        /// moves, shares before and after with a Mermaid chart, new unschedulable jobs).
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
    },
    /// Write a plan back into a release checkout: changed `cluster:` fields and `buildFarm`.
    Sanitize {
        /// A release checkout directory.
        #[arg(long)]
        release: PathBuf,
        /// The plan to write back.
        #[arg(long)]
        plan: PathBuf,
    },
    /// Publish a plan as the next generation (cause: manual).
    Publish {
        /// The plan.
        #[arg(long)]
        plan: PathBuf,
        /// Publish only if generation N is current (the one the plan was made against,
        /// e.g. with `dispatcher plan --previous`); 0 for the first publish.
        #[arg(long, value_name = "N")]
        expect_generation: Option<u64>,
        /// The safeguards to lift.
        #[command(flatten)]
        overrides: PublishOverrides,
    },
    /// Republish an older generation's snapshot as a new generation (cause: rollback).
    Rollback {
        /// The generation to bring back.
        #[arg(long)]
        to: u64,
        /// The safeguards to lift.
        #[command(flatten)]
        overrides: PublishOverrides,
    },
    /// A job's assignment changes.
    History {
        /// The job's name.
        job: String,
    },
    /// The current generation: when and why it was published, and the per-cluster shares.
    Status,
    /// Serve the lookup, the webhook and a manual recompute trigger on localhost, with the
    /// same code as the Lambda functions.
    Serve(ServeArgs),
    /// Incident controls: temporary drains and capacities, planned, applied, approved and
    /// cancelled on the configured store.
    Override(OverrideArgs),
}

/// `dispatcher override`.
#[derive(Args)]
pub struct OverrideArgs {
    /// Who acts, for the audit trail [default: $USER]. Against the deployed API the
    /// caller's IAM principal is the actor.
    #[arg(long, global = true)]
    pub actor: Option<String>,
    /// The control API (`.../control/v1/`, the stack's ControlUrl, or a local `serve`'s)
    /// instead of the store: requests are signed with the caller's AWS credentials (SigV4)
    /// unless --token is given.
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// A local `dispatcher serve`'s bearer token (printed when it starts), with --api.
    #[arg(long, global = true, requires = "api")]
    pub token: Option<String>,
    /// The action.
    #[command(subcommand)]
    pub command: OverrideCommand,
}

/// The control actions.
#[derive(Subcommand)]
pub enum OverrideCommand {
    /// Preview an override on the serving generation (read-only; valid 15 minutes).
    Plan(OverridePlanArgs),
    /// Apply a plan: the override is made with your approval, and published once it has
    /// the approvals it needs (drains need two people).
    Apply {
        /// The plan's id.
        plan: String,
        /// Drain even though moved jobs' static `cluster:` still names the drained cluster.
        #[arg(long)]
        confirm_unprotected: bool,
    },
    /// Approve a pending override.
    Approve {
        /// The override's id.
        id: String,
    },
    /// Cancel a pending or active override (an active one's jobs go back at once).
    Cancel {
        /// The override's id.
        id: String,
    },
    /// Every override, newest first.
    List,
    /// The serving generation, the active and pending overrides.
    Status,
    /// End the overrides whose time is up now (the schedule does it every minute).
    Sweep,
}

/// `dispatcher override plan`.
#[derive(Args)]
pub struct OverridePlanArgs {
    /// drain or capacity.
    #[arg(long, value_parser = override_kind)]
    pub kind: dispatcher_core::overrides::OverrideKind,
    /// The cluster.
    #[arg(long)]
    pub cluster: String,
    /// Only the jobs that need this capability (a drain).
    #[arg(long)]
    pub capability: Option<String>,
    /// The new capacity, 1..=100 (a capacity override).
    #[arg(long)]
    pub capacity: Option<u32>,
    /// How long it holds once applied: at most 2h for a drain, 24h otherwise.
    #[arg(long)]
    pub duration: String,
    /// Why.
    #[arg(long)]
    pub reason: String,
    /// The incident.
    #[arg(long)]
    pub incident_url: Option<String>,
    /// The same key twice makes one override [default: a fresh one].
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

fn override_kind(s: &str) -> Result<dispatcher_core::overrides::OverrideKind, String> {
    match s {
        "drain" => Ok(dispatcher_core::overrides::OverrideKind::Drain),
        "capacity" => Ok(dispatcher_core::overrides::OverrideKind::Capacity),
        other => Err(format!("{other:?}: expected drain or capacity")),
    }
}

/// How `dispatcher diff` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// The cluster-pair table.
    Text,
    /// Markdown, as a pull request comment.
    Markdown,
}

/// What an operator may override when publishing by hand.
#[derive(Args, Clone, Copy)]
pub struct PublishOverrides {
    /// Take over a publish in progress even though its lease (20 minutes) has not run out:
    /// only when that publisher is known to be dead (`dispatcher status` shows it).
    #[arg(long)]
    pub take_over: bool,
    /// Publish even if the plan takes the cluster away from more than a quarter of the jobs
    /// the current generation places, or deletes more than allowed (a plan that places
    /// nothing is still refused).
    #[arg(long)]
    pub force: bool,
    /// The share of the current generation's jobs the plan may delete [default: 10]: a
    /// release cut short looks like one whose jobs were deleted.
    #[arg(long, value_parser = percent)]
    pub max_deleted_percent: Option<f64>,
}

impl From<PublishOverrides> for store::Overrides {
    fn from(o: PublishOverrides) -> Self {
        Self {
            take_over: o.take_over,
            force: o.force,
            max_deleted_percent: o.max_deleted_percent,
        }
    }
}

/// What `dispatcher serve` serves, and from what.
#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Plan the bundled sample release into a fresh local store first.
    #[arg(long, conflicts_with_all = ["release", "volumes", "clusters", "durations", "cpu_seconds", "memory_byte_seconds"])]
    pub demo: bool,
    /// A release checkout or .tar.gz to plan and serve (unless GitHub is configured).
    #[arg(long, required_unless_present = "demo")]
    pub release: Option<PathBuf>,
    /// Prometheus vector of run counts (unless DISPATCHER_PROMETHEUS_URL is set).
    #[arg(long)]
    pub volumes: Option<PathBuf>,
    /// An inventory overriding the release's _clusters.yaml.
    #[arg(long)]
    pub clusters: Option<PathBuf>,
    /// The other demand vectors.
    #[command(flatten)]
    pub demand: DemandArgs,
    /// Target of the name-based vsphere rule [default: DISPATCHER_VSPHERE_CLUSTER, else
    /// vsphere02].
    #[arg(long)]
    pub vsphere_cluster: Option<String>,
}

/// Where a release is read from, and what it may hold.
#[derive(Args, Clone)]
pub struct ReleaseArgs {
    /// A release checkout directory or a .tar.gz of one.
    #[arg(long)]
    pub release: PathBuf,
    /// An inventory overriding the release's _clusters.yaml.
    #[arg(long)]
    pub clusters: Option<PathBuf>,
    /// Target of the name-based vsphere rule.
    #[arg(long, default_value = "vsphere02")]
    pub vsphere_cluster: String,
    /// The largest file of the release read (a job file, the config, the inventory), in
    /// bytes once decompressed [default: 64 MiB].
    #[arg(long)]
    pub max_file_bytes: Option<u64>,
    /// The most decompressed bytes of a release tarball [default: 4 GiB].
    #[arg(long)]
    pub max_archive_bytes: Option<u64>,
}

/// The demand vectors beside the run counts, each optional.
#[derive(Args, Clone)]
pub struct DemandArgs {
    /// Prometheus vector of job run seconds per job_name, weighed as job-hours.
    #[arg(long)]
    pub durations: Option<PathBuf>,
    /// Prometheus vector of CPU seconds per job_name, weighed as CPU-hours.
    #[arg(long)]
    pub cpu_seconds: Option<PathBuf>,
    /// Prometheus vector of memory byte-seconds per job_name, weighed as GiB-hours.
    #[arg(long)]
    pub memory_byte_seconds: Option<PathBuf>,
}

/// What `dispatcher plan` places, and how.
#[derive(Args)]
pub struct PlanArgs {
    /// The release.
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Prometheus vector of run counts per job_name (JSON, optionally gzipped).
    #[arg(long)]
    pub volumes: PathBuf,
    /// The other demand vectors.
    #[command(flatten)]
    pub demand: DemandArgs,
    /// The plan currently published (a file, or `live`: the serving generation's baseline
    /// plan from the configured store); enables hysteresis and the movement budget.
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// How jobs without a rule are placed.
    #[arg(long, value_enum, default_value_t = StrategyArg::Balanced)]
    pub strategy: StrategyArg,
    /// Place every job, or only those absent from --previous.
    #[arg(long, value_enum, default_value_t = ModeArg::Full)]
    pub mode: ModeArg,
    /// Keep a file's previous cluster unless another scores better by more than this.
    #[arg(long, default_value_t = 10.0, value_parser = percent)]
    pub hysteresis_percent: f64,
    /// Demand that may move per run (forced moves exempt), as a percentage of the total.
    #[arg(long, default_value_t = 10.0, value_parser = percent)]
    pub movement_budget_percent: f64,
    /// Demand of a job without samples, and the floor for every job.
    #[arg(long, default_value_t = 1.0, value_parser = positive, allow_negative_numbers = true)]
    pub min_demand: f64,
    /// Demand per run in the window.
    #[arg(long, default_value_t = 1.0, value_parser = weight, allow_negative_numbers = true)]
    pub run_weight: f64,
    /// Demand per job-hour (--durations).
    #[arg(long, default_value_t = 1.0, value_parser = weight, allow_negative_numbers = true)]
    pub hour_weight: f64,
    /// Demand per CPU-hour (--cpu-seconds).
    #[arg(long, default_value_t = 1.0, value_parser = weight, allow_negative_numbers = true)]
    pub cpu_hour_weight: f64,
    /// Demand per GiB-hour of memory (--memory-byte-seconds).
    #[arg(long, default_value_t = 0.25, value_parser = weight, allow_negative_numbers = true)]
    pub memory_gib_hour_weight: f64,
    /// Where to write the plan.
    #[arg(long)]
    pub out: PathBuf,
}

/// A demand weight: finite and not negative, as HEAD checks its weight flags.
pub(crate) fn weight(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite, non-negative number"))
    }
}

/// The minimum demand: finite and positive.
pub(crate) fn positive(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite, positive number"))
    }
}

/// A percentage: between 0 and 100.
pub(crate) fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a percentage between 0 and 100"))
    }
}

/// How jobs without a rule are placed.
#[derive(Clone, Copy, ValueEnum)]
pub enum StrategyArg {
    /// Capacity-weighted balance with minimal churn.
    Balanced,
    /// The Go dispatcher's placement, for comparison.
    Classic,
}

/// Which jobs a plan places.
#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Every job.
    Full,
    /// Only jobs absent from the previous plan.
    Delta,
}
