//! Relations between models, registered by the child's derive, and the cascade of a delete:
//! the rows it reaches, gathered before anything is sent or deleted, then sent their signals
//! and deleted level by level.
//!
//! Uses `error`, `kind`, `sql`, `value`, `tx`, `model` and `signal`.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use super::m2m::{self, Removed};
use crate::backend::MAX_CHUNK_ROWS;
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::model::{Deleted, Model};
use crate::signal::batch::{PostDeleteBatch, PreDeleteBatch};
use crate::signal::context::{Committed, PostDelete, PreDelete, fired_delete};
use crate::signal::custom::BoxFuture;
use crate::signal::hooks::{self, Hooks, any_receivers, at_row};
use crate::signal::m2m::M2mAction;
use crate::signal::muting;
use crate::sql::{InList, where_in};
use crate::tx::{Target, Tx};
use crate::value::{Args, DynField};

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

type CollectFn = for<'a> fn(
    &'static Relation,
    &'a mut Tx,
    &'a [Arc<dyn DynField>],
    &'a mut Collector,
) -> BoxFuture<'a, Result<()>>;

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
    collect: CollectFn,
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
            collect: collect::<C>,
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

/// The relations whose child is `C`: its reference fields.
pub(crate) fn relations_from<C: Model>() -> impl Iterator<Item = &'static Relation> {
    inventory::iter::<Relation>
        .into_iter()
        .filter(|r| (r.child_type)() == TypeId::of::<C>())
}

pub(crate) fn has_relations<P: Model>() -> bool {
    !relations_to::<P>().is_empty()
}

/// Rows that a delete reaches, gathered level by level (one `IN` list per relation and level)
/// before anything is sent or deleted.
pub(crate) struct Collector {
    batches: Vec<Box<dyn Batch>>,
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
    for chunk in keys.chunks(MAX_CHUNK_ROWS) {
        let backend = tx.backend();
        let sql = where_in(&C::META, backend, InList::Select, column, chunk.len());
        let mut args = Args::new(backend, chunk.len());
        for key in chunk {
            key.bind_to(&mut args, C::META.columns[column])?;
        }
        rows.extend(
            Target::Tx(tx)
                .fetch_all(sqlx::AssertSqlSafe(sql), args, C::__load)
                .await?,
        );
    }
    Ok(rows)
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

trait Batch: Send + Sync {
    fn pre_delete<'a>(&'a self, tx: &'a mut Tx, origin: &'static str) -> BoxFuture<'a, Result<()>>;
    fn delete<'a>(&'a self, tx: &'a mut Tx, deleted: &'a mut Deleted) -> BoxFuture<'a, Result<()>>;
    fn post_delete<'a>(&'a self, tx: &'a mut Tx, origin: &'static str)
    -> BoxFuture<'a, Result<()>>;
}

/// Cascaded rows of one model at one level, each with the many-to-many links its delete
/// removes.
struct Rows<C> {
    rows: Vec<C>,
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

impl<C: Hooks> Batch for Rows<C> {
    fn pre_delete<'a>(&'a self, tx: &'a mut Tx, origin: &'static str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            send_delete(tx, origin, &self.rows, &self.links, SignalKind::PreDelete)
                .await
                .map_err(unrow)
        })
    }

    fn delete<'a>(&'a self, tx: &'a mut Tx, deleted: &'a mut Deleted) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let keys = keys_of(&self.rows);
            let n = run_in(tx, &C::META, InList::Delete, C::META.primary_key, &keys).await?;
            deleted.add(C::META.name, n);
            Ok(())
        })
    }

    fn post_delete<'a>(
        &'a self,
        tx: &'a mut Tx,
        origin: &'static str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            send_delete(tx, origin, &self.rows, &self.links, SignalKind::PostDelete)
                .await
                .map_err(unrow)
        })
    }
}

/// Sends `pre_delete` or `post_delete` (`kind`) for a group of rows of one model: in batches
/// of at most [`MAX_CHUNK_ROWS`] rows; row by row, each with its many-to-many `Pre/PostRemove`,
/// when some row has links. After `post_delete`, schedules the rows' `#[on_commit]`
/// receivers. An error names its row (or batch) by index in `rows` ([`Error::Bulk`]).
pub(crate) async fn send_delete<C: Hooks>(
    tx: &mut Tx,
    origin: &'static str,
    rows: &[C],
    links: &[Vec<Removed>],
    kind: SignalKind,
) -> Result<()> {
    let post = kind == SignalKind::PostDelete;
    // Noted as sent: per chunk, or per row, so that a batch receiver's one call per chunk
    // is listed on the chunk's rows.
    let note = |rows: &[C]| {
        muting::note_rows(
            rows.iter()
                .map(|r| fired_delete(C::META.name, kind, muting::key_json(r))),
        )
    };
    if links.iter().all(Vec::is_empty) {
        for (c, chunk) in rows.chunks(MAX_CHUNK_ROWS).enumerate() {
            let offset = c * MAX_CHUNK_ROWS;
            let noted = note(chunk);
            let res = if post {
                let mut batch = PostDeleteBatch::new(tx, origin, chunk.len());
                noted
                    .within(hooks::post_delete_batch(chunk, &mut batch))
                    .await
            } else {
                let mut batch = PreDeleteBatch::new(tx, origin, chunk.len());
                noted
                    .within(hooks::pre_delete_batch(chunk, &mut batch))
                    .await
            };
            res.map_err(|err| err.in_chunk(offset, chunk.len()))?;
        }
    } else {
        for (i, (row, links)) in rows.iter().zip(links).enumerate() {
            let noted = note(std::slice::from_ref(row));
            let res = if post {
                noted
                    .within(hooks::post_delete(row, &mut PostDelete::new(tx, origin)))
                    .await
            } else {
                noted
                    .within(hooks::pre_delete(row, &mut PreDelete::new(tx, origin)))
                    .await
            };
            let action = if post {
                M2mAction::PostRemove
            } else {
                M2mAction::PreRemove
            };
            let res = match res {
                Ok(()) => m2m::send_removed(tx, row, links, action).await,
                err => err,
            };
            res.map_err(|err| at_row(i, err))?;
        }
    }
    if post {
        for row in rows {
            C::__on_commit(row, tx, Committed::Deleted, None, 0)?;
        }
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
        collect_for::<M>(tx, keys, &mut c).await?;
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
        for batch in &self.batches {
            batch.pre_delete(tx, origin).await?;
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
        for batch in &self.batches {
            batch.delete(tx, deleted).await?;
            batch.post_delete(tx, origin).await?;
        }
        Ok(())
    }
}

async fn collect_for<P: Model>(
    tx: &mut Tx,
    keys: &[Arc<dyn DynField>],
    c: &mut Collector,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    for rel in relations_to::<P>() {
        (rel.collect)(rel, tx, keys, c).await?;
    }
    Ok(())
}

fn collect<'a, C: Hooks>(
    rel: &'static Relation,
    tx: &'a mut Tx,
    parent_keys: &'a [Arc<dyn DynField>],
    c: &'a mut Collector,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let i = rel.column_index;
        let of_keys = || InListOf {
            model: C::META.name,
            meta: &C::META,
            column: i,
            keys: parent_keys.to_vec(),
        };
        match rel.on_delete {
            OnDelete::Restrict => {
                let st = C::__statements(tx.backend());
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
            OnDelete::Cascade if !must_read::<C>() => c.fast.push(of_keys()),
            OnDelete::Cascade => {
                let rows: Vec<C> = select_in(tx, i, parent_keys).await?;
                let mut kept = Vec::with_capacity(rows.len());
                for row in rows {
                    let Some(key) = row.__key() else { continue };
                    // A row reached twice (a cycle, or two paths) is deleted once.
                    if c.seen.insert((TypeId::of::<C>(), format!("{key:?}"))) {
                        kept.push(row);
                    }
                }
                if kept.is_empty() {
                    return Ok(());
                }
                collect_for::<C>(tx, &keys_of(&kept), c).await?;
                let mut links = Vec::with_capacity(kept.len());
                for row in &kept {
                    if let Some(key) = row.__key() {
                        links.push(m2m::links_of::<C>(tx, key).await?);
                    }
                }
                c.batches.push(Box::new(Rows { rows: kept, links }));
            }
        }
        Ok(())
    })
}
