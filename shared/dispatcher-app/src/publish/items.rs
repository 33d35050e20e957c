//! Step 3: the job items. Only jobs whose answer changes are written, each carrying the new
//! generation, its previous answer and its history; a deleted job's item stays as a
//! tombstone that keeps its history.

use std::collections::{BTreeMap, BTreeSet};

use dispatcher_core::Plan;

use crate::model::{Change, JobItem};
use crate::store::{Stores, WriteStats};

use super::snapshot::{self, SnapshotError};
use super::{HISTORY_LIMIT, PublishError, PublishOptions};

/// Every job whose answer differs between `base` and `next`, in name order.
pub(super) fn changes_between(
    base: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
    generation: u64,
    opts: &PublishOptions,
) -> Vec<Change> {
    let names: BTreeSet<&String> = base.keys().chain(next.keys()).collect();
    names
        .into_iter()
        .filter_map(|job| {
            let (from, to) = (base.get(job), next.get(job));
            (from != to).then(|| Change {
                job: job.clone(),
                from: from.cloned(),
                to: to.cloned(),
                cause: opts.cause,
                generation,
                at: opts.now,
            })
        })
        .collect()
}

/// The items one generation writes.
pub(super) struct Items<'a> {
    pub plan: &'a Plan,
    pub generation: u64,
    /// The serving answers.
    pub base: &'a BTreeMap<String, String>,
    /// The new answers.
    pub next: &'a BTreeMap<String, String>,
    pub changes: &'a [Change],
    /// The change lists of the claims this one replaced.
    pub inherited: &'a [String],
}

impl Items<'_> {
    /// Writes the changed items and whatever the replaced claims may have written: those
    /// items may carry this generation with their plan's answers.
    pub(super) async fn write(&self, stores: &Stores) -> Result<WriteStats, PublishError> {
        let mut jobs: BTreeSet<String> = self.changes.iter().map(|c| c.job.clone()).collect();
        for key in self.inherited {
            let theirs: Vec<Change> = snapshot::read(stores, key.clone()).await?;
            jobs.extend(theirs.into_iter().map(|c| c.job));
        }
        let mut existing = self.existing(stores, &jobs).await?;
        let by_job: BTreeMap<&str, &Change> =
            self.changes.iter().map(|c| (c.job.as_str(), c)).collect();
        let items: Vec<JobItem> = jobs
            .iter()
            .map(|job| {
                let history = existing.remove(job).map(|i| i.history).unwrap_or_default();
                self.item(job, history, by_job.get(job.as_str()).copied())
            })
            .collect();
        Ok(stores.table.write_jobs(&items).await?)
    }

    /// The items about to be replaced: histories are appended to. Before the first
    /// generation there is nothing to read.
    async fn existing(
        &self,
        stores: &Stores,
        jobs: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, JobItem>, SnapshotError> {
        if self.generation == 1 && self.inherited.is_empty() {
            return Ok(BTreeMap::new());
        }
        let names: Vec<String> = jobs.iter().cloned().collect();
        Ok(stores
            .table
            .jobs(&names)
            .await?
            .into_iter()
            .map(|i| (i.job.clone(), i))
            .collect())
    }

    /// `job`'s new item: its earlier history (without what replaced claims wrote), this
    /// generation's change, at most [`HISTORY_LIMIT`] entries.
    fn item(&self, job: &str, earlier: Vec<Change>, change: Option<&Change>) -> JobItem {
        let mut history: Vec<Change> = earlier
            .into_iter()
            .filter(|c| c.generation < self.generation)
            .chain(change.cloned())
            .collect();
        if history.len() > HISTORY_LIMIT {
            history.drain(..history.len() - HISTORY_LIMIT);
        }
        JobItem {
            job: job.to_owned(),
            cluster: self.next.get(job).cloned(),
            generation: self.generation,
            rule: self
                .plan
                .jobs
                .get(job)
                .map(|e| e.rule.as_str().to_owned())
                .unwrap_or_default(),
            previous: self.base.get(job).cloned(),
            history,
        }
    }
}
