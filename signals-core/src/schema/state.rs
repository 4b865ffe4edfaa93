//! What a set of tables is: tables, columns, constraints, as a value that `makemigrations`
//! compares (the models' with what migrations made) and writes beside each migration.

use serde::{Deserialize, Serialize};

use super::Schema;
use crate::meta::{ColumnDef, DbDefault};
use crate::ops::cascade::OnDelete;
use crate::value::SqlType;

/// The tables a set of migrations makes, or the models ask for ([`State::of`]): what
/// [`MakeMigrations`](crate::makemigrations::MakeMigrations) compares. Each generated migration has its state
/// beside it (`NNNN_name.state.json`), which the next run starts from.
///
/// ```
/// use signals_core::makemigrations::State;
/// use signals_core::schema::Schema;
/// use signals_core::Model;
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64>, #[model(unique, max_length = 50)] name: String }
///
/// let state = State::of(&Schema::of::<Tag>());
/// assert_eq!(state.tables[0].name, "tag");
/// assert_eq!(state.tables[0].unique[0].name, "tag_name_key");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct State {
    /// The tables, each after those it references.
    pub tables: Vec<TableState>,
}

/// One table of a [`State`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableState {
    /// The table's name.
    pub name: String,
    /// The model it stores.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// The columns, in order.
    pub columns: Vec<ColumnState>,
    /// Unique constraints: one column's (`unique`, `one_to_one`) or several (`unique_together`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<Constraint>,
    /// Indexes that are not unique: `#[model(index)]`, and each reference's that no unique
    /// constraint covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Constraint>,
    /// Foreign keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// MySQL only: a collation other than the crate's `utf8mb4_bin` (tables made by hand
    /// take the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
}

/// One column of a [`TableState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ColumnState {
    /// The column's name.
    pub name: String,
    /// The kind of values it holds.
    #[serde(rename = "type")]
    pub sql_type: SqlType,
    /// Whether it may hold NULL.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nullable: bool,
    /// Whether it is the primary key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary_key: bool,
    /// Whether the database assigns it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_increment: bool,
    /// `VARCHAR(N)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// `NUMERIC(P, S)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal: Option<(u32, u32)>,
    /// The default in the database: a string, number or boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
}

/// A named unique constraint or index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Constraint {
    /// Its name in the database.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
}

/// A named foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reference {
    /// Its name in the database.
    pub name: String,
    /// The column holding the key.
    pub column: String,
    /// The table it references.
    pub table: String,
    /// The referenced column.
    pub to_column: String,
    /// What deleting the referenced row does (`cascade`, `restrict`, `set_null`): the crate
    /// does it, with signals, so it is in the state and not in the database.
    pub on_delete: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ColumnState {
    /// The column of a model field.
    pub(crate) fn of(def: &ColumnDef) -> ColumnState {
        ColumnState {
            name: def.name.to_owned(),
            sql_type: def.sql_type,
            nullable: def.nullable,
            primary_key: def.primary_key,
            auto_increment: def.auto_increment,
            max_length: def.max_length,
            decimal: def.decimal,
            default: def.default.map(|d| match d {
                DbDefault::Text(s) => serde_json::Value::from(s),
                DbDefault::Int(i) => serde_json::Value::from(i),
                DbDefault::Float(f) => serde_json::Value::from(f),
                DbDefault::Bool(b) => serde_json::Value::from(b),
            }),
        }
    }
}

impl TableState {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnState> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether MySQL needs an index length for column `name`: it is a key, unique, indexed or
    /// a reference (so text there is `VARCHAR(255)`, not `LONGTEXT`).
    pub(crate) fn indexed(&self, name: &str) -> bool {
        let n = name.to_owned();
        self.column(name).is_some_and(|c| c.primary_key)
            || self.unique.iter().any(|u| u.columns.contains(&n))
            || self.indexes.iter().any(|u| u.columns.contains(&n))
            || self.references.iter().any(|r| r.column == name)
    }

    /// Whether column `name` is unique by itself (a unique constraint or the key): its
    /// reference needs no index of its own.
    fn unique_alone(&self, name: &str) -> bool {
        self.column(name).is_some_and(|c| c.primary_key)
            || self
                .unique
                .iter()
                .any(|u| u.columns.len() == 1 && u.columns[0] == name)
    }
}

impl State {
    /// The state the models of `schema` ask for, with the crate's names for constraints:
    /// `<table>_<columns>_key` (unique), `_idx` (index), `_fkey` (foreign key), as PostgreSQL
    /// names them itself, shortened with a hash past 63 bytes.
    pub fn of(schema: &Schema) -> State {
        let mut tables = Vec::new();
        for t in schema.ordered() {
            let mut table = TableState {
                name: t.name.to_owned(),
                model: t.model.to_owned(),
                columns: t.columns.iter().map(ColumnState::of).collect(),
                unique: Vec::new(),
                indexes: Vec::new(),
                references: Vec::new(),
                collation: None,
            };
            let mut unique_sets: Vec<Vec<&str>> = Vec::new();
            for c in t.columns {
                if (c.unique || t.one_to_one.contains(&c.name)) && !c.primary_key {
                    unique_sets.push(vec![c.name]);
                }
            }
            for set in t.unique_together {
                unique_sets.push(set.to_vec());
            }
            for set in unique_sets {
                if !table.unique.iter().any(|u| u.columns == set) {
                    table.unique.push(Constraint {
                        name: constraint_name(t.name, &set, "key"),
                        columns: set.iter().map(|c| (*c).to_owned()).collect(),
                    });
                }
            }
            for (column, parent, parent_column, on_delete) in &t.references {
                table.references.push(Reference {
                    name: constraint_name(t.name, &[column], "fkey"),
                    column: (*column).to_owned(),
                    table: (*parent).to_owned(),
                    to_column: (*parent_column).to_owned(),
                    on_delete: on_delete_name(*on_delete).to_owned(),
                });
            }
            let indexed: Vec<&str> = t
                .columns
                .iter()
                .filter(|c| c.index)
                .map(|c| c.name)
                .chain(t.references.iter().map(|r| r.0))
                .collect();
            for column in indexed {
                if !table.unique_alone(column)
                    && !table.indexes.iter().any(|i| i.columns == [column])
                {
                    table.indexes.push(Constraint {
                        name: constraint_name(t.name, &[column], "idx"),
                        columns: vec![column.to_owned()],
                    });
                }
            }
            tables.push(table);
        }
        let mut state = State { tables };
        state.dedup_names(&std::collections::HashSet::new());
        state
    }

    /// Every constraint name, in table order.
    pub(crate) fn names(&self) -> std::collections::HashSet<String> {
        let mut out = std::collections::HashSet::new();
        for t in &self.tables {
            out.extend(t.unique.iter().map(|c| c.name.clone()));
            out.extend(t.indexes.iter().map(|c| c.name.clone()));
            out.extend(t.references.iter().map(|r| r.name.clone()));
        }
        out
    }

    /// Gives a constraint whose name another one has already (`order` + `item_count` and
    /// `order_item` + `count` both make `order_item_count_idx`) a name of its own, with a hash
    /// of its table and columns: PostgreSQL and SQLite keep index names per schema, MySQL its
    /// foreign keys' per database. Names in `existing` (what the database has) stay.
    pub(crate) fn dedup_names(&mut self, existing: &std::collections::HashSet<String>) {
        let mut taken = std::collections::HashSet::new();
        // Names the database has first, once each; then the rest in order.
        let mut kept = Vec::new();
        for (ti, t) in self.tables.iter().enumerate() {
            let all = t
                .unique
                .iter()
                .map(|c| &c.name)
                .chain(t.indexes.iter().map(|c| &c.name))
                .chain(t.references.iter().map(|r| &r.name));
            for (ci, name) in all.enumerate() {
                // What the database has stays, even where two tables have one name (MySQL
                // names indexes per table: the hand-written tables' `user_id`, twice).
                if existing.contains(name) {
                    taken.insert(name.clone());
                    kept.push((ti, ci));
                }
            }
        }
        for ti in 0..self.tables.len() {
            let table = self.tables[ti].name.clone();
            let t = &mut self.tables[ti];
            let mut ci = 0;
            let mut fix = |name: &mut String, columns: &[String], suffix: &str| {
                let this = ci;
                ci += 1;
                if kept.contains(&(ti, this)) {
                    return;
                }
                if !taken.insert(name.clone()) {
                    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
                    let mut n = 0;
                    loop {
                        let candidate = hashed_name(&table, &cols, suffix, n);
                        if taken.insert(candidate.clone()) {
                            *name = candidate;
                            break;
                        }
                        n += 1;
                    }
                }
            };
            for c in &mut t.unique {
                fix(&mut c.name, &c.columns, "key");
            }
            for c in &mut t.indexes {
                fix(&mut c.name, &c.columns, "idx");
            }
            for r in &mut t.references {
                fix(&mut r.name, std::slice::from_ref(&r.column), "fkey");
            }
        }
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableState> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub(crate) fn table_mut(&mut self, name: &str) -> Option<&mut TableState> {
        self.tables.iter_mut().find(|t| t.name == name)
    }

    /// The state as the pretty JSON written beside a migration.
    pub(crate) fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a state is plain data");
        text.push('\n');
        text
    }
}

pub(crate) fn on_delete_name(on_delete: OnDelete) -> &'static str {
    match on_delete {
        OnDelete::Cascade => "cascade",
        OnDelete::Restrict => "restrict",
        OnDelete::SetNull => "set_null",
    }
}

/// `<table>_<columns>_<suffix>`, as PostgreSQL names constraints; past 63 bytes (PostgreSQL's
/// limit, MySQL's is 64) cut, with a hash of the whole name, so that names stay distinct.
pub(crate) fn constraint_name(table: &str, columns: &[&str], suffix: &str) -> String {
    let full = format!("{table}_{}_{suffix}", columns.join("_"));
    if full.len() <= 63 {
        return full;
    }
    cut_with_hash(&full, fnv(full.as_bytes()), suffix)
}

/// A name for a constraint whose [`constraint_name`] another has: with a hash of its table,
/// columns and `n` (tried from 0 until free).
fn hashed_name(table: &str, columns: &[&str], suffix: &str, n: u32) -> String {
    let full = format!("{table}_{}_{suffix}", columns.join("_"));
    let key = format!("{table}\0{}\0{suffix}\0{n}", columns.join("\0"));
    cut_with_hash(&full, fnv(key.as_bytes()), suffix)
}

/// FNV-1a: stable across versions and platforms, unlike std's hasher.
fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `full` cut to leave room for `_<hash>_<suffix>` within 63 bytes.
fn cut_with_hash(full: &str, hash: u32, suffix: &str) -> String {
    let stem = full.strip_suffix(&format!("_{suffix}")).unwrap_or(full);
    let mut cut = stem.len().min(63 - 10 - suffix.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash:08x}_{suffix}", &stem[..cut])
}

#[cfg(test)]
mod tests {
    use super::constraint_name;

    #[test]
    fn long_names_are_cut_with_a_hash() {
        assert_eq!(constraint_name("t", &["a", "b"], "key"), "t_a_b_key");
        let long = "a".repeat(80);
        let name = constraint_name(&long, &["x"], "fkey");
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.ends_with("_fkey"));
        assert_ne!(name, constraint_name(&long, &["y"], "fkey"));
    }
}
