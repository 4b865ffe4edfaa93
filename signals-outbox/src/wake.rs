//! What wakes a waiting runner: a commit of durable events in this process, a PostgreSQL
//! notification of one in another process (`LISTEN signals_outbox`), or the poll interval.

use std::time::Duration;

use signals_core::durable::{NOTIFY_CHANNEL, commits};
use signals_core::sqlx::postgres::PgListener;
use signals_core::{Backend, Db, PoolRef};
use tokio::sync::watch;

pub(crate) struct Wake {
    commits: Option<watch::Receiver<u64>>,
    listener: Option<PgListener>,
}

impl Wake {
    /// Wakes for this process's commits (unless `local` is off) and, on PostgreSQL, for every
    /// process's: without the notifications (the listener cannot connect) it polls.
    pub(crate) async fn new(db: &Db, local: bool) -> Wake {
        // Only PostgreSQL's pool is asked for (`Db::pool` on an in-memory SQLite database
        // would make it stop keeping its connection).
        let postgres = (db.backend() == Backend::Postgres).then(|| db.pool());
        let listener = match postgres {
            Some(PoolRef::Postgres(pool)) => match PgListener::connect_with(pool).await {
                Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
                    Ok(()) => Some(listener),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot LISTEN for outbox commits; polling");
                        None
                    }
                },
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN for outbox commits; polling");
                    None
                }
            },
            _ => None,
        };
        Wake {
            commits: local.then(commits),
            listener,
        }
    }

    /// Returns at the first commit seen, or after `limit`.
    pub(crate) async fn wait(&mut self, limit: Duration) {
        let local = async {
            match &mut self.commits {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        let mut lost = false;
        let remote = async {
            match &mut self.listener {
                Some(listener) => {
                    if let Err(err) = listener.recv().await {
                        tracing::warn!(error = %err, "outbox notifications lost; polling");
                        lost = true;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = local => {}
            () = remote => {}
            () = tokio::time::sleep(limit) => {}
        }
        if lost {
            self.listener = None;
        }
    }
}

fn handled_sender() -> &'static watch::Sender<u64> {
    static HANDLED: std::sync::OnceLock<watch::Sender<u64>> = std::sync::OnceLock::new();
    HANDLED.get_or_init(|| watch::Sender::new(0))
}

/// A runner of this process settled deliveries (handled, or dead-lettered): wakes
/// [`wait_until_handled`](crate::wait_until_handled) at once.
pub(crate) fn settled() {
    handled_sender().send_modify(|n| *n = n.wrapping_add(1));
}

/// Changes each time a runner of this process settles deliveries.
pub(crate) fn settlements() -> watch::Receiver<u64> {
    handled_sender().subscribe()
}
