//! `#[derive(Model)]` and `#[derive(FieldType)]` for [signals-core](https://docs.rs/signals-core): use it through
//! `signals_core::Model`, where it is documented.

mod ast;
mod attr;
mod check;
mod expand;
mod field_type;
mod props;

#[cfg(test)]
mod never_panics;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `signals_core::FieldType`; see the `signals_core` crate documentation.
#[proc_macro_derive(FieldType, attributes(field))]
pub fn derive_field_type(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    field_type::derive(&input).into()
}

/// Derives `signals_core::Model`; see the `signals_core` crate documentation.
#[proc_macro_derive(
    Model,
    attributes(
        model,
        pre_save,
        post_save,
        pre_delete,
        post_delete,
        on_commit,
        m2m_changed,
        post_load
    )
)]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
