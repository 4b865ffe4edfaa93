//! Relations between models, registered by the child's derive, and the cascade of a delete:
//! the rows it reaches, gathered before anything is sent or deleted, then sent their signals
//! and deleted level by level.
//!
//! The cascade is compiled once, here: a reference registers only a few small functions of
//! its child model (read its rows, send their receivers), not the child's whole delete path,
//! so declaring references costs the crates that declare them little to compile.
//!
//! Uses `error`, `kind`, `meta`, `sql`, `value`, `tx`, `model` and `signal`.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::m2m::{self, Removed};
use crate::backend::{Backend, MAX_CHUNK_ROWS};
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::meta::ModelMeta;
use crate::model::{Deleted, Model};
use crate::signal::batch::{PostDeleteBatch, PreDeleteBatch};
use crate::signal::context::{Committed, PostDelete, PreDelete, fired_delete};
use crate::signal::custom::BoxFuture;
use crate::signal::hooks::{self, Hooks, any_receivers, at_row};
use crate::signal::m2m::M2mAction;
use crate::signal::muting::{self, Noted};
use crate::sql::Statements;
use crate::sql::{InList, where_in};
use crate::tx::{Target, Tx};
use crate::value::{Args, DynField, Row};

/// What happens to rows that refer to a deleted row (Django's `on_delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnDelete {
    /// Delete them too, with their own delete receivers.
    Cascade,
    /// Refuse the delete with [`Error::Restricted`] while any exist.
    Restrict,
    /// Set their reference to NULL (the field must be an `Option`).
    SetNull,
}

/// How many children a parent may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RelationKind {
    /// `one_to_one = Parent`: at most one child per parent.
    OneToOne,
    /// `foreign_key = Parent`: any number.
    ForeignKey,
}

/// Reads a child's rows whose column (by index) holds one of the keys, for the cascade.
type SelectFn = for<'a> fn(
    &'a mut Tx,
    usize,
    &'a [Arc<dyn DynField>],
) -> BoxFuture<'a, Result<Box<dyn Reached>>>;

/// A reference from a field of a child model to a parent model, declared with
/// `#[model(one_to_one = Parent, on_delete = ..)]` or `#[model(foreign_key = Parent, ..)]`.
///
/// The child's derive registers it, so the parent's delete finds it wherever the child is
/// declared in the program. List them with [`relations_to`].
pub struct Relation {
    parent_type: fn() -> TypeId,
    child_type: fn() -> TypeId,
    /// The parent model's name.
    pub parent: &'static str,
    /// The child model's name.
    pub child: &'static str,
    /// The child's field that holds the parent's key.
    pub field: &'static str,
    /// The column of that field.
    pub column: &'static str,
    /// What deleting the parent does to the child.
    pub on_delete: OnDelete,
    /// One-to-one or many-to-one.
    pub kind: RelationKind,
    /// The parent's table, which the column references.
    pub parent_table: &'static str,
    /// The parent's primary key column, which the column references.
    pub parent_column: &'static str,
    column_index: usize,
    /// What the cascade needs of the child model: the rest of it is compiled once, in
    /// signals-core, not in each crate that declares a reference.
    child_meta: &'static ModelMeta,
    statements: fn(Backend) -> &'static Statements,
    must_read: fn() -> bool,
    select: SelectFn,
}

impl fmt::Debug for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relation")
            .field("parent", &self.parent)
            .field("child", &self.child)
            .field("field", &self.field)
            .field("on_delete", &self.on_delete)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Relation {
    pub(crate) const fn new<C: Hooks, P: Model>(
        field_index: usize,
        on_delete: OnDelete,
        kind: RelationKind,
    ) -> Relation {
        Relation {
            parent_type: TypeId::of::<P> as fn() -> TypeId,
            child_type: TypeId::of::<C> as fn() -> TypeId,
            parent: P::META.name,
            child: C::META.name,
            field: C::META.fields[field_index],
            column: C::META.columns[field_index],
            on_delete,
            kind,
            parent_table: P::META.table,
            parent_column: P::META.columns[P::META.primary_key],
            column_index: field_index,
            child_meta: &C::META,
            statements: C::__statements,
            must_read: must_read::<C>,
            select: select_reached::<C>,
        }
    }
}

inventory::collect!(Relation);

/// The relations whose parent is `P`, in a stable order (child model, then field).
///
/// ```
/// use signals_core::{relations_to, Model, OnDelete};
///
/// #[derive(Model)]
/// struct User { id: Option<i64> }
///
/// #[derive(Model)]
/// struct Profile {
///     id: Option<i64>,
///     #[model(one_to_one = User, on_delete = cascade)]
///     user_id: i64,
/// }
///
/// let rels = relations_to::<User>();
/// assert_eq!(rels.len(), 1);
/// assert_eq!((rels[0].child, rels[0].field, rels[0].on_delete), ("Profile", "user_id", OnDelete::Cascade));
/// ```
pub fn relations_to<P: Model>() -> &'static [&'static Relation] {
    relations_of(TypeId::of::<P>())
}

fn relations_of(parent: TypeId) -> &'static [&'static Relation] {
    static INDEX: OnceLock<HashMap<TypeId, Vec<&'static Relation>>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let mut index: HashMap<TypeId, Vec<&'static Relation>> = HashMap::new();
            for rel in inventory::iter::<Relation> {
                index.entry((rel.parent_type)()).or_default().push(rel);
            }
            for rels in index.values_mut() {
                rels.sort_by_key(|r| (r.child, r.field));
            }
            index
        })
        .get(&parent)
        .map_or(&[], Vec::as_slice)
}

/// The relations whose child is the model of type `child`: its reference fields.
pub(crate) fn relations_of_child(child: TypeId) -> impl Iterator<Item = &'static Relation> {
    inventory::iter::<Relation>
        .into_iter()
        .filter(move |r| (r.child_type)() == child)
}

pub(crate) fn has_relations<P: Model>() -> bool {
    !relations_to::<P>().is_empty()
}

/// Rows that a delete reaches, gathered level by level (one `IN` list per relation and level)
/// before anything is sent or deleted.
pub(crate) struct Collector {
    batches: Vec<Group>,
    set_null: Vec<InListOf>,
    /// Children deleted by one `DELETE .. IN` without reading them: no receivers, nothing
    /// below them (Django's "fast deletes").
    fast: Vec<InListOf>,
    seen: HashSet<(TypeId, String)>,
    /// How many distinct rows the delete started from.
    roots: usize,
}

/// A statement over the rows of a child whose reference is in a list of parent keys.
struct InListOf {
    model: &'static str,
    meta: &'static crate::meta::ModelMeta,
    column: usize,
    keys: Vec<Arc<dyn DynField>>,
}

impl InListOf {
    async fn run(&self, tx: &mut Tx, what: InList) -> Result<u64> {
        run_in(tx, self.meta, what, self.column, &self.keys).await
    }
}

/// Runs `what` over the rows of `meta` whose column at `column` is in `keys`, in statements of
/// at most [`MAX_CHUNK_ROWS`] keys; returns the rows affected.
pub(crate) async fn run_in(
    tx: &mut Tx,
    meta: &crate::meta::ModelMeta,
    what: InList,
    column: usize,
    keys: &[Arc<dyn DynField>],
) -> Result<u64> {
    let mut n = 0;
    for chunk in keys.chunks(MAX_CHUNK_ROWS) {
        let backend = tx.backend();
        let sql = where_in(meta, backend, what, column, chunk.len());
        let mut args = Args::new(backend, chunk.len());
        for key in chunk {
            key.bind_to(&mut args, meta.columns[column])?;
        }
        n += Target::Tx(tx)
            .execute(sqlx::AssertSqlSafe(sql), args)
            .await?
            .rows;
    }
    Ok(n)
}

/// The rows of `C` whose column at `column` is in `keys`, in key order per statement.
pub(crate) async fn select_in<C: Model>(
    tx: &mut Tx,
    column: usize,
    keys: &[Arc<dyn DynField>],
) -> Result<Vec<C>> {
    let mut rows = Vec::new();
    let mut each = |row: &Row<'_>| {
        rows.push(C::__load(row)?);
        Ok(())
    };
    select_rows_in(tx, &C::META, column, keys, &mut each).await?;
    Ok(rows)
}

/// [`select_in`]'s statements, each row handed to `each`: compiled once.
async fn select_rows_in(
    tx: &mut Tx,
    meta: &'static ModelMeta,
    column: usize,
    keys: &[Arc<dyn DynField>],
    each: &mut (dyn FnMut(&Row<'_>) -> Result<()> + Send),
) -> Result<()> {
    for chunk in keys.chunks(MAX_CHUNK_ROWS) {
        let backend = tx.backend();
        let sql = where_in(meta, backend, InList::Select, column, chunk.len());
        let mut args = Args::new(backend, chunk.len());
        for key in chunk {
            key.bind_to(&mut args, meta.columns[column])?;
        }
        Target::Tx(tx).each_row(sql, args, &mut *each).await?;
    }
    Ok(())
}

/// The keys of `rows` (every row has one), type-erased for `IN` lists.
pub(crate) fn keys_of<'r, C: Model>(
    rows: impl IntoIterator<Item = &'r C>,
) -> Vec<Arc<dyn DynField>> {
    rows.into_iter()
        .filter_map(|r| r.__key())
        .map(|k| Arc::new(k.clone()) as Arc<dyn DynField>)
        .collect()
}

/// Rows of one model whose delete receivers a delete sends, as the non-generic sending
/// ([`send_delete`]) sees them: only the steps that need the model's type, each small.
pub(crate) trait DeleteRows: Send + Sync {
    fn len(&self) -> usize;
    /// Notes `kind` as sent for the rows in `rows` (for [`record_signals`](crate::record_signals)).
    fn note(&self, rows: Range<usize>, kind: SignalKind) -> Noted;
    /// The derive's and the connected receivers of `kind` for the rows in `rows`, as a batch.
    fn batch<'a>(
        &'a self,
        rows: Range<usize>,
        tx: &'a mut Tx,
        origin: &'static str,
        kind: SignalKind,
    ) -> BoxFuture<'a, Result<()>>;
    /// The receivers of `kind` for row `i` alone.
    fn one<'a>(
        &'a self,
        i: usize,
        tx: &'a mut Tx,
        origin: &'static str,
        kind: SignalKind,
    ) -> BoxFuture<'a, Result<()>>;
    /// Row `i`, for the many-to-many signals of the links its delete removes.
    fn instance(&self, i: usize) -> &(dyn Any + Send + Sync);
    /// Schedules every row's `#[on_commit]` receivers for the delete.
    fn on_commit(&self, tx: &mut Tx) -> Result<()>;
}

/// A slice of rows of `C`, as [`DeleteRows`].
pub(crate) struct RowsOf<'r, C>(pub(crate) &'r [C]);

impl<C: Hooks> DeleteRows for RowsOf<'_, C> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn note(&self, rows: Range<usize>, kind: SignalKind) -> Noted {
        muting::note_rows(
            self.0[rows]
                .iter()
                .map(|r| fired_delete(C::META.name, kind, muting::key_json(r))),
        )
    }

    fn batch<'a>(
        &'a self,
        rows: Range<usize>,
        tx: &'a mut Tx,
        origin: &'static str,
        kind: SignalKind,
    ) -> BoxFuture<'a, Result<()>> {
        let chunk = &self.0[rows];
        Box::pin(async move {
            if kind == SignalKind::PostDelete {
                let mut batch = PostDeleteBatch::new(tx, origin, chunk.len());
                hooks::post_delete_batch(chunk, &mut batch).await
            } else {
                let mut batch = PreDeleteBatch::new(tx, origin, chunk.len());
                hooks::pre_delete_batch(chunk, &mut batch).await
            }
        })
    }

    fn one<'a>(
        &'a self,
        i: usize,
        tx: &'a mut Tx,
        origin: &'static str,
        kind: SignalKind,
    ) -> BoxFuture<'a, Result<()>> {
        let row = &self.0[i];
        Box::pin(async move {
            if kind == SignalKind::PostDelete {
                hooks::post_delete(row, &mut PostDelete::new(tx, origin)).await
            } else {
                hooks::pre_delete(row, &mut PreDelete::new(tx, origin)).await
            }
        })
    }

    fn instance(&self, i: usize) -> &(dyn Any + Send + Sync) {
        &self.0[i]
    }

    fn on_commit(&self, tx: &mut Tx) -> Result<()> {
        for row in self.0 {
            C::__on_commit(row, tx, Committed::Deleted, None, 0)?;
        }
        Ok(())
    }
}

/// The rows of one child model a cascade reached, read and kept (owned) until they are sent
/// their signals and deleted.
pub(crate) trait Reached: Send + Sync {
    fn meta(&self) -> &'static ModelMeta;
    fn len(&self) -> usize;
    /// Keeps the rows not `seen` before (each with a key), and notes them seen: a row reached
    /// twice (a cycle, or two paths) is deleted once.
    fn keep_unseen(&mut self, seen: &mut HashSet<(TypeId, String)>);
    /// The rows' keys, for the next level's `IN` lists and the delete.
    fn keys(&self) -> Vec<Arc<dyn DynField>>;
    /// Row `i`'s key, for reading its many-to-many links.
    fn key(&self, i: usize) -> Option<&(dyn Any + Send + Sync)>;
    /// The rows, for [`send_delete`].
    fn rows(&self) -> Box<dyn DeleteRows + '_>;
}

impl<C: Hooks> Reached for Vec<C> {
    fn meta(&self) -> &'static ModelMeta {
        &C::META
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn keep_unseen(&mut self, seen: &mut HashSet<(TypeId, String)>) {
        self.retain(|row| match row.__key() {
            Some(key) => seen.insert((TypeId::of::<C>(), format!("{key:?}"))),
            None => false,
        });
    }

    fn keys(&self) -> Vec<Arc<dyn DynField>> {
        keys_of(self)
    }

    fn key(&self, i: usize) -> Option<&(dyn Any + Send + Sync)> {
        self[i].__key().map(|k| k as &(dyn Any + Send + Sync))
    }

    fn rows(&self) -> Box<dyn DeleteRows + '_> {
        Box::new(RowsOf(self.as_slice()))
    }
}

/// Reads the rows of `C` whose column at `column` is in `keys`, for the cascade.
fn select_reached<'a, C: Hooks>(
    tx: &'a mut Tx,
    column: usize,
    keys: &'a [Arc<dyn DynField>],
) -> BoxFuture<'a, Result<Box<dyn Reached>>> {
    Box::pin(async move {
        let rows: Vec<C> = select_in(tx, column, keys).await?;
        Ok(Box::new(rows) as Box<dyn Reached>)
    })
}

/// Cascaded rows of one model at one level, each with the many-to-many links its delete
/// removes.
struct Group {
    rows: Box<dyn Reached>,
    links: Vec<Vec<Removed>>,
}

/// A cascaded row's error, without the index in its group that a batch gave it: the row is not
/// one the caller passed.
pub(crate) fn unrow(err: Error) -> Error {
    match err {
        Error::Bulk {
            model: "", source, ..
        } => *source,
        err => err,
    }
}

impl Group {
    async fn send(&self, tx: &mut Tx, origin: &'static str, kind: SignalKind) -> Result<()> {
        send_delete(tx, origin, &*self.rows.rows(), &self.links, kind)
            .await
            .map_err(unrow)
    }

    async fn delete(&self, tx: &mut Tx, deleted: &mut Deleted) -> Result<()> {
        let meta = self.rows.meta();
        let keys = self.rows.keys();
        let n = run_in(tx, meta, InList::Delete, meta.primary_key, &keys).await?;
        deleted.add(meta.name, n);
        Ok(())
    }
}

/// Sends `pre_delete` or `post_delete` (`kind`) for a group of rows of one model: in batches
/// of at most [`MAX_CHUNK_ROWS`] rows; row by row, each with its many-to-many `Pre/PostRemove`,
/// when some row has links. After `post_delete`, schedules the rows' `#[on_commit]`
/// receivers. An error names its row (or batch) by index in `rows` ([`Error::Bulk`]).
pub(crate) async fn send_delete(
    tx: &mut Tx,
    origin: &'static str,
    rows: &dyn DeleteRows,
    links: &[Vec<Removed>],
    kind: SignalKind,
) -> Result<()> {
    let post = kind == SignalKind::PostDelete;
    let len = rows.len();
    if links.iter().all(Vec::is_empty) {
        for start in (0..len).step_by(MAX_CHUNK_ROWS) {
            let chunk = start..(start + MAX_CHUNK_ROWS).min(len);
            // Noted as sent per chunk, so that a batch receiver's one call per chunk is listed
            // on the chunk's rows.
            let noted = rows.note(chunk.clone(), kind);
            let res = noted
                .within(rows.batch(chunk.clone(), tx, origin, kind))
                .await;
            res.map_err(|err| err.in_chunk(start, chunk.len()))?;
        }
    } else {
        for (i, links) in links.iter().enumerate().take(len) {
            let noted = rows.note(i..i + 1, kind);
            let res = noted.within(rows.one(i, tx, origin, kind)).await;
            let action = if post {
                M2mAction::PostRemove
            } else {
                M2mAction::PreRemove
            };
            let res = match res {
                Ok(()) => m2m::send_removed(tx, rows.instance(i), links, action).await,
                err => err,
            };
            res.map_err(|err| at_row(i, err))?;
        }
    }
    if post {
        rows.on_commit(tx)?;
    }
    Ok(())
}

pub(crate) async fn delete_row<M: Model>(target: &mut Target<'_>, key: &M::Key) -> Result<u64> {
    let backend = target.backend();
    let mut args = Args::new(backend, 1);
    args.bind(key, M::META.columns[M::META.primary_key])?;
    let st = M::__statements(backend);
    Ok(target.execute(st.delete_by_key.as_str(), args).await?.rows)
}

/// Whether a delete of `C`'s rows needs them read: receivers to send, relations or links to
/// follow. Otherwise a cascade deletes them with one statement.
fn must_read<C: Hooks>() -> bool {
    any_receivers::<C>(&[
        SignalKind::PreDelete,
        SignalKind::PostDelete,
        SignalKind::OnCommit,
    ]) || has_relations::<C>()
        || m2m::has_links::<C>()
}

impl Collector {
    /// Gathers what deleting the rows of `M` with `keys` reaches, through every relation,
    /// level by level.
    pub(crate) async fn gather<M: Model>(
        tx: &mut Tx,
        keys: &[Arc<dyn DynField>],
    ) -> Result<Collector> {
        let mut c = Collector {
            batches: Vec::new(),
            set_null: Vec::new(),
            fast: Vec::new(),
            seen: HashSet::new(),
            roots: 0,
        };
        for key in keys {
            c.seen.insert((TypeId::of::<M>(), format!("{key:?}")));
        }
        c.roots = c.seen.len();
        collect_for(TypeId::of::<M>(), tx, keys, &mut c).await?;
        Ok(c)
    }

    /// How many distinct rows the delete started from.
    pub(crate) fn roots(&self) -> usize {
        self.roots
    }

    /// How many groups of cascaded rows there are.
    pub(crate) fn batches(&self) -> usize {
        self.batches.len()
    }

    /// Sends `pre_delete` for every cascaded row.
    pub(crate) async fn pre_delete(&self, tx: &mut Tx, origin: &'static str) -> Result<()> {
        for group in &self.batches {
            group.send(tx, origin, SignalKind::PreDelete).await?;
        }
        Ok(())
    }

    /// Clears the `set_null` references and runs the fast deletes, then, group by group
    /// (children before their parents), deletes the cascaded rows and sends their
    /// `post_delete` (scheduling their `#[on_commit]` receivers), as Django's collector does:
    /// a child's `post_delete` still finds its parent's row.
    pub(crate) async fn delete(
        &self,
        tx: &mut Tx,
        origin: &'static str,
        deleted: &mut Deleted,
    ) -> Result<()> {
        for s in &self.set_null {
            s.run(tx, InList::SetNull).await?;
        }
        for f in &self.fast {
            let n = f.run(tx, InList::Delete).await?;
            if n > 0 {
                deleted.add(f.model, n);
            }
        }
        for group in &self.batches {
            group.delete(tx, deleted).await?;
            group.send(tx, origin, SignalKind::PostDelete).await?;
        }
        Ok(())
    }
}

/// Gathers what deleting the rows of the model `parent` with `keys` reaches through the
/// relations to it. Boxed: it recurses through [`collect`], level by level.
fn collect_for<'a>(
    parent: TypeId,
    tx: &'a mut Tx,
    keys: &'a [Arc<dyn DynField>],
    c: &'a mut Collector,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if keys.is_empty() {
            return Ok(());
        }
        for rel in relations_of(parent) {
            collect(rel, tx, keys, c).await?;
        }
        Ok(())
    })
}

/// What deleting the parents with `parent_keys` does through `rel`: refuses (restrict),
/// notes the references to clear (set null) or the children to delete without reading them
/// (a fast delete), or reads the children to delete, and what reaches them in turn.
async fn collect(
    rel: &'static Relation,
    tx: &mut Tx,
    parent_keys: &[Arc<dyn DynField>],
    c: &mut Collector,
) -> Result<()> {
    let i = rel.column_index;
    let of_keys = || InListOf {
        model: rel.child,
        meta: rel.child_meta,
        column: i,
        keys: parent_keys.to_vec(),
    };
    match rel.on_delete {
        OnDelete::Restrict => {
            let st = (rel.statements)(tx.backend());
            for key in parent_keys {
                let mut args = Args::new(tx.backend(), 1);
                key.bind_to(&mut args, rel.column)?;
                let count = Target::Tx(tx)
                    .fetch_i64(st.count_where[i].as_str(), args)
                    .await?;
                if count > 0 {
                    return Err(Error::Restricted {
                        model: rel.parent,
                        key: format!("{key:?}"),
                        related: rel.child,
                        field: rel.field,
                        count,
                    });
                }
            }
        }
        OnDelete::SetNull => c.set_null.push(of_keys()),
        OnDelete::Cascade if !(rel.must_read)() => c.fast.push(of_keys()),
        OnDelete::Cascade => {
            let mut rows = (rel.select)(tx, i, parent_keys).await?;
            rows.keep_unseen(&mut c.seen);
            if rows.len() == 0 {
                return Ok(());
            }
            collect_for((rel.child_type)(), tx, &rows.keys(), c).await?;
            let mut links = Vec::with_capacity(rows.len());
            for k in 0..rows.len() {
                if let Some(key) = rows.key(k) {
                    links.push(m2m::links_of_type(tx, (rel.child_type)(), key).await?);
                }
            }
            c.batches.push(Group { rows, links });
        }
    }
    Ok(())
}
