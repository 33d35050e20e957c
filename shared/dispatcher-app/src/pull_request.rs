//! Plans of pull requests on the release repository: what the merge would do, shown on the
//! pull request before it lands (one comment, edited on later pushes, and the commit status
//! `dispatcher/plan`), never published.
//!
//! A pull request that changes only job files costs little: those files are fetched at the
//! head commit and planned as a delta on the serving generation's stored inputs. Only a
//! change of `_config.yaml` or `_clusters.yaml` reads the head's tarball for a full plan.
//! Nothing from the pull request is executed, and its files are read with the limits of a
//! recompute.

use std::collections::BTreeSet;

use dispatcher_core::overrides::{self, Impact};
use dispatcher_core::report::{Change, change_markdown};
use dispatcher_core::{Diagnostic, Mode, Plan, Settings, Severity, StoredInputs};
use dispatcher_formats::{CLUSTERS_PATH, CONFIG_PATH, assemble};
use serde::{Deserialize, Serialize};

use crate::ports::{PrFile, PullRequests, RepoSource, SourceError};
use crate::publish::{self, SnapshotError};
use crate::{StoreError, Stores};

/// The hidden marker that finds the one plan comment of a pull request.
pub const MARKER: &str = "<!-- prow-dispatcher/plan -->";
/// The commit status's context.
pub const CONTEXT: &str = "dispatcher/plan";
/// GitHub lists at most 3,000 files of a pull request.
pub const MAX_FILES: usize = 3000;
/// Job files fetched one by one at most; a pull request changing more is planned from its
/// tarball.
pub const MAX_JOB_FILES: usize = 300;
const JOBS_PREFIX: &str = "ci-operator/jobs/";
/// A change of a cluster's target share, as a fraction, that a comment reports.
const TARGET_CHANGE: f64 = 0.0005;

/// Which pull request to plan, and what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRef {
    /// Its number.
    pub number: u64,
    /// The head commit the plan is for.
    pub head: String,
    /// The config or the inventory changes (or too many job files): a full plan from the
    /// head's tarball.
    pub full: bool,
    /// The job files it changes (when not full).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PrFile>,
}

/// A `pull_request` delivery, as far as it is read.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestEvent {
    /// `opened`, `synchronize`, ...
    pub action: String,
    /// The pull request's number.
    pub number: u64,
    /// The pull request.
    pub pull_request: PullRequestPayload,
    /// The base repository.
    pub repository: crate::push::PushRepository,
}

/// The pull request in a delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestPayload {
    /// Its head.
    pub head: CommitRef,
    /// The branch it merges into.
    pub base: BaseRef,
    /// Whether it is a draft.
    #[serde(default)]
    pub draft: bool,
}

/// The branch a pull request merges into.
#[derive(Debug, Clone, Deserialize)]
pub struct BaseRef {
    /// The branch's name (`main`).
    #[serde(rename = "ref")]
    pub branch: String,
}

/// A commit named by a delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct CommitRef {
    /// The commit.
    pub sha: String,
}

/// The actions that plan: a new head, or a pull request becoming reviewable.
pub const PLANNED_ACTIONS: [&str; 4] = ["opened", "synchronize", "reopened", "ready_for_review"];

fn is_job_file(path: &str) -> bool {
    path.starts_with(JOBS_PREFIX) && path.ends_with(".yaml")
}

/// What a pull request changing `files` needs planned, if anything.
pub fn decide(number: u64, head: &str, files: &[PrFile]) -> Option<PullRequestRef> {
    let touches =
        |f: &PrFile, p: &dyn Fn(&str) -> bool| p(&f.path) || f.previous.as_deref().is_some_and(p);
    let config = files
        .iter()
        .any(|f| touches(f, &|p| p == CONFIG_PATH || p == CLUSTERS_PATH));
    let jobs: Vec<PrFile> = files
        .iter()
        .filter(|f| touches(f, &is_job_file))
        .cloned()
        .collect();
    if !config && jobs.is_empty() {
        return None;
    }
    let full = config || jobs.len() > MAX_JOB_FILES;
    Some(PullRequestRef {
        number,
        head: head.to_owned(),
        full,
        files: if full { Vec::new() } else { jobs },
    })
}

/// Why a pull request could not be planned (a plan that finds errors is a plan).
#[derive(Debug, thiserror::Error)]
pub enum PrPlanError {
    /// GitHub failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The serving generation cannot be read.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PrPlanError {
    /// Whether planning again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PrPlanError::Source(e) => e.is_retryable(),
            PrPlanError::Snapshot(e) => e.is_retryable(),
            PrPlanError::Store(e) => e.is_retryable(),
        }
    }
}

/// What a plan of a pull request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrOutcome {
    /// The head moved on while planning: nothing was posted (the newer push plans).
    Stale,
    /// Nothing is serving to compare with: the status says so.
    NothingServing,
    /// The status was set, and the comment posted or edited when there was one to make.
    Posted {
        /// `success` or `failure`.
        state: &'static str,
        /// Whether the comment was posted or edited.
        commented: bool,
    },
}

/// Plans pull requests.
pub struct PrPlanner<'a> {
    /// The serving generation.
    pub stores: &'a Stores,
    /// The head's tarball, for a full plan.
    pub repo: &'a dyn RepoSource,
    /// The pull request's files, comment and status.
    pub prs: &'a dyn PullRequests,
    /// The engine's settings (the recompute's).
    pub settings: &'a Settings,
    /// The largest job file read.
    pub max_file_bytes: usize,
}

/// The plan with the serving generation to compare it with.
struct Planned {
    serving: Plan,
    after: Plan,
    impact: Impact,
    errors: Vec<Diagnostic>,
    static_lines: usize,
}

impl PrPlanner<'_> {
    /// Plans `pr` at `now`: the plan, the stale-head check, then the comment and the status.
    pub async fn run(&self, pr: &PullRequestRef, now: i64) -> Result<PrOutcome, PrPlanError> {
        let Some(pointer) = self.stores.serving().await? else {
            self.prs
                .set_status(
                    &pr.head,
                    CONTEXT,
                    "success",
                    "no generation serves yet: nothing to compare with",
                )
                .await?;
            return Ok(PrOutcome::NothingServing);
        };
        let planned = self.plan(pr, &pointer, now).await?;
        if self.prs.head(pr.number).await? != pr.head {
            tracing::info!(pr = pr.number, head = %pr.head, "a newer push planned: this result is dropped");
            return Ok(PrOutcome::Stale);
        }
        let failed = !planned.errors.is_empty() || !planned.impact.unschedulable.is_empty();
        let state = if failed { "failure" } else { "success" };
        // A config change that moves the targets is worth a comment even before a job moves;
        // new jobs shift every target a little, which is not.
        let targets_changed = pr.full
            && planned.serving.clusters.iter().any(|(n, c)| {
                let after = planned.after.clusters.get(n).and_then(|a| a.target_share);
                (after.unwrap_or(0.0) - c.target_share.unwrap_or(0.0)).abs() > TARGET_CHANGE
                    || after.is_some() != c.target_share.is_some()
            });
        let commented = planned.impact.moved_jobs > 0 || failed || targets_changed;
        if commented {
            let body = format!(
                "{MARKER}\n{}\n<sub>Planned by the Prow job dispatcher on generation {} for {}.</sub>\n",
                change_markdown(&Change {
                    before: &planned.serving,
                    after: &planned.after,
                    impact: &planned.impact,
                    errors: &planned.errors,
                    static_lines: Some(planned.static_lines),
                }),
                pointer.generation,
                pr.head
            );
            self.prs.upsert_comment(pr.number, MARKER, &body).await?;
        }
        self.prs
            .set_status(&pr.head, CONTEXT, state, &summary(&planned))
            .await?;
        Ok(PrOutcome::Posted { state, commented })
    }

    /// The plan of the merge: the serving inputs with the pull request's changes, placed
    /// as the recompute the merge triggers would, the live overrides applied.
    async fn plan(
        &self,
        pr: &PullRequestRef,
        pointer: &crate::Pointer,
        now: i64,
    ) -> Result<Planned, PrPlanError> {
        // The serving plan and, for a full plan, the head's tarball, read at once.
        let serving = publish::load_plan(self.stores, &pointer.snapshot);
        let (serving, head) = if pr.full {
            let (serving, head) = tokio::join!(serving, self.repo.release(&pr.head));
            (serving?, Some(head?))
        } else {
            (serving.await?, None)
        };
        let baseline = match pointer.applied.baseline {
            Some(_) => publish::load_baseline(self.stores, pointer).await?,
            None => serving.clone(),
        };
        let (inputs, mode) = match (head, &pointer.applied.release) {
            (Some(release), _) => (self.head_release(release, &pr.head, &serving), Mode::Full),
            (None, Some(key)) => {
                let stored = publish::load_release(self.stores, key).await?;
                (self.with_files(stored, pr).await?, Mode::Delta)
            }
            // A generation published by hand keeps no inputs: the head's tarball then.
            (None, None) => {
                let release = self.repo.release(&pr.head).await?;
                (self.head_release(release, &pr.head, &serving), Mode::Full)
            }
        };
        let settings = Settings {
            mode,
            ..self.settings.clone()
        };
        let (live, _) = overrides::in_force(&pointer.applied.overrides, &inputs.inventory, now);
        let (after, errors) = match dispatcher_core::run(&inputs.inputs(Some(&baseline)), &settings)
        {
            Ok(plan) => match overrides::plan(&inputs, &plan, self.settings, &live) {
                Ok(answering) => {
                    let errors = dispatcher_core::report::new_errors(&serving, &answering);
                    (answering, errors)
                }
                // The merge's recompute would refuse to publish: say so, move nothing.
                Err(e) => {
                    let ids: Vec<&str> = live.iter().map(|o| o.id.as_str()).collect();
                    let why = Diagnostic::new(
                        Severity::Error,
                        "overrides",
                        ids.join(", "),
                        format!("the overrides in force cannot be applied to this change: {e}"),
                    );
                    (serving.clone(), vec![why])
                }
            },
            // Nothing can be placed: the merge's recompute would refuse it; nothing moves.
            Err(fatal) => (serving.clone(), fatal.0),
        };
        let impact = overrides::impact(&serving, &after, &inputs.files);
        let static_lines = static_lines(&inputs, &after);
        Ok(Planned {
            serving,
            after,
            impact,
            errors,
            static_lines,
        })
    }

    /// The stored inputs with the pull request's job files as they are at its head.
    async fn with_files(
        &self,
        mut inputs: StoredInputs,
        pr: &PullRequestRef,
    ) -> Result<StoredInputs, PrPlanError> {
        let mut gone: BTreeSet<String> = BTreeSet::new();
        let mut fresh = Vec::new();
        let mut diagnostics = Vec::new();
        for f in &pr.files {
            gone.insert(f.path.clone());
            if let Some(previous) = &f.previous {
                gone.insert(previous.clone());
            }
            if f.status == "removed" || !is_job_file(&f.path) {
                continue;
            }
            let Some(bytes) = self
                .prs
                .contents(&f.path, &pr.head, self.max_file_bytes)
                .await?
            else {
                continue;
            };
            match dispatcher_formats::jobs::parse_job_file(&bytes) {
                Ok(jobs) => fresh.push(dispatcher_core::model::JobFile {
                    path: f.path.clone(),
                    size: bytes.len() as u64,
                    jobs,
                }),
                Err(e) => {
                    diagnostics.push(Diagnostic::error(&f.path, "", dispatcher_core::chain(&e)))
                }
            }
        }
        inputs.files.retain(|f| !gone.contains(&f.path));
        inputs.files.extend(fresh);
        inputs.files.sort_by(|a, b| a.path.cmp(&b.path));
        inputs.diagnostics.extend(diagnostics);
        Ok(inputs)
    }

    /// The head's release, weighed with the serving generation's demands (the plan is of
    /// placement, not of a week's new volumes).
    fn head_release(
        &self,
        release: dispatcher_formats::Release,
        head: &str,
        serving: &Plan,
    ) -> StoredInputs {
        assemble(release, None, head)
            .with_demand(crate::recompute::demand_of(serving))
            .stored()
    }
}

/// Jobs whose static `cluster:` the backup PR would change to the plan's cluster.
fn static_lines(inputs: &StoredInputs, plan: &Plan) -> usize {
    inputs
        .files
        .iter()
        .flat_map(|f| f.jobs.iter())
        .filter(|j| {
            dispatcher_formats::writeback::planned_cluster(plan, &j.name)
                .is_some_and(|c| j.cluster.as_deref() != Some(c.as_str()))
        })
        .count()
}

/// The status's one line (GitHub keeps 140 characters).
fn summary(p: &Planned) -> String {
    let mut line = format!(
        "moves {} existing jobs ({:.1} demand)",
        p.impact.moved_jobs, p.impact.moved_demand
    );
    if !p.impact.unschedulable.is_empty() {
        line.push_str(&format!(
            "; {} jobs would be unschedulable",
            p.impact.unschedulable.len()
        ));
    }
    if let Some(first) = p.errors.first() {
        line = format!(
            "{} error(s), first {} {}: {}",
            p.errors.len(),
            first.file,
            first.key,
            first.message
        );
    }
    line.chars().take(140).collect()
}
