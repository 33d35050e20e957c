//! What a push to the release repository needs (wire-contracts.md §2.7): inventory or
//! dispatcher config changed → full recompute; job files changed → delta; otherwise
//! nothing. The file lists of the payload are the cheap filter; the blob SHA of
//! `_clusters.yaml` at `after`, compared with the last one successfully processed, is the
//! authoritative check (file lists are unreliable for forced pushes and huge pushes).

use std::collections::BTreeSet;

use crate::AssignmentStore;
use dispatcher_core::Mode;
use dispatcher_formats::{CLUSTERS_PATH, CONFIG_PATH};
use serde::Deserialize;

use crate::ports::{RepoSource, SourceError};
use crate::records::Markers;

const JOBS_PREFIX: &str = "ci-operator/jobs/";
/// GitHub puts at most this many commits in a push payload.
const MAX_COMMITS: usize = 2048;
/// The watched paths a hand-off names, for the logs: a merged backup PR touches thousands
/// of files, and an asynchronous invoke carries at most 256 KB.
pub const MAX_HANDOFF_PATHS: usize = 100;

/// The fields of a push payload that matter.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushEvent {
    /// `refs/heads/<branch>`.
    #[serde(rename = "ref", default)]
    pub git_ref: String,
    /// The commit before the push (all zeros for a new branch).
    #[serde(default)]
    pub before: String,
    /// The commit the push brought.
    #[serde(default)]
    pub after: String,
    /// The push deleted the branch.
    #[serde(default)]
    pub deleted: bool,
    /// The push rewrote history.
    #[serde(default)]
    pub forced: bool,
    /// The commits, as GitHub lists them (at most 2,048; `commits` may be cut short).
    #[serde(default)]
    pub commits: Vec<PushCommit>,
    /// The repository pushed to.
    pub repository: PushRepository,
}

/// The files one commit touched.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushCommit {
    /// Files added.
    #[serde(default)]
    pub added: Vec<String>,
    /// Files removed.
    #[serde(default)]
    pub removed: Vec<String>,
    /// Files modified.
    #[serde(default)]
    pub modified: Vec<String>,
}

/// The repository of a push.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushRepository {
    /// `owner/name`.
    pub full_name: String,
    /// Its default branch.
    #[serde(default)]
    pub default_branch: String,
}

/// What a push needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushDecision {
    /// Nothing, and why.
    Ignore(String),
    /// A recompute.
    Recompute {
        /// Full, or delta (new jobs only).
        mode: Mode,
        /// Why, for the logs.
        reason: String,
        /// The watched paths the push touched (at most [`MAX_HANDOFF_PATHS`]).
        paths: Vec<String>,
    },
}

/// Decides what a push needs. `repo` is the configured `owner/name`.
pub async fn decide(
    event: &PushEvent,
    repo: &str,
    source: &dyn RepoSource,
    table: &dyn AssignmentStore,
) -> Result<PushDecision, SourceError> {
    if !event.repository.full_name.eq_ignore_ascii_case(repo) {
        return Ok(PushDecision::Ignore(format!(
            "push to {}, not {repo}",
            event.repository.full_name
        )));
    }
    let default_ref = format!("refs/heads/{}", event.repository.default_branch);
    if event.git_ref != default_ref {
        return Ok(PushDecision::Ignore(format!(
            "push to {}, not the default branch",
            event.git_ref
        )));
    }
    if event.deleted || event.after.chars().all(|c| c == '0') {
        return Ok(PushDecision::Ignore("the branch was deleted".to_owned()));
    }
    let paths: BTreeSet<&str> = event
        .commits
        .iter()
        .flat_map(|c| c.added.iter().chain(&c.removed).chain(&c.modified))
        .map(String::as_str)
        .collect();
    let watched: Vec<String> = paths
        .iter()
        .filter(|p| **p == CLUSTERS_PATH || **p == CONFIG_PATH || p.starts_with(JOBS_PREFIX))
        .take(MAX_HANDOFF_PATHS)
        .map(|p| (*p).to_owned())
        .collect();
    let unreliable = event.forced || event.commits.len() >= MAX_COMMITS || event.commits.is_empty();
    let mut inventory = paths.contains(CLUSTERS_PATH);
    let mut reason = String::new();
    if inventory {
        reason = format!("{CLUSTERS_PATH} changed");
    } else {
        // One API call per push, whatever the file lists say.
        let seen = Markers(table).inventory_blob().await.map_err(|e| {
            SourceError::retryable("store", "the last processed inventory").because(e)
        })?;
        match source.blob_sha(&event.after, CLUSTERS_PATH).await {
            Ok(blob) if blob == seen => {}
            Ok(blob) => {
                inventory = true;
                reason = format!(
                    "{CLUSTERS_PATH} at {} is {} but {} was processed last",
                    event.after,
                    blob.as_deref().unwrap_or("absent"),
                    seen.as_deref().unwrap_or("nothing")
                );
            }
            // Not knowing is no reason to drop the push: a full recompute reads
            // everything and moves only what pays (hysteresis, budget).
            Err(e) => {
                tracing::warn!(error = %dispatcher_core::chain(&e), after = %event.after, "cannot read the inventory's blob; asking for a full recompute");
                inventory = true;
                reason = format!(
                    "{CLUSTERS_PATH} at {} could not be checked ({})",
                    event.after,
                    dispatcher_core::chain(&e)
                );
            }
        }
    }
    if inventory || paths.contains(CONFIG_PATH) {
        if reason.is_empty() {
            reason = format!("{CONFIG_PATH} changed");
        }
        return Ok(PushDecision::Recompute {
            mode: Mode::Full,
            reason,
            paths: watched,
        });
    }
    if paths.iter().any(|p| p.starts_with(JOBS_PREFIX)) || unreliable {
        let reason = if unreliable {
            "the push's file lists are unreliable (forced, empty or truncated)".to_owned()
        } else {
            "job files changed".to_owned()
        };
        return Ok(PushDecision::Recompute {
            mode: Mode::Delta,
            reason,
            paths: watched,
        });
    }
    Ok(PushDecision::Ignore("no watched path changed".to_owned()))
}
