//! Transactions: [`Tx`], savepoints and their repair after a cancellation (`savepoint`), the
//! per-savepoint scope stack of everything a rollback unwinds (`scope`), and where an
//! operation's statements run, `&Db` or `&mut Tx` (`exec`).
//!
//! Uses `error`, `backend`, `value` and `conn`.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::backend::Backend;
use crate::conn::{ConnRef, Db, TxConn};
use crate::error::{Error, Result};

mod exec;
pub(crate) mod outbox;
mod savepoint;
mod scope;

pub use exec::{Executor, Target};

pub use savepoint::Savepoint;
pub(crate) use savepoint::{Atomic, SavepointFirst};
use savepoint::{InDoubt, NONE_ABANDONED};
use scope::{Scopes, run_after_rollback};

impl Db {
    /// Begins a transaction. Saves and deletes given `&mut tx` run in savepoints inside it;
    /// work scheduled with [`Tx::on_commit`] runs after [`Tx::commit`]. Dropping the
    /// transaction without committing rolls it back.
    ///
    /// On SQLite the transaction takes the connection's SQLite handle from sqlx's worker thread
    /// once and runs every statement on it directly (sqlx otherwise hands each statement to
    /// that thread and waits, which costs many times what SQLite itself takes). It begins with
    /// `BEGIN IMMEDIATE`, taking the write lock up front; waiting for another writer happens on
    /// sqlx's worker thread, never on yours.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// let db = signals_core::Db::connect("sqlite::memory:").await?;
    /// let mut tx = db.begin().await?;
    /// tx.on_commit(async { println!("committed") });
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&self) -> Result<Tx> {
        self.check_not_reentered()?;
        let inner = TxConn::begin(&self.pool)
            .await
            .map_err(|err| self.explain_pool_timeout(err))?;
        Ok(Tx {
            row_states: HashMap::new(),
            backend: self.backend(),
            inner: Some(inner),
            scopes: Scopes::default(),
            in_doubt: None,
            abandoned: Arc::new(AtomicU32::new(NONE_ABANDONED)),
            max_depth: self.max_depth(),
            on_commit_timeout: self.on_commit_timeout,
            pool: self.id,
            mysql_increment: None,
            aborted: None,
            lent: false,
        })
    }

    /// Runs `f` in a transaction: commits when it returns `Ok`, rolls back when it returns
    /// `Err`, and returns what `f` returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Tx};
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)").await?;
    /// let n = db
    ///     .transaction(async |tx: &mut Tx| {
    ///         tx.on_commit(async { println!("runs after COMMIT") });
    ///         Ok::<_, signals_core::Error>(42)
    ///     })
    ///     .await?;
    /// assert_eq!(n, 42);
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: AsyncFnOnce(&mut Tx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        self.transaction_reporting(f, None)
            .await
            .map(|(value, _)| value)
    }

    /// [`transaction`](Self::transaction), also returning the errors of the work that ran
    /// after the commit (see [`Tx::commit_reporting`]); `commit`, when given, is marked just
    /// before COMMIT is sent.
    pub(crate) async fn transaction_reporting<T, E, F>(
        &self,
        f: F,
        commit: Option<&CommitSent>,
    ) -> std::result::Result<(T, Vec<Error>), E>
    where
        F: AsyncFnOnce(&mut Tx) -> std::result::Result<T, E>,
        E: From<Error>,
    {
        let mut tx = self.begin().await?;
        match f(&mut tx).await {
            Ok(value) => {
                let errors = tx.commit_marking(commit).await?;
                Ok((value, errors))
            }
            Err(err) => {
                // The closure's error is the one that matters; a failed rollback ends in the
                // connection being discarded by the pool.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }
}

/// After-commit work taken out of a transaction by [`Tx::take_on_commit`], to run on demand.
#[must_use = "the work runs only when `run` is awaited"]
pub struct OnCommitWork {
    hooks: Vec<scope::Hook>,
}

impl OnCommitWork {
    /// How many pieces of work there are.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Runs the work in the order it was scheduled, as a commit would: each piece on its own,
    /// a failure or panic reported and the next run all the same. Returns the errors.
    pub async fn run(self) -> Vec<Error> {
        scope::run_after_commit(self.hooks, None).await
    }
}

impl fmt::Debug for OnCommitWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnCommitWork")
            .field("len", &self.len())
            .finish()
    }
}

/// Whether an operation's own COMMIT has been sent: from then on its outcome is the
/// database's to tell, so a failure or a cancellation may have committed it. Inside a caller's
/// transaction, whether its savepoint's RELEASE was sent, and which savepoints enclose it.
#[derive(Debug, Default)]
pub(crate) struct CommitSent {
    sent: std::sync::atomic::AtomicBool,
    /// For a RELEASE: the transaction's abandoned-savepoint marker and the released level.
    released: std::sync::OnceLock<(Arc<AtomicU32>, u32)>,
}

impl CommitSent {
    /// The operation's own COMMIT is being sent.
    pub(crate) fn mark(&self) {
        self.sent.store(true, Ordering::SeqCst);
    }

    /// The RELEASE of the operation's savepoint at `level` is being sent.
    pub(super) fn mark_released(&self, abandoned: &Arc<AtomicU32>, level: u32) {
        let _ = self.released.set((abandoned.clone(), level));
        self.mark();
    }

    /// Whether the operation's work stays: its COMMIT or RELEASE was sent, and no savepoint
    /// around it was abandoned with it (a cancellation that dropped an enclosing savepoint's
    /// future too, which the transaction's next use rolls back, taking the released work).
    pub(crate) fn get(&self) -> bool {
        self.sent.load(Ordering::SeqCst)
            && self
                .released
                .get()
                .is_none_or(|(abandoned, level)| abandoned.load(Ordering::SeqCst) >= *level)
    }
}

/// An open transaction.
///
/// Get one from [`Db::begin`] or [`Db::transaction`], or inside a receiver from the signal's
/// `tx()`. Pass `&mut tx` wherever a [`Db`] is accepted: saves and deletes then run in a
/// savepoint of this transaction, so a failing one undoes only itself.
///
/// Dropping a `Tx` without [`commit`](Self::commit) rolls it back and drops its
/// [`on_commit`](Self::on_commit) work.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{ConnRef, Db, Model};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64>, name: String }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE tag (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await?;
///
/// let mut tx = db.begin().await?;
/// Tag { id: None, name: "kept".into() }.save(&mut tx).await?;
/// tx.on_commit(async { println!("runs once the tags are committed") });
/// // SQL of your own, in the same transaction:
/// if let ConnRef::Sqlite(conn) = tx.conn().await? {
///     signals_core::sqlx::query("INSERT INTO tag (name) VALUES ('raw')").execute(conn).await?;
/// }
/// tx.commit().await?;
///
/// let mut tx = db.begin().await?;
/// Tag { id: None, name: "dropped".into() }.save(&mut tx).await?;
/// tx.rollback().await?;
///
/// let names: Vec<String> = Tag::all(&db).await?.into_iter().map(|t| t.name).collect();
/// assert_eq!(names, ["kept", "raw"]);
/// # Ok(()) }
/// ```
pub struct Tx {
    /// `None` only after `commit`/`rollback`, which consume the `Tx`.
    inner: Option<TxConn>,
    backend: Backend,
    /// One frame for the transaction and one per open savepoint: after-commit work and robust
    /// receivers' errors, unwound with the savepoint they belong to.
    pub(crate) scopes: Scopes,
    /// A savepoint statement cancelled while it ran, settled on the next use.
    in_doubt: Option<InDoubt>,
    /// The lowest savepoint level whose operation was cancelled (its future dropped), or
    /// `NONE_ABANDONED`. Repaired on the next use of the transaction.
    abandoned: Arc<AtomicU32>,
    max_depth: u32,
    /// See [`Db::with_on_commit_timeout`].
    on_commit_timeout: Option<Duration>,
    /// The id of the `Db` this transaction's connection came from.
    pub(crate) pool: u64,
    /// Per row and receiver, what `#[on_commit(.., changed(..))]` receivers compare at commit:
    /// the row before its first save in this transaction (typed in `signal::receiver`).
    pub(crate) row_states: HashMap<(TypeId, &'static str, String), Arc<dyn Any + Send + Sync>>,
    /// On MySQL-family servers, once a bulk save asked: `@@auto_increment_increment`, the
    /// step between the keys of one INSERT (a session setting, so read once per transaction).
    pub(crate) mysql_increment: Option<i64>,
    /// On PostgreSQL, the savepoint depth at which a statement of the crate's failed: the
    /// failure aborted the transaction up to the innermost savepoint around it, and COMMIT
    /// would quietly roll it back. `None` when no statement failed, or when a rollback to a
    /// savepoint around the failure undid it.
    aborted: Option<u32>,
    /// `conn()` lent the connection out: SQL of the caller's own may have failed unseen.
    lent: bool,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend())
            .field("savepoints", &self.scopes.depth())
            .field("on_commit", &self.scopes.hooks())
            .finish_non_exhaustive()
    }
}

impl Tx {
    /// Which database this transaction runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn inner_mut(&mut self) -> Result<&mut TxConn> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::Transaction("transaction already finished".into()))
    }

    /// For runners that handle several events in one transaction, each in a savepoint of its
    /// own (`signals-outbox`'s embedded runner): what `changed(..)` receivers compare starts
    /// afresh, so each event's saves are judged as in a transaction of their own, as a worker
    /// running one event per transaction judges them. The saves already scheduled keep what
    /// they compare.
    #[doc(hidden)]
    pub fn __judge_changes_afresh(&mut self) {
        self.row_states.clear();
    }

    /// How many savepoints are open (how deeply saves are nested inside receivers).
    pub fn depth(&self) -> u32 {
        self.scopes.depth()
    }

    /// Schedules `work` to run after the outermost transaction commits (Django's
    /// `transaction.on_commit`). It is dropped, never run, if the transaction or the savepoint
    /// it was scheduled in rolls back. Work runs in the order it was scheduled, awaited by
    /// [`commit`](Self::commit); it cannot fail the commit, so handle its errors inside it.
    pub fn on_commit<F>(&mut self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.scopes.current().hooks.push(Box::pin(async move {
            work.await;
            Ok(())
        }));
    }

    /// Schedules `work` to run after what is being done now is rolled back (Rails'
    /// `after_rollback`): for compensating work outside the database, such as releasing a
    /// reservation made with another service. Never after a commit.
    ///
    /// The work belongs to the innermost savepoint open when it is scheduled (a save's, inside
    /// its receivers), as [`on_commit`](Self::on_commit) work does:
    /// - that savepoint rolled back (the save failed, or was cancelled and the transaction's
    ///   next use undid it): the work runs once the `ROLLBACK TO SAVEPOINT` has succeeded,
    ///   before the failing operation returns, even if the transaction then commits;
    /// - released: the work passes to the enclosing savepoint or transaction;
    /// - the transaction rolled back ([`rollback`](Self::rollback), a failed
    ///   [`Db::transaction`], a COMMIT the server refused, or the `Tx` dropped — an operation
    ///   cancelled, a `?` past it): all its pending work runs after the `ROLLBACK`;
    /// - committed: dropped. When the outcome of a COMMIT is unknown
    ///   ([`Error::CommitOutcomeUnknown`]) it does not run either.
    ///
    /// Work runs in the order it was scheduled, on its own task (a cancelled caller does not
    /// stop it; a panic or failure in one piece is logged and the next runs), each piece
    /// bounded by [`Db::with_on_commit_timeout`] as after-commit work is (a piece that runs
    /// longer is given up, logged, and the next runs); an explicit rollback or a failed
    /// savepoint waits for it; a dropped `Tx` spawns it on the current Tokio runtime, after the
    /// rollback.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    ///
    /// let db = signals_core::Db::connect("sqlite::memory:").await?;
    /// let released = Arc::new(AtomicBool::new(false));
    /// let mut tx = db.begin().await?;
    /// let flag = released.clone();
    /// tx.on_rollback(async move { flag.store(true, Ordering::SeqCst) }); // release a hold
    /// tx.rollback().await?;
    /// assert!(released.load(Ordering::SeqCst));
    ///
    /// let mut tx = db.begin().await?;
    /// tx.on_rollback(async { unreachable!("a commit drops it") });
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn on_rollback<F>(&mut self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.scopes.current().on_rollback.push(Box::pin(async move {
            work.await;
            Ok(())
        }));
    }

    /// Takes the after-commit work scheduled in this transaction so far ([`on_commit`] work
    /// and the models' `#[on_commit]` receivers), to run on demand: Django's
    /// `captureOnCommitCallbacks`, for a test whose transaction is rolled back at its end and
    /// so would never run it. The transaction keeps none of it: its commit will not run it.
    ///
    /// Events of durable receivers go to the outbox at the commit, not here.
    ///
    /// [`on_commit`]: Self::on_commit
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Committed, Db, Model, Result};
    ///
    /// #[derive(Clone, Model)]
    /// #[on_commit(send_welcome)]
    /// struct User { id: Option<i64>, email: String }
    ///
    /// async fn send_welcome(user: User, event: Committed) -> Result<()> {
    ///     if let Committed::Saved { created: true } = event { println!("welcome, {}", user.email) }
    ///     Ok(())
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.create_tables::<User>().await?;
    /// let mut tx = db.begin().await?; // a test's transaction, rolled back at its end
    /// User { id: None, email: "ann@example.com".into() }.save(&mut tx).await?;
    /// let work = tx.take_on_commit();
    /// assert_eq!(work.len(), 1);
    /// assert!(work.run().await.is_empty()); // the welcome is sent, no error
    /// tx.rollback().await?;
    /// # Ok(()) }
    /// ```
    pub fn take_on_commit(&mut self) -> OnCommitWork {
        OnCommitWork {
            hooks: self.scopes.take_hooks(),
        }
    }

    /// Runs the after-rollback work of savepoints just rolled back, on a task of its own.
    pub(crate) async fn run_rolled_back(&mut self) {
        let work = self.scopes.take_rolled_back();
        run_after_rollback(work, self.on_commit_timeout).await;
    }

    /// Schedules after-commit work whose error [`commit_reporting`](Self::commit_reporting)
    /// returns (the `#[on_commit]` receivers).
    pub(crate) fn on_commit_reporting<F>(&mut self, work: F)
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        self.scopes.current().hooks.push(Box::pin(work));
    }

    /// The transaction's connection, for SQL of your own; it runs inside the transaction (and
    /// inside the current savepoint, if any).
    ///
    /// For nesting, use [`savepoint`](Self::savepoint) rather than sqlx's own `begin()` on this
    /// connection: on SQLite the transaction runs on the connection's handle, out of sqlx's
    /// sight, so sqlx would try a second `BEGIN` and fail with "cannot start a transaction
    /// within a transaction".
    pub async fn conn(&mut self) -> Result<ConnRef<'_>> {
        self.repair().await?;
        self.lent = true;
        self.inner_mut()?.conn()
    }

    /// Writes the events of durable receivers (`#[on_commit(.., durable)]`) to the outbox
    /// table, commits, then runs the work scheduled with [`on_commit`](Self::on_commit) and
    /// the models' `#[on_commit]` receivers. If the outbox write fails, nothing commits. Errors of those receivers cannot undo the commit:
    /// they are logged; [`commit_reporting`](Self::commit_reporting) returns them.
    pub async fn commit(self) -> Result<()> {
        self.commit_reporting().await.map(drop)
    }

    /// [`commit`](Self::commit), returning the errors of the `#[on_commit]` receivers that
    /// ran after it, in order. `Err` means the commit itself failed (nothing ran then).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// let db = signals_core::Db::connect("sqlite::memory:").await?;
    /// let tx = db.begin().await?;
    /// assert!(tx.commit_reporting().await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn commit_reporting(self) -> Result<Vec<Error>> {
        self.commit_marking(None).await
    }

    /// [`commit_reporting`](Self::commit_reporting), marking `commit` just before COMMIT is
    /// sent (after the outbox's rows are written).
    pub(crate) async fn commit_marking(
        mut self,
        commit: Option<&CommitSent>,
    ) -> Result<Vec<Error>> {
        self.repair().await?;
        // No savepoint is open here but those of operations still running elsewhere, which
        // `&mut` borrowing rules out; COMMIT would release them anyway.
        let mut frame = self.scopes.finish();
        // Kept in the transaction until COMMIT is sent: a failure or a cancellation before
        // then is a rollback, which runs it.
        self.scopes.current().on_rollback = std::mem::take(&mut frame.on_rollback);
        let rows = outbox::decide(std::mem::take(&mut frame.outbox));
        match self.commit_frame(&rows, commit).await {
            Ok(()) => {}
            Err(err) => {
                // Failed before COMMIT was sent (the outbox write, an aborted transaction):
                // roll back, then run the work. (Once sent, `commit_frame` saw to it.)
                let work = self.scopes.abandon();
                if let Some(inner) = self.inner.take() {
                    let _ = inner.rollback().await;
                }
                run_after_rollback(work, self.on_commit_timeout).await;
                return Err(err);
            }
        }
        Ok(scope::run_after_commit(frame.hooks, self.on_commit_timeout).await)
    }

    /// The outbox write, the check for an aborted transaction and COMMIT.
    async fn commit_frame(
        &mut self,
        rows: &[outbox::OutboxRow],
        commit: Option<&CommitSent>,
    ) -> Result<()> {
        let durable = !rows.is_empty();
        if durable {
            // In the transaction, so that the events commit with the rows they report, or
            // fail the commit: a durable event is never lost once its save committed.
            let backend = self.backend;
            outbox::write(&mut Target::Tx(self), backend, rows)
                .await
                .map_err(outbox::missing_table_hint)?;
        }
        self.refuse_aborted().await?;
        match self.inner.take() {
            None => return Err(Error::Transaction("transaction already finished".into())),
            Some(inner) => {
                if let Some(commit) = commit {
                    commit.mark();
                }
                // Sent: from here a cancellation leaves the outcome unknown, and the work
                // after a rollback must not run (nor when COMMIT's answer is lost).
                let on_rollback = self.scopes.abandon();
                match inner.commit().await {
                    Ok(()) => drop(on_rollback),
                    Err(err) => {
                        if !matches!(err, Error::CommitOutcomeUnknown(_)) {
                            run_after_rollback(on_rollback, self.on_commit_timeout).await;
                        }
                        return Err(err);
                    }
                }
            }
        }
        if durable {
            outbox::committed();
        }
        Ok(())
    }

    /// A statement of the crate's failed in this transaction with `err`: when the server
    /// refused it, on PostgreSQL that aborts the transaction up to the innermost savepoint
    /// (whose rollback undoes the failure). Errors of the crate's own (a value refused before
    /// it was sent, a row that does not decode) abort nothing.
    pub(crate) fn note_failure(&mut self, err: &Error) {
        let refused = match err {
            Error::UniqueViolation { .. }
            | Error::ForeignKeyViolation { .. }
            | Error::ConstraintViolation { .. } => true,
            Error::Conflict(source) | Error::Database(source) => {
                matches!(source, sqlx::Error::Database(_))
            }
            _ => false,
        };
        if refused && self.backend == Backend::Postgres {
            let depth = self.scopes.depth();
            self.aborted = Some(self.aborted.map_or(depth, |a| a.min(depth)));
        }
    }

    /// The savepoint at `level` was rolled back to: a failure inside it is undone.
    pub(crate) fn rolled_back_to(&mut self, level: u32) {
        if self.aborted.is_some_and(|a| a >= level) {
            self.aborted = None;
        }
    }

    /// On PostgreSQL, refuses to commit a transaction a failed statement aborted, since its
    /// COMMIT would quietly roll it back and report success: rolls it back and says so. A
    /// failure of the crate's own statements is known; after SQL of the caller's own
    /// (`conn()`), one statement asks the server.
    async fn refuse_aborted(&mut self) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let aborted = match self.aborted {
            Some(_) => true,
            // 25P02: "current transaction is aborted". Any other failure is the connection's
            // (lost before COMMIT was sent: nothing committed), reported as it is.
            None if self.lent => match self.inner_mut()?.run("SELECT 1").await {
                Ok(()) => false,
                Err(Error::Database(sqlx::Error::Database(db)))
                    if db.code().as_deref() == Some("25P02") =>
                {
                    true
                }
                Err(other) => return Err(other),
            },
            None => false,
        };
        if !aborted {
            return Ok(());
        }
        if let Some(inner) = self.inner.take() {
            let _ = inner.rollback().await;
        }
        Err(Error::Transaction(
            "a statement of this transaction failed, which aborts a PostgreSQL transaction: \
             nothing was committed (it was rolled back). To carry on after a statement that may \
             fail, run it in `tx.savepoint(..)` (saves of models with receivers do so already)"
                .into(),
        ))
    }

    /// Rolls back everything and drops the after-commit work; then runs the work scheduled
    /// with [`on_rollback`](Self::on_rollback), and waits for it.
    pub async fn rollback(mut self) -> Result<()> {
        let work = self.scopes.abandon();
        let res = match self.inner.take() {
            None => Err(Error::Transaction("transaction already finished".into())),
            Some(inner) => inner.rollback().await,
        };
        // A failed ROLLBACK closes the connection, which the server rolls back all the same.
        run_after_rollback(work, self.on_commit_timeout).await;
        res
    }
}

impl Drop for Tx {
    /// A transaction dropped unfinished rolls back (its connection does so on its own); with
    /// after-rollback work pending, the rollback and then the work run on a task spawned on
    /// the current Tokio runtime.
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        let work = self.scopes.abandon();
        if work.is_empty() {
            return;
        }
        let limit = self.on_commit_timeout;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                pieces = work.len(),
                "a transaction with after-rollback work was dropped outside a Tokio runtime: \
                 the work cannot run"
            );
            return;
        };
        runtime.spawn(async move {
            // A connection cancelled in the middle of a statement is closed instead, which
            // the server rolls back.
            if !inner.discard_if_cancelled_midway() {
                let _ = inner.rollback().await;
            } else {
                drop(inner);
            }
            scope::run_each_after_rollback(work, limit).await;
        });
    }
}
