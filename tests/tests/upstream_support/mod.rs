//! Builders shared by the translations of ci-tools' own test tables (`upstream_*.rs`): the
//! Go tests build `dispatcher.Config`, `ClusterMap` and `prowconfig.JobBase` values; these
//! build ours.
#![allow(dead_code)]

use std::collections::BTreeMap;

use dispatcher_core::model::{
    Cluster, Container, DispatcherConfig, Group, Inventory, Job, JobFile, JobKind, Labels, Volumes,
};
use dispatcher_core::rules::{Decision, Rules};
use dispatcher_core::{Diagnostic, Inputs, Plan, Settings};

/// The repository-relative directory of job files; Go's tests pass paths relative to it.
pub const JOBS: &str = "ci-operator/jobs/";

/// A Kubernetes presubmit with one `ci-operator:latest` container, no labels, no cluster.
pub fn job(name: &str) -> Job {
    Job {
        name: name.to_owned(),
        kind: JobKind::Presubmit,
        agent: String::new(),
        cluster: None,
        labels: Labels::new(),
        containers: vec![Container {
            image: "ci-operator:latest".to_owned(),
            cluster_types: vec![],
        }],
    }
}

/// `job` with these labels added.
pub fn labelled(mut j: Job, labels: &[(&str, &str)]) -> Job {
    for (k, v) in labels {
        j.labels.insert((*k).to_owned(), (*v).to_owned());
    }
    j
}

/// `job` with a static `cluster:`.
pub fn on(mut j: Job, cluster: &str) -> Job {
    j.cluster = Some(cluster.to_owned());
    j
}

/// `job` with `CLUSTER_TYPE` set in its first container (Go's template jobs).
pub fn cluster_type(mut j: Job, value: &str) -> Job {
    j.containers[0].cluster_types.push(value.to_owned());
    j
}

/// A job file at `ci-operator/jobs/<relative>`.
pub fn file(relative: &str, jobs: Vec<Job>) -> JobFile {
    JobFile {
        path: format!("{JOBS}{relative}"),
        size: 100 * jobs.len() as u64,
        jobs,
    }
}

/// A usable cluster of the inventory.
pub fn cluster(name: &str, provider: &str, capacity: u32) -> Cluster {
    Cluster::new(name, provider, capacity)
}

/// `cluster` with these capabilities.
pub fn capable(mut c: Cluster, capabilities: &[&str]) -> Cluster {
    c.capabilities = capabilities.iter().map(|s| (*s).to_owned()).collect();
    c
}

/// `cluster`, blocked.
pub fn blocked(mut c: Cluster) -> Cluster {
    c.blocked = true;
    c
}

pub fn inventory(clusters: Vec<Cluster>) -> Inventory {
    Inventory {
        clusters: clusters.into_iter().map(|c| (c.name.clone(), c)).collect(),
    }
}

/// Go's tests give `buildFarm` and no `ClusterMap`; `SynchronizeBuildFarm` makes the
/// inventory authoritative, so ours is built from `buildFarm`: each listed cluster, usable,
/// at capacity 100, under its cloud.
pub fn farm_inventory(config: &DispatcherConfig) -> Inventory {
    inventory(
        config
            .build_farm
            .iter()
            .flat_map(|(cloud, clusters)| clusters.keys().map(move |c| cluster(c, cloud, 100)))
            .collect(),
    )
}

/// A config with `default` and nothing else.
pub fn config(default: &str) -> DispatcherConfig {
    DispatcherConfig {
        default: default.to_owned(),
        ..DispatcherConfig::default()
    }
}

/// `groups.<cluster>` with these job names and path regexes.
pub fn group(config: &mut DispatcherConfig, cluster: &str, jobs: &[&str], paths: &[&str]) {
    config.groups.insert(
        cluster.to_owned(),
        Group {
            jobs: jobs.iter().map(|s| (*s).to_owned()).collect(),
            paths: paths.iter().map(|s| (*s).to_owned()).collect(),
        },
    );
}

/// `buildFarm.<cloud>.<cluster>.filenames`.
pub fn farm(config: &mut DispatcherConfig, cloud: &str, cluster: &str, files: &[&str]) {
    config
        .build_farm
        .entry(cloud.to_owned())
        .or_default()
        .insert(
            cluster.to_owned(),
            files.iter().map(|s| (*s).to_owned()).collect(),
        );
}

/// Go's `DetermineClusterForJob(jobBase, path, cm)`: the rule ladder for a job of the file
/// at `ci-operator/jobs/<relative>`, as (cluster, may be relocated), or the reason it has
/// none. The vsphere target is HEAD's `vsphere02`.
pub fn decide(
    config: &DispatcherConfig,
    inventory: &Inventory,
    j: &Job,
    relative: &str,
) -> Result<Decision, String> {
    let rules = Rules::compile(config, inventory, "vsphere02", "_config.yaml")
        .map_err(|e| diagnostics_text(&e))?;
    rules
        .decide(j, &format!("{JOBS}{relative}"), j.cluster.as_deref())
        .map_err(|e| e.to_string())
}

/// Diagnostics as one line each.
pub fn diagnostics_text(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One placement run over these inputs.
pub fn run(
    config: &DispatcherConfig,
    inventory: &Inventory,
    files: &[JobFile],
    volumes: Option<&Volumes>,
    previous: Option<&Plan>,
    settings: &Settings,
) -> Result<Plan, String> {
    let inputs = Inputs {
        config,
        inventory,
        files,
        volumes,
        previous,
        digests: Default::default(),
        sources: Default::default(),
        diagnostics: vec![],
    };
    dispatcher_core::run(&inputs, settings).map_err(|e| diagnostics_text(&e.0))
}

/// Runs per job, as a Prometheus run-count vector would give them.
pub fn runs(pairs: &[(&str, f64)]) -> Volumes {
    Volumes {
        runs: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<BTreeMap<_, _>>(),
        ..Volumes::default()
    }
}

/// Job name -> cluster of a plan, for the jobs that have one.
pub fn assignments(plan: &Plan) -> BTreeMap<String, String> {
    plan.jobs
        .iter()
        .filter_map(|(k, e)| e.cluster.clone().map(|c| (k.clone(), c)))
        .collect()
}
