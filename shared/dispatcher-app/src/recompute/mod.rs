//! A recompute: read the release at a commit and the volumes, run the engine against the
//! current generation, publish, then bring the backup PR up to date.
//!
//! Every failure leaves the last good generation serving; the markers that record what was
//! processed ("last inventory", "fallback pending") advance only after success (F3, F11,
//! F15).

use std::sync::Arc;

use crate::publish::{self, Generation, PublishError, PublishOptions, Published, Release};
use crate::{Cause, Stores};
use dispatcher_core::model::Volumes;
use dispatcher_core::overrides::{self, OverridePlanError, OverrideSpec};
use dispatcher_core::{Mode, Plan, Settings};
use dispatcher_formats::{CLUSTERS_PATH, Loaded, assemble};
use serde::{Deserialize, Serialize};

use crate::ports::{
    Demand, DemandSource, FallbackPublisher, FallbackReport, Note, Notifier, RepoSource,
    SourceError,
};
use crate::records::Markers;

/// What started a recompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The weekly schedule.
    Cron,
    /// A push to the release repository (the webhook's hand-off).
    Push,
    /// An operator's invoke or `POST /recompute`.
    Manual,
    /// A pull request on the release repository: a plan of what its merge would do,
    /// never published.
    PullRequest,
}

/// The hand-off message (wire-contracts.md §5): small, versioned by its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecomputeRequest {
    /// What started it.
    pub trigger: Trigger,
    /// Full, or delta (new jobs only).
    pub mode: Mode,
    /// The GitHub delivery that asked for it, for the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The commit the push brought. A recompute reads the default branch's head, which is
    /// this commit or a later one: hand-offs may arrive out of order or late, and the head
    /// is what the next lookups must reflect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The watched paths the push touched, for the logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// An operator's explicit leave to delete more than [`publish::MAX_DELETED`] of the
    /// serving generation's jobs (a manual invoke with `"allowDeletions": true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_deletions: bool,
    /// The pull request to plan (trigger `pullrequest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<crate::pull_request::PullRequestRef>,
}

impl RecomputeRequest {
    /// The weekly full recompute.
    pub fn weekly() -> Self {
        Self {
            trigger: Trigger::Cron,
            mode: Mode::Full,
            delivery_id: None,
            after: None,
            paths: Vec::new(),
            allow_deletions: false,
            pull_request: None,
        }
    }

    fn cause(&self) -> Cause {
        match self.trigger {
            Trigger::Cron => Cause::Weekly,
            Trigger::Push => Cause::Push,
            Trigger::Manual | Trigger::PullRequest => Cause::Manual,
        }
    }
}

/// What the recompute function was invoked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A recompute.
    Recompute(RecomputeRequest),
    /// `{"action": "check"}` (a schedule, every 30 minutes): report how long ago a recompute last
    /// succeeded, for the "no successful recompute for 8 days" alarm, which a plain metric
    /// alarm cannot express (CloudWatch evaluates at most 7 days).
    FreshnessCheck,
}

/// Reads any JSON a recompute can be invoked with: an EventBridge schedule envelope (or a
/// bare `{}`) is the weekly full run; `{"action": "check"}` the freshness check; otherwise a
/// [`RecomputeRequest`].
pub fn parse_invocation(input: &serde_json::Value) -> Result<Invocation, InvocationError> {
    let scheduled = input.get("source").and_then(|v| v.as_str()) == Some("aws.events")
        && input.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event");
    if scheduled || input.as_object().is_some_and(serde_json::Map::is_empty) || input.is_null() {
        return Ok(Invocation::Recompute(RecomputeRequest::weekly()));
    }
    match input.get("action").and_then(|v| v.as_str()) {
        Some("check") => return Ok(Invocation::FreshnessCheck),
        Some(other) => return Err(InvocationError::UnknownAction(other.to_owned())),
        None => {}
    }
    serde_json::from_value(input.clone())
        .map(Invocation::Recompute)
        .map_err(InvocationError::NotARequest)
}

/// Why the recompute function cannot tell what it was invoked for.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// `{"action": ...}` with another action than `check`.
    #[error("unknown action {0:?} (expected \"check\")")]
    UnknownAction(String),
    /// Neither a schedule, nor an action, nor a recompute request.
    #[error("not a recompute request")]
    NotARequest(#[source] serde_json::Error),
}

/// Why a recompute failed. Every failure leaves the last good generation serving.
#[derive(Debug, thiserror::Error)]
pub enum RecomputeError {
    /// GitHub, Prometheus or the release failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The release's inputs are unusable: only a new push can fix them.
    #[error("the inputs are unusable: {}", join(&.0.0))]
    Inputs(dispatcher_core::FatalInputs),
    /// The serving generation's snapshot cannot be read.
    #[error(transparent)]
    Snapshot(#[from] publish::SnapshotError),
    /// An active override does not fit the new release (its cluster is gone or blocked):
    /// the generation with the override keeps serving until it ends or is cancelled.
    #[error("override {id} cannot be applied to the new release")]
    Override {
        /// The override.
        id: String,
        /// Why.
        #[source]
        source: OverridePlanError,
    },
    /// The plan was not published.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The table failed.
    #[error("the store")]
    Store(#[from] crate::StoreError),
}

fn join(diagnostics: &[dispatcher_core::Diagnostic]) -> String {
    let all: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    all.join("; ")
}

impl RecomputeError {
    /// Where it failed, for logs and alarms: the service, or `inputs`, `snapshot`,
    /// `publish`, `store`.
    pub fn stage(&self) -> &'static str {
        match self {
            RecomputeError::Source(e) => e.service(),
            RecomputeError::Inputs(_) => "inputs",
            RecomputeError::Snapshot(_) => "snapshot",
            RecomputeError::Override { .. } => "override",
            RecomputeError::Publish(_) => "publish",
            RecomputeError::Store(_) => "store",
        }
    }

    /// Whether running the recompute again may succeed. A publish lost to another
    /// publisher is: the next run plans against the generation that won.
    pub fn is_retryable(&self) -> bool {
        match self {
            RecomputeError::Source(e) => e.is_retryable(),
            RecomputeError::Inputs(_) => false,
            RecomputeError::Snapshot(e) => e.is_retryable(),
            RecomputeError::Override { .. } => false,
            RecomputeError::Publish(e) => {
                e.is_retryable() || matches!(e, PublishError::Lost { .. })
            }
            RecomputeError::Store(e) => e.is_retryable(),
        }
    }
}

/// What happened to the backup PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackStatus {
    /// No PR publisher is configured (local mode).
    Disabled,
    /// The static fields already match the plan.
    UpToDate,
    /// The PR was opened or updated.
    Published(FallbackReport),
    /// Left pending; the next recompute retries it.
    Failed(String),
}

/// What a recompute did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The commit the release was read at.
    pub commit: String,
    /// The mode it ran in (a delta without a generation runs full).
    pub mode: Mode,
    /// The generation published (or already serving).
    pub published: Published,
    /// The demand the plan moved.
    pub moved_demand: f64,
    /// What became of the backup PR.
    pub fallback: FallbackStatus,
}

/// Everything a recompute needs, built once.
#[derive(Clone)]
pub struct Recomputer {
    /// Where generations are published.
    pub stores: Stores,
    /// The release repository.
    pub repo: Arc<dyn RepoSource>,
    /// Where job volumes come from.
    pub demand: Arc<dyn DemandSource>,
    /// The backup PR's publisher (`None`: no PR, as in local mode).
    pub fallback: Option<Arc<dyn FallbackPublisher>>,
    /// The engine's settings.
    pub settings: Settings,
    /// The share of the serving generation's jobs a plan may delete ([`publish::MAX_DELETED`]
    /// by default); a request's `allowDeletions` lifts it for that run.
    pub max_deleted: f64,
    /// Where publishes and failures are announced.
    pub notifier: Option<Arc<dyn Notifier>>,
    /// The release repository's pull requests, for their plans.
    pub pull_requests: Option<Arc<dyn crate::ports::PullRequests>>,
}

impl Recomputer {
    /// Runs one recompute. `attempt` identifies the request across retries of it (the
    /// Lambda request id, which Lambda keeps when it retries an asynchronous invocation):
    /// a retry resumes the claim its earlier attempt left, any other run waits for it.
    pub async fn run(
        &self,
        request: &RecomputeRequest,
        attempt: &str,
        now: i64,
    ) -> Result<Outcome, RecomputeError> {
        let outcome = self.run_once(request, attempt, now).await;
        let note = match &outcome {
            // A generation that changes no answer is no news (issue 14 stops publishing it).
            Ok(o) if o.published.unchanged || o.published.changed == 0 => None,
            Ok(o) => Some(Note::Published {
                generation: o.published.generation,
                cause: request.cause(),
                changed: o.published.changed,
                moved_demand: o.moved_demand,
            }),
            // A publish lost to another publisher is no failure an operator acts on.
            Err(RecomputeError::Publish(PublishError::Lost { .. })) => None,
            Err(e) => Some(Note::RecomputeFailed {
                stage: e.stage().to_owned(),
                error: dispatcher_core::chain(e),
            }),
        };
        if let (Some(n), Some(note)) = (&self.notifier, note)
            && let Err(e) = n.notify(&note).await
        {
            tracing::warn!(error = %dispatcher_core::chain(&e), "a notification was not sent");
        }
        outcome
    }

    async fn run_once(
        &self,
        request: &RecomputeRequest,
        attempt: &str,
        now: i64,
    ) -> Result<Outcome, RecomputeError> {
        let commit = self.repo.head().await?;
        if let Some(after) = request.after.as_deref().filter(|a| *a != commit) {
            tracing::info!(push = %after, head = %commit, "the branch moved on since the push: reading its head");
        }
        let serving = self.serving().await?;
        let base = serving.as_ref().map_or(0, |s| s.generation);
        let applied: Vec<OverrideSpec> = serving
            .as_ref()
            .map(|s| s.overrides.clone())
            .unwrap_or_default();
        // Delta needs something to add to; without a generation, everything is placed (F10).
        let mode = if serving.is_none() {
            Mode::Full
        } else {
            request.mode
        };
        let loaded = self.inputs(&commit, serving, mode, now).await?;
        let settings = Settings {
            mode,
            ..self.settings.clone()
        };
        let plan =
            dispatcher_core::run(&loaded.inputs(), &settings).map_err(RecomputeError::Inputs)?;
        let stored = loaded.stored();
        // The overrides serving now stay applied until they end (`now` is the edge's clock),
        // unless the release now blocks, drops or changes what one changes: the release
        // says more, and that override ends with this generation.
        let (active, superseded) = overrides::in_force(&applied, &stored.inventory, now);
        let answering = overrides::plan(&stored, &plan, &settings, &active).map_err(|source| {
            RecomputeError::Override {
                id: active
                    .iter()
                    .map(|o| o.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            }
        })?;
        let next = Generation {
            plan: &answering,
            baseline: &plan,
            overrides: &active,
            release: Release::New(&stored),
        };
        // A plan that answers as the serving generation does publishes nothing (the
        // publish step decides it, on the table it loads anyway); the marker records when
        // the serving generation was last verified.
        let published = self.publish(next, request, attempt, base, now).await?;
        if published.unchanged {
            tracing::info!(
                generation = published.generation,
                "the plan answers as the serving generation does: nothing published"
            );
            Markers(self.stores.table.as_ref())
                .verified(published.generation, now)
                .await?;
        }
        self.end_superseded(&superseded, &stored.inventory, published.generation, now)
            .await;

        // What was processed advances only now (F3).
        let blob = self.repo.blob_sha(&commit, CLUSTERS_PATH).await?;
        Markers(self.stores.table.as_ref())
            .processed(blob.as_deref(), &plan.inputs.inventory, now)
            .await?;

        let fallback = self
            .fallback(&plan, &loaded, &commit, published.generation)
            .await;
        tracing::info!(
            generation = published.generation,
            commit = %commit,
            mode = ?mode,
            changed = published.changed,
            fallback = ?fallback,
            "recompute done"
        );
        Ok(Outcome {
            commit,
            mode,
            moved_demand: answering.summary.moved_demand,
            published,
            fallback,
        })
    }

    /// Marks overrides the new release superseded as revoked, saying why; a failure is
    /// logged (the generation without them serves already).
    async fn end_superseded(
        &self,
        superseded: &[OverrideSpec],
        inventory: &dispatcher_core::model::Inventory,
        generation: u64,
        now: i64,
    ) {
        if superseded.is_empty() {
            return;
        }
        let ended = crate::control::book::update(self.stores.table.as_ref(), |book| {
            for spec in superseded {
                let why = spec
                    .check(inventory)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                if let Some(o) = book.get_mut(&spec.id).filter(|o| !o.state.is_final()) {
                    let message = format!("the release supersedes it: {why}");
                    o.enter(
                        crate::control::State::Revoked,
                        "recompute",
                        now,
                        Some(generation),
                        message,
                    );
                }
            }
            Ok::<_, std::convert::Infallible>(())
        })
        .await;
        if let Err(e) = ended {
            tracing::error!(error = %dispatcher_core::chain(&e), "superseded overrides are still marked active in the book");
        }
        for spec in superseded {
            tracing::warn!(id = %spec.id, cluster = %spec.cluster, generation, "an override ended: the new release supersedes it");
        }
    }

    /// The generation serving now, with its baseline plan (without overrides: what the
    /// next plan follows); `None` before the first.
    pub(super) async fn serving(&self) -> Result<Option<Serving>, RecomputeError> {
        let Some(pointer) = self.stores.serving().await? else {
            return Ok(None);
        };
        let plan = publish::load_baseline(&self.stores, &pointer).await?;
        let digest = match &pointer.applied.baseline {
            Some(_) => publish::plan_digest(&plan.to_json()),
            None => pointer.plan_digest.clone(),
        };
        Ok(Some(Serving {
            generation: pointer.generation,
            digest,
            plan,
            overrides: pointer.applied.overrides,
        }))
    }

    /// The release at `commit` and the demand, following the serving generation: the one
    /// input builder `dispatcher plan` uses too ([`dispatcher_formats::load`]).
    async fn inputs(
        &self,
        commit: &str,
        serving: Option<Serving>,
        mode: Mode,
        now: i64,
    ) -> Result<Loaded, RecomputeError> {
        let loaded = assemble(self.repo.release(commit).await?, None, commit);
        let demand = match (self.demand.demand(now).await, &serving) {
            (Ok(d), _) => d,
            // A delta run only places new jobs: the demands of the current generation serve.
            (Err(e), Some(s)) if mode == Mode::Delta => {
                tracing::warn!(error = %dispatcher_core::chain(&e), "volumes unavailable; the delta run uses the current generation's demands");
                demand_of(&s.plan)
            }
            (Err(e), _) => return Err(e.into()),
        };
        let loaded = loaded.with_demand(demand);
        Ok(match serving {
            Some(s) => loaded.following(s.plan, s.digest),
            None => loaded,
        })
    }

    /// Publishes `plan` on top of generation `base`, the one it was computed against: a
    /// concurrent run that published first makes this one lose instead of undoing its
    /// moves.
    async fn publish(
        &self,
        next: Generation<'_>,
        request: &RecomputeRequest,
        attempt: &str,
        base: u64,
        now: i64,
    ) -> Result<Published, RecomputeError> {
        let mut options = PublishOptions::new(request.cause(), now)
            .owned_by(attempt)
            .expecting(base);
        options.unless_same_answers = true;
        options.max_deleted = if request.allow_deletions {
            1.0
        } else {
            self.max_deleted
        };
        Ok(publish::publish_generation(&self.stores, next, &options).await?)
    }

    /// Plans pull request `pr` (what its merge would do) and posts the result on it; never
    /// publishes.
    pub async fn plan_pull_request(
        &self,
        pr: &crate::pull_request::PullRequestRef,
        max_file_bytes: usize,
        now: i64,
    ) -> Result<crate::pull_request::PrOutcome, crate::pull_request::PrPlanError> {
        let Some(prs) = &self.pull_requests else {
            return Err(
                SourceError::permanent("github", "no pull request client is configured").into(),
            );
        };
        let planner = crate::pull_request::PrPlanner {
            stores: &self.stores,
            repo: self.repo.as_ref(),
            prs: prs.as_ref(),
            settings: &self.settings,
            max_file_bytes,
        };
        planner.run(pr, now).await
    }

    /// Seconds since a recompute last succeeded; `None` before the first success.
    pub async fn since_last_success(&self, now: i64) -> Result<Option<i64>, RecomputeError> {
        let at = Markers(self.stores.table.as_ref()).last_success().await?;
        Ok(at.map(|at| (now - at).max(0)))
    }
}

/// The generation serving when a recompute starts.
pub(super) struct Serving {
    pub(super) generation: u64,
    /// The digest of its baseline plan.
    digest: String,
    /// Its baseline plan.
    pub(super) plan: Plan,
    /// The overrides it applies.
    overrides: Vec<OverrideSpec>,
}

/// The demands recorded in a plan, as measured volumes: a delta run's stand-in for
/// Prometheus.
pub(crate) fn demand_of(plan: &Plan) -> Demand {
    Demand {
        volumes: Volumes {
            runs: plan
                .jobs
                .iter()
                .map(|(k, e)| (k.clone(), e.demand))
                .collect(),
            ..Volumes::default()
        },
        runs_digest: "previous-generation".to_owned(),
        durations_digest: None,
        cpu_digest: None,
        memory_digest: None,
        warnings: Vec::new(),
    }
}

mod backup;

pub use backup::{NoText, fallback_change};

#[cfg(test)]
mod tests;
