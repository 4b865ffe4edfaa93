//! `#[derive(FieldType)]`: a newtype stored as what it wraps, or an enum of unit variants
//! stored as text (its variant names) or, with `#[field(integer)]`, as an `i32` (its
//! discriminants).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DataEnum, DeriveInput, Fields, Ident, LitStr};

use crate::attr::{Errors, did_you_mean, key_name, skip_value};

const ENUM_KEYS: &[&str] = &["rename_all", "integer"];
const VARIANT_KEYS: &[&str] = &["rename"];
const RENAME_ALL: &[&str] = &[
    "lowercase",
    "UPPERCASE",
    "snake_case",
    "SCREAMING_SNAKE_CASE",
    "kebab-case",
    "camelCase",
    "PascalCase",
];

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let out = match &input.data {
        Data::Struct(data) => newtype(input, &data.fields, &mut errors),
        Data::Enum(data) => enumeration(input, data, &mut errors),
        Data::Union(data) => {
            errors.spanned(
                data.union_token,
                "`FieldType` can be derived for a newtype or an enum of unit variants, not a union",
            );
            None
        }
    };
    match (out, errors.finish()) {
        (Some(out), None) => out,
        (_, Some(err)) => err.to_compile_error(),
        (None, None) => TokenStream::new(),
    }
}

/// `struct Email(String);`: stored as the wrapped type, through its own code (no copy).
fn newtype(input: &DeriveInput, fields: &Fields, errors: &mut Errors) -> Option<TokenStream> {
    for attr in field_attrs(&input.attrs) {
        errors.spanned(
            attr.path(),
            "`#[field(..)]` options are for enums; a newtype is stored as the type it wraps",
        );
    }
    let field = match fields {
        Fields::Unnamed(f) if f.unnamed.len() == 1 => &f.unnamed[0],
        Fields::Named(f) if f.named.len() == 1 => &f.named[0],
        _ => {
            errors.spanned(
                &input.ident,
                "`FieldType` can be derived for a struct with exactly one field (a newtype such as \
                 `struct Email(String);`), stored as that field; for more, implement `FieldType` \
                 by hand or use `Json<T>`",
            );
            return None;
        }
    };
    let ident = &input.ident;
    let ty = &field.ty;
    let member: syn::Member = match &field.ident {
        Some(name) => name.clone().into(),
        None => syn::Index::from(0).into(),
    };
    let construct = match &field.ident {
        Some(name) => quote!(|inner| Self { #name: inner }),
        None => quote!(Self),
    };
    let inner = quote_spanned!(ty.span()=> <#ty as ::signals_core::FieldType>);
    let mut generics = input.generics.clone();
    if !generics.params.is_empty() {
        generics
            .make_where_clause()
            .predicates
            .push(syn::parse_quote_spanned!(ty.span()=> #ty: ::signals_core::FieldType));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    // Spanned on the wrapped type: a type that cannot be a field is one error, there.
    Some(quote_spanned! {ty.span()=>
        #[automatically_derived]
        impl #impl_generics ::signals_core::FieldType for #ident #ty_generics #where_clause {
            type Stored = #inner::Stored;
            const NULLABLE: bool = #inner::NULLABLE;

            #[inline]
            fn to_stored(&self) -> Self::Stored {
                #inner::to_stored(&self.#member)
            }
            #[inline]
            fn from_stored(
                stored: Self::Stored,
            ) -> ::core::result::Result<Self, ::signals_core::sqlx::error::BoxDynError> {
                #inner::from_stored(stored).map(#construct)
            }
            #[inline]
            fn is_null(&self) -> bool {
                #inner::is_null(&self.#member)
            }
            #[inline]
            fn __bind(
                &self,
                args: &mut ::signals_core::__private::Args,
                column: &'static str,
            ) -> ::signals_core::Result<()> {
                #inner::__bind(&self.#member, args, column)
            }
            #[inline]
            fn __read(
                row: &::signals_core::__private::Row<'_>,
                index: usize,
                model: &'static str,
                column: &'static str,
            ) -> ::signals_core::Result<Self> {
                #inner::__read(row, index, model, column).map(#construct)
            }
            #[inline]
            fn __read_option(
                row: &::signals_core::__private::Row<'_>,
                index: usize,
                model: &'static str,
                column: &'static str,
            ) -> ::signals_core::Result<::core::option::Option<Self>> {
                ::core::result::Result::Ok(
                    #inner::__read_option(row, index, model, column)?.map(#construct),
                )
            }
        }
    })
}

fn field_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("field"))
}

/// An enum of unit variants, stored as text or as its discriminants.
fn enumeration(input: &DeriveInput, data: &DataEnum, errors: &mut Errors) -> Option<TokenStream> {
    let mut rename_all: Option<LitStr> = None;
    let mut integer: Option<Ident> = None;
    for attr in field_attrs(&input.attrs) {
        let res = attr.parse_nested_meta(|meta| {
            let key = key_name(&meta);
            match key.as_str() {
                "rename_all" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    if rename_all.is_some() {
                        errors.spanned(&meta.path, "duplicate field attribute `rename_all`");
                    } else if !RENAME_ALL.contains(&lit.value().as_str()) {
                        errors.spanned(
                            &lit,
                            format!(
                                "unknown `rename_all` style \"{}\"{}",
                                lit.value(),
                                did_you_mean(&lit.value(), RENAME_ALL)
                            ),
                        );
                    } else {
                        rename_all = Some(lit);
                    }
                }
                "integer" => {
                    if integer.is_some() {
                        errors.spanned(&meta.path, "duplicate field attribute `integer`");
                    }
                    integer = meta.path.get_ident().cloned();
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        errors.spanned(
                            &meta.path,
                            "`integer` takes no value: write `#[field(integer)]`; the values are \
                             the variants' discriminants, stored as an `i32`",
                        );
                        skip_value(&meta)?;
                    }
                }
                k => {
                    errors.spanned(
                        &meta.path,
                        format!(
                            "unknown field attribute `{k}`{}",
                            did_you_mean(k, ENUM_KEYS)
                        ),
                    );
                    skip_value(&meta)?;
                }
            }
            Ok(())
        });
        if let Err(err) = res {
            errors.push(err);
        }
    }
    if let (Some(int), Some(lit)) = (&integer, &rename_all) {
        errors.spanned(
            lit,
            format!(
                "`rename_all` names the text stored for each variant, but `{int}` stores the \
                 discriminants; use one or the other"
            ),
        );
    }
    if !input.generics.params.is_empty() {
        errors.spanned(
            &input.generics,
            "`FieldType` cannot be derived for a generic enum",
        );
    }
    if data.variants.is_empty() {
        errors.spanned(
            &input.ident,
            "`FieldType` needs an enum with at least one variant: an empty enum has no value to store",
        );
        return None;
    }

    let mut variants = Vec::new();
    let mut stored_names: Vec<(String, proc_macro2::Span)> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            errors.spanned(
                &variant.fields,
                format!(
                    "`FieldType` stores an enum as one value per variant, so its variants cannot \
                     hold data; `{}` does (use `Json<T>` to store data)",
                    variant.ident
                ),
            );
            continue;
        }
        let mut rename: Option<LitStr> = None;
        for attr in field_attrs(&variant.attrs) {
            let res = attr.parse_nested_meta(|meta| {
                let key = key_name(&meta);
                match key.as_str() {
                    "rename" => {
                        let lit: LitStr = meta.value()?.parse()?;
                        if let Some(int) = &integer {
                            errors.spanned(
                                &lit,
                                format!(
                                    "`rename` names the text stored for this variant, but the enum \
                                     is `{int}`: it stores the discriminant"
                                ),
                            );
                        } else if rename.is_some() {
                            errors.spanned(&meta.path, "duplicate field attribute `rename`");
                        } else {
                            rename = Some(lit);
                        }
                    }
                    k => {
                        errors.spanned(
                            &meta.path,
                            format!(
                                "unknown variant attribute `{k}`{}",
                                did_you_mean(k, VARIANT_KEYS)
                            ),
                        );
                        skip_value(&meta)?;
                    }
                }
                Ok(())
            });
            if let Err(err) = res {
                errors.push(err);
            }
        }
        let name = match &rename {
            Some(lit) => lit.value(),
            None => apply(
                rename_all.as_ref().map(LitStr::value).as_deref(),
                &variant.ident.to_string(),
            ),
        };
        let span = rename
            .as_ref()
            .map_or_else(|| variant.ident.span(), LitStr::span);
        if integer.is_none() {
            if let Some((_, first)) = stored_names.iter().find(|(n, _)| *n == name) {
                let mut err = syn::Error::new(
                    span,
                    format!("two variants would both be stored as \"{name}\""),
                );
                err.combine(syn::Error::new(*first, "the other one is here"));
                errors.push(err);
            }
            stored_names.push((name.clone(), span));
        }
        variants.push((&variant.ident, name));
    }

    let ident = &input.ident;
    let enum_name = ident.to_string();
    let idents: Vec<&Ident> = variants.iter().map(|(i, _)| *i).collect();
    let body = if integer.is_some() {
        let known = idents
            .iter()
            .map(|i| quote!(::std::format!("{}", Self::#i as i32)))
            .collect::<Vec<_>>();
        quote! {
            type Stored = i32;

            #[inline]
            fn to_stored(&self) -> i32 {
                match self {
                    #(Self::#idents => Self::#idents as i32,)*
                }
            }

            fn from_stored(
                stored: i32,
            ) -> ::core::result::Result<Self, ::signals_core::sqlx::error::BoxDynError> {
                #(if stored == Self::#idents as i32 {
                    return ::core::result::Result::Ok(Self::#idents);
                })*
                let known: ::std::vec::Vec<::std::string::String> = ::std::vec![#(#known),*];
                ::core::result::Result::Err(::std::format!(
                    "`{}` has no variant stored as {} (known: {})",
                    #enum_name,
                    stored,
                    known.join(", "),
                ).into())
            }
        }
    } else {
        let names: Vec<&String> = variants.iter().map(|(_, n)| n).collect();
        let known = names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        quote! {
            type Stored = ::std::string::String;

            #[inline]
            fn to_stored(&self) -> ::std::string::String {
                ::std::string::String::from(match self {
                    #(Self::#idents => #names,)*
                })
            }

            fn from_stored(
                stored: ::std::string::String,
            ) -> ::core::result::Result<Self, ::signals_core::sqlx::error::BoxDynError> {
                match stored.as_str() {
                    #(#names => ::core::result::Result::Ok(Self::#idents),)*
                    other => ::core::result::Result::Err(::std::format!(
                        "`{}` has no variant stored as {:?} (known: {})",
                        #enum_name,
                        other,
                        #known,
                    ).into()),
                }
            }
        }
    };
    Some(quote! {
        #[automatically_derived]
        impl ::signals_core::FieldType for #ident {
            #body
        }
    })
}

/// A variant name in a `rename_all` style.
fn apply(style: Option<&str>, name: &str) -> String {
    let words = words(name);
    let lower = || words.iter().map(|w| w.to_lowercase()).collect::<Vec<_>>();
    let capitalized = || {
        words
            .iter()
            .map(|w| {
                let mut chars = w.chars();
                chars.next().map_or_else(String::new, |first| {
                    first
                        .to_uppercase()
                        .chain(chars.flat_map(char::to_lowercase))
                        .collect()
                })
            })
            .collect::<Vec<_>>()
    };
    match style {
        Some("lowercase") => name.to_lowercase(),
        Some("UPPERCASE") => name.to_uppercase(),
        Some("snake_case") => lower().join("_"),
        Some("SCREAMING_SNAKE_CASE") => lower().join("_").to_uppercase(),
        Some("kebab-case") => lower().join("-"),
        Some("camelCase") => {
            let mut out = capitalized().concat();
            if let Some(first) = out.get(..1) {
                out = first.to_lowercase() + &out[1..];
            }
            out
        }
        Some("PascalCase") => capitalized().concat(),
        _ => name.to_owned(),
    }
}

/// `HTTPStatus` → `HTTP`, `Status`; `Draft2` → `Draft2`; `in_review` → `in`, `review`.
fn words(name: &str) -> Vec<String> {
    crate::ast::snake_case(name)
        .split('_')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::apply;

    #[test]
    fn rename_all_styles() {
        assert_eq!(apply(None, "InReview"), "InReview");
        assert_eq!(apply(Some("lowercase"), "InReview"), "inreview");
        assert_eq!(apply(Some("UPPERCASE"), "InReview"), "INREVIEW");
        assert_eq!(apply(Some("snake_case"), "InReview"), "in_review");
        assert_eq!(apply(Some("SCREAMING_SNAKE_CASE"), "InReview"), "IN_REVIEW");
        assert_eq!(apply(Some("kebab-case"), "HTTPError"), "http-error");
        assert_eq!(apply(Some("camelCase"), "InReview"), "inReview");
        assert_eq!(apply(Some("PascalCase"), "in_review"), "InReview");
    }
}
