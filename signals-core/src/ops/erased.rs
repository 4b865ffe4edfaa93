//! A model behind function pointers, for the operations' code that is compiled once rather
//! than once per model: the instance is a `dyn Any`, and what the operation needs of its model
//! is a table of the model's functions ([`Erased::of`]).
//!
//! Uses `error`, `meta`, `model`, `signal`, `sql`, `tx` and `value`.

use std::any::{Any, TypeId};

use super::load;
use crate::backend::Backend;
use crate::error::Result;
use crate::meta::ModelMeta;
use crate::model::Model;
use crate::signal::context::{Committed, PostSave, PreSave};
use crate::signal::custom::BoxFuture;
use crate::signal::hooks::{self, Hooks};
use crate::signal::muting;
use crate::sql::Statements;
use crate::tx::{Target, Tx};
use crate::value::Args;

/// An instance behind a type-erased reference.
pub(crate) type AnyModel = dyn Any + Send + Sync;

/// `m` as an `M`, which it is: an [`Erased`] is only ever handed instances of its model.
fn this<M: Model>(m: &AnyModel) -> &M {
    match m.downcast_ref::<M>() {
        Some(m) => m,
        None => unreachable!("an instance of the model of its table"),
    }
}

fn this_mut<M: Model>(m: &mut AnyModel) -> &mut M {
    match m.downcast_mut::<M>() {
        Some(m) => m,
        None => unreachable!("an instance of the model of its table"),
    }
}

/// The functions of one model that a save needs.
#[derive(Clone, Copy)]
pub(crate) struct Erased {
    pub(crate) meta: &'static ModelMeta,
    pub(crate) model: TypeId,
    /// The kinds with receivers its derive wired (`Hooks::__WIRED`).
    pub(crate) wired: u32,
    /// Whether its receivers ask for old values (`Hooks::__OLD_VALUES`).
    pub(crate) old_values: bool,
    pub(crate) statements: fn(Backend) -> &'static Statements,
    pub(crate) has_key: fn(&AnyModel) -> bool,
    /// The key as `{:?}` shows it, for a `NotFound` error.
    pub(crate) key_debug: fn(&AnyModel) -> String,
    /// Binds the key (the instance has one).
    pub(crate) bind_key: fn(&AnyModel, &mut Args) -> Result<()>,
    pub(crate) bind_values: fn(&AnyModel, &mut Args) -> Result<()>,
    pub(crate) bind_field: fn(&AnyModel, usize, &mut Args) -> Result<()>,
    pub(crate) set_generated_key: fn(&mut AnyModel, i64) -> Result<()>,
    pub(crate) key_json: fn(&AnyModel) -> serde_json::Value,
    /// The row the save of this instance replaces, read and locked in its transaction.
    pub(crate) replaced_row: ReplacedRow,
    pub(crate) pre_save:
        for<'a, 's> fn(&'a mut AnyModel, &'a mut PreSave<'s>) -> BoxFuture<'a, Result<()>>,
    pub(crate) post_save:
        for<'a, 's> fn(&'a AnyModel, &'a mut PostSave<'s>) -> BoxFuture<'a, Result<()>>,
    /// Schedules the `on_commit` receivers (`Hooks::__on_commit`).
    pub(crate) on_commit: OnCommit,
}

/// [`Erased::replaced_row`].
type ReplacedRow =
    for<'a> fn(Target<'a>, &'a AnyModel) -> BoxFuture<'a, Result<Option<Box<AnyModel>>>>;

/// [`Erased::on_commit`]: the instance, its transaction, what was committed, the row it
/// replaced (when its receivers asked for old values) and the bits of the fields written.
type OnCommit = fn(&AnyModel, &mut Tx, Committed, Option<Option<&AnyModel>>, u128) -> Result<()>;

impl Erased {
    /// The table of `M`.
    pub(crate) fn of<M: Hooks>() -> Erased {
        Erased {
            meta: &M::META,
            model: TypeId::of::<M>(),
            wired: M::__WIRED,
            old_values: M::__OLD_VALUES,
            statements: M::__statements,
            has_key: |m| this::<M>(m).__key().is_some(),
            key_debug: |m| match this::<M>(m).__key() {
                Some(key) => format!("{key:?}"),
                None => "None".to_owned(),
            },
            bind_key: |m, args| match this::<M>(m).__key() {
                Some(key) => args.bind(key, M::META.columns[M::META.primary_key]),
                None => Err(crate::error::Error::NotSaved {
                    model: M::META.name,
                }),
            },
            bind_values: |m, args| this::<M>(m).__bind_values(args),
            bind_field: |m, i, args| this::<M>(m).__bind_field(i, args),
            set_generated_key: |m, id| this_mut::<M>(m).__set_generated_key(id),
            key_json: |m| muting::key_json(this::<M>(m)),
            replaced_row: replaced_row::<M>,
            pre_save: pre_save::<M>,
            post_save: post_save::<M>,
            on_commit: |m, tx, what, old, written| {
                M::__on_commit(
                    this::<M>(m),
                    tx,
                    what,
                    old.map(|old| old.map(this::<M>)),
                    written,
                )
            },
        }
    }
}

fn replaced_row<'a, M: Hooks>(
    target: Target<'a>,
    m: &'a AnyModel,
) -> BoxFuture<'a, Result<Option<Box<AnyModel>>>> {
    let key = this::<M>(m).__key().cloned();
    Box::pin(async move {
        let Some(key) = key else { return Ok(None) };
        let row = load::replaced_row::<M>(target, key).await?;
        Ok(row.map(|row| Box::new(row) as Box<AnyModel>))
    })
}

fn pre_save<'a, 's, M: Hooks>(
    m: &'a mut AnyModel,
    signal: &'a mut PreSave<'s>,
) -> BoxFuture<'a, Result<()>> {
    hooks::pre_save(this_mut::<M>(m), signal)
}

fn post_save<'a, 's, M: Hooks>(
    m: &'a AnyModel,
    signal: &'a mut PostSave<'s>,
) -> BoxFuture<'a, Result<()>> {
    hooks::post_save(this::<M>(m), signal)
}
