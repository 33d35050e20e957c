//! The line model of block YAML, shared by the two hand-written walkers of job files: the
//! fast reader (`jobs::fast`), which reads the fields the rules need, and the
//! write-back (`writeback`), which edits `cluster:` and image values in place.
//!
//! Both walk YAML as ci-operator-prowgen and the sanitizer write it: one key or item per
//! line, structure by indentation with spaces. What a line is, whether it holds a node,
//! where an item's body starts, where a key ends and where a key's block value ends are
//! the same questions for both, and answered here once, the way the YAML library answers
//! them. What each walker then accepts differs (the fast reader leaves anything unusual to
//! the library, the write-back verifies its result), so that policy stays with each.

/// One line of a document: where it is and what it holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    /// Byte offset in the document of the line's first byte.
    pub(crate) start: usize,
    /// Column of `text`: the spaces before it (for an item's body, see [`Line::item_body`]).
    pub(crate) indent: usize,
    /// From the first non-space byte, trailing blanks (spaces, tabs, carriage returns)
    /// removed. ASCII only: YAML's line ends and separators are never anything else.
    pub(crate) text: &'a str,
}

/// A `key: value` line split at the colon that ends its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyLine<'a> {
    /// The key as written, before the colon (trailing blanks and quotes kept).
    pub(crate) key: &'a str,
    /// What follows the colon, leading blanks removed: empty when the value is on the
    /// next lines (or null).
    pub(crate) rest: &'a str,
    /// Whether a tab, not a space, follows the colon.
    pub(crate) tab_after_colon: bool,
}

impl<'a> Line<'a> {
    /// The line `doc[start..end]`, `end` being its line break (or the document's end).
    #[inline]
    pub(crate) fn new(doc: &'a str, start: usize, end: usize) -> Self {
        let b = &doc.as_bytes()[start..end];
        let indent = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
        let trimmed = b
            .iter()
            .rposition(|&c| !matches!(c, b' ' | b'\t' | b'\r'))
            .map_or(indent, |i| i + 1);
        Self {
            start,
            indent,
            text: &doc[start + indent..start + trimmed.max(indent)],
        }
    }

    /// Blank or only a comment: no node, and no part of the block structure.
    #[inline]
    pub(crate) fn is_blank(&self) -> bool {
        self.text.is_empty() || self.text.starts_with('#')
    }

    /// Starts a block sequence item: a dash alone or followed by a space.
    #[inline]
    pub(crate) fn is_item(&self) -> bool {
        self.text == "-" || self.text.starts_with("- ")
    }

    /// Whether this (significant) line is part of the block value of a key at
    /// `key_indent`: indented deeper, or an item of a compact sequence, which YAML lets
    /// sit at the key's own indentation (as Prow writes them).
    #[inline]
    pub(crate) fn continues_value_of(&self, key_indent: usize) -> bool {
        self.indent > key_indent || (self.indent == key_indent && self.is_item())
    }

    /// An item's body: the text after its dash and the spaces that follow, as a line at
    /// its own column (empty when the item's node starts on the next line).
    #[inline]
    pub(crate) fn item_body(&self) -> Line<'a> {
        let after = self.text[1..].trim_start_matches(' ');
        Line {
            start: self.start,
            indent: self.indent + (self.text.len() - after.len()),
            text: after,
        }
    }

    /// Splits `key: value` at the first colon followed by a blank or the line's end, as
    /// YAML ends a plain key; `None` when there is none, or when a comment (` #`) starts
    /// before it. Quoted keys are the caller's: a colon inside the quotes ends them here.
    #[inline]
    pub(crate) fn key(&self) -> Option<KeyLine<'a>> {
        let bytes = self.text.as_bytes();
        for (i, &c) in bytes.iter().enumerate() {
            match c {
                b':' => match bytes.get(i + 1) {
                    None | Some(b' ') | Some(b'\t') => {
                        return Some(KeyLine {
                            key: &self.text[..i],
                            rest: self.text[i + 1..].trim_start(),
                            tab_after_colon: bytes.get(i + 1) == Some(&b'\t'),
                        });
                    }
                    _ => {}
                },
                b'#' if i > 0 && bytes[i - 1] == b' ' => return None,
                _ => {}
            }
        }
        None
    }
}

/// Every line of `doc`, blank ones included, split at `\n` (a `\r` before it is a blank).
pub(crate) fn lines(doc: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for raw in doc.split_inclusive('\n') {
        let end = start + raw.strip_suffix('\n').unwrap_or(raw).len();
        out.push(Line::new(doc, start, end));
        start += raw.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Line<'_> {
        Line::new(text, 0, text.len())
    }

    #[test]
    fn a_line_is_its_text_at_its_column() {
        let l = line("    cluster: build01 \t\r");
        assert_eq!((l.indent, l.text), (4, "cluster: build01"));
        assert!(line("   ").is_blank() && line("  # note").is_blank());
        assert!(!line("  \t# a tab is not indentation").is_blank());
    }

    #[test]
    fn items_and_their_bodies() {
        let l = line("  -   name: a");
        assert!(l.is_item() && line("-").is_item() && !line("-x").is_item());
        let body = l.item_body();
        assert_eq!((body.indent, body.text), (6, "name: a"));
        assert!(line("  - x").continues_value_of(2) && !line("  x: 1").continues_value_of(2));
    }

    #[test]
    fn keys_end_at_a_colon_before_a_blank() {
        let k = line("a:b: c # note").key().unwrap();
        assert_eq!((k.key, k.rest), ("a:b", "c # note"));
        let k = line("cluster:\tb").key().unwrap();
        assert_eq!((k.key, k.rest, k.tab_after_colon), ("cluster", "b", true));
        assert_eq!(line("spec:").key().map(|k| k.rest), Some(""));
        assert!(line("image: x").key().is_some_and(|k| !k.tab_after_colon));
        assert!(line("a #b: c").key().is_none() && line("plain").key().is_none());
    }

    #[test]
    fn lines_keep_their_offsets() {
        let doc = "a: 1\r\n\n  b: 2";
        let ls = lines(doc);
        let found: Vec<(usize, usize, &str)> =
            ls.iter().map(|l| (l.start, l.indent, l.text)).collect();
        assert_eq!(found, vec![(0, 0, "a: 1"), (6, 0, ""), (7, 2, "b: 2")]);
    }
}
