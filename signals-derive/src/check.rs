//! Rules across fields: one primary key, distinct columns, complete relations.

use crate::ast::Model;
use crate::attr::Errors;

/// Field sets (`update_fields`) are 128-bit masks.
const MAX_FIELDS: usize = 128;

pub(crate) fn check(model: &mut Model<'_>, errors: &mut Errors) {
    if model.fields.len() > MAX_FIELDS {
        errors.spanned(
            model.ident,
            format!(
                "a model has at most {MAX_FIELDS} fields; `{}` has {}",
                model.ident,
                model.fields.len()
            ),
        );
    }
    primary_key(model, errors);
    columns(model, errors);
    relations(model, errors);
    schema(model, errors);
    changed_fields(model, errors);
    fields_exist(model, model.unique_together.iter().flatten(), errors);
    if !model.m2m_changed.is_empty() && model.through_refs().is_none() {
        errors.spanned(
            model.ident,
            format!(
                "`m2m_changed` receivers go on a through model: `{}` needs exactly two references (`foreign_key` or `one_to_one`), one to each side of the relation",
                model.ident
            ),
        );
    }
}

/// Every field named in `changed(..)` is a field of the model.
fn changed_fields(model: &Model<'_>, errors: &mut Errors) {
    let receivers = model
        .receivers
        .iter()
        .chain(std::iter::once(&model.on_commit))
        .flatten();
    fields_exist(
        model,
        receivers.flat_map(|r| r.changed.iter().flatten()),
        errors,
    );
}

/// Each of `fields` (as written in an attribute) names a field of the model; one written once
/// but listed for several receivers is reported once.
fn fields_exist<'a>(
    model: &Model<'_>,
    fields: impl Iterator<Item = &'a syn::Ident>,
    errors: &mut Errors,
) {
    use syn::ext::IdentExt as _;
    let names: Vec<&str> = model.fields.iter().map(|f| f.name.as_str()).collect();
    let mut reported = std::collections::HashSet::new();
    for field in fields {
        let name = field.unraw().to_string();
        if names.contains(&name.as_str())
            || !reported.insert((name.clone(), format!("{:?}", field.span())))
        {
            continue;
        }
        errors.spanned(
            field,
            format!(
                "`{}` has no field `{name}`{}",
                model.ident,
                crate::attr::did_you_mean(&name, &names)
            ),
        );
    }
}

/// `max_digits` and `decimal_places` come together, and a decimal's scale fits its precision.
fn schema(model: &Model<'_>, errors: &mut Errors) {
    for (i, field) in model.fields.iter().enumerate() {
        match (&field.max_digits, &field.decimal_places) {
            (Some(digits), Some(places)) => {
                let (d, p) = (
                    digits.base10_parse::<u32>().unwrap_or(0),
                    places.base10_parse::<u32>().unwrap_or(0),
                );
                if p > d {
                    errors.spanned(
                        places,
                        format!("`decimal_places = {p}` is more than `max_digits = {d}`: the places count among the digits"),
                    );
                }
            }
            (Some(lit), None) => errors.spanned(
                lit,
                "`max_digits` needs `decimal_places` too, as in Django: write `max_digits = 10, decimal_places = 2`",
            ),
            (None, Some(lit)) => errors.spanned(
                lit,
                "`decimal_places` needs `max_digits` too, as in Django: write `max_digits = 10, decimal_places = 2`",
            ),
            (None, None) => {}
        }
        if let Some(span) = field.unique
            && i == model.primary_key
        {
            errors.at(span, "the primary key is unique already; remove `unique`");
        }
        if let Some(span) = field.index {
            if i == model.primary_key {
                errors.at(span, "the primary key is indexed already; remove `index`");
            } else if field.unique.is_some() {
                errors.at(span, "a unique column is indexed already; remove `index`");
            } else if field.relation.is_some() {
                errors.at(span, "a reference is indexed already; remove `index`");
            }
        }
        if let Some(lit) = &field.default
            && i == model.primary_key
        {
            errors.at(
                lit.span,
                "the primary key cannot have a `default`: each row needs its own key",
            );
        }
    }
}

fn primary_key(model: &mut Model<'_>, errors: &mut Errors) {
    let marked: Vec<usize> = model
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.primary_key.is_some())
        .map(|(i, _)| i)
        .collect();
    match marked.as_slice() {
        [] => match model.fields.iter().position(|f| f.name == "id") {
            Some(i) => model.primary_key = i,
            None => errors.spanned(
                model.ident,
                format!(
                    "`{}` has no primary key; add a field `id: Option<i64>` or mark one with `#[model(primary_key)]`",
                    model.ident
                ),
            ),
        },
        [first, rest @ ..] => {
            model.primary_key = *first;
            for &i in rest {
                if let Some(span) = model.fields[i].primary_key {
                    errors.at(
                        span,
                        format!(
                            "a model has one primary key, and `{}` is already it",
                            model.fields[*first].name
                        ),
                    );
                }
            }
        }
    }
    if let Some(pk) = model.fields.get(model.primary_key)
        && let Some(rel) = &pk.relation
    {
        errors.at(
            rel.key_span,
            "the primary key cannot also be a reference; add a separate field for the relation",
        );
    }
}

fn columns(model: &Model<'_>, errors: &mut Errors) {
    for (i, field) in model.fields.iter().enumerate() {
        if let Some(prev) = model.fields[..i].iter().find(|f| f.column == field.column) {
            errors.at(
                field.column_span,
                format!(
                    "column `{}` is already used by field `{}`",
                    field.column, prev.name
                ),
            );
        }
    }
}

fn relations(model: &Model<'_>, errors: &mut Errors) {
    for field in &model.fields {
        if let Some(ident) = &field.stray_on_delete {
            errors.spanned(
                ident,
                "`on_delete` applies to a reference; add `one_to_one = Model` or `foreign_key = Model`",
            );
        }
        if let Some(rel) = &field.relation
            && rel.on_delete.is_none()
            && !rel.on_delete_reported
        {
            errors.at(
                rel.key_span,
                format!(
                    "`{}` needs `on_delete = cascade`, `restrict` or `set_null`, as in Django",
                    rel.kind.key()
                ),
            );
        }
    }
}
