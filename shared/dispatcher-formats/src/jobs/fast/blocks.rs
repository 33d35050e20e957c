//! Walking block mappings and sequences: the entries of a mapping, the items of a sequence,
//! and the value of a key, each either read or skipped whole. Every function answers
//! `None` where the file is the library's.

use super::cursor::Cursor;
use super::scalars::{Value, inline, looks_typed};
use crate::yaml::lines::Line;

/// Splits `key: rest` (or `key:`). Keys must be plain, simple and untyped-looking enough
/// that the library reads them as the same string, and a value after a tab is the
/// library's.
fn split_key<'a>(line: &Line<'a>) -> Option<(&'a str, &'a str)> {
    // A significant line, or an item's body that holds something: never empty.
    let first = line.text.as_bytes()[0];
    if b"-?:,[]{}#&*!|>'\"%@`\t".contains(&first) {
        return None;
    }
    let k = line.key()?;
    if k.tab_after_colon || k.key.ends_with([' ', '\t']) || k.key == "<<" || looks_typed(k.key) {
        return None;
    }
    let rest = if k.rest.starts_with('#') { "" } else { k.rest };
    Some((k.key, rest))
}

/// The value of a key at `key_indent` whose line ended with `rest`. Lines that continue an
/// inline value (a multi-line scalar) make it `Complex`; the caller skips them.
pub(super) fn value<'a>(
    cur: &mut Cursor<'a>,
    key_indent: usize,
    rest: &'a str,
) -> Option<Value<'a>> {
    if !rest.is_empty() {
        let v = inline(rest);
        if cur.peek().is_some_and(|l| l.indent > key_indent) {
            return Some(Value::Complex);
        }
        return Some(v);
    }
    Some(match cur.peek() {
        Some(l) if l.continues_value_of(key_indent) => Value::Block(cur.take()?),
        _ => Value::Null,
    })
}

/// Consumes what is left of a value: every line deeper than its key, and a compact
/// sequence at the key's indentation.
pub(super) fn skip_value(cur: &mut Cursor<'_>, key_indent: usize) -> Option<()> {
    cur.skip_deeper(key_indent);
    (!cur.stop).then_some(())
}

/// Walks the entries of a block mapping whose keys sit at `indent`; `first` is its first
/// line (for a mapping that starts a sequence item, the item's body). `entry` gets the
/// key, its indentation and the rest of its line, and must consume the value.
pub(super) fn map_entries<'a>(
    cur: &mut Cursor<'a>,
    first: Line<'a>,
    indent: usize,
    mut entry: impl FnMut(&mut Cursor<'a>, &'a str, usize, &'a str) -> Option<()>,
) -> Option<()> {
    let mut line = first;
    loop {
        let (key, rest) = split_key(&line)?;
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
/// be a mapping; `item` gets its body (the first line after the dash) and its indentation.
pub(super) fn seq_items<'a>(
    cur: &mut Cursor<'a>,
    first: Line<'a>,
    mut item: impl FnMut(&mut Cursor<'a>, Line<'a>, usize) -> Option<()>,
) -> Option<()> {
    let indent = first.indent;
    let mut line = first;
    loop {
        let body = line.item_body();
        if body.is_blank() || body.is_item() {
            return None;
        }
        item(cur, body, body.indent)?;
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
pub(super) fn map_value<'a>(
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
pub(super) fn seq_value<'a>(
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
