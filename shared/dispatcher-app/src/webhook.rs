//! The webhook's use case, once a delivery is known to come from GitHub: take it once,
//! decide what the push needs, hand the recompute off, and forget the delivery if any of
//! that fails, so that GitHub's redelivery is not mistaken for a duplicate.

use std::time::Duration;

use dispatcher_core::Mode;

use crate::ports::{Handoff, PullRequests, RepoSource, SourceError};
use crate::pull_request::{self, PullRequestEvent};
use crate::push::{self, PushDecision, PushEvent};
use crate::recompute::{RecomputeRequest, Trigger};
use crate::records::Deliveries;
use crate::store::{AssignmentStore, StoreError};

/// What the intake needs.
pub struct Intake<'a> {
    /// `owner/name` of the release repository.
    pub repo: &'a str,
    /// The repository, for the inventory's blob at the pushed commit.
    pub source: &'a dyn RepoSource,
    /// Where deliveries are remembered and the last processed inventory is read.
    pub table: &'a dyn AssignmentStore,
    /// Where recomputes go.
    pub handoff: &'a dyn Handoff,
    /// How long deciding and handing off may take (GitHub gives up after 10 s).
    pub deadline: Duration,
}

/// What became of a push delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// The delivery was taken before: nothing done.
    Duplicate,
    /// Nothing to recompute, and why.
    Ignored(String),
    /// A recompute was handed off.
    HandedOff {
        /// Full or delta.
        mode: Mode,
        /// Why.
        reason: String,
    },
}

/// Why a push delivery was not handled.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The delivery could not be recorded: nothing was done.
    #[error("cannot record the delivery")]
    Record(#[source] StoreError),
    /// Deciding or handing off failed: the delivery is forgotten, GitHub may redeliver.
    #[error("the push could not be handled")]
    Failed(#[source] SourceError),
    /// Deciding and handing off took too long: the delivery is forgotten.
    #[error("deciding and handing off took longer than {0:?}")]
    TimedOut(Duration),
}

impl Intake<'_> {
    /// Handles the push `event`, delivered as `delivery`, at `now`.
    pub async fn push(
        &self,
        delivery: &str,
        event: &PushEvent,
        now: i64,
    ) -> Result<Received, IntakeError> {
        self.once(delivery, &event.after, now, self.handle(delivery, event))
            .await
    }

    /// Handles the `pull_request` `event`, delivered as `delivery`, at `now`: a plan of
    /// its merge is handed off when it changes what the placement reads.
    pub async fn pull_request(
        &self,
        prs: &dyn PullRequests,
        delivery: &str,
        event: &PullRequestEvent,
        now: i64,
    ) -> Result<Received, IntakeError> {
        let head = &event.pull_request.head.sha;
        self.once(
            delivery,
            head,
            now,
            self.handle_pull_request(prs, delivery, event),
        )
        .await
    }

    /// Takes `delivery` once, runs `work` within the deadline, and forgets the delivery
    /// when the work fails, so that GitHub's redelivery is not taken for a duplicate.
    async fn once(
        &self,
        delivery: &str,
        value: &str,
        now: i64,
        work: impl Future<Output = Result<Received, SourceError>>,
    ) -> Result<Received, IntakeError> {
        let deliveries = Deliveries(self.table);
        if !deliveries
            .take(delivery, value, now)
            .await
            .map_err(IntakeError::Record)?
        {
            tracing::info!(delivery = %delivery, "duplicate delivery ignored");
            return Ok(Received::Duplicate);
        }
        let outcome = match tokio::time::timeout(self.deadline, work).await {
            Ok(Ok(received)) => return Ok(received),
            Ok(Err(e)) => IntakeError::Failed(e),
            Err(_) => IntakeError::TimedOut(self.deadline),
        };
        tracing::error!(delivery = %delivery, error = %dispatcher_core::chain(&outcome), "delivery not handled");
        if let Err(f) = deliveries.forget(delivery).await {
            tracing::error!(delivery = %delivery, error = %dispatcher_core::chain(&f), "cannot forget the delivery");
        }
        Err(outcome)
    }

    async fn handle_pull_request(
        &self,
        prs: &dyn PullRequests,
        delivery: &str,
        event: &PullRequestEvent,
    ) -> Result<Received, SourceError> {
        if !event.repository.full_name.eq_ignore_ascii_case(self.repo) {
            return Ok(Received::Ignored(format!(
                "repository {} is not {}",
                event.repository.full_name, self.repo
            )));
        }
        // Only a merge into the default branch reaches the dispatcher (pushes elsewhere
        // are ignored): a pull request into another branch would plan nothing real.
        if event.pull_request.base.branch != event.repository.default_branch {
            return Ok(Received::Ignored(format!(
                "the pull request merges into {}, not the default branch",
                event.pull_request.base.branch
            )));
        }
        if !pull_request::PLANNED_ACTIONS.contains(&event.action.as_str())
            || event.pull_request.draft
        {
            return Ok(Received::Ignored(format!(
                "action {} (draft: {})",
                event.action, event.pull_request.draft
            )));
        }
        let head = &event.pull_request.head.sha;
        let files = prs.files(event.number, pull_request::MAX_FILES).await?;
        let Some(pr) = pull_request::decide(event.number, head, &files) else {
            return Ok(Received::Ignored(
                "the pull request changes no file the placement reads".to_owned(),
            ));
        };
        let mode = if pr.full { Mode::Full } else { Mode::Delta };
        let request = RecomputeRequest {
            trigger: Trigger::PullRequest,
            mode,
            delivery_id: Some(delivery.to_owned()),
            after: Some(head.clone()),
            paths: Vec::new(),
            allow_deletions: false,
            pull_request: Some(pr),
        };
        self.handoff.submit(&request).await?;
        tracing::info!(delivery = %delivery, pr = event.number, head = %head, mode = ?mode, "pull request plan handed off");
        Ok(Received::HandedOff {
            mode,
            reason: format!("plan of pull request #{}", event.number),
        })
    }

    async fn handle(&self, delivery: &str, event: &PushEvent) -> Result<Received, SourceError> {
        match push::decide(event, self.repo, self.source, self.table).await? {
            PushDecision::Ignore(reason) => Ok(Received::Ignored(reason)),
            PushDecision::Recompute {
                mode,
                reason,
                paths,
            } => {
                let request = RecomputeRequest {
                    trigger: Trigger::Push,
                    mode,
                    delivery_id: Some(delivery.to_owned()),
                    after: Some(event.after.clone()),
                    paths,
                    allow_deletions: false,
                    pull_request: None,
                };
                self.handoff.submit(&request).await?;
                tracing::info!(delivery = %delivery, after = %event.after, mode = ?mode, reason = %reason, "recompute handed off");
                Ok(Received::HandedOff { mode, reason })
            }
        }
    }
}
