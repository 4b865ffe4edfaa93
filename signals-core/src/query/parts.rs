//! Writing a query's SQL: compiled once for every model, from the query's parts borrowed
//! without its model type.

use super::*;

/// A query's parts, borrowed, without its model type: its SQL is written by code compiled
/// once, not once per model queried.
pub(super) struct Parts<'q> {
    pub(super) filter: &'q Option<Node>,
    pub(super) order: &'q [Term],
    pub(super) related: &'q [Via],
    pub(super) select: &'q Option<Select>,
    pub(super) limit: Option<u64>,
    pub(super) offset: Option<u64>,
    pub(super) lock: Lock,
    pub(super) after_key: &'q Option<Box<dyn crate::value::DynField>>,
    pub(super) wait: Contended,
}

impl<'q> Parts<'q> {
    /// The joins the query's orderings and `select_related` need: each distinct path of
    /// references, every prefix before the paths that extend it. Join `n` (from 1) is the
    /// `n - 1`th.
    fn joins(&self, shape: Shape) -> Vec<&'q [Via]> {
        let mut paths: Vec<&'q [Via]> = Vec::new();
        // `Count` and `Exists` need no join: every join follows a reference to a key, which
        // matches one row at most (a LEFT JOIN), so it changes no count.
        if shape == Shape::Rows || self.windowed() {
            paths.extend(self.order.iter().map(|term| term.via.as_slice()));
        }
        if shape == Shape::Rows {
            paths.extend(self.related.iter().map(std::slice::from_ref));
        }
        let mut joins: Vec<&'q [Via]> = Vec::new();
        for path in paths {
            for len in 1..=path.len() {
                let prefix = &path[..len];
                if !joins.contains(&prefix) {
                    joins.push(prefix);
                }
            }
        }
        joins
    }

    /// Refuses an ordering by an aggregate of the rows where nothing groups them (a plain
    /// query, `annotate`, `aggregate`): no backend runs it as meant (MySQL would give one row).
    fn check_orderings(&self, meta: &ModelMeta, select: Option<&Select>) -> Result<()> {
        let grouped =
            select.is_some_and(|s| !s.annotate && !s.whole && s.items.iter().any(Item::groups));
        if !grouped
            && self
                .order
                .iter()
                .any(|t| t.expr.as_ref().is_some_and(|e| e.groups()))
        {
            return Err(crate::error::Error::InvalidQuery(format!(
                "a query of `{}` rows is ordered by an aggregate of its rows, which only a \
                 grouped selection has: select it with the columns it groups by, through \
                 `values`, or order by a related count",
                meta.name
            )));
        }
        Ok(())
    }

    /// Refuses a selection that no backend would run as meant, saying what to do instead.
    fn check_select(&self, meta: &ModelMeta, select: &Select) -> Result<()> {
        let refuse = |why: String| Err(crate::error::Error::InvalidQuery(why));
        let name = meta.name;
        let key = meta.columns[meta.primary_key];
        let groups = select.items.iter().any(Item::groups);
        let keyed = select
            .items
            .iter()
            .any(|item| matches!(item, Item::Column(c, _) if *c == key));
        if groups && !keyed && select.items.iter().any(Item::per_row) {
            return refuse(format!(
                "a grouped selection of `{name}` values cannot hold a related count, which is \
                 per row: select the key (`{key}`) among its columns, or count in `annotate`"
            ));
        }
        if self.lock != Lock::None {
            return refuse(format!(
                "a selection of `{name}` values cannot lock rows: lock them with `all` instead"
            ));
        }
        if select.annotate && select.items.iter().any(Item::groups) {
            return refuse(format!(
                "`annotate` of `{name}` rows takes counts of related rows (`related_count`):                  aggregate the rows themselves with `aggregate`, or per group with `values`"
            ));
        }
        if select.whole && !select.items.iter().all(Item::groups) {
            return refuse(format!(
                "`aggregate` of `{name}` rows takes aggregates of its columns only: select                  columns with them through `values`, which groups by them"
            ));
        }
        if select.collapses() && !select.whole {
            let selected = |column: &str| {
                select
                    .items
                    .iter()
                    .any(|item| matches!(item, Item::Column(c, _) if *c == column))
            };
            for term in self.order {
                let fits = if term.expr.is_some() {
                    !select.distinct
                } else {
                    term.via.is_empty() && selected(term.column)
                };
                if !fits {
                    return refuse(format!(
                        "a {} selection of `{name}` values is ordered only by the columns it                          selects{}: select the ordering's column too, or drop it",
                        if select.distinct {
                            "distinct"
                        } else {
                            "grouped"
                        },
                        if select.distinct {
                            ""
                        } else {
                            " and by aggregates"
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    fn windowed(&self) -> bool {
        self.limit.is_some() || self.offset.is_some()
    }

    /// The SQL text and arguments of the query on `backend`.
    pub(super) fn sql(&self, meta: &ModelMeta, backend: Backend, shape: Shape) -> Result<Sql> {
        let mut sql = Sql::with_capacity(backend, 4);
        let joins = self.joins(shape);
        sql.scope_of(meta.table, !joins.is_empty());
        let base = sql.scope();
        // The scope of the join that `path` ends with.
        let scope_of = |path: &[Via]| {
            let n = joins.iter().position(|j| *j == path).map_or(0, |i| i + 1);
            Sql::join_scope(path[path.len() - 1].table, n as u16)
        };
        let select = self.select.as_ref().filter(|_| shape == Shape::Rows);
        if let Some(select) = select {
            self.check_select(meta, select)?;
        }
        self.check_orderings(meta, select)?;
        let wrapped = select.filter(|s| s.whole && self.windowed());
        if let Some(select) = wrapped {
            // Aggregates over a window: over the window's rows, under the table's name.
            sql.push("SELECT ");
            sql.list(&select.items, |sql, item| item.write(sql))?;
            sql.push(" FROM (");
        }
        sql.push("SELECT ");
        let windowed = self.windowed();
        let key = meta.columns[meta.primary_key];
        match shape {
            Shape::Rows if select.is_some_and(|s| !s.annotate) && wrapped.is_none() => {
                let select = select.expect("checked");
                if select.distinct && !exact_distinct(backend, select) {
                    sql.push("DISTINCT ");
                }
                sql.list(&select.items, |sql, item| item.write(sql))?;
            }
            Shape::Rows => {
                sql.each(meta.columns, |sql, column| {
                    sql.column(column);
                });
                if let Some(select) = select.filter(|s| s.annotate) {
                    for item in &select.items {
                        sql.push(", ");
                        item.write(&mut sql)?;
                    }
                }
                for via in self.related {
                    let scope = scope_of(std::slice::from_ref(via));
                    for column in via.columns {
                        sql.push(", ").column_of(scope, column);
                    }
                }
            }
            Shape::Count if windowed => {
                sql.push("COUNT(*) FROM (SELECT 1 AS one");
            }
            Shape::Count => {
                sql.push("COUNT(*)");
            }
            Shape::Exists => {
                sql.push("1");
            }
        }
        sql.push(" FROM ").ident(meta.table);
        for path in &joins {
            let via = path[path.len() - 1];
            let parent = if path.len() == 1 {
                base
            } else {
                scope_of(&path[..path.len() - 1])
            };
            let scope = scope_of(path);
            // A join after a LEFT JOIN stays one: its parent row may be missing.
            let outer = path.iter().any(|v| v.nullable);
            sql.push(if outer { " LEFT JOIN " } else { " JOIN " })
                .ident(via.table)
                .push(" AS ");
            sql.qualifier(scope).push(" ON ");
            sql.column_of(scope, via.key)
                .push(" = ")
                .column_of(parent, via.column);
        }
        if let Some(filter) = &self.filter {
            sql.push(" WHERE ");
            filter.write(&mut sql)?;
        }
        if let Some(after) = &self.after_key {
            sql.push(if self.filter.is_some() {
                " AND "
            } else {
                " WHERE "
            });
            sql.column(key).push(" > ");
            sql.bind_dyn(after.as_ref(), key)?;
        }
        let grouped = select.filter(|s| wrapped.is_none() && !s.annotate);
        if let Some(select) = grouped.filter(|s| {
            (!s.distinct && s.items.iter().any(Item::groups)) || exact_distinct(backend, s)
        }) {
            let mut first = true;
            for item in &select.items {
                if let Item::Column(column, text) = item {
                    sql.push(if first { " GROUP BY " } else { ", " });
                    if *text && backend == Backend::MySql {
                        // Byte for byte: MySQL's `PAD SPACE` takes `a` and `a ` for one
                        // value. The column itself too, for `ONLY_FULL_GROUP_BY`.
                        text::write_binary(&mut sql, column, false);
                        sql.push(", ");
                    }
                    sql.column(column);
                    first = false;
                }
            }
        }
        let ordered = shape == Shape::Rows;
        let collapsed = select.is_some_and(|s| s.collapses() && wrapped.is_none());
        if (ordered || (shape == Shape::Count && windowed)) && !(collapsed && self.order.is_empty())
        {
            sql.push(" ORDER BY ");
            if self.order.is_empty() {
                sql.column(key);
            }
            sql.list(self.order, |sql, term| {
                let direction = if term.descending { " DESC" } else { " ASC" };
                // The orderings that are to be the same on every backend put NULLs where
                // SQLite and MySQL do: first going up, last going down (PostgreSQL's own is
                // the reverse).
                let nulls = match (term.binary, backend, term.descending) {
                    (Some(_), Backend::Postgres, false) => " NULLS FIRST",
                    (Some(_), Backend::Postgres, true) => " NULLS LAST",
                    _ => "",
                };
                let outer = (!term.via.is_empty()).then(|| sql.set_scope(scope_of(&term.via)));
                let column = term.column;
                match term.binary {
                    _ if term.expr.is_some() => {
                        term.expr.as_ref().expect("checked").write(sql)?;
                    }
                    None => {
                        let cast = term.numeric_text && backend == Backend::Sqlite;
                        filter::write_column(sql, column, cast);
                    }
                    Some(false) => text::write_binary(sql, column, false),
                    // Folded, then the text itself: `Ab` and `ab` in one order everywhere.
                    Some(true) => {
                        text::write_binary(sql, column, true);
                        sql.push(direction).push(nulls).push(", ");
                        text::write_binary(sql, column, false);
                    }
                }
                sql.push(direction).push(nulls);
                if let Some(outer) = outer {
                    sql.leave(outer);
                }
                Ok(())
            })?;
        }
        let limit = if shape == Shape::Exists {
            Some(self.limit.map_or(1, |n| n.min(1)))
        } else {
            self.limit
        };
        // Numbers of the caller's, written as numbers: no text of theirs reaches the SQL.
        match (limit, self.offset) {
            (Some(limit), None) => sql.push(&format!(" LIMIT {limit}")),
            (Some(limit), Some(offset)) => sql.push(&format!(" LIMIT {limit} OFFSET {offset}")),
            (None, Some(offset)) => sql.push(&match backend {
                // MySQL has no OFFSET without LIMIT; SQLite takes -1 for "no limit".
                Backend::MySql => format!(" LIMIT 18446744073709551615 OFFSET {offset}"),
                Backend::Sqlite => format!(" LIMIT -1 OFFSET {offset}"),
                _ => format!(" OFFSET {offset}"),
            }),
            (None, None) => &mut sql,
        };
        if shape == Shape::Count && windowed {
            sql.push(") AS counted");
        }
        if wrapped.is_some() {
            sql.push(") AS ").ident(meta.table);
        }
        if ordered && backend != Backend::Sqlite && select.is_none_or(|s| s.annotate) {
            // SQLite's write transactions hold the whole database already.
            match (self.lock, backend) {
                (Lock::None, _) => {}
                (Lock::Update, _) => {
                    sql.push(" FOR UPDATE");
                    if !joins.is_empty() && backend == Backend::Postgres {
                        // The rows of the query's own table (a joined row may be absent).
                        sql.push(" OF ").ident(meta.table);
                    }
                    sql.push(match self.wait {
                        Contended::Wait => "",
                        Contended::Skip => " SKIP LOCKED",
                        Contended::Fail => " NOWAIT",
                    });
                }
                (Lock::KeyShare, Backend::Postgres) => {
                    sql.push(" FOR KEY SHARE");
                }
                (Lock::KeyShare, _) => {
                    sql.push(" LOCK IN SHARE MODE");
                }
            }
        }
        Ok(sql)
    }
}
