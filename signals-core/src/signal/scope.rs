//! Receivers for one test: connected inside [`isolate_receivers`], they are seen only there
//! and dropped when it ends.
//!
//! Uses, of `signal`, the registry, the runtime receivers and those for every model.

use std::future::Future;

use super::registry::scoped;
use super::{any, runtime};

/// Runs `work` with receivers of its own: every receiver connected while it runs (model
/// receivers, receivers for every model, receivers of custom signals) runs only for the
/// saves, deletes and sends made inside `work`, and is disconnected when `work` ends (or is
/// dropped). Outside, receivers connected for the whole process run as usual, inside too.
///
/// For tests that connect receivers at run time: tests of one binary run in parallel in one
/// process, and a receiver one test connects would otherwise fire for the others' saves (and a
/// receiver for every model's `pre_save` or `post_save` makes their saves read the rows they
/// replace). Scopes nest: inside an inner one, the outer one's receivers run too. A dispatch
/// id is connected once wherever it would be seen: two tests may each connect `"audit"` in
/// their own scopes at once, but a process-wide `"audit"` is refused while a scope holds one,
/// and the other way round.
///
/// The scope follows the task, as [`record_signals`](crate::record_signals) does: work
/// spawned onto another task from inside `work` does not see the scope's receivers; wrap the
/// spawned future in `isolate_receivers` of its own if it must.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use signals_core::{Db, Model, PostSave, connect_post_save, isolate_receivers, receivers, SignalKind};
///
/// #[derive(Model)]
/// struct Tag { id: Option<i64> }
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.create_tables::<Tag>().await?;
/// let calls = Arc::new(AtomicUsize::new(0));
/// let seen = calls.clone();
/// isolate_receivers(async {
///     connect_post_save::<Tag, _>("count", async move |_: &Tag, _: &mut PostSave<'_>| {
///         seen.fetch_add(1, Ordering::SeqCst);
///         Ok(())
///     });
///     Tag { id: None }.save(&db).await
/// })
/// .await?;
/// Tag { id: None }.save(&db).await?; // outside: not counted
/// assert_eq!(calls.load(Ordering::SeqCst), 1);
/// assert!(receivers::<Tag>(SignalKind::PostSave).is_empty()); // gone with its scope
/// # Ok(()) }
/// ```
pub fn isolate_receivers<F: Future>(work: F) -> impl Future<Output = F::Output> {
    scoped(work, || {
        runtime::purge_ended();
        any::purge_ended();
    })
}
