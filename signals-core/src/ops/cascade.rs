//! Relations between models, registered by the child's derive, and the cascade of a delete:
//! the rows it reaches, gathered before anything is sent or deleted, then sent their signals
//! and deleted level by level.
//!
//! Uses `error`, `kind`, `value`, `tx`, `model` and `signal`.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use super::m2m::{self, Removed};
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::model::{Deleted, Model};
use crate::signal::context::{Committed, PostDelete, PreDelete, fired_delete};
use crate::signal::custom::BoxFuture;
use crate::signal::hooks::{self, Hooks};
use crate::signal::m2m::M2mAction;
use crate::signal::muting;
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
    Arc<dyn DynField>,
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

/// Rows that a delete reaches, gathered before anything is sent or deleted.
pub(crate) struct Collector {
    batches: Vec<Box<dyn Batch>>,
    set_null: Vec<SetNull>,
    seen: HashSet<(TypeId, String)>,
}

struct SetNull {
    sql: &'static str,
    column: &'static str,
    key: Arc<dyn DynField>,
}

trait Batch: Send + Sync {
    fn pre_delete<'a>(&'a self, tx: &'a mut Tx, origin: &'static str) -> BoxFuture<'a, Result<()>>;
    fn delete<'a>(&'a self, tx: &'a mut Tx, deleted: &'a mut Deleted) -> BoxFuture<'a, Result<()>>;
    fn post_delete<'a>(&'a self, tx: &'a mut Tx, origin: &'static str)
    -> BoxFuture<'a, Result<()>>;
}

/// Cascaded rows of one model, each with the many-to-many links its delete removes.
struct Rows<C>(Vec<(C, Vec<Removed>)>);

impl<C: Hooks> Batch for Rows<C> {
    fn pre_delete<'a>(&'a self, tx: &'a mut Tx, origin: &'static str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for (row, links) in &self.0 {
                muting::note(|| fired_delete(C::META.name, SignalKind::PreDelete));
                hooks::pre_delete(row, &mut PreDelete::new(tx, origin)).await?;
                m2m::send_removed(tx, row, links, M2mAction::PreRemove).await?;
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, tx: &'a mut Tx, deleted: &'a mut Deleted) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for (row, _) in &self.0 {
                if let Some(key) = row.__key() {
                    let n = delete_row::<C>(&mut Target::Tx(tx), key).await?;
                    deleted.add(C::META.name, n);
                }
            }
            Ok(())
        })
    }

    fn post_delete<'a>(
        &'a self,
        tx: &'a mut Tx,
        origin: &'static str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for (row, links) in &self.0 {
                muting::note(|| fired_delete(C::META.name, SignalKind::PostDelete));
                hooks::post_delete(row, &mut PostDelete::new(tx, origin)).await?;
                m2m::send_removed(tx, row, links, M2mAction::PostRemove).await?;
                C::__on_commit(row, tx, Committed::Deleted, None, 0);
            }
            Ok(())
        })
    }
}

pub(crate) async fn delete_row<M: Model>(target: &mut Target<'_>, key: &M::Key) -> Result<u64> {
    let backend = target.backend();
    let mut args = Args::new(backend, 1);
    args.bind(key, M::META.columns[M::META.primary_key])?;
    let st = M::__statements(backend);
    Ok(target.execute(st.delete_by_key.as_str(), args).await?.rows)
}

impl Collector {
    /// Gathers what deleting the row of `M` with `key` reaches, through every relation.
    pub(crate) async fn gather<M: Model>(tx: &mut Tx, key: &M::Key) -> Result<Collector> {
        let mut c = Collector {
            batches: Vec::new(),
            set_null: Vec::new(),
            seen: HashSet::new(),
        };
        c.seen.insert((TypeId::of::<M>(), format!("{key:?}")));
        collect_for::<M>(tx, Arc::new(key.clone()), &mut c).await?;
        Ok(c)
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

    /// Clears the `set_null` references, then, group by group (children before their
    /// parents), deletes the cascaded rows and sends their `post_delete` (scheduling their
    /// `#[on_commit]` receivers), as Django's collector does: a child's `post_delete` still
    /// finds its parent's row.
    pub(crate) async fn delete(
        &self,
        tx: &mut Tx,
        origin: &'static str,
        deleted: &mut Deleted,
    ) -> Result<()> {
        for s in &self.set_null {
            let mut args = Args::new(tx.backend(), 1);
            s.key.bind_to(&mut args, s.column)?;
            Target::Tx(tx).execute(s.sql, args).await?;
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
    key: Arc<dyn DynField>,
    c: &mut Collector,
) -> Result<()> {
    for rel in relations_to::<P>() {
        (rel.collect)(rel, tx, key.clone(), c).await?;
    }
    Ok(())
}

fn collect<'a, C: Hooks>(
    rel: &'static Relation,
    tx: &'a mut Tx,
    parent_key: Arc<dyn DynField>,
    c: &'a mut Collector,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let backend = tx.backend();
        let st = C::__statements(backend);
        let i = rel.column_index;
        let mut args = Args::new(backend, 1);
        parent_key.bind_to(&mut args, rel.column)?;
        match rel.on_delete {
            OnDelete::Restrict => {
                let count = Target::Tx(tx)
                    .fetch_i64(st.count_where[i].as_str(), args)
                    .await?;
                if count > 0 {
                    return Err(Error::Restricted {
                        model: rel.parent,
                        key: format!("{parent_key:?}"),
                        related: rel.child,
                        field: rel.field,
                        count,
                    });
                }
            }
            OnDelete::SetNull => c.set_null.push(SetNull {
                sql: &st.set_null_where[i],
                column: rel.column,
                key: parent_key,
            }),
            OnDelete::Cascade => {
                let rows: Vec<C> = Target::Tx(tx)
                    .fetch_all(st.select_where[i].as_str(), args, C::__from_row)
                    .await?;
                let mut kept = Vec::with_capacity(rows.len());
                for row in rows {
                    let Some(key) = row.__key() else { continue };
                    // A row reached twice (a cycle, or two paths) is deleted once.
                    if !c.seen.insert((TypeId::of::<C>(), format!("{key:?}"))) {
                        continue;
                    }
                    collect_for::<C>(tx, Arc::new(key.clone()), c).await?;
                    let links = m2m::links_of::<C>(tx, key).await?;
                    kept.push((row, links));
                }
                if !kept.is_empty() {
                    c.batches.push(Box::new(Rows(kept)));
                }
            }
        }
        Ok(())
    })
}
