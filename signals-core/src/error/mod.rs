//! The crate's one error type, [`Error`], and what it is classified by.
//!
//! Uses only `kind` (the signal a failing receiver was connected to).

use crate::kind::SignalKind;

mod classify;

pub(crate) use classify::ends_transaction;

use classify::server_message;

/// A boxed error of any kind, as user receivers may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// Database errors keep their kind: match on [`Error::kind`] to tell a unique violation from a
/// lost connection, even when the error was raised inside a receiver and wrapped in
/// [`Error::Receiver`].
///
/// ```
/// use signals_core::{Error, ErrorKind};
///
/// let err = Error::NotSaved { model: "User" };
/// assert_eq!(err.kind(), ErrorKind::NotSaved);
/// assert_eq!(err.to_string(), "this `User` was never saved: its primary key is not set, so it has no row");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL or connection options are not usable.
    #[error("invalid database configuration: {0}")]
    Config(String),

    /// No row has the primary key that was asked for.
    #[error("no `{model}` row with primary key {key}")]
    NotFound {
        /// The model's name.
        model: &'static str,
        /// The primary key, as written by `Debug`.
        key: String,
    },

    /// The instance has no primary key, so it has no row to act on.
    #[error("this `{model}` was never saved: its primary key is not set, so it has no row")]
    NotSaved {
        /// The model's name.
        model: &'static str,
    },

    /// An INSERT or UPDATE would duplicate a value that must be unique.
    #[error("unique constraint `{constraint}` violated: {message}")]
    UniqueViolation {
        /// The constraint, index or `table.column` named by the database.
        constraint: String,
        /// The database's own message.
        message: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },

    /// A foreign key points at a row that does not exist, or a row still referenced would go.
    #[error("foreign key constraint `{constraint}` violated: {message}")]
    ForeignKeyViolation {
        /// The constraint named by the database (empty when the database does not say).
        constraint: String,
        /// The database's own message.
        message: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },

    /// A `NOT NULL` or `CHECK` constraint refused a value.
    #[error("constraint violated: {message}")]
    ConstraintViolation {
        /// The database's own message.
        message: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },

    /// A delete was refused because `on_delete = restrict` rows still point at the instance.
    #[error(
        "cannot delete `{model}` {key}: {count} `{related}` row(s) still refer to it through \
         `{field}` (on_delete = restrict); delete them first"
    )]
    Restricted {
        /// The model whose delete was refused.
        model: &'static str,
        /// Its primary key, as written by `Debug`.
        key: String,
        /// The referring model.
        related: &'static str,
        /// The referring field.
        field: &'static str,
        /// How many rows refer to it.
        count: i64,
    },

    /// A receiver returned an error; everything the save or delete did was rolled back.
    #[error("{signal} receiver `{receiver}` of `{model}` failed: {source}")]
    Receiver {
        /// The model the signal was sent for.
        model: &'static str,
        /// The signal.
        signal: SignalKind,
        /// The receiver's path as written in the attribute.
        receiver: &'static str,
        /// What the receiver returned.
        #[source]
        source: Box<Error>,
    },

    /// A bulk write ([`Model::bulk_save`](crate::Model::bulk_save), `bulk_update`,
    /// `bulk_delete`) failed; nothing it wrote is kept. Names the row that failed (its index in
    /// the slice given, and its key when it has one), or, for a batched receiver, the rows of
    /// the batch it was sent. [`kind`](Error::kind) is the kind of `source`.
    #[error(
        "bulk {operation} of `{model}` failed at {}: {source}",
        bulk_rows(*.row, .rows, .key.as_deref())
    )]
    Bulk {
        /// The model.
        model: &'static str,
        /// `save`, `update` or `delete`.
        operation: &'static str,
        /// The failing row's index in the slice, when one row failed.
        row: Option<usize>,
        /// The rows of the batch (chunk) the failure happened in, as indices in the slice.
        rows: std::ops::Range<usize>,
        /// The failing row's primary key (as written by `Debug`), when it has one.
        key: Option<String>,
        /// What failed.
        #[source]
        source: Box<Error>,
    },

    /// A receiver of a custom [`Signal`](crate::Signal) returned an error.
    #[error("receiver `{receiver}` of signal `{signal}` failed: {source}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The receiver's dispatch id.
        receiver: &'static str,
        /// What the receiver returned.
        #[source]
        source: Box<Error>,
    },

    /// Saves nested inside receivers went deeper than the configured limit, which almost always
    /// means a receiver re-saves its own instance.
    #[error(
        "save of `{model}` nested {depth} levels deep in receivers (the limit); a receiver \
         probably saves the instance that triggered it. Raise the limit with \
         `Db::with_max_depth` if the nesting is intended"
    )]
    RecursionLimit {
        /// The model whose save exceeded the limit.
        model: &'static str,
        /// The depth reached.
        depth: u32,
    },

    /// A value the database cannot store as it is; nothing was written.
    #[error("cannot store the value of column `{column}`: {reason}")]
    InvalidValue {
        /// The column.
        column: &'static str,
        /// Why.
        reason: String,
    },

    /// A value read from the database did not fit the model's field.
    #[error("cannot read column `{column}` of `{model}`: {source}")]
    Decode {
        /// The model's name.
        model: &'static str,
        /// The column.
        column: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },

    /// A transaction was left unusable: an operation on it was cancelled half-way and could
    /// not be undone, or it was already finished.
    #[error("transaction unusable: {0}")]
    Transaction(String),

    /// [`Db::connect`](crate::Db::connect) could not reach or log in to the database.
    #[error("cannot connect to `{url}`: {source}")]
    Connect {
        /// The URL, its password masked.
        url: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },

    /// The connection to the database failed or was lost.
    #[error("database connection failed: {}", server_message(.0))]
    Connection(#[source] sqlx::Error),

    /// The connection failed while COMMIT was under way (or, for a statement that ran alone
    /// on a pool in autocommit, once it was sent): the transaction may or may not have
    /// committed, and only the database can tell. Do not simply retry a save that inserts (it
    /// could insert twice, or fail on a unique key): look the rows up first, or make the write
    /// idempotent. A save or bulk save in a transaction of its own keeps the keys it assigned,
    /// so `Model::get(&db, key)` tells whether its row committed, and saving the instance
    /// again updates that row rather than inserting another; an autocommit INSERT whose answer
    /// was lost never learned its key: look the row up by what it holds. On SQLite a COMMIT
    /// fails with a definite answer, never this.
    #[error(
        "the connection failed while a commit was under way (a COMMIT, or a statement \
         running alone in autocommit, perhaps before it ran), so whether the transaction \
         committed is unknown; check the database before retrying: {}", server_message(.0)
    )]
    CommitOutcomeUnknown(#[source] sqlx::Error),

    /// The transaction lost a race with another one and was rolled back (or this statement
    /// failed): a deadlock (PostgreSQL 40P01, MySQL 1213), a serialization failure (40001), a
    /// lock that could not be had in time (PostgreSQL 55P03, MySQL 1205), or an SQLite database
    /// still locked after the busy timeout. Running the whole transaction again is the remedy;
    /// [`Error::is_retryable`] tells.
    #[error("transaction conflict, retry it: {}", server_message(.0))]
    Conflict(#[source] sqlx::Error),

    /// The database's tables do not match the models (from
    /// [`Db::check_schema`](crate::Db::check_schema)): every problem found, one per line.
    #[error("the database does not match the models:\n  - {}", problems.join("\n  - "))]
    SchemaMismatch {
        /// Each missing table or column, incompatible type or nullability, in model order.
        problems: Vec<String>,
    },

    /// A query asked for something it cannot do (an `update` of an ordered or limited query).
    #[error("invalid query: {0}")]
    InvalidQuery(String),

    /// `update_fields` names the primary key (Django's `ValueError`): a save never changes a
    /// row's key. To give a row another key, delete it and save a new one.
    #[error(
        "`{field}` is the primary key of `{model}` and cannot be in `update_fields`: a save \
         never changes a row's key"
    )]
    KeyInUpdateFields {
        /// The model.
        model: &'static str,
        /// The key's field.
        field: &'static str,
    },

    /// A receiver ran a statement on the `Db` its own save or delete runs on, instead of on
    /// `signal.tx()`. That takes a second connection from the pool while the save's
    /// transaction holds the first: it does not see the save's writes, can wait forever for
    /// the save's own locks, and with many saves at once exhausts the pool. Refused at once.
    #[error(
        "a receiver of `{model}` used the `Db` its {operation} runs on: run its statements on \
         `signal.tx()` (the {operation}'s own transaction) instead"
    )]
    ReceiverUsedPool {
        /// The model whose receiver did it.
        model: &'static str,
        /// `save` or `delete`.
        operation: &'static str,
    },

    /// No connection of the pool came free in time while saves or deletes of that pool were
    /// running receivers, each holding one. The usual cause is a receiver that awaits work on
    /// another task (`tokio::spawn`) using the same `Db` instead of `signal.tx()`: that work
    /// waits for a connection the receiver's own save holds. (The receiver's own statements on
    /// the `Db` are refused at once with [`Error::ReceiverUsedPool`]; another task's cannot be
    /// told apart.) Run such work on `signal.tx()` in the receiver, or after the commit
    /// (`signal.on_commit`). [`kind`](Error::kind) is [`ErrorKind::Connection`].
    #[error(
        "timed out waiting for a database connection while {receivers} save(s) or delete(s) \
         of this pool run receivers, each holding one: a receiver that awaits work on another \
         task (`tokio::spawn`) using this `Db` waits for itself; run that work on \
         `signal.tx()`, or after the commit with `signal.on_commit`"
    )]
    PoolTimedOut {
        /// How many saves and deletes were running receivers on the pool.
        receivers: usize,
        /// sqlx's pool timeout.
        #[source]
        source: sqlx::Error,
    },

    /// Work that ran after a commit panicked; the commit stands, the rest of the work ran.
    #[error("after-commit work panicked (the commit stands): {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },

    /// Work that ran after a commit took longer than [`Db::with_on_commit_timeout`] allows and
    /// was stopped; the commit stands, the rest of the work ran.
    ///
    /// [`Db::with_on_commit_timeout`]: crate::Db::with_on_commit_timeout
    #[error("after-commit work did not finish within {0:?} and was stopped (the commit stands)")]
    TimedOut(std::time::Duration),

    /// Applying migrations failed ([`migrate::run`](crate::migrate::run)): a migration's SQL,
    /// the lock, or sqlx's bookkeeping of what was applied.
    #[error("migrating failed: {0}")]
    Migrate(String),

    /// [`makemigrations`](crate::makemigrations) cannot write what the models ask for, or
    /// (its check) the models and the migrations disagree: a change that destroys data without
    /// `allow_data_loss`, a rename of what does not exist, a changed primary key, a state file
    /// that cannot be read.
    #[error("makemigrations: {0}")]
    Makemigrations(String),

    /// Any other error reported by the database or the driver.
    #[error("database error: {}", server_message(.0))]
    Database(#[source] sqlx::Error),

    /// An error raised by user code (a receiver's own error type).
    #[error(transparent)]
    Other(BoxError),
}

/// Where a bulk write failed, for [`Error::Bulk`]'s message.
fn bulk_rows(row: Option<usize>, rows: &std::ops::Range<usize>, key: Option<&str>) -> String {
    match (row, key) {
        (Some(row), Some(key)) => format!("row {row} (key {key})"),
        (Some(row), None) => format!("row {row}"),
        (None, _) => format!("the batch of rows {}..{}", rows.start, rows.end),
    }
}

/// The kind of an [`Error`], looking through receiver wrappers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Config`].
    Config,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::NotSaved`].
    NotSaved,
    /// [`Error::UniqueViolation`].
    UniqueViolation,
    /// [`Error::ForeignKeyViolation`].
    ForeignKeyViolation,
    /// [`Error::ConstraintViolation`].
    ConstraintViolation,
    /// [`Error::Restricted`].
    Restricted,
    /// [`Error::RecursionLimit`].
    RecursionLimit,
    /// [`Error::InvalidValue`].
    InvalidValue,
    /// [`Error::Decode`].
    Decode,
    /// [`Error::Transaction`].
    Transaction,
    /// [`Error::Connect`], [`Error::Connection`] or [`Error::PoolTimedOut`].
    Connection,
    /// [`Error::CommitOutcomeUnknown`].
    CommitOutcomeUnknown,
    /// [`Error::Conflict`]: retry the transaction.
    Conflict,
    /// The call itself is wrong: [`Error::KeyInUpdateFields`], [`Error::ReceiverUsedPool`],
    /// [`Error::InvalidQuery`].
    Usage,
    /// [`Error::Panicked`].
    Panicked,
    /// [`Error::TimedOut`].
    TimedOut,
    /// [`Error::Database`].
    Database,
    /// [`Error::SchemaMismatch`].
    SchemaMismatch,
    /// [`Error::Migrate`].
    Migrate,
    /// [`Error::Makemigrations`].
    Makemigrations,
    /// [`Error::Other`].
    Other,
}

impl Error {
    /// The kind of the innermost error: a unique violation raised by a save inside a receiver
    /// is still [`ErrorKind::UniqueViolation`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, ErrorKind, Model, PostSave, Result, SignalKind};
    ///
    /// #[derive(Clone, Model)]
    /// #[post_save(copy_to_archive)]
    /// struct Note { id: Option<i64>, body: String }
    ///
    /// #[derive(Model)]
    /// struct Archive { id: Option<i64>, body: String }
    ///
    /// async fn copy_to_archive(note: &Note, signal: &mut PostSave<'_>) -> Result<()> {
    ///     Archive { id: None, body: note.body.clone() }.save(signal.tx()).await?;
    ///     Ok(())
    /// }
    ///
    /// let db = Db::connect("sqlite::memory:").await?;
    /// db.execute_unprepared(
    ///     "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
    ///      CREATE TABLE archive (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);",
    /// ).await?;
    /// Note { id: None, body: "hi".into() }.save(&db).await?;
    /// let err = Note { id: None, body: "hi".into() }.save(&db).await.unwrap_err();
    ///
    /// assert_eq!(err.kind(), ErrorKind::UniqueViolation);
    /// assert_eq!(err.receiver_chain(), [("Note", SignalKind::PostSave, "copy_to_archive")]);
    /// assert!(matches!(err.root(), signals_core::Error::UniqueViolation { .. }));
    /// # Ok(()) }
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self.root() {
            Error::Config(_) => ErrorKind::Config,
            Error::SchemaMismatch { .. } => ErrorKind::SchemaMismatch,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::NotSaved { .. } => ErrorKind::NotSaved,
            Error::UniqueViolation { .. } => ErrorKind::UniqueViolation,
            Error::ForeignKeyViolation { .. } => ErrorKind::ForeignKeyViolation,
            Error::ConstraintViolation { .. } => ErrorKind::ConstraintViolation,
            Error::Restricted { .. } => ErrorKind::Restricted,
            Error::RecursionLimit { .. } => ErrorKind::RecursionLimit,
            Error::InvalidValue { .. } => ErrorKind::InvalidValue,
            Error::Decode { .. } => ErrorKind::Decode,
            Error::Transaction(_) => ErrorKind::Transaction,
            Error::Connect { .. } | Error::Connection(_) | Error::PoolTimedOut { .. } => {
                ErrorKind::Connection
            }
            Error::CommitOutcomeUnknown(_) => ErrorKind::CommitOutcomeUnknown,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::KeyInUpdateFields { .. }
            | Error::ReceiverUsedPool { .. }
            | Error::InvalidQuery(_) => ErrorKind::Usage,
            Error::Panicked { .. } => ErrorKind::Panicked,
            Error::TimedOut(_) => ErrorKind::TimedOut,
            Error::Database(_) => ErrorKind::Database,
            Error::Migrate(_) => ErrorKind::Migrate,
            Error::Makemigrations(_) => ErrorKind::Makemigrations,
            Error::Other(_) => ErrorKind::Other,
            // `root` never returns a receiver wrapper.
            Error::Receiver { .. } | Error::Signal { .. } | Error::Bulk { .. } => ErrorKind::Other,
        }
    }

    /// Whether running the whole transaction again may succeed: the error is an
    /// [`Error::Conflict`] (a deadlock, a serialization failure, a lock not had in time).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
    /// use signals_core::{Db, Error, Model, Tx};
    ///
    /// #[derive(Model)]
    /// struct Counter { id: Option<i64>, hits: i64 }
    ///
    /// async fn bump(db: &Db, id: i64) -> signals_core::Result<()> {
    ///     loop {
    ///         let res = db
    ///             .transaction(async |tx: &mut Tx| {
    ///                 let mut c = Counter::get(&mut *tx, id).await?.expect("the counter exists");
    ///                 c.hits += 1;
    ///                 c.save(tx).await?;
    ///                 Ok::<_, Error>(())
    ///             })
    ///             .await;
    ///         match res {
    ///             Err(e) if e.is_retryable() => continue, // lost a race: run it again
    ///             res => return res,
    ///         }
    ///     }
    /// }
    /// # let db = Db::connect("sqlite::memory:").await?;
    /// # db.execute_unprepared("CREATE TABLE counter (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL)").await?;
    /// # Counter { id: None, hits: 0 }.save(&db).await?;
    /// # bump(&db, 1).await?;
    /// # assert_eq!(Counter::get(&db, 1).await?.map(|c| c.hits), Some(1));
    /// # Ok(()) }
    /// ```
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }

    /// The innermost error, looking through [`Error::Receiver`] and [`Error::Signal`]
    /// wrappers.
    pub fn root(&self) -> &Error {
        let mut err = self;
        while let Error::Receiver { source, .. }
        | Error::Signal { source, .. }
        | Error::Bulk { source, .. } = err
        {
            err = source;
        }
        err
    }

    /// Places an error of the chunk starting at `offset` (`len` rows) in the whole slice.
    pub(crate) fn in_chunk(self, offset: usize, len: usize) -> Error {
        match self {
            Error::Bulk {
                model,
                operation,
                row: Some(i),
                key,
                source,
                ..
            } => Error::Bulk {
                model,
                operation,
                row: Some(offset + i),
                rows: offset + i..offset + i + 1,
                key,
                source,
            },
            err => Error::Bulk {
                model: "",
                operation: "",
                row: None,
                rows: offset..offset + len,
                key: None,
                source: Box::new(err),
            },
        }
    }

    /// The receivers the error passed through, outermost first, as `(model, signal, receiver)`.
    pub fn receiver_chain(&self) -> Vec<(&'static str, SignalKind, &'static str)> {
        let mut chain = Vec::new();
        let mut err = match self {
            Error::Bulk { source, .. } => source,
            err => err,
        };
        while let Error::Receiver {
            model,
            signal,
            receiver,
            source,
        } = err
        {
            chain.push((*model, *signal, *receiver));
            err = source;
        }
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_looks_through_receivers() {
        let inner = Error::NotFound {
            model: "Profile",
            key: "1".into(),
        };
        let err = Error::Receiver {
            model: "User",
            signal: SignalKind::PostSave,
            receiver: "save_profile",
            source: Box::new(inner),
        };
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.receiver_chain(),
            vec![("User", SignalKind::PostSave, "save_profile")]
        );
        assert_eq!(
            err.to_string(),
            "post_save receiver `save_profile` of `User` failed: no `Profile` row with primary key 1"
        );
    }
}
