//! The subcommands: read inputs, call the core, write and print results.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dispatcher_app::writeback;
use dispatcher_core::model::DemandModel;
use dispatcher_core::{Diagnostic, Mode, Plan, Settings, Severity, Strategy};
use dispatcher_formats::{InputPaths, Loaded};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{ModeArg, PlanArgs, ReleaseArgs, StrategyArg};
use crate::render;

fn load(paths: &InputPaths) -> Result<Loaded> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} reading {msg}: {human_pos} job files ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(paths.release.display().to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    let loaded = dispatcher_formats::load(paths, &|| bar.inc(1));
    bar.finish_and_clear();
    loaded.with_context(|| format!("Failed to read the inputs of {}", paths.release.display()))
}

fn paths(r: &ReleaseArgs) -> InputPaths {
    let defaults = dispatcher_formats::Limits::default();
    InputPaths {
        release: r.release.clone(),
        clusters: r.clusters.clone(),
        limits: dispatcher_formats::Limits {
            member_bytes: r.max_file_bytes.unwrap_or(defaults.member_bytes),
            archive_bytes: r.max_archive_bytes.unwrap_or(defaults.archive_bytes),
        },
        ..InputPaths::default()
    }
}

/// Prints fatal problems and errors in full, and counts warnings.
fn report(diags: &[Diagnostic], all: bool) {
    let mut warnings = 0;
    for d in diags {
        if d.severity == Severity::Warning && !all {
            warnings += 1;
        } else {
            eprintln!("{d}");
        }
    }
    if warnings > 0 {
        eprintln!(
            "({warnings} warning(s) in the plan's diagnostics; `dispatcher validate` lists them)"
        );
    }
}

fn write_plan(plan: &Plan, out: &Path) -> Result<()> {
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, plan.to_json())
        .with_context(|| format!("Failed to write {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("Failed to write {}", out.display()))?;
    Ok(())
}

/// `dispatcher validate`: reports every diagnostic; exit 1 on errors.
pub fn validate(r: &ReleaseArgs) -> Result<ExitCode> {
    // Every byte of every job file, so that any YAML error is reported.
    let loaded = load(&InputPaths {
        parse: dispatcher_formats::Parse::Full,
        ..paths(r)
    })?;
    let settings = Settings {
        vsphere_cluster: r.vsphere_cluster.clone(),
        ..Settings::default()
    };
    let diags = dispatcher_core::validate(&loaded.inputs(), &settings);
    report(&diags, true);
    let count = |s: Severity| diags.iter().filter(|d| d.severity == s).count();
    let jobs: usize = loaded.files.iter().map(|f| f.jobs.len()).sum();
    println!(
        "{} job files, {jobs} jobs, {} clusters: {} fatal, {} error(s), {} warning(s)",
        loaded.files.len(),
        loaded.inventory.clusters.len(),
        count(Severity::Fatal),
        count(Severity::Error),
        count(Severity::Warning),
    );
    Ok(if count(Severity::Fatal) + count(Severity::Error) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run(loaded: &Loaded, settings: &Settings, out: &Path) -> Result<ExitCode> {
    let plan = match dispatcher_core::run(&loaded.inputs(), settings) {
        Ok(p) => p,
        Err(fatal) => {
            report(&fatal.0, true);
            bail!("{} fatal problem(s): nothing was placed", fatal.0.len());
        }
    };
    report(&plan.diagnostics, false);
    write_plan(&plan, out)?;
    print!("{}", render::cluster_table(&plan));
    println!("plan written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `dispatcher resolve`: the config applied as written, as sanitize-prow-jobs does.
pub fn resolve(r: &ReleaseArgs, ladder_only: bool, out: &Path) -> Result<ExitCode> {
    let loaded = load(&paths(r))?;
    let settings = Settings {
        strategy: Strategy::Resolve,
        vsphere_cluster: r.vsphere_cluster.clone(),
        keep_static_clusters: !ladder_only,
        ..Settings::default()
    };
    run(&loaded, &settings, out)
}

/// `dispatcher plan`: every job placed.
/// `dispatcher plan`; `live` is the serving generation's plan and its digest, when
/// `--previous live` named it.
pub fn plan(a: &PlanArgs, live: Option<(Plan, String)>) -> Result<ExitCode> {
    if matches!(a.mode, ModeArg::Delta) && a.previous.is_none() && live.is_none() {
        bail!("--mode delta places only jobs absent from a previous plan: pass --previous");
    }
    let mut loaded = load(&InputPaths {
        volumes: Some(a.volumes.clone()),
        durations: a.demand.durations.clone(),
        cpu: a.demand.cpu_seconds.clone(),
        memory: a.demand.memory_byte_seconds.clone(),
        previous: a.previous.clone(),
        ..paths(&a.release)
    })?;
    if let Some((plan, digest)) = live {
        loaded = loaded.following(plan, digest);
    }
    let settings = Settings {
        strategy: match a.strategy {
            StrategyArg::Balanced => Strategy::Balanced,
            StrategyArg::Classic => Strategy::Classic,
        },
        mode: match a.mode {
            ModeArg::Full => Mode::Full,
            ModeArg::Delta => Mode::Delta,
        },
        vsphere_cluster: a.release.vsphere_cluster.clone(),
        hysteresis_percent: a.hysteresis_percent,
        movement_budget_percent: a.movement_budget_percent,
        demand: DemandModel {
            run_weight: a.run_weight,
            hour_weight: a.hour_weight,
            cpu_hour_weight: a.cpu_hour_weight,
            memory_gib_hour_weight: a.memory_gib_hour_weight,
            minimum: a.min_demand,
        },
        ..Settings::default()
    };
    run(&loaded, &settings, &a.out)
}

fn read_plan(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("Failed to read {}", path.display()))?;
    Plan::from_json(&text).with_context(|| format!("{} is not a plan", path.display()))
}

/// `dispatcher explain`: why a job is on its cluster.
pub fn explain(plan: &Path, job: &str) -> Result<ExitCode> {
    let plan = read_plan(plan)?;
    match render::explain(&plan, job) {
        Some(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        None => bail!("job {job:?} is not in the plan"),
    }
}

/// `dispatcher diff`: what moved between two plans.
pub fn diff(old: &Path, new: &Path, format: crate::args::DiffFormat) -> Result<ExitCode> {
    let (old, new) = (read_plan(old)?, read_plan(new)?);
    match format {
        crate::args::DiffFormat::Text => print!("{}", render::diff(&old, &new)),
        crate::args::DiffFormat::Markdown => {
            let impact = dispatcher_core::overrides::impact(&old, &new, &[]);
            let errors = dispatcher_core::report::new_errors(&old, &new);
            print!(
                "{}",
                dispatcher_core::report::change_markdown(&dispatcher_core::report::Change {
                    before: &old,
                    after: &new,
                    impact: &impact,
                    errors: &errors,
                    static_lines: None,
                })
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dispatcher sanitize`: writes a plan's clusters back into a release checkout.
pub fn sanitize(release: &Path, plan_path: &Path) -> Result<ExitCode> {
    if !release.is_dir() {
        bail!(
            "--release must be a checkout directory to write into: {}",
            release.display()
        );
    }
    let plan = read_plan(plan_path)?;
    let loaded = load(&InputPaths {
        release: release.to_owned(),
        ..InputPaths::default()
    })?;
    let config =
        String::from_utf8(loaded.config_text.clone()).context("_config.yaml is not UTF-8")?;
    let rewrite = writeback::rewrite(&plan, &loaded.files, &config, |path| {
        let path = release.join(path);
        std::fs::read_to_string(&path).with_context(|| format!("Failed to read {}", path.display()))
    })?;
    for (path, text) in &rewrite.files {
        let path = release.join(path);
        std::fs::write(&path, text)
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }
    for (path, e) in &rewrite.skipped {
        eprintln!(
            "error: {path}: {}; left unchanged",
            dispatcher_core::chain(e)
        );
    }
    let job_files = rewrite.files.len() - usize::from(rewrite.config);
    println!(
        "{} job(s) in {job_files} file(s) rewritten; buildFarm {}",
        rewrite.jobs,
        if rewrite.config {
            "rewritten"
        } else {
            "unchanged"
        }
    );
    Ok(if rewrite.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
