//! What the read-only pages show: the serving generation, a job's explanation and history,
//! the last generations, the overrides. They read the lookup's in-memory generation and,
//! for heavier data, its plan (loaded once per generation), so a page never slows `POST /`.

use std::sync::Arc;

use dispatcher_core::Plan;
use dispatcher_core::overrides::OverrideSpec;
use dispatcher_core::plan::{FileEntry, JobEntry, Unschedulable};

use crate::control::{Override, book};
use crate::lookup::{LookupError, LookupService};
use crate::model::{Change, GenerationRecord, Overridden};
use crate::records::{BackupPr, Markers};
use crate::{StoreError, Stores, publish};

/// Why a page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The lookup could not read the serving generation.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The override book failed.
    #[error(transparent)]
    Book(#[from] book::BookError),
}

/// The serving generation, as its page shows it.
#[derive(Debug, Clone)]
pub struct Overview {
    /// Its plan.
    pub plan: Arc<Plan>,
    /// Its record (what it moved, per cluster pair).
    pub record: GenerationRecord,
    /// Where the backup PR stands.
    pub backup_pr: BackupPr,
}

/// One job, as its page shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// The generation answering.
    pub generation: u64,
    /// The cluster the lookup answers for it now: the plan's, or its baseline once the
    /// override that moved it ended.
    pub cluster: Option<String>,
    /// Its plan entry (cluster, rule, detail, demand, file).
    pub entry: JobEntry,
    /// Its file's decision (candidates with scores and reject reasons).
    pub file: Option<FileEntry>,
    /// Why it has no cluster, when it has none.
    pub unschedulable: Option<Unschedulable>,
    /// Its moves, newest first.
    pub history: Vec<Change>,
    /// The override in force that moved it, if any: its baseline cluster and end.
    pub overridden: Option<Overridden>,
    /// When the override that moved it ended, if it ended before a new generation.
    pub override_ended: Option<i64>,
    /// The overrides in force on the cluster it runs on, or would run on without them.
    pub affecting: Vec<OverrideSpec>,
}

/// A generation, as its own page shows it.
#[derive(Debug, Clone)]
pub struct GenerationView {
    /// Its record: when and why, shares, what it moved.
    pub record: GenerationRecord,
    /// Whether it is the one serving.
    pub serving: bool,
}

/// The pages' reads.
#[derive(Clone)]
pub struct Pages {
    /// The stores.
    pub stores: Stores,
    /// The lookup serving the same generation.
    pub service: Arc<LookupService>,
}

impl Pages {
    /// The serving generation; `None` before the first.
    pub async fn overview(&self) -> Result<Option<Overview>, PageError> {
        // The record of the generation the lookup serves, not of the store's pointer: during
        // a refresh the pointer may already name the next one, and the page would mix two.
        let Some((generation, plan)) = self.service.plan().await? else {
            return Ok(None);
        };
        let Some(record) = self.stores.table.generation(generation).await? else {
            return Ok(None);
        };
        let backup_pr = Markers(self.stores.table.as_ref()).backup_pr().await?;
        Ok(Some(Overview {
            plan,
            record,
            backup_pr,
        }))
    }

    /// Jobs whose name contains `text`, at most `limit`.
    pub async fn search(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, PageError> {
        Ok(self.service.search(text, limit).await?)
    }

    /// One job of the serving generation at `now`; `None` when it has none of that name.
    pub async fn job(&self, name: &str, now: i64) -> Result<Option<JobView>, PageError> {
        let Some((generation, plan)) = self.service.plan().await? else {
            return Ok(None);
        };
        let Some(entry) = plan.jobs.get(name).cloned() else {
            return Ok(None);
        };
        let mut history = publish::history(&self.stores, name).await?;
        history.reverse();
        // The lookup answers a moved job's baseline once its override ended, whether or not
        // a generation followed: so does its page.
        let (cluster, overridden, override_ended) = match self.service.overridden(name).await? {
            Some(o) if o.until <= now => (o.baseline, None, Some(o.until)),
            o => (entry.cluster.clone(), o, None),
        };
        let baseline = overridden.as_ref().and_then(|o| o.baseline.as_deref());
        let affecting = self
            .service
            .overrides_in_force(now)
            .await?
            .into_iter()
            .filter(|o| {
                cluster.as_deref() == Some(o.cluster.as_str())
                    || baseline == Some(o.cluster.as_str())
            })
            .collect();
        Ok(Some(JobView {
            name: name.to_owned(),
            generation,
            file: plan.files.get(&entry.file).cloned(),
            unschedulable: plan.unschedulable.iter().find(|u| u.job == name).cloned(),
            cluster,
            entry,
            history,
            overridden,
            override_ended,
            affecting,
        }))
    }

    /// Generation `n`; `None` when no generation of that number was published (yet).
    pub async fn generation(&self, n: u64) -> Result<Option<GenerationView>, PageError> {
        let current = self.serving_generation().await?;
        if n == 0 || n > current {
            return Ok(None);
        }
        Ok(self
            .stores
            .table
            .generation(n)
            .await?
            .map(|record| GenerationView {
                record,
                serving: n == current,
            }))
    }

    /// The last `n` generations, newest first.
    pub async fn history(&self, n: u64) -> Result<Vec<GenerationRecord>, PageError> {
        let current = self.serving_generation().await?;
        let mut out = Vec::new();
        for g in (current.saturating_sub(n.saturating_sub(1)).max(1)..=current).rev() {
            if let Some(r) = self.stores.table.generation(g).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The generation the lookup serves (0 before the first), from memory.
    async fn serving_generation(&self) -> Result<u64, PageError> {
        Ok(self.service.current().await?.map_or(0, |s| s.generation))
    }

    /// The overrides, newest first.
    pub async fn overrides(&self) -> Result<Vec<Override>, PageError> {
        let mut all = book::read(self.stores.table.as_ref()).await?.overrides;
        all.reverse();
        Ok(all)
    }
}
