//! A fast reader of Prow job files as openshift/release writes them (block YAML, generated
//! by ci-operator-prowgen and the sanitizer), reading only the fields the rules need.
//!
//! It exists because a YAML library spends most of a placement run on bytes the rules never
//! read (the 83 MB of the real tree hold about 12 MB of read fields). It is a fast path, not
//! a second YAML parser: [`scan`] answers `None` whenever the file uses YAML it does not
//! handle *in a place it reads* (flow collections other than `{}` and `[]`, block scalars,
//! anchors, aliases, tags, escapes, multi-line scalars, plain scalars that YAML could type
//! as null, a boolean or a number, duplicate keys, several documents, quoted keys, ...), and
//! the caller then parses the file with `yaml_serde`. What it skips it skips by indentation,
//! exactly like a block-structured reader must: an entry's value is every following line
//! indented deeper than its key, plus a compact sequence at the key's indentation. YAML
//! errors inside skipped values go unnoticed (`Parse::Full` reports those). The corpus test
//! holds it to `yaml_serde` file by file, and a property test on generated files.

use dispatcher_core::model::{Container, Job, JobKind, labels};

/// Reads the jobs of a file, or `None` when the library must decide.
pub(crate) fn scan(text: &str) -> Option<Vec<Job>> {
    // A carriage return alone breaks a line in YAML, not here: such files are the
    // library's (real ones have none, and `\r\n` is read as one break).
    if memchr::memchr_iter(b'\r', text.as_bytes())
        .any(|i| text.as_bytes().get(i + 1) != Some(&b'\n'))
    {
        return None;
    }
    let mut cur = Cursor::new(text)?;
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

/// One significant line: not blank, not a comment.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    indent: usize,
    /// From the first non-space character, trailing whitespace removed.
    text: &'a str,
}

impl Line<'_> {
    fn is_item(&self) -> bool {
        self.text == "-" || self.text.starts_with("- ")
    }
}

struct Cursor<'a> {
    src: &'a str,
    /// Start of the next unread line.
    pos: usize,
    /// The newlines from `pos` on: one vectorised pass instead of a search per line.
    newlines: memchr::Memchr<'a>,
    peeked: Option<Option<Line<'a>>>,
    /// Whether a significant line was read (a `---` before it starts the only document).
    started: bool,
    /// A line the reader must not go past (a second `---`, `...`, a directive).
    stop: bool,
}

impl<'a> Cursor<'a> {
    /// `None` for inputs the reader leaves to the library outright.
    fn new(src: &'a str) -> Option<Self> {
        if src.starts_with('\u{feff}') {
            return None;
        }
        Some(Self {
            src,
            pos: 0,
            newlines: memchr::memchr_iter(b'\n', src.as_bytes()),
            peeked: None,
            started: false,
            stop: false,
        })
    }

    /// The end of the line at `pos` (its newline, or the end of the text), moving `pos` to
    /// the next line.
    fn end_line(&mut self) -> usize {
        let end = self.newlines.next().unwrap_or(self.src.len());
        self.pos = end + 1;
        end
    }

    fn raw_next(&mut self) -> Option<Line<'a>> {
        while self.pos < self.src.len() {
            let start = self.pos;
            let end = self.end_line();
            let line = &self.src[start..end];
            let b = line.as_bytes();
            let indent = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
            // ASCII whitespace only: YAML's line ends and separators are never anything else.
            let end = b
                .iter()
                .rposition(|&c| !matches!(c, b' ' | b'\t' | b'\r'))
                .map_or(indent, |i| i + 1);
            let text = &line[indent..end.max(indent)];
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if indent == 0
                && (text.starts_with("---") || text.starts_with("...") || text.starts_with('%'))
            {
                if !self.started && text == "---" {
                    self.started = true;
                    continue;
                }
                self.stop = true;
                return None;
            }
            self.started = true;
            return Some(Line { indent, text });
        }
        None
    }

    fn peek(&mut self) -> Option<Line<'a>> {
        if let Some(p) = self.peeked {
            return p;
        }
        let l = self.raw_next();
        self.peeked = Some(l);
        l
    }

    fn take(&mut self) -> Option<Line<'a>> {
        let l = self.peek();
        self.peeked = None;
        l
    }

    /// Consumes every line indented deeper than `key_indent` and every item of a compact
    /// sequence at it. Most of a job file goes through here, so a line that starts with
    /// more than `key_indent` spaces is passed over without looking further into it.
    fn skip_deeper(&mut self, key_indent: usize) {
        let deeper =
            |l: &Line<'_>| l.indent > key_indent || (l.indent == key_indent && l.is_item());
        match self.peeked {
            Some(Some(l)) if deeper(&l) => self.peeked = None,
            Some(_) => return,
            None => {}
        }
        let bytes = self.src.as_bytes();
        loop {
            let start = self.pos;
            if bytes
                .get(start..=start + key_indent)
                .is_some_and(all_spaces)
            {
                self.end_line();
                continue;
            }
            match self.raw_next() {
                Some(l) if deeper(&l) => {}
                other => {
                    self.peeked = Some(other);
                    return;
                }
            }
        }
    }
}

/// Whether every byte is a space, eight at a time.
fn all_spaces(b: &[u8]) -> bool {
    const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
    let mut chunks = b.chunks_exact(8);
    chunks.all(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) == SPACES)
        && chunks.remainder().iter().all(|&x| x == b' ')
}

/// Where a plain scalar's text ends (before a ` #` comment and trailing blanks), or `None`
/// when it holds what a plain scalar cannot (`: `, a trailing `:`, a tab). One pass: these
/// are short, and this runs on every value read.
fn plain_end(b: &[u8]) -> Option<usize> {
    let mut end = b.len();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'#' if i > 0 && b[i - 1] == b' ' => {
                end = i - 1;
                break;
            }
            b':' if i + 1 == b.len() || b[i + 1] == b' ' => return None,
            b'\t' => return None,
            _ => {}
        }
    }
    while end > 0 && b[end - 1] == b' ' {
        end -= 1;
    }
    Some(end)
}

/// The start of a key's value.
enum Value<'a> {
    Null,
    EmptyMap,
    EmptySeq,
    /// A scalar on the key's line.
    Scalar(Scalar<'a>),
    /// Something the reader does not read (a flow collection, a block scalar, ...).
    Complex,
    /// A block node starting at this line (already taken from the cursor).
    Block(Line<'a>),
}

#[derive(Debug, Clone, Copy)]
struct Scalar<'a> {
    text: &'a str,
    /// Whether it was quoted; `''` inside single quotes is the one escape read.
    quoted: bool,
    escaped_quotes: bool,
}

impl Scalar<'_> {
    fn to_owned_text(self) -> String {
        if self.escaped_quotes {
            self.text.replace("''", "'")
        } else {
            self.text.to_owned()
        }
    }

    /// A plain scalar that YAML may read as something other than a string.
    fn typed(self) -> bool {
        !self.quoted && looks_typed(self.text)
    }
}

/// Null, booleans (YAML 1.1 and 1.2 spellings) and anything number-like.
fn looks_typed(s: &str) -> bool {
    const WORDS: [&str; 10] = [
        "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n",
    ];
    let rest = match s.as_bytes().first() {
        None | Some(b'0'..=b'9') => return true,
        Some(b'+' | b'-') => &s[1..],
        Some(b'.') => s,
        // Words only from here on; the longest is five letters.
        Some(_) => return s.len() <= 5 && WORDS.iter().any(|w| s.eq_ignore_ascii_case(w)),
    };
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    rest.bytes().next().is_some_and(|c| c.is_ascii_digit())
        || rest.eq_ignore_ascii_case("inf")
        || rest.eq_ignore_ascii_case("nan")
}

/// Splits `key: rest` (or `key:`). Keys must be plain, simple and untyped-looking enough
/// that the library reads them as the same string.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let first = text.as_bytes()[0];
    if b"-?:,[]{}#&*!|>'\"%@`\t".contains(&first) {
        return None;
    }
    let bytes = text.as_bytes();
    // The first `:` that ends the key; a ` #` before it makes the line something else.
    let mut colon = None;
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b':' if i + 1 == bytes.len() || bytes[i + 1] == b' ' => {
                colon = Some(i);
                break;
            }
            b'#' if bytes[i - 1] == b' ' => return None,
            _ => {}
        }
    }
    let colon = colon?;
    let key = &text[..colon];
    if key.ends_with([' ', '\t']) || key == "<<" || looks_typed(key) {
        return None;
    }
    let rest = text[colon + 1..].trim_start();
    let rest = if rest.starts_with('#') { "" } else { rest };
    Some((key, rest))
}

/// Reads an inline value (the text after `key:`).
fn inline(rest: &str) -> Value<'_> {
    match rest.as_bytes()[0] {
        b'"' => match rest[1..].find('"') {
            Some(end) if !rest[1..1 + end].contains('\\') && trailer_ok(&rest[2 + end..]) => {
                Value::Scalar(Scalar {
                    text: &rest[1..1 + end],
                    quoted: true,
                    escaped_quotes: false,
                })
            }
            _ => Value::Complex,
        },
        b'\'' => {
            let body = &rest[1..];
            let mut i = 0;
            let b = body.as_bytes();
            let mut escaped = false;
            loop {
                match b.get(i) {
                    None => return Value::Complex,
                    Some(b'\'') if b.get(i + 1) == Some(&b'\'') => {
                        escaped = true;
                        i += 2;
                    }
                    Some(b'\'') => break,
                    Some(_) => i += 1,
                }
            }
            if !trailer_ok(&body[i + 1..]) {
                return Value::Complex;
            }
            Value::Scalar(Scalar {
                text: &body[..i],
                quoted: true,
                escaped_quotes: escaped,
            })
        }
        _ if rest == "{}" => Value::EmptyMap,
        _ if rest == "[]" => Value::EmptySeq,
        b'[' | b'{' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' | b',' | b'?'
        | b':' | b']' | b'}' => Value::Complex,
        _ if rest == "-" || rest.starts_with("- ") => Value::Complex,
        _ => match plain_end(rest.as_bytes()) {
            Some(end) => Value::Scalar(Scalar {
                text: &rest[..end],
                quoted: false,
                escaped_quotes: false,
            }),
            None => Value::Complex,
        },
    }
}

/// What may follow a closing quote: nothing, or a comment.
fn trailer_ok(s: &str) -> bool {
    s.is_empty() || (s.starts_with([' ', '\t']) && s.trim_start().starts_with('#'))
}

/// The value of a key at `key_indent` whose line ended with `rest`. Lines that continue an
/// inline value (a multi-line scalar) make it `Complex`; the caller skips them.
fn value<'a>(cur: &mut Cursor<'a>, key_indent: usize, rest: &'a str) -> Option<Value<'a>> {
    if !rest.is_empty() {
        let v = inline(rest);
        if cur.peek().is_some_and(|l| l.indent > key_indent) {
            return Some(Value::Complex);
        }
        return Some(v);
    }
    Some(match cur.peek() {
        Some(l) if l.indent > key_indent || (l.indent == key_indent && l.is_item()) => {
            Value::Block(cur.take()?)
        }
        _ => Value::Null,
    })
}

/// Consumes what is left of a value: every line deeper than its key, and a compact
/// sequence at the key's indentation.
fn skip_value(cur: &mut Cursor<'_>, key_indent: usize) -> Option<()> {
    cur.skip_deeper(key_indent);
    (!cur.stop).then_some(())
}

/// Walks the entries of a block mapping whose keys sit at `indent`; `first` is its first
/// line (for a mapping that starts a sequence item, the text after `- `). `entry` gets the
/// key, its indentation and the rest of its line, and must consume the value.
fn map_entries<'a>(
    cur: &mut Cursor<'a>,
    first: Line<'a>,
    indent: usize,
    mut entry: impl FnMut(&mut Cursor<'a>, &'a str, usize, &'a str) -> Option<()>,
) -> Option<()> {
    let mut line = first;
    loop {
        let (key, rest) = split_key(line.text)?;
        entry(cur, key, indent, rest)?;
        if cur.stop {
            return None;
        }
        match cur.peek() {
            Some(l) if l.indent == indent && !l.is_item() => line = cur.take()?,
            Some(l) if l.indent >= indent => return None,
            _ => return Some(()),
        }
    }
}

/// Walks the items of a block sequence whose dashes sit at `first.indent`. Each item must
/// be a mapping; `item` gets its first line (the text after the dash) and its indentation.
fn seq_items<'a>(
    cur: &mut Cursor<'a>,
    first: Line<'a>,
    mut item: impl FnMut(&mut Cursor<'a>, Line<'a>, usize) -> Option<()>,
) -> Option<()> {
    let indent = first.indent;
    let mut line = first;
    loop {
        let after = line.text[1..].trim_start_matches(' ');
        if after.is_empty() || after.starts_with('#') || after.starts_with("- ") || after == "-" {
            return None;
        }
        let inner = indent + (line.text.len() - after.len());
        item(
            cur,
            Line {
                indent: inner,
                text: after,
            },
            inner,
        )?;
        if cur.stop {
            return None;
        }
        match cur.peek() {
            Some(l) if l.indent == indent && l.is_item() => line = cur.take()?,
            // Deeper lines that no item took are not the block YAML read here.
            Some(l) if l.indent > indent => return None,
            // Shallower, or the next key of the mapping holding a compact sequence.
            _ => return Some(()),
        }
    }
}

/// The entries of a block mapping that is a key's value (none for `{}` or no value);
/// anything else is the library's.
fn map_value<'a>(
    cur: &mut Cursor<'a>,
    key_indent: usize,
    rest: &'a str,
    entry: impl FnMut(&mut Cursor<'a>, &'a str, usize, &'a str) -> Option<()>,
) -> Option<()> {
    match value(cur, key_indent, rest)? {
        Value::Null | Value::EmptyMap => Some(()),
        Value::Block(line) if !line.is_item() => {
            let indent = line.indent;
            map_entries(cur, line, indent, entry)
        }
        _ => None,
    }
}

/// The items of a block sequence that is a key's value (none for `[]` or no value);
/// anything else is the library's.
fn seq_value<'a>(
    cur: &mut Cursor<'a>,
    key_indent: usize,
    rest: &'a str,
    item: impl FnMut(&mut Cursor<'a>, Line<'a>, usize) -> Option<()>,
) -> Option<()> {
    match value(cur, key_indent, rest)? {
        Value::Null | Value::EmptySeq => Some(()),
        Value::Block(line) if line.is_item() => seq_items(cur, line, item),
        _ => None,
    }
}

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

fn job_labels<'a>(
    cur: &mut Cursor<'a>,
    key_indent: usize,
    rest: &'a str,
) -> Option<dispatcher_core::model::Labels> {
    let mut out = dispatcher_core::model::Labels::new();
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
