//! Operations: save (`save`), bulk saves (`bulk`), delete (`delete`) and bulk deletes
//! (`bulk_delete`) with their cascade (`cascade`), upserts (`upsert`, `or_create`), loading
//! (`load`), typed queries (`query`, `relation` across relations, `values` for selections and
//! aggregates, `stream`, `raw`) and many-to-many links (`m2m`): the runtime behind the `Model`
//! methods, which the derive calls through `__private`.
//!
//! Uses every layer below it: `error`, `kind`, `meta`, `sql`, `value`, `tx`, `model`, `signal`.

pub(crate) mod bulk;
pub(crate) mod bulk_delete;
pub(crate) mod bulk_write;
pub(crate) mod cascade;
pub(crate) mod delete;
pub(crate) mod erased;
pub(crate) mod load;
pub(crate) mod m2m;
pub(crate) mod or_create;
pub(crate) mod query;
pub(crate) mod raw;
pub(crate) mod relation;
pub(crate) mod save;
pub(crate) mod stream;
pub(crate) mod upsert;
pub(crate) mod values;

use crate::conn::{Running, receivers_running};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Model;
use crate::signal::custom::BoxFuture;
use crate::tx::{Atomic, CommitSent, SavepointFirst, Target, Tx};

/// Which instances had a key before a save that may assign them one.
enum Had {
    One(bool),
    Many(Vec<bool>),
}

/// The keys a save or bulk save assigns to instances that had none, cleared again on every
/// path on which their rows were not written: an error (after rollback), or the operation's
/// future dropped (cancelled) before its COMMIT was sent. No instance then claims a row that
/// does not exist; on SQLite, whose key counter rolls back with the transaction, such a key
/// would soon name another row, and a retried save would overwrite it.
///
/// Kept when the rows may exist: the operation succeeded, its commit's outcome is unknown
/// ([`ErrorKind::CommitOutcomeUnknown`]), or it was cancelled after its COMMIT (or, in a
/// caller's transaction, its savepoint's RELEASE) was sent. The key then tells the caller
/// which row to look up before retrying.
pub(crate) struct AssignedKeys<'r, M: Model> {
    pub(crate) rows: &'r mut [M],
    had: Had,
    /// Set by the operation once its own COMMIT is under way.
    pub(crate) commit: CommitSent,
    /// `Some(keep)` once the operation has finished; `None` while it runs (and when dropped
    /// unfinished).
    decided: Option<bool>,
}

impl<'r, M: Model> AssignedKeys<'r, M> {
    pub(crate) fn one(row: &'r mut M) -> Self {
        let had = Had::One(row.__key().is_some());
        AssignedKeys {
            rows: std::slice::from_mut(row),
            had,
            commit: CommitSent::default(),
            decided: None,
        }
    }

    pub(crate) fn many(rows: &'r mut [M]) -> Self {
        let had = Had::Many(rows.iter().map(|r| r.__key().is_some()).collect());
        AssignedKeys {
            rows,
            had,
            commit: CommitSent::default(),
            decided: None,
        }
    }

    /// The operation ended with `res`: keys stay on success and when the commit's outcome is
    /// unknown, and are cleared now otherwise.
    pub(crate) fn settle<T>(&mut self, res: &Result<T>) {
        let keep = match res {
            Ok(_) => true,
            Err(err) => err.kind() == ErrorKind::CommitOutcomeUnknown,
        };
        self.decided = Some(keep);
        if !keep {
            self.clear();
        }
    }

    fn clear(&mut self) {
        match &self.had {
            Had::One(had) => {
                if !had && let Some(row) = self.rows.first_mut() {
                    row.__clear_key();
                }
            }
            Had::Many(had) => {
                for (row, had) in self.rows.iter_mut().zip(had) {
                    if !had {
                        row.__clear_key();
                    }
                }
            }
        }
    }
}

impl<M: Model> Drop for AssignedKeys<'_, M> {
    fn drop(&mut self) {
        // Dropped unfinished: the operation was cancelled. Before its COMMIT was sent, its
        // transaction (or savepoint) is rolled back; after, it may have committed.
        if self.decided.is_none() && !self.commit.get() {
            self.clear();
        }
    }
}

/// The instances a delete removes: their keys are cleared when it succeeds, and when it is
/// cancelled after its COMMIT (or, in a caller's transaction, its savepoint's RELEASE) was
/// sent, as its rows are then gone (the transaction's next use completes a cancelled
/// RELEASE). A delete that fails, or is cancelled before, keeps them: its rows are there.
pub(crate) struct DeletingKeys<'r, M: Model> {
    pub(crate) rows: &'r mut [M],
    /// Set by the operation once its COMMIT or RELEASE is under way.
    pub(crate) commit: CommitSent,
    decided: bool,
}

impl<'r, M: Model> DeletingKeys<'r, M> {
    pub(crate) fn new(rows: &'r mut [M]) -> Self {
        DeletingKeys {
            rows,
            commit: CommitSent::default(),
            decided: false,
        }
    }

    /// The delete ended with `res`: keys are cleared on success.
    pub(crate) fn settle<T>(&mut self, res: &Result<T>) {
        self.decided = true;
        if res.is_ok() {
            self.clear();
        }
    }

    fn clear(&mut self) {
        for row in self.rows.iter_mut() {
            row.__clear_key();
        }
    }
}

impl<M: Model> Drop for DeletingKeys<'_, M> {
    fn drop(&mut self) {
        if !self.decided && self.commit.get() {
            self.clear();
        }
    }
}

/// The future `make` returns, boxed, and made in this function's frame rather than its
/// caller's: in a debug build an `async fn`'s poll frame keeps room for every future it
/// creates, and the frames of the operations around a receiver stay on the stack while its
/// nested operations run (RELIABILITY 25.9).
pub(crate) fn boxed<'a, T, F>(make: impl FnOnce() -> F) -> BoxFuture<'a, T>
where
    F: Future<Output = T> + Send + 'a,
{
    Box::pin(make())
}

/// Runs `f` atomically: in a transaction of its own on a pool, in a savepoint inside a caller's
/// transaction. Everything `f` did is rolled back if it fails. Also returns the errors of the
/// after-commit work when the transaction was its own (inside a caller's, that work runs at
/// the caller's commit).
///
/// While `f` runs, the task is marked as running receivers on the pool: a receiver that uses
/// the `Db` instead of `signal.tx()` gets [`Error::ReceiverUsedPool`] at once.
///
/// `commit`, when given, is marked as the operation's work is made to stay: just before its
/// own COMMIT, or inside a caller's transaction as its savepoint's RELEASE is sent (the
/// transaction's next use completes a release that was cancelled midway).
fn atomically<'a, T: 'a>(
    target: Target<'a>,
    model: &'static str,
    operation: &'static str,
    commit: Option<&'a CommitSent>,
    f: impl AsyncFnOnce(&mut Tx) -> Result<T> + 'a,
) -> impl Future<Output = Result<(T, Vec<Error>)>> + 'a {
    // Boxed, and made here, not in the frame of the operation awaiting it: that frame stays on
    // the stack while receivers' nested operations run (see `save_signalled_boxed`). Opening
    // and closing are compiled once (`Atomic`); only the work is the operation's own.
    Box::pin(async move {
        let mut atomic = Atomic::open(target, model).await?;
        let mark = Running {
            pool: atomic.pool(),
            model,
            operation,
        };
        let res = {
            let (tx, sp) = atomic.parts();
            // Cancelled here, the savepoint is marked abandoned before the operation inside it
            // is dropped, so that an operation that had sent its own RELEASE knows its work
            // goes with this savepoint (`CommitSent::get`).
            let mut inside = SavepointFirst {
                sp: sp.take(),
                fut: Box::pin(receivers_running(mark, f(tx))),
            };
            let res = (&mut inside).await;
            *sp = inside.sp.take();
            res
        };
        match res {
            Ok(value) => Ok((value, atomic.close(true, commit).await?)),
            Err(err) => {
                // The work's error is the one to report, even if the rollback fails too.
                let _ = atomic.close(false, None).await;
                Err(err)
            }
        }
    })
}
