//! Custom signals: a typed payload, receivers connected at run time (Django's `Signal()`).
//!
//! Uses `error`, and of `signal` the registry of receivers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::registry::Registry;
use crate::error::{Error, Result};

/// A boxed, sendable future, as runtime receivers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type Receiver<T> = Arc<dyn for<'a> Fn(&'a T) -> BoxFuture<'a, Result<()>> + Send + Sync>;

/// A signal of your own, carrying a `T` to its receivers (Django's `Signal()`).
///
/// Declare it as a `static`; connect receivers under a dispatch id (connecting the same id
/// twice is refused, so a receiver never runs twice); [`send`](Self::send) runs them in
/// connection order and stops at the first error, [`send_robust`](Self::send_robust) runs them
/// all and returns each one's result. Safe to use from many tasks: sending works on a snapshot
/// of the receivers, so no lock is held while they run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> signals_core::Result<()> {
/// use signals_core::{BoxError, Signal};
///
/// struct OrderPlaced { id: u64, total_cents: u64 }
///
/// static ORDER_PLACED: Signal<OrderPlaced> = Signal::new("order_placed");
///
/// assert!(ORDER_PLACED.connect("audit", |order: &OrderPlaced| {
///     Box::pin(async move {
///         println!("order {} placed", order.id);
///         Ok(())
///     })
/// }));
/// assert!(!ORDER_PLACED.connect("audit", |_: &OrderPlaced| Box::pin(async { Ok(()) })));
/// ORDER_PLACED.connect("fraud_check", |order: &OrderPlaced| {
///     let big = order.total_cents > 1_000_000;
///     Box::pin(async move {
///         if big { Err(BoxError::from("needs review").into()) } else { Ok(()) }
///     })
/// });
///
/// assert_eq!(ORDER_PLACED.send(&OrderPlaced { id: 1, total_cents: 500 }).await?, 2);
/// let results = ORDER_PLACED.send_robust(&OrderPlaced { id: 2, total_cents: 5_000_000 }).await;
/// assert!(results[0].1.is_ok() && results[1].1.is_err());
/// assert!(ORDER_PLACED.disconnect("fraud_check"));
/// assert_eq!(ORDER_PLACED.receivers(), ["audit"]);
/// # Ok(()) }
/// ```
pub struct Signal<T> {
    name: &'static str,
    receivers: Registry<(), Receiver<T>>,
}

impl<T> Signal<T> {
    /// A signal with no receivers; `name` appears in errors and traces.
    pub const fn new(name: &'static str) -> Self {
        Signal {
            name,
            receivers: Registry::new(),
        }
    }

    /// The signal's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Connects `receiver` under `dispatch_uid`, after the receivers already connected.
    /// Returns `false`, changing nothing, when a receiver with that id is connected already.
    pub fn connect<F>(&self, dispatch_uid: &str, receiver: F) -> bool
    where
        F: for<'a> Fn(&'a T) -> BoxFuture<'a, Result<()>> + Send + Sync + 'static,
    {
        self.receivers.connect((), dispatch_uid, Arc::new(receiver))
    }

    /// Disconnects the receiver connected under `dispatch_uid`; returns whether there was one.
    pub fn disconnect(&self, dispatch_uid: &str) -> bool {
        self.receivers.disconnect(&(), dispatch_uid)
    }

    /// The dispatch ids of the connected receivers, in the order they run.
    pub fn receivers(&self) -> Vec<&'static str> {
        self.snapshot().into_iter().map(|(uid, _)| uid).collect()
    }

    fn snapshot(&self) -> Vec<(&'static str, Receiver<T>)> {
        self.receivers.snapshot(&())
    }

    /// Runs every receiver in connection order, stopping at the first error, which names the
    /// receiver ([`Error::Signal`]). Returns how many receivers ran.
    pub async fn send(&self, payload: &T) -> Result<usize> {
        let receivers = self.snapshot();
        for (uid, receiver) in &receivers {
            self.run(uid, receiver, payload).await?;
        }
        Ok(receivers.len())
    }

    /// Runs every receiver in connection order, whatever the others return, and gives each
    /// one's result with its dispatch id (Django's `send_robust`).
    pub async fn send_robust(&self, payload: &T) -> Vec<(&'static str, Result<()>)> {
        let mut results = Vec::new();
        for (uid, receiver) in self.snapshot() {
            let res = self.run(uid, &receiver, payload).await;
            results.push((uid, res));
        }
        results
    }

    async fn run(&self, uid: &'static str, receiver: &Receiver<T>, payload: &T) -> Result<()> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("receiver", signal = self.name, receiver = uid);
        receiver(payload)
            .instrument(span)
            .await
            .map_err(|err| Error::Signal {
                signal: self.name,
                receiver: uid,
                source: Box::new(err),
            })
    }
}

impl<T> fmt::Debug for Signal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("name", &self.name)
            .field("receivers", &self.receivers())
            .finish()
    }
}
