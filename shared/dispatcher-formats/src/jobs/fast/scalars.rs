//! The values the fast reader reads on a key's line: the scalars the YAML library reads as
//! the same strings, the empty collections, and the marker for what it leaves alone.

use crate::yaml::lines::Line;

/// The start of a key's value.
pub(super) enum Value<'a> {
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
pub(super) struct Scalar<'a> {
    text: &'a str,
    /// Whether it was quoted; `''` inside single quotes is the one escape read.
    quoted: bool,
    escaped_quotes: bool,
}

impl Scalar<'_> {
    pub(super) fn to_owned_text(self) -> String {
        if self.escaped_quotes {
            self.text.replace("''", "'")
        } else {
            self.text.to_owned()
        }
    }

    /// A plain scalar that YAML may read as something other than a string.
    pub(super) fn typed(self) -> bool {
        !self.quoted && looks_typed(self.text)
    }
}

/// Null, booleans (YAML 1.1 and 1.2 spellings) and anything number-like.
pub(super) fn looks_typed(s: &str) -> bool {
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

/// Reads an inline value (the text after `key:`, not empty).
pub(super) fn inline(rest: &str) -> Value<'_> {
    match rest.as_bytes()[0] {
        b'"' => double_quoted(rest),
        b'\'' => single_quoted(rest),
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

/// A double-quoted scalar without escapes, alone on the rest of its line.
fn double_quoted(rest: &str) -> Value<'_> {
    match rest[1..].find('"') {
        Some(end) if !rest[1..1 + end].contains('\\') && trailer_ok(&rest[2 + end..]) => {
            Value::Scalar(Scalar {
                text: &rest[1..1 + end],
                quoted: true,
                escaped_quotes: false,
            })
        }
        _ => Value::Complex,
    }
}

/// A single-quoted scalar on one line, alone on the rest of it.
fn single_quoted(rest: &str) -> Value<'_> {
    let body = &rest[1..];
    let b = body.as_bytes();
    let mut i = 0;
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

/// What may follow a closing quote: nothing, or a comment.
fn trailer_ok(s: &str) -> bool {
    s.is_empty() || (s.starts_with([' ', '\t']) && s.trim_start().starts_with('#'))
}
