//! One placement run: inputs in, plan out.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use crate::balance::{self, BalFile, Churn, Outcome, Pool, Start};
use crate::classic::{self, ClassicFile, ClassicOutcome, FarmCluster};
use crate::diag::{Diagnostic, FatalInputs, Severity};
use crate::fnv::tie_hash;
use crate::model::{
    DemandModel, DemandOverflow, DispatcherConfig, Inventory, Job, JobFile, Volumes,
};
use crate::optimum::{self, DemandClass};
use crate::plan::{
    Candidate, ClusterEntry, ClusterState, FileEntry, FileReason, InputDigests, JobEntry, Mode,
    PLAN_FORMAT, Parameters, Plan, Strategy, Summary, Unschedulable, round3, round6,
};
use crate::rules::{Decision, Fallback, LadderError, Rule, Rules, resolve_target};
use crate::validate as checks;

/// Names of the input files, for diagnostics.
#[derive(Debug, Clone)]
pub struct Sources {
    pub config: String,
    pub inventory: String,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            config: "core-services/sanitize-prow-jobs/_config.yaml".to_owned(),
            inventory: "core-services/sanitize-prow-jobs/_clusters.yaml".to_owned(),
        }
    }
}

/// Everything a run reads. The core never touches files, the network or the clock.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub config: &'a DispatcherConfig,
    pub inventory: &'a Inventory,
    pub files: &'a [JobFile],
    pub volumes: Option<&'a Volumes>,
    pub previous: Option<&'a Plan>,
    pub digests: InputDigests,
    pub sources: Sources,
    /// Findings of the parsers, carried into the plan.
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub strategy: Strategy,
    pub mode: Mode,
    /// Target of the name-based vsphere rule.
    pub vsphere_cluster: String,
    pub hysteresis_percent: f64,
    pub movement_budget_percent: f64,
    pub demand: DemandModel,
    /// Resolve only: keep a usable static `cluster:` as the sanitizer does
    /// ([`Rules::keeping_static_clusters`]); off, every job goes through the ladder.
    pub keep_static_clusters: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            strategy: Strategy::Balanced,
            mode: Mode::Full,
            vsphere_cluster: "vsphere02".to_owned(),
            hysteresis_percent: 10.0,
            movement_budget_percent: 10.0,
            demand: DemandModel::default(),
            keep_static_clusters: true,
        }
    }
}

/// All findings about the inputs, sorted, without placing anything.
pub fn validate(inputs: &Inputs<'_>, settings: &Settings) -> Vec<Diagnostic> {
    let mut diags = inputs.diagnostics.clone();
    if unreadable(inputs) {
        return finish_diagnostics(diags);
    }
    diags.extend(checks::check_config(inputs, settings));
    match Rules::compile(
        inputs.config,
        inputs.inventory,
        &settings.vsphere_cluster,
        &inputs.sources.config,
    ) {
        Err(errors) => diags.extend(errors),
        Ok(rules) => {
            let files = sorted_files(inputs.files);
            let facts: Vec<_> = files.iter().map(|f| rules.file_facts(&f.path)).collect();
            diags.extend(checks::check_files(&files, &facts));
            diags.extend(dedupe_jobs(&files).diagnostics);
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
                            e.reason,
                        )),
                    }
                }
            }
            diags.extend(unknown_targets(decisions.iter(), inputs));
        }
    }
    finish_diagnostics(diags)
}

/// One warning per cluster that jobs are sent to although neither the inventory nor
/// `manualClusters` knows it (the Go dispatcher does not check these at all): pins, group
/// targets and the name-based vsphere rule alike.
fn unknown_targets<'d>(
    decisions: impl Iterator<Item = &'d Decision>,
    inputs: &Inputs<'_>,
) -> Vec<Diagnostic> {
    let mut unknown: BTreeMap<&str, (usize, Rule)> = BTreeMap::new();
    for d in decisions {
        let Some(c) = d.cluster.as_deref() else {
            continue;
        };
        if d.relocatable
            || inputs.inventory.clusters.contains_key(c)
            || inputs.config.manual_clusters.iter().any(|m| m == c)
        {
            continue;
        }
        unknown.entry(c).or_insert((0, d.rule)).0 += 1;
    }
    unknown
        .into_iter()
        .map(|(c, (n, rule))| {
            let by = if rule == Rule::Vsphere {
                "by the vsphere rule (its target is --vsphere-cluster, DISPATCHER_VSPHERE_CLUSTER)"
                    .to_owned()
            } else {
                format!("e.g. by rule {}", rule.as_str())
            };
            Diagnostic::warning(
                inputs.sources.inventory.clone(),
                c.to_owned(),
                format!(
                    "{n} job(s) are sent to {c} ({by}), which is neither in the inventory nor in manualClusters"
                ),
            )
        })
        .collect()
}

/// Whether the config or the inventory could not be read: then the readers' findings are
/// the cause, and what follows from a missing default or an empty inventory would only
/// bury it.
fn unreadable(inputs: &Inputs<'_>) -> bool {
    inputs.diagnostics.iter().any(|d| {
        d.severity == Severity::Fatal
            && (d.file == inputs.sources.config || d.file == inputs.sources.inventory)
    })
}

fn finish_diagnostics(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort();
    diags.dedup();
    diags
}

fn sorted_files(files: &[JobFile]) -> Vec<&JobFile> {
    let mut v: Vec<&JobFile> = files.iter().collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v.dedup_by(|a, b| a.path == b.path);
    v
}

/// The jobs that are placed: the first definition of a job name (in path order) wins, and
/// later ones are reported.
struct Winners<'a> {
    /// (file index, job), in path order and file order.
    jobs: Vec<(usize, &'a Job)>,
    /// Indices into `jobs`, sorted by job name: the order of the plan's `jobs` map.
    by_name: Vec<usize>,
    diagnostics: Vec<Diagnostic>,
}

fn dedupe_jobs<'a>(files: &[&'a JobFile]) -> Winners<'a> {
    let all: Vec<(usize, &Job)> = files
        .iter()
        .enumerate()
        .flat_map(|(fi, f)| f.jobs.iter().map(move |j| (fi, j)))
        .collect();
    // One sort by (name, position) finds the duplicates and gives the plan's order. The
    // keys sit next to each other, so that comparing them does not chase pointers.
    let mut keyed: Vec<(&str, usize)> = all.iter().map(|(_, j)| j.name.as_str()).zip(0..).collect();
    keyed.sort_unstable();
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    let mut keep = vec![false; all.len()];
    let mut diagnostics = Vec::new();
    let mut first = usize::MAX;
    for &i in &order {
        if first != usize::MAX && all[first].1.name == all[i].1.name {
            let (fi, job) = all[i];
            diagnostics.push(Diagnostic::warning(
                files[fi].path.clone(),
                job.name.clone(),
                format!(
                    "job name is also defined in {}; that definition is placed and this one follows its answer",
                    files[all[first].0].path
                ),
            ));
        } else {
            first = i;
            keep[i] = true;
        }
    }
    let mut index = vec![usize::MAX; all.len()];
    let mut jobs = Vec::with_capacity(all.len());
    for (i, &j) in all.iter().enumerate() {
        if keep[i] {
            index[i] = jobs.len();
            jobs.push(j);
        }
    }
    let by_name = order
        .into_iter()
        .filter(|&i| keep[i])
        .map(|i| index[i])
        .collect();
    Winners {
        jobs,
        by_name,
        diagnostics,
    }
}

/// Where a job goes before file-level choices are made.
#[derive(Debug, Clone)]
enum Place {
    NonKubernetes,
    /// Target known regardless of the file's cluster.
    Fixed {
        cluster: String,
        note: String,
    },
    /// Follows its file's cluster (relocatable, or pinned to a blocked cluster).
    Movable,
    Unschedulable {
        reason: String,
    },
}

struct PJob<'a> {
    job: &'a Job,
    file: usize,
    demand: f64,
    prev: Option<&'a str>,
    decision: Result<Decision, LadderError>,
    place: Place,
}

struct PFile<'a> {
    file: &'a JobFile,
    jobs: Vec<usize>,
    group_path: bool,
    cloud: Option<String>,
    /// Eligible balanced clusters (bits over the pool).
    mask: u128,
    /// The cloud preference could not be met and was dropped.
    relaxed: bool,
    movable_demand: f64,
    /// Most common previous cluster of the movable jobs.
    prev: Option<String>,
    /// Most common current cluster of the movable jobs (previous plan, else static).
    incumbent: Option<String>,
    /// Most common static `cluster:` field of all its jobs (the sanitizer's `mostUsed`).
    static_most_used: Option<String>,
}

/// Runs the placement.
pub fn run(inputs: &Inputs<'_>, settings: &Settings) -> Result<Plan, FatalInputs> {
    let mut diags = inputs.diagnostics.clone();
    if unreadable(inputs) {
        let fatal = diags.into_iter().filter(|d| d.severity == Severity::Fatal);
        return Err(FatalInputs(finish_diagnostics(fatal.collect())));
    }
    diags.extend(checks::check_config(inputs, settings));
    let compiled = Rules::compile(
        inputs.config,
        inputs.inventory,
        &settings.vsphere_cluster,
        &inputs.sources.config,
    );
    // Every fatal finding at once, so that one run shows all there is to fix.
    let mut fatal: Vec<Diagnostic> = diags
        .iter()
        .filter(|d| d.severity == Severity::Fatal)
        .cloned()
        .collect();
    if let Err(errors) = &compiled {
        fatal.extend(errors.iter().cloned());
    }
    let mut rules = match compiled {
        Ok(rules) if fatal.is_empty() => rules,
        _ => return Err(FatalInputs(finish_diagnostics(fatal))),
    };
    if settings.strategy == Strategy::Resolve && settings.keep_static_clusters {
        rules = rules.keeping_static_clusters();
    }
    let inv = inputs.inventory;
    let files = sorted_files(inputs.files);
    let facts: Vec<_> = files.iter().map(|f| rules.file_facts(&f.path)).collect();
    diags.extend(checks::check_files(&files, &facts));
    let Winners {
        jobs: winners,
        by_name,
        diagnostics: dup,
    } = dedupe_jobs(&files);
    diags.extend(dup);

    // The previous plan's entry of each job, by one walk of both name orders.
    let prev_entries: Vec<Option<&JobEntry>> = match inputs.previous {
        Some(p) => join_by_name(&winners, &by_name, &p.jobs),
        None => vec![None; winners.len()],
    };
    let volumes = if settings.strategy == Strategy::Resolve {
        None
    } else {
        inputs.volumes
    };

    // The pool: usable, unreserved, uncordoned clusters of the build farm.
    let pool = Pool {
        names: inv
            .clusters
            .values()
            .filter(|c| !c.blocked && !c.reserved && !c.cordoned)
            .map(|c| c.name.clone())
            .collect(),
        cap: inv
            .clusters
            .values()
            .filter(|c| !c.blocked && !c.reserved && !c.cordoned)
            .map(|c| f64::from(c.capacity))
            .collect(),
    };
    let farm_usable = |c: &str| {
        inv.clusters
            .get(c)
            .is_some_and(|x| !x.blocked && !x.reserved)
    };

    // Per job: the ladder. Jobs are independent here, so both cores share them; the
    // indexed collect keeps the order.
    let demands = demands(&winners, &by_name, volumes, settings.demand).map_err(|e| {
        FatalInputs(vec![Diagnostic::fatal(
            "volumes",
            e.job.clone(),
            e.to_string(),
        )])
    })?;
    let mut jobs: Vec<PJob<'_>> = winners
        .par_iter()
        .zip(prev_entries.par_iter())
        .zip(demands.into_par_iter())
        .map(|((&(fi, job), prev_entry), demand)| {
            let prev = prev_entry.and_then(|e| e.cluster.as_deref());
            let incumbent = if inputs.previous.is_some() {
                prev
            } else {
                job.cluster.as_deref()
            };
            let mut j = PJob {
                job,
                file: fi,
                demand,
                prev,
                decision: rules.decide_in(job, &facts[fi], incumbent),
                place: Place::Movable,
            };
            j.place = first_place(&j, inv, &settings.strategy);
            j
        })
        .collect();
    diags.extend(unknown_targets(
        jobs.iter().filter_map(|j| j.decision.as_ref().ok()),
        inputs,
    ));

    // Per file.
    let mut pfiles: Vec<PFile<'_>> = files
        .iter()
        .zip(&facts)
        .map(|(f, facts)| PFile {
            file: f,
            jobs: Vec::new(),
            group_path: facts.matches_group_path(),
            cloud: None,
            mask: 0,
            relaxed: false,
            movable_demand: 0.0,
            prev: None,
            incumbent: None,
            static_most_used: most_common(f.jobs.iter().filter_map(|j| j.cluster.as_deref())),
        })
        .collect();
    for (ji, j) in jobs.iter().enumerate() {
        pfiles[j.file].jobs.push(ji);
    }
    let all: u128 = (0..pool.names.len()).fold(0, |m, i| m | (1u128 << i));
    let mut provider_mask: BTreeMap<&str, u128> = BTreeMap::new();
    for (i, n) in pool.names.iter().enumerate() {
        *provider_mask.entry(&inv.clusters[n].provider).or_default() |= 1u128 << i;
    }
    for pf in &mut pfiles {
        // The file's cloud: the one mapped cloud all its Kubernetes jobs share, if any.
        let mut cloud: Option<&str> = None;
        let mut several = false;
        for &ji in &pf.jobs {
            let job = jobs[ji].job;
            if let Some(c) = job
                .is_kubernetes()
                .then(|| rules.mapped_cloud(job))
                .flatten()
            {
                match cloud {
                    None => cloud = Some(c),
                    Some(x) if x != c => several = true,
                    Some(_) => {}
                }
            }
        }
        if !several && let Some(c) = cloud.filter(|c| rules.farm_cloud.contains_key(*c)) {
            pf.cloud = Some(c.to_owned());
        }
        pf.mask = match &pf.cloud {
            Some(cloud) => {
                let m = provider_mask.get(cloud.as_str()).copied().unwrap_or(0);
                if m == 0 {
                    pf.relaxed = true;
                    all
                } else {
                    m
                }
            }
            None => all,
        };
    }

    // Acceptable previous clusters (delta keeps them; full mode keeps them for set rules).
    if let Some(_prev) = inputs.previous {
        for j in &mut jobs {
            let Some(p) = j.prev else { continue };
            let Ok(d) = &j.decision else { continue };
            match &j.place {
                Place::Fixed { cluster, .. }
                    if cluster != p
                        && d.rule.is_set_based()
                        && d.set.iter().any(|s| s == p)
                        && inv.usable(p) =>
                {
                    j.place = Place::Fixed {
                        cluster: p.to_owned(),
                        note: format!("kept previous cluster {p}, still in the rule's set"),
                    };
                }
                Place::Movable if settings.mode == Mode::Delta => {
                    let pf = &pfiles[j.file];
                    let eligible = pool.index(p).is_some_and(|i| pf.mask & (1u128 << i) != 0)
                        || (inv.is_cordoned(p) && farm_usable(p));
                    if eligible {
                        j.place = Place::Fixed {
                            cluster: p.to_owned(),
                            note: "delta: kept previous cluster".to_owned(),
                        };
                    }
                }
                _ => {}
            }
        }
    }

    for pf in &mut pfiles {
        let movable: Vec<usize> = pf
            .jobs
            .iter()
            .copied()
            .filter(|&ji| matches!(jobs[ji].place, Place::Movable))
            .collect();
        pf.movable_demand = movable.iter().map(|&ji| jobs[ji].demand).sum();
        // A file lives where its relocatable jobs are; pinned jobs that follow it because
        // their pin is blocked only count when there is nothing else.
        let relocatable: Vec<usize> = movable
            .iter()
            .copied()
            .filter(|&ji| jobs[ji].decision.as_ref().is_ok_and(|d| d.relocatable))
            .collect();
        let home = if relocatable.is_empty() {
            &movable
        } else {
            &relocatable
        };
        // Prefer a previous cluster the file may still use: fewer forced moves.
        let usable_home = |c: &&str| {
            pool.index(c).is_some_and(|i| pf.mask & (1u128 << i) != 0)
                || (inv.is_cordoned(c) && farm_usable(c))
        };
        pf.prev = most_common(
            home.iter()
                .filter_map(|&ji| jobs[ji].prev)
                .filter(usable_home),
        )
        .or_else(|| most_common(home.iter().filter_map(|&ji| jobs[ji].prev)));
        pf.incumbent = if inputs.previous.is_some() {
            pf.prev.clone()
        } else {
            most_common(
                home.iter()
                    .filter_map(|&ji| jobs[ji].job.cluster.as_deref()),
            )
        };
    }

    // File-level clusters.
    let mut fixed_load = vec![0.0; pool.names.len()];
    for j in &jobs {
        if let Place::Fixed { cluster, .. } = &j.place
            && let Some(i) = pool.index(cluster)
        {
            fixed_load[i] += j.demand;
        }
        if let (Place::Unschedulable { .. }, Some(p)) = (&j.place, j.prev)
            && let Some(i) = pool.index(p)
        {
            fixed_load[i] += j.demand;
        }
    }
    let total_demand: f64 = jobs
        .iter()
        .filter(|j| j.job.is_kubernetes())
        .map(|j| j.demand)
        .sum();
    let churn = inputs.previous.map(|_| Churn {
        hysteresis: settings.hysteresis_percent / 100.0,
        budget: settings.movement_budget_percent / 100.0 * total_demand,
    });
    let choice = choose_files(
        &pfiles,
        &jobs,
        &pool,
        inv,
        &rules,
        &fixed_load,
        settings,
        inputs,
        churn,
    );

    // Final targets, by job index; the name-keyed map is built once at the end.
    let (finals, missed): (Vec<JobEntry>, Vec<Option<Unschedulable>>) = jobs
        .par_iter()
        .map(|j| {
            let f = &pfiles[j.file];
            let mut missed = None;
            let (cluster, rule, detail) = match (&j.place, &j.decision) {
                (Place::NonKubernetes, Ok(d)) => (None, Rule::NoClusterAgent, d.detail.clone()),
                (Place::Fixed { cluster, note }, Ok(d)) => {
                    // A relocatable job can only be fixed when delta mode kept it in place.
                    let rule = if d.relocatable {
                        Rule::Balanced
                    } else {
                        d.rule
                    };
                    (Some(cluster.clone()), rule, join(d.detail.clone(), note))
                }
                (Place::Movable, Ok(d)) => {
                    let c = if settings.strategy == Strategy::Resolve {
                        resolve_file_cluster(j, d, &f.static_most_used, inv)
                    } else {
                        choice[j.file].cluster.as_deref()
                    };
                    let stranded = (settings.strategy == Strategy::Balanced
                        || settings.mode == Mode::Delta)
                        && c.is_none()
                        && d.cluster
                            .as_deref()
                            .is_some_and(|x| inv.clusters.contains_key(x));
                    let target = if stranded {
                        Err(no_eligible_reason(inv))
                    } else {
                        resolve_target(inv, &inputs.config.default, &j.job.name, c, d)
                    };
                    match target {
                        Ok((t, fb)) => {
                            let note = match fb {
                                Fallback::None => String::new(),
                                Fallback::FollowsFile => format!(
                                    "pinned cluster {} is blocked: follows its file",
                                    d.cluster.as_deref().unwrap_or_default()
                                ),
                                Fallback::Default => "target blocked: default cluster".to_owned(),
                            };
                            if settings.strategy == Strategy::Resolve {
                                (Some(t), d.rule, join(d.detail.clone(), &note))
                            } else {
                                let detail =
                                    format!("relocatable ({}), placed with its file", d.detail);
                                (Some(t), Rule::Balanced, join(detail, &note))
                            }
                        }
                        Err(reason) => {
                            missed = Some(Unschedulable {
                                job: j.job.name.clone(),
                                file: f.file.path.clone(),
                                reason: reason.clone(),
                                kept: j.prev.map(str::to_owned),
                            });
                            (j.prev.map(str::to_owned), Rule::Unschedulable, reason)
                        }
                    }
                }
                (Place::Unschedulable { reason }, _) => {
                    missed = Some(Unschedulable {
                        job: j.job.name.clone(),
                        file: f.file.path.clone(),
                        reason: reason.clone(),
                        kept: j.prev.map(str::to_owned),
                    });
                    (
                        j.prev.map(str::to_owned),
                        Rule::Unschedulable,
                        reason.clone(),
                    )
                }
                (_, Err(e)) => (
                    j.prev.map(str::to_owned),
                    Rule::Unschedulable,
                    e.reason.clone(),
                ),
            };
            let entry = JobEntry {
                cluster,
                file: f.file.path.clone(),
                rule,
                demand: round3(j.demand),
                detail,
            };
            (entry, missed)
        })
        .unzip();
    let mut unschedulable: Vec<Unschedulable> = missed.into_iter().flatten().collect();
    unschedulable.sort();

    // Per-file entries, with candidates for balanced files.
    let final_load = loads_by_cluster(&finals, &jobs);
    let pool_load: Vec<f64> = pool
        .names
        .iter()
        .map(|n| final_load.get(n).copied().unwrap_or(0.0))
        .collect();
    let pool_total: f64 = pool_load.iter().sum();
    let cap_sum: f64 = pool.cap.iter().sum();
    let target: Vec<f64> = pool
        .cap
        .iter()
        .map(|c| {
            if cap_sum > 0.0 {
                c / cap_sum * pool_total
            } else {
                0.0
            }
        })
        .collect();
    let file_entries: BTreeMap<String, FileEntry> = pfiles
        .par_iter()
        .zip(choice.par_iter())
        .map(|(pf, ch)| {
            let mut candidates = Vec::new();
            if pf.movable_demand > 0.0 && settings.strategy != Strategy::Resolve {
                candidates =
                    explain_candidates(pf, ch.cluster.as_deref(), &pool, inv, &pool_load, &target);
            }
            let demand: f64 = pf.jobs.iter().map(|&ji| jobs[ji].demand).sum();
            (
                pf.file.path.clone(),
                FileEntry {
                    cluster: ch.cluster.clone(),
                    reason: ch.reason,
                    jobs: pf.jobs.len(),
                    demand: round3(demand),
                    movable_demand: round3(pf.movable_demand),
                    previous: pf.prev.clone(),
                    cloud: pf.cloud.clone(),
                    group_path: pf.group_path,
                    candidates,
                },
            )
        })
        // Collected in path order, then built as a map without reordering.
        .collect::<Vec<_>>()
        .into_iter()
        .collect();

    // Moves against the previous plan.
    let mut moved_jobs = 0;
    let mut moved_demand = 0.0;
    let mut forced_jobs = 0;
    let mut forced_demand = 0.0;
    let mut moved_in: BTreeMap<String, f64> = BTreeMap::new();
    let mut moved_out: BTreeMap<String, f64> = BTreeMap::new();
    let mut new_jobs = 0;
    if inputs.previous.is_some() {
        for ((j, e), prev_entry) in jobs.iter().zip(&finals).zip(&prev_entries) {
            let now = e.cluster.as_deref();
            match (j.prev, now) {
                (Some(p), Some(n)) if p != n => {
                    moved_jobs += 1;
                    moved_demand += j.demand;
                    *moved_in.entry(n.to_owned()).or_default() += j.demand;
                    *moved_out.entry(p.to_owned()).or_default() += j.demand;
                    if is_forced(j, p, &pfiles[j.file], &pool) {
                        forced_jobs += 1;
                        forced_demand += j.demand;
                    }
                }
                _ => {}
            }
            if prev_entry.is_none() {
                new_jobs += 1;
            }
        }
    }
    let removed_jobs = inputs.previous.map_or(0, |p| {
        p.jobs.len() - prev_entries.iter().filter(|e| e.is_some()).count()
    });

    let clusters = cluster_entries(
        inv,
        &finals,
        &file_entries,
        &pool,
        &target,
        &moved_in,
        &moved_out,
        &jobs,
    );
    let classes = demand_classes(&pfiles, &choice, &pool);
    // Everything on a pool cluster that did not come from a balanced file is fixed.
    let mut fixed_on_pool = pool_load.clone();
    for (fi, pf) in pfiles.iter().enumerate() {
        if let Some(i) = balanced_index(&choice[fi], &pool) {
            fixed_on_pool[i] = (fixed_on_pool[i] - pf.movable_demand).max(0.0);
        }
    }
    let summary = Summary {
        jobs: jobs.len(),
        files: files.len(),
        kubernetes_jobs: jobs.iter().filter(|j| j.job.is_kubernetes()).count(),
        placed_jobs: finals.iter().filter(|e| e.cluster.is_some()).count(),
        unschedulable_jobs: unschedulable.len(),
        moved_jobs,
        moved_demand: round3(moved_demand),
        forced_moved_jobs: forced_jobs,
        forced_moved_demand: round3(forced_demand),
        removed_jobs,
        new_jobs,
        total_demand: round3(total_demand),
        budget_demand: churn
            .filter(|_| settings.strategy == Strategy::Balanced && settings.mode == Mode::Full)
            .map(|c| round3(c.budget)),
        budget_used: round3(moved_demand - forced_demand),
        max_deviation: round6(optimum::max_deviation(&pool.cap, &pool_load)),
        fractional_optimum_deviation: round6(optimum::fractional_optimum(
            &pool.cap,
            &fixed_on_pool,
            &classes,
        )),
    };
    diags.extend(unschedulable_summary(&unschedulable));
    Ok(Plan {
        format: PLAN_FORMAT,
        strategy: settings.strategy,
        mode: settings.mode,
        parameters: Parameters {
            vsphere_cluster: settings.vsphere_cluster.clone(),
            hysteresis_percent: settings.hysteresis_percent,
            movement_budget_percent: settings.movement_budget_percent,
            demand: settings.demand,
        },
        inputs: inputs.digests.clone(),
        summary,
        clusters,
        files: file_entries,
        jobs: {
            let mut finals: Vec<Option<JobEntry>> = finals.into_iter().map(Some).collect();
            let mut sorted = Vec::with_capacity(by_name.len());
            for &i in &by_name {
                if let Some(e) = finals[i].take() {
                    sorted.push((jobs[i].job.name.clone(), e));
                }
            }
            // Already in key order, so the map is built without a second sort's work.
            sorted.into_iter().collect()
        },
        unschedulable,
        diagnostics: finish_diagnostics(diags),
    })
}

/// Why a relocatable job found no cluster: what each one is.
fn no_eligible_reason(inv: &Inventory) -> String {
    let states: Vec<String> = inv
        .clusters
        .values()
        .map(|c| {
            let state = if c.blocked {
                "blocked"
            } else if c.reserved {
                "reserved"
            } else {
                "cordoned"
            };
            format!("{} {state}", c.name)
        })
        .collect();
    format!("no cluster accepts new files ({})", states.join(", "))
}

/// The value of each winner's name in a name-keyed map, or `None`; indexed like `winners`.
/// Both sides are in name order, so one merge walk replaces a lookup per job.
fn join_by_name<'m, V>(
    winners: &[(usize, &Job)],
    by_name: &[usize],
    map: &'m BTreeMap<String, V>,
) -> Vec<Option<&'m V>> {
    let mut out = vec![None; winners.len()];
    let mut entries = map.iter().peekable();
    for &i in by_name {
        let name = winners[i].1.name.as_str();
        while entries.next_if(|(k, _)| k.as_str() < name).is_some() {}
        if let Some((_, v)) = entries.next_if(|(k, _)| k.as_str() == name) {
            out[i] = Some(v);
        }
    }
    out
}

/// Each winner's demand: its weighted volumes, floored (jobs without samples get the
/// minimum, F14); without volumes every job weighs the minimum. A demand that is not
/// finite is an error naming the job.
fn demands(
    winners: &[(usize, &Job)],
    by_name: &[usize],
    volumes: Option<&Volumes>,
    model: DemandModel,
) -> Result<Vec<f64>, DemandOverflow> {
    let Some(v) = volumes else {
        return Ok(vec![model.minimum; winners.len()]);
    };
    let terms = [
        Some(&v.runs),
        v.hours.as_ref(),
        v.cpu_hours.as_ref(),
        v.memory_gib_hours.as_ref(),
    ]
    .map(|m| match m {
        Some(m) => join_by_name(winners, by_name, m),
        None => vec![None; winners.len()],
    });
    (0..winners.len())
        .map(|i| {
            let term = |t: usize| terms[t][i].copied().unwrap_or(0.0);
            model.combine(&winners[i].1.name, [term(0), term(1), term(2), term(3)])
        })
        .collect()
}

/// `a; b`, or whichever is not empty; `a` is reused rather than copied.
fn join(mut a: String, b: &str) -> String {
    if !b.is_empty() {
        if !a.is_empty() {
            a.push_str("; ");
        }
        a.push_str(b);
    }
    a
}

/// The place a job's decision gives before previous plans are considered.
fn first_place(j: &PJob<'_>, inv: &Inventory, strategy: &Strategy) -> Place {
    let d = match &j.decision {
        Err(e) => {
            return Place::Unschedulable {
                reason: e.reason.clone(),
            };
        }
        Ok(d) => d,
    };
    let Some(target) = d.cluster.as_deref() else {
        return Place::NonKubernetes;
    };
    let blocked = inv.is_blocked(target) && !crate::rules::is_cluster_upgrade_job(&j.job.name);
    if *strategy == Strategy::Resolve {
        // Resolve is decided per job, with the file's most used static cluster standing in
        // for C when the target is blocked (what the sanitizer does).
        return Place::Movable;
    }
    if d.relocatable || blocked {
        Place::Movable
    } else {
        Place::Fixed {
            cluster: target.to_owned(),
            note: String::new(),
        }
    }
}

/// Resolve's C: the sanitizer passes the file's most used static cluster only when the
/// job's own target is blocked; otherwise C is empty and the target stands.
fn resolve_file_cluster<'a>(
    j: &PJob<'_>,
    d: &Decision,
    static_most_used: &'a Option<String>,
    inv: &Inventory,
) -> Option<&'a str> {
    let target = d.cluster.as_deref()?;
    let blocked = inv.is_blocked(target) && !crate::rules::is_cluster_upgrade_job(&j.job.name);
    if blocked {
        static_most_used.as_deref()
    } else {
        None
    }
}

fn most_common<'a>(it: impl Iterator<Item = &'a str>) -> Option<String> {
    // A file's jobs name a handful of clusters: a short list beats a map.
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for c in it.filter(|c| !c.is_empty()) {
        match counts.iter_mut().find(|(n, _)| *n == c) {
            Some((_, k)) => *k += 1,
            None => counts.push((c, 1)),
        }
    }
    // Highest count; ties go to the lexicographically smallest name.
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(c, _)| c.to_owned())
}

#[derive(Debug, Clone)]
struct FileChoice {
    cluster: Option<String>,
    reason: FileReason,
    /// Whether the file's movable demand was balanced over `mask` (for the optimum).
    balanced: bool,
}

#[allow(clippy::too_many_arguments)]
fn choose_files(
    pfiles: &[PFile<'_>],
    jobs: &[PJob<'_>],
    pool: &Pool,
    inv: &Inventory,
    rules: &Rules<'_>,
    fixed_load: &[f64],
    settings: &Settings,
    inputs: &Inputs<'_>,
    churn: Option<Churn>,
) -> Vec<FileChoice> {
    let mut out: Vec<Option<FileChoice>> = vec![None; pfiles.len()];
    let farm_usable = |c: &str| {
        inv.clusters
            .get(c)
            .is_some_and(|x| !x.blocked && !x.reserved)
    };
    let in_mask =
        |pf: &PFile<'_>, c: &str| pool.index(c).is_some_and(|i| pf.mask & (1u128 << i) != 0);

    if settings.strategy == Strategy::Resolve {
        for (fi, pf) in pfiles.iter().enumerate() {
            // The buildFarm listing as written.
            let listed = pf
                .jobs
                .iter()
                .filter_map(|&ji| jobs[ji].decision.as_ref().ok())
                .find(|d| d.rule == Rule::BuildFarm)
                .and_then(|d| d.cluster.clone());
            out[fi] = Some(FileChoice {
                cluster: listed,
                reason: FileReason::Resolved,
                balanced: false,
            });
        }
        return out
            .into_iter()
            .map(|c| c.unwrap_or_else(no_choice))
            .collect();
    }

    // Files that keep their cluster whatever the strategy.
    for (fi, pf) in pfiles.iter().enumerate() {
        if pf.movable_demand <= 0.0
            && !pf
                .jobs
                .iter()
                .any(|&ji| matches!(jobs[ji].place, Place::Movable))
        {
            let prev_file = inputs
                .previous
                .and_then(|p| p.files.get(&pf.file.path))
                .and_then(|e| e.cluster.clone())
                .filter(|c| in_mask(pf, c) || (inv.is_cordoned(c) && farm_usable(c)));
            // Where its jobs run, so that `buildFarm` lists the file where it lives; else a
            // stable hash spreads such files.
            let majority = most_common(pf.jobs.iter().filter_map(|&ji| match &jobs[ji].place {
                Place::Fixed { cluster, .. } => Some(cluster.as_str()),
                _ => None,
            }))
            .filter(|c| in_mask(pf, c));
            let cluster = prev_file.or(majority).or_else(|| {
                pool.members(pf.mask)
                    .min_by_key(|&i| (tie_hash(&pf.file.path, &pool.names[i]), i))
                    .map(|i| pool.names[i].clone())
            });
            out[fi] = Some(FileChoice {
                cluster,
                reason: FileReason::NoMovableDemand,
                balanced: false,
            });
        } else if let Some(inc) = pf
            .incumbent
            .as_deref()
            .filter(|c| inv.is_cordoned(c) && farm_usable(c))
        {
            out[fi] = Some(FileChoice {
                cluster: Some(inc.to_owned()),
                reason: FileReason::CordonedKeep,
                balanced: false,
            });
        } else if pool.names.is_empty() {
            out[fi] = Some(FileChoice {
                cluster: None,
                reason: FileReason::NoEligibleCluster,
                balanced: false,
            });
        }
    }

    if settings.mode == Mode::Delta {
        // Existing files keep their cluster; a new file follows the config as written (what
        // the sanitizer put in its static fields) when that cluster is eligible, else the
        // best score.
        let mut load = fixed_load.to_vec();
        for (fi, pf) in pfiles.iter().enumerate() {
            if out[fi].is_some() {
                continue;
            }
            // A new job of an existing file goes where its siblings are: the file's
            // cluster in the previous plan, not the `buildFarm` listing, which is stale
            // until the backup PR merges.
            let previous_file = inputs
                .previous
                .and_then(|p| p.files.get(&pf.file.path))
                .and_then(|e| e.cluster.as_deref());
            let kept = previous_file
                .filter(|p| in_mask(pf, p))
                .or_else(|| pf.prev.as_deref().filter(|p| in_mask(pf, p)));
            if let Some(p) = kept {
                out[fi] = Some(FileChoice {
                    cluster: Some(p.to_owned()),
                    reason: FileReason::DeltaKept,
                    balanced: false,
                });
                if let Some(i) = pool.index(p) {
                    load[i] += pf.movable_demand;
                }
            }
        }
        for (fi, pf) in pfiles.iter().enumerate() {
            if out[fi].is_some() {
                continue;
            }
            let decided = most_common(pf.jobs.iter().filter_map(|&ji| {
                let j = &jobs[ji];
                matches!(j.place, Place::Movable)
                    .then(|| j.decision.as_ref().ok().and_then(|d| d.cluster.as_deref()))
                    .flatten()
            }));
            let (cluster, reason) = match decided.filter(|d| in_mask(pf, d)) {
                Some(d) => (pool.index(&d).unwrap_or(0), FileReason::Resolved),
                None => {
                    let bf = bal_file(pf, Start::Free, 0.0);
                    (
                        balance::best_cluster(pool, &load, &bf, None),
                        FileReason::BestScore,
                    )
                }
            };
            load[cluster] += pf.movable_demand;
            out[fi] = Some(FileChoice {
                cluster: Some(pool.names[cluster].clone()),
                reason,
                balanced: false,
            });
        }
        return out
            .into_iter()
            .map(|c| c.unwrap_or_else(no_choice))
            .collect();
    }

    match settings.strategy {
        Strategy::Classic => {
            let cap_sum: f64 = inv
                .clusters
                .values()
                .filter(|c| !c.blocked)
                .map(|c| f64::from(c.capacity))
                .sum();
            let total: f64 = jobs
                .iter()
                .filter(|j| j.job.is_kubernetes())
                .map(|j| j.demand)
                .sum();
            let farm: BTreeMap<String, FarmCluster> = rules
                .farm_cloud
                .values()
                .flat_map(|s| s.iter())
                .map(|n| {
                    let c = &inv.clusters[n];
                    (
                        n.clone(),
                        FarmCluster {
                            provider: c.provider.clone(),
                            capacity: c.capacity,
                            cordoned: c.cordoned,
                            share: f64::from(c.capacity) / cap_sum * total,
                        },
                    )
                })
                .collect();
            let idx: Vec<usize> = (0..pfiles.len()).filter(|&fi| out[fi].is_none()).collect();
            let cfiles: Vec<ClassicFile<'_>> = idx
                .iter()
                .map(|&fi| {
                    let pf = &pfiles[fi];
                    let incumbent = |ji: usize| {
                        if inputs.previous.is_some() {
                            jobs[ji].prev
                        } else {
                            jobs[ji].job.cluster.as_deref()
                        }
                    };
                    ClassicFile {
                        path: &pf.file.path,
                        size: pf.file.size,
                        preference: pf.cloud.as_deref(),
                        most_used: most_common(pf.jobs.iter().filter_map(|&ji| incumbent(ji))),
                        movable_demand: pf.movable_demand,
                        fixed: pf
                            .jobs
                            .iter()
                            .filter_map(|&ji| match &jobs[ji].place {
                                Place::Fixed { cluster, .. } => {
                                    Some((cluster.as_str(), jobs[ji].demand))
                                }
                                _ => None,
                            })
                            .collect(),
                    }
                })
                .collect();
            let placed = classic::place(&farm, &cfiles);
            for (k, &fi) in idx.iter().enumerate() {
                let (cluster, o) = placed[k].clone();
                out[fi] = Some(FileChoice {
                    cluster,
                    reason: match o {
                        ClassicOutcome::Sticky => FileReason::Sticky,
                        ClassicOutcome::LeastLoaded => FileReason::LeastLoaded,
                        ClassicOutcome::NoCluster => FileReason::NoEligibleCluster,
                    },
                    balanced: true,
                });
            }
        }
        Strategy::Balanced | Strategy::Resolve => {
            let idx: Vec<usize> = (0..pfiles.len()).filter(|&fi| out[fi].is_none()).collect();
            let bfiles: Vec<BalFile<'_>> = idx
                .iter()
                .map(|&fi| {
                    let pf = &pfiles[fi];
                    let start = match (&churn, pf.prev.as_deref()) {
                        (None, _) | (_, None) => Start::Free,
                        (Some(_), Some(p)) => match pool.index(p) {
                            Some(i) if pf.mask & (1u128 << i) != 0 => Start::Stay(i),
                            _ => Start::Forced,
                        },
                    };
                    let cost: f64 = pf
                        .jobs
                        .iter()
                        .filter(|&&ji| matches!(jobs[ji].place, Place::Movable))
                        .filter(|&&ji| {
                            jobs[ji].prev.is_some() && jobs[ji].prev == pf.prev.as_deref()
                        })
                        .map(|&ji| jobs[ji].demand)
                        .sum();
                    bal_file(pf, start, cost)
                })
                .collect();
            let placed = balance::place(pool, fixed_load, &bfiles, churn);
            for (k, &fi) in idx.iter().enumerate() {
                let c = placed.cluster[k];
                let reason = match placed.outcome[k] {
                    Outcome::BestScore => FileReason::BestScore,
                    Outcome::Rebalanced => FileReason::Rebalanced,
                    Outcome::Forced => FileReason::ForcedMove,
                    Outcome::Kept => kept_reason(pool, &placed.load, &bfiles[k], c, churn),
                };
                out[fi] = Some(FileChoice {
                    cluster: pool.names.get(c).cloned(),
                    reason,
                    balanced: true,
                });
            }
        }
    }
    out.into_iter()
        .map(|c| c.unwrap_or_else(no_choice))
        .collect()
}

fn no_choice() -> FileChoice {
    FileChoice {
        cluster: None,
        reason: FileReason::NoEligibleCluster,
        balanced: false,
    }
}

fn bal_file<'a>(pf: &'a PFile<'_>, start: Start, cost: f64) -> BalFile<'a> {
    BalFile {
        path: &pf.file.path,
        demand: pf.movable_demand,
        mask: pf.mask,
        start,
        cost,
    }
}

/// Why a file stayed: already best, within the hysteresis, or held by the budget.
fn kept_reason(
    pool: &Pool,
    load: &[f64],
    f: &BalFile<'_>,
    c: usize,
    churn: Option<Churn>,
) -> FileReason {
    let Some(ch) = churn else {
        return FileReason::BestScore;
    };
    let alt = balance::best_cluster(pool, load, f, Some(c));
    if alt == usize::MAX {
        return FileReason::Kept;
    }
    let here = load[c] / pool.cap[c];
    let there = (load[alt] + f.demand) / pool.cap[alt];
    if here > there * (1.0 + ch.hysteresis) {
        FileReason::BudgetExhausted
    } else if here > there {
        FileReason::Hysteresis
    } else {
        FileReason::Kept
    }
}

/// Scores of every cluster for one file, given the final loads; rejected clusters say why.
fn explain_candidates(
    pf: &PFile<'_>,
    chosen: Option<&str>,
    pool: &Pool,
    inv: &Inventory,
    load: &[f64],
    target: &[f64],
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for c in inv.clusters.values() {
        let mut rejected = Vec::new();
        if c.blocked {
            rejected.push("blocked".to_owned());
        }
        if c.reserved {
            rejected.push("reserved".to_owned());
        }
        if c.cordoned && chosen != Some(c.name.as_str()) {
            rejected.push("cordoned".to_owned());
        }
        if let Some(cloud) = &pf.cloud
            && !pf.relaxed
            && c.provider != *cloud
        {
            rejected.push(format!("cloud-mismatch (file wants {cloud})"));
        }
        let score = pool
            .index(&c.name)
            .filter(|_| rejected.is_empty())
            .map(|i| {
                let own = if chosen == Some(c.name.as_str()) {
                    pf.movable_demand
                } else {
                    0.0
                };
                let t = target[i].max(f64::MIN_POSITIVE);
                round6((load[i] - own + pf.movable_demand) / t)
            });
        out.push(Candidate {
            cluster: c.name.clone(),
            score,
            rejected,
        });
    }
    out
}

fn loads_by_cluster(finals: &[JobEntry], jobs: &[PJob<'_>]) -> BTreeMap<String, f64> {
    let mut load: BTreeMap<String, f64> = BTreeMap::new();
    for (j, e) in jobs.iter().zip(finals) {
        if let Some(c) = e.cluster.as_deref() {
            match load.get_mut(c) {
                Some(l) => *l += j.demand,
                None => {
                    load.insert(c.to_owned(), j.demand);
                }
            }
        }
    }
    load
}

/// Whether a job's move off `prev` was unavoidable: its previous cluster is blocked,
/// removed or no longer eligible, its rule now says otherwise, or its file is being
/// reunited on one cluster. Only balancing moves are charged to the budget.
fn is_forced(j: &PJob<'_>, prev: &str, pf: &PFile<'_>, pool: &Pool) -> bool {
    match j.place {
        Place::Movable => {
            let eligible = pool
                .index(prev)
                .is_some_and(|i| pf.mask & (1u128 << i) != 0);
            !eligible || pf.prev.as_deref() != Some(prev)
        }
        _ => true,
    }
}

#[allow(clippy::too_many_arguments)]
fn cluster_entries(
    inv: &Inventory,
    finals: &[JobEntry],
    files: &BTreeMap<String, FileEntry>,
    pool: &Pool,
    target: &[f64],
    moved_in: &BTreeMap<String, f64>,
    moved_out: &BTreeMap<String, f64>,
    jobs: &[PJob<'_>],
) -> BTreeMap<String, ClusterEntry> {
    let load = loads_by_cluster(finals, jobs);
    let all: f64 = load.values().sum();
    let mut job_count: BTreeMap<&str, usize> = BTreeMap::new();
    for c in finals.iter().filter_map(|e| e.cluster.as_deref()) {
        *job_count.entry(c).or_default() += 1;
    }
    let mut file_count: BTreeMap<&str, usize> = BTreeMap::new();
    for c in files.values().filter_map(|f| f.cluster.as_deref()) {
        *file_count.entry(c).or_default() += 1;
    }
    let mut names: BTreeSet<String> = inv.clusters.keys().cloned().collect();
    names.extend(load.keys().cloned());
    names
        .into_iter()
        .map(|n| {
            let c = inv.clusters.get(&n);
            let state = match c {
                None => ClusterState::Unmanaged,
                Some(c) if c.blocked => ClusterState::Blocked,
                Some(c) if c.reserved => ClusterState::Reserved,
                Some(c) if c.cordoned => ClusterState::Cordoned,
                Some(_) => ClusterState::Active,
            };
            let demand = load.get(&n).copied().unwrap_or(0.0);
            let share = |x: f64| if all > 0.0 { round6(x / all) } else { 0.0 };
            let entry = ClusterEntry {
                state,
                provider: c.map(|c| c.provider.clone()),
                capacity: c.map(|c| c.capacity),
                jobs: job_count.get(n.as_str()).copied().unwrap_or(0),
                files: file_count.get(n.as_str()).copied().unwrap_or(0),
                demand: round3(demand),
                share: share(demand),
                target_share: pool.index(&n).map(|i| share(target[i])),
                moved_in_demand: round3(moved_in.get(&n).copied().unwrap_or(0.0)),
                moved_out_demand: round3(moved_out.get(&n).copied().unwrap_or(0.0)),
            };
            (n, entry)
        })
        .collect()
}

/// The pool index of a file whose movable demand was balanced.
fn balanced_index(ch: &FileChoice, pool: &Pool) -> Option<usize> {
    ch.cluster
        .as_deref()
        .and_then(|c| pool.index(c))
        .filter(|_| ch.balanced)
}

/// Balanced files' movable demand grouped by eligibility, for the fractional optimum.
fn demand_classes(pfiles: &[PFile<'_>], choice: &[FileChoice], pool: &Pool) -> Vec<DemandClass> {
    let mut by_mask: BTreeMap<u128, f64> = BTreeMap::new();
    for (fi, pf) in pfiles.iter().enumerate() {
        if balanced_index(&choice[fi], pool).is_some() {
            *by_mask.entry(pf.mask).or_default() += pf.movable_demand;
        }
    }
    by_mask
        .into_iter()
        .map(|(mask, demand)| DemandClass { mask, demand })
        .collect()
}

/// One warning per distinct reason, so that a blocked gpu cluster does not print a line per
/// job.
fn unschedulable_summary(list: &[Unschedulable]) -> Vec<Diagnostic> {
    let mut by_reason: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for u in list {
        let e = by_reason.entry(&u.reason).or_insert((0, &u.job));
        e.0 += 1;
    }
    by_reason
        .into_iter()
        .map(|(reason, (n, example))| {
            Diagnostic::error(
                "plan",
                format!("unschedulable ({n} job(s), e.g. {example})"),
                reason.to_owned(),
            )
        })
        .collect()
}
