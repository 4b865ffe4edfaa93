//! What receivers are told: the contexts of the four model signals ([`PreSave`],
//! [`PostSave`], [`PreDelete`], [`PostDelete`]), each with the open transaction, and what
//! committed for `#[on_commit]` receivers ([`Committed`]).
//!
//! Uses `kind`, `meta` (columns), `model`, `value`, `tx`, and `muting` (what `record_signals`
//! keeps).

use std::any::Any;
use std::future::Future;

use super::muting::Fired;
use crate::kind::SignalKind;
use crate::meta::Column;
use crate::model::Model;
use crate::tx::Tx;
use crate::value::FieldType;

/// The row a save replaces, as its receivers see it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Old<'t> {
    /// No receiver of the model asked for old values, so the row was not read.
    NotRead,
    /// The save creates the row.
    Created,
    /// The row as the database held it before the save.
    Row(&'t (dyn Any + Send + Sync)),
}

impl<'t> Old<'t> {
    fn get<M: Model>(self) -> Option<&'t M> {
        match self {
            Old::Created => None,
            Old::Row(row) => Some(row.downcast_ref::<M>().unwrap_or_else(|| {
                panic!(
                    "`old::<{}>()` asked in a receiver of another model",
                    M::META.name
                )
            })),
            Old::NotRead => panic!(
                "the old values of `{0}` were not read: no receiver of `{0}` asks for them; add \
                 `changed(..)` to a receiver, or `#[model(old_values)]` to `{0}`",
                M::META.name
            ),
        }
    }
}

/// `field` is among the saved fields (`update_fields`, or every field).
fn saved<M: Model>(update_fields: Option<&[&'static str]>, index: usize) -> bool {
    update_fields.is_none_or(|fields| fields.contains(&M::META.fields[index]))
}

/// Old values, for `PreSave` and `PostSave`.
macro_rules! old_values {
    () => {
        /// The row as the database held it before this save, read in the save's own
        /// transaction (with a row lock where the backend has one); `None` when the save
        /// creates the row. Two saves of one row in one transaction each see the row as the
        /// one before left it.
        ///
        /// # Panics
        ///
        /// When no receiver of the model asks for old values (`changed(..)` on one of its
        /// receivers, or `#[model(old_values)]` on the model): the row is only read for models
        /// that ask, so that the others pay nothing. Also when `M` is not the saved model.
        pub fn old<M: Model>(&self) -> Option<&M> {
            self.old.get::<M>()
        }

        /// The value `column` held before this save; `None` when the save creates the row.
        /// Panics as [`old`](Self::old) does.
        pub fn was<M: Model, T: FieldType, R>(&self, column: Column<M, T, R>) -> Option<&T> {
            self.old::<M>().map(|old| {
                old.__field(column.index())
                    .downcast_ref::<T>()
                    .unwrap_or_else(|| unreachable!("a column's type is its field's"))
            })
        }

        #[doc(hidden)]
        pub fn __wants_old(&self) -> bool {
            !matches!(self.old, Old::NotRead)
        }

        /// The replaced row when it was read, erased.
        pub(crate) fn __old_any(&self) -> Option<&'t (dyn std::any::Any + Send + Sync)> {
            match self.old {
                Old::Row(row) => Some(row),
                _ => None,
            }
        }

        pub(crate) fn __update_fields(&self) -> Option<&'t [&'static str]> {
            self.flags.update_fields
        }
    };
}

/// What committed, as an `#[on_commit]` receiver is told.
///
/// ```
/// use signals_core::{Committed, Model, Result};
///
/// #[derive(Clone, Model)]
/// #[on_commit(send_welcome_email)]
/// struct User { id: Option<i64>, email: String }
///
/// // Runs once the user's INSERT is committed; never after a rollback. It gets its own copy
/// // of the instance: the transaction is gone by then.
/// async fn send_welcome_email(user: User, what: Committed) -> Result<()> {
///     if what == (Committed::Saved { created: true }) {
///         println!("welcome, {}", user.email);
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Committed {
    /// A save committed; `created` tells whether it INSERTed.
    Saved {
        /// Whether the save INSERTed a row.
        created: bool,
    },
    /// A delete committed (the instance's row, or a cascade reached it).
    Deleted,
}

/// How a save was asked for, as the save receivers see it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SaveFlags<'a> {
    pub(crate) update_fields: Option<&'a [&'static str]>,
    pub(crate) raw: bool,
}

impl SaveFlags<'_> {
    pub(crate) fn fired(
        &self,
        model: &'static str,
        signal: SignalKind,
        created: Option<bool>,
        key: serde_json::Value,
    ) -> Fired {
        Fired {
            model,
            signal,
            key,
            created,
            raw: self.raw,
            update_fields: self.update_fields.map(<[_]>::to_vec),
            receivers: Vec::new(),
        }
    }
}

/// A delete signal, as `record_signals` keeps it.
pub(crate) fn fired_delete(
    model: &'static str,
    signal: SignalKind,
    key: serde_json::Value,
) -> Fired {
    Fired {
        model,
        signal,
        key,
        receivers: Vec::new(),
        created: None,
        raw: false,
        update_fields: None,
    }
}

macro_rules! save_flags {
    () => {
        /// The fields being saved when the save was asked for with
        /// [`SaveOptions::update_fields`](crate::SaveOptions::update_fields), by name in
        /// declaration order; `None` for a save of every field.
        pub fn update_fields(&self) -> Option<&[&'static str]> {
            self.flags.update_fields
        }

        /// `true` for a raw save ([`SaveOptions::raw`](crate::SaveOptions::raw)): the row is
        /// written as it is, as when loading fixtures; receivers should not touch other rows.
        pub fn raw(&self) -> bool {
            self.flags.raw
        }
    };
}

/// `tx()` and `on_commit()` of a context with a `tx` field; `$what` names what it runs in.
macro_rules! common {
    () => {
        common!("save or delete");
    };
    ($what:literal) => {
        #[doc = concat!("The open transaction the ", $what, " runs in. Save or delete other \
            models through it (`other.save(signal.tx())`) so that they commit or roll back \
            together with this ", $what, ".")]
        pub fn tx(&mut self) -> &mut Tx {
            self.tx
        }

        #[doc = concat!("Schedules `work` to run after the outermost transaction commits; it \
            is dropped if this ", $what, ", or anything enclosing it, rolls back. See \
            [`Tx::on_commit`].")]
        pub fn on_commit<F>(&mut self, work: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            self.tx.on_commit(work)
        }

        #[doc = concat!("Schedules `work` to run once this ", $what, " is rolled back (Rails' \
            `after_rollback`): when its savepoint or the transaction around it rolls back, \
            fails, or is cancelled; never after a commit. For compensating work outside the \
            database. See [`Tx::on_rollback`].")]
        pub fn on_rollback<F>(&mut self, work: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            self.tx.on_rollback(work)
        }
    };
}
pub(super) use common;

/// What a `pre_save` receiver gets besides `&mut` the instance.
///
/// ```
/// use signals_core::{Model, PreSave, Result};
///
/// #[derive(Model)]
/// #[pre_save(normalize)]
/// struct User { id: Option<i64>, email: String }
///
/// async fn normalize(user: &mut User, signal: &mut PreSave<'_>) -> Result<()> {
///     if signal.adding() {
///         user.email = user.email.trim().to_lowercase();
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct PreSave<'t> {
    tx: &'t mut Tx,
    adding: bool,
    flags: SaveFlags<'t>,
    old: Old<'t>,
}

impl<'t> PreSave<'t> {
    /// The same context for a shorter while (for a runtime receiver).
    pub(crate) fn reborrow(&mut self) -> PreSave<'_> {
        PreSave {
            tx: &mut *self.tx,
            adding: self.adding,
            flags: self.flags,
            old: self.old,
        }
    }

    pub(crate) fn new(tx: &'t mut Tx, adding: bool, flags: SaveFlags<'t>, old: Old<'t>) -> Self {
        PreSave {
            tx,
            adding,
            flags,
            old,
        }
    }

    /// The transaction, `adding` and the flags, borrowed apart (for a batch of one).
    pub(super) fn parts(&mut self) -> (&mut Tx, &bool, SaveFlags<'t>) {
        (&mut *self.tx, &self.adding, self.flags)
    }

    save_flags!();
    old_values!();

    /// Whether `column` of `instance` (the instance being saved, as it is now) differs from
    /// what the database held, among the fields being saved; `true` for every field when the
    /// save creates the row. Panics as [`old`](Self::old) does.
    ///
    /// ```
    /// use signals_core::{Model, PreSave, Result};
    ///
    /// #[derive(Model)]
    /// #[pre_save(stamp, changed(title))]
    /// struct Post { id: Option<i64>, title: String, edits: i32 }
    ///
    /// async fn stamp(post: &mut Post, signal: &mut PreSave<'_>) -> Result<()> {
    ///     // Runs only when the title changed (or the post is new).
    ///     if signal.changed(post, Post::TITLE) && !signal.adding() {
    ///         post.edits += 1;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn changed<M: Model, T: FieldType + PartialEq, R>(
        &self,
        instance: &M,
        column: Column<M, T, R>,
    ) -> bool {
        let Some(old) = self.old::<M>() else {
            return true;
        };
        let i = column.index();
        saved::<M>(self.flags.update_fields, i)
            && old.__field(i).downcast_ref::<T>() != instance.__field(i).downcast_ref::<T>()
            && old.__json(i) != instance.__json(i)
    }

    /// `true` when the instance has no primary key yet, so the save will INSERT (Django's
    /// `instance._state.adding`). An instance with a key set may still be inserted if no row
    /// has that key; [`PostSave::created`] tells for sure.
    pub fn adding(&self) -> bool {
        self.adding
    }

    common!();
}

/// What a `post_save` receiver gets besides `&` the instance.
///
/// ```
/// use signals_core::{Model, PostSave, Result};
///
/// #[derive(Model)]
/// #[post_save(welcome)]
/// struct User { id: Option<i64>, email: String }
///
/// async fn welcome(user: &User, signal: &mut PostSave<'_>) -> Result<()> {
///     if signal.created() {
///         let email = user.email.clone();
///         signal.on_commit(async move { println!("send a welcome mail to {email}") });
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct PostSave<'t> {
    tx: &'t mut Tx,
    created: bool,
    flags: SaveFlags<'t>,
    old: Old<'t>,
    /// The saved instance, for [`changed`](PostSave::changed).
    this: &'t (dyn Any + Send + Sync),
}

impl<'t> PostSave<'t> {
    /// The same context for a shorter while (for a runtime receiver).
    pub(crate) fn reborrow(&mut self) -> PostSave<'_> {
        PostSave {
            tx: &mut *self.tx,
            created: self.created,
            flags: self.flags,
            old: self.old,
            this: self.this,
        }
    }

    pub(crate) fn new(
        tx: &'t mut Tx,
        created: bool,
        flags: SaveFlags<'t>,
        old: Old<'t>,
        this: &'t (dyn Any + Send + Sync),
    ) -> Self {
        PostSave {
            tx,
            created,
            flags,
            old,
            this,
        }
    }

    /// The transaction, `created` and the flags, borrowed apart (for a batch of one).
    pub(super) fn parts(&mut self) -> (&mut Tx, &bool, SaveFlags<'t>) {
        (&mut *self.tx, &self.created, self.flags)
    }

    save_flags!();
    old_values!();

    /// Whether the save changed `column`: the value saved differs from what the database held,
    /// among the fields saved; `true` for every field when the save created the row. Panics as
    /// [`old`](Self::old) does.
    ///
    /// ```
    /// use signals_core::{FieldType, Model, PostSave, Result};
    ///
    /// #[derive(Debug, Clone, Copy, PartialEq, FieldType)]
    /// enum Status { Draft, Published }
    ///
    /// #[derive(Model)]
    /// #[post_save(announce, changed(status))]
    /// struct Post { id: Option<i64>, status: Status }
    ///
    /// async fn announce(post: &Post, signal: &mut PostSave<'_>) -> Result<()> {
    ///     // Runs only when `status` changed; `was` tells from what.
    ///     if signal.was(Post::STATUS) == Some(&Status::Draft) && post.status == Status::Published {
    ///         assert!(signal.changed(Post::STATUS));
    ///         println!("published!");
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn changed<M: Model, T: FieldType + PartialEq, R>(&self, column: Column<M, T, R>) -> bool {
        let Some(old) = self.old::<M>() else {
            return true;
        };
        let this = self
            .this
            .downcast_ref::<M>()
            .unwrap_or_else(|| panic!("`changed` asked in a receiver of another model"));
        let i = column.index();
        saved::<M>(self.flags.update_fields, i)
            && old.__field(i).downcast_ref::<T>() != this.__field(i).downcast_ref::<T>()
            && old.__json(i) != this.__json(i)
    }

    /// `true` when the save INSERTed a row, `false` when it UPDATEd one.
    pub fn created(&self) -> bool {
        self.created
    }

    common!();
}

/// What a `pre_delete` receiver gets besides `&` the instance.
///
/// ```
/// use signals_core::{BoxError, Model, PreDelete, Result};
///
/// #[derive(Model)]
/// #[pre_delete(protect_admin)]
/// struct User { id: Option<i64>, is_admin: bool }
///
/// async fn protect_admin(user: &User, _: &mut PreDelete<'_>) -> Result<()> {
///     if user.is_admin {
///         // The error rolls back the whole delete, cascade included.
///         return Err(BoxError::from("admins cannot be deleted").into());
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct PreDelete<'t> {
    tx: &'t mut Tx,
    origin: &'static str,
}

impl<'t> PreDelete<'t> {
    /// The same context for a shorter while (for a runtime receiver).
    pub(crate) fn reborrow(&mut self) -> PreDelete<'_> {
        PreDelete {
            tx: &mut *self.tx,
            origin: self.origin,
        }
    }

    pub(crate) fn new(tx: &'t mut Tx, origin: &'static str) -> Self {
        PreDelete { tx, origin }
    }

    /// The model whose `delete` started this deletion: the instance's own model, or the
    /// parent whose cascade reached it (Django's `origin`).
    pub fn origin(&self) -> &'static str {
        self.origin
    }

    common!();
}

/// What a `post_delete` receiver gets besides `&` the instance (whose row is gone by now).
///
/// ```
/// use signals_core::{Model, PostDelete, Result};
///
/// #[derive(Model)]
/// #[post_delete(remove_photo)]
/// struct Profile { id: Option<i64>, photo: String }
///
/// async fn remove_photo(profile: &Profile, signal: &mut PostDelete<'_>) -> Result<()> {
///     let path = profile.photo.clone();
///     // Only once the delete is committed: a rolled-back delete keeps the file.
///     signal.on_commit(async move { let _ = std::fs::remove_file(path); });
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct PostDelete<'t> {
    tx: &'t mut Tx,
    origin: &'static str,
}

impl<'t> PostDelete<'t> {
    /// The same context for a shorter while (for a runtime receiver).
    pub(crate) fn reborrow(&mut self) -> PostDelete<'_> {
        PostDelete {
            tx: &mut *self.tx,
            origin: self.origin,
        }
    }

    pub(crate) fn new(tx: &'t mut Tx, origin: &'static str) -> Self {
        PostDelete { tx, origin }
    }

    /// The model whose `delete` started this deletion; see [`PreDelete::origin`].
    pub fn origin(&self) -> &'static str {
        self.origin
    }

    common!();
}
