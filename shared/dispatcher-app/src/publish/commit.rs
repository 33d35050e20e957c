//! Step 4: the pointer moves and the generation's record is written, in one conditional
//! transaction on the claim.

use dispatcher_core::Plan;

use crate::model::{Applied, Change, ClusterShare, GenerationRecord, Pointer, moved_by_pair};
use crate::store::{StoreError, Stores};

use super::{PublishError, PublishOptions};

/// The generation being committed.
pub(super) struct Commit<'a> {
    pub plan: &'a Plan,
    pub base: u64,
    pub snapshot: &'a str,
    pub digest: &'a str,
    pub changes: &'a [Change],
    pub applied: &'a Applied,
}

impl Commit<'_> {
    fn generation(&self) -> u64 {
        self.base + 1
    }

    /// What the store keeps of the generation.
    pub(super) fn record(&self, opts: &PublishOptions) -> GenerationRecord {
        let summary = &self.plan.summary;
        GenerationRecord {
            generation: self.generation(),
            snapshot: self.snapshot.to_owned(),
            plan_digest: self.digest.to_owned(),
            cause: opts.cause,
            published_at: opts.now,
            base: (self.base > 0).then_some(self.base),
            inputs: self.plan.inputs.clone(),
            applied: self.applied.clone(),
            jobs: summary.jobs,
            placed_jobs: summary.placed_jobs,
            unschedulable_jobs: summary.unschedulable_jobs,
            changed: self.changes.len(),
            deleted: self.changes.iter().filter(|c| c.to.is_none()).count(),
            clusters: self
                .plan
                .clusters
                .iter()
                .map(|(n, c)| {
                    let share = ClusterShare {
                        demand: c.demand,
                        share: c.share,
                        target_share: c.target_share,
                    };
                    (n.clone(), share)
                })
                .collect(),
            moved: moved_by_pair(self.plan, self.changes),
        }
    }

    /// Moves the pointer, unless the claim was taken over meanwhile.
    pub(super) async fn commit(
        &self,
        stores: &Stores,
        record: &GenerationRecord,
        opts: &PublishOptions,
    ) -> Result<(), PublishError> {
        let next = Pointer {
            generation: self.generation(),
            snapshot: self.snapshot.to_owned(),
            plan_digest: self.digest.to_owned(),
            published_at: opts.now,
            cause: opts.cause,
            inputs: self.plan.inputs.clone(),
            applied: self.applied.clone(),
            pending: None,
        };
        match stores
            .table
            .commit(self.base, &opts.owner, &next, record)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(reason)) => Err(PublishError::Lost {
                generation: self.generation(),
                reason,
            }),
            Err(e) => Err(e.into()),
        }
    }
}
