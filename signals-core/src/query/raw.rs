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
    pub(crate) fn text(&self, backend: Backend) -> (String, usize) {
        let mut out = String::with_capacity(self.sql.len() + 8);
        let mut count = 0;
        let mut chars = self.sql.chars().peekable();
        // The quote or comment being read through: `'`, `"`, `` ` ``, `-` (to the end of the
        // line), `*` (to `*/`).
        let mut inside: Option<char> = None;
        while let Some(c) = chars.next() {
            match inside {
                Some('-') => {
                    out.push(c);
                    if c == '\n' {
                        inside = None;
                    }
                    continue;
                }
                Some('*') => {
                    out.push(c);
                    if c == '*' && chars.peek() == Some(&'/') {
                        out.push('/');
                        chars.next();
                        inside = None;
                    }
                    continue;
                }
                Some(q) => {
                    out.push(c);
                    if c == q {
                        inside = None;
                    }
                    continue;
                }
                None => {}
            }
            match c {
                '\'' | '"' | '`' => inside = Some(c),
                '-' if chars.peek() == Some(&'-') => inside = Some('-'),
                '/' if chars.peek() == Some(&'*') => inside = Some('*'),
                '?' if chars.peek() == Some(&'?') => {
                    chars.next();
                    out.push('?');
                    continue;
                }
                '?' => {
                    count += 1;
                    if backend == Backend::Postgres {
                        out.push('$');
                        out.push_str(&count.to_string());
                    } else {
                        out.push('?');
                    }
                    continue;
                }
                _ => {}
            }
            out.push(c);
        }
        (out, count)
    }
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
}
