//! A PostgreSQL or MySQL transaction's connection: BEGIN, COMMIT and ROLLBACK through sqlx's
//! transaction manager, and what happens to the connection when one is cancelled midway.
//!
//! Uses `error`.

use sqlx::Database;
use sqlx::pool::PoolConnection;
use sqlx_core::transaction::TransactionManager;

use crate::error::{Error, Result};

/// A PostgreSQL or MySQL transaction on a pooled connection: BEGIN, COMMIT and ROLLBACK through
/// sqlx's transaction manager (so sqlx knows the connection is in a transaction), savepoints of
/// the crate's own (see `tx`).
pub(crate) struct ServerTx<DB: Database> {
    pub(super) conn: PoolConnection<DB>,
    /// A statement was under way when the operation running it was cancelled (set around
    /// every MySQL statement, and around COMMIT and ROLLBACK): the connection may expect an
    /// answer to a query it never sent, so it is never used again (see `tx::repair`).
    pub(crate) in_flight: bool,
    /// The savepoint depth of the transaction's next statement (set by `tx` before each).
    pub(crate) depth: u32,
    /// On PostgreSQL, a write was under way at this savepoint depth when the operation
    /// running it was cancelled: it may have run, and only a rollback to a savepoint around it
    /// undoes it (see `tx::repair`).
    pub(crate) write_depth: Option<u32>,
    /// The server rolled the whole transaction back (a MySQL deadlock): every later use is
    /// refused, or its statements would run in autocommit (see `tx::repair`).
    pub(crate) rolled_back: bool,
}

impl<DB: Database> ServerTx<DB> {
    pub(super) async fn begin(pool: &sqlx::Pool<DB>) -> Result<Self> {
        let mut guard = CloseUnlessKept(None);
        let conn = guard.0.insert(pool.acquire().await?);
        DB::TransactionManager::begin(conn, None).await?;
        match guard.0.take() {
            Some(conn) => Ok(ServerTx {
                conn,
                in_flight: false,
                depth: 0,
                write_depth: None,
                rolled_back: false,
            }),
            None => Err(Error::Transaction("connection lost while beginning".into())),
        }
    }

    pub(super) async fn commit(mut self) -> Result<()> {
        if self.in_flight {
            return Err(Error::Transaction(
                "cannot commit: a statement of this transaction was cancelled midway".into(),
            ));
        }
        self.in_flight = true;
        DB::TransactionManager::commit(&mut self.conn).await?;
        self.in_flight = false;
        Ok(())
    }

    pub(super) async fn rollback(mut self) -> Result<()> {
        if self.in_flight {
            // The connection cannot be trusted with a ROLLBACK; dropping `self` closes it,
            // which rolls back on the server.
            return Ok(());
        }
        self.in_flight = true;
        DB::TransactionManager::rollback(&mut self.conn).await?;
        self.in_flight = false;
        Ok(())
    }

    /// Closes the connection when the transaction is dropped, which rolls it back.
    pub(super) fn discard(&mut self) {
        self.conn.close_on_drop();
    }
}

impl<DB: Database> std::ops::Deref for ServerTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database> std::ops::DerefMut for ServerTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database> Drop for ServerTx<DB> {
    /// Not committed or rolled back (dropped, or its commit cancelled): queues the ROLLBACK on
    /// the connection, as sqlx's own `Transaction` does; it is sent before the connection's next
    /// use, which is the pool's check when the connection returns to it.
    fn drop(&mut self) {
        if self.in_flight {
            // Its state is unknown: closing it ends the transaction on the server.
            self.conn.close_on_drop();
            return;
        }
        for _ in 0..DB::TransactionManager::get_transaction_depth(&self.conn) {
            DB::TransactionManager::start_rollback(&mut self.conn);
        }
    }
}

/// A connection whose BEGIN is under way: dropped before it is kept (the future cancelled, or
/// BEGIN failed), the connection may or may not be inside a transaction, and sqlx would hand it
/// to the next user as it is; it is closed instead (which ends any transaction).
struct CloseUnlessKept<DB: Database>(Option<PoolConnection<DB>>);

impl<DB: Database> Drop for CloseUnlessKept<DB> {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.0 {
            conn.close_on_drop();
        }
    }
}
