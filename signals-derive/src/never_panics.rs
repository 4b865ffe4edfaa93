//! The derive never panics: thousands of generated struct definitions and attribute token
//! streams, well-formed or not, go through parsing, checking and expansion; each must come
//! out as valid Rust (the model's impls, or `compile_error!`s), never as a panic.

use proptest::prelude::*;

/// Attribute keys: the real ones, near misses, and nonsense.
fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "table",
        "tabel",
        "primary_key",
        "primary",
        "column",
        "colum",
        "one_to_one",
        "foreign_key",
        "on_delete",
        "cascade",
        "set_null",
        "x",
        "r#type",
        "model",
    ])
}

/// What may follow a key.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" = \"users\"".to_owned()),
        Just(" = \"\"".to_owned()),
        Just(" = User".to_owned()),
        Just(" = crate::a::User".to_owned()),
        Just(" = \"User\"".to_owned()),
        Just(" = cascade".to_owned()),
        Just(" = restrict".to_owned()),
        Just(" = set_null".to_owned()),
        Just(" = cascde".to_owned()),
        Just(" = 42".to_owned()),
        Just(" = -1.5".to_owned()),
        Just("(nested, list = 1)".to_owned()),
        Just(" = ".to_owned()),
        Just(" = a b c".to_owned()),
    ]
}

fn model_attr() -> impl Strategy<Value = String> {
    prop::collection::vec((key(), value()), 0..4).prop_map(|items| {
        let body: Vec<String> = items.into_iter().map(|(k, v)| format!("{k}{v}")).collect();
        format!("#[model({})]", body.join(", "))
    })
}

fn signal_attr() -> impl Strategy<Value = String> {
    let signal = prop::sample::select(vec!["pre_save", "post_save", "pre_delete", "post_delete"]);
    let args = prop_oneof![
        Just("(create_profile)".to_owned()),
        Just("(a, b::c, a)".to_owned()),
        Just("()".to_owned()),
        Just(String::new()),
        Just(" = \"x\"".to_owned()),
        Just("(\"create_profile\")".to_owned()),
        Just("(1, 2)".to_owned()),
        Just("(a b)".to_owned()),
        Just("(crate::receivers::audit,)".to_owned()),
    ];
    (signal, args).prop_map(|(s, a)| format!("#[{s}{a}]"))
}

fn field() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["id", "user_id", "r#type", "username", "pk", "id"]);
    let ty = prop::sample::select(vec![
        "Option<i64>",
        "i64",
        "String",
        "Vec<u8>",
        "Option<String>",
        "u64",
        "std::collections::HashMap<String, String>",
        "T",
        "Option<Option<i64>>",
        "&'a str",
    ]);
    let attrs = prop::collection::vec(prop_oneof![model_attr(), signal_attr()], 0..3);
    (attrs, name, ty).prop_map(|(attrs, name, ty)| format!("{} {name}: {ty}", attrs.join(" ")))
}

fn item() -> impl Strategy<Value = String> {
    let attrs = prop::collection::vec(prop_oneof![model_attr(), signal_attr()], 0..4);
    let fields = prop::collection::vec(field(), 0..5);
    let shape = 0..6u8;
    (attrs, fields, shape).prop_map(|(attrs, fields, shape)| {
        let attrs = attrs.join("\n");
        let body = fields.join(",\n");
        match shape {
            0 => format!("{attrs} struct User;"),
            1 => format!("{attrs} struct User(i64, String);"),
            2 => format!("{attrs} enum User {{ A {{ {body} }} }}"),
            3 => format!("{attrs} struct User<'a, T> {{ {body} }}"),
            4 => format!("{attrs} union User {{ a: u32 }}"),
            _ => format!("{attrs} pub struct User {{ {body} }}"),
        }
    })
}

/// Well-formed models, so that expansion itself (not only error reporting) is exercised.
fn valid_item() -> impl Strategy<Value = String> {
    let attrs = prop::sample::subsequence(
        vec![
            "#[model(table = \"users\")]",
            "#[pre_save(normalize)]",
            "#[post_save(create_profile, receivers::save_profile)]",
            "#[post_save(audit)]",
            "#[pre_delete(crate::a::b)]",
            "#[post_delete(remove_photo)]",
        ],
        0..=6,
    );
    let key = prop::sample::select(vec![
        "id: Option<i64>",
        "id: i64",
        "#[model(primary_key)] name: String",
        "#[model(primary_key, column = \"uid\")] uid: uuid::Uuid",
    ]);
    let fields = prop::sample::subsequence(
        vec![
            "username: String",
            "#[model(column = \"login\")] login: String",
            "#[model(one_to_one = Parent, on_delete = cascade)] parent_id: i64",
            "#[model(foreign_key = crate::P, on_delete = set_null)] other_id: Option<i64>",
            "#[model(foreign_key = P, on_delete = restrict)] owner: i64",
            "r#type: String",
            "data: Vec<u8>",
            "born: Option<chrono::NaiveDate>",
        ],
        0..=8,
    );
    (attrs, key, fields).prop_map(|(attrs, key, fields)| {
        let mut all = vec![key];
        all.extend(fields);
        format!(
            "{}\npub struct User {{ {} }}",
            attrs.join("\n"),
            all.join(",\n")
        )
    })
}

/// Token soup for inside `#[model(...)]`, with balanced delimiters.
fn soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "table", "=", ",", "::", "\"s\"", "1", "(", ")", "[", "]", "#", "cascade", "'a", ";", "-",
        "true", "r#type",
    ]);
    prop::collection::vec(token, 0..12).prop_map(|tokens| {
        // Keep only the tokens that leave every delimiter balanced.
        let mut out = Vec::new();
        let mut stack = Vec::new();
        for t in tokens {
            match t {
                "(" | "[" => {
                    stack.push(if t == "(" { ")" } else { "]" });
                    out.push(t);
                }
                ")" | "]" => {
                    if stack.last() == Some(&t) {
                        stack.pop();
                        out.push(t);
                    }
                }
                _ => out.push(t),
            }
        }
        while let Some(close) = stack.pop() {
            out.push(close);
        }
        out.join(" ")
    })
}

fn expand_source(source: &str) {
    let Ok(input) = syn::parse_str::<syn::DeriveInput>(source) else {
        return; // not Rust the compiler would hand to a derive
    };
    let output = std::panic::catch_unwind(|| crate::expand::derive(&input));
    let tokens = match output {
        Ok(tokens) => tokens,
        Err(_) => panic!("the derive panicked on:\n{source}"),
    };
    if let Err(err) = syn::parse2::<syn::File>(tokens.clone()) {
        panic!("the derive produced invalid Rust ({err}) for:\n{source}\n---\n{tokens}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_structs(source in prop_oneof![item(), valid_item()]) {
        expand_source(&source);
    }

    #[test]
    fn token_soup_in_attributes(soup in soup(), on_field in any::<bool>()) {
        let source = if on_field {
            format!("struct User {{ #[model({soup})] id: Option<i64> }}")
        } else {
            format!("#[model({soup})] #[post_save({soup})] struct User {{ id: Option<i64> }}")
        };
        expand_source(&source);
    }
}

#[test]
fn the_seed_models_expand() {
    expand_source(
        "#[model(table = \"account_user\")] #[post_save(create_profile, save_profile)]
         pub struct User { pub id: Option<i64>, pub username: String }",
    );
    expand_source(
        "pub struct Profile { pub id: Option<i64>,
         #[model(one_to_one = User, on_delete = cascade)] pub user_id: i64 }",
    );
}
