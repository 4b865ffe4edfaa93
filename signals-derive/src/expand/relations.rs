//! Relations: each reference's loaders (`profile.user(&db)`, `Profile::for_user(&db, &user)`),
//! a through model's `Through` impls sending its `m2m_changed` receivers, and each
//! `many_to_many` relation's accessors on both sides with its registration.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{self, Model};
use crate::attr::{OnDelete, RelationKind};

/// A model with exactly two references (to two different models) can be the through model of
/// a many-to-many relation: `Through` both ways, sending its `m2m_changed` receivers.
pub(super) fn through(model: &Model<'_>) -> TokenStream {
    let Some([a, b]) = model.through_refs() else {
        return TokenStream::new();
    };
    let (Some(ra), Some(rb)) = (&a.relation, &b.relation) else {
        return TokenStream::new();
    };
    let (pa, pb) = (&ra.parent, &rb.parent);
    let (ca, cb) = (&a.column, &b.column);
    let (fa, fb) = (a.ident, b.ident);
    let (ta, tb) = (a.ty, b.ty);
    let name = model.ident.to_string();
    let ident = model.ident;
    let calls = |change: TokenStream| {
        let calls = model.m2m_changed.iter().map(|r| {
            let path = &r.path;
            let receiver = &r.name;
            let span = path.span();
            quote_spanned! {span=>
                ::signals_core::__private::receive(
                    #name,
                    ::signals_core::SignalKind::M2mChanged,
                    #receiver,
                    #path(&change, &mut *signal),
                    ::core::any::TypeId::of::<#ident>(),
                )
                .await?;
            }
        });
        quote! {
            ::std::boxed::Box::pin(async move {
                let change = #change;
                let _ = &change;
                #(#calls)*
                ::core::result::Result::Ok(())
            })
        }
    };
    // One impl per direction: from the first reference's model (forward) and from the
    // second's (reverse); `M2mChange` is always typed `<first, second>`.
    let direction = |(from, to): (&syn::Path, &syn::Path),
                     (c_from, c_to): (&String, &String),
                     (f_from, f_to): (&syn::Ident, &syn::Ident),
                     (t_from, t_to): (&syn::Type, &syn::Type),
                     reverse: bool| {
        let make = if reverse {
            quote!(__backward)
        } else {
            quote!(__forward)
        };
        let send =
            calls(quote!(::signals_core::M2mChange::<#pa, #pb>::#make(action, instance, keys)));
        quote! {
            #[automatically_derived]
            impl ::signals_core::__private::Through<#from, #to> for #ident {
                const FROM: &'static str = #c_from;
                const TO: &'static str = #c_to;
                const __REVERSE: bool = #reverse;
                #[inline]
                fn __link(
                    &self,
                ) -> (
                    ::core::option::Option<&<#from as ::signals_core::Model>::Key>,
                    ::core::option::Option<&<#to as ::signals_core::Model>::Key>,
                ) {
                    (
                        <#t_from as ::signals_core::__private::RefersTo<<#from as ::signals_core::Model>::Key>>::referenced_key(&self.#f_from),
                        <#t_to as ::signals_core::__private::RefersTo<<#to as ::signals_core::Model>::Key>>::referenced_key(&self.#f_to),
                    )
                }
                #[inline]
                fn __send<'a>(
                    action: ::signals_core::M2mAction,
                    instance: &'a #from,
                    keys: &'a [<#to as ::signals_core::Model>::Key],
                    signal: &'a mut ::signals_core::M2mChanged<'_>,
                ) -> ::signals_core::BoxFuture<'a, ::signals_core::Result<()>> {
                    let _ = &signal;
                    #send
                }
            }
        }
    };
    let forward = direction((pa, pb), (ca, cb), (fa, fb), (ta, tb), false);
    let backward = direction((pb, pa), (cb, ca), (fb, fa), (tb, ta), true);
    quote!(#forward #backward)
}

/// The accessors of each `many_to_many` relation, on both sides, and its registration (for
/// deletes of either end).
pub(super) fn many_to_many(model: &Model<'_>) -> TokenStream {
    let ident = model.ident;
    let vis = model.vis;
    let out = model.many_to_many.iter().map(|m| {
        let name = &m.name;
        let target = &m.target;
        let th = &m.through;
        let reverse = match &m.related_name {
            Some(r) => r.clone(),
            None => format_ident!("{}_set", ast::snake_case(&ident.to_string())),
        };
        // Spanned on the through model as written: one that is not a through model of these
        // two is an error there.
        let handle = quote_spanned!(th.span()=> ::signals_core::ManyToMany<'_, Self, #target, #th>);
        let back = quote_spanned!(th.span()=> ::signals_core::ManyToMany<'_, Self, #ident, #th>);
        let link = quote_spanned!(th.span()=> ::signals_core::__private::M2mLink::new::<#th, #ident, #target>());
        let doc = format!(
            "The `{}` linked to this `{ident}` through `{}`: add, remove, set, clear, list.",
            quote!(#target).to_string().replace(' ', ""),
            quote!(#th).to_string().replace(' ', "")
        );
        let back_doc = format!(
            "The `{ident}`s linked to this one through `{}` (the reverse of `{ident}::{name}`).",
            quote!(#th).to_string().replace(' ', "")
        );
        quote! {
            #[automatically_derived]
            impl #ident {
                #[doc = #doc]
                #[inline]
                #vis fn #name(&self) -> #handle {
                    ::signals_core::ManyToMany::__new(self)
                }
            }

            #[automatically_derived]
            impl #target {
                #[doc = #back_doc]
                #[inline]
                #vis fn #reverse(&self) -> #back {
                    ::signals_core::ManyToMany::__new(self)
                }
            }

            ::signals_core::__private::inventory::submit! { #link }
        }
    });
    quote!(#(#out)*)
}

/// Registration and loaders for each reference field.
pub(super) fn relations(model: &Model<'_>) -> TokenStream {
    let ident = model.ident;
    let vis = model.vis;
    let mut consts = Vec::new();
    let mut registrations = Vec::new();
    let mut checks = Vec::new();
    let mut loaders = Vec::new();
    for (index, field) in model.fields.iter().enumerate() {
        let Some(rel) = &field.relation else { continue };
        let Some((on_delete, on_delete_ident)) = &rel.on_delete else {
            continue;
        };
        let parent = &rel.parent;
        let ty = field.ty;
        let field_ident = field.ident;
        let on_delete_tokens = match on_delete {
            OnDelete::Cascade => quote!(Cascade),
            OnDelete::Restrict => quote!(Restrict),
            OnDelete::SetNull => quote!(SetNull),
        };
        let kind = match rel.kind {
            RelationKind::OneToOne => quote!(OneToOne),
            RelationKind::ForeignKey => quote!(ForeignKey),
        };
        // The one place the parent and the key type are checked, spanned on the parent as
        // written: a parent that is not a model, or a field that cannot hold its key, is one
        // error there.
        let reference = format_ident!("__SIGNALS_REFERENCE_{}", index);
        let build = quote_spanned! {parent.span()=>
            ::signals_core::__private::reference::<Self, #parent, #ty>(
                #index,
                ::signals_core::__private::OnDelete::#on_delete_tokens,
                ::signals_core::__private::RelationKind::#kind,
            )
        };
        consts.push(quote! {
            #[doc(hidden)]
            const #reference: ::signals_core::__private::Reference<Self, #parent, #ty> = #build;
        });
        registrations.push(quote! {
            ::signals_core::__private::inventory::submit! {
                #ident::#reference.relation
            }
        });
        if *on_delete == OnDelete::SetNull {
            checks.push(quote_spanned! {on_delete_ident.span()=>
                ::signals_core::__private::assert_nullable::<#ty>();
            });
        }

        let base = field.name.strip_suffix("_id").unwrap_or(&field.name);
        let forward = format_ident!("{}", base, span = Span::call_site());
        let reverse = format_ident!("for_{}", base, span = Span::call_site());
        let forward_doc = format!(
            "Loads the `{}` that `{}` refers to (`None` when it is NULL or the row is gone).",
            quote!(#parent).to_string().replace(' ', ""),
            field.name
        );
        let (reverse_ret, reverse_body, reverse_doc) = match rel.kind {
            RelationKind::OneToOne => (
                quote!(::core::option::Option<Self>),
                quote!(::core::result::Result::Ok(rows.pop())),
                format!(
                    "Loads the `{ident}` whose `{}` refers to `parent`, if any: Django's \
                     reverse one-to-one accessor.",
                    field.name
                ),
            ),
            RelationKind::ForeignKey => (
                quote!(::std::vec::Vec<Self>),
                quote!(::core::result::Result::Ok(rows)),
                format!(
                    "Loads every `{ident}` whose `{}` refers to `parent`, ordered by primary key.",
                    field.name
                ),
            ),
        };
        loaders.push(quote! {
            #[doc = #forward_doc]
            #vis async fn #forward<'e>(
                &self,
                ex: impl ::signals_core::Executor<'e>,
            ) -> ::signals_core::Result<::core::option::Option<#parent>> {
                Self::#reference
                    .parent(::signals_core::Executor::__target(ex), &self.#field_ident)
                    .await
            }

            #[doc = #reverse_doc]
            #vis async fn #reverse<'e>(
                ex: impl ::signals_core::Executor<'e>,
                parent: &#parent,
            ) -> ::signals_core::Result<#reverse_ret> {
                #[allow(unused_mut)]
                let mut rows = Self::#reference
                    .children(::signals_core::Executor::__target(ex), parent)
                    .await?;
                #reverse_body
            }
        });
    }
    if consts.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #[automatically_derived]
        impl #ident {
            #(#consts)*
            #(#loaders)*
        }

        #(#registrations)*

        const _: () = {
            #(#checks)*
        };
    }
}
