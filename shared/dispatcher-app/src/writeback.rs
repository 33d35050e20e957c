//! Writing a plan back into the release: the job files whose static `cluster:` fields
//! differ from the plan, and `buildFarm` in the config. The backup PR and
//! `dispatcher sanitize` both use it. One file that cannot be rewritten is reported and
//! skipped: it must not hold the others back.

use std::collections::BTreeMap;

use dispatcher_core::Plan;
use dispatcher_core::model::JobFile;
use dispatcher_formats::CONFIG_PATH;
use dispatcher_formats::writeback::{
    WritebackError, config_for_plan, job_file_for_plan, needs_rewrite,
};

/// The files a plan changes.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// Path in the release -> new content.
    pub files: BTreeMap<String, String>,
    /// Jobs whose `cluster:` changed.
    pub jobs: usize,
    /// Whether `buildFarm` in the config changed.
    pub config: bool,
    /// Files that could not be rewritten, and why; they are left as they are.
    pub skipped: Vec<(String, WritebackError)>,
}

/// Rewrites the job `files` and the config (`config_text`) for `plan`; `text_of` reads a
/// job file's current text by its path in the release.
pub fn rewrite<E>(
    plan: &Plan,
    files: &[JobFile],
    config_text: &str,
    mut text_of: impl FnMut(&str) -> Result<String, E>,
) -> Result<Rewrite, E> {
    let mut out = Rewrite::default();
    for f in files.iter().filter(|f| needs_rewrite(f, plan)) {
        match job_file_for_plan(&text_of(&f.path)?, plan) {
            Ok(Some((new, jobs))) => {
                out.files.insert(f.path.clone(), new);
                out.jobs += jobs;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(file = %f.path, error = %dispatcher_core::chain(&e), "cannot rewrite the file");
                out.skipped.push((f.path.clone(), e));
            }
        }
    }
    if let Some(new) = config_for_plan(config_text, plan) {
        out.files.insert(CONFIG_PATH.to_owned(), new);
        out.config = true;
    }
    Ok(out)
}
