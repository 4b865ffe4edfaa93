//! What receivers are told: the contexts of the four model signals ([`PreSave`],
//! [`PostSave`], [`PreDelete`], [`PostDelete`]), each with the open transaction, and what
//! committed for `#[on_commit]` receivers ([`Committed`]).
//!
//! Uses `kind`, `tx`, and `muting` (what `record_signals` keeps).

use std::future::Future;

use super::muting::Fired;
use crate::kind::SignalKind;
use crate::tx::Tx;

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
    ) -> Fired {
        Fired {
            model,
            signal,
            created,
            raw: self.raw,
            update_fields: self.update_fields.map(<[_]>::to_vec),
        }
    }
}

/// A delete signal, as `record_signals` keeps it.
pub(crate) fn fired_delete(model: &'static str, signal: SignalKind) -> Fired {
    Fired {
        model,
        signal,
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

macro_rules! common {
    () => {
        /// The open transaction the save or delete runs in. Save or delete other models through
        /// it (`other.save(signal.tx())`) so that they commit or roll back together with this
        /// one.
        pub fn tx(&mut self) -> &mut Tx {
            self.tx
        }

        /// Schedules `work` to run after the outermost transaction commits; it is dropped if
        /// this save or delete, or anything enclosing it, rolls back. See [`Tx::on_commit`].
        pub fn on_commit<F>(&mut self, work: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            self.tx.on_commit(work)
        }
    };
}

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
}

impl<'t> PreSave<'t> {
    /// The same context for a shorter while (for a runtime receiver).
    pub(crate) fn reborrow(&mut self) -> PreSave<'_> {
        PreSave {
            tx: &mut *self.tx,
            adding: self.adding,
            flags: self.flags,
        }
    }

    pub(crate) fn new(tx: &'t mut Tx, adding: bool, flags: SaveFlags<'t>) -> Self {
        PreSave { tx, adding, flags }
    }

    save_flags!();

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
}

impl<'t> PostSave<'t> {
    /// The same context for a shorter while (for a runtime receiver).
    pub(crate) fn reborrow(&mut self) -> PostSave<'_> {
        PostSave {
            tx: &mut *self.tx,
            created: self.created,
            flags: self.flags,
        }
    }

    pub(crate) fn new(tx: &'t mut Tx, created: bool, flags: SaveFlags<'t>) -> Self {
        PostSave { tx, created, flags }
    }

    save_flags!();

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
