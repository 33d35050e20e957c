//! A linear pre-check of YAML text before the library parses it.
//!
//! The library's scanner spends time quadratic in the nesting of flow collections: a 2 MB
//! `_config.yaml` of `[` ran for minutes. And aliases expand: an anchored list of aliases
//! of an anchored list of aliases (a "billion laughs") grows exponentially, and many
//! aliases of one large anchor quadratically. This scan bounds the nesting (flow and
//! block), the size, and the expansion of aliases in one pass over the text, so that a
//! hostile file is refused in milliseconds, naming its line. It over-approximates rather
//! than parses: it only has to be right about the files it accepts (every real file)
//! being as small as it says.

/// How deep a document may nest: flow collections, block mappings and sequences together.
/// Real job files nest about ten levels (`presubmits` > repository > job > `spec` >
/// `containers` > ...).
pub const MAX_DEPTH: usize = 64;

/// How many bytes aliases may add, as a multiple of the document's own size (a job file
/// whose jobs merge one anchored template each stays far below).
pub const MAX_EXPANSION: usize = 8;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Refused {
    /// 1-based.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// What the scan is inside of, across lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Nothing,
    DoubleQuoted,
    SingleQuoted,
    /// A `|` or `>` scalar: its lines are more indented than this.
    BlockScalar(usize),
}

/// Where an anchored node ends, to measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// A flow collection: when the flow depth is back to this.
    Flow(usize),
    /// A block node: at the first line indented this much or less.
    Block(usize),
    /// A scalar on the anchor's line: at its end.
    Line,
}

/// An anchored node not ended yet.
struct Anchor {
    name: Vec<u8>,
    start: usize,
    until: Until,
}

/// The scan's state.
struct Scan {
    /// Indentations of the open block collections.
    indents: Vec<usize>,
    flow: usize,
    open: Open,
    line: usize,
    /// Offset of the current line in the text.
    offset: usize,
    /// Anchored nodes being read, and the size of those read.
    anchors: Vec<Anchor>,
    sizes: std::collections::HashMap<Vec<u8>, usize>,
    /// Bytes the aliases read so far stand for, and how many they may.
    expansion: usize,
    max_expansion: usize,
}

/// Refuses `text` when it is larger than `max_bytes` or nests deeper than [`MAX_DEPTH`].
pub fn check(text: &str, max_bytes: usize) -> Result<(), Refused> {
    if text.len() > max_bytes {
        return Err(Refused {
            line: 1,
            message: format!(
                "{} bytes, more than the {max_bytes} a document may have",
                text.len()
            ),
        });
    }
    let mut scan = Scan {
        indents: Vec::new(),
        flow: 0,
        open: Open::Nothing,
        line: 0,
        offset: 0,
        anchors: Vec::new(),
        sizes: std::collections::HashMap::new(),
        expansion: 0,
        max_expansion: MAX_EXPANSION.saturating_mul(text.len()).max(1 << 20),
    };
    for line in text.split_inclusive('\n') {
        scan.line += 1;
        let body = line.trim_end_matches('\n').trim_end_matches('\r');
        scan.line_of(body.as_bytes())?;
        scan.end_line_anchors(scan.offset + body.len());
        scan.offset += line.len();
    }
    scan.end_anchors(|_| true, text.len());
    Ok(())
}

impl Scan {
    fn too_deep(&self, depth: usize) -> Result<(), Refused> {
        if depth > MAX_DEPTH {
            return Err(Refused {
                line: self.line,
                message: format!("nested more than {MAX_DEPTH} levels deep"),
            });
        }
        Ok(())
    }

    fn line_of(&mut self, b: &[u8]) -> Result<(), Refused> {
        let indent = b.iter().take_while(|c| **c == b' ').count();
        let content = &b[indent..];
        let blank =
            content.iter().all(|c| c.is_ascii_whitespace()) || content.first() == Some(&b'#');
        let mut at = 0;
        match self.open {
            Open::BlockScalar(parent) if blank || indent > parent => return Ok(()),
            Open::BlockScalar(_) => self.open = Open::Nothing,
            Open::DoubleQuoted | Open::SingleQuoted => {
                at = match self.close_quote(b, 0) {
                    Some(end) => end,
                    None => return Ok(()),
                };
            }
            Open::Nothing => {}
        }
        if at == 0 && self.flow == 0 {
            if blank {
                return Ok(());
            }
            let offset = self.offset;
            self.end_anchors(|u| matches!(u, Until::Block(i) if indent <= i), offset);
            // Block structure: indentation levels, plus `- ` items opened on this line.
            while self.indents.last().is_some_and(|i| *i > indent) {
                self.indents.pop();
            }
            if self.indents.last() != Some(&indent) {
                self.indents.push(indent);
            }
            at = indent;
            let mut items = 0;
            while b.get(at) == Some(&b'-') && matches!(b.get(at + 1), None | Some(b' ')) {
                items += 1;
                at += 2;
                while b.get(at) == Some(&b' ') {
                    at += 1;
                }
            }
            self.too_deep(self.indents.len() + items)?;
        }
        self.tokens(b, at, indent)
    }

    /// The rest of a line from `at`: quotes, flow brackets, comments, block scalars.
    fn tokens(&mut self, b: &[u8], mut at: usize, indent: usize) -> Result<(), Refused> {
        let mut node_start = true;
        while at < b.len() {
            let c = b[at];
            let after_space = at == 0 || b[at - 1] == b' ' || b[at - 1] == b'\t';
            match c {
                b'#' if after_space => return Ok(()),
                b' ' | b'\t' => {}
                b'"' | b'\'' if node_start => {
                    self.open = if c == b'"' {
                        Open::DoubleQuoted
                    } else {
                        Open::SingleQuoted
                    };
                    match self.close_quote(b, at + 1) {
                        Some(end) => {
                            at = end;
                            node_start = false;
                            continue;
                        }
                        None => return Ok(()),
                    }
                }
                b'[' | b'{' if node_start || self.flow > 0 => {
                    self.flow += 1;
                    self.too_deep(self.indents.len() + self.flow)?;
                    node_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    node_start = false;
                    let (depth, end) = (self.flow, self.offset + at + 1);
                    self.end_anchors(|u| u == Until::Flow(depth), end);
                }
                b',' if self.flow > 0 => node_start = true,
                b':' if matches!(
                    b.get(at + 1),
                    None | Some(b' ' | b'\t' | b',' | b']' | b'}')
                ) =>
                {
                    node_start = true;
                }
                b'|' | b'>' if node_start && self.flow == 0 => {
                    self.open = Open::BlockScalar(indent);
                    return Ok(());
                }
                b'-' | b'?' if node_start && matches!(b.get(at + 1), None | Some(b' ')) => {}
                b'&' if node_start => {
                    at = self.anchor(b, at, indent);
                    continue;
                }
                b'*' if node_start => {
                    at = self.alias(b, at)?;
                    node_start = false;
                    continue;
                }
                b'!' if node_start => {
                    // A tag before the node itself.
                    while at < b.len() && b[at] != b' ' {
                        at += 1;
                    }
                    continue;
                }
                _ => node_start = false,
            }
            at += 1;
        }
        Ok(())
    }

    /// An anchor at `at`: where its node ends is told by what follows it on the line.
    fn anchor(&mut self, b: &[u8], at: usize, indent: usize) -> usize {
        let end = name_end(b, at + 1);
        let mut next = end;
        while b.get(next) == Some(&b' ') {
            next += 1;
        }
        let until = match b.get(next) {
            Some(b'[' | b'{') => Until::Flow(self.flow),
            None | Some(b'#' | b'|' | b'>') => Until::Block(indent),
            Some(_) => Until::Line,
        };
        self.anchors.push(Anchor {
            name: b[at + 1..end].to_vec(),
            start: self.offset + at,
            until,
        });
        end
    }

    /// An alias at `at`: what it stands for counts toward the expansion; inside an
    /// anchored node it is refused, since nested aliases expand exponentially.
    fn alias(&mut self, b: &[u8], at: usize) -> Result<usize, Refused> {
        let end = name_end(b, at + 1);
        let refuse = |message: String| Refused {
            line: self.line,
            message,
        };
        if let Some(open) = self.anchors.first() {
            return Err(refuse(format!(
                "an alias inside the anchored node &{}: aliases within anchors can expand exponentially",
                String::from_utf8_lossy(&open.name)
            )));
        }
        let size = self.sizes.get(&b[at + 1..end]).copied().unwrap_or(0);
        self.expansion = self.expansion.saturating_add(size);
        if self.expansion > self.max_expansion {
            return Err(refuse(format!(
                "aliases expand the document by more than {} bytes",
                self.max_expansion
            )));
        }
        Ok(end)
    }

    /// Ends the anchored nodes `done` says are over, at offset `end`.
    fn end_anchors(&mut self, done: impl Fn(Until) -> bool, end: usize) {
        while let Some(last) = self.anchors.last() {
            if !done(last.until) {
                break;
            }
            let a = self.anchors.pop().expect("just looked at it");
            self.sizes.insert(a.name, end.saturating_sub(a.start));
        }
    }

    /// Ends the anchored scalars of the line that ends at `end`.
    fn end_line_anchors(&mut self, end: usize) {
        self.end_anchors(|u| u == Until::Line, end);
    }

    /// Where the open quoted scalar closes on this line (just past it), if it does.
    fn close_quote(&mut self, b: &[u8], mut at: usize) -> Option<usize> {
        while at < b.len() {
            match (self.open, b[at]) {
                (Open::DoubleQuoted, b'\\') => at += 1,
                (Open::DoubleQuoted, b'"') => {
                    self.open = Open::Nothing;
                    return Some(at + 1);
                }
                (Open::SingleQuoted, b'\'') if b.get(at + 1) == Some(&b'\'') => at += 1,
                (Open::SingleQuoted, b'\'') => {
                    self.open = Open::Nothing;
                    return Some(at + 1);
                }
                _ => {}
            }
            at += 1;
        }
        None
    }
}

/// The end of an anchor's or alias's name: at a space or a flow indicator.
fn name_end(b: &[u8], mut at: usize) -> usize {
    while at < b.len() && !matches!(b[at], b' ' | b'\t' | b',' | b'[' | b']' | b'{' | b'}') {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: usize = 1 << 30;

    #[test]
    fn shallow_documents_pass() {
        for text in [
            "a: 1\nb:\n  c: [1, [2, 3], {d: e}]\n  f: \"[not a [flow\"\n  g: 'it''s [x'\n",
            "run: |\n  if [ -f x ]; then\n    echo \"[\"\n  fi\nnext: 1\n",
            "labels: {a: '{', b: \"}\"}\nx: a[b # [[[[ comment\n",
            "- - - a\n  - b\n- c\n",
            "k: \"multi\n  line [ [ [\n  end\"\nz: 1\n",
        ] {
            check(text, BIG).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
    }

    #[test]
    fn deep_flow_nesting_is_refused_at_its_line_in_linear_time() {
        let text = format!("a: 1\nb: {}", "[".repeat(2_000_000));
        let start = std::time::Instant::now();
        let e = check(&text, BIG).unwrap_err();
        assert!(start.elapsed().as_secs_f64() < 0.5);
        assert_eq!(e.line, 2);
        assert!(e.message.contains("nested more than 64"), "{e}");
        let labels = format!("labels: {}x{}", "{a: ".repeat(100), "}".repeat(100));
        assert_eq!(check(&labels, BIG).unwrap_err().line, 1);
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&" ".repeat(i));
            text.push_str("a:\n");
        }
        assert_eq!(check(&text, BIG).unwrap_err().line, 65);
        let dashes = format!("{}x\n", "- ".repeat(100));
        assert_eq!(check(&dashes, BIG).unwrap_err().line, 1);
    }

    #[test]
    fn anchors_and_their_aliases_pass_as_job_files_use_them() {
        let text = "periodics:\n- &job\n  name: a\n  agent: kubernetes\n- <<: *job\n  name: b\n- <<: *job\n  name: c\nx: &s plain\ny: *s\nz: &f [1, 2]\nw: *f\n";
        check(text, BIG).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn nested_aliases_are_refused_before_they_expand() {
        let laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n";
        let e = check(laughs, BIG).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("alias inside the anchored node &b"),
            "{e}"
        );
        let block = "a: &a\n  k: v\nb: &b\n  - *a\n";
        assert_eq!(check(block, BIG).unwrap_err().line, 4);
    }

    #[test]
    fn many_aliases_of_a_large_anchor_are_refused() {
        let big = format!("a: &a [{}]\n", "x, ".repeat(100_000));
        let text = format!("{big}b: [{}]\n", "*a, ".repeat(100));
        let e = check(&text, BIG).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("aliases expand"), "{e}");
    }

    #[test]
    fn documents_over_the_size_limit_are_refused() {
        assert!(check("a: 1\n", 4).unwrap_err().message.contains("5 bytes"));
    }
}
