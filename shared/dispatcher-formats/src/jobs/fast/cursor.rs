//! The fast reader's position in a file: the significant lines one at a time, with one of
//! look-ahead, and the skipping of whole values by indentation.

use crate::yaml::lines::Line;

/// Reads the significant lines of one document (not blank, not a comment), stopping at
/// anything that would start another.
pub(super) struct Cursor<'a> {
    src: &'a str,
    /// Start of the next unread line.
    pos: usize,
    /// The newlines from `pos` on: one vectorised pass instead of a search per line.
    newlines: memchr::Memchr<'a>,
    peeked: Option<Option<Line<'a>>>,
    /// Whether a significant line was read (a `---` before it starts the only document).
    started: bool,
    /// A line the reader must not go past (a second `---`, `...`, a directive).
    pub(super) stop: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `src` (which `read` has checked for what the reader leaves
    /// to the library outright: lone carriage returns, byte order marks).
    pub(super) fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            newlines: memchr::memchr_iter(b'\n', src.as_bytes()),
            peeked: None,
            started: false,
            stop: false,
        }
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
            let line = Line::new(self.src, start, end);
            if line.is_blank() {
                continue;
            }
            let text = line.text;
            if line.indent == 0
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
            return Some(line);
        }
        None
    }

    /// The next significant line, left to read.
    pub(super) fn peek(&mut self) -> Option<Line<'a>> {
        if let Some(p) = self.peeked {
            return p;
        }
        let l = self.raw_next();
        self.peeked = Some(l);
        l
    }

    /// The next significant line, read.
    pub(super) fn take(&mut self) -> Option<Line<'a>> {
        let l = self.peek();
        self.peeked = None;
        l
    }

    /// Consumes every line of the value of a key at `key_indent`
    /// ([`Line::continues_value_of`]). Most of a job file goes through here, so a line that
    /// starts with more than `key_indent` spaces is passed over without looking further
    /// into it.
    pub(super) fn skip_deeper(&mut self, key_indent: usize) {
        match self.peeked {
            Some(Some(l)) if l.continues_value_of(key_indent) => self.peeked = None,
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
                Some(l) if l.continues_value_of(key_indent) => {}
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
