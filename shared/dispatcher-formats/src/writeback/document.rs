//! A file as the write-back edits it: its lines (the shared block-YAML model), the
//! `key: value` entries on them with the byte range of each value, the extent of block
//! values, and the mappings that are items of a block sequence.
//!
//! The write-back reads less strictly than the fast reader: it takes quoted keys, and it
//! does not need to agree with the library on what it skips, because every file it
//! rewrites is parsed again and compared ([`super::jobs`]).

use std::ops::Range;

use super::WritebackError;
use crate::yaml::lines::{Line, lines};

/// The text and its lines, all of them (blank ones keep their numbers).
pub(super) struct Document<'a> {
    pub(super) text: &'a str,
    pub(super) lines: Vec<Line<'a>>,
}

/// A `key: value` entry of a block mapping.
#[derive(Debug)]
pub(super) struct Entry {
    /// The key, unquoted.
    pub(super) key: String,
    /// Index of its line.
    pub(super) line: usize,
    /// Byte range of the value on the key's line, a trailing comment excluded; empty (at
    /// the line's end) when the value is on the next lines or null.
    pub(super) value: Range<usize>,
}

/// A block mapping that is an item of a block sequence: its direct keys.
#[derive(Debug)]
pub(super) struct MappingItem {
    pub(super) keys: Vec<Entry>,
    /// The column of its keys.
    pub(super) key_indent: usize,
    /// Index of the line just past the item.
    pub(super) end: usize,
}

impl MappingItem {
    /// The first entry with this key.
    pub(super) fn get(&self, key: &str) -> Option<&Entry> {
        self.keys.iter().find(|e| e.key == key)
    }
}

fn layout(line: usize, message: &str) -> WritebackError {
    WritebackError::Layout {
        line: line + 1,
        message: message.to_owned(),
    }
}

impl<'a> Document<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            text,
            lines: lines(text),
        }
    }

    /// The line ending new lines get: the file's own.
    pub(super) fn eol(&self) -> &'static str {
        if self.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// The text of a value.
    pub(super) fn value_text(&self, e: &Entry) -> &'a str {
        &self.text[e.value.clone()]
    }

    /// A value as the string YAML reads (quotes removed), or as written when it is not one.
    pub(super) fn scalar(&self, e: &Entry) -> String {
        self.scalar_in(e.value.clone())
    }

    /// The text at `range` as the string YAML reads, or as written when it is not one.
    pub(super) fn scalar_in(&self, range: Range<usize>) -> String {
        let v = &self.text[range];
        yaml_serde::from_str::<String>(v).unwrap_or_else(|_| v.to_owned())
    }

    /// The entry on line `i`, if it is `key: value` (or `key:`).
    pub(super) fn entry(&self, i: usize) -> Option<Entry> {
        self.entry_at(i, &self.lines[i])
    }

    /// The entry that `at` (line `i`, or the body of the item on it) holds.
    fn entry_at(&self, i: usize, at: &Line<'a>) -> Option<Entry> {
        let (key, rest) = match at.text.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end = at.text[1..].find(q)? + 1;
                let after = at.text[end + 1..].strip_prefix(':')?;
                if !(after.is_empty() || after.starts_with([' ', '\t'])) {
                    return None;
                }
                (at.text[1..end].to_owned(), after.trim_start())
            }
            _ => {
                let k = at.key()?;
                (k.key.trim_end().to_owned(), k.rest)
            }
        };
        let value = if rest.is_empty() {
            let end = self.body_end(i);
            end..end
        } else {
            let start = at.start + at.indent + (at.text.len() - rest.len());
            // A plain value ends before a comment; a quoted one may hold ` #`.
            let mut v = rest;
            if !v.starts_with(['"', '\''])
                && let Some(h) = v.find(" #")
            {
                v = &v[..h];
            }
            start..start + v.trim_end().len()
        };
        Some(Entry {
            key,
            line: i,
            value,
        })
    }

    /// Where line `i` ends, before its line break and any carriage returns, but after
    /// trailing blanks: where a value added to `key:` goes.
    fn body_end(&self, i: usize) -> usize {
        let start = self.lines[i].start;
        let next = self.lines.get(i + 1).map_or(self.text.len(), |l| l.start);
        let raw = &self.text[start..next];
        start + raw.trim_end_matches('\n').trim_end_matches('\r').len()
    }

    /// The first significant line in `range`.
    pub(super) fn first_significant(&self, range: Range<usize>) -> Option<usize> {
        range.into_iter().find(|&i| !self.lines[i].is_blank())
    }

    /// The end (a line index, at most `to`) of the block value of a key at `indent` on line
    /// `at`.
    pub(super) fn block_end(&self, at: usize, indent: usize, to: usize) -> usize {
        (at + 1..to)
            .find(|&i| {
                let l = &self.lines[i];
                !l.is_blank() && !l.continues_value_of(indent)
            })
            .unwrap_or(to)
    }

    /// The items of a block sequence in lines `[from, to)`, each a block mapping.
    pub(super) fn sequence_items(
        &self,
        from: usize,
        to: usize,
    ) -> Result<Vec<MappingItem>, WritebackError> {
        let Some(first) = self.first_significant(from..to) else {
            return Ok(Vec::new());
        };
        let ls = &self.lines;
        if !ls[first].is_item() {
            return Err(if ls[first].text.starts_with('[') {
                layout(first, "flow-style lists are not supported")
            } else {
                layout(first, "expected a list item")
            });
        }
        let dashes = ls[first].indent;
        let starts: Vec<usize> = (first..to)
            .filter(|&i| !ls[i].is_blank() && ls[i].indent == dashes && ls[i].is_item())
            .collect();
        let mut items = Vec::new();
        for (n, &a) in starts.iter().enumerate() {
            let b = starts.get(n + 1).copied().unwrap_or(to);
            if let Some(item) = self.mapping_item(a, b)? {
                items.push(item);
            }
        }
        Ok(items)
    }

    /// The mapping of the item whose dash is on line `a`, its lines ending before `b`;
    /// `None` for an item with nothing in it.
    fn mapping_item(&self, a: usize, b: usize) -> Result<Option<MappingItem>, WritebackError> {
        let body = self.lines[a].item_body();
        let inline = !body.text.is_empty();
        let key_indent = if inline {
            body.indent
        } else {
            match self.first_significant(a + 1..b) {
                Some(i) => self.lines[i].indent,
                None => return Ok(None),
            }
        };
        if body.text.starts_with('{') {
            return Err(layout(a, "flow-style job mappings are not supported"));
        }
        let mut keys = Vec::new();
        if inline {
            let entry = self
                .entry_at(a, &body)
                .ok_or_else(|| layout(a, "expected `key: value` after `- `"))?;
            keys.push(entry);
        }
        for i in a + 1..b {
            let l = &self.lines[i];
            if !l.is_blank()
                && l.indent == key_indent
                && let Some(e) = self.entry(i)
            {
                keys.push(e);
            }
        }
        Ok(Some(MappingItem {
            keys,
            key_indent,
            end: b,
        }))
    }
}
