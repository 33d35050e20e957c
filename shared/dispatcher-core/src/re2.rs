//! Group path regexes as Go's `regexp` (RE2) reads them.
//!
//! The release repository's own CI runs the Go sanitizer, so a pattern it refuses must be
//! refused here too, and a pattern both accept must match the same paths. The Rust `regex`
//! crate is close to RE2 but not equal, so every pattern goes through [`go_regex`], which
//! walks `regex-syntax`'s AST and
//!
//! - refuses what Go refuses although Rust accepts it: stacked repetition operators
//!   (`[0-9]++`, `a**`, `a{2}*`), a repeat count over 1,000 (alone, or multiplied through
//!   nested counted repeats), the flags `x`, `u` and `R`, the escapes `\u`/`\U`, the word
//!   boundaries `\b{start}`, `\<`, `\>` and their kin, capture names with characters other
//!   than `[A-Za-z0-9_]`, and Unicode classes other than `Any` and the general categories;
//! - refuses what both accept but read differently: nested classes and class set
//!   operations (`[a[bc]]`, `[a-z&&b]`), which are literal characters to Go;
//! - rewrites what both accept with different meanings: `\d`, `\w`, `\s` and `\b` are ASCII
//!   in Go and Unicode in Rust, so they become explicit ASCII classes.
//!
//! What Go accepts and Rust refuses (a lone `{` as a literal, `\Q...\E`, octal escapes) is
//! refused, with the parser's message: such a config would fail here, loudly, not differ.

use regex_syntax::ast::{
    self, Assertion, AssertionKind, Ast, ClassPerl, ClassPerlKind, ClassSet, ClassSetItem,
    ClassUnicodeKind, Flag, FlagsItemKind, GroupKind, HexLiteralKind, LiteralKind, RepetitionKind,
    RepetitionRange,
};

/// Go's limit on a repeat count, and on the copies nested counted repeats multiply into.
const MAX_REPEAT: u32 = 1000;

/// The Unicode classes Go's `regexp` knows besides scripts: `Any` and the categories.
const GO_CATEGORIES: &[&str] = &[
    "Any", "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn",
    "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm",
    "So", "Z", "Zl", "Zp", "Zs",
];

/// Why a pattern cannot be used: what Go (or the Rust parser) says about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}: `{excerpt}`")]
pub struct Re2Error {
    /// What is wrong, in the words of Go's `regexp/syntax` where it has words for it.
    pub message: String,
    /// The part of the pattern at fault.
    pub excerpt: String,
}

/// Checks `pattern` against RE2's syntax and returns the equivalent pattern for the Rust
/// `regex` crate (Go's ASCII meaning of `\d`, `\w`, `\s`, `\b` made explicit).
pub fn go_regex(pattern: &str) -> Result<String, Re2Error> {
    let ast = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| Re2Error {
            message: e.kind().to_string(),
            excerpt: excerpt(pattern, e.span()),
        })?;
    let mut walk = Walk {
        pattern,
        edits: Vec::new(),
    };
    walk.node(&ast, MAX_REPEAT)?;
    let mut out = pattern.to_owned();
    walk.edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (start, end, text) in walk.edits {
        out.replace_range(start..end, text);
    }
    Ok(out)
}

fn excerpt(pattern: &str, span: &ast::Span) -> String {
    pattern
        .get(span.start.offset..span.end.offset)
        .unwrap_or(pattern)
        .to_owned()
}

/// The AST walk: refusals, and the text edits that give Go's meaning.
struct Walk<'p> {
    pattern: &'p str,
    /// (start, end, replacement) byte ranges of the pattern.
    edits: Vec<(usize, usize, &'static str)>,
}

impl Walk<'_> {
    fn refuse(&self, message: &str, span: &ast::Span) -> Re2Error {
        Re2Error {
            message: message.to_owned(),
            excerpt: excerpt(self.pattern, span),
        }
    }

    /// `budget` is how many copies of this node nested counted repeats still allow.
    fn node(&mut self, node: &Ast, budget: u32) -> Result<(), Re2Error> {
        match node {
            Ast::Empty(_) | Ast::Dot(_) => Ok(()),
            Ast::Flags(f) => self.flags(&f.flags),
            Ast::Literal(l) => self.literal(l),
            Ast::Assertion(a) => self.assertion(a),
            Ast::ClassUnicode(u) => self.unicode(u),
            Ast::ClassPerl(p) => {
                self.edits
                    .push((p.span.start.offset, p.span.end.offset, perl_outside(p)));
                Ok(())
            }
            Ast::ClassBracketed(b) => self.class_set(&b.kind),
            Ast::Repetition(r) => self.repetition(r, budget),
            Ast::Group(g) => {
                match &g.kind {
                    GroupKind::CaptureName { name, .. } => {
                        let valid = name
                            .name
                            .bytes()
                            .all(|b| b == b'_' || b.is_ascii_alphanumeric());
                        if !valid {
                            return Err(self.refuse("invalid named capture", &name.span));
                        }
                    }
                    GroupKind::NonCapturing(flags) => self.flags(flags)?,
                    GroupKind::CaptureIndex(_) => {}
                }
                self.node(&g.ast, budget)
            }
            Ast::Alternation(a) => a.asts.iter().try_for_each(|x| self.node(x, budget)),
            Ast::Concat(c) => c.asts.iter().try_for_each(|x| self.node(x, budget)),
        }
    }

    fn repetition(&mut self, r: &ast::Repetition, budget: u32) -> Result<(), Re2Error> {
        // Go refuses a repetition operator right after another one (Perl's rule; `a++`
        // would be possessive there), where Rust quietly nests them.
        if let Ast::Repetition(inner) = r.ast.as_ref() {
            let span = ast::Span::new(inner.op.span.start, r.op.span.end);
            return Err(self.refuse("invalid nested repetition operator", &span));
        }
        let mut budget = budget;
        if let RepetitionKind::Range(range) = &r.op.kind {
            let (min, max) = match *range {
                RepetitionRange::Exactly(n) => (n, Some(n)),
                RepetitionRange::AtLeast(n) => (n, None),
                RepetitionRange::Bounded(a, b) => (a, Some(b)),
            };
            if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
                return Err(self.refuse("invalid repeat count", &r.op.span));
            }
            // Go's repeatIsValid: the largest count (or the least when unbounded) of each
            // counted repeat, multiplied down the nesting, stays within 1,000.
            let copies = max.unwrap_or(min);
            if copies > budget {
                return Err(self.refuse("invalid repeat count", &r.op.span));
            }
            budget = budget.checked_div(copies).unwrap_or(budget);
        }
        self.node(&r.ast, budget)
    }

    fn flags(&self, flags: &ast::Flags) -> Result<(), Re2Error> {
        for item in &flags.items {
            if let FlagsItemKind::Flag(Flag::IgnoreWhitespace | Flag::Unicode | Flag::CRLF) =
                item.kind
            {
                return Err(self.refuse("invalid or unsupported Perl syntax", &item.span));
            }
        }
        Ok(())
    }

    fn literal(&self, l: &ast::Literal) -> Result<(), Re2Error> {
        match l.kind {
            LiteralKind::HexFixed(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong)
            | LiteralKind::HexBrace(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong) => {
                Err(self.refuse("invalid escape sequence", &l.span))
            }
            _ => Ok(()),
        }
    }

    fn assertion(&mut self, a: &Assertion) -> Result<(), Re2Error> {
        let ascii = match a.kind {
            AssertionKind::StartLine
            | AssertionKind::EndLine
            | AssertionKind::StartText
            | AssertionKind::EndText => return Ok(()),
            AssertionKind::WordBoundary => r"(?-u:\b)",
            AssertionKind::NotWordBoundary => r"(?-u:\B)",
            _ => return Err(self.refuse("invalid escape sequence", &a.span)),
        };
        self.edits
            .push((a.span.start.offset, a.span.end.offset, ascii));
        Ok(())
    }

    fn unicode(&self, u: &ast::ClassUnicode) -> Result<(), Re2Error> {
        let known = match &u.kind {
            ClassUnicodeKind::OneLetter(c) => GO_CATEGORIES
                .iter()
                .any(|n| n.len() == 1 && n.starts_with(*c)),
            ClassUnicodeKind::Named(name) => GO_CATEGORIES.contains(&name.as_str()),
            ClassUnicodeKind::NamedValue { .. } => false,
        };
        if known {
            Ok(())
        } else {
            Err(self.refuse(
                "Unicode class outside Any and the general categories (write it as explicit ranges)",
                &u.span,
            ))
        }
    }

    fn class_set(&mut self, set: &ClassSet) -> Result<(), Re2Error> {
        match set {
            ClassSet::BinaryOp(op) => Err(self.refuse(
                "class set operation, which Go reads as literal characters",
                &op.span,
            )),
            ClassSet::Item(item) => self.class_item(item),
        }
    }

    fn class_item(&mut self, item: &ClassSetItem) -> Result<(), Re2Error> {
        match item {
            ClassSetItem::Empty(_)
            | ClassSetItem::Literal(_)
            | ClassSetItem::Range(_)
            | ClassSetItem::Ascii(_) => Ok(()),
            ClassSetItem::Unicode(u) => self.unicode(u),
            ClassSetItem::Perl(p) => {
                let text = perl_inside(p).ok_or_else(|| {
                    self.refuse("\\S inside a class (Go's \\s has no POSIX name)", &p.span)
                })?;
                self.edits
                    .push((p.span.start.offset, p.span.end.offset, text));
                Ok(())
            }
            ClassSetItem::Bracketed(b) => Err(self.refuse(
                "nested class, which Go reads as literal characters",
                &b.span,
            )),
            ClassSetItem::Union(u) => u.items.iter().try_for_each(|i| self.class_item(i)),
        }
    }
}

/// Go's ASCII Perl classes as a class of their own.
fn perl_outside(p: &ClassPerl) -> &'static str {
    match (&p.kind, p.negated) {
        (ClassPerlKind::Digit, false) => "[0-9]",
        (ClassPerlKind::Digit, true) => "[^0-9]",
        (ClassPerlKind::Word, false) => "[0-9A-Za-z_]",
        (ClassPerlKind::Word, true) => "[^0-9A-Za-z_]",
        (ClassPerlKind::Space, false) => r"[\t\n\f\r ]",
        (ClassPerlKind::Space, true) => r"[^\t\n\f\r ]",
    }
}

/// Go's ASCII Perl classes as items of an enclosing class.
fn perl_inside(p: &ClassPerl) -> Option<&'static str> {
    Some(match (&p.kind, p.negated) {
        (ClassPerlKind::Digit, false) => "0-9",
        (ClassPerlKind::Digit, true) => "[:^digit:]",
        (ClassPerlKind::Word, false) => "0-9A-Za-z_",
        (ClassPerlKind::Word, true) => "[:^word:]",
        (ClassPerlKind::Space, false) => r"\t\n\f\r ",
        (ClassPerlKind::Space, true) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &str) -> String {
        go_regex(p).expect_err(p).to_string()
    }

    #[test]
    fn refuses_what_go_refuses_although_rust_accepts_it() {
        for (p, want) in [
            ("[0-9]++", "invalid nested repetition operator: `++`"),
            ("a**", "invalid nested repetition operator: `**`"),
            ("a{2}*", "invalid nested repetition operator: `{2}*`"),
            ("a*??", "invalid nested repetition operator: `*??`"),
            ("a{1001}", "invalid repeat count: `{1001}`"),
            ("(a{100}){11}", "invalid repeat count: `{100}`"),
            ("(?x)a b", "invalid or unsupported Perl syntax: `x`"),
            ("(?u:a)", "invalid or unsupported Perl syntax: `u`"),
            (r"\u0041", "invalid escape sequence"),
            (r"\<a", "invalid escape sequence"),
            (r"\b{start}a", "invalid escape sequence"),
            ("(?P<a.b>x)", "invalid named capture"),
            (r"\p{Greek}", "Unicode class"),
            ("[a[bc]]", "nested class"),
            ("[a-z&&b]", "class set operation"),
        ] {
            assert!(
                regex::Regex::new(p).is_ok(),
                "{p}: Rust accepts it, which is the point"
            );
            let e = refused(p);
            assert!(e.contains(want), "{p}: {e}");
        }
    }

    #[test]
    fn refuses_what_neither_accepts() {
        for p in ["[", "a{2,1}", r"\Z", "(?P=n)"] {
            assert!(go_regex(p).is_err(), "{p}");
        }
    }

    #[test]
    fn accepts_what_both_accept_alike() {
        for p in [
            ".*openshift-priv/.*-presubmits.yaml$",
            "[^-]infra-periodics.yaml",
            "a*?b+?c??",
            "(a*)*",
            "a{1000}",
            "(a{10}){100}",
            "(?i)(?P<org>openshift)/(?<repo>[a-z]+)",
            r"\pL\p{Lu}\PN\p{Any}",
            "[[:alpha:]-]",
            r"\x41\x{42}\.\-",
            r"^\Ab\z$",
        ] {
            let translated = go_regex(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(translated, p, "nothing to rewrite in {p}");
        }
    }

    #[test]
    fn perl_classes_and_word_boundaries_mean_what_they_mean_in_go() {
        assert_eq!(go_regex(r"\d+").unwrap(), "[0-9]+");
        assert_eq!(go_regex(r"\W").unwrap(), "[^0-9A-Za-z_]");
        assert_eq!(go_regex(r"[\d_]").unwrap(), "[0-9_]");
        assert_eq!(go_regex(r"[^\s]").unwrap(), r"[^\t\n\f\r ]");
        assert_eq!(go_regex(r"\bx\B").unwrap(), r"(?-u:\b)x(?-u:\B)");
        // A digit of another script is a digit to Rust's \d, not to Go's.
        let arabic_three = "\u{663}";
        assert!(regex::Regex::new(r"\d").unwrap().is_match(arabic_three));
        let go = regex::Regex::new(&go_regex(r"\d").unwrap()).unwrap();
        assert!(!go.is_match(arabic_three));
        assert!(go.is_match("3"));
    }
}
