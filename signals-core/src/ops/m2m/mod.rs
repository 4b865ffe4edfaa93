//! Many-to-many relations through a model of their own: adding, removing, setting and clearing
//! links with `m2m_changed` around each action; `links` finds and reports the links a delete of
//! either end removes.
//!
//! Uses `error`, `backend`, `value`, `meta`, `query`, `tx`, `model`, `signal` and `load`.

mod links;
mod statements;

pub use links::{Links, M2mLink};
pub(crate) use links::{Removed, has_links, links_of, links_of_type, send_removed};

use std::collections::BTreeSet;
use std::marker::PhantomData;

use super::atomically;
use crate::backend::{Backend, MAX_CHUNK_ROWS};
use crate::error::{Error, Result};
use crate::kind::SignalKind;
use crate::meta::Column;
use crate::model::Model;
use crate::query::{Filter, Lock, Query};
use crate::signal::m2m::{M2mAction, M2mChanged, Through};
use crate::signal::muting::{self, Fired};
use crate::sql::Sql;
use crate::tx::{Executor, Target, Tx};
use crate::value::{DynField, FieldType, Row};
use statements::{LinksTable, linked_rows, lock_rows_in, where_links};

/// The links of one instance of `F` to instances of `T`, through the model `Th`: what
/// `#[model(many_to_many(tags: Tag, through = PostTag))]` gives as `post.tags()` (and, from
/// the other side, `tag.post_set()`).
///
/// Each action runs in one transaction (a savepoint inside yours) with the through model's
/// `m2m_changed` receivers: it locks the rows of the through model's first side that it
/// touches (so that changes of one link from either side run one after the other), reads which
/// of the keys are linked
/// (the read that tells what really changes), sends the `Pre*` action (a receiver's error
/// refuses the change: nothing is written), changes the links in one statement, and sends the
/// `Post*` action. Keys that change nothing (an add of a linked key, a remove of an unlinked
/// one) are not reported; an action that changes nothing sends nothing.
///
/// `add` and `set` insert through rows with the two key columns only: any other column of the
/// through model needs a default, and the through model's own save receivers do not run for
/// these rows (as in Django). [`add_through`](Self::add_through) saves rows of your own
/// instead, with their receivers, between `PreAdd` and `PostAdd`. A through instance saved
/// outside these calls runs its own receivers and sends no `m2m_changed`. Deleting either end removes its links through the references'
/// cascade, with the through rows' delete receivers, and sends `PreRemove`/`PostRemove` for
/// the links it removes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{Db, M2mAction, M2mChange, M2mChanged, Model, Result};
///
/// #[derive(Model)]
/// #[model(many_to_many(tags: Tag, through = PostTag))]
/// struct Post { id: Option<i64>, title: String }
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64>, name: String }
///
/// #[derive(Model)]
/// #[m2m_changed(tagged)]
/// struct PostTag {
///     id: Option<i64>,
///     #[model(foreign_key = Post, on_delete = cascade)]
///     post_id: i64,
///     #[model(foreign_key = Tag, on_delete = cascade)]
///     tag_id: i64,
/// }
///
/// async fn tagged(change: &M2mChange<'_, Post, Tag>, _: &mut M2mChanged<'_>) -> Result<()> {
///     if change.action() == M2mAction::PostAdd {
///         println!("linked {:?}", change.pairs());
///     }
///     Ok(())
/// }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.create_tables::<(Post, Tag, PostTag)>().await?;
/// let mut post = Post { id: None, title: "Hello".into() };
/// post.save(&db).await?;
/// let mut rust = Tag { id: None, name: "rust".into() };
/// rust.save(&db).await?;
///
/// assert_eq!(post.tags().add(&db, [rust.id.unwrap()]).await?, [1]);
/// assert_eq!(post.tags().add(&db, [rust.id.unwrap()]).await?, Vec::<i64>::new()); // already there
/// assert_eq!(post.tags().all(&db).await?.len(), 1);
/// assert_eq!(rust.post_set().keys(&db).await?, [1]);
/// assert_eq!(post.tags().remove(&db, [5, 1]).await?, [1]); // 5 was never linked
/// # Ok(()) }
/// ```
pub struct ManyToMany<'a, F, T, Th> {
    instance: &'a F,
    _marker: PhantomData<fn() -> (T, Th)>,
}

/// What [`ManyToMany::set`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetLinks<K> {
    /// The keys linked by the call, in the order given.
    pub added: Vec<K>,
    /// The keys unlinked by the call, in key order.
    pub removed: Vec<K>,
}

impl<'a, F, T, Th> ManyToMany<'a, F, T, Th> {
    #[doc(hidden)]
    pub fn __new(instance: &'a F) -> Self {
        ManyToMany {
            instance,
            _marker: PhantomData,
        }
    }
}

impl<'a, F: Model, T: Model, Th: Through<F, T>> ManyToMany<'a, F, T, Th> {
    fn key(&self) -> Result<&'a F::Key> {
        self.instance.__key().ok_or(Error::NotSaved {
            model: F::META.name,
        })
    }

    /// The linked `T`s as a query, to filter, order or count further.
    pub fn query(&self) -> Query<T> {
        let Ok(key) = self.key() else {
            return T::query().filter(Filter::invalid(format!(
                "this `{}` was never saved: it has no links",
                F::META.name
            )));
        };
        let from = Column::<Th, F::Key>::new(usize::MAX, Th::FROM).eq(key.clone());
        T::query().filter(Filter::in_query(
            T::META.columns[T::META.primary_key],
            Th::META.table,
            Th::TO,
            Th::query().filter(from),
        ))
    }

    /// The linked `T`s, in key order.
    pub async fn all<'e>(&self, ex: impl Executor<'e>) -> Result<Vec<T>> {
        self.query().all(ex).await
    }

    /// The keys of the linked `T`s, in key order.
    pub async fn keys<'e>(&self, ex: impl Executor<'e>) -> Result<Vec<T::Key>> {
        let key = self.key()?;
        linked::<F, T, Th>(&mut ex.__target(), key, None).await
    }

    /// Links the instance to `keys`; returns the keys linked by this call (not those linked
    /// already), in the order given.
    pub async fn add<'e>(
        &self,
        ex: impl Executor<'e>,
        keys: impl IntoIterator<Item = T::Key>,
    ) -> Result<Vec<T::Key>> {
        let key = self.key()?;
        let wanted = distinct(keys);
        let instance = self.instance;
        within(ex, Th::META.name, "m2m add", async |tx: &mut Tx| {
            let there: BTreeSet<T::Key> = locked_among::<F, T, Th>(tx, key, &wanted)
                .await?
                .into_iter()
                .collect();
            let new: Vec<T::Key> = wanted.into_iter().filter(|k| !there.contains(k)).collect();
            add_links::<F, T, Th>(tx, instance, key, &new).await?;
            Ok(new)
        })
        .await
    }

    /// Links the instance through through-model rows of your own (for a through model with
    /// columns besides the two keys): each row is saved, with the through model's own save
    /// receivers, between `PreAdd` and `PostAdd`; a row whose link exists already is skipped
    /// (not saved, not reported). Returns the keys linked by this call, in the order given.
    /// Every row must refer to this instance: one that does not is `ErrorKind::Usage`, and
    /// nothing is written.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Model};
    ///
    /// #[derive(Model)]
    /// #[model(many_to_many(members: Person, through = Membership))]
    /// struct Club { id: Option<i64> }
    ///
    /// #[derive(Model)]
    /// struct Person { id: Option<i64> }
    ///
    /// #[derive(Model)]
    /// struct Membership {
    ///     id: Option<i64>,
    ///     #[model(foreign_key = Club, on_delete = cascade)]
    ///     club_id: i64,
    ///     #[model(foreign_key = Person, on_delete = cascade)]
    ///     person_id: i64,
    ///     role: String, // no default: `add` could not write it
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<(Club, Person, Membership)>().await?;
    /// let mut club = Club { id: None };
    /// club.save(&db).await?;
    /// let mut ann = Person { id: None };
    /// ann.save(&db).await?;
    /// let row = Membership { id: None, club_id: 1, person_id: 1, role: "chair".into() };
    /// assert_eq!(club.members().add_through(&db, [row]).await?, [1]);
    /// assert_eq!(Membership::all(&db).await?[0].role, "chair");
    /// # Ok(()) }
    /// ```
    pub async fn add_through<'e>(
        &self,
        ex: impl Executor<'e>,
        rows: impl IntoIterator<Item = Th>,
    ) -> Result<Vec<T::Key>> {
        let key = self.key()?;
        let mut rows: Vec<Th> = rows.into_iter().collect();
        let mut wanted = Vec::with_capacity(rows.len());
        for row in &rows {
            let (from, to) = row.__link();
            if from != Some(key) {
                return Err(Error::InvalidQuery(format!(
                    "a `{}` row given to `add_through` refers to `{}` {from:?}, not to this one ({key:?})",
                    Th::META.name,
                    F::META.name
                )));
            }
            let Some(to) = to else {
                return Err(Error::InvalidQuery(format!(
                    "a `{}` row given to `add_through` refers to no `{}`",
                    Th::META.name,
                    T::META.name
                )));
            };
            wanted.push(to.clone());
        }
        let instance = self.instance;
        within(ex, Th::META.name, "m2m add", async |tx: &mut Tx| {
            let there: BTreeSet<T::Key> = locked_among::<F, T, Th>(tx, key, &wanted)
                .await?
                .into_iter()
                .collect();
            let mut new: Vec<T::Key> = Vec::new();
            let mut taken = BTreeSet::new();
            rows.retain(|row| match row.__link().1 {
                Some(to) if !there.contains(to) && taken.insert(to.clone()) => {
                    new.push(to.clone());
                    true
                }
                _ => false,
            });
            let adding = (M2mAction::PreAdd, M2mAction::PostAdd);
            around::<F, T, Th>(tx, instance, &new, adding, async |tx: &mut Tx| {
                for row in &mut rows {
                    row.save(&mut *tx).await?;
                }
                Ok(())
            })
            .await?;
            Ok(new)
        })
        .await
    }

    /// Unlinks the instance from `keys`; returns the keys unlinked (those that were linked),
    /// in key order.
    pub async fn remove<'e>(
        &self,
        ex: impl Executor<'e>,
        keys: impl IntoIterator<Item = T::Key>,
    ) -> Result<Vec<T::Key>> {
        let key = self.key()?;
        let wanted = distinct(keys);
        let instance = self.instance;
        within(ex, Th::META.name, "m2m remove", async |tx: &mut Tx| {
            let gone = locked_among::<F, T, Th>(tx, key, &wanted).await?;
            remove_links::<F, T, Th>(tx, instance, key, &gone, false).await?;
            Ok(gone)
        })
        .await
    }

    /// Makes `keys` the instance's links: unlinks the others (`PreRemove`/`PostRemove`), then
    /// links the missing ones (`PreAdd`/`PostAdd`), as Django's `set`.
    pub async fn set<'e>(
        &self,
        ex: impl Executor<'e>,
        keys: impl IntoIterator<Item = T::Key>,
    ) -> Result<SetLinks<T::Key>> {
        let key = self.key()?;
        let wanted = distinct(keys);
        let instance = self.instance;
        within(ex, Th::META.name, "m2m set", async |tx: &mut Tx| {
            let there = locked_links::<F, T, Th>(tx, key, &wanted).await?;
            let wanted_set: BTreeSet<&T::Key> = wanted.iter().collect();
            let removed: Vec<T::Key> = there
                .iter()
                .filter(|k| !wanted_set.contains(k))
                .cloned()
                .collect();
            let there: BTreeSet<T::Key> = there.into_iter().collect();
            let added: Vec<T::Key> = wanted.into_iter().filter(|k| !there.contains(k)).collect();
            remove_links::<F, T, Th>(tx, instance, key, &removed, false).await?;
            add_links::<F, T, Th>(tx, instance, key, &added).await?;
            Ok(SetLinks { added, removed })
        })
        .await
    }

    /// Unlinks the instance from everything (`PreClear`/`PostClear`, with the keys unlinked);
    /// returns those keys, in key order.
    pub async fn clear<'e>(&self, ex: impl Executor<'e>) -> Result<Vec<T::Key>> {
        let key = self.key()?;
        let instance = self.instance;
        within(ex, Th::META.name, "m2m clear", async |tx: &mut Tx| {
            let gone = locked_links::<F, T, Th>(tx, key, &[]).await?;
            remove_links::<F, T, Th>(tx, instance, key, &gone, true).await?;
            Ok(gone)
        })
        .await
    }
}

/// Runs `f` atomically (a transaction of its own, or a savepoint in the caller's).
async fn within<'e, R>(
    ex: impl Executor<'e>,
    model: &'static str,
    operation: &'static str,
    f: impl AsyncFnOnce(&mut Tx) -> Result<R>,
) -> Result<R> {
    atomically(ex.__target(), model, operation, None, f)
        .await
        .map(|(r, _)| r)
}

impl<F: Model, T: Model, Th: Through<F, T>> std::fmt::Debug for ManyToMany<'_, F, T, Th> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManyToMany")
            .field("from", &F::META.name)
            .field("key", &self.instance.__key())
            .field("to", &T::META.name)
            .field("through", &Th::META.name)
            .finish()
    }
}

/// `keys` without repeats, in the order given.
fn distinct<K: Ord + Clone>(keys: impl IntoIterator<Item = K>) -> Vec<K> {
    let mut seen = BTreeSet::new();
    keys.into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// Locks the rows of the through model's first side that the change touches (servers;
/// SQLite's write transaction is exclusive already): the instance's row when the change comes
/// from that side, else the rows of `others`, in key order. Every change of a link `(a, b)`,
/// from either side, locks `a`'s row first, so two changes of one link run one after the
/// other and the second sees the first's work; a single row, or rows in key order, cannot
/// deadlock. From the second side the instance's own row `b` is held first with a shared lock
/// that only its delete waits for (a delete of `b` holds it for update, then the rows of its
/// links: taken in this order by both, they cannot deadlock). The instance's row that is gone
/// is `NotFound`.
async fn lock<F: Model, T: Model, Th: Through<F, T>>(
    tx: &mut Tx,
    key: &F::Key,
    others: &[T::Key],
) -> Result<()> {
    if tx.backend() == Backend::Sqlite {
        return Ok(());
    }
    let instance = if Th::__REVERSE {
        Lock::KeyShare
    } else {
        Lock::Update
    };
    if lock_rows::<F>(tx, std::slice::from_ref(key), instance)
        .await?
        .is_empty()
    {
        return Err(Error::NotFound {
            model: F::META.name,
            key: format!("{key:?}"),
        });
    }
    if Th::__REVERSE {
        lock_rows::<T>(tx, others, Lock::Update).await?;
    }
    Ok(())
}

/// Locks the rows of `M` with `keys` in key order, a chunk at a time (a query of the crate's
/// own); returns the keys of the rows found.
pub(super) async fn lock_rows<M: Model>(
    tx: &mut Tx,
    keys: &[M::Key],
    lock: Lock,
) -> Result<Vec<M::Key>> {
    let mut sorted: Vec<M::Key> = keys.to_vec();
    sorted.sort();
    sorted.dedup();
    let erased: Vec<&dyn DynField> = sorted.iter().map(|k| k as &dyn DynField).collect();
    let mut found = Vec::with_capacity(sorted.len());
    let column = M::META.columns[M::META.primary_key];
    let mut each = |row: &Row<'_>| {
        found.push(M::Key::__read(row, 0, M::META.name, column)?);
        Ok(())
    };
    lock_rows_in(tx, &M::META, &erased, lock, &mut each).await?;
    Ok(found)
}

/// The keys among `wanted` linked to `key`, read under the lock of the rows a change of them
/// takes.
async fn locked_among<F: Model, T: Model, Th: Through<F, T>>(
    tx: &mut Tx,
    key: &F::Key,
    wanted: &[T::Key],
) -> Result<Vec<T::Key>> {
    lock::<F, T, Th>(tx, key, wanted).await?;
    linked::<F, T, Th>(&mut Target::Tx(tx), key, Some(wanted)).await
}

/// The `T` keys linked to `key` that a change of them and of `also` may act on, read under
/// the lock of the rows such a change takes.
///
/// From the first side the instance's own row is the lock, and every link of the instance is
/// read under it. From the second side each link `(a, key)` is guarded by `a`'s row, so the
/// links are read once to know which rows to lock, the rows are locked (in key order), and
/// the links are read again **among the locked rows only**: a link that another side added
/// between the two reads, to a row not locked here, is left alone, as if that change had come
/// just after this one (it has not been reported here, and its own change reports it). Reading
/// it as well would act on a link whose row another change holds: removed twice, or reported
/// twice.
async fn locked_links<F: Model, T: Model, Th: Through<F, T>>(
    tx: &mut Tx,
    key: &F::Key,
    also: &[T::Key],
) -> Result<Vec<T::Key>> {
    if Th::__REVERSE && tx.backend() != Backend::Sqlite {
        let mut touched: BTreeSet<T::Key> = also.iter().cloned().collect();
        touched.extend(linked::<F, T, Th>(&mut Target::Tx(tx), key, None).await?);
        let touched: Vec<T::Key> = touched.into_iter().collect();
        lock::<F, T, Th>(tx, key, &touched).await?;
        return linked::<F, T, Th>(&mut Target::Tx(tx), key, Some(&touched)).await;
    }
    lock::<F, T, Th>(tx, key, also).await?;
    linked::<F, T, Th>(&mut Target::Tx(tx), key, None).await
}

fn read_key<K: FieldType>(row: &Row<'_>) -> Result<K> {
    K::__read(row, 0, "many-to-many", "key")
}

/// The `T` keys linked to `key`: all of them, or those among `among`; in key order.
pub(super) async fn linked<F: Model, T: Model, Th: Through<F, T>>(
    target: &mut Target<'_>,
    key: &F::Key,
    among: Option<&[T::Key]>,
) -> Result<Vec<T::Key>> {
    let among: Option<Vec<&dyn DynField>> =
        among.map(|keys| keys.iter().map(|k| k as &dyn DynField).collect());
    let mut out = Vec::new();
    let mut each = |row: &Row<'_>| {
        out.push(read_key::<T::Key>(row)?);
        Ok(())
    };
    linked_rows(
        target,
        links_table::<F, T, Th>(),
        key,
        among.as_deref(),
        &mut each,
    )
    .await?;
    // Each chunk comes ordered; several are merged.
    out.sort();
    out.dedup();
    Ok(out)
}

/// The through table of `Th` and its key columns.
fn links_table<F: Model, T: Model, Th: Through<F, T>>() -> LinksTable {
    LinksTable {
        table: Th::META.table,
        from: Th::FROM,
        to: Th::TO,
    }
}

/// ` FROM <through> WHERE <from> = ?`, binding `key`: the links of one instance; with `to`,
/// only those to these keys (` AND <to> IN (?, ..)`).
fn where_links_of<F: Model, T: Model, Th: Through<F, T>>(
    sql: &mut Sql,
    key: &F::Key,
    to: Option<&[T::Key]>,
) -> Result<()> {
    let to: Option<Vec<&dyn DynField>> =
        to.map(|keys| keys.iter().map(|k| k as &dyn DynField).collect());
    where_links(sql, links_table::<F, T, Th>(), key, to.as_deref())
}

/// Notes an `m2m_changed` of `instance`'s links for `record_signals`.
pub(super) fn note<Th: Model, F: Model>(instance: &F) -> muting::Noted {
    muting::note(|| Fired {
        model: Th::META.name,
        signal: SignalKind::M2mChanged,
        key: muting::key_json(instance),
        receivers: Vec::new(),
        created: None,
        raw: false,
        update_fields: None,
    })
}

/// Sends `pre`, runs `write`, sends `post`, for a change of the links to `keys`; nothing at
/// all when no key changes.
async fn around<F: Model, T: Model, Th: Through<F, T>>(
    tx: &mut Tx,
    instance: &F,
    keys: &[T::Key],
    (pre, post): (M2mAction, M2mAction),
    write: impl AsyncFnOnce(&mut Tx) -> Result<()>,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let noted = note::<Th, F>(instance);
    noted
        .within(Th::__send(pre, instance, keys, &mut M2mChanged::new(tx)))
        .await?;
    drop(noted);
    write(tx).await?;
    let noted = note::<Th, F>(instance);
    noted
        .within(Th::__send(post, instance, keys, &mut M2mChanged::new(tx)))
        .await
}

async fn add_links<F: Model, T: Model, Th: Through<F, T>>(
    tx: &mut Tx,
    instance: &F,
    key: &F::Key,
    keys: &[T::Key],
) -> Result<()> {
    let adding = (M2mAction::PreAdd, M2mAction::PostAdd);
    around::<F, T, Th>(tx, instance, keys, adding, async |tx: &mut Tx| {
        for chunk in keys.chunks(MAX_CHUNK_ROWS) {
            let mut sql = Sql::with_capacity(tx.backend(), 2 * chunk.len());
            sql.push("INSERT INTO ")
                .ident(Th::META.table)
                .push(" (")
                .ident(Th::FROM)
                .push(", ")
                .ident(Th::TO)
                .push(") VALUES ");
            sql.list(chunk, |sql, k| {
                sql.push("(").bind_as(key, Th::FROM)?.push(", ");
                sql.bind_as(k, Th::TO)?.push(")");
                Ok(())
            })?;
            let (sql, args) = sql.into_parts();
            Target::Tx(tx)
                .execute(sqlx::AssertSqlSafe(sql), args)
                .await?;
        }
        Ok(())
    })
    .await
}

async fn remove_links<F: Model, T: Model, Th: Through<F, T>>(
    tx: &mut Tx,
    instance: &F,
    key: &F::Key,
    keys: &[T::Key],
    clear: bool,
) -> Result<()> {
    let actions = if clear {
        (M2mAction::PreClear, M2mAction::PostClear)
    } else {
        (M2mAction::PreRemove, M2mAction::PostRemove)
    };
    around::<F, T, Th>(tx, instance, keys, actions, async |tx: &mut Tx| {
        // Only the keys read (under the lock) and reported, `clear` included: a link another
        // side adds meanwhile is not removed unreported.
        for chunk in keys.chunks(MAX_CHUNK_ROWS) {
            let mut sql = Sql::with_capacity(tx.backend(), 1 + chunk.len());
            sql.push("DELETE");
            where_links_of::<F, T, Th>(&mut sql, key, Some(chunk))?;
            let (sql, args) = sql.into_parts();
            Target::Tx(tx)
                .execute(sqlx::AssertSqlSafe(sql), args)
                .await?;
        }
        Ok(())
    })
    .await
}
