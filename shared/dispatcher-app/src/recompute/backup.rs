//! The backup PR: brought up to date after a publish, retried while pending, announced
//! when it has been pending for a day.

use dispatcher_core::Plan;
use dispatcher_formats::{Loaded, assemble};

use super::{FallbackStatus, RecomputeError, Recomputer};
use crate::ports::{FallbackChange, Note};
use crate::records::Markers;
use crate::writeback;

/// How long a backup PR may stay pending before operators hear of it.
const BACKUP_PR_LATE: i64 = 24 * 3600;
/// Remembered keys of late backup PRs already announced.
const LATE_BACKUP_PR: &str = "late-backup-pr#";

impl Recomputer {
    /// Retries a backup PR that failed after its generation was published (F15): the
    /// release at the head, and the current generation's plan. `None` when none is pending.
    pub async fn retry_fallback(&self) -> Result<Option<FallbackStatus>, RecomputeError> {
        let pending = Markers(self.stores.table.as_ref())
            .fallback_pending()
            .await?;
        if !pending {
            return Ok(None);
        }
        if self.fallback.is_none() {
            return Ok(self
                .stores
                .serving()
                .await?
                .map(|_| FallbackStatus::Disabled));
        }
        let Some(serving) = self.serving().await? else {
            return Ok(None);
        };
        let commit = self.repo.head().await?;
        let loaded = assemble(self.repo.release(&commit).await?, None, &commit);
        Ok(Some(
            self.fallback(&serving.plan, &loaded, &commit, serving.generation)
                .await,
        ))
    }

    /// Announces, once per generation, a backup PR still pending a day after its
    /// generation was published: Prow's fallback (the static fields) is that far behind.
    /// `true` when it was announced now.
    pub async fn announce_late_backup_pr(&self, now: i64) -> Result<bool, RecomputeError> {
        let Some(n) = &self.notifier else {
            return Ok(false);
        };
        let markers = Markers(self.stores.table.as_ref());
        let crate::records::BackupPr::Pending(generation) = markers.backup_pr().await? else {
            return Ok(false);
        };
        let Some(record) = self
            .stores
            .table
            .generation(generation.parse().unwrap_or(0))
            .await?
        else {
            return Ok(false);
        };
        if now - record.published_at < BACKUP_PR_LATE {
            return Ok(false);
        }
        let key = format!("{LATE_BACKUP_PR}{generation}");
        if !self
            .stores
            .table
            .remember(&key, "announced", now + 30 * 86_400, now)
            .await?
        {
            return Ok(false);
        }
        let note = Note::BackupPrPending {
            generation,
            since: record.published_at,
        };
        if let Err(e) = n.notify(&note).await {
            tracing::warn!(error = %dispatcher_core::chain(&e), "a notification was not sent");
            self.stores.table.forget(&key).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Brings the backup PR up to date; its failure does not fail the recompute (the
    /// generation is published), but leaves the marker for the next run (F15).
    pub(super) async fn fallback(
        &self,
        plan: &Plan,
        loaded: &Loaded,
        commit: &str,
        generation: u64,
    ) -> FallbackStatus {
        let Some(publisher) = &self.fallback else {
            return FallbackStatus::Disabled;
        };
        let markers = Markers(self.stores.table.as_ref());
        if let Err(e) = markers.set_fallback_pending(generation).await {
            return FallbackStatus::Failed(dispatcher_core::chain(&e));
        }
        let change = match fallback_change(plan, loaded, commit, generation) {
            Ok(Some(c)) => c,
            Ok(None) => {
                let _ = markers.clear_fallback_pending().await;
                return FallbackStatus::UpToDate;
            }
            Err(e) => return FallbackStatus::Failed(e.to_string()),
        };
        match publisher.publish(&change).await {
            Ok(report) => {
                if let Err(e) = markers.clear_fallback_pending().await {
                    tracing::warn!(error = %dispatcher_core::chain(&e), "the fallback PR is done but its marker was not cleared");
                }
                FallbackStatus::Published(report)
            }
            Err(e) => {
                let error = dispatcher_core::chain(&e);
                tracing::error!(error = %error, retryable = e.is_retryable(), generation, "the fallback PR failed; it is retried by the next recompute");
                FallbackStatus::Failed(error)
            }
        }
    }
}

/// A job file the release was read without the text of (a reader without `keep_text`).
#[derive(Debug, thiserror::Error)]
#[error("{0}: the release was read without its text")]
pub struct NoText(pub String);

/// The files of the release that must change for the static fields and `buildFarm` to
/// match the plan; `None` when none must.
pub fn fallback_change(
    plan: &Plan,
    loaded: &Loaded,
    commit: &str,
    generation: u64,
) -> Result<Option<FallbackChange>, NoText> {
    let config_text = String::from_utf8_lossy(&loaded.config_text);
    let rewrite = writeback::rewrite(plan, &loaded.files, &config_text, |path| {
        loaded
            .texts
            .get(path)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .ok_or_else(|| NoText(path.to_owned()))
    })?;
    if rewrite.files.is_empty() {
        return Ok(None);
    }
    Ok(Some(FallbackChange {
        base_commit: commit.to_owned(),
        generation,
        title: format!("Automate prow job dispatcher: generation {generation}"),
        body: dispatcher_core::report::markdown(plan),
        files: rewrite.files,
    }))
}
