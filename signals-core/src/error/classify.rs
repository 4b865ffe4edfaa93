//! How a driver's error becomes the crate's: sqlx's errors sorted by what a caller can do
//! about them (a unique or foreign key violation, a lost connection, a conflict to retry),
//! the constraint named where the database leaves it in its message.
//!
//! Uses the error type of `error`.

use super::{BoxError, Error};

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind as K;
        match &err {
            sqlx::Error::Database(db) => {
                let message = db.message().to_owned();
                let constraint = db
                    .constraint()
                    .map(str::to_owned)
                    .or_else(|| constraint_from_message(&message))
                    .unwrap_or_default();
                match db.kind() {
                    K::UniqueViolation => Error::UniqueViolation {
                        constraint,
                        message,
                        source: err,
                    },
                    K::ForeignKeyViolation => Error::ForeignKeyViolation {
                        constraint,
                        message,
                        source: err,
                    },
                    K::NotNullViolation | K::CheckViolation => Error::ConstraintViolation {
                        message,
                        source: err,
                    },
                    _ if db.code().as_deref().is_some_and(is_connection_code) => {
                        Error::Connection(err)
                    }
                    _ if is_conflict(db.as_ref()) => Error::Conflict(err),
                    _ => Error::Database(err),
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Error::Connection(err),
            sqlx::Error::Configuration(_) => Error::Config(err.to_string()),
            _ => Error::Database(err),
        }
    }
}

impl From<BoxError> for Error {
    fn from(err: BoxError) -> Self {
        match err.downcast::<Error>() {
            Ok(err) => *err,
            Err(err) => match err.downcast::<sqlx::Error>() {
                Ok(err) => Error::from(*err),
                Err(err) => Error::Other(err),
            },
        }
    }
}

/// What the database said, without the positions of its own source code that some drivers
/// append (PostgreSQL's `at line 632`, a line of the server's C code): the message the server
/// wrote for the user, or the driver's error for the other kinds.
pub(super) fn server_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// Whether the server rolled back the whole transaction with this error, savepoints and
/// all: MySQL's deadlock (1213). Its connection then runs each later statement in autocommit,
/// so the transaction must not go on. (PostgreSQL keeps an aborted transaction open for a
/// rollback to a savepoint; MySQL's lock wait timeout undoes only its statement.)
pub(crate) fn ends_transaction(err: &Error) -> bool {
    if let Error::Conflict(sqlx::Error::Database(db)) = err.root()
        && let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
    {
        return e.number() == 1213;
    }
    false
}

/// A deadlock, a serialization failure, a lock not had in time, or SQLite busy or locked.
fn is_conflict(db: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(e) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // Deadlock found when trying to get lock; Lock wait timeout exceeded.
        return matches!(e.number(), 1213 | 1205);
    }
    let Some(code) = db.code() else {
        return false;
    };
    match code.as_ref() {
        // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
        "40001" | "40P01" | "55P03" => true,
        // SQLite reports its (extended) result code, at most four digits where SQLSTATEs have
        // five: SQLITE_BUSY (5) and SQLITE_LOCKED (6) in the low byte.
        code if code.len() < 5 => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

/// Server error codes that mean the connection is gone: PostgreSQL's class 08 (connection
/// exception) and 57P01-57P03 (terminated by an administrator, crash, or shutdown); MySQL's
/// 1053 (server shutdown), 1927 (connection killed) and 4031 (disconnected for inactivity).
fn is_connection_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "1053" | "1927" | "4031")
}

/// SQLite and MySQL do not report the constraint separately; pull it out of the message.
fn constraint_from_message(message: &str) -> Option<String> {
    // SQLite: "UNIQUE constraint failed: account_user.username"
    if let Some(rest) = message.split("constraint failed: ").nth(1) {
        return Some(rest.trim().to_owned());
    }
    // MySQL / MariaDB: "Duplicate entry 'x' for key 'account_user.username'"
    if let Some(rest) = message
        .rsplit(" for key ")
        .next()
        .filter(|_| message.contains(" for key "))
    {
        return Some(rest.trim().trim_matches(['\'', '`']).to_owned());
    }
    // MySQL foreign keys: "... CONSTRAINT `fk_name` FOREIGN KEY ..."
    if let Some(rest) = message.split("CONSTRAINT `").nth(1) {
        return rest.split('`').next().map(str::to_owned);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_from_messages() {
        assert_eq!(
            constraint_from_message("UNIQUE constraint failed: account_user.username").as_deref(),
            Some("account_user.username")
        );
        assert_eq!(
            constraint_from_message("Duplicate entry 'bob' for key 'account_user.username'")
                .as_deref(),
            Some("account_user.username")
        );
        assert_eq!(
            constraint_from_message(
                "Cannot add or update a child row: a foreign key constraint fails (`t`.`p`, \
                 CONSTRAINT `p_user_fk` FOREIGN KEY (`user_id`) REFERENCES `u` (`id`))"
            )
            .as_deref(),
            Some("p_user_fk")
        );
        assert_eq!(constraint_from_message("something else"), None);
    }
}
