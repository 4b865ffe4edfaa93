//! Savepoints of the crate's own (`signals_sp_<level>`), and how a transaction is settled on
//! its next use after an operation on it was cancelled midway.
//!
//! Uses `error`, `backend` and `conn`; the scope stack of `tx`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{CommitSent, Target, Tx};
use crate::backend::Backend;
use crate::conn::Busy;
use crate::error::{Error, Result};

/// No savepoint is marked abandoned.
pub(super) const NONE_ABANDONED: u32 = u32::MAX;

/// An open savepoint; dropping it without `Tx::leave` marks it abandoned.
#[doc(hidden)]
#[derive(Debug)]
pub struct Savepoint {
    level: u32,
    abandoned: Arc<AtomicU32>,
    armed: bool,
}

impl Drop for Savepoint {
    fn drop(&mut self) {
        if self.armed {
            self.abandoned.fetch_min(self.level, Ordering::SeqCst);
        }
    }
}

/// A savepoint statement whose operation was cancelled while it ran: whether it took effect is
/// unknown until the transaction's next use settles it (see [`Tx::repair`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum InDoubt {
    /// `SAVEPOINT`: nothing ran inside it.
    Begin,
    /// `RELEASE SAVEPOINT` of an operation whose statements all succeeded.
    Release(u32),
    /// `ROLLBACK TO SAVEPOINT`: the operation, or one cancelled inside it, is being undone.
    Rollback(u32),
}

fn savepoint_name(level: u32) -> String {
    format!("signals_sp_{level}")
}

/// An operation running in a savepoint: dropped unfinished (cancelled), the savepoint's guard
/// goes first (fields drop in declaration order), then the operation.
pub(crate) struct SavepointFirst<F: ?Sized> {
    pub(crate) sp: Option<Savepoint>,
    pub(crate) fut: std::pin::Pin<Box<F>>,
}

/// The transaction an operation's work runs on: one of its own on a pool, or the caller's.
// One per operation, inside its boxed future: boxing the `Tx` would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Held<'a> {
    Own(Tx, Busy),
    Callers(&'a mut Tx),
}

/// Where an operation runs atomically: a transaction of its own on a pool, or a savepoint
/// inside the caller's transaction. Opened and closed by code compiled once for every model;
/// only the work in between is the operation's own (`ops::atomically`).
pub(crate) struct Atomic<'a> {
    held: Held<'a>,
    /// The savepoint inside a caller's transaction.
    sp: Option<Savepoint>,
    pool: u64,
}

/// A boxed future of the transaction layer.
type Boxed<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<'a> Atomic<'a> {
    /// Begins a transaction on a pool (the pool counts the operation as running receivers
    /// until it is closed), or enters a savepoint of the caller's, named for `model` in a
    /// depth-limit error.
    pub(crate) fn open(target: Target<'a>, model: &'static str) -> Boxed<'a, Result<Atomic<'a>>> {
        Box::pin(async move {
            match target {
                Target::Db(db) => {
                    let busy = Busy::new(db);
                    let tx = db.begin().await?;
                    Ok(Atomic {
                        held: Held::Own(tx, busy),
                        sp: None,
                        pool: db.id,
                    })
                }
                Target::Tx(tx) => {
                    let sp = tx.enter(model).await?;
                    Ok(Atomic {
                        pool: tx.pool,
                        held: Held::Callers(tx),
                        sp: Some(sp),
                    })
                }
            }
        })
    }

    /// Which pool the work runs on.
    pub(crate) fn pool(&self) -> u64 {
        self.pool
    }

    /// The transaction to run the work on, and the savepoint's guard, which the work's
    /// [`SavepointFirst`] holds while it runs and gives back.
    pub(crate) fn parts(&mut self) -> (&mut Tx, &mut Option<Savepoint>) {
        let tx = match &mut self.held {
            Held::Own(tx, _) => tx,
            Held::Callers(tx) => &mut **tx,
        };
        (tx, &mut self.sp)
    }

    /// Makes the work stay when `ok` (COMMIT, or the savepoint's RELEASE, marking `commit` as
    /// it is sent), and returns the errors of the after-commit work of a transaction of its own;
    /// otherwise rolls it back, ignoring a failed rollback (the work's error is the one to
    /// report: a transaction is then discarded by the pool, a savepoint stays marked and the
    /// transaction's next use retries it).
    pub(crate) fn close(
        self,
        ok: bool,
        commit: Option<&'a CommitSent>,
    ) -> Boxed<'a, Result<Vec<Error>>> {
        Box::pin(async move {
            let Atomic { held, sp, .. } = self;
            match held {
                Held::Own(tx, _busy) if ok => tx.commit_marking(commit).await,
                Held::Own(tx, _busy) => {
                    let _ = tx.rollback().await;
                    Ok(Vec::new())
                }
                Held::Callers(tx) => {
                    let Some(sp) = sp else {
                        // Only a cancelled operation loses its guard, and it is not closed.
                        return Err(Error::Transaction("savepoint already left".into()));
                    };
                    if ok {
                        tx.leave_marking(sp, true, commit).await?;
                    } else {
                        let _ = tx.leave(sp, false).await;
                    }
                    Ok(Vec::new())
                }
            }
        })
    }
}

impl<F: Future + ?Sized> Future for SavepointFirst<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// The error every backend gives for a savepoint that does not exist.
fn no_such_savepoint(err: &Error) -> bool {
    let Error::Database(sqlx::Error::Database(e)) = err else {
        return false;
    };
    // PostgreSQL's SQLSTATE 3B001; MySQL's error 1305; SQLite's message.
    e.code().as_deref() == Some("3B001")
        || e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|e| e.number() == 1305)
        || e.message().starts_with("no such savepoint")
}

impl Tx {
    /// Runs `f` in a savepoint of this transaction (Django's nested `atomic()`): when it
    /// returns `Err`, everything it did — rows, and work scheduled with
    /// [`on_commit`](Self::on_commit) — is rolled back, and the transaction stays usable.
    ///
    /// Saves and deletes of models with receivers already run in a savepoint. A model without
    /// receivers saves with a single statement and no savepoint; on PostgreSQL a statement
    /// that fails aborts the whole transaction, so wrap such saves in `savepoint` where you
    /// mean to carry on after an error (a duplicate key you then look up, say).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, ErrorKind, Model, Tx};
    ///
    /// #[derive(Model)]
    /// struct Tag { id: Option<i64>, name: String }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)").await?;
    ///
    /// let mut tx = db.begin().await?;
    /// Tag { id: None, name: "rust".into() }.save(&mut tx).await?;
    /// let dup = tx
    ///     .savepoint(async |tx: &mut Tx| Tag { id: None, name: "rust".into() }.save(tx).await)
    ///     .await;
    /// assert_eq!(dup.unwrap_err().kind(), ErrorKind::UniqueViolation);
    /// Tag { id: None, name: "sql".into() }.save(&mut tx).await?; // still usable
    /// tx.commit().await?;
    /// assert_eq!(Tag::all(&db).await?.len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn savepoint<T, E, F>(&mut self, f: F) -> std::result::Result<T, E>
    where
        F: AsyncFnOnce(&mut Tx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        self.atomically("savepoint", None, f).await
    }

    /// [`savepoint`](Self::savepoint), naming the model in a depth-limit error; `release`,
    /// when given, is marked as the savepoint's RELEASE is sent (from then on the operation's
    /// work stays, even if it is cancelled: the transaction's next use completes the release).
    pub(crate) async fn atomically<T, E, F>(
        &mut self,
        model: &'static str,
        release: Option<&super::CommitSent>,
        f: F,
    ) -> std::result::Result<T, E>
    where
        F: AsyncFnOnce(&mut Tx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        let sp = self.enter(model).await?;
        // Cancelled here, the savepoint is marked abandoned before the operation inside it is
        // dropped (`SavepointFirst`), so that an operation that had sent its own RELEASE
        // knows its work goes with this savepoint (`CommitSent::get`).
        let mut inside = SavepointFirst {
            sp: Some(sp),
            fut: Box::pin(f(&mut *self)),
        };
        let res = (&mut inside).await;
        let sp = inside.sp.take();
        drop(inside);
        let Some(sp) = sp else {
            unreachable!("taken only here")
        };
        match res {
            Ok(value) => {
                self.leave_marking(sp, true, release).await?;
                Ok(value)
            }
            Err(err) => {
                // If even the rollback fails, the savepoint stays marked and the next use of
                // the transaction retries it; the original error is the one to report.
                let _ = self.leave(sp, false).await;
                Err(err)
            }
        }
    }

    /// Opens a savepoint for an operation on `model`, refusing past the depth limit.
    ///
    /// The crate names and tracks its savepoints itself (`signals_sp_<level>`) rather than
    /// through sqlx's transaction manager, so that an operation cancelled in the middle of a
    /// savepoint statement can be settled exactly: sqlx's bookkeeping would be off by one
    /// level then, and its clean-up of a cancelled `SAVEPOINT` rolls back the level *around*
    /// it (on PostgreSQL at depth one, the whole transaction).
    ///
    /// Its future is boxed, and made here rather than in the frame that awaits it, which may
    /// stay on the stack while receivers' nested operations run (see `save_signalled_boxed`).
    pub(crate) fn enter(
        &mut self,
        model: &'static str,
    ) -> std::pin::Pin<Box<impl Future<Output = Result<Savepoint>> + '_>> {
        Box::pin(self.enter_now(model))
    }

    async fn enter_now(&mut self, model: &'static str) -> Result<Savepoint> {
        self.repair().await?;
        let level = self.depth() + 1;
        if level > self.max_depth {
            return Err(Error::RecursionLimit {
                model,
                depth: self.max_depth,
            });
        }
        let sql = format!("SAVEPOINT {}", savepoint_name(level));
        self.in_doubt = Some(InDoubt::Begin);
        let res = self.inner_mut()?.run(&sql).await;
        self.in_doubt = None;
        res?;
        self.scopes.push();
        Ok(Savepoint {
            level,
            abandoned: self.abandoned.clone(),
            armed: true,
        })
    }

    /// Closes the savepoint: releases it when `ok`, rolls back to it otherwise (dropping the
    /// work scheduled inside it). If that fails, the savepoint stays open and marked
    /// abandoned, and the next use of the transaction rolls back to it.
    pub(crate) async fn leave(&mut self, sp: Savepoint, ok: bool) -> Result<()> {
        self.leave_marking(sp, ok, None).await
    }

    /// [`leave`](Self::leave), marking `release` as the RELEASE statement is sent; boxed, as
    /// [`enter`](Self::enter) is.
    fn leave_marking<'a>(
        &'a mut self,
        sp: Savepoint,
        ok: bool,
        release: Option<&'a super::CommitSent>,
    ) -> std::pin::Pin<Box<impl Future<Output = Result<()>> + 'a>> {
        Box::pin(self.leave_now(sp, ok, release))
    }

    async fn leave_now(
        &mut self,
        mut sp: Savepoint,
        ok: bool,
        release: Option<&super::CommitSent>,
    ) -> Result<()> {
        // An operation cancelled inside this one is settled first.
        self.repair().await?;
        let level = self.depth();
        let name = savepoint_name(level);
        let (doubt, sql) = if ok {
            (InDoubt::Release(level), format!("RELEASE SAVEPOINT {name}"))
        } else {
            (
                InDoubt::Rollback(level),
                format!("ROLLBACK TO SAVEPOINT {name}"),
            )
        };
        self.in_doubt = Some(doubt);
        // Cancelled in the middle of its RELEASE, the operation is kept (the next use of the
        // transaction completes the release), except on MySQL, where a statement cancelled
        // midway gives the whole transaction up.
        if let (true, Some(release)) = (ok, release)
            && self.backend() != Backend::MySql
        {
            release.mark_released(&self.abandoned, level);
        }
        let res = self.inner_mut()?.run(&sql).await;
        self.in_doubt = None;
        res?;
        // A savepoint rolled back to stays open, empty, as sqlx leaves its own: the next one
        // at this level takes the same name, and the enclosing release or commit ends both.
        if !ok {
            self.rolled_back_to(level);
        }
        self.scopes.close_to(level - 1, ok);
        sp.armed = false;
        if !ok {
            self.run_rolled_back().await;
        }
        Ok(())
    }

    /// Brings the transaction back to where it was before any operation that was cancelled
    /// (its future dropped mid-way): first settles the savepoint statement that was running
    /// when it was cancelled, if any, then rolls back to the savepoint of the outermost
    /// cancelled operation. Cancelled itself, it leaves what it has not done for the next use.
    pub(super) async fn repair(&mut self) -> Result<()> {
        if self.inner.as_ref().is_some_and(|inner| inner.rolled_back()) {
            return Err(Error::Conflict(sqlx::Error::Protocol(
                "the server rolled this transaction back to break a deadlock: everything it \
                 did is undone, and it cannot go on; retry it in a new transaction"
                    .into(),
            )));
        }
        if let Some(inner) = &mut self.inner
            && inner.discard_if_cancelled_midway()
        {
            return Err(Error::Transaction(
                "an operation on this transaction was cancelled in the middle of a statement, \
                 which leaves a MySQL connection unusable: the transaction is rolled back (its \
                 connection is closed); begin a new one"
                    .into(),
            ));
        }
        if let Some(doubt) = self.in_doubt {
            self.settle(doubt).await.map_err(unrepaired)?;
            self.in_doubt = None;
        }
        let level = self.abandoned.load(Ordering::SeqCst);
        // A PostgreSQL write cancelled midway may have run: a rollback to a savepoint around
        // it (the abandoned operation's, below) undoes it; without one (a save of a model
        // without receivers, which has no savepoint) nothing can tell, and the transaction is
        // given up whole, as on MySQL.
        if let Some(inner) = &mut self.inner
            && let Some(depth) = inner.cancelled_write()
            && (level == NONE_ABANDONED || level > depth)
        {
            inner.give_up();
            return Err(Error::Transaction(
                "a write of this transaction was cancelled in the middle of its statement, \
                 outside any savepoint that could undo it, so whether it ran is unknown: the \
                 transaction is rolled back (its connection is closed); begin a new one"
                    .into(),
            ));
        }
        if level != NONE_ABANDONED && self.scopes.depth() >= level {
            // Its savepoint exists: it was opened and neither released nor rolled back to.
            let sql = format!("ROLLBACK TO SAVEPOINT {}", savepoint_name(level));
            self.in_doubt = Some(InDoubt::Rollback(level));
            self.inner_mut()?.run(&sql).await.map_err(unrepaired)?;
            self.in_doubt = None;
            self.rolled_back_to(level);
            self.scopes.close_to(level - 1, false);
        }
        self.abandoned.store(NONE_ABANDONED, Ordering::SeqCst);
        self.run_rolled_back().await;
        Ok(())
    }

    /// Settles a savepoint statement that was cancelled while it ran.
    async fn settle(&mut self, doubt: InDoubt) -> Result<()> {
        match doubt {
            // Nothing ran inside it, and the operation that opened it is gone. If it exists,
            // it is shadowed by the next savepoint of that name, and ended with the enclosing
            // one: nothing to undo.
            InDoubt::Begin => Ok(()),
            // Every statement of the operation succeeded: finish releasing, so the operation
            // is kept whole, as if the cancellation had come an instant later.
            InDoubt::Release(level) => {
                self.release_if_open(level).await?;
                self.scopes.close_to(level - 1, true);
                Ok(())
            }
            // The savepoint was never released: rolling back to it again is harmless.
            InDoubt::Rollback(level) => {
                let sql = format!("ROLLBACK TO SAVEPOINT {}", savepoint_name(level));
                self.inner_mut()?.run(&sql).await?;
                self.rolled_back_to(level);
                self.scopes.close_to(level - 1, false);
                Ok(())
            }
        }
    }

    /// `RELEASE SAVEPOINT` at `level`, or nothing if it was released already.
    async fn release_if_open(&mut self, level: u32) -> Result<()> {
        let release = format!("RELEASE SAVEPOINT {}", savepoint_name(level));
        let inner = self.inner_mut()?;
        if inner.backend() != Backend::Postgres {
            // SQLite and MySQL report a missing savepoint and carry on.
            return match inner.run(&release).await {
                Err(e) if no_such_savepoint(&e) => Ok(()),
                res => res,
            };
        }
        // On PostgreSQL any failed statement aborts the transaction: try the release inside a
        // savepoint of its own, which a release of the one below ends too.
        inner.run("SAVEPOINT signals_probe").await?;
        match inner.run(&release).await {
            Err(e) if no_such_savepoint(&e) => {
                inner.run("ROLLBACK TO SAVEPOINT signals_probe").await?;
                inner.run("RELEASE SAVEPOINT signals_probe").await
            }
            res => res,
        }
    }
}

/// An error settling a cancelled operation: the transaction cannot be trusted any more.
fn unrepaired(err: Error) -> Error {
    Error::Transaction(format!(
        "an operation on this transaction was cancelled and its savepoint could not be \
         settled ({err}); roll the transaction back"
    ))
}
