//! A fast reader of Prow job files as openshift/release writes them (block YAML, generated
//! by ci-operator-prowgen and the sanitizer), reading only the fields the rules need.
//!
//! It exists because a YAML library spends most of a placement run on bytes the rules never
//! read (the 83 MB of the real tree hold about 12 MB of read fields). It is a fast path, not
//! a second YAML parser: [`read`] answers `None` whenever the file uses YAML it does not
//! handle *in a place it reads* (flow collections other than `{}` and `[]`, block scalars,
//! anchors, aliases, tags, escapes, multi-line scalars, plain scalars that YAML could type
//! as null, a boolean or a number, duplicate keys, several documents, quoted keys, ...), and
//! the caller then parses the file with `yaml_serde`. What it skips it skips by indentation,
//! exactly like a block-structured reader must: an entry's value is every following line
//! indented deeper than its key, plus a compact sequence at the key's indentation. YAML
//! errors inside skipped values go unnoticed (`Parse::Full` reports those). The corpus test
//! holds it to `yaml_serde` file by file, and a property test on generated files.
//!
//! The modules: [`cursor`] reads significant lines and skips values, [`blocks`] walks
//! mappings and sequences, [`scalars`] reads the values on a key's line; this module knows
//! the shape of a Prow job file and the fields it reads.

mod blocks;
mod cursor;
mod scalars;

use dispatcher_core::model::{Container, Job, JobKind, Labels, labels};

use crate::yaml::lines::Line;
use blocks::{map_entries, map_value, seq_value, skip_value, value};
use cursor::Cursor;
use scalars::Value;

/// Reads the jobs of a file, or `None` when the library must decide.
pub(crate) fn read(text: &str) -> Option<Vec<Job>> {
    // A carriage return alone breaks a line in YAML, not here: such files are the
    // library's (real ones have none, and `\r\n` is read as one break).
    if memchr::memchr_iter(b'\r', text.as_bytes())
        .any(|i| text.as_bytes().get(i + 1) != Some(&b'\n'))
    {
        return None;
    }
    // A byte order mark, at the start or (as fuzzing found) before a line's indentation,
    // is skipped by the library's scanner and would be content here.
    if memchr::memmem::find(text.as_bytes(), "\u{feff}".as_bytes()).is_some() {
        return None;
    }
    let mut cur = Cursor::new(text);
    let Some(first) = cur.peek() else {
        return Some(Vec::new());
    };
    if first.indent != 0 {
        return None;
    }
    let mut pre: Option<Vec<(&str, Vec<Job>)>> = None;
    let mut post: Option<Vec<(&str, Vec<Job>)>> = None;
    let mut periodics: Option<Vec<Job>> = None;
    let first = cur.take()?;
    map_entries(&mut cur, first, 0, |cur, key, key_indent, rest| {
        let (slot, kind) = match key {
            "presubmits" => (&mut pre, JobKind::Presubmit),
            "postsubmits" => (&mut post, JobKind::Postsubmit),
            "periodics" => {
                let jobs = job_list(cur, key_indent, rest, JobKind::Periodic)?;
                return set_once(&mut periodics, jobs);
            }
            _ => return skip_value(cur, key_indent),
        };
        let mut repos = Vec::new();
        map_value(cur, key_indent, rest, |cur, repo, repo_indent, rest| {
            repos.push((repo, job_list(cur, repo_indent, rest, kind)?));
            Some(())
        })?;
        // A map by repository: sorted, and a repository named twice is the library's call.
        repos.sort_by(|a, b| a.0.cmp(b.0));
        if repos.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        set_once(slot, repos)
    })?;
    if cur.peek().is_some() || cur.stop {
        return None;
    }
    let mut jobs = Vec::new();
    for section in [pre, post].into_iter().flatten() {
        jobs.extend(section.into_iter().flat_map(|(_, j)| j));
    }
    jobs.extend(periodics.into_iter().flatten());
    Some(jobs)
}

/// The jobs of a `periodics` list or of one repository's list.
fn job_list<'a>(
    cur: &mut Cursor<'a>,
    key_indent: usize,
    rest: &'a str,
    kind: JobKind,
) -> Option<Vec<Job>> {
    let mut jobs = Vec::new();
    seq_value(cur, key_indent, rest, |cur, line, indent| {
        jobs.push(job(cur, line, indent, kind)?);
        Some(())
    })?;
    Some(jobs)
}

/// A string field: a scalar the library reads as the same string, or null.
fn string_field<'a>(
    cur: &mut Cursor<'a>,
    key_indent: usize,
    rest: &'a str,
) -> Option<Option<String>> {
    match value(cur, key_indent, rest)? {
        Value::Null => Some(None),
        Value::Scalar(s) if !s.typed() => Some(Some(s.to_owned_text())),
        _ => None,
    }
}

/// One job mapping, from its first line (the item's body).
fn job<'a>(cur: &mut Cursor<'a>, first: Line<'a>, indent: usize, kind: JobKind) -> Option<Job> {
    let mut name = None;
    let mut agent = None;
    let mut cluster = None;
    let mut labels = None;
    let mut containers = None;
    map_entries(cur, first, indent, |cur, key, key_indent, rest| match key {
        "name" => set_once(&mut name, string_field(cur, key_indent, rest)?),
        "agent" => set_once(&mut agent, string_field(cur, key_indent, rest)?),
        "cluster" => set_once(&mut cluster, string_field(cur, key_indent, rest)?),
        "labels" => set_once(&mut labels, job_labels(cur, key_indent, rest)?),
        "spec" => set_once(&mut containers, spec(cur, key_indent, rest)?),
        _ => skip_value(cur, key_indent),
    })?;
    // A job without a name is an error the library reports.
    let name = name.flatten().filter(|n| !n.is_empty())?;
    Some(Job {
        name,
        kind,
        // `kubernetes` is the default agent: stored as empty, which needs no allocation.
        agent: agent
            .flatten()
            .filter(|a| a != "kubernetes")
            .unwrap_or_default(),
        cluster: cluster.flatten().filter(|c| !c.is_empty()),
        labels: labels.unwrap_or_default(),
        containers: containers.unwrap_or_default(),
    })
}

/// Sets a field seen for the first time; a duplicate key is the library's call.
fn set_once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

/// The labels the rules read (`labels::is_read`); the others are only skipped.
fn job_labels<'a>(cur: &mut Cursor<'a>, key_indent: usize, rest: &'a str) -> Option<Labels> {
    let mut out = Labels::new();
    // Every key, read or not: a key given twice is the library's call (it refuses it).
    let mut keys: Vec<&str> = Vec::new();
    map_value(cur, key_indent, rest, |cur, key, key_indent, rest| {
        if keys.contains(&key) {
            return None;
        }
        keys.push(key);
        if !labels::is_read(key) {
            return skip_value(cur, key_indent);
        }
        let v = string_field(cur, key_indent, rest)?.unwrap_or_default();
        out.insert(key.to_owned(), v).is_none().then_some(())
    })?;
    Some(out)
}

/// The containers of a job's pod spec; the rest of the spec is skipped.
fn spec<'a>(cur: &mut Cursor<'a>, key_indent: usize, rest: &'a str) -> Option<Vec<Container>> {
    let mut containers = None;
    map_value(cur, key_indent, rest, |cur, key, key_indent, rest| {
        if key != "containers" {
            return skip_value(cur, key_indent);
        }
        let mut list = Vec::new();
        seq_value(cur, key_indent, rest, |cur, line, indent| {
            list.push(container(cur, line, indent)?);
            Some(())
        })?;
        set_once(&mut containers, list)
    })?;
    Some(containers.unwrap_or_default())
}

/// A container's image and `CLUSTER_TYPE` values.
fn container<'a>(cur: &mut Cursor<'a>, first: Line<'a>, indent: usize) -> Option<Container> {
    let mut image = None;
    let mut cluster_types = None;
    map_entries(cur, first, indent, |cur, key, key_indent, rest| match key {
        "image" => set_once(&mut image, string_field(cur, key_indent, rest)?),
        "env" => set_once(&mut cluster_types, env(cur, key_indent, rest)?),
        _ => skip_value(cur, key_indent),
    })?;
    Some(Container {
        image: image.flatten().unwrap_or_default(),
        cluster_types: cluster_types.unwrap_or_default(),
    })
}

/// The values of `CLUSTER_TYPE` variables. Other variables' values are not read, so they
/// may be anything; a `CLUSTER_TYPE` whose value the reader cannot read is the library's.
fn env<'a>(cur: &mut Cursor<'a>, key_indent: usize, rest: &'a str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    seq_value(cur, key_indent, rest, |cur, line, indent| {
        let mut name: Option<Option<String>> = None;
        // Some(text) read, None unreadable; the outer Option: seen.
        let mut val: Option<Option<String>> = None;
        map_entries(cur, line, indent, |cur, key, key_indent, rest| match key {
            "name" => set_once(&mut name, string_field(cur, key_indent, rest)?),
            "value" => {
                let v = match value(cur, key_indent, rest)? {
                    Value::Null => Some(String::new()),
                    Value::Scalar(s) if !s.typed() => Some(s.to_owned_text()),
                    // Not a string at all: the library rejects the file.
                    Value::Block(_) | Value::EmptyMap | Value::EmptySeq => return None,
                    _ => None,
                };
                skip_value(cur, key_indent)?;
                set_once(&mut val, v)
            }
            _ => skip_value(cur, key_indent),
        })?;
        if name.flatten().as_deref() == Some("CLUSTER_TYPE") {
            out.push(val.unwrap_or(Some(String::new()))?);
        }
        Some(())
    })?;
    Some(out)
}
