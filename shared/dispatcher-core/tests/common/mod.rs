//! Builders for small placement worlds.
#![allow(dead_code)]

use dispatcher_core::model::{
    Cluster, Container, DispatcherConfig, Inventory, Job, JobFile, JobKind, Labels, Volumes,
};
use dispatcher_core::{Inputs, Plan, Settings};

pub fn cluster(name: &str, provider: &str, capacity: u32) -> Cluster {
    Cluster::new(name, provider, capacity)
}

pub fn caps(mut c: Cluster, list: &[&str]) -> Cluster {
    c.capabilities = list.iter().map(|s| (*s).to_owned()).collect();
    c
}

pub fn job(name: &str) -> Job {
    Job {
        name: name.to_owned(),
        kind: JobKind::Presubmit,
        agent: "kubernetes".to_owned(),
        cluster: None,
        labels: Labels::new(),
        containers: vec![Container {
            image: "ci-operator:latest".to_owned(),
            cluster_types: vec![],
        }],
    }
}

pub fn label(mut j: Job, k: &str, v: &str) -> Job {
    j.labels.insert(k.to_owned(), v.to_owned());
    j
}

pub fn file(path: &str, jobs: Vec<Job>) -> JobFile {
    JobFile {
        path: path.to_owned(),
        size: 100 * jobs.len() as u64,
        jobs,
    }
}

#[derive(Debug, Clone, Default)]
pub struct World {
    pub config: DispatcherConfig,
    pub inventory: Inventory,
    pub files: Vec<JobFile>,
    pub volumes: Volumes,
}

impl World {
    pub fn new(default: &str, clusters: Vec<Cluster>) -> Self {
        let mut w = World::default();
        w.config.default = default.to_owned();
        for c in clusters {
            w.inventory.clusters.insert(c.name.clone(), c);
        }
        w
    }

    pub fn with_files(mut self, files: Vec<JobFile>) -> Self {
        self.files = files;
        self
    }

    pub fn volume(mut self, job: &str, runs: f64) -> Self {
        self.volumes.runs.insert(job.to_owned(), runs);
        self
    }

    pub fn cluster_mut(&mut self, name: &str) -> &mut Cluster {
        self.inventory
            .clusters
            .get_mut(name)
            .expect("cluster in world")
    }

    pub fn inputs<'a>(&'a self, previous: Option<&'a Plan>) -> Inputs<'a> {
        Inputs {
            config: &self.config,
            inventory: &self.inventory,
            files: &self.files,
            volumes: Some(&self.volumes),
            previous,
            digests: Default::default(),
            sources: Default::default(),
            diagnostics: vec![],
        }
    }

    pub fn plan(&self, settings: &Settings, previous: Option<&Plan>) -> Plan {
        dispatcher_core::run(&self.inputs(previous), settings).expect("plan")
    }
}

pub fn cluster_of<'a>(plan: &'a Plan, job: &str) -> Option<&'a str> {
    plan.jobs.get(job).and_then(|e| e.cluster.as_deref())
}
