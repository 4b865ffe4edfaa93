//! Parsing of `#[model(..)]` and the signal attributes. Reports user errors; emits no code.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitStr, Path, Token};

/// Collects every error instead of stopping at the first (serde's `Ctxt`).
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    pub(crate) fn spanned(&mut self, tokens: impl quote::ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    pub(crate) fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    pub(crate) fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

/// One model signal as the derive sees it. [`SIGNALS`] is the derive's one table of them; it
/// mirrors `model_signals!` in signals-core's `kind.rs` row for row (the attribute names are
/// also declared to the compiler in `lib.rs`).
#[derive(Debug)]
pub(crate) struct Signal {
    /// The attribute, and the field of `Receivers`.
    pub(crate) name: &'static str,
    /// The `SignalKind` variant.
    pub(crate) kind: &'static str,
    /// The method of `Hooks` that runs its receivers.
    pub(crate) hook: &'static str,
    /// The context type receivers get.
    pub(crate) context: &'static str,
    /// Whether receivers get the instance as `&mut` (else `&`).
    pub(crate) mutable: bool,
    /// The method of `Hooks` that runs its receivers for a batch of rows.
    pub(crate) batch_hook: &'static str,
    /// The context type batched receivers get.
    pub(crate) batch_context: &'static str,
    /// Whether the per-row context made from a batch's (a per-row receiver run in a bulk)
    /// takes the row itself: `PostSave`'s does, for its old values.
    pub(crate) row_takes_instance: bool,
}

/// The model signals, in the order their attributes are documented.
pub(crate) const SIGNALS: [Signal; 4] = [
    Signal {
        name: "pre_save",
        kind: "PreSave",
        hook: "__pre_save",
        context: "PreSave",
        batch_hook: "__pre_save_batch",
        batch_context: "PreSaveBatch",
        mutable: true,
        row_takes_instance: false,
    },
    Signal {
        name: "post_save",
        kind: "PostSave",
        hook: "__post_save",
        context: "PostSave",
        batch_hook: "__post_save_batch",
        batch_context: "PostSaveBatch",
        mutable: false,
        row_takes_instance: true,
    },
    Signal {
        name: "pre_delete",
        kind: "PreDelete",
        hook: "__pre_delete",
        context: "PreDelete",
        batch_hook: "__pre_delete_batch",
        batch_context: "PreDeleteBatch",
        mutable: false,
        row_takes_instance: false,
    },
    Signal {
        name: "post_delete",
        kind: "PostDelete",
        hook: "__post_delete",
        context: "PostDelete",
        batch_hook: "__post_delete_batch",
        batch_context: "PostDeleteBatch",
        mutable: false,
        row_takes_instance: false,
    },
];

/// The index in [`SIGNALS`] of the signal `attr` is the attribute of.
fn signal_of(attr: &Attribute) -> Option<usize> {
    SIGNALS.iter().position(|s| attr.path().is_ident(s.name))
}

/// A receiver as written: a path to an async fn.
pub(crate) struct Receiver {
    pub(crate) path: Path,
    /// The path as written, for errors and introspection.
    pub(crate) name: String,
    /// Listed with `robust` (where it was written): its errors are collected instead of
    /// failing the save.
    pub(crate) robust: Option<Span>,
    /// Listed with `batch` (where it was written): it takes the rows of a chunk as a slice,
    /// with the signal's batch context.
    pub(crate) batch: Option<Span>,
    /// Listed with `durable` (an `on_commit` receiver, where it was written): the save writes
    /// an outbox row in its transaction and the receiver runs from it, at least once.
    pub(crate) durable: Option<Span>,
    /// Listed with `changed(a, b)`: runs only when one of these fields changed. The fields
    /// are checked against the struct's by `check`.
    pub(crate) changed: Option<Vec<Ident>>,
}

/// A many-to-many relation declared on a model.
pub(crate) struct ManyToMany {
    /// The accessor's name (`tags`).
    pub(crate) name: Ident,
    /// The model on the other side.
    pub(crate) target: Path,
    /// The through model.
    pub(crate) through: Path,
    /// The reverse accessor's name on the target (default: `<model>_set`).
    pub(crate) related_name: Option<Ident>,
}

impl syn::parse::Parse for ManyToMany {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let _: Token![:] = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "write `many_to_many(tags: Tag, through = PostTag)`",
            )
        })?;
        let target: Path = input.parse()?;
        let mut through = None;
        let mut related_name = None;
        while input.peek(Token![,]) {
            let _: Token![,] = input.parse()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            let _: Token![=] = input.parse()?;
            match key.to_string().as_str() {
                "through" => through = Some(input.parse::<Path>()?),
                "related_name" => related_name = Some(input.parse::<Ident>()?),
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown `many_to_many` option `{other}`{}",
                            did_you_mean(other, &["through", "related_name"])
                        ),
                    ));
                }
            }
        }
        let Some(through) = through else {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "`many_to_many({name}: ..)` needs its through model: add `through = ..`, a model with a reference to each side"
                ),
            ));
        };
        Ok(ManyToMany {
            name,
            target,
            through,
            related_name,
        })
    }
}

/// One item of a receiver list: a receiver's path, or `changed(field, ..)`.
enum ListItem {
    Path(Path),
    Changed(Ident, Punctuated<Ident, Token![,]>),
}

impl syn::parse::Parse for ListItem {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(Ident) && input.peek2(syn::token::Paren) {
            let fork = input.fork();
            let ident: Ident = fork.parse()?;
            if ident == "changed" {
                let _: Ident = input.parse()?;
                let content;
                syn::parenthesized!(content in input);
                let fields = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                return Ok(ListItem::Changed(ident, fields));
            }
        }
        input.parse().map(ListItem::Path)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OnDelete {
    Cascade,
    Restrict,
    SetNull,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RelationKind {
    OneToOne,
    ForeignKey,
}

impl RelationKind {
    pub(crate) fn key(self) -> &'static str {
        match self {
            RelationKind::OneToOne => "one_to_one",
            RelationKind::ForeignKey => "foreign_key",
        }
    }
}

/// `#[model(..)]` and signal attributes of the struct.
#[derive(Default)]
pub(crate) struct StructAttrs {
    pub(crate) table: Option<LitStr>,
    pub(crate) old_values: bool,
    /// `many_to_many(name: Target, through = Through, related_name = name)`, in order.
    pub(crate) many_to_many: Vec<ManyToMany>,
    /// `#[m2m_changed(..)]` receivers (of a through model).
    pub(crate) m2m_changed: Vec<Receiver>,
    /// `#[post_load(..)]` receivers: plain functions given each instance built from a row.
    pub(crate) post_load: Vec<Receiver>,
    /// `unique_together(a, b)`, each a set of fields unique as a whole.
    pub(crate) unique_together: Vec<Vec<Ident>>,
    /// Per signal of [`SIGNALS`], its receivers in order.
    pub(crate) receivers: [Vec<Receiver>; SIGNALS.len()],
    pub(crate) on_commit: Vec<Receiver>,
}

/// `#[model(..)]` of one field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    pub(crate) primary_key: Option<Span>,
    pub(crate) column: Option<LitStr>,
    pub(crate) relation: Option<(RelationKind, Path, Span)>,
    pub(crate) on_delete: Option<(OnDelete, Ident)>,
    /// A relation or `on_delete` was written but already reported as invalid: the checks
    /// that it is missing would only repeat that.
    pub(crate) relation_reported: bool,
    pub(crate) on_delete_reported: bool,
    /// `unique`: a UNIQUE column in the schema.
    pub(crate) unique: Option<Span>,
    /// `max_length = N`: a `VARCHAR(N)` column in the schema.
    pub(crate) max_length: Option<syn::LitInt>,
    /// `max_digits = N`: a decimal's precision in the schema.
    pub(crate) max_digits: Option<syn::LitInt>,
    /// `decimal_places = N`: a decimal's scale in the schema.
    pub(crate) decimal_places: Option<syn::LitInt>,
    /// `index`: an index on the column.
    pub(crate) index: Option<Span>,
    /// `default = literal`: the column's default in the database.
    pub(crate) default: Option<DefaultLit>,
}

/// A `default = ..` literal: its kind and its value as a token, negative numbers included.
#[derive(Clone)]
pub(crate) struct DefaultLit {
    pub(crate) kind: DefaultKind,
    /// The literal (with its minus sign), spanned where written.
    pub(crate) tokens: proc_macro2::TokenStream,
    pub(crate) span: Span,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultKind {
    Text,
    Int,
    Float,
    Bool,
}

impl DefaultLit {
    /// A literal, or a minus sign and a number; anything else is reported.
    fn parse(expr: &syn::Expr, errors: &mut Errors) -> Option<DefaultLit> {
        let (lit, negative) = match expr {
            syn::Expr::Lit(e) => (&e.lit, false),
            syn::Expr::Unary(syn::ExprUnary {
                op: syn::UnOp::Neg(_),
                expr: inner,
                ..
            }) => match &**inner {
                syn::Expr::Lit(e) if matches!(e.lit, syn::Lit::Int(_) | syn::Lit::Float(_)) => {
                    (&e.lit, true)
                }
                _ => (
                    &syn::Lit::Verbatim(proc_macro2::Literal::u8_suffixed(0)),
                    true,
                ),
            },
            _ => (
                &syn::Lit::Verbatim(proc_macro2::Literal::u8_suffixed(0)),
                false,
            ),
        };
        if let syn::Lit::Str(text) = lit
            && text.value().contains('\0')
        {
            errors.spanned(
                expr,
                "`default` cannot hold a NUL character (U+0000): SQLite ends a statement there and PostgreSQL text cannot hold one",
            );
            return None;
        }
        let kind = match lit {
            syn::Lit::Str(_) if !negative => DefaultKind::Text,
            syn::Lit::Int(i) if i.suffix().is_empty() && i.base10_parse::<i64>().is_ok() => {
                DefaultKind::Int
            }
            syn::Lit::Float(f)
                if f.suffix().is_empty() && f.base10_parse::<f64>().is_ok_and(f64::is_finite) =>
            {
                DefaultKind::Float
            }
            syn::Lit::Bool(_) if !negative => DefaultKind::Bool,
            _ => {
                errors.spanned(
                    expr,
                    "`default` is a literal the database stores: a string, a number or a boolean, as in `default = \"\"`, `default = 0` or `default = false`",
                );
                return None;
            }
        };
        Some(DefaultLit {
            kind,
            tokens: quote::quote!(#expr),
            span: expr.span(),
        })
    }
}

const STRUCT_KEYS: &[&str] = &["table", "old_values", "many_to_many", "unique_together"];
const FIELD_KEYS: &[&str] = &[
    "primary_key",
    "column",
    "one_to_one",
    "foreign_key",
    "on_delete",
    "unique",
    "max_length",
    "max_digits",
    "decimal_places",
    "index",
    "default",
];
const ON_DELETE: &[&str] = &["cascade", "restrict", "set_null"];

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => {
            let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            format!("; expected one of {}", list.join(", "))
        }
    }
}

pub(crate) fn key_name(meta: &ParseNestedMeta) -> String {
    let path = &meta.path;
    path.get_ident()
        .map(|i| i.to_string())
        .unwrap_or_else(|| quote::quote!(#path).to_string().replace(' ', ""))
}

/// Skips whatever follows a key we reported, so parsing goes on with the next key.
/// A key that `known` (the keys of this place) lacks: the other place's key (`theirs`), said
/// with where it goes, or unknown, with the nearest known key suggested. Its value is skipped.
fn not_here(
    meta: &ParseNestedMeta,
    key: &str,
    known: &[&str],
    theirs: &[&str],
    errors: &mut Errors,
) -> syn::Result<()> {
    let message = if !theirs.contains(&key) {
        format!(
            "unknown model attribute `{key}`{}",
            did_you_mean(key, known)
        )
    } else if known == FIELD_KEYS {
        format!(
            "`{key}` is a struct attribute; put `#[model({key} = ..)]` on the struct, not on a field"
        )
    } else {
        format!("`{key}` is a field attribute; put `#[model({key})]` on a field, not on the struct")
    };
    errors.spanned(&meta.path, message);
    skip_value(meta)
}

/// A value quoted where `wanted` (a type, a bare word, a number) goes, a common slip from
/// other crates: reported with the unquoted form and consumed; whether it was one.
fn quoted(
    value: syn::parse::ParseStream,
    key: &str,
    wanted: &str,
    errors: &mut Errors,
) -> syn::Result<bool> {
    if !value.peek(LitStr) {
        return Ok(false);
    }
    let lit: LitStr = value.parse()?;
    errors.spanned(
        &lit,
        format!(
            "`{key}` takes {wanted}, not a string: write `{key} = {}`",
            lit.value()
        ),
    );
    Ok(true)
}

/// Sets an attribute that may be written once, as serde_derive's `Attr<T>::set`: written
/// again, the repeat is reported at its own token (`at`) and the first value kept.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    at: &ParseNestedMeta,
    key: &str,
    errors: &mut Errors,
) {
    if slot.is_some() {
        errors.spanned(&at.path, format!("duplicate model attribute `{key}`"));
    } else {
        *slot = Some(value);
    }
}

/// A flag attribute (`#[model(unique)]`): reports and skips a value written after it.
fn no_value(meta: &ParseNestedMeta, key: &str, errors: &mut Errors) -> syn::Result<()> {
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        errors.spanned(
            &meta.path,
            format!("`{key}` takes no value: write `#[model({key})]`"),
        );
        skip_value(meta)?;
    }
    Ok(())
}

pub(crate) fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Token![=] = meta.input.parse()?;
        let _: syn::Expr = meta.input.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _group: proc_macro2::Group = meta.input.parse()?;
    }
    Ok(())
}

pub(crate) fn parse_struct_attrs(attrs: &[Attribute], errors: &mut Errors) -> StructAttrs {
    let mut out = StructAttrs::default();
    let mut old_values = None;
    for attr in attrs {
        if let Some(signal) = signal_of(attr) {
            parse_receivers(
                attr,
                SIGNALS[signal].name,
                &mut out.receivers[signal],
                errors,
            );
            continue;
        }
        if attr.path().is_ident("m2m_changed") {
            parse_receivers(attr, "m2m_changed", &mut out.m2m_changed, errors);
            if let Some(span) = out.m2m_changed.iter().find_map(|r| r.robust) {
                errors.at(span, "`robust` does not apply to `m2m_changed` receivers");
            }
            continue;
        }
        if attr.path().is_ident("post_load") {
            parse_receivers(attr, "post_load", &mut out.post_load, errors);
            if let Some(span) = out.post_load.iter().find_map(|r| r.robust) {
                errors.at(
                    span,
                    "`robust` does not apply to `post_load` receivers: an error fails the load",
                );
            }
            continue;
        }
        if attr.path().is_ident("on_commit") {
            parse_receivers(attr, "on_commit", &mut out.on_commit, errors);
            if let Some(span) = out.on_commit.iter().find_map(|r| r.robust) {
                errors.at(
                    span,
                    "`on_commit` receivers run after the commit and never fail the save; `robust` does not apply",
                );
            }
            continue;
        }
        if !attr.path().is_ident("model") {
            continue;
        }
        let res = attr.parse_nested_meta(|meta| {
            let key = key_name(&meta);
            match key.as_str() {
                "unique_together" => {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let fields = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                    if fields.len() < 2 {
                        errors.spanned(
                            &meta.path,
                            "`unique_together` names two fields or more; for one, write `#[model(unique)]` on the field",
                        );
                    } else {
                        out.unique_together.push(fields.into_iter().collect());
                    }
                }
                "many_to_many" => {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let m2m: ManyToMany = content.parse()?;
                    if out.many_to_many.iter().any(|m| m.name == m2m.name) {
                        errors.spanned(&m2m.name, format!("`{}` is declared twice", m2m.name));
                    } else {
                        out.many_to_many.push(m2m);
                    }
                }
                "old_values" => {
                    set_once(&mut old_values, (), &meta, "old_values", errors);
                    no_value(&meta, "old_values", errors)?;
                }
                "table" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().trim().is_empty() {
                        errors.spanned(&lit, "`table` must not be empty");
                    } else {
                        set_once(&mut out.table, lit, &meta, "table", errors);
                    }
                }
                k => not_here(&meta, k, STRUCT_KEYS, FIELD_KEYS, errors)?,
            }
            Ok(())
        });
        if let Err(err) = res {
            errors.push(err);
        }
    }
    out.old_values = old_values.is_some();
    out
}

fn parse_receivers(attr: &Attribute, name: &str, out: &mut Vec<Receiver>, errors: &mut Errors) {
    let list = match &attr.meta {
        syn::Meta::List(list) => list,
        syn::Meta::Path(path) => {
            errors.spanned(
                path,
                format!("`#[{name}]` needs at least one receiver, as in `#[{name}(my_receiver)]`"),
            );
            return;
        }
        syn::Meta::NameValue(nv) => {
            errors.spanned(
                nv,
                format!("receivers are listed in parentheses, as in `#[{name}(my_receiver)]`"),
            );
            return;
        }
    };
    // Strings are a common slip from other crates; name the fix.
    if let Ok(lit) = syn::parse2::<LitStr>(list.tokens.clone()) {
        errors.spanned(
            &lit,
            format!(
                "receivers are paths, not strings: write `#[{name}({})]`",
                lit.value()
            ),
        );
        return;
    }
    let items = match list.parse_args_with(Punctuated::<ListItem, Token![,]>::parse_terminated) {
        Ok(items) => items,
        Err(err) => {
            errors.push(syn::Error::new(
                err.span(),
                format!("expected receiver paths separated by commas in `#[{name}(..)]`: {err}"),
            ));
            return;
        }
    };
    let mut paths = Punctuated::<Path, Token![,]>::new();
    let mut changed: Option<Vec<Ident>> = None;
    for item in items {
        match item {
            ListItem::Path(path) => paths.push(path),
            ListItem::Changed(word, fields) => {
                if !matches!(name, "pre_save" | "post_save" | "on_commit") {
                    let why = if name == "post_load" {
                        "a load changes no field"
                    } else {
                        "a delete changes no field"
                    };
                    errors.spanned(
                        &word,
                        format!("`changed(..)` conditions save receivers (`pre_save`, `post_save`, `on_commit`); {why}, so `{name}` cannot have it"),
                    );
                } else if changed.is_some() {
                    errors.spanned(&word, "duplicate `changed(..)`: list every field in one");
                } else if fields.is_empty() {
                    errors.spanned(
                        &word,
                        "`changed()` names no field; write `changed(status)` or `changed(a, b)`",
                    );
                } else {
                    changed = Some(fields.into_iter().collect());
                }
            }
        }
    }
    if paths.is_empty() && changed.is_some() {
        errors.spanned(
            attr,
            format!("`changed(..)` conditions the receivers listed with it; name them, as in `#[{name}(notify, changed(status))]`"),
        );
        return;
    }
    if paths.is_empty() {
        errors.spanned(
            attr,
            format!(
                "`#[{name}()]` lists no receiver; name at least one, as in `#[{name}(my_receiver)]`"
            ),
        );
    }
    // The bare word `batch` marks every receiver of this attribute as batched.
    let (batch_flags, paths) = take_flag(paths, "batch", errors);
    let batch = batch_flags.first().map(Spanned::span);
    if let Some(word) = batch_flags.first() {
        if !SIGNALS.iter().any(|s| s.name == name) {
            errors.spanned(
                word,
                format!("`batch` applies to `pre_save`, `post_save`, `pre_delete` and `post_delete` receivers, not to `{name}`"),
            );
        } else if changed.is_some() {
            errors.spanned(
                word,
                "`changed(..)` conditions a receiver row by row; a `batch` receiver gets the whole chunk and cannot have it: list the batched receivers in an attribute of their own",
            );
        }
    }
    // The bare word `durable` marks every receiver of this attribute.
    let (durable_flags, paths) = take_flag(paths, "durable", errors);
    let durable = durable_flags.first().map(Spanned::span);
    if let Some(word) = durable_flags.first() {
        if name == "post_load" {
            errors.spanned(
                word,
                "`durable` applies to `on_commit` receivers, which run after the commit; `post_load` receivers run as each row is read",
            );
        } else if name != "on_commit" {
            errors.spanned(
                word,
                format!("`durable` applies to `on_commit` receivers, which run after the commit; `{name}` receivers run inside the save's transaction already"),
            );
        } else if paths.is_empty() {
            errors.spanned(
                word,
                "`durable` marks the receivers listed with it; name them, as in `#[on_commit(send_welcome, durable)]`",
            );
        }
    }
    // The bare word `robust` marks every receiver of this attribute.
    let (flags, paths) = take_flag(paths, "robust", errors);
    let robust = flags.first().map(Spanned::span);
    if robust.is_some() && paths.is_empty() {
        errors.spanned(
            &flags[0],
            format!(
                "`robust` marks the receivers listed with it; name them, as in `#[{name}(notify, robust)]`"
            ),
        );
    }
    if batch.is_some() && paths.is_empty() {
        errors.spanned(
            &batch_flags[0],
            format!(
                "`batch` marks the receivers listed with it; name them, as in `#[{name}(create_profiles, batch)]`"
            ),
        );
    }
    for path in paths {
        let text = quote::quote!(#path).to_string().replace(' ', "");
        if out.iter().any(|r| r.name == text) {
            errors.spanned(
                &path,
                format!("receiver `{text}` is already connected to `{name}`; each receiver runs once per signal"),
            );
            continue;
        }
        out.push(Receiver {
            path,
            name: text,
            robust,
            batch,
            durable,
            changed: changed.clone(),
        });
    }
}

/// Separates the bare word `word` (a flag marking every receiver of the attribute) from the
/// receiver paths, reporting it when written twice.
fn take_flag(
    paths: impl IntoIterator<Item = Path>,
    word: &str,
    errors: &mut Errors,
) -> (Vec<Path>, Vec<Path>) {
    let (flags, paths): (Vec<Path>, Vec<Path>) = paths.into_iter().partition(|p| p.is_ident(word));
    if let Some(extra) = flags.get(1) {
        errors.spanned(extra, format!("duplicate `{word}`"));
    }
    (flags, paths)
}

pub(crate) fn parse_field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs {
        if let Some(name) = signal_of(attr).map(|i| SIGNALS[i].name).or_else(|| {
            ["on_commit", "post_load", "m2m_changed"]
                .into_iter()
                .find(|n| attr.path().is_ident(n))
        }) {
            errors.spanned(
                attr.path(),
                format!("`#[{name}(..)]` goes on the struct, not on a field"),
            );
            continue;
        }
        if !attr.path().is_ident("model") {
            continue;
        }
        let res = attr.parse_nested_meta(|meta| {
            let key = key_name(&meta);
            match key.as_str() {
                "primary_key" => {
                    set_once(&mut out.primary_key, meta.path.span(), &meta, &key, errors);
                    no_value(&meta, &key, errors)?;
                }
                "column" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().trim().is_empty() {
                        errors.spanned(&lit, "`column` must not be empty");
                    } else {
                        set_once(&mut out.column, lit, &meta, &key, errors);
                    }
                }
                "one_to_one" | "foreign_key" => {
                    let kind = if key == "one_to_one" {
                        RelationKind::OneToOne
                    } else {
                        RelationKind::ForeignKey
                    };
                    let value = meta.value()?;
                    if quoted(value, &key, "the model's type", errors)? {
                        out.relation_reported = true;
                        return Ok(());
                    }
                    let path: Path = value.parse()?;
                    match &out.relation {
                        Some((prev, _, _)) if *prev == kind => {
                            errors.spanned(&meta.path, format!("duplicate model attribute `{key}`"));
                        }
                        Some((prev, _, _)) => errors.spanned(
                            &meta.path,
                            format!("a field is either `one_to_one` or `foreign_key`, not both; this one is already `{}`", prev.key()),
                        ),
                        None => out.relation = Some((kind, path, meta.path.span())),
                    }
                }
                "on_delete" => {
                    let value = meta.value()?;
                    if quoted(value, &key, "a bare word", errors)? {
                        out.on_delete_reported = true;
                        return Ok(());
                    }
                    let ident: Ident = value.parse()?;
                    let action = match ident.to_string().as_str() {
                        "cascade" => Some(OnDelete::Cascade),
                        "restrict" => Some(OnDelete::Restrict),
                        "set_null" => Some(OnDelete::SetNull),
                        other => {
                            errors.spanned(
                                &ident,
                                format!("unknown `on_delete` value `{other}`{}", did_you_mean(other, ON_DELETE)),
                            );
                            out.on_delete_reported = true;
                            None
                        }
                    };
                    match action {
                        Some(action) => set_once(&mut out.on_delete, (action, ident), &meta, &key, errors),
                        // Reported above; a repeat is still one.
                        None if out.on_delete.is_some() => {
                            errors.spanned(&meta.path, format!("duplicate model attribute `{key}`"));
                        }
                        None => {}
                    }
                }
                "unique" => {
                    set_once(&mut out.unique, meta.path.span(), &meta, &key, errors);
                    no_value(&meta, &key, errors)?;
                }
                "index" => {
                    set_once(&mut out.index, meta.path.span(), &meta, &key, errors);
                    no_value(&meta, &key, errors)?;
                }
                "default" => {
                    let expr: syn::Expr = meta.value()?.parse()?;
                    if let Some(lit) = DefaultLit::parse(&expr, errors) {
                        set_once(&mut out.default, lit, &meta, &key, errors);
                    }
                }
                "max_length" | "max_digits" | "decimal_places" => {
                    let value = meta.value()?;
                    if quoted(value, &key, "a number", errors)? {
                        return Ok(());
                    }
                    let lit: syn::LitInt = value.parse()?;
                    let max = if key == "decimal_places" { 28 } else if key == "max_digits" { 38 } else { 65_535 };
                    let low = if key == "decimal_places" { 0 } else { 1 };
                    match lit.base10_parse::<u32>() {
                        Ok(n) if (low..=max).contains(&n) => {}
                        _ => {
                            errors.spanned(&lit, format!("`{key}` must be a number from {low} to {max}"));
                            return Ok(());
                        }
                    }
                    let slot = match key.as_str() {
                        "max_length" => &mut out.max_length,
                        "max_digits" => &mut out.max_digits,
                        _ => &mut out.decimal_places,
                    };
                    set_once(slot, lit, &meta, &key, errors);
                }
                k => not_here(&meta, k, FIELD_KEYS, STRUCT_KEYS, errors)?,
            }
            Ok(())
        });
        if let Err(err) = res {
            errors.push(err);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("tabel", STRUCT_KEYS), Some("table"));
        assert_eq!(suggest("primary", FIELD_KEYS), Some("primary_key"));
        assert_eq!(suggest("colum", FIELD_KEYS), Some("column"));
        assert_eq!(suggest("cascde", ON_DELETE), Some("cascade"));
        assert_eq!(suggest("xyz", FIELD_KEYS), None);
    }
}
