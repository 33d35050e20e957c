//! The backup PR: the change as one commit on the backup branch, built with the Git Data
//! API, and the open pull request from that branch, updated or created, then labelled.

use async_trait::async_trait;
use dispatcher_app::ports::{FallbackChange, FallbackPublisher, FallbackReport, SourceError};
use serde_json::{Value, json};

use crate::GitHub;

#[async_trait]
impl FallbackPublisher for GitHub {
    async fn publish(&self, change: &FallbackChange) -> Result<FallbackReport, SourceError> {
        let start = self.calls();
        let base_branch = self.default_branch().await?;
        let tree = self.tree(change).await?;
        let (commit, pushed) = self.push(change, &tree).await?;
        let (number, created) = self.pull_request(change, &base_branch).await?;
        self.label(number).await?;
        let report = FallbackReport {
            pull_request: number,
            created,
            commit,
            pushed,
            api_calls: self.calls() - start,
        };
        tracing::info!(
            pull_request = number,
            created,
            pushed,
            files = change.files.len(),
            api_calls = report.api_calls,
            "backup PR updated"
        );
        Ok(report)
    }
}

impl GitHub {
    /// The SHA of the base commit's tree with the change's files on top.
    async fn tree(&self, change: &FallbackChange) -> Result<String, SourceError> {
        let base = self
            .get(
                "get base commit",
                self.route(&format!("git/commits/{}", change.base_commit)),
            )
            .await?;
        let mut tree = Self::sha(&base, "/tree/sha", "base commit")?;

        // Inline contents in trees of bounded size, each on top of the last: a handful of
        // calls for thousands of files, and no call per blob.
        let mut batch: Vec<Value> = Vec::new();
        let mut size = 0;
        let files: Vec<(&String, &String)> = change.files.iter().collect();
        for (i, (path, content)) in files.iter().enumerate() {
            size += content.len();
            batch.push(json!({"path": path, "mode": "100644", "type": "blob", "content": content}));
            if size >= self.config.tree_batch_bytes || i + 1 == files.len() {
                let t = self
                    .post(
                        "create tree",
                        self.route("git/trees"),
                        json!({"base_tree": tree, "tree": batch}),
                    )
                    .await?;
                tree = Self::sha(&t, "/sha", "tree")?;
                batch = Vec::new();
                size = 0;
            }
        }
        Ok(tree)
    }

    /// Points the backup branch at a commit of `tree` on the change's base: the commit,
    /// and whether the branch moved.
    async fn push(
        &self,
        change: &FallbackChange,
        tree: &str,
    ) -> Result<(String, bool), SourceError> {
        let current = self.backup_head().await?;
        // The branch already holding this tree on this base: nothing to push. Every push
        // re-runs the PR's rehearsals, and most delta recomputes change no file.
        if let Some(head) = &current
            && self.holds(head, tree, &change.base_commit).await?
        {
            return Ok((head.clone(), false));
        }
        let commit = self.commit(change, tree).await?;
        self.move_branch(&commit, current.is_some()).await?;
        Ok((commit, true))
    }

    /// The commit the backup branch points at; `None` when there is no such branch yet.
    async fn backup_head(&self) -> Result<Option<String>, SourceError> {
        let branch = &self.config.branch;
        match self
            .get(
                "get backup branch",
                self.route(&format!("git/ref/heads/{branch}")),
            )
            .await
        {
            Ok(r) => Ok(Some(Self::sha(&r, "/object/sha", "backup branch")?)),
            Err(SourceError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether commit `head` has tree `tree` and `base` as its parent, i.e. is already the
    /// commit a push would make.
    async fn holds(&self, head: &str, tree: &str, base: &str) -> Result<bool, SourceError> {
        let c = self
            .get(
                "get backup commit",
                self.route(&format!("git/commits/{head}")),
            )
            .await?;
        Ok(c.pointer("/tree/sha").and_then(Value::as_str) == Some(tree)
            && c.pointer("/parents/0/sha").and_then(Value::as_str) == Some(base))
    }

    /// A new commit of `tree` on the change's base, titled and described as the PR is.
    async fn commit(&self, change: &FallbackChange, tree: &str) -> Result<String, SourceError> {
        let message = format!("{}\n\n{}", change.title, change.body);
        let commit = self
            .post(
                "create commit",
                self.route("git/commits"),
                json!({"message": message, "tree": tree, "parents": [change.base_commit]}),
            )
            .await?;
        Self::sha(&commit, "/sha", "commit")
    }

    /// Points the backup branch at `commit`, creating the branch unless it `exists`. The
    /// update is forced: each commit sits on the base, not on the one it replaces.
    async fn move_branch(&self, commit: &str, exists: bool) -> Result<(), SourceError> {
        let branch = &self.config.branch;
        if exists {
            self.patch(
                "update branch",
                self.route(&format!("git/refs/heads/{branch}")),
                json!({"sha": commit, "force": true}),
            )
            .await?;
        } else {
            self.post(
                "create branch",
                self.route("git/refs"),
                json!({"ref": format!("refs/heads/{branch}"), "sha": commit}),
            )
            .await?;
        }
        Ok(())
    }

    /// The open PR from the backup branch into `base_branch`, its title and body brought up
    /// to date or created: its number, and whether it was created.
    async fn pull_request(
        &self,
        change: &FallbackChange,
        base_branch: &str,
    ) -> Result<(u64, bool), SourceError> {
        if let Some(n) = self.open_pull_request().await? {
            self.patch(
                "update pull request",
                self.route(&format!("pulls/{n}")),
                json!({"title": change.title, "body": change.body}),
            )
            .await?;
            return Ok((n, false));
        }
        let pr = self
            .post(
                "create pull request",
                self.route("pulls"),
                json!({"title": change.title, "head": self.config.branch, "base": base_branch, "body": change.body, "maintainer_can_modify": true}),
            )
            .await?;
        let n = pr
            .get("number")
            .and_then(Value::as_u64)
            .ok_or_else(|| SourceError::permanent("github", "create pull request: no number"))?;
        Ok((n, true))
    }

    /// The number of the open PR from the backup branch, if there is one.
    async fn open_pull_request(&self) -> Result<Option<u64>, SourceError> {
        let open = self
            .get(
                "find pull request",
                self.route(&format!(
                    "pulls?state=open&head={}:{}",
                    self.config.owner, self.config.branch
                )),
            )
            .await?;
        Ok(open
            .as_array()
            .and_then(|a| a.first())
            .and_then(|p| p.get("number"))
            .and_then(Value::as_u64))
    }

    /// Adds the configured labels to PR `number` (GitHub keeps any others); no call when
    /// none are configured.
    async fn label(&self, number: u64) -> Result<(), SourceError> {
        if !self.config.labels.is_empty() {
            self.post(
                "add labels",
                self.route(&format!("issues/{number}/labels")),
                json!({"labels": self.config.labels}),
            )
            .await?;
        }
        Ok(())
    }
}
