//! What batched receivers are told: one context per chunk of a bulk write
//! ([`PreSaveBatch`], [`PostSaveBatch`], [`PreDeleteBatch`], [`PostDeleteBatch`]), and the
//! conversions between a batch and its rows: a single save sends its batched receivers a batch
//! of one, a bulk write sends its per-row receivers one context per row.
//!
//! Uses `tx`, and of `signal` the per-row contexts (`context`).

use std::future::Future;

use super::context::{Old, PostDelete, PostSave, PreDelete, PreSave, SaveFlags, common};
use crate::tx::Tx;

/// `raw()` and `update_fields()` of a save batch.
macro_rules! batch_flags {
    () => {
        /// The fields being saved, by name in declaration order, for a bulk update of some
        /// fields ([`Model::bulk_update`](crate::Model::bulk_update), or a single save with
        /// [`SaveOptions::update_fields`](crate::SaveOptions::update_fields)); `None` when
        /// every field is saved.
        pub fn update_fields(&self) -> Option<&[&'static str]> {
            self.flags.update_fields
        }

        /// `true` for a raw save ([`SaveOptions::raw`](crate::SaveOptions::raw)).
        pub fn raw(&self) -> bool {
            self.flags.raw
        }

        /// How many rows the batch holds.
        pub fn len(&self) -> usize {
            self.rows.len()
        }

        /// Whether the batch holds no row (never, for a batch a receiver is sent).
        pub fn is_empty(&self) -> bool {
            self.rows.is_empty()
        }
    };
}

/// A save batch's struct, with its docs, `new` and `all_created`.
macro_rules! save_batch {
    ($(#[$attr:meta])* $name:ident, $rows:literal) => {
        $(#[$attr])*
        #[derive(Debug)]
        pub struct $name<'t> {
            tx: &'t mut Tx,
            #[doc = $rows]
            rows: &'t [bool],
            flags: SaveFlags<'t>,
            /// Receivers want old values, and every row is new: per-row contexts say
            /// "created".
            created_rows: bool,
        }

        impl<'t> $name<'t> {
            pub(crate) fn new(tx: &'t mut Tx, rows: &'t [bool], flags: SaveFlags<'t>) -> Self {
                $name {
                    tx,
                    rows,
                    flags,
                    created_rows: false,
                }
            }

            /// Every row is new and receivers compare old values: theirs is "none, created".
            pub(crate) fn all_created(mut self) -> Self {
                self.created_rows = true;
                self
            }

            /// What per-row receivers are told of the row a row replaces.
            fn old(&self) -> Old<'t> {
                if self.created_rows {
                    Old::Created
                } else {
                    Old::NotRead
                }
            }
        }
    };
}

save_batch! {
    /// What a batched `pre_save` receiver (`#[pre_save(my_receiver, batch)]`) gets besides
    /// `&mut` the rows of one chunk, before they are written.
    ///
    /// A bulk save ([`Model::bulk_save`](crate::Model::bulk_save)) sends one batch per chunk; a
    /// single [`save`](crate::Model::save) sends a batch of one, so one receiver serves both.
    ///
    /// ```
    /// use signals_core::{Model, PreSaveBatch, Result};
    ///
    /// #[derive(Model)]
    /// #[pre_save(normalize, batch)]
    /// struct User { id: Option<i64>, email: String }
    ///
    /// async fn normalize(users: &mut [User], signal: &mut PreSaveBatch<'_>) -> Result<()> {
    ///     for (user, adding) in users.iter_mut().zip(signal.adding()) {
    ///         if *adding {
    ///             user.email = user.email.trim().to_lowercase();
    ///         }
    ///     }
    ///     Ok(())
    /// }
    /// ```
    PreSaveBatch,
    "Per row: whether it has no key yet."
}

impl<'t> PreSaveBatch<'t> {
    /// Row `i`'s own context, for the per-row receivers of a bulk save.
    #[doc(hidden)]
    pub fn __row(&mut self, i: usize) -> PreSave<'_> {
        super::muting::row_starts(i);
        let old = self.old();
        PreSave::new(&mut *self.tx, self.rows[i], self.flags, old)
    }

    /// Per row, in order: `true` when the row has no primary key yet, so it will be INSERTed
    /// (see [`PreSave::adding`]).
    pub fn adding(&self) -> &[bool] {
        self.rows
    }

    batch_flags!();
    common!("bulk write");
}

save_batch! {
    /// What a batched `post_save` receiver (`#[post_save(my_receiver, batch)]`) gets besides `&`
    /// the rows of one chunk, once they are written (their keys set).
    ///
    /// ```
    /// use signals_core::{Model, PostSaveBatch, Result};
    ///
    /// #[derive(Model)]
    /// #[post_save(create_profiles, batch)]
    /// struct User { id: Option<i64>, username: String }
    ///
    /// #[derive(Model)]
    /// struct Profile { id: Option<i64>, user_id: i64 }
    ///
    /// async fn create_profiles(users: &[User], signal: &mut PostSaveBatch<'_>) -> Result<()> {
    ///     let mut profiles: Vec<Profile> = users
    ///         .iter()
    ///         .zip(signal.created())
    ///         .filter(|(_, created)| **created)
    ///         .filter_map(|(user, _)| Some(Profile { id: None, user_id: user.id? }))
    ///         .collect();
    ///     Profile::bulk_save(signal.tx(), &mut profiles).await?;
    ///     Ok(())
    /// }
    /// ```
    PostSaveBatch,
    "Per row: whether the save INSERTed it."
}

impl<'t> PostSaveBatch<'t> {
    /// Row `i`'s own context, for the per-row receivers of a bulk save.
    #[doc(hidden)]
    pub fn __row<'s>(
        &'s mut self,
        i: usize,
        this: &'s (dyn std::any::Any + Send + Sync),
    ) -> PostSave<'s> {
        super::muting::row_starts(i);
        let old = self.old();
        PostSave::new(&mut *self.tx, self.rows[i], self.flags, old, this)
    }

    /// Per row, in order: `true` when the save INSERTed it, `false` when it UPDATEd it (see
    /// [`PostSave::created`]).
    pub fn created(&self) -> &[bool] {
        self.rows
    }

    batch_flags!();
    common!("bulk write");
}

/// `origin()` and the row count of a delete batch.
macro_rules! delete_batch {
    ($name:ident, $row:ident, $signal:literal) => {
        #[doc = concat!("What a batched `", $signal, "` receiver (`#[", $signal, "(my_receiver, \
            batch)]`) gets besides `&` the rows of one group: those a bulk delete \
            (`Model::bulk_delete`, `Query::delete`) or its cascade reaches, at one level. A \
            single delete sends a batch of one.")]
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
        #[doc = concat!("use signals_core::{Db, Model, ", stringify!($name), ", Result};")]
        ///
        /// #[derive(Model)]
        #[doc = concat!("#[", $signal, "(count, batch)]")]
        /// struct Tag { id: Option<i64> }
        ///
        #[doc = concat!("async fn count(tags: &[Tag], signal: &mut ", stringify!($name), "<'_>) -> Result<()> {")]
        ///     assert_eq!(tags.len(), signal.len());
        ///     println!("{} tags go, deleted from {}", tags.len(), signal.origin());
        ///     Ok(())
        /// }
        ///
        /// let db = Db::connect("sqlite::memory:").await?;
        /// db.create_tables::<Tag>().await?;
        /// let mut tags = vec![Tag { id: None }, Tag { id: None }];
        /// Tag::bulk_save(&db, &mut tags).await?;
        /// Tag::bulk_delete(&db, &mut tags).await?; // one batch of two
        /// # Ok(()) }
        /// ```
        #[derive(Debug)]
        pub struct $name<'t> {
            tx: &'t mut Tx,
            origin: &'static str,
            len: usize,
        }

        impl<'t> $name<'t> {
            pub(crate) fn new(tx: &'t mut Tx, origin: &'static str, len: usize) -> Self {
                $name { tx, origin, len }
            }

            /// Row `i`'s own context (every row of a batch shares what it holds).
            #[doc(hidden)]
            pub fn __row(&mut self, i: usize) -> $row<'_> {
                super::muting::row_starts(i);
                $row::new(&mut *self.tx, self.origin)
            }

            /// The model whose delete started this deletion; see [`PreDelete::origin`].
            pub fn origin(&self) -> &'static str {
                self.origin
            }

            /// How many rows the batch holds.
            pub fn len(&self) -> usize {
                self.len
            }

            /// Whether the batch holds no row (never, for a batch a receiver is sent).
            pub fn is_empty(&self) -> bool {
                self.len == 0
            }

            common!("bulk write");
        }
    };
}
delete_batch!(PreDeleteBatch, PreDelete, "pre_delete");
delete_batch!(PostDeleteBatch, PostDelete, "post_delete");

impl PreSave<'_> {
    /// This save as a batch of one, for batched receivers.
    #[doc(hidden)]
    pub fn __as_batch(&mut self) -> PreSaveBatch<'_> {
        let (tx, adding, flags) = self.parts();
        PreSaveBatch::new(tx, std::slice::from_ref(adding), flags)
    }
}

impl PostSave<'_> {
    /// This save as a batch of one, for batched receivers.
    #[doc(hidden)]
    pub fn __as_batch(&mut self) -> PostSaveBatch<'_> {
        let (tx, created, flags) = self.parts();
        PostSaveBatch::new(tx, std::slice::from_ref(created), flags)
    }
}

impl PreDelete<'_> {
    /// This delete as a batch of one, for batched receivers.
    #[doc(hidden)]
    pub fn __as_batch(&mut self) -> PreDeleteBatch<'_> {
        let origin = self.origin();
        PreDeleteBatch::new(self.tx(), origin, 1)
    }
}

impl PostDelete<'_> {
    /// This delete as a batch of one, for batched receivers.
    #[doc(hidden)]
    pub fn __as_batch(&mut self) -> PostDeleteBatch<'_> {
        let origin = self.origin();
        PostDeleteBatch::new(self.tx(), origin, 1)
    }
}
