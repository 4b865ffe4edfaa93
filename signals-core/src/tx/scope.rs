//! The scope stack of a transaction: one frame for the transaction and one per open savepoint,
//! holding everything that a rollback of that savepoint must unwind and that a release hands
//! to the enclosing frame.
//!
//! State that belongs to a savepoint goes here, as a field of [`Frame`] with its line in
//! [`Frame::absorb`]; nothing else of the transaction needs to know of it. Also runs the
//! after-commit work of a committed transaction. Uses `error` and the outbox rows of `tx`.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Duration;

use futures_util::FutureExt as _;

use super::outbox::OutboxRow;
use crate::error::{Error, Result};

/// Work to run after the outermost commit.
pub(crate) type Hook = Pin<Box<dyn Future<Output = Result<()>> + Send + 'static>>;

/// What one savepoint (or the transaction itself, at the bottom) has accumulated.
#[derive(Default)]
pub(crate) struct Frame {
    /// After-commit work scheduled inside it, in order.
    pub(crate) hooks: Vec<Hook>,
    /// Errors of robust receivers that ran inside it, not yet taken by their save or delete.
    pub(crate) robust_errors: Vec<Error>,
    /// Durable receivers' events of the saves and deletes inside it, written just before
    /// the commit.
    pub(crate) outbox: Vec<OutboxRow>,
    /// Work to run if it is rolled back ([`Tx::on_rollback`](super::Tx::on_rollback)), in
    /// order; dropped by the commit.
    pub(crate) on_rollback: Vec<Hook>,
}

impl Frame {
    /// Takes over what `inner`, a released savepoint, accumulated, after this frame's own.
    fn absorb(&mut self, inner: Frame) {
        self.hooks.extend(inner.hooks);
        self.robust_errors.extend(inner.robust_errors);
        self.outbox.extend(inner.outbox);
        self.on_rollback.extend(inner.on_rollback);
    }
}

/// The frames: the transaction's own, and one per open savepoint, innermost last. (The first
/// is kept apart so that a transaction without savepoints allocates nothing for them.)
#[derive(Default)]
pub(crate) struct Scopes {
    base: Frame,
    savepoints: Vec<Frame>,
    /// The after-rollback work of savepoints rolled back, for the transaction to run once
    /// the rollback statement has succeeded.
    rolled_back: Vec<Hook>,
}

impl Scopes {
    /// How many savepoints are open.
    pub(crate) fn depth(&self) -> u32 {
        self.savepoints.len() as u32
    }

    /// The innermost frame, where new state goes.
    pub(crate) fn current(&mut self) -> &mut Frame {
        self.savepoints.last_mut().unwrap_or(&mut self.base)
    }

    /// How much after-commit work is scheduled in all.
    pub(crate) fn hooks(&self) -> usize {
        self.base.hooks.len() + self.savepoints.iter().map(|f| f.hooks.len()).sum::<usize>()
    }

    /// A savepoint was opened.
    pub(crate) fn push(&mut self) {
        self.savepoints.push(Frame::default());
    }

    /// Closes the savepoints above `depth`: released (`keep`), their state goes to the frame
    /// at `depth`; rolled back, it is dropped.
    pub(crate) fn close_to(&mut self, depth: u32, keep: bool) {
        while self.savepoints.len() > depth as usize {
            let Some(inner) = self.savepoints.pop() else {
                break;
            };
            if keep {
                self.current().absorb(inner);
            } else {
                // Innermost first: its work was scheduled last.
                let mut work = inner.on_rollback;
                work.append(&mut self.rolled_back);
                self.rolled_back = work;
            }
        }
    }

    /// Takes the after-commit work of every frame, in the order it was scheduled.
    pub(crate) fn take_hooks(&mut self) -> Vec<Hook> {
        let mut hooks = std::mem::take(&mut self.base.hooks);
        for frame in &mut self.savepoints {
            hooks.append(&mut frame.hooks);
        }
        hooks
    }

    /// The after-rollback work of the savepoints rolled back since the last call, in the
    /// order it was scheduled.
    pub(crate) fn take_rolled_back(&mut self) -> Vec<Hook> {
        std::mem::take(&mut self.rolled_back)
    }

    /// The transaction is rolled back: every frame's after-rollback work, in the order it
    /// was scheduled (that of savepoints rolled back before included); the rest is dropped.
    pub(crate) fn abandon(&mut self) -> Vec<Hook> {
        let mut work = self.take_rolled_back();
        work.append(&mut self.base.on_rollback);
        for frame in &mut self.savepoints {
            work.append(&mut frame.on_rollback);
        }
        *self = Scopes::default();
        work
    }

    /// Ends the transaction: every frame, merged in order, for the commit to run.
    pub(crate) fn finish(&mut self) -> Frame {
        self.close_to(0, true);
        std::mem::take(&mut self.base)
    }
}

/// Runs after-rollback work in order on a task of its own (so that a cancelled caller does
/// not stop it), and waits for it.
pub(crate) async fn run_after_rollback(hooks: Vec<Hook>, limit: Option<Duration>) {
    if hooks.is_empty() {
        return;
    }
    let _ = tokio::spawn(run_each_after_rollback(hooks, limit)).await;
}

/// Runs after-rollback work in order, each piece on its own (as after-commit work runs); what
/// fails is logged.
pub(crate) async fn run_each_after_rollback(hooks: Vec<Hook>, limit: Option<Duration>) {
    for err in run_each(hooks, limit).await {
        tracing::error!(error = %err, "after-rollback work failed");
    }
}

/// Runs after-commit work in order (see [`run_each`]), logging what fails.
pub(crate) async fn run_after_commit(hooks: Vec<Hook>, limit: Option<Duration>) -> Vec<Error> {
    let errors = run_each(hooks, limit).await;
    for err in &errors {
        tracing::error!(error = %err, "after-commit work failed; the commit stands");
    }
    errors
}

/// Runs work in order, each piece on its own: one that fails, panics or (with a `limit`) runs
/// too long is reported, and the next one runs all the same.
async fn run_each(hooks: Vec<Hook>, limit: Option<Duration>) -> Vec<Error> {
    let mut errors = Vec::new();
    for hook in hooks {
        let guarded = AssertUnwindSafe(hook).catch_unwind();
        let outcome = match limit {
            Some(limit) => match tokio::time::timeout(limit, guarded).await {
                Ok(outcome) => outcome,
                Err(_) => Ok(Err(Error::TimedOut(limit))),
            },
            None => guarded.await,
        };
        let res = outcome.unwrap_or_else(|panic| {
            Err(Error::Panicked {
                message: panic_message(panic.as_ref()),
            })
        });
        if let Err(err) = res {
            errors.push(err);
        }
    }
    errors
}

/// The message a panic was raised with.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Hook {
        Box::pin(async { Ok(()) })
    }

    #[test]
    fn rollback_unwinds_and_release_hands_down() {
        let mut s = Scopes::default();
        s.current().hooks.push(hook());
        s.push();
        s.current().hooks.push(hook());
        s.current().robust_errors.push(Error::Config("kept".into()));
        s.push();
        s.current().hooks.push(hook());
        s.current()
            .robust_errors
            .push(Error::Config("dropped".into()));
        assert_eq!((s.depth(), s.hooks()), (2, 3));
        s.close_to(1, false);
        assert_eq!((s.depth(), s.hooks()), (1, 2));
        s.close_to(0, true);
        let all = s.finish();
        assert_eq!(all.hooks.len(), 2);
        assert_eq!(all.robust_errors.len(), 1);
        assert_eq!(
            all.robust_errors[0].to_string(),
            "invalid database configuration: kept"
        );
    }
}
