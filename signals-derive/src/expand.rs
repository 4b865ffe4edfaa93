//! Code generation. Only `quote!`: every user error was reported by `attr` and `check`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use crate::ast::{self, Model};
use crate::attr::{Errors, OnDelete, Receiver, RelationKind, SIGNALS, Signal};
use crate::check;

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let model = ast::parse(input, &mut errors).map(|mut model| {
        check::check(&mut model, &mut errors);
        model
    });
    match (model, errors.finish()) {
        (Some(model), None) => expand(&model),
        (_, Some(err)) => {
            let fallback = fallback(input);
            let errors = err.to_compile_error();
            quote!(#errors #fallback)
        }
        // `parse` returns `None` only after reporting an error.
        (None, None) => fallback(input),
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

fn expand(model: &Model<'_>) -> TokenStream {
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

    let binds = model
        .fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != model.primary_key)
        .map(|(_, f)| {
            let field = f.ident;
            let column = &f.column;
            let field_type = field_type(f.ty);
            quote!(#field_type::__bind(&self.#field, args, #column)?;)
        });

    let field_binds = model.fields.iter().enumerate().map(|(i, f)| {
        let field = f.ident;
        let column = &f.column;
        let field_type = field_type(f.ty);
        quote!(#i => #field_type::__bind(&self.#field, args, #column),)
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
                .filter_map(|f| {
                    use syn::ext::IdentExt as _;
                    let name = f.unraw().to_string();
                    model
                        .fields
                        .iter()
                        .find(|mf| mf.name == name)
                        .map(|mf| &mf.column)
                })
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
        quote!(#i => #field_type::__json(&self.#field),)
    });
    let old_values = model.old_values
        || model
            .receivers
            .iter()
            .chain(std::iter::once(&model.on_commit))
            .flatten()
            .any(|r| r.changed.is_some());

    // `sqlx::FromRow` for each backend's row, so `sqlx::query_as::<_, Model>` reads models.
    let from_rows = [
        (quote!(sqlite::SqliteRow), quote!(from_sqlite_row)),
        (quote!(postgres::PgRow), quote!(from_postgres_row)),
        (quote!(mysql::MySqlRow), quote!(from_mysql_row)),
    ]
    .map(|(row, read)| {
        quote! {
            #[automatically_derived]
            impl<'r> ::signals_core::sqlx::FromRow<'r, ::signals_core::sqlx::#row> for #ident {
                fn from_row(
                    row: &'r ::signals_core::sqlx::#row,
                ) -> ::core::result::Result<Self, ::signals_core::sqlx::Error> {
                    ::signals_core::__private::#read(row)
                }
            }
        }
    });

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
                },
            };

            const __COLUMNS: &'static [::signals_core::ColumnDef] = &[#(#column_defs),*];
            const __UNIQUE_TOGETHER: &'static [&'static [&'static str]] = &[#(&[#(#unique_together),*]),*];

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

            fn __set_generated_key(&mut self, id: i64) -> ::signals_core::Result<()> {
                #primary_key::set_generated(&mut self.#pk_ident, id)
            }

            fn __clear_key(&mut self) {
                #primary_key::clear(&mut self.#pk_ident)
            }

            fn __bind_values(
                &self,
                args: &mut ::signals_core::__private::Args,
            ) -> ::signals_core::Result<()> {
                #(#binds)*
                ::core::result::Result::Ok(())
            }

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

            fn __from_row(
                row: &::signals_core::__private::Row<'_>,
            ) -> ::signals_core::Result<Self> {
                ::core::result::Result::Ok(Self { #(#reads)* })
            }

            fn __field(&self, index: usize) -> &dyn ::core::any::Any {
                match index {
                    #(#field_refs)*
                    _ => &(),
                }
            }

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

        #(#from_rows)*

        #relations

        #durable

        #through

        #many_to_many
    }
}

/// The two reference fields of a through model: exactly two, to two different models.
pub(crate) fn through_refs<'m>(model: &'m Model<'_>) -> Option<[&'m ast::Field<'m>; 2]> {
    let refs: Vec<&ast::Field<'_>> = model
        .fields
        .iter()
        .filter(|f| f.relation.is_some())
        .collect();
    let [a, b] = refs.as_slice() else { return None };
    let parent = |f: &ast::Field<'_>| {
        let p = &f.relation.as_ref()?.parent;
        Some(quote!(#p).to_string())
    };
    (parent(a) != parent(b)).then_some([*a, *b])
}

/// A model with exactly two references (to two different models) can be the through model of
/// a many-to-many relation: `Through` both ways, sending its `m2m_changed` receivers.
fn through(model: &Model<'_>) -> TokenStream {
    let Some([a, b]) = through_refs(model) else {
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
fn many_to_many(model: &Model<'_>) -> TokenStream {
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
                #vis fn #name(&self) -> #handle {
                    ::signals_core::ManyToMany::__new(self)
                }
            }

            #[automatically_derived]
            impl #target {
                #[doc = #back_doc]
                #vis fn #reverse(&self) -> #back {
                    ::signals_core::ManyToMany::__new(self)
                }
            }

            ::signals_core::__private::inventory::submit! { #link }
        }
    });
    quote!(#(#out)*)
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
            quote! {{
                #checks
                ::signals_core::__private::column_def::<#stored>(
                    #column, #field_name, #rust_type, #is_pk, #auto, #unique, #max_length, #decimal,
                )
            }}
        })
        .collect()
}

fn field_type(ty: &syn::Type) -> TokenStream {
    quote_spanned!(ty.span()=> <#ty as ::signals_core::FieldType>)
}

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
    use syn::ext::IdentExt as _;
    let checks = fields.iter().filter_map(|f| {
        let index = model.fields.iter().position(|mf| f.unraw() == mf.name)?;
        let field = &model.fields[index];
        let name = &field.name;
        let mut member = field.ident.clone();
        member.set_span(f.span());
        let saved = match &update_fields {
            Some(uf) => quote!(::signals_core::__private::saved_field(#uf, #name)),
            None => quote!(written & (1u128 << #index) != 0),
        };
        Some(quote_spanned! {f.span()=>
            (#saved && #new.#member != #old.#member)
        })
    });
    quote!(false #(|| #checks)*)
}

/// The methods of `Hooks` that run one signal's receivers in declaration order: for one
/// instance (a batched receiver gets a batch of one), and for a batch of rows (a per-row
/// receiver runs once per row, its error naming the row).
fn dispatcher(model: &Model<'_>, signal: &Signal, receivers: &[Receiver]) -> TokenStream {
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
            return receiver_call(model, signal, r, rows, ctx, quote!());
        }
        let (instance, iter, row_signal) = if signal.mutable {
            (
                quote_spanned!(span=> &mut *this),
                quote!(rows.iter_mut()),
                quote!(signal.__row(i)),
            )
        } else {
            let row_signal = if signal.context == "PostSave" {
                quote!(signal.__row(i, this))
            } else {
                quote!(signal.__row())
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
        fn #method(
            this: #this,
            signal: &mut #context,
        ) -> impl ::core::future::Future<Output = ::signals_core::Result<()>> + ::core::marker::Send {
            async move {
                #(#one)*
                ::core::result::Result::Ok(())
            }
        }

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
fn on_commit_dispatcher(model: &Model<'_>) -> TokenStream {
    if model.on_commit.is_empty() {
        return TokenStream::new();
    }
    let name = model.ident.to_string();
    let calls = model.on_commit.iter().map(|r| {
        let path = &r.path;
        let receiver = &r.name;
        let span = path.span();
        if r.durable.is_some() {
            return quote_spanned! {span=>
                ::signals_core::durable::schedule::<Self>(tx, #name, #receiver, this, what)?;
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
fn durable_receivers(model: &Model<'_>) -> TokenStream {
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

/// Registration and loaders for each reference field.
fn relations(model: &Model<'_>) -> TokenStream {
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
