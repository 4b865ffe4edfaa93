//! Plain SQL read into models ([`Raw`], Django's `Model.objects.raw`): the text as written,
//! its `?` placeholders numbered for PostgreSQL, and the values bound to them.

use std::fmt;
use std::marker::PhantomData;

use crate::backend::Backend;
use crate::value::{DynField, FieldType};

/// A plain SQL query whose rows are read as models `M`: [`Model::raw`](crate::Model::raw).
/// Run it with [`all`](Raw::all) or [`first`](Raw::first) on a `&Db` or in a transaction.
pub struct Raw<M> {
    pub(crate) sql: String,
    pub(crate) values: Vec<Box<dyn DynField>>,
    _model: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for Raw<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Raw")
            .field("sql", &self.sql)
            .field("values", &self.values)
            .finish()
    }
}

impl<M> Raw<M> {
    pub(crate) fn new(sql: String) -> Self {
        Raw {
            sql,
            values: Vec::new(),
            _model: PhantomData,
        }
    }

    /// Binds `value` to the next `?` placeholder.
    pub fn bind<T: FieldType + 'static>(mut self, value: T) -> Self {
        self.values.push(Box::new(value));
        self
    }

    /// The text for `backend`: on PostgreSQL each `?` outside quotes and comments becomes
    /// `$1`, `$2`, …, and `??` a single `?` (for its JSON operators); elsewhere `??` is `?`
    /// and `?` stays. Returns the text and how many placeholders it holds.
    ///
    /// What is skipped is what each backend quotes: `'..'`, `".."` and comments everywhere;
    /// PostgreSQL's `$tag$..$tag$`, `E'..'` (with backslash escapes) and nested `/* */`;
    /// MySQL's `` `..` ``, backslash escapes in strings and `#` comments; SQLite's `[..]` and
    /// `` `..` ``.
    pub(crate) fn text(&self, backend: Backend) -> (String, usize) {
        let src = self.sql.as_str();
        let bytes = src.as_bytes();
        let mut out = String::with_capacity(src.len() + 8);
        let mut count = 0;
        let mut i = 0;
        // Copies `src[from..to]` as it is.
        let copy = |out: &mut String, from: usize, to: usize| out.push_str(&src[from..to]);
        while i < bytes.len() {
            let c = bytes[i];
            let next = bytes.get(i + 1).copied();
            let start = i;
            match c {
                b'\'' | b'"' => {
                    // PostgreSQL's `E'..'` and MySQL's strings take backslash escapes.
                    let escapes = backend == Backend::MySql
                        || (backend == Backend::Postgres
                            && c == b'\''
                            && i > 0
                            && matches!(bytes[i - 1], b'E' | b'e'));
                    i = skip_quoted(bytes, i + 1, c, escapes);
                }
                b'`' if backend != Backend::Postgres => i = skip_quoted(bytes, i + 1, b'`', false),
                b'[' if backend == Backend::Sqlite => i = skip_quoted(bytes, i + 1, b']', false),
                b'-' if next == Some(b'-') => i = skip_line(bytes, i),
                b'#' if backend == Backend::MySql => i = skip_line(bytes, i),
                b'/' if next == Some(b'*') => {
                    i = skip_block_comment(bytes, i + 2, backend == Backend::Postgres);
                }
                b'$' if backend == Backend::Postgres => match dollar_tag(bytes, i) {
                    Some(tag_end) => {
                        let tag = &bytes[i..tag_end];
                        i = find(bytes, tag_end, tag).map_or(bytes.len(), |j| j + tag.len());
                    }
                    None => i += 1,
                },
                b'?' if next == Some(b'?') => {
                    out.push('?');
                    i += 2;
                    continue;
                }
                b'?' => {
                    count += 1;
                    if backend == Backend::Postgres {
                        out.push('$');
                        out.push_str(&count.to_string());
                    } else {
                        out.push('?');
                    }
                    i += 1;
                    continue;
                }
                _ => {
                    // One character, whole (UTF-8).
                    let len = src[i..].chars().next().map_or(1, char::len_utf8);
                    i += len;
                }
            }
            copy(&mut out, start, i);
        }
        (out, count)
    }
}

/// The index just past the quote closing a quoted text that starts at `i` (after its opening
/// quote): a doubled quote is one quote in it, and with `escapes` a backslash escapes the
/// next byte. Unclosed, the rest of the text.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8, escapes: bool) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if escapes => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) && quote != b']' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past the end of the line starting a comment at `i`.
fn skip_line(bytes: &[u8], i: usize) -> usize {
    find(bytes, i, b"\n").map_or(bytes.len(), |j| j + 1)
}

/// The index just past the `*/` that closes a block comment whose text starts at `i`;
/// PostgreSQL's nest.
fn skip_block_comment(bytes: &[u8], mut i: usize, nested: bool) -> usize {
    let mut depth = 1;
    while i < bytes.len() {
        if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else if nested && bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// A PostgreSQL dollar quote's opening tag at `i` (`$$` or `$tag$`): the index past it.
fn dollar_tag(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    // `$1` is a parameter, not a tag: a tag does not start with a digit.
    if bytes.get(j) == Some(&b'$') && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        Some(j + 1)
    } else {
        None
    }
}

/// The first index at or after `from` where `needle` starts.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..=bytes.len().saturating_sub(needle.len())).find(|&j| bytes[j..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    use super::Raw;
    use crate::backend::Backend;

    #[test]
    fn placeholders_are_numbered_outside_quotes_and_comments() {
        let raw: Raw<()> = Raw::new(
            "SELECT * FROM t WHERE a = ? AND b = '?' AND \"c?\" = ? -- ?\n AND d ?? 'k' /* ? */ AND e = ?"
                .into(),
        );
        assert_eq!(
            raw.text(Backend::Postgres),
            (
                "SELECT * FROM t WHERE a = $1 AND b = '?' AND \"c?\" = $2 -- ?\n AND d ? 'k' /* ? */ AND e = $3".into(),
                3
            )
        );
        assert_eq!(raw.text(Backend::MySql).1, 3);
        assert!(raw.text(Backend::Sqlite).0.contains("d ? 'k'"));
    }

    #[test]
    fn each_backends_quotes_and_comments_are_skipped() {
        let count = |sql: &str, backend| Raw::<()>::new(sql.into()).text(backend).1;
        for sql in [
            "SELECT $$?$$, $t$it's ?$t$, ?",
            "SELECT E'it\\'s ?', ?",
            "SELECT /* a /* b */ ? */ ?",
        ] {
            assert_eq!(count(sql, Backend::Postgres), 1, "{sql}");
        }
        for sql in ["SELECT 'it\\'s ?', ?", "SELECT ? # ?\n", "SELECT `a?`, ?"] {
            assert_eq!(count(sql, Backend::MySql), 1, "{sql}");
        }
        assert_eq!(count("SELECT [a?], ?", Backend::Sqlite), 1);
        assert_eq!(count("SELECT 'a''?', ? -- ?", Backend::Sqlite), 1);
        assert_eq!(count("SELECT 'unclosed ?", Backend::Sqlite), 0);
    }
}
