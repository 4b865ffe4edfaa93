//! The model's trait impl: its table, columns and their constants, binding and reading a
//! row, the statements' cache, and each column as the schema sees it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::field_type;
use super::receivers::{dispatcher, durable_receivers, on_commit_dispatcher};
use super::relations::{many_to_many, relations, through};
use crate::ast::{self, Model};
use crate::attr::{DefaultKind, SIGNALS};

pub(super) fn expand(model: &Model<'_>) -> TokenStream {
    let ident = model.ident;
    let vis = model.vis;
    let name = ident.to_string();
    let table = &model.table;
    let pk = &model.fields[model.primary_key];
    let pk_ident = pk.ident;
    let pk_ty = pk.ty;
    let pk_index = model.primary_key;
    let field_names = model.fields.iter().map(|f| &f.name);
    let column_names = model.fields.iter().map(|f| &f.column);

    let receiver_fields = SIGNALS.iter().zip(&model.receivers).map(|(s, receivers)| {
        let field = format_ident!("{}", s.name);
        let names = receivers.iter().map(|r| &r.name);
        quote!(#field: &[#(#names),*],)
    });
    let on_commit_names = model.on_commit.iter().map(|r| &r.name);
    let m2m_changed_names = model.m2m_changed.iter().map(|r| &r.name);
    let post_load_names = model.post_load.iter().map(|r| &r.name);
    // Each `#[post_load]` receiver on the instance just read, spanned on the user's path; no
    // method at all (the trait's empty default) for a model without one.
    let post_loads: Vec<_> = model
        .post_load
        .iter()
        .map(|r| {
            let path = &r.path;
            let name = &r.name;
            quote_spanned! {path.span()=>
                ::signals_core::__private::post_load::<Self>(#name, #path, self)?;
            }
        })
        .collect();
    let post_load = (!post_loads.is_empty()).then(|| {
        quote! {
            #[inline]
            fn __post_load(&mut self) -> ::signals_core::Result<()> {
                #(#post_loads)*
                ::core::result::Result::Ok(())
            }
        }
    });
    let through = through(model);
    let many_to_many = many_to_many(model);
    let on_commit = on_commit_dispatcher(model);
    let durable = durable_receivers(model);
    let wired = SIGNALS
        .iter()
        .zip(&model.receivers)
        .filter(|(_, receivers)| !receivers.is_empty())
        .map(|(s, _)| format_ident!("{}", s.kind))
        .chain((!model.on_commit.is_empty()).then(|| format_ident!("OnCommit")));

    // A decimal with declared digits and places binds rounded to them, checked against them.
    let bind = |f: &ast::Field<'_>| {
        let field = f.ident;
        let column = &f.column;
        let field_type = field_type(f.ty);
        match (&f.max_digits, &f.decimal_places) {
            (Some(digits), Some(places)) => quote! {
                #field_type::__bind_scaled(&self.#field, args, #column, #digits, #places)
            },
            _ => quote!(#field_type::__bind(&self.#field, args, #column)),
        }
    };
    let binds = model
        .fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != model.primary_key)
        .map(|(_, f)| {
            let bind = bind(f);
            quote!(#bind?;)
        });

    let field_binds = model.fields.iter().enumerate().map(|(i, f)| {
        let bind = bind(f);
        quote!(#i => #bind,)
    });

    // Both go through `<T as FieldType>`, spanned on the type: an unsupported type is one
    // error, on the user's type.
    // A decimal with declared places reads with exactly that many, on every backend.
    let reads = model.fields.iter().enumerate().map(|(i, f)| {
        let field = f.ident;
        let column = &f.column;
        let field_type = field_type(f.ty);
        match &f.decimal_places {
            Some(places) => {
                quote!(#field: #field_type::__read_scaled(row, #i, #name, #column, #places)?,)
            }
            None => quote!(#field: #field_type::__read(row, #i, #name, #column)?,),
        }
    });

    let primary_key =
        quote_spanned!(pk_ty.span()=> <#pk_ty as ::signals_core::__private::PrimaryKey>);

    let dispatchers = SIGNALS
        .iter()
        .zip(&model.receivers)
        .map(|(s, receivers)| dispatcher(model, s, receivers));

    // The third parameter says whose keys the column holds: this model's for its key, the
    // parent's for a reference, nobody's (`()`) otherwise.
    let column_consts = model.fields.iter().enumerate().map(|(i, f)| {
        let konst = format_ident!("{}", f.name.to_uppercase(), span = f.ident.span());
        let ty = f.ty;
        let column = &f.column;
        let doc = format!("The `{}` column, for [`Model::filter`](::signals_core::Model::filter).", f.column);
        let keys_of = match &f.relation {
            _ if i == model.primary_key => quote!(#ident),
            Some(relation) => {
                let parent = &relation.parent;
                quote!(#parent)
            }
            None => quote!(()),
        };
        quote! {
            #[doc = #doc]
            #vis const #konst: ::signals_core::Column<#ident, #ty, #keys_of> = ::signals_core::__private::column(#i, #column);
        }
    });

    let relations = relations(model);
    let column_defs = column_defs(model);
    let unique_together: Vec<Vec<&String>> = model
        .unique_together
        .iter()
        .map(|set| {
            set.iter()
                .filter_map(|f| model.field_named(f).map(|(_, field)| &field.column))
                .collect()
        })
        .collect();
    let field_refs = model.fields.iter().enumerate().map(|(i, f)| {
        let field = f.ident;
        quote!(#i => &self.#field,)
    });
    // Through `<T as FieldType>`, spanned on the type, as the reads: one error per bad type.
    let field_jsons = model.fields.iter().enumerate().map(|(i, f)| {
        let field = f.ident;
        let field_type = field_type(f.ty);
        match &f.decimal_places {
            Some(places) => quote!(#i => #field_type::__json_scaled(&self.#field, #places),),
            None => quote!(#i => #field_type::__json(&self.#field),),
        }
    });
    let old_values = model.reads_old_row();

    // `sqlx::FromRow` for every backend's row, so `sqlx::query_as::<_, Model>` reads models:
    // one generic impl (three, one per row type, cost the compiler's coherence check more),
    // its parameter named so that no model's name shadows it.
    let from_rows = quote! {
        #[automatically_derived]
        impl<'r, __SignalsRow: ::signals_core::__private::ModelRow>
            ::signals_core::sqlx::FromRow<'r, __SignalsRow>
            for #ident
        {
            #[inline]
            fn from_row(row: &'r __SignalsRow) -> ::core::result::Result<Self, ::signals_core::sqlx::Error> {
                __SignalsRow::__model::<Self>(row)
            }
        }
    };

    quote! {
        #[automatically_derived]
        impl ::signals_core::Model for #ident {
            type Key = #primary_key::Key;
            type __Ops = ::signals_core::__private::Ops;

            const META: ::signals_core::ModelMeta = ::signals_core::ModelMeta {
                name: #name,
                table: #table,
                fields: &[#(#field_names),*],
                columns: &[#(#column_names),*],
                primary_key: #pk_index,
                receivers: ::signals_core::Receivers {
                    #(#receiver_fields)*
                    on_commit: &[#(#on_commit_names),*],
                    m2m_changed: &[#(#m2m_changed_names),*],
                    post_load: &[#(#post_load_names),*],
                },
            };

            const __COLUMNS: &'static [::signals_core::ColumnDef] = &[#(#column_defs),*];
            const __UNIQUE_TOGETHER: &'static [&'static [&'static str]] = &[#(&[#(#unique_together),*]),*];

            #[inline]
            fn __statements(
                backend: ::signals_core::Backend,
            ) -> &'static ::signals_core::__private::Statements {
                static CACHE: ::signals_core::__private::StatementCache =
                    ::signals_core::__private::StatementCache::new();
                CACHE.get(&<Self as ::signals_core::Model>::META, backend)
            }

            #[inline]
            fn __key(&self) -> ::core::option::Option<&<Self as ::signals_core::Model>::Key> {
                #primary_key::key(&self.#pk_ident)
            }

            #[inline]
            fn __set_generated_key(&mut self, id: i64) -> ::signals_core::Result<()> {
                #primary_key::set_generated(&mut self.#pk_ident, id)
            }

            #[inline]
            fn __clear_key(&mut self) {
                #primary_key::clear(&mut self.#pk_ident)
            }

            #[inline]
            fn __bind_values(
                &self,
                args: &mut ::signals_core::__private::Args,
            ) -> ::signals_core::Result<()> {
                #(#binds)*
                ::core::result::Result::Ok(())
            }

            #[inline]
            fn __bind_field(
                &self,
                index: usize,
                args: &mut ::signals_core::__private::Args,
            ) -> ::signals_core::Result<()> {
                match index {
                    #(#field_binds)*
                    _ => ::core::result::Result::Ok(()),
                }
            }

            #[inline]
            fn __from_row(
                row: &::signals_core::__private::Row<'_>,
            ) -> ::signals_core::Result<Self> {
                ::core::result::Result::Ok(Self { #(#reads)* })
            }

            #post_load

            #[inline]
            fn __field(&self, index: usize) -> &dyn ::core::any::Any {
                match index {
                    #(#field_refs)*
                    _ => &(),
                }
            }

            #[inline]
            fn __json(&self, index: usize) -> ::signals_core::__private::serde_json::Value {
                match index {
                    #(#field_jsons)*
                    _ => ::signals_core::__private::serde_json::Value::Null,
                }
            }

        }

        #[automatically_derived]
        impl ::signals_core::__private::Hooks for #ident {
            const __WIRED: u32 = ::signals_core::__private::wired(&[
                #(::signals_core::SignalKind::#wired),*
            ]);
            const __OLD_VALUES: bool = #old_values;

            #(#dispatchers)*
            #on_commit
        }

        #[automatically_derived]
        impl #ident {
            #(#column_consts)*
        }

        #from_rows

        #relations

        #durable

        #through

        #many_to_many
    }
}

/// Each field's `ColumnDef`, and the checks that its schema attributes suit its type.
fn column_defs(model: &Model<'_>) -> Vec<TokenStream> {
    model
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let ty = f.ty;
            let column = &f.column;
            let field_name = &f.name;
            let rust_type = quote!(#ty).to_string().replace(' ', "");
            let stored = quote_spanned!(ty.span()=> <#ty as ::signals_core::FieldType>::Stored);
            let is_pk = i == model.primary_key;
            let auto = if is_pk {
                quote_spanned!(ty.span()=> <#ty as ::signals_core::__private::PrimaryKey>::__AUTO)
            } else {
                quote!(false)
            };
            let unique = f.unique.is_some();
            let some_u32 = |lit: &Option<syn::LitInt>| match lit {
                Some(lit) => quote!(::core::option::Option::Some(#lit)),
                None => quote!(::core::option::Option::None),
            };
            let max_length = some_u32(&f.max_length);
            let decimal = match (&f.max_digits, &f.decimal_places) {
                (Some(d), Some(p)) => quote!(::core::option::Option::Some((#d, #p))),
                _ => quote!(::core::option::Option::None),
            };
            let mut checks = TokenStream::new();
            if let Some(lit) = &f.max_length {
                checks.extend(quote_spanned!(lit.span()=> {
                    struct __Check<T: ::signals_core::__private::MaxLength>(T);
                    let _ = ::core::mem::size_of::<__Check<#ty>>;
                }));
            }
            if let Some(lit) = &f.max_digits {
                checks.extend(quote_spanned!(lit.span()=> {
                    struct __Check<T: ::signals_core::__private::DecimalDigits>(T);
                    let _ = ::core::mem::size_of::<__Check<#ty>>;
                }));
            }
            let index = f.index.is_some();
            let default = match &f.default {
                Some(lit) => {
                    let (check, variant) = match lit.kind {
                        DefaultKind::Text => (quote!(DefaultText), quote!(Text)),
                        DefaultKind::Int => (quote!(DefaultInt), quote!(Int)),
                        DefaultKind::Float => (quote!(DefaultFloat), quote!(Float)),
                        DefaultKind::Bool => (quote!(DefaultBool), quote!(Bool)),
                    };
                    let tokens = &lit.tokens;
                    checks.extend(quote_spanned!(lit.span=> {
                        struct __Check<T: ::signals_core::__private::#check>(T);
                        let _ = ::core::mem::size_of::<__Check<#ty>>;
                    }));
                    quote_spanned!(lit.span=> ::core::option::Option::Some(::signals_core::DbDefault::#variant(#tokens)))
                }
                None => quote!(::core::option::Option::None),
            };
            quote! {{
                #checks
                ::signals_core::__private::column_def::<#stored>(
                    #column, #field_name, #rust_type, #is_pk, #auto, #unique, #max_length, #decimal,
                    #index, #default,
                )
            }}
        })
        .collect()
}
