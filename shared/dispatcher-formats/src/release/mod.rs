//! Reading a release repository: a checkout directory or a `.tar.gz` of one (as GitHub
//! serves tarballs, with or without a top-level directory), streamed and parsed in parallel.

mod tarball;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

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

/// Where the dispatcher config is in a release.
pub const CONFIG_PATH: &str = "core-services/sanitize-prow-jobs/_config.yaml";
/// Where the inventory is in a release.
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

/// Bounds on a release: it is untrusted input (a push to the release repository, a
/// download that may be cut short), so what is read is bounded before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file the dispatcher reads (a job file, the config, the inventory),
    /// decompressed. Default 64 MiB: the largest real job file is 1.8 MB.
    pub member_bytes: u64,
    /// The most decompressed bytes of a whole archive, members the dispatcher skips
    /// included (a gzip bomb ends here). Default 4 GiB: the real job tree is 84 MB.
    pub archive_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            member_bytes: 64 << 20,
            archive_bytes: 4 << 30,
        }
    }
}

/// How a release is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// How thoroughly job files are parsed.
    pub parse: Parse,
    /// Keep every job file's bytes (to write a plan back into them).
    pub keep_text: bool,
    /// What a release may hold.
    pub limits: Limits,
}

/// The parts of a release the dispatcher reads.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// The bytes of `_config.yaml`, when the release has one.
    pub config: Option<Vec<u8>>,
    /// `config` parsed (by the pool that parses the job files, while they stream).
    pub parsed_config: Option<(DispatcherConfig, Vec<Diagnostic>)>,
    /// The bytes of `_clusters.yaml`, when the release has one.
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

/// Why a release could not be read: nothing of it is used then.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The checkout, archive or stream could not be read.
    #[error("cannot read {}", .path.display())]
    Io {
        /// The directory, file or archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory that is not a checkout of the release repository.
    #[error("{0} has no {JOBS_DIR} directory: not a release checkout")]
    NoJobs(PathBuf),
    /// A member (or a file of a checkout) that must not be read: a path escaping the
    /// archive, a link, a second copy, a second top-level folder, a file over the limit.
    #[error("{}: {member}: {problem}", .archive.display())]
    Member {
        /// The archive or checkout.
        archive: PathBuf,
        /// The member's path (or where it is, for a header that cannot name it).
        member: String,
        /// What is wrong with it.
        problem: String,
        /// The read error behind the problem, if one.
        #[source]
        cause: Option<std::io::Error>,
    },
    /// The archive is not whole: a download cut short is not a release whose jobs were
    /// deleted.
    #[error("{}: incomplete archive: {reason}", .archive.display())]
    Incomplete {
        /// The archive.
        archive: PathBuf,
        /// What is missing, and after which member.
        reason: String,
        /// The read error that told it, if one.
        #[source]
        cause: Option<std::io::Error>,
    },
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

/// What a repo-relative path is to the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Clusters,
    Job,
}

/// What a repo-relative path is to us, if anything.
fn classify(path: &str) -> Option<Kind> {
    if path == CONFIG_PATH {
        Some(Kind::Config)
    } else if path == CLUSTERS_PATH {
        Some(Kind::Clusters)
    } else if path.starts_with(JOBS_DIR) && path.ends_with(".yaml") {
        Some(Kind::Job)
    } else {
        None
    }
}

fn process(path: String, bytes: &[u8], opts: ReadOptions) -> Item {
    match classify(&path) {
        Some(Kind::Config) => {
            let parsed = crate::config::parse_config(bytes, CONFIG_PATH);
            Item::Config(bytes.to_vec(), parsed)
        }
        Some(Kind::Clusters) => Item::Clusters(bytes.to_vec()),
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
        ..ReadOptions::default()
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
                let items = tarball::read_tarball(Box::new(reader), &path, opts, progress)?;
                (items, None)
            }
        }
        Source::Stream(reader) => (
            tarball::read_tarball(reader, Path::new("<tarball>"), opts, progress)?,
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

/// A file of a checkout, refused when it is over the member limit (before it is read).
fn read_bounded(
    abs: &Path,
    rel: &str,
    root: &Path,
    limits: Limits,
) -> Result<Vec<u8>, ReleaseError> {
    let io = |source| ReleaseError::Io {
        path: abs.to_owned(),
        source,
    };
    let size = std::fs::symlink_metadata(abs).map_err(io)?.len();
    if size > limits.member_bytes {
        return Err(ReleaseError::Member {
            archive: root.to_owned(),
            member: rel.to_owned(),
            problem: format!(
                "{size} bytes, more than the {} allowed for one file (DISPATCHER_MAX_FILE_BYTES, --max-file-bytes)",
                limits.member_bytes
            ),
            cause: None,
        });
    }
    std::fs::read(abs).map_err(io)
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
            let Ok(rel) = entry.path().strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            if classify(&rel) != Some(Kind::Job) {
                continue;
            }
            // A link is not followed: a job file that is one would be read from elsewhere
            // in one checkout and skipped in the tarball of the same commit.
            if !entry.file_type().is_file() {
                if entry.file_type().is_dir() {
                    continue;
                }
                return Err(ReleaseError::Member {
                    archive: root.to_owned(),
                    member: rel,
                    problem: "not a regular file: links are not followed".to_owned(),
                    cause: None,
                });
            }
            paths.push((entry.path().to_owned(), rel));
        }
    }
    paths
        .into_par_iter()
        .map(|(abs, rel)| {
            let bytes = read_bounded(&abs, &rel, root, opts.limits)?;
            let item = process(rel, &bytes, opts);
            if matches!(item, Item::Job(_)) {
                progress();
            }
            Ok(item)
        })
        .collect()
}
