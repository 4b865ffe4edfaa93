//! The links a delete of either end of a many-to-many relation removes: the relations
//! registered by the models that declare them, reading an instance's links before its delete
//! and sending `PreRemove`/`PostRemove` for them.
//!
//! Uses `error`, `tx`, `model`, `signal`, and the rest of `m2m` (its read of links).

use std::any::{Any, TypeId};

use super::{linked, lock_rows, note};
use crate::backend::Backend;
use crate::error::Result;
use crate::model::Model;
use crate::query::Lock;
use crate::signal::custom::BoxFuture;
use crate::signal::m2m::{M2mAction, M2mChanged, Through};
use crate::tx::{Target, Tx};

/// A many-to-many relation, registered by the model that declares it, so that a delete of
/// either end finds the links it removes.
#[doc(hidden)]
pub struct M2mLink {
    a: fn() -> TypeId,
    b: fn() -> TypeId,
    read: ReadFn,
    send: SendFn,
}

/// Both directions of a through model: one bound, so that a wrong through model is one error.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a through model between `{A}` and `{B}`",
    label = "not a through model of this relation",
    note = "a through model is a `#[derive(Model)]` struct with exactly two references \
            (`foreign_key` or `one_to_one`), one to each side"
)]
pub trait Links<A: Model, B: Model>: Through<A, B> + Through<B, A> {}
impl<A: Model, B: Model, Th: Through<A, B> + Through<B, A>> Links<A, B> for Th {}

type Keys = Box<dyn Any + Send + Sync>;
type ReadFn = for<'a> fn(
    bool,
    &'a mut Tx,
    &'a (dyn Any + Send + Sync),
) -> BoxFuture<'a, Result<(Keys, usize)>>;
type SendFn = for<'a> fn(
    bool,
    M2mAction,
    &'a mut Tx,
    &'a (dyn Any + Send + Sync),
    &'a (dyn Any + Send + Sync),
) -> BoxFuture<'a, Result<()>>;

inventory::collect!(M2mLink);

impl M2mLink {
    /// The relation between `A` and `B` through `Th`.
    pub const fn new<Th, A, B>() -> M2mLink
    where
        A: Model,
        B: Model,
        Th: Links<A, B>,
    {
        M2mLink {
            a: TypeId::of::<A>,
            b: TypeId::of::<B>,
            read: read_links::<Th, A, B>,
            send: send_links::<Th, A, B>,
        }
    }
}

fn read_links<'a, Th, A, B>(
    from_a: bool,
    tx: &'a mut Tx,
    key: &'a (dyn Any + Send + Sync),
) -> BoxFuture<'a, Result<(Keys, usize)>>
where
    A: Model,
    B: Model,
    Th: Through<A, B> + Through<B, A>,
{
    Box::pin(async move {
        let (keys, count): (Keys, usize) = match (
            from_a,
            key.downcast_ref::<A::Key>(),
            key.downcast_ref::<B::Key>(),
        ) {
            (true, Some(key), _) => {
                // The first side's row guards its links: held, no change of them runs.
                if tx.backend() != Backend::Sqlite {
                    lock_rows::<A>(tx, std::slice::from_ref(key), Lock::Update).await?;
                }
                let keys = linked::<A, B, Th>(&mut Target::Tx(tx), key, None).await?;
                let count = keys.len();
                (Box::new(keys), count)
            }
            (false, _, Some(key)) => {
                let keys = second_side_links::<Th, A, B>(tx, key).await?;
                let count = keys.len();
                (Box::new(keys), count)
            }
            _ => unreachable!("the key of the side being deleted"),
        };
        Ok((keys, count))
    })
}

/// The links of the second side's row `key`, read for its delete under the locks a change
/// of them takes (servers): the row itself for update first (no link to it can be added
/// meanwhile, nor changed from its side, which holds it shared), then the first side's rows
/// it is linked to, in key order, and the links read again among those.
async fn second_side_links<Th, A, B>(tx: &mut Tx, key: &B::Key) -> Result<Vec<A::Key>>
where
    A: Model,
    B: Model,
    Th: Through<A, B> + Through<B, A>,
{
    if tx.backend() == Backend::Sqlite {
        return linked::<B, A, Th>(&mut Target::Tx(tx), key, None).await;
    }
    lock_rows::<B>(tx, std::slice::from_ref(key), Lock::Update).await?;
    let hint = linked::<B, A, Th>(&mut Target::Tx(tx), key, None).await?;
    let locked = lock_rows::<A>(tx, &hint, Lock::Update).await?;
    linked::<B, A, Th>(&mut Target::Tx(tx), key, Some(&locked)).await
}

fn send_links<'a, Th, A, B>(
    from_a: bool,
    action: M2mAction,
    tx: &'a mut Tx,
    instance: &'a (dyn Any + Send + Sync),
    keys: &'a (dyn Any + Send + Sync),
) -> BoxFuture<'a, Result<()>>
where
    A: Model,
    B: Model,
    Th: Through<A, B> + Through<B, A>,
{
    Box::pin(async move {
        let mut signal = M2mChanged::new(tx);
        if from_a {
            let (Some(a), Some(keys)) = (
                instance.downcast_ref::<A>(),
                keys.downcast_ref::<Vec<B::Key>>(),
            ) else {
                return Ok(());
            };
            let noted = note::<Th, A>(a);
            noted
                .within(<Th as Through<A, B>>::__send(action, a, keys, &mut signal))
                .await
        } else {
            let (Some(b), Some(keys)) = (
                instance.downcast_ref::<B>(),
                keys.downcast_ref::<Vec<A::Key>>(),
            ) else {
                return Ok(());
            };
            let noted = note::<Th, B>(b);
            noted
                .within(<Th as Through<B, A>>::__send(action, b, keys, &mut signal))
                .await
        }
    })
}

/// Links a delete of an `M` removes: one entry per relation with any.
pub(crate) struct Removed {
    link: &'static M2mLink,
    from_a: bool,
    keys: Keys,
    count: usize,
}

/// Reads the links of the `M` with `key`, for the delete that removes them; nothing (and no
/// statement) for models in no many-to-many relation.
pub(crate) async fn links_of<M: Model>(tx: &mut Tx, key: &M::Key) -> Result<Vec<Removed>> {
    links_of_type(tx, TypeId::of::<M>(), key).await
}

/// [`links_of`] for the model whose type id is `me`, with its key erased: compiled once.
pub(crate) async fn links_of_type(
    tx: &mut Tx,
    me: TypeId,
    key: &(dyn Any + Send + Sync),
) -> Result<Vec<Removed>> {
    let mut out = Vec::new();
    for link in inventory::iter::<M2mLink> {
        for from_a in [true, false] {
            let side = if from_a { link.a } else { link.b };
            if side() != me {
                continue;
            }
            let (keys, count) = (link.read)(from_a, tx, key).await?;
            if count > 0 {
                out.push(Removed {
                    link,
                    from_a,
                    keys,
                    count,
                });
            }
        }
    }
    Ok(out)
}

/// Whether `M` is a side of some many-to-many relation: its deletes remove links.
pub(crate) fn has_links<M: Model>() -> bool {
    let me = TypeId::of::<M>();
    inventory::iter::<M2mLink>
        .into_iter()
        .any(|link| (link.a)() == me || (link.b)() == me)
}

/// Sends `action` (`PreRemove` or `PostRemove`) for the links a delete of `instance` removes.
pub(crate) async fn send_removed(
    tx: &mut Tx,
    instance: &(dyn Any + Send + Sync),
    removed: &[Removed],
    action: M2mAction,
) -> Result<()> {
    for r in removed {
        if r.count == 0 {
            continue;
        }
        (r.link.send)(r.from_a, action, tx, instance, &*r.keys).await?;
    }
    Ok(())
}
