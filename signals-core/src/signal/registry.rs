//! The one registry of receivers connected at run time, under dispatch ids and in connection
//! order: behind model receivers (`runtime`, keyed by model and signal), receivers for every
//! model (`any`, keyed by signal) and custom signals (`custom`, one registry per signal).
//!
//! Receivers connected inside `isolate_receivers` (`scope.rs`) belong to its scope: only work
//! inside it sees them, and they go when it ends.
//!
//! Uses only the standard library and Tokio's task-locals.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A scope and those around it, outermost first: what a task inside nested
/// `isolate_receivers` sees.
type Chain = Arc<[u64]>;

tokio::task_local! {
    static SCOPE: Chain;
}

static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);
/// The scopes still running; entries of the others are purged as the registry changes.
static LIVE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// The scopes the running task is inside, if any.
fn current_chain() -> Option<Chain> {
    SCOPE.try_with(Arc::clone).ok()
}

/// Runs `work` in a new scope inside the current ones (see `isolate_receivers`), begun when it
/// is first polled (in the task that runs it); `ended` runs when it ends or is dropped, after
/// the scope is no longer live. A combinator, not an `async fn`: it holds `work` once.
pub(crate) fn scoped<F: Future>(work: F, ended: fn()) -> impl Future<Output = F::Output> {
    use futures_util::FutureExt as _;
    struct Live(u64, fn());
    impl Drop for Live {
        fn drop(&mut self) {
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|s| *s != self.0);
            (self.1)();
        }
    }
    futures_util::future::lazy(move |_| {
        let id = NEXT_SCOPE.fetch_add(1, Ordering::Relaxed);
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        let live = Live(id, ended);
        let mut chain: Vec<u64> = current_chain().map(|c| c.to_vec()).unwrap_or_default();
        chain.push(id);
        (Chain::from(chain), live)
    })
    .then(move |(chain, live)| {
        // `work` goes first when this is dropped, then the scope.
        SCOPE.scope(chain, work).map(move |output| {
            drop(live);
            output
        })
    })
}

fn is_live(scope: u64) -> bool {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&scope)
}

/// The innermost scope of a chain.
fn innermost(chain: &Chain) -> u64 {
    chain.last().copied().unwrap_or_default()
}

/// Whether an entry of `scope` is seen from `current`: process-wide ones everywhere, scoped
/// ones inside their scope and the scopes nested in it.
fn visible(scope: Option<&Chain>, current: Option<&Chain>) -> bool {
    match scope {
        None => true,
        Some(scope) => current.is_some_and(|c| c.contains(&innermost(scope))),
    }
}

/// Whether two entries would both be seen somewhere: one process-wide, or one's scope inside
/// the other's.
fn overlap(a: Option<&Chain>, b: Option<&Chain>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.contains(&innermost(b)) || b.contains(&innermost(a)),
        _ => true,
    }
}

/// Receivers of type `R`, each under a key `K` (which signal of which model) and a dispatch
/// id unique for its key. Reading is a snapshot, so a receiver may connect or disconnect
/// others while it runs; a registry nothing is connected to costs one atomic load.
pub(crate) struct Registry<K, R> {
    entries: RwLock<Vec<Entry<K, R>>>,
    connected: AtomicUsize,
}

struct Entry<K, R> {
    key: K,
    uid: &'static str,
    receiver: R,
    /// The `isolate_receivers` scopes it was connected in, if any.
    scope: Option<Chain>,
}

impl<K: PartialEq, R: Clone> Registry<K, R> {
    /// An empty registry (usable in a `static`).
    pub(crate) const fn new() -> Self {
        Registry {
            entries: RwLock::new(Vec::new()),
            connected: AtomicUsize::new(0),
        }
    }

    /// Connects `receiver` under `key` and `uid`, in the current `isolate_receivers` scope
    /// if any; `false`, changing nothing, when that id is connected under that key already
    /// where this one would be seen: process-wide, in this scope or one around it, or (for a
    /// process-wide one) in any scope.
    pub(crate) fn connect(&self, key: K, uid: &str, receiver: R) -> bool {
        let scope = current_chain();
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.purge(&mut all);
        if all
            .iter()
            .any(|e| e.key == key && e.uid == uid && overlap(e.scope.as_ref(), scope.as_ref()))
        {
            return false;
        }
        all.push(Entry {
            key,
            uid: intern(uid),
            receiver,
            scope,
        });
        self.connected.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Drops the entries of scopes that ended (and with them what their receivers hold).
    pub(crate) fn purge_ended(&self) {
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.purge(&mut all);
    }

    /// Drops the entries of scopes that ended.
    fn purge(&self, all: &mut Vec<Entry<K, R>>) {
        if all.iter().any(|e| e.scope.is_some()) {
            let before = all.len();
            all.retain(|e| e.scope.as_ref().is_none_or(|c| is_live(innermost(c))));
            self.connected
                .fetch_sub(before - all.len(), Ordering::SeqCst);
        }
    }

    /// Disconnects the receiver under `key` and `uid` seen from here (there is at most one:
    /// the current scope's, one around it, or the process-wide one); whether there was one.
    pub(crate) fn disconnect(&self, key: &K, uid: &str) -> bool {
        let scope = current_chain();
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.purge(&mut all);
        let Some(at) = all.iter().position(|e| {
            e.key == *key && e.uid == uid && visible(e.scope.as_ref(), scope.as_ref())
        }) else {
            return false;
        };
        all.remove(at);
        self.connected.fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// The receivers under `key` seen from the current scope, in connection order.
    pub(crate) fn snapshot(&self, key: &K) -> Vec<(&'static str, R)> {
        if self.is_empty() {
            return Vec::new();
        }
        let scope = current_chain();
        let all = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if all
            .iter()
            .any(|e| e.scope.as_ref().is_some_and(|c| !is_live(innermost(c))))
        {
            drop(all);
            self.purge_ended();
            return self.snapshot(key);
        }
        all.iter()
            .filter(|e| e.key == *key && visible(e.scope.as_ref(), scope.as_ref()))
            .map(|e| (e.uid, e.receiver.clone()))
            .collect()
    }

    /// Whether any receiver seen from the current scope is connected under `key`.
    pub(crate) fn has(&self, key: &K) -> bool {
        if self.is_empty() {
            return false;
        }
        let scope = current_chain();
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|e| e.key == *key && visible(e.scope.as_ref(), scope.as_ref()))
    }

    /// Whether no receiver is connected at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.connected.load(Ordering::SeqCst) == 0
    }
}

/// A dispatch id as a `&'static str`, leaked once per distinct id (ids are few and live as
/// long as the program's receivers).
pub(crate) fn intern(id: &str) -> &'static str {
    static IDS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
    let ids = ids.get_or_insert_with(HashSet::new);
    if let Some(known) = ids.get(id) {
        return known;
    }
    let leaked: &'static str = Box::leak(id.to_owned().into_boxed_str());
    ids.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_per_key_in_connection_order() {
        let registry: Registry<u8, u32> = Registry::new();
        assert!(registry.is_empty());
        assert!(registry.connect(1, "a", 10));
        assert!(registry.connect(1, "b", 11));
        assert!(registry.connect(2, "a", 20));
        assert!(
            !registry.connect(1, "a", 99),
            "the same id twice under one key"
        );
        assert_eq!(registry.snapshot(&1), [("a", 10), ("b", 11)]);
        assert!(registry.has(&2) && !registry.has(&3));
        assert!(registry.disconnect(&1, "a"));
        assert!(!registry.disconnect(&1, "a"));
        assert_eq!(registry.snapshot(&1), [("b", 11)]);
        assert!(registry.disconnect(&1, "b") && registry.disconnect(&2, "a"));
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn scoped_entries_are_seen_inside_their_scopes_only_and_go_with_them() {
        let registry: Registry<u8, u32> = Registry::new();
        assert!(registry.connect(1, "global", 1));
        scoped(
            async {
                assert!(registry.connect(1, "mine", 2));
                assert!(!registry.connect(1, "global", 9), "seen here: one id once");
                assert_eq!(registry.snapshot(&1), [("global", 1), ("mine", 2)]);
            },
            || (),
        )
        .await;
        // Another scope, at the same time as one holding "mine", may take it too.
        let (a, b) = tokio::join!(
            scoped(async { registry.connect(1, "mine", 3) }, || ()),
            scoped(async { registry.connect(1, "mine", 4) }, || ()),
        );
        assert!(a && b);
        assert_eq!(
            registry.snapshot(&1),
            [("global", 1)],
            "gone with their scopes"
        );
        // Nested: the inner scope sees the outer's; an id is once wherever it is seen.
        scoped(
            async {
                assert!(registry.connect(1, "outer", 5));
                scoped(
                    async {
                        assert_eq!(registry.snapshot(&1), [("global", 1), ("outer", 5)]);
                        assert!(!registry.connect(1, "outer", 6));
                        assert!(registry.connect(1, "inner", 7));
                        assert!(registry.disconnect(&1, "outer"), "one seen from here");
                    },
                    || (),
                )
                .await;
                assert_eq!(registry.snapshot(&1), [("global", 1)]);
                // A process-wide connect elsewhere cannot take an id a live scope holds.
                assert!(registry.connect(1, "x", 8));
                let outside =
                    std::thread::scope(|s| s.spawn(|| registry.connect(1, "x", 9)).join());
                assert_eq!(outside.ok(), Some(false));
            },
            || (),
        )
        .await;
        assert!(
            registry.disconnect(&1, "global"),
            "purges the ended scopes too"
        );
        assert!(registry.is_empty());
    }
}
