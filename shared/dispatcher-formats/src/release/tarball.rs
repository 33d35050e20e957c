//! A release as a `.tar.gz`, streamed: untrusted input, so every member is checked before
//! it is read, the decompressed size is bounded, and only a whole archive is accepted (a
//! download that ends early must not be planned as a release whose jobs were deleted).

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::{Component, Path};
use std::sync::mpsc;

use super::{BATCH_BYTES, Batch, Item, Limits, ReadOptions, ReleaseError, classify, process};

/// The decompressed stream, counted: it refuses to yield more than the archive limit and
/// remembers how many zero bytes it ended with, so that the end-of-archive marker can be
/// told from a stream that merely stopped.
struct Guarded<R> {
    inner: R,
    read: u64,
    limit: u64,
    trailing_zeros: u64,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(format!(
                "more than {} decompressed bytes (the archive limit)",
                self.limit
            )));
        }
        let chunk = &buf[..n];
        match chunk.iter().rposition(|b| *b != 0) {
            Some(last) => self.trailing_zeros = (n - last - 1) as u64,
            None => self.trailing_zeros += n as u64,
        }
        Ok(n)
    }
}

/// Where an archive's members are: GitHub puts everything under `<owner>-<repo>-<sha>/`,
/// `tar -C checkout .` puts it at the top. One archive has one of the two layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// Not known before the first member.
    Unknown,
    /// Members are repository paths.
    Bare,
    /// Every member is under this top-level folder.
    Rooted(String),
}

/// The checks on member paths, and the files read so far (to refuse a second copy).
struct Members {
    layout: Layout,
    seen: BTreeSet<String>,
    /// The last member, to place an error in a header that cannot name its own.
    last: String,
}

impl Members {
    /// The repository-relative path of a member, if the dispatcher reads it; an error for
    /// a path that escapes the archive, a second top-level folder or a second copy.
    fn relative(&mut self, name: &str, is_file: bool) -> Result<Option<String>, String> {
        let path = Path::new(name);
        if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err("the path escapes the archive".to_owned());
        }
        let name = name.trim_start_matches("./");
        let first = name.split('/').next().unwrap_or_default();
        if first.is_empty() || first == "." {
            return Ok(None);
        }
        if self.layout == Layout::Unknown {
            // A member at the top, or the repository's own folders, mean a bare layout.
            let bare = (is_file && !name.contains('/'))
                || first == "ci-operator"
                || first == "core-services";
            self.layout = if bare {
                Layout::Bare
            } else {
                Layout::Rooted(first.to_owned())
            };
        }
        let relative = match &self.layout {
            Layout::Rooted(root) if first == root => name
                .strip_prefix(root.as_str())
                .unwrap_or(name)
                .trim_start_matches('/'),
            Layout::Rooted(root) => {
                return Err(format!(
                    "a second top-level folder beside {root}/: one release per archive"
                ));
            }
            _ => name,
        };
        if classify(relative).is_none() {
            return Ok(None);
        }
        if !self.seen.insert(relative.to_owned()) {
            return Err(format!("{relative} is in the archive twice"));
        }
        Ok(Some(relative.to_owned()))
    }
}

/// Reads a `.tar.gz` release: one pool thread streams the archive and spawns a parse task
/// per batch, which the other threads take; when the stream ends, the streaming thread
/// helps parse what is left. Emptied buffers come back to the streamer to be filled again.
pub(super) fn read_tarball(
    reader: Box<dyn Read + Send>,
    archive_name: &Path,
    opts: ReadOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Item>, ReleaseError> {
    let parsed: std::sync::Mutex<Vec<Item>> = std::sync::Mutex::new(Vec::new());
    let (back_tx, back_rx) = mpsc::channel::<Batch>();
    // Only the streamer receives; the mutex just makes the receiver shareable with it.
    let back_rx = std::sync::Mutex::new(back_rx);
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
        let stream = Stream::new(reader, archive_name, opts.limits);
        let mut batch = fresh();
        stream.each_file(|rel, size, entry| {
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
            entry.read_exact(&mut batch.data[start..])?;
            batch.files.push((rel, start..batch.data.len()));
            Ok(())
        })?;
        parse_batch(batch, back_tx.clone());
        Ok(())
    })?;
    Ok(parsed.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// The archive being read, with its checks.
struct Stream<'n> {
    archive: tar::Archive<Guarded<flate2::read::GzDecoder<Box<dyn Read + Send>>>>,
    name: &'n Path,
    limits: Limits,
}

impl<'n> Stream<'n> {
    fn new(reader: Box<dyn Read + Send>, name: &'n Path, limits: Limits) -> Self {
        let guarded = Guarded {
            inner: flate2::read::GzDecoder::new(reader),
            read: 0,
            limit: limits.archive_bytes,
            trailing_zeros: 0,
        };
        Self {
            archive: tar::Archive::new(guarded),
            name,
            limits,
        }
    }

    /// Calls `read` with every member the dispatcher reads (its repository path, its size,
    /// the entry to read it from), after checking every member of the archive; then checks
    /// that the archive was whole.
    fn each_file(
        mut self,
        mut read: impl FnMut(String, usize, &mut dyn Read) -> io::Result<()>,
    ) -> Result<(), ReleaseError> {
        let mut members = Members {
            layout: Layout::Unknown,
            seen: BTreeSet::new(),
            last: String::new(),
        };
        let (name, limits) = (self.name.to_owned(), self.limits);
        let located = |last: &str| {
            if last.is_empty() {
                "the first member".to_owned()
            } else {
                format!("the member after {last}")
            }
        };
        let entries = self.archive.entries().map_err(|e| ReleaseError::Io {
            path: name.clone(),
            source: e,
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|e| ReleaseError::Member {
                archive: name.clone(),
                member: located(&members.last),
                problem: "cannot read its header".to_owned(),
                cause: Some(e),
            })?;
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            ) {
                continue; // metadata: GitHub's archive comment with the commit
            }
            let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let failed = |problem: String, cause: Option<io::Error>| ReleaseError::Member {
                archive: name.clone(),
                member: member.clone(),
                problem,
                cause,
            };
            let problem = |p: String| failed(p, None);
            let rel = members.relative(&member, kind.is_file()).map_err(problem)?;
            members.last = member.clone();
            let Some(rel) = rel else { continue };
            if !kind.is_file() {
                return Err(problem(format!(
                    "{rel} is a {}, not a regular file: links are not followed",
                    kind_name(kind)
                )));
            }
            let size = entry.size();
            if size > limits.member_bytes {
                return Err(problem(format!(
                    "{size} bytes, more than the {} allowed for one file (DISPATCHER_MAX_FILE_BYTES, --max-file-bytes)",
                    limits.member_bytes
                )));
            }
            let size = usize::try_from(size).map_err(|_| problem("too large".to_owned()))?;
            read(rel, size, &mut entry)
                .map_err(|e| failed("cannot read it".to_owned(), Some(e)))?;
        }
        self.finish(&members.last)
    }

    /// An archive is whole when its end-of-archive marker (two zero blocks) is there and the
    /// gzip stream ends with its trailer (checksum and length verified).
    fn finish(self, last: &str) -> Result<(), ReleaseError> {
        let after = if last.is_empty() {
            "before any member".to_owned()
        } else {
            format!("after {last}")
        };
        let name = self.name;
        let truncated = |reason: String| ReleaseError::Incomplete {
            archive: name.to_owned(),
            reason,
            cause: None,
        };
        let mut stream = self.archive.into_inner();
        let marker = stream.trailing_zeros >= 512;
        // What follows the marker is padding: zeros up to the gzip trailer.
        let mut rest = [0u8; 8192];
        loop {
            match stream.read(&mut rest) {
                Ok(0) => break,
                Ok(n) if rest[..n].iter().all(|b| *b == 0) => {}
                Ok(_) => {
                    return Err(truncated(format!(
                        "data after the end-of-archive marker (which came {after})"
                    )));
                }
                Err(e) => {
                    return Err(ReleaseError::Incomplete {
                        archive: name.to_owned(),
                        reason: "the gzip stream is not whole".to_owned(),
                        cause: Some(e),
                    });
                }
            }
        }
        if !marker || stream.trailing_zeros < 1024 {
            return Err(truncated(format!(
                "the archive ends without its end-of-archive marker, {after}: cut short?"
            )));
        }
        Ok(())
    }
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Directory => "directory",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "fifo",
        _ => "special file",
    }
}

#[cfg(test)]
mod tests;
