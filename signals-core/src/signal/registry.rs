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
use std::sync::{Mutex, RwLock};

tokio::task_local! {
    static SCOPE: u64;
}

static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);
/// The scopes still running; entries of the others are purged as the registry changes.
static LIVE: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// The scope of the running task, if it runs inside `isolate_receivers`.
fn current_scope() -> Option<u64> {
    SCOPE.try_with(|s| *s).ok()
}

/// Runs `work` in a new scope (see `isolate_receivers`); `ended` runs when it ends or is
/// dropped, after the scope is no longer live.
pub(crate) async fn scoped<F: Future>(work: F, ended: fn()) -> F::Output {
    struct Live(u64, fn());
    impl Drop for Live {
        fn drop(&mut self) {
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|s| *s != self.0);
            (self.1)();
        }
    }
    let id = NEXT_SCOPE.fetch_add(1, Ordering::Relaxed);
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    let _live = Live(id, ended);
    SCOPE.scope(id, work).await
}

fn is_live(scope: u64) -> bool {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&scope)
}

/// Whether an entry of `scope` is seen from `current`: process-wide ones everywhere, scoped
/// ones only inside their scope.
fn visible(scope: Option<u64>, current: Option<u64>) -> bool {
    scope.is_none() || scope == current
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
    /// The `isolate_receivers` scope it was connected in, if any.
    scope: Option<u64>,
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
    /// (process-wide, or in this scope).
    pub(crate) fn connect(&self, key: K, uid: &str, receiver: R) -> bool {
        let scope = current_scope();
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.purge(&mut all);
        if all
            .iter()
            .any(|e| e.key == key && e.uid == uid && visible(e.scope, scope))
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
            all.retain(|e| e.scope.is_none_or(is_live));
            self.connected
                .fetch_sub(before - all.len(), Ordering::SeqCst);
        }
    }

    /// Disconnects the receiver under `key` and `uid` (the current scope's, or else the
    /// process-wide one); whether there was one.
    pub(crate) fn disconnect(&self, key: &K, uid: &str) -> bool {
        let scope = current_scope();
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.purge(&mut all);
        let matching =
            |e: &Entry<K, R>, s: Option<u64>| e.key == *key && e.uid == uid && e.scope == s;
        let target = if scope.is_some() && all.iter().any(|e| matching(e, scope)) {
            scope
        } else {
            None
        };
        let before = all.len();
        all.retain(|e| !matching(e, target));
        let removed = before - all.len();
        self.connected.fetch_sub(removed, Ordering::SeqCst);
        removed > 0
    }

    /// The receivers under `key` seen from the current scope, in connection order.
    pub(crate) fn snapshot(&self, key: &K) -> Vec<(&'static str, R)> {
        if self.is_empty() {
            return Vec::new();
        }
        let scope = current_scope();
        let all = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if all.iter().any(|e| e.scope.is_some_and(|s| !is_live(s))) {
            drop(all);
            self.purge_ended();
            return self.snapshot(key);
        }
        all.iter()
            .filter(|e| e.key == *key && visible(e.scope, scope))
            .map(|e| (e.uid, e.receiver.clone()))
            .collect()
    }

    /// Whether any receiver seen from the current scope is connected under `key`.
    pub(crate) fn has(&self, key: &K) -> bool {
        if self.is_empty() {
            return false;
        }
        let scope = current_scope();
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|e| e.key == *key && visible(e.scope, scope))
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
}
