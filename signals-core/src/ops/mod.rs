//! Operations: save (`save`), delete (`delete`) with its cascade (`cascade`), and loading
//! (`load`): the runtime behind the `Model` methods, which the derive calls through
//! `__private`.
//!
//! Uses every layer below it: `error`, `kind`, `meta`, `sql`, `value`, `tx`, `model`, `signal`.

pub(crate) mod cascade;
pub(crate) mod delete;
pub(crate) mod load;
pub(crate) mod save;

use crate::error::{Error, Result};
use crate::tx::{Target, Tx};

/// Runs `f` atomically: in a transaction of its own on a pool, in a savepoint inside a caller's
/// transaction. Everything `f` did is rolled back if it fails. Also returns the errors of the
/// after-commit work when the transaction was its own (inside a caller's, that work runs at
/// the caller's commit).
async fn atomically<T>(
    target: Target<'_>,
    model: &'static str,
    f: impl AsyncFnOnce(&mut Tx) -> Result<T>,
) -> Result<(T, Vec<Error>)> {
    match target {
        Target::Db(db) => db.transaction_reporting(f).await,
        Target::Tx(tx) => Ok((tx.atomically(model, f).await?, Vec::new())),
    }
}
