//! The table of model signal kinds: the one place in signals-core where a kind is declared.
//!
//! Uses nothing else of the crate; every layer above reads this table. See the module docs of
//! `signal/` for what a new kind needs besides its row here.

use std::fmt;

/// Calls `$callback!` with one row per signal sent for a model instance, in the order they are
/// documented, after any tokens given before the rows (`model_signals!(cb, extra tokens)`).
///
/// A row is `(Kind, name, hook, Context, [instance], connect_fn, "doc")`:
/// - `Kind`: the [`SignalKind`] variant;
/// - `name`: the attribute and the field of [`Receivers`](crate::Receivers) (`pre_save`);
/// - `hook`: the method of `signal::Hooks` the derive implements to run the wired receivers;
/// - `Context`: the context type receivers get (in `signal::context`);
/// - `[instance]`: how receivers borrow the instance, `[mut]` (`&mut`) or `[]` (`&`);
/// - `connect_fn`: the public function connecting a receiver at run time;
/// - `"doc"`: when the signal is sent.
macro_rules! model_signals {
    ($callback:ident $(, $($extra:tt)*)?) => {
        $callback! {
            $($($extra)*)?
            (PreSave, pre_save, __pre_save, PreSave, [mut], connect_pre_save,
                "Sent before a row is inserted or updated.")
            (PostSave, post_save, __post_save, PostSave, [], connect_post_save,
                "Sent after a row was inserted or updated.")
            (PreDelete, pre_delete, __pre_delete, PreDelete, [], connect_pre_delete,
                "Sent before a row is deleted.")
            (PostDelete, post_delete, __post_delete, PostDelete, [], connect_post_delete,
                "Sent after a row was deleted.")
        }
    };
}
pub(crate) use model_signals;

macro_rules! signal_kind {
    ($(($kind:ident, $name:ident, $hook:ident, $ctx:ident, [$($inst:tt)*], $connect:ident, $doc:literal))*) => {
        /// Which model signal a receiver was connected to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum SignalKind {
            $(#[doc = $doc] $kind,)*
            /// Sent once the transaction of a save or delete has committed.
            OnCommit,
            /// Sent before and after the links of a many-to-many relation change.
            M2mChanged,
            /// Sent for each instance built from a row (`#[post_load(..)]`).
            PostLoad,
        }

        impl SignalKind {
            /// The signal's name, as its attribute is spelled (`pre_save`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(SignalKind::$kind => stringify!($name),)*
                    SignalKind::OnCommit => "on_commit",
                    SignalKind::M2mChanged => "m2m_changed",
                    SignalKind::PostLoad => "post_load",
                }
            }
        }
    };
}
model_signals!(signal_kind);

impl SignalKind {
    /// This kind's bit in a set of kinds (`Hooks::__WIRED`, what a model's derive wired).
    pub(crate) const fn bit(self) -> u32 {
        1 << self as u32
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
