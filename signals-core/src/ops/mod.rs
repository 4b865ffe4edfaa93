//! Operations: save (`save`), bulk saves (`bulk`), delete (`delete`) and bulk deletes
//! (`bulk_delete`) with their cascade (`cascade`), loading (`load`), typed queries (`query`)
//! and many-to-many links (`m2m`): the runtime behind the `Model` methods, which the derive
//! calls through `__private`.
//!
//! Uses every layer below it: `error`, `kind`, `meta`, `sql`, `value`, `tx`, `model`, `signal`.

pub(crate) mod bulk;
pub(crate) mod bulk_delete;
pub(crate) mod bulk_write;
pub(crate) mod cascade;
pub(crate) mod delete;
pub(crate) mod load;
pub(crate) mod m2m;
pub(crate) mod query;
pub(crate) mod save;

use crate::conn::{Running, receivers_running};
use crate::error::{Error, Result};
use crate::tx::{Target, Tx};

/// Runs `f` atomically: in a transaction of its own on a pool, in a savepoint inside a caller's
/// transaction. Everything `f` did is rolled back if it fails. Also returns the errors of the
/// after-commit work when the transaction was its own (inside a caller's, that work runs at
/// the caller's commit).
///
/// While `f` runs, the task is marked as running receivers on the pool: a receiver that uses
/// the `Db` instead of `signal.tx()` gets [`Error::ReceiverUsedPool`] at once.
async fn atomically<T>(
    target: Target<'_>,
    model: &'static str,
    operation: &'static str,
    f: impl AsyncFnOnce(&mut Tx) -> Result<T>,
) -> Result<(T, Vec<Error>)> {
    let running = |pool| Running {
        pool,
        model,
        operation,
    };
    match target {
        Target::Db(db) => {
            let mark = running(db.id);
            db.transaction_reporting(async |tx: &mut Tx| receivers_running(mark, f(tx)).await)
                .await
        }
        Target::Tx(tx) => {
            let mark = running(tx.pool);
            let value = tx
                .atomically(model, async |tx: &mut Tx| {
                    receivers_running(mark, f(tx)).await
                })
                .await?;
            Ok((value, Vec::new()))
        }
    }
}
