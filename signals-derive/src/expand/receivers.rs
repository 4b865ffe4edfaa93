//! The receivers' wiring: the methods of `Hooks` that run each signal's receivers in
//! declaration order (one instance, or a batch), robust receivers in savepoints, `changed(..)`
//! conditions, and the `#[on_commit]` receivers, durable ones included.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::Model;
use crate::attr::{Receiver, Signal};

/// Whether any of `fields` differs between `new` and `old` (both `&Self`), among the saved
/// ones: those `update_fields` names when given, else (for `#[on_commit]`) those whose bit is
/// in `written`. Each comparison is spanned on the field as written in `changed(..)`, so a
/// field type without `PartialEq` is an error there.
fn differs(
    model: &Model<'_>,
    fields: &[syn::Ident],
    new: TokenStream,
    old: TokenStream,
    update_fields: Option<TokenStream>,
) -> TokenStream {
    let checks = fields.iter().filter_map(|f| {
        let (index, field) = model.field_named(f)?;
        let name = &field.name;
        let mut member = field.ident.clone();
        member.set_span(f.span());
        let saved = match &update_fields {
            Some(uf) => quote!(::signals_core::__private::saved_field(#uf, #name)),
            None => quote!(written & (1u128 << #index) != 0),
        };
        let places = match &field.decimal_places {
            Some(places) => quote!(::core::option::Option::Some(#places)),
            None => quote!(::core::option::Option::None),
        };
        Some(quote_spanned! {f.span()=>
            (#saved && #new.#member != #old.#member
                && ::signals_core::__private::stored_differs(&#new.#member, &#old.#member, #places))
        })
    });
    quote!(false #(|| #checks)*)
}

/// The methods of `Hooks` that run one signal's receivers in declaration order: for one
/// instance (a batched receiver gets a batch of one), and for a batch of rows (a per-row
/// receiver runs once per row, its error naming the row).
pub(super) fn dispatcher(
    model: &Model<'_>,
    signal: &Signal,
    receivers: &[Receiver],
) -> TokenStream {
    if receivers.is_empty() {
        return TokenStream::new();
    }
    let method = format_ident!("{}", signal.hook);
    let batch_method = format_ident!("{}", signal.batch_hook);
    let context = format_ident!("{}", signal.context);
    let context = quote!(::signals_core::#context<'_>);
    let batch_context = format_ident!("{}", signal.batch_context);
    let batch_context = quote!(::signals_core::#batch_context<'_>);
    let (this, rows) = if signal.mutable {
        (quote!(&mut Self), quote!(&mut [Self]))
    } else {
        (quote!(&Self), quote!(&[Self]))
    };
    // Each receiver as a call on one instance (`this`, `signal`), and as a call on the batch
    // (`rows`, `signal`).
    let one = receivers.iter().map(|r| {
        let span = r.path.span();
        let batch = format_ident!("batch", span = span);
        let signal_ident = format_ident!("signal", span = span);
        let (instance, call_signal, prelude) = match (r.batch.is_some(), signal.mutable) {
            (false, true) => (quote_spanned!(span=> &mut *this), signal_ident, quote!()),
            (false, false) => (quote_spanned!(span=> this), signal_ident, quote!()),
            (true, true) => (
                quote_spanned!(span=> ::core::slice::from_mut(&mut *this)),
                batch,
                quote!(let batch = &mut signal.__as_batch();),
            ),
            (true, false) => (
                quote_spanned!(span=> ::core::slice::from_ref(this)),
                batch,
                quote!(let batch = &mut signal.__as_batch();),
            ),
        };
        receiver_call(model, signal, r, instance, call_signal, prelude)
    });
    let batch = receivers.iter().map(|r| {
        let span = r.path.span();
        if r.batch.is_some() {
            let rows = if signal.mutable {
                quote_spanned!(span=> &mut *rows)
            } else {
                quote_spanned!(span=> rows)
            };
            let ctx = format_ident!("signal", span = span);
            let call = receiver_call(model, signal, r, rows, ctx, quote!());
            return quote! {
                ::signals_core::__private::batch_receiver_runs();
                #call
            };
        }
        let (instance, iter, row_signal) = if signal.mutable {
            (
                quote_spanned!(span=> &mut *this),
                quote!(rows.iter_mut()),
                quote!(signal.__row(i)),
            )
        } else {
            let row_signal = if signal.row_takes_instance {
                quote!(signal.__row(i, this))
            } else {
                quote!(signal.__row(i))
            };
            (quote_spanned!(span=> this), quote!(rows.iter()), row_signal)
        };
        let ctx = format_ident!("signal", span = span);
        let call = receiver_call(model, signal, r, instance, ctx, quote!());
        quote! {
            for (i, this) in #iter.enumerate() {
                let res: ::signals_core::Result<()> = async {
                    let mut one = #row_signal;
                    let signal = &mut one;
                    #call
                    ::core::result::Result::Ok(())
                }
                .await;
                res.map_err(|err| ::signals_core::__private::at_row(i, err))?;
            }
        }
    });
    quote! {
        #[inline]
        fn #method(
            this: #this,
            signal: &mut #context,
        ) -> impl ::core::future::Future<Output = ::signals_core::Result<()>> + ::core::marker::Send {
            async move {
                #(#one)*
                ::core::result::Result::Ok(())
            }
        }

        #[inline]
        fn #batch_method(
            rows: #rows,
            signal: &mut #batch_context,
        ) -> impl ::core::future::Future<Output = ::signals_core::Result<()>> + ::core::marker::Send {
            async move {
                #(#batch)*
                ::core::result::Result::Ok(())
            }
        }
    }
}

/// One receiver's call, as statements: `instance` and `call_signal` are its arguments,
/// `prelude` what binds them; robust receivers run in a savepoint of their own, `changed(..)`
/// ones only when a named field changed.
fn receiver_call(
    model: &Model<'_>,
    signal: &Signal,
    r: &Receiver,
    instance: TokenStream,
    call_signal: syn::Ident,
    prelude: TokenStream,
) -> TokenStream {
    let name = model.ident.to_string();
    let kind = format_ident!("{}", signal.kind);
    let path = &r.path;
    let receiver = &r.name;
    // Spanned on the user's path, every token of the call: "cannot find function", argument
    // and return-type mismatches all point at the receiver as written.
    let span = path.span();
    let call = quote_spanned!(span=> #path(#instance, &mut *#call_signal));
    let receive = quote_spanned! {span=>
        {
            #prelude
            ::signals_core::__private::receive(
                #name,
                ::signals_core::SignalKind::#kind,
                #receiver,
                #call,
                ::core::any::TypeId::of::<Self>(),
            )
            .await
        }
    };
    let run = if r.robust.is_some() {
        // In a savepoint of its own: a failure undoes only this receiver's work, and is
        // collected instead of failing the save.
        quote! {
            let savepoint = ::signals_core::__private::robust_enter(&mut *signal, #name).await?;
            let res = #receive;
            ::signals_core::__private::robust_leave(&mut *signal, savepoint, res).await?;
        }
    } else {
        quote_spanned!(span=> #receive?;)
    };
    match &r.changed {
        None => run,
        Some(fields) => {
            let differs = differs(
                model,
                fields,
                quote!(this),
                quote!(old),
                Some(quote!(signal.update_fields())),
            );
            quote! {
                // `changed(..)`: only when a named field differs from the row this save
                // replaces (always for a creation).
                let fire = match signal.old::<Self>() {
                    ::core::option::Option::None => true,
                    ::core::option::Option::Some(old) => #differs,
                };
                if fire {
                    #run
                }
            }
        }
    }
}

/// The method that schedules the `#[on_commit]` receivers, each with its own copy of the
/// instance (the transaction is gone when they run).
pub(super) fn on_commit_dispatcher(model: &Model<'_>) -> TokenStream {
    if model.on_commit.is_empty() {
        return TokenStream::new();
    }
    let name = model.ident.to_string();
    let calls = model.on_commit.iter().map(|r| {
        let path = &r.path;
        let receiver = &r.name;
        let span = path.span();
        if r.durable.is_some() {
            let Some(fields) = &r.changed else {
                return quote_spanned! {span=>
                    ::signals_core::durable::schedule::<Self>(tx, #name, #receiver, this, what)?;
                };
            };
            // Decided just before COMMIT, inside the transaction.
            let differs = differs(model, fields, quote!(new), quote!(old), None);
            return quote_spanned! {span=>
                ::signals_core::durable::schedule_changed::<Self>(
                    tx,
                    #name,
                    #receiver,
                    this,
                    old,
                    written,
                    |old: &Self, new: &Self, written: u128| -> bool { #differs },
                )?;
            };
        }
        match &r.changed {
            None => quote_spanned! {span=>
                ::signals_core::__private::schedule_on_commit(
                    tx,
                    #name,
                    #receiver,
                    #path(::core::clone::Clone::clone(this), what),
                    ::core::any::TypeId::of::<Self>(),
                );
            },
            Some(fields) => {
                let differs = differs(model, fields, quote!(new), quote!(old), None);
                quote_spanned! {span=>
                    ::signals_core::__private::schedule_on_commit_changed(
                        tx,
                        #name,
                        #receiver,
                        this,
                        old,
                        written,
                        |old: &Self, new: &Self, written: u128| -> bool { #differs },
                        #path,
                    );
                }
            }
        }
    });
    quote! {
        #[inline]
        fn __on_commit(
            this: &Self,
            tx: &mut ::signals_core::Tx,
            what: ::signals_core::Committed,
            old: ::core::option::Option<::core::option::Option<&Self>>,
            written: u128,
        ) -> ::signals_core::Result<()> {
            let _ = (&old, written);
            #(#calls)*
            ::core::result::Result::Ok(())
        }
    }
}

/// Registers each durable receiver by model and name, with the call that reads the instance
/// from its JSON and runs it; the runners of `signals-outbox` find it there.
pub(super) fn durable_receivers(model: &Model<'_>) -> TokenStream {
    let ident = model.ident;
    let name = ident.to_string();
    let out = model
        .on_commit
        .iter()
        .filter(|r| r.durable.is_some())
        .map(|r| {
            let path = &r.path;
            let receiver = &r.name;
            let span = path.span();
            let run = quote_spanned! {span=>
                fn __run<'a, 'b>(
                    payload: &'a str,
                    delivery: &'a mut ::signals_core::durable::Delivery<'b>,
                ) -> ::signals_core::BoxFuture<'a, ::signals_core::Result<()>> {
                    ::signals_core::durable::run_receiver::<#ident, _, _>(
                        payload,
                        delivery,
                        #name,
                        #receiver,
                        |instance, delivery| #path(instance, delivery),
                    )
                }
            };
            quote! {
                const _: () = {
                    #run
                    ::signals_core::__private::inventory::submit! {
                        ::signals_core::durable::DurableReceiver {
                            model: #name,
                            receiver: #receiver,
                            __run: __run,
                        }
                    }
                };
            }
        });
    quote!(#(#out)*)
}
