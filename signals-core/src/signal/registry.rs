//! The one registry of receivers connected at run time, under dispatch ids and in connection
//! order: behind model receivers (`runtime`, keyed by model and signal), receivers for every
//! model (`any`, keyed by signal) and custom signals (`custom`, one registry per signal).
//!
//! Uses only the standard library.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

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
}

impl<K: PartialEq, R: Clone> Registry<K, R> {
    /// An empty registry (usable in a `static`).
    pub(crate) const fn new() -> Self {
        Registry {
            entries: RwLock::new(Vec::new()),
            connected: AtomicUsize::new(0),
        }
    }

    /// Connects `receiver` under `key` and `uid`; `false`, changing nothing, when that id is
    /// connected under that key already.
    pub(crate) fn connect(&self, key: K, uid: &str, receiver: R) -> bool {
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if all.iter().any(|e| e.key == key && e.uid == uid) {
            return false;
        }
        all.push(Entry {
            key,
            uid: intern(uid),
            receiver,
        });
        self.connected.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Disconnects the receiver under `key` and `uid`; whether there was one.
    pub(crate) fn disconnect(&self, key: &K, uid: &str) -> bool {
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let before = all.len();
        all.retain(|e| !(e.key == *key && e.uid == uid));
        let removed = before - all.len();
        self.connected.fetch_sub(removed, Ordering::SeqCst);
        removed > 0
    }

    /// The receivers under `key`, in connection order.
    pub(crate) fn snapshot(&self, key: &K) -> Vec<(&'static str, R)> {
        if self.is_empty() {
            return Vec::new();
        }
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.key == *key)
            .map(|e| (e.uid, e.receiver.clone()))
            .collect()
    }

    /// Whether any receiver is connected under `key`.
    pub(crate) fn has(&self, key: &K) -> bool {
        !self.is_empty()
            && self
                .entries
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|e| e.key == *key)
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
