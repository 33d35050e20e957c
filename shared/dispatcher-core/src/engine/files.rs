//! Per-file facts: the file's cloud and the clusters it may go to, the demand that follows
//! it, and the clusters it ran on before.

use std::collections::BTreeMap;

use super::Run;
use crate::model::JobFile;
use crate::rules::FileFacts;

/// One job file of the run.
pub(super) struct FileState<'a> {
    pub file: &'a JobFile,
    /// What the ladder knows about it.
    pub facts: FileFacts<'a, 'a>,
    /// Its placed jobs: indices into [`Run::jobs`].
    pub jobs: Vec<usize>,
    /// The mapped cloud all its Kubernetes jobs share, when the build farm has it.
    pub cloud: Option<String>,
    /// Eligible pool clusters (bits over the pool).
    pub mask: u128,
    /// The cloud preference could not be met and was dropped.
    pub relaxed: bool,
    /// Demand of the jobs that follow the file's cluster.
    pub movable_demand: f64,
    /// Most common previous cluster of the movable jobs.
    pub previous: Option<String>,
    /// Most common current cluster of the movable jobs (previous plan, else static).
    pub incumbent: Option<String>,
    /// Most common static `cluster:` field of all its jobs (the sanitizer's `mostUsed`).
    pub static_most_used: Option<String>,
}

impl<'a> FileState<'a> {
    /// A file before its jobs are known to the run.
    pub fn new((file, facts): (&'a JobFile, FileFacts<'a, 'a>)) -> Self {
        Self {
            file,
            facts,
            jobs: Vec::new(),
            cloud: None,
            mask: 0,
            relaxed: false,
            movable_demand: 0.0,
            previous: None,
            incumbent: None,
            static_most_used: most_common(file.jobs.iter().filter_map(|j| j.cluster.as_deref())),
        }
    }
}

/// What a file's movable jobs say about where it lives (see [`FileState`]).
struct Home {
    movable_demand: f64,
    previous: Option<String>,
    incumbent: Option<String>,
}

impl Run<'_> {
    /// Gives every file its jobs, its cloud and the clusters it may go to: those of its
    /// cloud, or every pool cluster when it has none or the pool has none of that cloud.
    pub(super) fn describe_files(&mut self) {
        for (ji, j) in self.jobs.iter().enumerate() {
            self.files[j.file].jobs.push(ji);
        }
        let clouds: Vec<Option<String>> = self.files.iter().map(|f| self.file_cloud(f)).collect();
        let all = self.pool.all();
        let mut provider_mask: BTreeMap<&str, u128> = BTreeMap::new();
        for (i, n) in self.pool.names.iter().enumerate() {
            *provider_mask
                .entry(&self.inputs.inventory.clusters[n].provider)
                .or_default() |= 1u128 << i;
        }
        for (f, cloud) in self.files.iter_mut().zip(clouds) {
            f.mask = match &cloud {
                Some(cloud) => {
                    let m = provider_mask.get(cloud.as_str()).copied().unwrap_or(0);
                    f.relaxed = m == 0;
                    if m == 0 { all } else { m }
                }
                None => all,
            };
            f.cloud = cloud;
        }
    }

    /// The one mapped cloud all the file's Kubernetes jobs share, if the build farm has it.
    fn file_cloud(&self, f: &FileState<'_>) -> Option<String> {
        let mut cloud: Option<&str> = None;
        for &ji in &f.jobs {
            let job = self.jobs[ji].job;
            if let Some(c) = job
                .is_kubernetes()
                .then(|| self.rules.mapped_cloud(job))
                .flatten()
            {
                match cloud {
                    None => cloud = Some(c),
                    Some(x) if x != c => return None,
                    Some(_) => {}
                }
            }
        }
        cloud
            .filter(|c| self.rules.farm_cloud.contains_key(*c))
            .map(str::to_owned)
    }

    /// Gives every file the demand that follows it and the clusters it ran on: where its
    /// movable jobs were in the previous plan, and where they are now.
    pub(super) fn find_file_homes(&mut self) {
        let homes: Vec<Home> = self.files.iter().map(|f| self.home(f)).collect();
        for (f, home) in self.files.iter_mut().zip(homes) {
            f.movable_demand = home.movable_demand;
            f.previous = home.previous;
            f.incumbent = home.incumbent;
        }
    }

    fn home(&self, f: &FileState<'_>) -> Home {
        let movable: Vec<usize> = f
            .jobs
            .iter()
            .copied()
            .filter(|&ji| self.jobs[ji].is_movable())
            .collect();
        let movable_demand = movable.iter().map(|&ji| self.jobs[ji].demand).sum();
        // A file lives where its relocatable jobs are; pinned jobs that follow it because
        // their pin is blocked only count when there is nothing else.
        let relocatable: Vec<usize> = movable
            .iter()
            .copied()
            .filter(|&ji| self.jobs[ji].decision().is_some_and(|d| d.relocatable))
            .collect();
        let home = if relocatable.is_empty() {
            &movable
        } else {
            &relocatable
        };
        let previous_of_home = || home.iter().filter_map(|&ji| self.jobs[ji].previous);
        // Prefer a previous cluster the file may still use: fewer forced moves.
        let previous = most_common(previous_of_home().filter(|c| self.may_stay(f, c)))
            .or_else(|| most_common(previous_of_home()));
        let incumbent = if self.inputs.previous.is_some() {
            previous.clone()
        } else {
            most_common(
                home.iter()
                    .filter_map(|&ji| self.jobs[ji].job.cluster.as_deref()),
            )
        };
        Home {
            movable_demand,
            previous,
            incumbent,
        }
    }
}

/// The most frequent non-empty name; ties go to the lexicographically smallest.
pub(super) fn most_common<'a>(it: impl Iterator<Item = &'a str>) -> Option<String> {
    // A file's jobs name a handful of clusters: a short list beats a map.
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for c in it.filter(|c| !c.is_empty()) {
        match counts.iter_mut().find(|(n, _)| *n == c) {
            Some((_, k)) => *k += 1,
            None => counts.push((c, 1)),
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(c, _)| c.to_owned())
}
