//! `dispatcher`: the operator CLI.

mod commands;
mod render;
mod serve;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

// Placement allocates and frees many small strings, several threads at a time;
// mimalloc does that markedly faster than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dispatcher",
    version,
    about = "Place Prow jobs on build clusters, and explain why"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a release's config, inventory and job files; exit 1 on errors.
    Validate(ReleaseArgs),
    /// Apply the config as written, no rebalancing (what sanitize-prow-jobs does).
    Resolve {
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
        #[arg(long)]
        plan: PathBuf,
        job: String,
    },
    /// What moved between two plans, per cluster pair.
    Diff { old: PathBuf, new: PathBuf },
    /// Write a plan back into a release checkout: changed `cluster:` fields and `buildFarm`.
    Sanitize {
        /// A release checkout directory.
        #[arg(long)]
        release: PathBuf,
        #[arg(long)]
        plan: PathBuf,
    },
    /// Publish a plan as the next generation (cause: manual).
    Publish {
        #[arg(long)]
        plan: PathBuf,
        /// Publish only if generation N is current (the one the plan was made against,
        /// e.g. with `dispatcher plan --previous`); 0 for the first publish.
        #[arg(long, value_name = "N")]
        expect_generation: Option<u64>,
        #[command(flatten)]
        overrides: PublishOverrides,
    },
    /// Republish an older generation's snapshot as a new generation (cause: rollback).
    Rollback {
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        overrides: PublishOverrides,
    },
    /// A job's assignment changes.
    History { job: String },
    /// The current generation: when and why it was published, and the per-cluster shares.
    Status,
    /// Serve the lookup, the webhook and a manual recompute trigger on localhost, with the
    /// same code as the Lambda functions.
    Serve(ServeArgs),
}

/// What an operator may override when publishing by hand.
#[derive(Args, Clone, Copy)]
struct PublishOverrides {
    /// Take over a publish in progress even though its lease (20 minutes) has not run out:
    /// only when that publisher is known to be dead (`dispatcher status` shows it).
    #[arg(long)]
    take_over: bool,
    /// Publish even if the plan takes the cluster away from more than a quarter of the jobs
    /// the current generation places, or deletes more than allowed (a plan that places
    /// nothing is still refused).
    #[arg(long)]
    force: bool,
    /// The share of the current generation's jobs the plan may delete [default: 10]: a
    /// release cut short looks like one whose jobs were deleted.
    #[arg(long, value_parser = percent)]
    max_deleted_percent: Option<f64>,
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

#[derive(Args)]
struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Plan the bundled sample release into a fresh local store first.
    #[arg(long, conflicts_with_all = ["release", "volumes", "clusters", "durations", "cpu_seconds", "memory_byte_seconds"])]
    demo: bool,
    /// A release checkout or .tar.gz to plan and serve (unless GitHub is configured).
    #[arg(long, required_unless_present = "demo")]
    release: Option<PathBuf>,
    /// Prometheus vector of run counts (unless DISPATCHER_PROMETHEUS_URL is set).
    #[arg(long)]
    volumes: Option<PathBuf>,
    #[arg(long)]
    clusters: Option<PathBuf>,
    #[arg(long)]
    durations: Option<PathBuf>,
    /// Prometheus vector of CPU seconds per job_name.
    #[arg(long)]
    cpu_seconds: Option<PathBuf>,
    /// Prometheus vector of memory byte-seconds per job_name.
    #[arg(long)]
    memory_byte_seconds: Option<PathBuf>,
    /// Target of the name-based vsphere rule [default: DISPATCHER_VSPHERE_CLUSTER, else
    /// vsphere02].
    #[arg(long)]
    vsphere_cluster: Option<String>,
}

#[derive(Args, Clone)]
struct ReleaseArgs {
    /// A release checkout directory or a .tar.gz of one.
    #[arg(long)]
    release: PathBuf,
    /// An inventory overriding the release's _clusters.yaml.
    #[arg(long)]
    clusters: Option<PathBuf>,
    /// Target of the name-based vsphere rule.
    #[arg(long, default_value = "vsphere02")]
    vsphere_cluster: String,
    /// The largest file of the release read (a job file, the config, the inventory), in
    /// bytes once decompressed [default: 64 MiB].
    #[arg(long)]
    max_file_bytes: Option<u64>,
    /// The most decompressed bytes of a release tarball [default: 4 GiB].
    #[arg(long)]
    max_archive_bytes: Option<u64>,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    release: ReleaseArgs,
    /// Prometheus vector of run counts per job_name (JSON, optionally gzipped).
    #[arg(long)]
    volumes: PathBuf,
    /// Prometheus vector of job run seconds per job_name, weighed as job-hours.
    #[arg(long)]
    durations: Option<PathBuf>,
    /// Prometheus vector of CPU seconds per job_name, weighed as CPU-hours.
    #[arg(long)]
    cpu_seconds: Option<PathBuf>,
    /// Prometheus vector of memory byte-seconds per job_name, weighed as GiB-hours.
    #[arg(long)]
    memory_byte_seconds: Option<PathBuf>,
    /// The plan currently published; enables hysteresis and the movement budget.
    #[arg(long)]
    previous: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = StrategyArg::Balanced)]
    strategy: StrategyArg,
    #[arg(long, value_enum, default_value_t = ModeArg::Full)]
    mode: ModeArg,
    /// Keep a file's previous cluster unless another scores better by more than this.
    #[arg(long, default_value_t = 10.0, value_parser = percent)]
    hysteresis_percent: f64,
    /// Demand that may move per run (forced moves exempt), as a percentage of the total.
    #[arg(long, default_value_t = 10.0, value_parser = percent)]
    movement_budget_percent: f64,
    /// Demand of a job without samples, and the floor for every job.
    #[arg(long, default_value_t = 1.0, value_parser = positive, allow_negative_numbers = true)]
    min_demand: f64,
    /// Demand per run in the window.
    #[arg(long, default_value_t = 1.0, value_parser = weight, allow_negative_numbers = true)]
    run_weight: f64,
    /// Demand per job-hour (--durations).
    #[arg(long, default_value_t = 1.0, value_parser = weight, allow_negative_numbers = true)]
    hour_weight: f64,
    /// Demand per CPU-hour (--cpu-seconds).
    #[arg(long, default_value_t = 1.0, value_parser = weight, allow_negative_numbers = true)]
    cpu_hour_weight: f64,
    /// Demand per GiB-hour of memory (--memory-byte-seconds).
    #[arg(long, default_value_t = 0.25, value_parser = weight, allow_negative_numbers = true)]
    memory_gib_hour_weight: f64,
    /// Where to write the plan.
    #[arg(long)]
    out: PathBuf,
}

/// `dispatcher status | head` closes stdout early; `println!` then panics. Exit quietly
/// instead, as other command-line tools do.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// A demand weight: finite and not negative, as HEAD checks its weight flags.
fn weight(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite, non-negative number"))
    }
}

/// The minimum demand: finite and positive.
fn positive(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite, positive number"))
    }
}

fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a percentage between 0 and 100"))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum StrategyArg {
    Balanced,
    Classic,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Full,
    Delta,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A bad flag value fails like any other bad input: exit 1, naming the flag
        // (clap's own convention is 2). Help and version still exit 0.
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Validate(r) => commands::validate(&r),
        Command::Resolve {
            release,
            ladder_only,
            out,
        } => commands::resolve(&release, ladder_only, &out),
        Command::Plan(args) => commands::plan(&args),
        Command::Explain { plan, job } => commands::explain(&plan, &job),
        Command::Diff { old, new } => commands::diff(&old, &new),
        Command::Sanitize { release, plan } => commands::sanitize(&release, &plan),
        Command::Publish {
            plan,
            expect_generation,
            overrides,
        } => store::publish(&plan, expect_generation, overrides.into()).await,
        Command::Rollback { to, overrides } => store::rollback(to, overrides.into()).await,
        Command::History { job } => store::history(&job).await,
        Command::Status => store::status().await,
        Command::Serve(args) => serve::serve(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
