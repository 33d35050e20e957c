//! Writing a plan back as the file-based backup: the `cluster:` field of changed jobs and
//! the `buildFarm` section of `_config.yaml`, changing no other byte.
//!
//! No YAML library preserves formatting on a round trip, so the edits are textual, guided
//! by the block structure of the files, and every rewritten job file is verified by parsing
//! it again: all jobs must be identical to the original except for the clusters we set.

use std::collections::BTreeMap;

use dispatcher_core::Plan;
use dispatcher_core::model::{JobFile, JobKind};
use dispatcher_core::plan::ClusterState;

use crate::jobs::parse_job_file_full;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WritebackError {
    #[error("line {line}: {message}")]
    Layout { line: usize, message: String },
    #[error("the file does not parse: {0}")]
    Parse(String),
    #[error("the rewritten file does not verify: {0}")]
    Verify(String),
}

struct Line<'a> {
    /// Byte offset of the line in the file.
    start: usize,
    /// The line without its line ending.
    text: &'a str,
    indent: usize,
}

impl Line<'_> {
    fn content(&self) -> &str {
        &self.text[self.indent..]
    }

    fn is_blank(&self) -> bool {
        let c = self.content().trim();
        c.is_empty() || c.starts_with('#')
    }

    fn is_item(&self) -> bool {
        let c = self.content();
        c == "-" || c.starts_with("- ") || c.starts_with("-\t")
    }
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches('\n').trim_end_matches('\r');
        let indent = body.len() - body.trim_start_matches(' ').len();
        out.push(Line {
            start,
            text: body,
            indent,
        });
        start += raw.len();
    }
    out
}

fn line_ending(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// `key: value` on one line (after any `- `): the key and the byte range of the value.
fn split_key(line: &Line<'_>, from: usize) -> Option<(String, usize, usize)> {
    let s = &line.text[from..];
    let (key, rest_at) = if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = s[1..].find(q)? + 1;
        (s[1..end].to_owned(), end + 1)
    } else {
        let colon = s.find(':')?;
        (s[..colon].trim_end().to_owned(), colon)
    };
    let rest = &s[rest_at..];
    let rest = rest.strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let value_off = rest.len() - rest.trim_start().len();
    let mut value = rest.trim_start();
    // A plain or quoted value ends before a comment.
    if !value.starts_with('"')
        && !value.starts_with('\'')
        && let Some(h) = value.find(" #")
    {
        value = &value[..h];
    }
    let value = value.trim_end();
    let vstart = line.start + from + rest_at + 1 + value_off;
    Some((key, vstart, vstart + value.len()))
}

/// One job mapping: where its direct keys are.
struct Item {
    /// The section it is in.
    kind: JobKind,
    /// Direct keys: (key, line index, value start, value end).
    keys: Vec<(String, usize, usize, usize)>,
    key_indent: usize,
    /// Line index just past the item.
    end: usize,
}

/// Items of a block sequence in lines `[from, to)`.
fn sequence_items(
    ls: &[Line<'_>],
    from: usize,
    to: usize,
    kind: JobKind,
) -> Result<Vec<Item>, WritebackError> {
    let Some(first) = (from..to).find(|&i| !ls[i].is_blank()) else {
        return Ok(Vec::new());
    };
    if !ls[first].is_item() {
        let c = ls[first].content().trim();
        if c.starts_with('[') || c.is_empty() {
            return Err(WritebackError::Layout {
                line: first + 1,
                message: "flow-style lists are not supported".to_owned(),
            });
        }
        return Err(WritebackError::Layout {
            line: first + 1,
            message: "expected a list item".to_owned(),
        });
    }
    let s = ls[first].indent;
    let starts: Vec<usize> = (first..to)
        .filter(|&i| !ls[i].is_blank() && ls[i].indent == s && ls[i].is_item())
        .collect();
    let mut items = Vec::new();
    for (n, &a) in starts.iter().enumerate() {
        let b = starts.get(n + 1).copied().unwrap_or(to);
        let dash = &ls[a];
        let after = &dash.content()[1..];
        let spaces = after.len() - after.trim_start_matches(' ').len();
        let inline = !after.trim().is_empty();
        let key_indent = if inline {
            dash.indent + 1 + spaces
        } else {
            match (a + 1..b).find(|&i| !ls[i].is_blank()) {
                Some(i) => ls[i].indent,
                None => continue,
            }
        };
        if inline && after.trim_start().starts_with('{') {
            return Err(WritebackError::Layout {
                line: a + 1,
                message: "flow-style job mappings are not supported".to_owned(),
            });
        }
        let mut keys = Vec::new();
        if inline {
            let (k, vs, ve) = split_key(dash, key_indent).ok_or(WritebackError::Layout {
                line: a + 1,
                message: "expected `key: value` after `- `".to_owned(),
            })?;
            keys.push((k, a, vs, ve));
        }
        for (i, l) in ls.iter().enumerate().take(b).skip(a + 1) {
            if l.is_blank() || l.indent != key_indent {
                continue;
            }
            if let Some((k, vs, ve)) = split_key(l, key_indent) {
                keys.push((k, i, vs, ve));
            }
        }
        items.push(Item {
            kind,
            keys,
            key_indent,
            end: b,
        });
    }
    Ok(items)
}

/// End of the block value of a key at `indent` on line `at`: compact sequences may sit at
/// the key's own indentation.
fn block_end(ls: &[Line<'_>], at: usize, indent: usize, to: usize) -> usize {
    (at + 1..to)
        .find(|&i| {
            let l = &ls[i];
            !l.is_blank() && (l.indent < indent || (l.indent == indent && !l.is_item()))
        })
        .unwrap_or(to)
}

/// All job items of a Prow job file.
fn job_items(ls: &[Line<'_>]) -> Result<Vec<Item>, WritebackError> {
    let n = ls.len();
    let mut items = Vec::new();
    let tops: Vec<usize> = (0..n)
        .filter(|&i| !ls[i].is_blank() && ls[i].indent == 0)
        .collect();
    for &t in &tops {
        let Some((key, vs, ve)) = split_key(&ls[t], 0) else {
            continue;
        };
        let end = block_end(ls, t, 0, n);
        let inline_value = vs < ve;
        match key.as_str() {
            "periodics" => {
                if inline_value {
                    if &ls[t].text[vs - ls[t].start..ve - ls[t].start] == "[]" {
                        continue;
                    }
                    return Err(WritebackError::Layout {
                        line: t + 1,
                        message: "flow-style periodics are not supported".to_owned(),
                    });
                }
                items.extend(sequence_items(ls, t + 1, end, JobKind::Periodic)?);
            }
            "presubmits" | "postsubmits" => {
                let kind = if key == "presubmits" {
                    JobKind::Presubmit
                } else {
                    JobKind::Postsubmit
                };
                if inline_value {
                    if &ls[t].text[vs - ls[t].start..ve - ls[t].start] == "{}" {
                        continue;
                    }
                    return Err(WritebackError::Layout {
                        line: t + 1,
                        message: format!("flow-style {key} are not supported"),
                    });
                }
                let Some(first) = (t + 1..end).find(|&i| !ls[i].is_blank()) else {
                    continue;
                };
                let r = ls[first].indent;
                let repos: Vec<usize> = (t + 1..end)
                    .filter(|&i| !ls[i].is_blank() && ls[i].indent == r && !ls[i].is_item())
                    .collect();
                for &k in &repos {
                    let repo_end = block_end(ls, k, r, end);
                    items.extend(sequence_items(ls, k + 1, repo_end, kind)?);
                }
            }
            _ => {}
        }
    }
    Ok(items)
}

/// A scalar as YAML text: plain when that reads back as the same string, else quoted.
pub fn yaml_scalar(s: &str) -> String {
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    // A colon is plain inside a scalar (`ci-operator:latest`), as Go's marshaller writes
    // it, but not at its end, where it would start a mapping.
    let plain = !special
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
        && !s.ends_with(':')
        && s.parse::<f64>().is_err();
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn unquote(v: &str) -> String {
    yaml_serde::from_str::<String>(v).unwrap_or_else(|_| v.to_owned())
}

/// The Go sanitizer's arm64 build cluster (ci-tools `api.ClusterARM01`).
pub const ARM64_CLUSTER: &str = "arm01";
/// The ci-operator image the Go sanitizer writes for jobs on [`ARM64_CLUSTER`].
pub const ARM64_IMAGE: &str = "ci-operator-arm64:latest";
/// The ci-operator image ci-operator-prowgen writes today (ci-tools `pkg/prowgen`), which
/// `make jobs` regenerates for a job that is not on [`ARM64_CLUSTER`].
pub const PROWGEN_IMAGE: &str = "quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest";

/// ci-tools' `isCIOperatorLatest`: `ci-operator:latest` under any registry, or the proxy
/// spelling prowgen writes.
pub fn is_ci_operator_latest(image: &str) -> bool {
    image.rsplit('/').next() == Some("ci-operator:latest") || image == PROWGEN_IMAGE
}

/// The first container's new image for a job placed on `cluster`, if it must change: the
/// Go sanitizer switches pre- and postsubmits landing on the arm64 cluster to the arm64
/// image (any spelling of `ci-operator:latest`), and never periodics. We also switch a job
/// that leaves the arm64 cluster back to prowgen's image, which is what `make jobs`
/// regenerates for it (the Go sanitizer alone would leave the arm64 image on an amd64
/// cluster).
pub fn switched_image(kind: JobKind, cluster: &str, image: &str) -> Option<&'static str> {
    if kind == JobKind::Periodic {
        return None;
    }
    let arm64 = cluster == ARM64_CLUSTER;
    let on_arm64_image = image.rsplit('/').next() == Some(ARM64_IMAGE);
    if arm64 && is_ci_operator_latest(image) {
        Some(ARM64_IMAGE)
    } else if !arm64 && on_arm64_image {
        Some(PROWGEN_IMAGE)
    } else {
        None
    }
}

/// Whether writing `plan` back changes any byte of `file`: a `cluster:` field or a
/// ci-operator image.
pub fn needs_rewrite(file: &JobFile, plan: &Plan) -> bool {
    file.jobs.iter().any(|j| {
        planned_cluster(plan, &j.name).is_some_and(|c| {
            j.cluster.as_deref() != Some(c.as_str())
                || j.containers
                    .first()
                    .is_some_and(|x| switched_image(j.kind, &c, &x.image).is_some())
        })
    })
}

/// The byte range of the first container's `image:` value of a job item, if it has one in
/// block style (`spec:` > `containers:` > first item > `image:`).
fn first_image(ls: &[Line<'_>], item: &Item) -> Option<(usize, usize)> {
    let &(_, spec_line, vs, ve) = item.keys.iter().find(|k| k.0 == "spec")?;
    if vs < ve {
        return None; // an inline (flow) spec
    }
    let spec_end = block_end(ls, spec_line, item.key_indent, item.end);
    let first = (spec_line + 1..spec_end).find(|&i| !ls[i].is_blank())?;
    let indent = ls[first].indent;
    let containers = (first..spec_end).find(|&i| {
        ls[i].indent == indent
            && !ls[i].is_blank()
            && split_key(&ls[i], indent).is_some_and(|(k, ..)| k == "containers")
    })?;
    let end = block_end(ls, containers, indent, spec_end);
    let container = sequence_items(ls, containers + 1, end, item.kind)
        .ok()?
        .into_iter()
        .next()?;
    container
        .keys
        .iter()
        .find(|k| k.0 == "image")
        .map(|&(_, _, s, e)| (s, e))
}

/// Sets the `cluster:` field of jobs in one job file, and switches the ci-operator image
/// of those that land on or leave the arm64 cluster ([`switched_image`]). `want` maps a
/// job name to its new cluster, or `None` to leave it. Returns the new text and the number
/// of jobs changed, or `None` when nothing changes.
pub fn rewrite_job_clusters(
    text: &str,
    want: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, usize)>, WritebackError> {
    let ls = lines(text);
    let items = job_items(&ls)?;
    let eol = line_ending(text);
    // (offset, end, replacement), applied back to front.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut changed = 0;
    for item in &items {
        let Some((_, _, vs, ve)) = item.keys.iter().find(|k| k.0 == "name") else {
            continue;
        };
        let name = unquote(&text[*vs..*ve]);
        let Some(target) = want(&name).filter(|t| !t.is_empty()) else {
            continue;
        };
        let before = edits.len();
        if let Some((s, e)) = first_image(&ls, item)
            && let Some(image) = switched_image(item.kind, &target, &unquote(&text[s..e]))
        {
            edits.push((s, e, yaml_scalar(image)));
        }
        match item.keys.iter().find(|k| k.0 == "cluster") {
            Some((_, _, cs, ce)) => {
                if unquote(&text[*cs..*ce]) != target {
                    edits.push((*cs, *ce, yaml_scalar(&target)));
                }
            }
            None => {
                // Insert among the sorted keys, as Prow's marshaller orders them: before the
                // first key that sorts after `cluster` (but never before the `- ` line).
                let at = item
                    .keys
                    .iter()
                    .skip(1)
                    .find(|k| k.0.as_str() > "cluster")
                    .map_or(item.end, |k| k.1);
                let at = trailing_blank_start(&ls, at, item.keys.first().map_or(0, |k| k.1));
                let offset = ls.get(at).map_or(text.len(), |l| l.start);
                let lead = if offset == text.len() && !text.is_empty() && !text.ends_with('\n') {
                    eol
                } else {
                    ""
                };
                edits.push((
                    offset,
                    offset,
                    format!(
                        "{lead}{}cluster: {}{eol}",
                        " ".repeat(item.key_indent),
                        yaml_scalar(&target)
                    ),
                ));
            }
        }
        if edits.len() > before {
            changed += 1;
        }
    }
    if edits.is_empty() {
        return Ok(None);
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_owned();
    for (s, e, r) in edits {
        out.replace_range(s..e, &r);
    }
    verify(text, &out, want)?;
    Ok(Some((out, changed)))
}

/// Moves an insertion point before blank and comment lines that end the previous value,
/// so that a new key does not land after a comment meant for the next one.
fn trailing_blank_start(ls: &[Line<'_>], at: usize, floor: usize) -> usize {
    let mut i = at;
    while i > floor + 1 && ls.get(i - 1).is_some_and(|l| l.is_blank()) {
        i -= 1;
    }
    i
}

fn verify(
    before: &str,
    after: &str,
    want: &dyn Fn(&str) -> Option<String>,
) -> Result<(), WritebackError> {
    let old =
        parse_job_file_full(before.as_bytes()).map_err(|e| WritebackError::Parse(e.to_string()))?;
    let new =
        parse_job_file_full(after.as_bytes()).map_err(|e| WritebackError::Verify(e.to_string()))?;
    if old.len() != new.len() {
        return Err(WritebackError::Verify(format!(
            "{} jobs became {}",
            old.len(),
            new.len()
        )));
    }
    for (o, n) in old.iter().zip(&new) {
        let mut expect = o.clone();
        if let Some(t) = want(&o.name).filter(|t| !t.is_empty()) {
            if let Some(c) = expect.containers.first_mut()
                && let Some(image) = switched_image(o.kind, &t, &c.image)
            {
                c.image = image.to_owned();
            }
            expect.cluster = Some(t);
        }
        if *n != expect {
            return Err(WritebackError::Verify(format!(
                "job {} changed beyond its cluster and image",
                o.name
            )));
        }
    }
    Ok(())
}

/// Replaces (or adds) the top-level `buildFarm` section. `farm` is cloud -> cluster ->
/// file basenames; it is written sorted, in the layout Go's marshaller uses.
pub fn rewrite_build_farm(
    text: &str,
    farm: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
) -> String {
    let eol = line_ending(text);
    let mut block = String::new();
    if !farm.is_empty() {
        block.push_str("buildFarm:");
        block.push_str(eol);
        for (cloud, clusters) in farm {
            block.push_str(&format!("  {}:{eol}", yaml_scalar(cloud)));
            for (cluster, files) in clusters {
                if files.is_empty() {
                    block.push_str(&format!("    {}: {{}}{eol}", yaml_scalar(cluster)));
                    continue;
                }
                block.push_str(&format!(
                    "    {}:{eol}      filenames:{eol}",
                    yaml_scalar(cluster)
                ));
                let mut files = files.clone();
                files.sort();
                files.dedup();
                for f in files {
                    block.push_str(&format!("      - {}{eol}", yaml_scalar(&f)));
                }
            }
        }
    }
    let ls = lines(text);
    let top = ls.iter().position(|l| {
        l.indent == 0 && !l.is_blank() && split_key(l, 0).is_some_and(|(k, ..)| k == "buildFarm")
    });
    match top {
        Some(t) => {
            let mut end = (t + 1..ls.len())
                .find(|&i| ls[i].indent == 0 && !ls[i].text.trim().is_empty())
                .unwrap_or(ls.len());
            while end > t + 1 && ls[end - 1].text.trim().is_empty() {
                end -= 1;
            }
            let s = ls[t].start;
            let e = ls.get(end).map_or(text.len(), |l| l.start);
            let mut out = String::with_capacity(text.len());
            out.push_str(&text[..s]);
            out.push_str(&block);
            out.push_str(&text[e..]);
            out
        }
        None => {
            let at = ls
                .iter()
                .find(|l| l.indent == 0 && !l.is_blank() && l.text != "---")
                .map_or(text.len(), |l| l.start);
            let mut out = String::with_capacity(text.len() + block.len());
            out.push_str(&text[..at]);
            out.push_str(&block);
            out.push_str(&text[at..]);
            out
        }
    }
}

/// The cluster a plan gives a job, for [`rewrite_job_clusters`]: never empty (F8).
pub fn planned_cluster(plan: &Plan, job: &str) -> Option<String> {
    plan.jobs
        .get(job)
        .and_then(|e| e.cluster.clone())
        .filter(|c| !c.is_empty())
}

/// A job file's new text under a plan, if any `cluster:` field changes.
pub fn job_file_for_plan(
    text: &str,
    plan: &Plan,
) -> Result<Option<(String, usize)>, WritebackError> {
    rewrite_job_clusters(text, &|name| planned_cluster(plan, name))
}

/// The `buildFarm` section a plan implies: every file outside the group paths, by basename,
/// under its file-level cluster, for clusters that balance (active) or keep their files
/// (cordoned); other clusters are left out, as the Go dispatcher drops disabled ones.
pub fn build_farm_of(plan: &Plan) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut farm: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (name, c) in &plan.clusters {
        if matches!(c.state, ClusterState::Active | ClusterState::Cordoned)
            && let Some(p) = &c.provider
        {
            farm.entry(p.clone())
                .or_default()
                .entry(name.clone())
                .or_default();
        }
    }
    for (path, f) in &plan.files {
        let Some(c) = f.cluster.as_deref() else {
            continue;
        };
        if f.group_path {
            continue;
        }
        if let Some(p) = plan.clusters.get(c).and_then(|e| e.provider.as_ref())
            && let Some(list) = farm.get_mut(p).and_then(|m| m.get_mut(c))
        {
            list.push(dispatcher_core::model::basename(path).to_owned());
        }
    }
    farm
}

/// `_config.yaml`'s new text under a plan, if its `buildFarm` section changes.
pub fn config_for_plan(text: &str, plan: &Plan) -> Option<String> {
    let new = rewrite_build_farm(text, &build_farm_of(plan));
    (new != text).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "presubmits:\n  org/repo:\n  - agent: kubernetes\n    always_run: true\n    cluster: build01\n    context: ci/prow/unit\n    name: pull-unit\n    spec:\n      containers:\n      - image: x # comment\n  org/other:\n    - agent: kubernetes\n      name: 'pull-other'\n      rerun_command: /test other\nperiodics:\n- agent: kubernetes\n  cluster: build02 # pinned by hand\n  cron: 0 * * * *\n  name: periodic-a\n";

    fn want(map: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n: &str| {
            map.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn changes_only_the_cluster_values() {
        let w = want(&[("pull-unit", "build03"), ("periodic-a", "build05")]);
        let (out, n) = rewrite_job_clusters(FILE, &w).unwrap().unwrap();
        assert_eq!(n, 2);
        let expected = FILE
            .replace("    cluster: build01\n", "    cluster: build03\n")
            .replace(
                "  cluster: build02 # pinned by hand",
                "  cluster: build05 # pinned by hand",
            );
        assert_eq!(out, expected);
    }

    #[test]
    fn inserts_a_missing_cluster_in_key_order() {
        let w = want(&[("pull-other", "build04")]);
        let (out, n) = rewrite_job_clusters(FILE, &w).unwrap().unwrap();
        assert_eq!(n, 1);
        assert!(
            out.contains(
                "    - agent: kubernetes\n      cluster: build04\n      name: 'pull-other'\n"
            ),
            "{out}"
        );
        assert_eq!(out.len(), FILE.len() + "      cluster: build04\n".len());
    }

    #[test]
    fn unchanged_and_unknown_jobs_are_left_alone() {
        let w = want(&[("pull-unit", "build01"), ("not-here", "build09")]);
        assert_eq!(rewrite_job_clusters(FILE, &w).unwrap(), None);
    }

    #[test]
    fn crlf_files_keep_their_line_endings() {
        let crlf = FILE.replace('\n', "\r\n");
        let w = want(&[("pull-other", "build04"), ("pull-unit", "build03")]);
        let (out, _) = rewrite_job_clusters(&crlf, &w).unwrap().unwrap();
        assert!(!out.replace("\r\n", "").contains('\n'));
        assert!(out.contains("      cluster: build04\r\n"));
    }

    #[test]
    fn build_farm_is_replaced_and_nothing_else() {
        let text = "buildFarm:\n  aws:\n    build01:\n      filenames:\n      - b.yaml\n      - a.yaml\n\ndefault: build01\n# keep me\ngroups: {}\n";
        let mut farm = BTreeMap::new();
        farm.insert(
            "aws".to_owned(),
            BTreeMap::from([
                (
                    "build01".to_owned(),
                    vec!["c.yaml".to_owned(), "a.yaml".to_owned()],
                ),
                ("build03".to_owned(), vec![]),
            ]),
        );
        let out = rewrite_build_farm(text, &farm);
        assert_eq!(
            out,
            "buildFarm:\n  aws:\n    build01:\n      filenames:\n      - a.yaml\n      - c.yaml\n    build03: {}\n\ndefault: build01\n# keep me\ngroups: {}\n"
        );
        let again = rewrite_build_farm(&out, &farm);
        assert_eq!(again, out, "idempotent");
    }

    #[test]
    fn build_farm_is_added_when_missing() {
        let text = "# header\ndefault: build01\n";
        let farm = BTreeMap::from([(
            "gcp".to_owned(),
            BTreeMap::from([("build02".to_owned(), vec!["x.yaml".to_owned()])]),
        )]);
        let out = rewrite_build_farm(text, &farm);
        assert_eq!(
            out,
            "# header\nbuildFarm:\n  gcp:\n    build02:\n      filenames:\n      - x.yaml\ndefault: build01\n"
        );
    }

    const IMAGES: &str = "presubmits:\n  org/repo:\n  - agent: kubernetes\n    cluster: build01\n    name: pull-a\n    spec:\n      containers:\n      - args:\n        - --x\n        image: registry.ci.openshift.org/ci/ci-operator:latest\n      - image: ci-operator:latest\n  - agent: kubernetes\n    cluster: build01\n    name: pull-b\n    spec:\n      containers:\n      - image: quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest\n  - agent: kubernetes\n    cluster: arm01\n    name: pull-c\n    spec:\n      containers:\n      - image: ci-operator-arm64:latest\n  - agent: kubernetes\n    cluster: build01\n    name: pull-d\n    spec:\n      containers:\n      - image: registry/ci-operator:other\nperiodics:\n- agent: kubernetes\n  cluster: build01\n  name: periodic-e\n  spec:\n    containers:\n    - image: ci-operator:latest\n";

    #[test]
    fn jobs_landing_on_arm01_get_the_arm64_image_as_the_go_sanitizer_writes_it() {
        let w = want(&[
            ("pull-a", "arm01"),
            ("pull-b", "arm01"),
            ("pull-c", "arm01"),
            ("pull-d", "arm01"),
            ("periodic-e", "arm01"),
        ]);
        let (out, n) = rewrite_job_clusters(IMAGES, &w).unwrap().unwrap();
        assert_eq!(n, 4, "pull-c is already there");
        let expected = IMAGES
            .replace("cluster: build01", "cluster: arm01")
            // Only the first container, registry and proxy spellings alike, plain.
            .replace(
                "image: registry.ci.openshift.org/ci/ci-operator:latest",
                "image: ci-operator-arm64:latest",
            )
            .replace(
                "image: quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest",
                "image: ci-operator-arm64:latest",
            );
        assert_eq!(out, expected);
        // Periodics and other images keep theirs; the second container too.
        assert!(out.contains("      - image: ci-operator:latest\n  - agent"));
        assert!(out.contains("image: registry/ci-operator:other"));
        assert!(out.ends_with("    - image: ci-operator:latest\n"));
    }

    #[test]
    fn a_job_leaving_arm01_gets_prowgens_image_back() {
        let w = want(&[("pull-c", "build03")]);
        let (out, n) = rewrite_job_clusters(IMAGES, &w).unwrap().unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            out,
            IMAGES.replace(
                "    cluster: arm01\n    name: pull-c\n    spec:\n      containers:\n      - image: ci-operator-arm64:latest",
                "    cluster: build03\n    name: pull-c\n    spec:\n      containers:\n      - image: quay-proxy.ci.openshift.org/openshift/ci:ci_ci-operator_latest"
            )
        );
    }

    #[test]
    fn an_image_alone_is_switched_when_the_cluster_is_already_right() {
        let text = IMAGES.replace(
            "    cluster: arm01\n    name: pull-c",
            "    cluster: arm01\n    name: pull-c-old",
        );
        let w = want(&[("pull-a", "build01"), ("pull-b", "build01")]);
        assert_eq!(rewrite_job_clusters(&text, &w).unwrap(), None);
        let on_arm = IMAGES.replace(
            "image: ci-operator-arm64:latest",
            "image: ci-operator:latest",
        );
        let w = want(&[("pull-c", "arm01")]);
        let (out, n) = rewrite_job_clusters(&on_arm, &w).unwrap().unwrap();
        assert_eq!((out.as_str(), n), (IMAGES, 1));
    }

    #[test]
    fn scalars_are_quoted_when_plain_would_change_them() {
        assert_eq!(yaml_scalar("build01"), "build01");
        assert_eq!(yaml_scalar("app.ci"), "app.ci");
        assert_eq!(yaml_scalar("yes"), "'yes'");
        assert_eq!(yaml_scalar("123"), "'123'");
        assert_eq!(yaml_scalar("a: b"), "'a: b'");
        assert_eq!(yaml_scalar("ci-operator:latest"), "ci-operator:latest");
        assert_eq!(yaml_scalar("a:"), "'a:'");
    }
}
