//! A typed view of the deriving struct, built from its tokens and attributes.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, Ident, Path, Type, Visibility};

use crate::attr::{self, Errors, OnDelete, Receiver, RelationKind, SIGNALS};

pub(crate) struct Model<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) table: String,
    pub(crate) fields: Vec<Field<'a>>,
    /// Index of the primary key in `fields`; set by `check`.
    pub(crate) primary_key: usize,
    /// Per signal of [`SIGNALS`], its receivers in order.
    pub(crate) receivers: [Vec<Receiver>; SIGNALS.len()],
    pub(crate) on_commit: Vec<Receiver>,
    /// `#[model(old_values)]`: saves read the row they replace for every receiver.
    pub(crate) old_values: bool,
    pub(crate) many_to_many: Vec<crate::attr::ManyToMany>,
    pub(crate) m2m_changed: Vec<Receiver>,
    pub(crate) post_load: Vec<Receiver>,
    pub(crate) unique_together: Vec<Vec<Ident>>,
}

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    /// The field's name without `r#`.
    pub(crate) name: String,
    pub(crate) column: String,
    pub(crate) column_span: Span,
    pub(crate) primary_key: Option<Span>,
    pub(crate) relation: Option<Relation>,
    /// `on_delete` written without a relation; reported by `check`.
    pub(crate) stray_on_delete: Option<Ident>,
    pub(crate) unique: Option<Span>,
    pub(crate) max_length: Option<syn::LitInt>,
    pub(crate) max_digits: Option<syn::LitInt>,
    pub(crate) decimal_places: Option<syn::LitInt>,
    pub(crate) index: Option<Span>,
    pub(crate) default: Option<crate::attr::DefaultLit>,
}

pub(crate) struct Relation {
    pub(crate) kind: RelationKind,
    pub(crate) parent: Path,
    pub(crate) key_span: Span,
    pub(crate) on_delete: Option<(OnDelete, Ident)>,
    /// `on_delete` was written with an invalid value, already reported.
    pub(crate) on_delete_reported: bool,
}

/// Builds the model, or returns `None` when the input is not a struct with named fields.
pub(crate) fn parse<'a>(input: &'a DeriveInput, errors: &mut Errors) -> Option<Model<'a>> {
    let attrs = attr::parse_struct_attrs(&input.attrs, errors);
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => named,
            Fields::Unnamed(_) => {
                errors.spanned(
                    &input.ident,
                    "`Model` needs a struct with named fields; tuple structs have no column names",
                );
                return None;
            }
            Fields::Unit => {
                errors.spanned(
                    &input.ident,
                    "`Model` needs a struct with named fields, at least a primary key such as `id: Option<i64>`",
                );
                return None;
            }
        },
        Data::Enum(data) => {
            errors.spanned(
                data.enum_token,
                "`Model` can only be derived for structs with named fields, not enums",
            );
            return None;
        }
        Data::Union(data) => {
            errors.spanned(
                data.union_token,
                "`Model` can only be derived for structs with named fields, not unions",
            );
            return None;
        }
    };
    if !input.generics.params.is_empty() {
        errors.spanned(
            &input.generics,
            "`Model` cannot be derived for a generic struct: a model maps to one table",
        );
    }

    let fields = named
        .named
        .iter()
        .filter_map(|f| {
            let ident = f.ident.as_ref()?;
            let fa = attr::parse_field_attrs(&f.attrs, errors);
            let name = ident.unraw().to_string();
            let (column, column_span) = match fa.column {
                Some(lit) => (lit.value(), lit.span()),
                None => (name.clone(), ident.span()),
            };
            let (relation, stray_on_delete) = match fa.relation {
                Some((kind, parent, key_span)) => (
                    Some(Relation {
                        kind,
                        parent,
                        key_span,
                        on_delete: fa.on_delete,
                        on_delete_reported: fa.on_delete_reported,
                    }),
                    None,
                ),
                None if fa.relation_reported => (None, None),
                None => (None, fa.on_delete.map(|(_, ident)| ident)),
            };
            Some(Field {
                ident,
                ty: &f.ty,
                name,
                column,
                column_span,
                primary_key: fa.primary_key,
                relation,
                stray_on_delete,
                unique: fa.unique,
                max_length: fa.max_length,
                max_digits: fa.max_digits,
                decimal_places: fa.decimal_places,
                index: fa.index,
                default: fa.default,
            })
        })
        .collect();

    let table = match attrs.table {
        Some(lit) => lit.value(),
        None => snake_case(&input.ident.unraw().to_string()),
    };

    Some(Model {
        ident: &input.ident,
        vis: &input.vis,
        table,
        fields,
        primary_key: 0,
        receivers: attrs.receivers,
        on_commit: attrs.on_commit,
        old_values: attrs.old_values,
        many_to_many: attrs.many_to_many,
        m2m_changed: attrs.m2m_changed,
        post_load: attrs.post_load,
        unique_together: attrs.unique_together,
    })
}

/// `UserProfile` → `user_profile`, `HTTPLog` → `http_log`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("UserProfile"), "user_profile");
        assert_eq!(snake_case("HTTPLog"), "http_log");
        assert_eq!(snake_case("Log2Entry"), "log2_entry");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }
}
