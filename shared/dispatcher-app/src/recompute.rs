//! A recompute: read the release at a commit and the volumes, run the engine against the
//! current generation, publish, then bring the backup PR up to date.
//!
//! Every failure leaves the last good generation serving; the markers that record what was
//! processed ("last inventory", "fallback pending") advance only after success (F3, F11,
//! F15).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::publish::{self, PublishError, PublishOptions, Published};
use crate::{Cause, Stores};
use dispatcher_core::model::Volumes;
use dispatcher_core::{Mode, Plan, Settings};
use dispatcher_formats::writeback::{config_for_plan, job_file_for_plan, needs_rewrite};
use dispatcher_formats::{CLUSTERS_PATH, assemble};
use serde::{Deserialize, Serialize};

use crate::ports::{
    DemandSource, FallbackChange, FallbackPublisher, FallbackReport, RepoSource, SourceError,
};
use crate::push::INVENTORY_BLOB;

/// The marker holding the generation whose backup PR is not done yet.
pub const FALLBACK_PENDING: &str = "fallback-pending";
/// The marker holding the inventory digest of the last published generation.
pub const INVENTORY_DIGEST: &str = "inventory-digest";
/// The marker holding when (Unix seconds) a recompute last succeeded, published or not: a
/// run whose plan is already current adds no generation, yet proves the pipeline works.
pub const LAST_SUCCESS: &str = "last-success";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The weekly schedule.
    Cron,
    Push,
    Manual,
}

/// The hand-off message (wire-contracts.md §5): small, versioned by its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecomputeRequest {
    pub trigger: Trigger,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The commit the push brought. A recompute reads the default branch's head, which is
    /// this commit or a later one: hand-offs may arrive out of order or late, and the head
    /// is what the next lookups must reflect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// An operator's explicit leave to delete more than [`publish::MAX_DELETED`] of the
    /// serving generation's jobs (a manual invoke with `"allowDeletions": true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_deletions: bool,
}

impl RecomputeRequest {
    pub fn weekly() -> Self {
        Self {
            trigger: Trigger::Cron,
            mode: Mode::Full,
            delivery_id: None,
            after: None,
            paths: Vec::new(),
            allow_deletions: false,
        }
    }

    fn cause(&self) -> Cause {
        match self.trigger {
            Trigger::Cron => Cause::Weekly,
            Trigger::Push => Cause::Push,
            Trigger::Manual => Cause::Manual,
        }
    }
}

/// What the recompute function was invoked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Recompute(RecomputeRequest),
    /// `{"action": "check"}` (a schedule, every 30 minutes): report how long ago a recompute last
    /// succeeded, for the "no successful recompute for 8 days" alarm, which a plain metric
    /// alarm cannot express (CloudWatch evaluates at most 7 days).
    FreshnessCheck,
}

/// Reads any JSON a recompute can be invoked with: an EventBridge schedule envelope (or a
/// bare `{}`) is the weekly full run; `{"action": "check"}` the freshness check; otherwise a
/// [`RecomputeRequest`].
pub fn parse_invocation(input: &serde_json::Value) -> Result<Invocation, String> {
    let scheduled = input.get("source").and_then(|v| v.as_str()) == Some("aws.events")
        && input.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event");
    if scheduled || input.as_object().is_some_and(serde_json::Map::is_empty) || input.is_null() {
        return Ok(Invocation::Recompute(RecomputeRequest::weekly()));
    }
    match input.get("action").and_then(|v| v.as_str()) {
        Some("check") => return Ok(Invocation::FreshnessCheck),
        Some(other) => return Err(format!("unknown action {other:?} (expected \"check\")")),
        None => {}
    }
    serde_json::from_value(input.clone())
        .map(Invocation::Recompute)
        .map_err(|e| format!("not a recompute request: {e}"))
}

/// Why a recompute failed, and whether running it again may help.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct RecomputeError {
    pub stage: &'static str,
    pub retryable: bool,
    pub message: String,
}

impl From<SourceError> for RecomputeError {
    fn from(e: SourceError) -> Self {
        Self {
            stage: e.service,
            retryable: e.retryable,
            message: e.message,
        }
    }
}

impl From<PublishError> for RecomputeError {
    fn from(e: PublishError) -> Self {
        let retryable = e.is_retryable() || matches!(e, PublishError::Lost { .. });
        Self {
            stage: "publish",
            retryable,
            message: e.to_string(),
        }
    }
}

fn store_error(e: crate::StoreError) -> RecomputeError {
    RecomputeError {
        stage: "store",
        retryable: e.is_retryable(),
        message: e.to_string(),
    }
}

/// What happened to the backup PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackStatus {
    /// No PR publisher is configured (local mode).
    Disabled,
    /// The static fields already match the plan.
    UpToDate,
    Published(FallbackReport),
    /// Left pending; the next recompute retries it.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub commit: String,
    pub mode: Mode,
    pub published: Published,
    pub fallback: FallbackStatus,
}

/// Everything a recompute needs, built once.
#[derive(Clone)]
pub struct Recomputer {
    pub stores: Stores,
    pub repo: Arc<dyn RepoSource>,
    pub demand: Arc<dyn DemandSource>,
    pub fallback: Option<Arc<dyn FallbackPublisher>>,
    pub settings: Settings,
    /// The share of the serving generation's jobs a plan may delete ([`publish::MAX_DELETED`]
    /// by default); a request's `allowDeletions` lifts it for that run.
    pub max_deleted: f64,
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
        let commit = self.repo.head().await?;
        if let Some(after) = request.after.as_deref().filter(|a| *a != commit) {
            tracing::info!(push = %after, head = %commit, "the branch moved on since the push: reading its head");
        }
        let release = self.repo.release(&commit).await?;
        let mut loaded = assemble(release, None, &commit);

        let pointer = self.stores.table.pointer().await.map_err(store_error)?;
        let previous = match pointer.as_ref().filter(|p| p.generation > 0) {
            Some(p) => Some(publish::load_plan(&self.stores, &p.snapshot).await?),
            None => None,
        };
        // Delta needs something to add to; without a generation, everything is placed (F10).
        let mode = if previous.is_none() {
            Mode::Full
        } else {
            request.mode
        };

        match self.demand.demand(now).await {
            Ok(d) => {
                loaded.volumes = Some(d.volumes);
                loaded.digests.volumes = Some(d.runs_digest);
                loaded.digests.durations = d.durations_digest;
                loaded.digests.cpu = d.cpu_digest;
                loaded.digests.memory = d.memory_digest;
            }
            // A delta run only places new jobs: the demands of the current generation serve.
            Err(e) if mode == Mode::Delta && previous.is_some() => {
                tracing::warn!(error = %e, "volumes unavailable; the delta run uses the current generation's demands");
                loaded.volumes = previous.as_ref().map(demands_of);
                loaded.digests.volumes = Some("previous-generation".to_owned());
            }
            Err(e) => return Err(e.into()),
        }
        loaded.previous = previous;
        let base = pointer.as_ref().map_or(0, |p| p.generation);
        loaded.digests.previous = pointer.filter(|p| p.generation > 0).map(|p| p.plan_digest);
        let settings = Settings {
            mode,
            ..self.settings.clone()
        };
        let plan =
            dispatcher_core::run(&loaded.inputs(), &settings).map_err(|fatal| RecomputeError {
                stage: "inputs",
                // The inputs are wrong: only a new push can fix them.
                retryable: false,
                message: fatal
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        // On the generation the plan was computed against: a concurrent run that published
        // first makes this one lose instead of undoing its moves.
        let mut options = PublishOptions::new(request.cause(), now)
            .owned_by(attempt)
            .expecting(base);
        options.max_deleted = if request.allow_deletions {
            1.0
        } else {
            self.max_deleted
        };
        let published = publish::publish(&self.stores, &plan, &options).await?;

        // What was processed advances only now (F3).
        let blob = self.repo.blob_sha(&commit, CLUSTERS_PATH).await?;
        let table = &self.stores.table;
        table
            .set_marker(INVENTORY_BLOB, blob.as_deref().unwrap_or(""))
            .await
            .map_err(store_error)?;
        table
            .set_marker(INVENTORY_DIGEST, &plan.inputs.inventory)
            .await
            .map_err(store_error)?;
        table
            .set_marker(LAST_SUCCESS, &now.to_string())
            .await
            .map_err(store_error)?;

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
            published,
            fallback,
        })
    }

    /// Retries a backup PR that failed after its generation was published (F15): the
    /// release at the head, and the current generation's plan. `None` when none is pending.
    pub async fn retry_fallback(&self) -> Result<Option<FallbackStatus>, RecomputeError> {
        let table = &self.stores.table;
        let pending = table
            .marker(FALLBACK_PENDING)
            .await
            .map_err(store_error)?
            .is_some_and(|g| !g.is_empty());
        if !pending {
            return Ok(None);
        }
        let Some(pointer) = table
            .pointer()
            .await
            .map_err(store_error)?
            .filter(|p| p.generation > 0)
        else {
            return Ok(None);
        };
        if self.fallback.is_none() {
            return Ok(Some(FallbackStatus::Disabled));
        }
        let commit = self.repo.head().await?;
        let loaded = assemble(self.repo.release(&commit).await?, None, &commit);
        let plan = publish::load_plan(&self.stores, &pointer.snapshot).await?;
        Ok(Some(
            self.fallback(&plan, &loaded, &commit, pointer.generation)
                .await,
        ))
    }

    /// Seconds since a recompute last succeeded; `None` before the first success.
    pub async fn since_last_success(&self, now: i64) -> Result<Option<i64>, RecomputeError> {
        let marker = self
            .stores
            .table
            .marker(LAST_SUCCESS)
            .await
            .map_err(store_error)?;
        Ok(marker
            .and_then(|v| v.parse::<i64>().ok())
            .map(|at| (now - at).max(0)))
    }

    /// Brings the backup PR up to date; its failure does not fail the recompute (the
    /// generation is published), but leaves the marker for the next run (F15).
    async fn fallback(
        &self,
        plan: &Plan,
        loaded: &dispatcher_formats::Loaded,
        commit: &str,
        generation: u64,
    ) -> FallbackStatus {
        let Some(publisher) = &self.fallback else {
            return FallbackStatus::Disabled;
        };
        let table = &self.stores.table;
        if let Err(e) = table
            .set_marker(FALLBACK_PENDING, &generation.to_string())
            .await
        {
            return FallbackStatus::Failed(e.to_string());
        }
        let change = match fallback_change(plan, loaded, commit, generation) {
            Ok(Some(c)) => c,
            Ok(None) => {
                let _ = table.set_marker(FALLBACK_PENDING, "").await;
                return FallbackStatus::UpToDate;
            }
            Err(e) => return FallbackStatus::Failed(e),
        };
        match publisher.publish(&change).await {
            Ok(report) => {
                if let Err(e) = table.set_marker(FALLBACK_PENDING, "").await {
                    tracing::warn!(error = %e, "the fallback PR is done but its marker was not cleared");
                }
                FallbackStatus::Published(report)
            }
            Err(e) => {
                tracing::error!(error = %e, retryable = e.retryable, generation, "the fallback PR failed; it is retried by the next recompute");
                FallbackStatus::Failed(e.to_string())
            }
        }
    }
}

/// The demands recorded in a plan, as volumes: a delta run's stand-in for Prometheus.
fn demands_of(plan: &Plan) -> Volumes {
    Volumes {
        runs: plan
            .jobs
            .iter()
            .map(|(k, e)| (k.clone(), e.demand))
            .collect(),
        ..Volumes::default()
    }
}

/// The files of the release that must change for the static fields and `buildFarm` to
/// match the plan; `None` when none must.
pub fn fallback_change(
    plan: &Plan,
    loaded: &dispatcher_formats::Loaded,
    commit: &str,
    generation: u64,
) -> Result<Option<FallbackChange>, String> {
    let mut files = BTreeMap::new();
    for f in &loaded.files {
        if !needs_rewrite(f, plan) {
            continue;
        }
        let Some(bytes) = loaded.texts.get(&f.path) else {
            return Err(format!("{}: the release was read without its text", f.path));
        };
        let text = String::from_utf8_lossy(bytes);
        match job_file_for_plan(&text, plan) {
            Ok(Some((new, _))) => {
                files.insert(f.path.clone(), new);
            }
            Ok(None) => {}
            // One odd file must not hold the others back; it is reported and skipped.
            Err(e) => {
                tracing::warn!(file = %f.path, error = %e, "cannot rewrite the file for the backup PR")
            }
        }
    }
    let config_text = String::from_utf8_lossy(&loaded.config_text);
    if let Some(new) = config_for_plan(&config_text, plan) {
        files.insert(dispatcher_formats::CONFIG_PATH.to_owned(), new);
    }
    if files.is_empty() {
        return Ok(None);
    }
    Ok(Some(FallbackChange {
        base_commit: commit.to_owned(),
        generation,
        title: format!("Automate prow job dispatcher: generation {generation}"),
        body: dispatcher_core::report::markdown(plan),
        files,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_envelopes_and_bare_inputs_are_weekly_runs() {
        let envelope = serde_json::json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "1", "time": "2026-11-22T07:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:1:rule/weekly"], "detail": {}
        });
        let weekly = Ok(Invocation::Recompute(RecomputeRequest::weekly()));
        assert_eq!(parse_invocation(&envelope), weekly);
        assert_eq!(parse_invocation(&serde_json::json!({})), weekly);
        let push = serde_json::json!({"trigger": "push", "mode": "delta", "deliveryId": "d-1", "after": "abc"});
        let Ok(Invocation::Recompute(r)) = parse_invocation(&push) else {
            panic!("a push hand-off is a recompute");
        };
        assert_eq!(
            (
                r.trigger,
                r.mode,
                r.delivery_id.as_deref(),
                r.after.as_deref()
            ),
            (Trigger::Push, Mode::Delta, Some("d-1"), Some("abc"))
        );
        assert!(parse_invocation(&serde_json::json!({"trigger": "sometimes"})).is_err());
    }

    #[test]
    fn the_freshness_check_is_not_a_recompute() {
        assert_eq!(
            parse_invocation(&serde_json::json!({"action": "check"})),
            Ok(Invocation::FreshnessCheck)
        );
        let e = parse_invocation(&serde_json::json!({"action": "dance"})).unwrap_err();
        assert!(e.contains("dance"), "{e}");
    }
}
