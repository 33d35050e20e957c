//! What a plan of a pull request reads and writes on GitHub: its file list, its head, a
//! file at the head, its one plan comment and the commit status.

use async_trait::async_trait;
use dispatcher_app::ports::{PrFile, PullRequests, SourceError};
use serde_json::{Value, json};

use crate::{CallError, GitHub, server_wait, status_error};

impl GitHub {
    /// A file's bytes as the contents API's raw media type gives them (any size up to
    /// GitHub's 100 MB, where the JSON form stops at 1 MB), refused beyond `max` bytes.
    async fn raw_file(&self, route: &str, max: usize) -> Result<Vec<u8>, CallError> {
        use http_body_util::BodyExt as _;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/vnd.github.raw+json"),
        );
        let response = self
            .crab
            ._get_with_headers(route, Some(headers))
            .await
            .map_err(CallError::Crab)?;
        let status = response.status();
        let wait = server_wait(response.headers(), status);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(CallError::Crab)?.into_data() {
                bytes.extend_from_slice(&data);
            }
            if bytes.len() > max {
                return Err(CallError::TooLarge(max));
            }
        }
        if status.is_success() {
            return Ok(bytes);
        }
        let mut error = status_error(status, &String::from_utf8_lossy(&bytes));
        if let CallError::Status { wait: slot, .. } = &mut error {
            *slot = wait;
        }
        Err(error)
    }
}

/// Files and comments per page (GitHub's largest).
const PER_PAGE: usize = 100;

#[async_trait]
impl PullRequests for GitHub {
    async fn files(&self, number: u64, max: usize) -> Result<Vec<PrFile>, SourceError> {
        let mut files = Vec::new();
        for page in 1.. {
            let route = self.route(&format!(
                "pulls/{number}/files?per_page={PER_PAGE}&page={page}"
            ));
            let batch = self.get("list pull request files", route).await?;
            let entries = batch.as_array().map(Vec::as_slice).unwrap_or_default();
            for e in entries {
                let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
                files.push(PrFile {
                    path: text("filename").unwrap_or_default(),
                    status: text("status").unwrap_or_default(),
                    previous: text("previous_filename"),
                });
            }
            if files.len() > max {
                return Err(SourceError::permanent(
                    "github",
                    format!("pull request #{number} changes more than {max} files"),
                ));
            }
            if entries.len() < PER_PAGE {
                break;
            }
        }
        Ok(files)
    }

    async fn head(&self, number: u64) -> Result<String, SourceError> {
        let pr = self
            .get("get pull request", self.route(&format!("pulls/{number}")))
            .await?;
        Self::sha(&pr, "/head/sha", "pull request head")
    }

    async fn contents(
        &self,
        path: &str,
        commit: &str,
        max: usize,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let route = self.route(&format!("contents/{path}?ref={commit}"));
        match self
            .with_retry("get file", || self.raw_file(&route, max))
            .await
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(SourceError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn upsert_comment(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<(), SourceError> {
        let mut existing = None;
        for page in 1.. {
            let route = self.route(&format!(
                "issues/{number}/comments?per_page={PER_PAGE}&page={page}"
            ));
            let batch = self.get("list comments", route).await?;
            let entries = batch.as_array().map(Vec::as_slice).unwrap_or_default();
            existing = entries.iter().find_map(|c| {
                let ours = c
                    .get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|b| b.contains(marker));
                ours.then(|| c.get("id").and_then(Value::as_u64)).flatten()
            });
            if existing.is_some() || entries.len() < PER_PAGE {
                break;
            }
        }
        match existing {
            Some(id) => {
                self.patch(
                    "edit the plan comment",
                    self.route(&format!("issues/comments/{id}")),
                    json!({"body": body}),
                )
                .await?;
            }
            None => {
                self.post(
                    "post the plan comment",
                    self.route(&format!("issues/{number}/comments")),
                    json!({"body": body}),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn set_status(
        &self,
        commit: &str,
        context: &str,
        state: &str,
        description: &str,
    ) -> Result<(), SourceError> {
        let body = json!({"state": state, "context": context, "description": description});
        self.post(
            "set the commit status",
            self.route(&format!("statuses/{commit}")),
            body,
        )
        .await
        .map(|_| ())
    }
}
