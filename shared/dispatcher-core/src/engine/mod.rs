//! One placement run: inputs in, plan out.
//!
//! [`run`] checks the inputs, compiles the rules, and takes a `Run` through its phases,
//! each in a module of its own:
//!
//! 1. `jobs`: the winning definition of each job name, its previous entry, its demand;
//! 2. `ladder`: the rule ladder per job, where each job goes before files are considered,
//!    and the previous clusters the rules still allow;
//! 3. `files`: per-file facts: the cloud, the eligible clusters, the previous and
//!    incumbent clusters;
//! 4. `choose`: the file-level cluster, per strategy and mode;
//! 5. `finalize`: each job's final target, and the jobs no cluster can take;
//! 6. `summary`: the plan's file and cluster entries, the moves, the summary.
//!
//! [`validate`] shares the checks and the ladder, and places nothing.

mod choose;
mod files;
mod finalize;
mod inputs;
mod jobs;
mod ladder;
mod summary;

pub use inputs::{Inputs, Settings, Sources, StoredInputs};

use crate::balance::Pool;
use crate::checks;
use crate::diag::{Diagnostic, FatalInputs, Severity};
use crate::plan::{JobEntry, Plan, Strategy};
use crate::rules::{CompileErrors, Rule, Rules};
use files::FileState;
use jobs::Winners;
use ladder::JobState;

/// All findings about the inputs, sorted, without placing anything.
pub fn validate(inputs: &Inputs<'_>, settings: &Settings) -> Vec<Diagnostic> {
    let Checked {
        mut diagnostics,
        rules,
    } = match check(inputs, settings) {
        Ok(checked) => checked,
        Err(unreadable) => return finish_diagnostics(unreadable),
    };
    match rules {
        Err(errors) => diagnostics.extend(errors),
        Ok(rules) => diagnostics.extend(job_findings(inputs, &rules)),
    }
    finish_diagnostics(diagnostics)
}

/// Places every job. Fatal findings (every one of them, so that one run shows all there
/// is to fix) are returned instead of a plan.
pub fn run(inputs: &Inputs<'_>, settings: &Settings) -> Result<Plan, FatalInputs> {
    let checked = check(inputs, settings).map_err(|unreadable| fatal(unreadable, Vec::new()))?;
    let (rules, diagnostics) = match checked.rules {
        Ok(rules) if !checked.diagnostics.iter().any(is_fatal) => (rules, checked.diagnostics),
        Ok(_) => return Err(fatal(checked.diagnostics, Vec::new())),
        Err(errors) => return Err(fatal(checked.diagnostics, errors)),
    };
    let rules = if settings.strategy == Strategy::Resolve && settings.keep_static_clusters {
        rules.keeping_static_clusters()
    } else {
        rules
    };
    let mut run = Run::new(inputs, settings, &rules, diagnostics)?;
    run.describe_files();
    run.keep_previous_clusters();
    run.find_file_homes();
    let choices = run.choose_files();
    let finals = run.finalize(&choices);
    Ok(run.into_plan(&choices, finals))
}

/// The findings that come before placement, and the rules compiled from the config.
struct Checked<'a> {
    /// The readers' findings, and the config's against the inventory.
    diagnostics: Vec<Diagnostic>,
    /// The rules, or the fatal findings of compiling them.
    rules: Result<Rules<'a>, CompileErrors>,
}

/// Checks the config against the inventory and compiles the rules; `Err` with only the
/// readers' findings when the config or the inventory could not be read: then those are
/// the cause, and what follows from a missing default or an empty inventory would only
/// bury it.
fn check<'a>(inputs: &Inputs<'a>, settings: &Settings) -> Result<Checked<'a>, Vec<Diagnostic>> {
    let mut diagnostics = inputs.diagnostics.clone();
    let unreadable = diagnostics.iter().any(|d| {
        is_fatal(d) && (d.file == inputs.sources.config || d.file == inputs.sources.inventory)
    });
    if unreadable {
        return Err(diagnostics);
    }
    diagnostics.extend(checks::check_config(inputs, settings));
    let rules = Rules::compile(
        inputs.config,
        inputs.inventory,
        &settings.vsphere_cluster,
        &inputs.sources.config,
    );
    Ok(Checked { diagnostics, rules })
}

fn is_fatal(d: &Diagnostic) -> bool {
    d.severity == Severity::Fatal
}

/// The fatal ones of `found`, and `more`, as the error of a run.
fn fatal(found: Vec<Diagnostic>, more: CompileErrors) -> FatalInputs {
    let mut fatal: Vec<Diagnostic> = found.into_iter().filter(is_fatal).collect();
    fatal.extend(more);
    FatalInputs(finish_diagnostics(fatal))
}

/// Diagnostics as the plan and `validate` give them: sorted, each once.
fn finish_diagnostics(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort();
    diags.dedup();
    diags
}

/// What `validate` finds in the job files: files claimed twice or sharing a basename,
/// duplicate job names, jobs the ladder cannot place, clusters nobody declares.
fn job_findings(inputs: &Inputs<'_>, rules: &Rules<'_>) -> Vec<Diagnostic> {
    let files = jobs::sorted_files(inputs.files);
    let facts: Vec<_> = files.iter().map(|f| rules.file_facts(&f.path)).collect();
    let mut diags = checks::check_files(&files, &facts);
    diags.extend(Winners::of(&files).diagnostics);
    let mut decisions = Vec::new();
    for (f, facts) in files.iter().zip(&facts) {
        for job in &f.jobs {
            match rules.decide_in(job, facts, job.cluster.as_deref()) {
                Ok(d) => decisions.push(d),
                // A file matching several entries is reported once, by check_files.
                Err(e) if e.rule == Rule::GroupPath => {}
                Err(e) => diags.push(Diagnostic::error(
                    f.path.clone(),
                    job.name.clone(),
                    e.to_string(),
                )),
            }
        }
    }
    diags.extend(checks::unknown_targets(decisions.iter(), inputs));
    diags
}

/// One run's state, filled in phase by phase (see the module's documentation).
struct Run<'a> {
    inputs: &'a Inputs<'a>,
    settings: &'a Settings,
    rules: &'a Rules<'a>,
    /// The clusters that take new files.
    pool: Pool,
    /// Per job file, in path order.
    files: Vec<FileState<'a>>,
    /// Per placed job, in path order and file order.
    jobs: Vec<JobState<'a>>,
    /// Indices into `jobs` in name order: the order of the plan's `jobs` map.
    by_name: Vec<usize>,
    /// Per job: its entry in the previous plan.
    previous: Vec<Option<&'a JobEntry>>,
    /// Demand of the Kubernetes jobs.
    total_demand: f64,
    /// Findings so far, for the plan.
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Run<'a> {
    /// The first two phases: the jobs to place, with their previous entries and demands,
    /// then the ladder for each.
    fn new(
        inputs: &'a Inputs<'a>,
        settings: &'a Settings,
        rules: &'a Rules<'a>,
        mut diagnostics: Vec<Diagnostic>,
    ) -> Result<Self, FatalInputs> {
        let files = jobs::sorted_files(inputs.files);
        let facts: Vec<_> = files.iter().map(|f| rules.file_facts(&f.path)).collect();
        diagnostics.extend(checks::check_files(&files, &facts));
        let winners = Winners::of(&files);
        let previous = match inputs.previous {
            Some(p) => winners.join_by_name(&p.jobs),
            None => vec![None; winners.jobs.len()],
        };
        // Resolve computes what the sanitizer writes, which no volume changes.
        let volumes = inputs
            .volumes
            .filter(|_| settings.strategy != Strategy::Resolve);
        let demands = winners.demands(volumes, settings.demand).map_err(|e| {
            FatalInputs(vec![Diagnostic::fatal(
                "volumes",
                e.job.clone(),
                e.to_string(),
            )])
        })?;
        let Winners {
            jobs: winners,
            by_name,
            diagnostics: duplicates,
        } = winners;
        diagnostics.extend(duplicates);
        let mut run = Run {
            inputs,
            settings,
            rules,
            pool: Pool::of(inputs.inventory),
            files: files.into_iter().zip(facts).map(FileState::new).collect(),
            jobs: Vec::new(),
            by_name,
            previous,
            total_demand: 0.0,
            diagnostics,
        };
        run.decide_jobs(&winners, demands);
        run.total_demand = run
            .jobs
            .iter()
            .filter(|j| j.job.is_kubernetes())
            .map(|j| j.demand)
            .sum();
        Ok(run)
    }

    /// Whether a file may stay on `cluster`: a pool cluster it is eligible for, or a
    /// cordoned cluster, which keeps what it has.
    fn may_stay(&self, file: &FileState<'_>, cluster: &str) -> bool {
        self.pool.admits(file.mask, cluster) || self.keeps_cordoned(cluster)
    }

    /// Whether `cluster` is a cordoned build-farm cluster (usable, not reserved).
    fn keeps_cordoned(&self, cluster: &str) -> bool {
        self.inputs
            .inventory
            .clusters
            .get(cluster)
            .is_some_and(|c| c.cordoned && !c.blocked && !c.reserved)
    }
}
