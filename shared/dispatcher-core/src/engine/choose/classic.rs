//! The classic strategy: the Go dispatcher's balancing over the files not chosen yet.

use std::collections::BTreeMap;

use super::FileChoice;
use crate::classic::{self, ClassicFile, ClassicOutcome, FarmCluster};
use crate::engine::Run;
use crate::engine::files::{FileState, most_common};
use crate::plan::FileReason;

impl Run<'_> {
    /// Chooses the files not chosen yet.
    pub(super) fn choose_classic(&self, chosen: &mut [Option<FileChoice>]) {
        let open: Vec<usize> = (0..chosen.len())
            .filter(|&fi| chosen[fi].is_none())
            .collect();
        let files: Vec<ClassicFile<'_>> = open
            .iter()
            .map(|&fi| self.classic_file(&self.files[fi]))
            .collect();
        let placed = classic::place(&self.classic_farm(), &files);
        for (k, &fi) in open.iter().enumerate() {
            let (cluster, outcome) = placed[k].clone();
            let reason = match outcome {
                ClassicOutcome::Sticky => FileReason::Sticky,
                ClassicOutcome::LeastLoaded => FileReason::LeastLoaded,
                ClassicOutcome::NoCluster => FileReason::NoEligibleCluster,
            };
            chosen[fi] = Some(FileChoice {
                cluster,
                reason,
                balanced: true,
            });
        }
    }

    /// The build farm as classic sees it: each cluster's share of the total demand is its
    /// share of the unblocked capacity.
    fn classic_farm(&self) -> BTreeMap<String, FarmCluster> {
        let inventory = self.inputs.inventory;
        let cap_sum: f64 = inventory
            .clusters
            .values()
            .filter(|c| !c.blocked)
            .map(|c| f64::from(c.capacity))
            .sum();
        self.rules
            .farm_cloud
            .values()
            .flat_map(|s| s.iter())
            .map(|n| {
                let c = &inventory.clusters[n];
                let cluster = FarmCluster {
                    provider: c.provider.clone(),
                    capacity: c.capacity,
                    cordoned: c.cordoned,
                    share: f64::from(c.capacity) / cap_sum * self.total_demand,
                };
                (n.clone(), cluster)
            })
            .collect()
    }

    /// A file as classic sees it: its size, its cloud, where most of its jobs run now, and
    /// the demand of its fixed jobs.
    fn classic_file<'f>(&'f self, f: &'f FileState<'_>) -> ClassicFile<'f> {
        let incumbent = |ji: usize| {
            if self.inputs.previous.is_some() {
                self.jobs[ji].previous
            } else {
                self.jobs[ji].job.cluster.as_deref()
            }
        };
        ClassicFile {
            path: &f.file.path,
            size: f.file.size,
            preference: f.cloud.as_deref(),
            most_used: most_common(f.jobs.iter().filter_map(|&ji| incumbent(ji))),
            movable_demand: f.movable_demand,
            fixed: f
                .jobs
                .iter()
                .filter_map(|&ji| {
                    let j = &self.jobs[ji];
                    j.fixed_cluster().map(|c| (c, j.demand))
                })
                .collect(),
        }
    }
}
