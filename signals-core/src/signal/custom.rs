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

/// A receiver of a [`Signal<T>`]: an `async fn(&T) -> Result<()>`, an async closure taking
/// `&T` (capturing state or not), or a closure returning a boxed future that does not borrow
/// the payload. It is cloned for each call (share a capture's state through an `Arc`) and its
/// future is `Send`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a receiver of this signal",
    label = "expected an `async fn(&Payload) -> signals_core::Result<()>` or such an async closure",
    note = "for example: `async move |order: &OrderPlaced| {{ .. Ok(()) }}`"
)]
pub trait SignalReceiver<'a, T: 'a>:
    FnOnce(&'a T) -> <Self as SignalReceiver<'a, T>>::Future + Clone + Send + Sync + 'static
{
    /// The future the receiver returns.
    type Future: Future<Output = Result<()>> + Send + 'a;
}

impl<'a, T: 'a, F, Fut> SignalReceiver<'a, T> for F
where
    F: FnOnce(&'a T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'a,
{
    type Future = Fut;
}

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
/// assert!(ORDER_PLACED.connect("audit", async |order: &OrderPlaced| {
///     println!("order {} placed", order.id);
///     Ok(())
/// }));
/// assert!(!ORDER_PLACED.connect("audit", async |_: &OrderPlaced| Ok(())));
///
/// // A receiver holding state: captures are cloned for each call, so share through an `Arc`.
/// let flagged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let list = flagged.clone();
/// ORDER_PLACED.connect("fraud_check", async move |order: &OrderPlaced| {
///     if order.total_cents > 1_000_000 {
///         list.lock().unwrap().push(order.id);
///         return Err(BoxError::from("needs review").into());
///     }
///     Ok(())
/// });
///
/// assert_eq!(ORDER_PLACED.send(&OrderPlaced { id: 1, total_cents: 500 }).await?, 2);
/// let results = ORDER_PLACED.send_robust(&OrderPlaced { id: 2, total_cents: 5_000_000 }).await;
/// assert!(results[0].1.is_ok() && results[1].1.is_err());
/// assert_eq!(*flagged.lock().unwrap(), [2]);
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
    ///
    /// The receiver is an `async fn(&T) -> Result<()>` or an async closure
    /// (`async move |payload: &T| { .. }`), capturing state or not; see [`SignalReceiver`].
    pub fn connect<F>(&self, dispatch_uid: &str, receiver: F) -> bool
    where
        F: for<'a> SignalReceiver<'a, T>,
        T: 'static,
    {
        let erased: Receiver<T> = Arc::new(move |payload| Box::pin(receiver.clone()(payload)));
        self.receivers.connect((), dispatch_uid, erased)
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
