//! Reading a release repository: a checkout directory or a `.tar.gz` of one (as GitHub
//! serves tarballs, with or without a top-level directory), streamed and parsed in parallel.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use dispatcher_core::Diagnostic;
use dispatcher_core::model::{DispatcherConfig, JobFile};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::jobs::{parse_job_file, parse_job_file_full};

/// How thoroughly job files are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parse {
    /// Only what the rules read: fast, but YAML errors in entries the rules never read go
    /// unnoticed (Prow's own config check reports those).
    #[default]
    Fast,
    /// Every byte: what `validate` uses, so that any YAML error is reported.
    Full,
}

pub const CONFIG_PATH: &str = "core-services/sanitize-prow-jobs/_config.yaml";
pub const CLUSTERS_PATH: &str = "core-services/sanitize-prow-jobs/_clusters.yaml";
pub use dispatcher_core::model::JOBS_DIR;

/// Where a release comes from.
pub enum Source {
    /// A checkout directory or a `.tar.gz` file.
    Path(PathBuf),
    /// A `.tar.gz` read as it arrives (a download from GitHub): never held whole.
    Stream(Box<dyn Read + Send>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Source::Stream(_) => f.write_str("Stream"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    pub parse: Parse,
    /// Keep every job file's bytes (to write a plan back into them).
    pub keep_text: bool,
}

/// The parts of a release the dispatcher reads.
#[derive(Debug, Clone, Default)]
pub struct Release {
    pub config: Option<Vec<u8>>,
    /// `config` parsed (by the pool that parses the job files, while they stream).
    pub parsed_config: Option<(DispatcherConfig, Vec<Diagnostic>)>,
    pub clusters: Option<Vec<u8>>,
    /// Job files that parsed, sorted by path.
    pub files: Vec<JobFile>,
    /// Files that did not parse (path and line), left out of placement.
    pub diagnostics: Vec<Diagnostic>,
    /// `sha256:` over every job file's path and [`crate::digest::job_file`], in path order.
    pub jobs_digest: String,
    /// Job files' bytes by path, when asked for ([`ReadOptions::keep_text`]).
    pub texts: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} has no {JOBS_DIR} directory: not a release checkout")]
    NoJobs(PathBuf),
}

/// Files of interest as the tarball streamer hands them over: several files in one
/// buffer, so that the hand-over costs one channel message and one allocation per batch
/// rather than per file, and buffers go back to the streamer to be filled again.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// Repo-relative path and where its bytes are in `data`.
    files: Vec<(String, std::ops::Range<usize>)>,
}

/// A batch is handed over once it holds this much.
const BATCH_BYTES: usize = 1 << 20;

struct Parsed {
    path: String,
    size: u64,
    digest: [u8; 32],
    result: Result<Vec<dispatcher_core::model::Job>, crate::jobs::JobFileError>,
    text: Option<Vec<u8>>,
}

enum Item {
    Config(Vec<u8>, (DispatcherConfig, Vec<Diagnostic>)),
    Clusters(Vec<u8>),
    Job(Parsed),
}

/// What a repo-relative path is to us.
fn classify(path: &str) -> Option<u8> {
    if path == CONFIG_PATH {
        Some(0)
    } else if path == CLUSTERS_PATH {
        Some(1)
    } else if path.starts_with(JOBS_DIR) && path.ends_with(".yaml") {
        Some(2)
    } else {
        None
    }
}

/// Maps a tarball member path to a repo-relative one: GitHub tarballs put everything under
/// `<owner>-<repo>-<sha>/`.
fn repo_relative(path: &str) -> Option<&str> {
    let path = path.trim_start_matches("./");
    if classify(path).is_some() {
        return Some(path);
    }
    let (_, rest) = path.split_once('/')?;
    classify(rest).map(|_| rest)
}

fn process(path: String, bytes: &[u8], opts: ReadOptions) -> Item {
    match classify(&path) {
        Some(0) => {
            let parsed = crate::config::parse_config(bytes, CONFIG_PATH);
            Item::Config(bytes.to_vec(), parsed)
        }
        Some(1) => Item::Clusters(bytes.to_vec()),
        _ => {
            let size = bytes.len() as u64;
            let result = match opts.parse {
                Parse::Fast => parse_job_file(bytes),
                Parse::Full => parse_job_file_full(bytes),
            };
            // A file that does not parse is identified by its bytes.
            let digest = match &result {
                Ok(jobs) => crate::digest::job_file(size, jobs),
                Err(_) => Sha256::digest(bytes).into(),
            };
            Item::Job(Parsed {
                size,
                digest,
                result,
                path,
                text: opts.keep_text.then(|| bytes.to_vec()),
            })
        }
    }
}

/// Reads a release from a directory or a `.tar.gz`; `progress` is called once per job file.
pub fn read_release(
    path: &Path,
    parse: Parse,
    progress: &(dyn Fn() + Sync),
) -> Result<Release, ReleaseError> {
    let opts = ReadOptions {
        parse,
        keep_text: false,
    };
    read(Source::Path(path.to_owned()), opts, progress)
}

/// Reads a release from any source; `progress` is called once per job file.
pub fn read(
    source: Source,
    opts: ReadOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<Release, ReleaseError> {
    let (items, dir) = match source {
        Source::Path(path) => {
            let io = |source| ReleaseError::Io {
                path: path.clone(),
                source,
            };
            if std::fs::metadata(&path).map_err(io)?.is_dir() {
                (read_dir(&path, opts, progress)?, Some(path))
            } else {
                let file = File::open(&path).map_err(io)?;
                let reader = BufReader::with_capacity(1 << 16, file);
                (read_tarball(Box::new(reader), &path, opts, progress)?, None)
            }
        }
        Source::Stream(reader) => (
            read_tarball(reader, Path::new("<tarball>"), opts, progress)?,
            None,
        ),
    };
    let mut release = Release::default();
    let mut parsed = Vec::new();
    for item in items {
        match item {
            Item::Config(b, parsed) => {
                release.config = Some(b);
                release.parsed_config = Some(parsed);
            }
            Item::Clusters(b) => release.clusters = Some(b),
            Item::Job(p) => parsed.push(p),
        }
    }
    if let Some(dir) = dir
        && parsed.is_empty()
        && !dir.join(JOBS_DIR).is_dir()
    {
        return Err(ReleaseError::NoJobs(dir));
    }
    parsed.sort_by(|a, b| a.path.cmp(&b.path));
    let mut digest = Sha256::new();
    for p in parsed {
        digest.update(p.path.as_bytes());
        digest.update([0]);
        digest.update(p.digest);
        if let Some(text) = p.text {
            release.texts.insert(p.path.clone(), text);
        }
        match p.result {
            Ok(jobs) => release.files.push(JobFile {
                path: p.path,
                size: p.size,
                jobs,
            }),
            Err(e) => release.diagnostics.push(Diagnostic::error(
                p.path,
                e.line.map(|l| format!("line {l}")).unwrap_or_default(),
                format!("job file does not parse, left out: {}", e.message),
            )),
        }
    }
    release.jobs_digest = crate::digest::hex(&digest.finalize());
    Ok(release)
}

fn read_dir(
    root: &Path,
    opts: ReadOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Item>, ReleaseError> {
    let mut paths: Vec<(PathBuf, String)> = Vec::new();
    for rel in [CONFIG_PATH, CLUSTERS_PATH] {
        let p = root.join(rel);
        if p.is_file() {
            paths.push((p, rel.to_owned()));
        }
    }
    let jobs_root = root.join(JOBS_DIR);
    if jobs_root.is_dir() {
        for entry in walkdir::WalkDir::new(&jobs_root).sort_by_file_name() {
            let entry = entry.map_err(|e| ReleaseError::Io {
                path: jobs_root.clone(),
                source: e.into(),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            if classify(&rel) == Some(2) {
                paths.push((entry.path().to_owned(), rel));
            }
        }
    }
    paths
        .into_par_iter()
        .map(|(abs, rel)| {
            let bytes =
                std::fs::read(&abs).map_err(|source| ReleaseError::Io { path: abs, source })?;
            let item = process(rel, &bytes, opts);
            if matches!(item, Item::Job(_)) {
                progress();
            }
            Ok(item)
        })
        .collect()
}

fn read_tarball(
    reader: Box<dyn Read + Send>,
    path: &Path,
    opts: ReadOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Item>, ReleaseError> {
    // One pool thread streams the archive and spawns a parse task per batch, which the
    // other threads take; when the stream ends, the streaming thread helps parse what is
    // left. Emptied buffers come back to the streamer to be filled again.
    let parsed: std::sync::Mutex<Vec<Item>> = std::sync::Mutex::new(Vec::new());
    let (back_tx, back_rx) = mpsc::channel::<Batch>();
    // Only the streamer receives; the mutex just makes the receiver shareable with it.
    let back_rx = std::sync::Mutex::new(back_rx);
    let io = |source| ReleaseError::Io {
        path: path.to_owned(),
        source,
    };
    let fresh = || {
        let mut b = back_rx
            .lock()
            .ok()
            .and_then(|rx| rx.try_recv().ok())
            .unwrap_or_else(|| Batch {
                data: Vec::with_capacity(2 * BATCH_BYTES),
                files: Vec::new(),
            });
        b.data.clear();
        b.files.clear();
        b
    };
    let parse_batch = |mut batch: Batch, back: mpsc::Sender<Batch>| {
        let items: Vec<Item> = batch
            .files
            .drain(..)
            .map(|(path, range)| {
                let item = process(path, &batch.data[range], opts);
                if matches!(item, Item::Job(_)) {
                    progress();
                }
                item
            })
            .collect();
        if let Ok(mut all) = parsed.lock() {
            all.extend(items);
        }
        // The streamer may be done already; then the buffer is simply dropped.
        let _ = back.send(batch);
    };
    rayon::scope(|scope| -> Result<(), ReleaseError> {
        let mut batch = fresh();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().map_err(io)?;
            let Some(rel) = repo_relative(&name.to_string_lossy()).map(str::to_owned) else {
                continue;
            };
            let size = usize::try_from(entry.size())
                .map_err(|_| io(std::io::Error::other(format!("{rel}: too large"))))?;
            // A file that does not fit is not appended: growing the buffer would copy it.
            if !batch.files.is_empty()
                && (batch.data.len() >= BATCH_BYTES
                    || batch.data.len() + size > batch.data.capacity())
            {
                let full = std::mem::replace(&mut batch, fresh());
                let back = back_tx.clone();
                let parse_batch = &parse_batch;
                scope.spawn(move |_| parse_batch(full, back));
            }
            // Sized up front and filled by one exact read: `read_to_end` would zero and
            // probe spare capacity far beyond the file.
            let start = batch.data.len();
            batch.data.resize(start + size, 0);
            entry.read_exact(&mut batch.data[start..]).map_err(io)?;
            batch.files.push((rel, start..batch.data.len()));
        }
        parse_batch(batch, back_tx.clone());
        Ok(())
    })?;
    let items = parsed.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_tarball_prefixes_are_stripped() {
        assert_eq!(
            repo_relative("openshift-release-abc123/ci-operator/jobs/o/r/x.yaml"),
            Some("ci-operator/jobs/o/r/x.yaml")
        );
        assert_eq!(
            repo_relative("ci-operator/jobs/o/r/x.yaml"),
            Some("ci-operator/jobs/o/r/x.yaml")
        );
        assert_eq!(
            repo_relative("./core-services/sanitize-prow-jobs/_config.yaml"),
            Some(CONFIG_PATH)
        );
        assert_eq!(repo_relative("ci-operator/jobs/o/r/OWNERS"), None);
        assert_eq!(repo_relative("ci-operator/config/o/r/x.yaml"), None);
    }
}
