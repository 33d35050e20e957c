//! Checks of the inputs: the config against the inventory, the job files, and the clusters
//! the rules send jobs to. They run on every path (validate, resolve, plan), not only in
//! tests (F4).

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::Diagnostic;
use crate::engine::{Inputs, Settings};
use crate::model::{DispatcherConfig, Inventory, JobFile};
use crate::rules::{Decision, FileFacts, Listed, Rule};

/// The most clusters balancing handles (eligibility is a 128-bit set).
pub const MAX_BALANCED_CLUSTERS: usize = 128;

/// Config- and inventory-level findings.
pub(crate) fn check_config(inputs: &Inputs<'_>, settings: &Settings) -> Vec<Diagnostic> {
    let mut checks = ConfigChecks {
        cfg: inputs.config,
        inv: inputs.inventory,
        cf: &inputs.sources.config,
        inf: &inputs.sources.inventory,
        out: Vec::new(),
    };
    if let Err(e) = settings.demand.check() {
        checks
            .out
            .push(Diagnostic::fatal("demand model", "", e.to_string()));
    }
    checks.placeable();
    checks.group_jobs();
    checks.references();
    checks.build_farm();
    checks.manual_clusters();
    checks.default_cluster();
    checks.out
}

/// The config checks: what they read, and what they found.
struct ConfigChecks<'a> {
    cfg: &'a DispatcherConfig,
    inv: &'a Inventory,
    /// The config's file name.
    cf: &'a str,
    /// The inventory's file name.
    inf: &'a str,
    out: Vec<Diagnostic>,
}

impl ConfigChecks<'_> {
    /// What placement cannot do without: a default, a usable cluster, and no more
    /// clusters than an eligibility mask holds.
    fn placeable(&mut self) {
        let Self {
            cfg, inv, cf, inf, ..
        } = *self;
        if cfg.default.trim().is_empty() {
            self.out.push(Diagnostic::fatal(
                cf,
                "default",
                "the default cluster must be set",
            ));
        }
        if inv.clusters.values().all(|c| c.blocked) {
            self.out.push(Diagnostic::fatal(
                inf,
                "",
                "no usable cluster: every cluster is blocked or the inventory is empty (refusing to place anything, F4b)",
            ));
        }
        let balanced = inv
            .clusters
            .values()
            .filter(|c| !c.blocked && !c.reserved)
            .count();
        if balanced > MAX_BALANCED_CLUSTERS {
            self.out.push(Diagnostic::fatal(
                inf,
                "",
                format!(
                    "{balanced} balanced clusters; at most {MAX_BALANCED_CLUSTERS} are supported"
                ),
            ));
        }
    }

    /// Job names listed more than once: in two groups is fatal (which group wins would be
    /// arbitrary); twice in the same group is harmless but still an error to fix.
    fn group_jobs(&mut self) {
        let Self { cfg, cf, .. } = *self;
        let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (cluster, group) in &cfg.groups {
            for job in &group.jobs {
                seen.entry(job).or_default().push(cluster);
            }
        }
        for (job, clusters) in &seen {
            if clusters.len() < 2 {
                continue;
            }
            let distinct: BTreeSet<&str> = clusters.iter().copied().collect();
            if distinct.len() > 1 {
                self.out.push(Diagnostic::fatal(
                    cf,
                    format!("groups.*.jobs {job}"),
                    format!(
                        "job is listed in several groups: {}",
                        distinct.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            } else {
                self.out.push(Diagnostic::error(
                    cf,
                    format!("groups.{}.jobs", clusters[0]),
                    format!("job {job:?} is listed {} times", clusters.len()),
                ));
            }
        }
    }

    /// Clusters the config names must exist: in the inventory or in manualClusters.
    fn references(&mut self) {
        let Self {
            cfg, inv, cf, inf, ..
        } = *self;
        let known =
            |c: &str| inv.clusters.contains_key(c) || cfg.manual_clusters.iter().any(|m| m == c);
        let mut refs: Vec<(String, &str)> = Vec::new();
        if !cfg.default.is_empty() {
            refs.push(("default".to_owned(), &cfg.default));
        }
        if let Some(b) = cfg.ssh_bastion.as_deref().filter(|b| !b.is_empty()) {
            refs.push(("sshBastion".to_owned(), b));
        }
        for (i, c) in cfg.kvm.iter().enumerate() {
            refs.push((format!("kvm[{i}]"), c));
        }
        for (i, c) in cfg.no_builds.iter().enumerate() {
            refs.push((format!("noBuilds[{i}]"), c));
        }
        for c in cfg.groups.keys() {
            refs.push((format!("groups.{c}"), c));
        }
        for (key, c) in &refs {
            if !known(c) {
                self.out.push(Diagnostic::error(
                    cf,
                    key.clone(),
                    format!(
                        "cluster {c:?} is not in the inventory ({inf}); add it there or list it under manualClusters"
                    ),
                ));
            }
        }
    }

    /// A blocked `default` leaves jobs whose target is blocked nowhere to go; a reserved or
    /// cordoned one takes fewer jobs than people may expect.
    fn default_cluster(&mut self) {
        let Self { cfg, inv, cf, .. } = *self;
        if let Some(d) = inv.clusters.get(&cfg.default) {
            if d.blocked {
                self.out.push(Diagnostic::error(
                    cf,
                    "default",
                    format!("the default cluster {} is blocked: jobs whose target is blocked have nowhere to go", d.name),
                ));
            } else if d.reserved || d.cordoned {
                self.out.push(Diagnostic::warning(
                    cf,
                    "default",
                    format!(
                        "the default cluster {} is {}",
                        d.name,
                        if d.reserved { "reserved" } else { "cordoned" }
                    ),
                ));
            }
        }
    }

    /// `buildFarm` entries: the inventory decides which clusters and clouds exist (HEAD's
    /// `SynchronizeBuildFarm`), so stale entries are warnings, but a cluster listed under two
    /// clouds is ambiguous and fatal, as in HEAD.
    fn build_farm(&mut self) {
        let Self { cfg, inv, cf, .. } = *self;
        let mut first_cloud: BTreeMap<&str, &str> = BTreeMap::new();
        for (cloud, clusters) in &cfg.build_farm {
            for c in clusters.keys() {
                let key = format!("buildFarm.{cloud}.{c}");
                if let Some(other) = first_cloud.insert(c, cloud) {
                    self.out.push(Diagnostic::fatal(
                        cf,
                        key,
                        format!("cluster {c} is also listed under buildFarm.{other}: a cluster belongs to one cloud"),
                    ));
                } else if !inv.usable(c) || inv.clusters.get(c).is_some_and(|x| x.reserved) {
                    self.out.push(Diagnostic::warning(
                        cf,
                        key,
                        "cluster is not a usable build-farm cluster in the inventory; its files are rebalanced",
                    ));
                } else if inv.clusters[c].provider != *cloud {
                    self.out.push(Diagnostic::warning(
                        cf,
                        key,
                        format!(
                            "the inventory puts {c} under {}; the inventory wins",
                            inv.clusters[c].provider
                        ),
                    ));
                }
            }
        }
    }

    /// `manualClusters`, as HEAD's `Validate` and `SynchronizeBuildFarm` check it: no empty
    /// name, no name twice, and none that the inventory schedules automatically (a manual
    /// cluster may be in the inventory only as blocked: that is how it is blocked).
    fn manual_clusters(&mut self) {
        let Self {
            cfg, inv, cf, inf, ..
        } = *self;
        let mut seen = BTreeSet::new();
        for (i, m) in cfg.manual_clusters.iter().enumerate() {
            let key = format!("manualClusters[{i}]");
            if m.trim().is_empty() {
                self.out.push(Diagnostic::fatal(
                    cf,
                    key,
                    "manualClusters must not contain an empty cluster name",
                ));
            } else if !seen.insert(m.as_str()) {
                self.out.push(Diagnostic::fatal(
                    cf,
                    key,
                    format!("manual cluster {m:?} is listed more than once"),
                ));
            } else if inv.usable(m) {
                self.out.push(Diagnostic::fatal(
                    cf,
                    key,
                    format!("manual cluster {m:?} is also an automatic build-farm cluster in the inventory ({inf}); remove it from one of them, or mark it blocked there"),
                ));
            }
        }
    }
}

/// File-level findings that placement isolates (F7): a file matched by more than one group
/// path or build-farm entry, and basenames that `buildFarm` cannot tell apart.
pub(crate) fn check_files(files: &[&JobFile], facts: &[FileFacts<'_, '_>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut by_basename: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.basename(), f.path.as_str()))
        .collect();
    // Stable: within a basename, path order (the files come sorted by path).
    by_basename.sort_by(|a, b| a.0.cmp(b.0));
    for group in by_basename
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|g| g.len() > 1)
    {
        out.push(Diagnostic::error(
            group[1].1.to_owned(),
            "",
            format!(
                "shares its basename {} with {}: buildFarm lists files by basename and cannot tell them apart",
                group[0].0, group[0].1
            ),
        ));
    }
    for (f, facts) in files.iter().zip(facts) {
        if facts.is_contested() {
            out.push(Diagnostic::error(
                f.path.clone(),
                "",
                format!(
                    "file matches more than one entry: {}; its relocatable jobs are unschedulable",
                    Listed(&facts.claims(), ", ")
                ),
            ));
        }
    }
    out
}

/// One warning per cluster that jobs are sent to although neither the inventory nor
/// `manualClusters` knows it (the Go dispatcher does not check these at all): pins, group
/// targets and the name-based vsphere rule alike.
pub(crate) fn unknown_targets<'d>(
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
