//! Facts derived from the checked AST, computed in one place and read by `check` and the
//! stages of `expand` alike (as thiserror-impl's `prop.rs` does): no stage asks a later one.

use syn::ext::IdentExt as _;

use crate::ast::{Field, Model};

impl<'a> Model<'a> {
    /// The field named `name` as written in an attribute (`changed(status)`,
    /// `unique_together(a, b)`), with its index.
    pub(crate) fn field_named(&self, name: &syn::Ident) -> Option<(usize, &Field<'a>)> {
        let name = name.unraw().to_string();
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// The two reference fields of a through model: exactly two, to two different models.
    pub(crate) fn through_refs(&self) -> Option<[&Field<'a>; 2]> {
        let refs: Vec<&Field<'_>> = self
            .fields
            .iter()
            .filter(|f| f.relation.is_some())
            .collect();
        let [a, b] = refs.as_slice() else { return None };
        let parent = |f: &Field<'_>| {
            let p = &f.relation.as_ref()?.parent;
            Some(quote::quote!(#p).to_string())
        };
        (parent(a) != parent(b)).then_some([*a, *b])
    }

    /// Whether saves read the row they replace: `#[model(old_values)]`, or a receiver with
    /// `changed(..)`.
    pub(crate) fn reads_old_row(&self) -> bool {
        self.old_values
            || self
                .receivers
                .iter()
                .chain(std::iter::once(&self.on_commit))
                .flatten()
                .any(|r| r.changed.is_some())
    }
}
