//! Code generation, split by what it generates, as serde_derive keeps `ser.rs` and `de.rs`
//! apart: the model's trait impl, columns and statements (`model`), the receivers' wiring
//! (`receivers`), and relations with their loaders and many-to-many links (`relations`). Only
//! `quote!`: every user error was reported by `attr` and `check`, and the facts every stage
//! reads are on the AST (`props`).

mod model;
mod receivers;
mod relations;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use crate::ast;
use crate::attr::Errors;
use crate::check;

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let model = ast::parse(input, &mut errors).map(|mut model| {
        check::check(&mut model, &mut errors);
        model
    });
    match (model, errors.finish()) {
        (Some(model), None) => model::expand(&model),
        (_, Some(err)) => {
            let errors = err.to_compile_error();
            // A mistake in a receiver attribute leaves the rest of the model sound: expanded
            // without its receivers, the model keeps its columns, loaders and relations, so
            // the code using them shows no errors of its own, only the real one.
            let fallback = without_receivers(input).unwrap_or_else(|| fallback(input));
            quote!(#errors #fallback)
        }
        // `parse` returns `None` only after reporting an error.
        (None, None) => fallback(input),
    }
}

/// The attributes of receivers, which [`without_receivers`] drops.
const RECEIVER_ATTRS: &[&str] = &[
    "pre_save",
    "post_save",
    "pre_delete",
    "post_delete",
    "on_commit",
    "m2m_changed",
    "post_load",
];

/// The whole expansion of the model without its receiver attributes, when that has no error.
fn without_receivers(input: &DeriveInput) -> Option<TokenStream> {
    let is_receiver = |a: &syn::Attribute| RECEIVER_ATTRS.iter().any(|n| a.path().is_ident(n));
    let mut input = input.clone();
    input.attrs.retain(|a| !is_receiver(a));
    if let syn::Data::Struct(data) = &mut input.data {
        for field in data.fields.iter_mut() {
            field.attrs.retain(|a| !is_receiver(a));
        }
    }
    let mut errors = Errors::default();
    let mut model = ast::parse(&input, &mut errors)?;
    check::check(&mut model, &mut errors);
    match errors.finish() {
        None => Some(model::expand(&model)),
        Some(_) => None,
    }
}

/// A minimal impl, so that a model with a mistake shows that mistake and not a cascade of
/// "`User` is not a model" errors wherever it is used.
fn fallback(input: &DeriveInput) -> TokenStream {
    if !input.generics.params.is_empty() {
        // Its bounds would add errors of their own; the generics error says it all.
        return TokenStream::new();
    }
    let ident = &input.ident;
    let name = ident.to_string();
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::signals_core::Model for #ident #ty_generics #where_clause {
            type Key = i64;
            type __Ops = ::signals_core::__private::Fallback;
            const META: ::signals_core::ModelMeta = ::signals_core::ModelMeta {
                name: #name,
                table: "",
                fields: &[],
                columns: &[],
                primary_key: 0,
                receivers: ::signals_core::Receivers::NONE,
            };
            fn __statements(_: ::signals_core::Backend) -> &'static ::signals_core::__private::Statements {
                ::core::unreachable!()
            }
            fn __key(&self) -> ::core::option::Option<&i64> {
                ::core::unreachable!()
            }
            fn __set_generated_key(&mut self, _: i64) -> ::signals_core::Result<()> {
                ::core::unreachable!()
            }
            fn __clear_key(&mut self) {
                ::core::unreachable!()
            }
            fn __bind_values(&self, _: &mut ::signals_core::__private::Args) -> ::signals_core::Result<()> {
                ::core::unreachable!()
            }
            fn __bind_field(&self, _: usize, _: &mut ::signals_core::__private::Args) -> ::signals_core::Result<()> {
                ::core::unreachable!()
            }
            fn __from_row(_: &::signals_core::__private::Row<'_>) -> ::signals_core::Result<Self> {
                ::core::unreachable!()
            }
            fn __field(&self, _: usize) -> &dyn ::core::any::Any {
                ::core::unreachable!()
            }
            fn __json(&self, _: usize) -> ::signals_core::__private::serde_json::Value {
                ::core::unreachable!()
            }
        }
    }
}

pub(super) fn field_type(ty: &syn::Type) -> TokenStream {
    quote_spanned!(ty.span()=> <#ty as ::signals_core::FieldType>)
}
