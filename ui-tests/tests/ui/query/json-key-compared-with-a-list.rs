use signals_core::Model;

#[derive(Model)]
struct Product {
    id: Option<i64>,
    attributes: serde_json::Value,
}

fn main() {
    let _ = Product::query().filter(Product::ATTRIBUTES.key("sizes").eq(vec![1, 2]));
}
