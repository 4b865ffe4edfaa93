//! Lookups into JSON fields by key (issue 29, item 7): `attributes__color`, the same rows on
//! every backend, as plain Rust over the same values finds them; missing keys, other JSON
//! types and NULL columns match no condition and every negation.

use serde_json::{Value, json};
use signals_core::{ErrorKind, Filter, Json, Model};
use signals_tests::db_test;

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "js_product")]
struct Product {
    id: Option<i64>,
    attributes: Value,
    extra: Option<Json<Value>>,
}

fn values() -> Vec<Value> {
    vec![
        json!({"color": "red", "size": {"width": 30, "unit": "cm"}, "stock": true}),
        json!({"color": "Red", "size": {"width": 12.5}, "stock": false}),
        json!({"color": null, "size": {"width": "30"}}),
        json!({"colour": "red", "size": 30}),
        json!({"color": "ré\"d", "tags": ["red"], "size": {"width": -4}}),
        json!({"color": "100%", "stock": 1, "has space": "yes", "dot.ted": "yes"}),
        json!({"color": 30}),
        json!([]),
        json!("red"),
        json!({}),
    ]
}

/// What a condition means, in Rust: the value at `path`, if there is one.
fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.as_object()?.get(*k))
}

async fn products(db: &signals_core::Db) -> Vec<Product> {
    db.create_tables::<Product>().await.unwrap();
    let mut rows: Vec<Product> = values()
        .into_iter()
        .enumerate()
        .map(|(i, attributes)| Product {
            id: None,
            extra: (i % 2 == 0).then(|| Json(attributes.clone())),
            attributes,
        })
        .collect();
    Product::bulk_save(db, &mut rows).await.unwrap();
    rows
}

fn ids(rows: &[Product]) -> Vec<i64> {
    rows.iter().map(|p| p.id.unwrap()).collect()
}

db_test!(async fn key_lookups_find_what_rust_finds(db) {
    let rows = products(&db).await;
    type Case = (&'static str, fn() -> Filter<Product>, fn(&Value) -> bool);
    let cases: Vec<Case> = vec![
        ("color = red", || Product::ATTRIBUTES.key("color").eq("red"), |v| at(v, &["color"]) == Some(&json!("red"))),
        ("color = Red", || Product::ATTRIBUTES.key("color").eq("Red".to_owned()), |v| at(v, &["color"]) == Some(&json!("Red"))),
        ("color = ré\"d", || Product::ATTRIBUTES.key("color").eq("ré\"d"), |v| at(v, &["color"]) == Some(&json!("ré\"d"))),
        ("color = 100%", || Product::ATTRIBUTES.key("color").eq("100%"), |v| at(v, &["color"]) == Some(&json!("100%"))),
        ("color = 30", || Product::ATTRIBUTES.key("color").eq(30), |v| at(v, &["color"]) == Some(&json!(30))),
        ("color is null", || Product::ATTRIBUTES.key("color").is_null(), |v| at(v, &["color"]) == Some(&Value::Null)),
        ("color exists", || Product::ATTRIBUTES.key("color").exists(), |v| at(v, &["color"]).is_some()),
        ("width > 20", || Product::ATTRIBUTES.key("size").key("width").gt(20), |v| at(v, &["size", "width"]).and_then(Value::as_f64).is_some_and(|w| w > 20.0)),
        ("width <= 12.5", || Product::ATTRIBUTES.key("size").key("width").le(12.5), |v| at(v, &["size", "width"]).and_then(Value::as_f64).is_some_and(|w| w <= 12.5)),
        ("width = 30", || Product::ATTRIBUTES.key("size").key("width").eq(30.0), |v| at(v, &["size", "width"]) == Some(&json!(30))),
        ("width = \"30\"", || Product::ATTRIBUTES.key("size").key("width").eq("30"), |v| at(v, &["size", "width"]) == Some(&json!("30"))),
        ("unit exists", || Product::ATTRIBUTES.key("size").key("unit").exists(), |v| at(v, &["size", "unit"]).is_some()),
        ("stock = true", || Product::ATTRIBUTES.key("stock").eq(true), |v| at(v, &["stock"]) == Some(&json!(true))),
        ("stock = false", || Product::ATTRIBUTES.key("stock").eq(false), |v| at(v, &["stock"]) == Some(&json!(false))),
        ("stock = 1", || Product::ATTRIBUTES.key("stock").eq(1), |v| at(v, &["stock"]) == Some(&json!(1))),
        ("has space", || Product::ATTRIBUTES.key("has space").eq("yes"), |v| at(v, &["has space"]).is_some()),
        ("dot.ted", || Product::ATTRIBUTES.key("dot.ted").eq("yes"), |v| at(v, &["dot.ted"]).is_some()),
        ("width exists", || Product::ATTRIBUTES.key("size").key("width").exists(), |v| at(v, &["size", "width"]).is_some()),
    ];
    let all = ids(&rows);
    for (name, filter, rust) in cases {
        let want: Vec<i64> = rows.iter().filter(|p| rust(&p.attributes)).map(|p| p.id.unwrap()).collect();
        let got = Product::query().filter(filter()).all(&db).await.unwrap();
        assert_eq!(ids(&got), want, "{name} on {}", db.backend());
        // The negation: every other row.
        let others: Vec<i64> = all.iter().copied().filter(|i| !want.contains(i)).collect();
        let got = Product::query().filter(!filter()).all(&db).await.unwrap();
        assert_eq!(ids(&got), others, "not {name} on {}", db.backend());
    }
});

db_test!(async fn negations_match_missing_keys_other_types_and_null_columns(db) {
    let rows = products(&db).await;
    let red = |v: &Value| at(v, &["color"]) == Some(&json!("red"));
    let want: Vec<i64> = rows.iter().filter(|p| !red(&p.attributes)).map(|p| p.id.unwrap()).collect();
    let got = Product::query().filter(!Product::ATTRIBUTES.key("color").eq("red")).all(&db).await.unwrap();
    assert_eq!(ids(&got), want);
    let wide = |v: &Value| at(v, &["size", "width"]).and_then(Value::as_f64).is_some_and(|w| w > 20.0);
    let want: Vec<i64> = rows.iter().filter(|p| !wide(&p.attributes)).map(|p| p.id.unwrap()).collect();
    let got = Product::query().filter(!Product::ATTRIBUTES.key("size").key("width").gt(20)).all(&db).await.unwrap();
    assert_eq!(ids(&got), want);
    // A nullable JSON column: NULL rows match no condition, and every negation.
    let with = |p: &Product| p.extra.as_ref().is_some_and(|e| at(&e.0, &["color"]).is_some());
    let want: Vec<i64> = rows.iter().filter(|p| with(p)).map(|p| p.id.unwrap()).collect();
    let got = Product::query().filter(Product::EXTRA.key("color").exists()).all(&db).await.unwrap();
    assert_eq!(ids(&got), want);
    let want: Vec<i64> = rows.iter().filter(|p| !with(p)).map(|p| p.id.unwrap()).collect();
    let got = Product::query().filter(!Product::EXTRA.key("color").exists()).all(&db).await.unwrap();
    assert_eq!(ids(&got), want);
    // Combined, counted, in an update.
    let n = Product::query()
        .filter(Product::ATTRIBUTES.key("color").exists() & !Product::ATTRIBUTES.key("color").is_null())
        .count(&db)
        .await
        .unwrap();
    let want = rows.iter().filter(|p| at(&p.attributes, &["color"]).is_some_and(|c| !c.is_null())).count();
    assert_eq!(n as usize, want);
});

db_test!(async fn keys_no_backend_can_spell_are_refused(db) {
    products(&db).await;
    for key in ["a\"b", "back\\slash", "nul\0"] {
        let err = Product::query().filter(Product::ATTRIBUTES.key(key).exists()).all(&db).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    }
    assert_eq!(Product::query().count(&db).await.unwrap(), 10, "the pool stays usable");
});
