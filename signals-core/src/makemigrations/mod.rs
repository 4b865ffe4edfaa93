//! Migrations written from the models (Django's `makemigrations`): the changes between what
//! the existing migrations make and what the models ask for, as sqlx migration files for
//! SQLite, PostgreSQL and MySQL/MariaDB, which [`migrate::run`](crate::migrate::run) applies.
//!
//! A migrations directory holds one directory per backend (`sqlite/`, `postgres/`, `mysql/`),
//! each a plain sqlx migrations directory. Each generated migration `NNNN_name.sql` has its
//! state beside it, `NNNN_name.state.json`: the tables, columns and constraints the migrations
//! make once it is applied (sqlx ignores the file). The next run compares the models with the
//! newest state, not with a live database, so it works offline and in CI.
//!
//! What it finds: new and dropped tables, added and dropped columns, type, nullability and
//! default changes (`#[model(default = ..)]`), unique columns and `unique_together`, indexes
//! (`#[model(index)]` and each reference's), references and their `on_delete`, and the through
//! tables of many-to-many relations (they are models). Renames are never guessed: a dropped
//! table or column that looks renamed is asked about through [`MakeMigrations::ask`] (the
//! example's CLI asks on its terminal) or given with [`MakeMigrations::rename_table`] and
//! [`MakeMigrations::rename_column`]; otherwise it is a drop and an add.
//!
//! Nothing is lost by accident: dropping a table or a column, or a type that holds less (a
//! shorter `VARCHAR`, a smaller decimal, another type) is refused unless
//! [`MakeMigrations::allow_data_loss`] says so, and the file then lists what it destroys.
//!
//! How each backend changes a table:
//! - **PostgreSQL**: in place, in the migration's transaction (all or nothing).
//! - **MySQL/MariaDB**: in place (`MODIFY COLUMN`, `CONVERT TO CHARACTER SET`); MySQL commits
//!   each DDL statement by itself, so a migration that fails midway is left half applied, as
//!   [`migrate::run`](crate::migrate::run) then reports.
//! - **SQLite**: `ALTER TABLE` renames and adds plain columns; any other change rebuilds the
//!   table [as SQLite documents](https://www.sqlite.org/lang_altertable.html#otheralter): a new
//!   table, the rows copied, the old table dropped, the new one renamed, its indexes made, then
//!   every reference checked (a dangling one fails the migration, in its transaction). SQLite
//!   must not enforce references during the rebuild, which `migrate::run` sees to; another
//!   migrator that runs with `foreign_keys = ON` fails such a migration (losing nothing).
//!
//! A new column that may not be NULL gets, in the rows already there, its default, or else its
//! type's zero (`''`, `0`, `false`, ...), which the file says. Primary keys are not changed: such
//! a change is refused, to be written by hand.
//!
//! ```
//! # fn main() -> signals_core::Result<()> {
//! use signals_core::makemigrations::MakeMigrations;
//! use signals_core::schema::Schema;
//! use signals_core::{Backend, Model};
//!
//! #[derive(Model)]
//! struct Tag { id: Option<i64>, #[model(unique, max_length = 50)] name: String }
//!
//! let dir = std::env::temp_dir().join(format!("makemigrations-doc-{}", std::process::id()));
//! let plan = MakeMigrations::new(&dir, &Schema::of::<Tag>()).name("tags").plan()?;
//! assert_eq!(plan.changes(), ["create table `tag`"]);
//! assert!(plan.sql(Backend::Postgres).unwrap().contains("CONSTRAINT \"tag_name_key\" UNIQUE (\"name\")"));
//! plan.write()?; // sqlite/0001_tags.sql, postgres/.., mysql/.., each with its state
//! // Nothing changed since: nothing to write, and the check passes.
//! assert!(MakeMigrations::new(&dir, &Schema::of::<Tag>()).plan()?.is_empty());
//! MakeMigrations::new(&dir, &Schema::of::<Tag>()).check()?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(()) }
//! ```
//!
//! Uses `error`, `backend`, `value` and `schema` (its state and DDL writer).

mod change;
mod diff;
mod server;
mod sqlite;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use crate::schema::state::{ColumnState, Constraint, Reference, State, TableState};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::schema::Schema;
use change::{Diff, Renames};

/// The directory of `backend`'s migrations under a migrations directory.
pub fn backend_dir(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
        Backend::MySql => "mysql",
    }
}

type Ask = Box<dyn FnMut(&str) -> bool + Send>;

/// Compares the models with the migrations of a directory and writes what changed (Django's
/// `makemigrations`): see the [module](self).
pub struct MakeMigrations {
    dir: PathBuf,
    models: State,
    name: Option<String>,
    renames: Renames,
    allow_data_loss: bool,
    ask: Option<Ask>,
    backends: Vec<Backend>,
    /// Renames that would explain drops, not confirmed: named when the drop is refused.
    hints: Renames,
}

impl std::fmt::Debug for MakeMigrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeMigrations")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .field("renames", &self.renames)
            .field("allow_data_loss", &self.allow_data_loss)
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

impl MakeMigrations {
    /// Compares the models of `schema` with the migrations under `dir` (one directory per
    /// backend). Every backend is written for: those of [`backends`](Self::backends) only
    /// when given.
    pub fn new(dir: impl Into<PathBuf>, schema: &Schema) -> Self {
        MakeMigrations {
            dir: dir.into(),
            models: State::of(schema),
            name: None,
            renames: Renames::default(),
            allow_data_loss: false,
            ask: None,
            backends: vec![Backend::Sqlite, Backend::Postgres, Backend::MySql],
            hints: Renames::default(),
        }
    }

    /// The new migration's name (its file is `NNNN_<name>.sql`); by default it is named after
    /// its one change, or `auto`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Writes for these backends only.
    pub fn backends(mut self, backends: impl IntoIterator<Item = Backend>) -> Self {
        self.backends = backends.into_iter().collect();
        self
    }

    /// Table `old` of the migrations is the models' table `new`, renamed: its rows are kept.
    pub fn rename_table(mut self, old: &str, new: &str) -> Self {
        self.renames.tables.push((old.to_owned(), new.to_owned()));
        self
    }

    /// Column `old` of the models' table `table` (named as the models name it now) is their
    /// column `new`, renamed: its values are kept.
    pub fn rename_column(mut self, table: &str, old: &str, new: &str) -> Self {
        self.renames
            .columns
            .push((table.to_owned(), old.to_owned(), new.to_owned()));
        self
    }

    /// Allows the migration to drop tables and columns and to narrow types; without it such a
    /// migration is refused, naming what it would destroy.
    pub fn allow_data_loss(mut self, allow: bool) -> Self {
        self.allow_data_loss = allow;
        self
    }

    /// Asks `ask` whether a dropped table or column that looks renamed was (a question ending
    /// in `[y/N]`): `true` keeps its rows under the new name. Without it, such a change is a
    /// drop and an add, refused without [`allow_data_loss`](Self::allow_data_loss).
    pub fn ask(mut self, ask: impl FnMut(&str) -> bool + Send + 'static) -> Self {
        self.ask = Some(Box::new(ask));
        self
    }

    /// The migration the models call for: nothing is written. An error when it would
    /// destroy data without [`allow_data_loss`](Self::allow_data_loss), when a rename names
    /// what does not exist, or when a primary key changes.
    pub fn plan(mut self) -> Result<Plan> {
        let plan = self.compute()?;
        let destroys = plan.destroys();
        if !destroys.is_empty() && !self.allow_data_loss {
            let mut msg = String::from(
                "this migration would destroy data, which needs `allow_data_loss` \
                 (`--allow-data-loss`):",
            );
            for d in &destroys {
                let _ = write!(msg, "\n  - {d}");
            }
            let hints = plan.rename_hints();
            if !hints.is_empty() {
                msg.push_str("\nif these were renamed, say so and keep the rows:");
                for h in hints {
                    let _ = write!(msg, "\n  - {h}");
                }
            }
            return Err(Error::Makemigrations(msg));
        }
        Ok(plan)
    }

    /// Django's `makemigrations --check`: `Ok` when the migrations make what the models ask
    /// for, else an error listing the changes a new migration would make.
    pub fn check(mut self) -> Result<()> {
        let plan = self.compute()?;
        if plan.is_empty() {
            return Ok(());
        }
        let mut msg = format!(
            "the models and the migrations in `{}` disagree; run makemigrations for:",
            self.dir.display()
        );
        for c in plan.changes() {
            let _ = write!(msg, "\n  - {c}");
        }
        Err(Error::Makemigrations(msg))
    }

    /// Records that the migrations already in the directory (written by hand) make exactly
    /// what the models ask for: writes the models' state beside the newest migration of each
    /// backend, so that the next run starts from there (Django's `--fake-initial`, for a
    /// project that adopts generated migrations). Check it first: the state is believed, not
    /// verified; `Db::check_schema` on a migrated database checks columns and types.
    pub fn baseline(self) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for backend in &self.backends {
            let dir = self.dir.join(backend_dir(*backend));
            let files = migration_files(&dir)?;
            let Some(newest) = files.iter().rfind(|f| !f.state) else {
                return Err(Error::Makemigrations(format!(
                    "`{}` has no migration to record a state beside",
                    dir.display()
                )));
            };
            let path = state_path(&newest.path);
            std::fs::write(&path, self.models.to_json()).map_err(|e| io_error(&path, &e))?;
            written.push(path);
        }
        Ok(written)
    }

    fn compute(&mut self) -> Result<Plan> {
        validate(&self.models, &self.renames)?;
        // The state each backend's migrations make.
        let mut froms = Vec::new();
        let mut newest = 0;
        let mut notes = Vec::new();
        for backend in &self.backends {
            let dir = self.dir.join(backend_dir(*backend));
            let files = migration_files(&dir)?;
            newest = newest.max(files.iter().map(|f| f.version).max().unwrap_or(0));
            let recorded = State::of_migrations(&dir)?;
            let since = recorded.as_ref().map_or(0, |(v, _)| *v);
            let later: Vec<&Path> = files
                .iter()
                .filter(|f| !f.state && f.version > since)
                .map(|f| f.path.as_path())
                .collect();
            if recorded.is_none() && !later.is_empty() {
                return Err(Error::Makemigrations(format!(
                    "`{}` has migrations but no recorded state (they were written by hand): \
                     record what they make with `MakeMigrations::baseline` (`makemigrations \
                     --baseline`) once they match the models",
                    dir.display()
                )));
            }
            for path in later {
                notes.push(format!(
                    "`{}` has no recorded state: taken to change nothing the models describe",
                    path.display()
                ));
            }
            froms.push(recorded.map(|(_, s)| s).unwrap_or_default());
        }
        // Renames: given, or asked about; decided once for every backend.
        if let Some(first) = froms.first() {
            let candidates = diff::rename_candidates(first, &self.models, &self.renames);
            let mut hints = Renames::default();
            for (old, new) in candidates.tables {
                let question = format!("Was table `{old}` renamed to `{new}`? [y/N]");
                if self.ask.as_mut().is_some_and(|ask| ask(&question)) {
                    self.renames.tables.push((old, new));
                } else {
                    hints.tables.push((old, new));
                }
            }
            for (table, old, new) in candidates.columns {
                let question = format!("Was column `{table}.{old}` renamed to `{new}`? [y/N]");
                if self.ask.as_mut().is_some_and(|ask| ask(&question)) {
                    self.renames.columns.push((table, old, new));
                } else {
                    hints.columns.push((table, old, new));
                }
            }
            self.hints = hints;
        }
        let mut backends = Vec::new();
        for (backend, from) in self.backends.iter().zip(&froms) {
            let diff = diff::diff(from, &self.models, *backend, &self.renames)?;
            let changed = !same_tables(&diff.state, from);
            backends.push((*backend, diff, changed));
        }
        let version = newest + 1;
        let name = match &self.name {
            Some(name) => slug(name),
            None => {
                let slugs: Vec<&str> = backends
                    .iter()
                    .flat_map(|(_, d, _)| d.changes.iter().map(|(s, _)| s.as_str()))
                    .collect();
                match slugs.as_slice() {
                    [one, rest @ ..] if rest.iter().all(|s| s == one) => slug(one),
                    _ => "auto".to_owned(),
                }
            }
        };
        Ok(Plan {
            dir: self.dir.clone(),
            version,
            name,
            backends,
            notes,
            hints: std::mem::take(&mut self.hints),
        })
    }
}

/// `text` as a file name's description: lowercase letters, digits and single underscores.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    if out.is_empty() { "auto".into() } else { out }
}

/// `text` as it can stand in an SQL comment: a line break or other control character (a
/// default's, say) would end the comment and make the rest SQL, so it is written escaped.
fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Refuses what no backend can take: a NUL character in a table, column or constraint name
/// or in a default (SQLite ends a statement's text there; PostgreSQL text cannot hold one),
/// and an empty name given to a rename.
fn validate(models: &State, renames: &Renames) -> Result<()> {
    let bad = |what: &str, text: &str| -> Result<()> {
        if text.contains('\0') {
            return Err(Error::Makemigrations(format!(
                "{what} `{}` holds a NUL character (U+0000), which no backend takes in SQL",
                comment_text(text)
            )));
        }
        Ok(())
    };
    for t in &models.tables {
        bad("table", &t.name)?;
        for c in &t.columns {
            bad("column", &c.name)?;
            if let Some(serde_json::Value::String(d)) = &c.default {
                bad(&format!("the default of `{}.{}`", t.name, c.name), d)?;
            }
        }
    }
    for (old, new) in &renames.tables {
        if old.is_empty() || new.is_empty() {
            return Err(Error::Makemigrations(format!(
                "a table rename needs both names, not `{old}` to `{new}`"
            )));
        }
    }
    for (table, old, new) in &renames.columns {
        if table.is_empty() || old.is_empty() || new.is_empty() {
            return Err(Error::Makemigrations(format!(
                "a column rename needs its table and both names, not `{table}.{old}` to `{new}`"
            )));
        }
    }
    Ok(())
}

/// Whether two states describe the same tables, whatever the order of the tables, of their
/// columns and of their constraints (reordering models or fields changes nothing in a
/// database).
fn same_tables(a: &State, b: &State) -> bool {
    fn normal(s: &State) -> Vec<TableState> {
        let mut tables = s.tables.clone();
        for t in &mut tables {
            t.model.clear();
            t.columns.sort_by(|x, y| x.name.cmp(&y.name));
            t.unique.sort_by(|x, y| x.name.cmp(&y.name));
            t.indexes.sort_by(|x, y| x.name.cmp(&y.name));
            t.references.sort_by(|x, y| x.name.cmp(&y.name));
        }
        tables.sort_by(|x, y| x.name.cmp(&y.name));
        tables
    }
    normal(a) == normal(b)
}

/// `NNNN_name.sql` → `NNNN_name.state.json`.
fn state_path(sql: &Path) -> PathBuf {
    sql.with_extension("state.json")
}

/// The migration [`MakeMigrations::plan`] found: its changes, and its file for each backend.
#[derive(Debug)]
pub struct Plan {
    dir: PathBuf,
    version: i64,
    name: String,
    /// (backend, its changes, whether its state changes)
    backends: Vec<(Backend, Diff, bool)>,
    notes: Vec<String>,
    hints: Renames,
}

impl Plan {
    /// Whether the migrations already make what the models ask for.
    pub fn is_empty(&self) -> bool {
        !self.backends.iter().any(|(_, _, changed)| *changed)
    }

    /// The version the new migration gets: one past the newest in the directory.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Each change, in words, once (backends that differ add their own).
    pub fn changes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, d, _) in &self.backends {
            for (_, what) in &d.changes {
                if !out.contains(what) {
                    out.push(what.clone());
                }
            }
        }
        out
    }

    /// What the migration destroys: dropped tables and columns, narrowed types.
    pub fn destroys(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, d, _) in &self.backends {
            for what in &d.destroys {
                if !out.contains(what) {
                    out.push(what.clone());
                }
            }
        }
        out
    }

    /// Remarks: migrations after the newest recorded state, written by hand.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn rename_hints(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (old, new) in &self.hints.tables {
            out.push(format!(
                "table `{old}` as `{new}`: `--rename-table {old}={new}`"
            ));
        }
        for (table, old, new) in &self.hints.columns {
            out.push(format!(
                "column `{table}.{old}` as `{new}`: `--rename-column {table}.{old}={new}`"
            ));
        }
        out
    }

    /// The file this migration writes for `backend`: its SQL, headed by the changes in words
    /// (Django's `sqlmigrate`); `None` when nothing changes there.
    pub fn sql(&self, backend: Backend) -> Option<String> {
        let (_, d, changed) = self.backends.iter().find(|(b, _, _)| *b == backend)?;
        if !changed {
            return None;
        }
        let mut out = format!(
            "-- Generated by makemigrations from the models, for {backend}. Edit the SQL as you\n\
             -- need; the state beside it ({:04}_{}.state.json) records what the models asked for.\n--\n-- Changes:\n",
            self.version, self.name
        );
        for (_, what) in &d.changes {
            let _ = writeln!(out, "--   - {}", comment_text(what));
        }
        if !d.destroys.is_empty() {
            out.push_str("--\n-- DESTROYS (allowed with allow_data_loss):\n");
            for what in &d.destroys {
                let _ = writeln!(out, "--   - {}", comment_text(what));
            }
        }
        out.push('\n');
        if d.sql.is_empty() {
            out.push_str("-- Nothing to run on this backend.\nSELECT 1;\n");
        }
        for statement in &d.sql {
            out.push_str(statement);
            out.push_str(";\n");
        }
        Some(out)
    }

    /// Writes the migration and its state for each backend where something changes, and
    /// returns the files written (none when the plan [is empty](Self::is_empty)).
    pub fn write(&self) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (backend, d, _) in &self.backends {
            let Some(sql) = self.sql(*backend) else {
                continue;
            };
            let dir = self.dir.join(backend_dir(*backend));
            std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, &e))?;
            let path = dir.join(format!("{:04}_{}.sql", self.version, self.name));
            if path.exists() {
                return Err(Error::Makemigrations(format!(
                    "`{}` exists already",
                    path.display()
                )));
            }
            let state = state_path(&path);
            std::fs::write(&path, sql).map_err(|e| io_error(&path, &e))?;
            std::fs::write(&state, d.state.to_json()).map_err(|e| io_error(&state, &e))?;
            written.push(path);
            written.push(state);
        }
        Ok(written)
    }
}

impl State {
    /// The state the migrations in `dir` make: that recorded beside the newest migration that
    /// has one (`NNNN_name.state.json`), with its version; `None` when none has.
    pub fn of_migrations(dir: &Path) -> Result<Option<(i64, State)>> {
        let Some((version, path)) = migration_files(dir)?
            .into_iter()
            .filter(|f| f.state)
            .map(|f| (f.version, f.path))
            .max_by_key(|(v, _)| *v)
        else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
        let state = serde_json::from_str(&text).map_err(|e| {
            Error::Makemigrations(format!(
                "`{}` is not a migration state: {e}; it is written by makemigrations and not \
                 meant to be edited",
                path.display()
            ))
        })?;
        Ok(Some((version, state)))
    }
}

/// A file of a migrations directory: `NNNN_name.sql` or its `NNNN_name.state.json`.
pub(crate) struct MigrationFile {
    pub(crate) version: i64,
    pub(crate) path: PathBuf,
    /// A state file, not SQL.
    pub(crate) state: bool,
}

/// The migration and state files of `dir` (none when it does not exist), as sqlx names
/// migrations: `<VERSION>_<DESCRIPTION>.sql`.
pub(crate) fn migration_files(dir: &Path) -> Result<Vec<MigrationFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, &e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((version, rest)) = name.split_once('_') else {
            continue;
        };
        let Ok(version) = version.parse::<i64>() else {
            continue;
        };
        let state = rest.ends_with(".state.json");
        if state || rest.ends_with(".sql") {
            out.push(MigrationFile {
                version,
                path: entry.path(),
                state,
            });
        }
    }
    out.sort_by_key(|f| (f.version, f.state));
    Ok(out)
}

pub(crate) fn io_error(path: &Path, err: &std::io::Error) -> Error {
    Error::Makemigrations(format!("`{}`: {err}", path.display()))
}
