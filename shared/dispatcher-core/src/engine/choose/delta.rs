//! Delta mode: existing files keep their cluster; a new file follows the config as written
//! (what the sanitizer put in its static fields) when that cluster is eligible, else the
//! best score.

use super::{FileChoice, balance_input};
use crate::balance::{self, Start};
use crate::engine::Run;
use crate::engine::files::most_common;
use crate::plan::FileReason;

impl Run<'_> {
    /// Chooses the files not chosen yet; `load` is the fixed load of each pool cluster.
    pub(super) fn choose_delta(&self, chosen: &mut [Option<FileChoice>], mut load: Vec<f64>) {
        for (f, choice) in self.files.iter().zip(chosen.iter_mut()) {
            if choice.is_some() {
                continue;
            }
            // A new job of an existing file goes where its siblings are: the file's
            // cluster in the previous plan, not the `buildFarm` listing, which is stale
            // until the backup PR merges.
            let kept = self
                .previous_file_cluster(f)
                .filter(|p| self.pool.admits(f.mask, p))
                .or_else(|| {
                    f.previous
                        .as_deref()
                        .filter(|p| self.pool.admits(f.mask, p))
                });
            if let Some(p) = kept {
                *choice = Some(FileChoice::unbalanced(
                    Some(p.to_owned()),
                    FileReason::DeltaKept,
                ));
                if let Some(i) = self.pool.index(p) {
                    load[i] += f.movable_demand;
                }
            }
        }
        for (f, choice) in self.files.iter().zip(chosen.iter_mut()) {
            if choice.is_some() {
                continue;
            }
            let decided = most_common(f.jobs.iter().filter_map(|&ji| {
                let j = &self.jobs[ji];
                j.is_movable()
                    .then(|| j.decision().and_then(|d| d.cluster.as_deref()))
                    .flatten()
            }));
            let (cluster, reason) = match decided.filter(|d| self.pool.admits(f.mask, d)) {
                Some(d) => (self.pool.index(&d).unwrap_or(0), FileReason::Resolved),
                None => {
                    let input = balance_input(f, Start::Free, 0.0);
                    (
                        balance::best_cluster(&self.pool, &load, &input, None),
                        FileReason::BestScore,
                    )
                }
            };
            load[cluster] += f.movable_demand;
            *choice = Some(FileChoice::unbalanced(
                Some(self.pool.names[cluster].clone()),
                reason,
            ));
        }
    }
}
