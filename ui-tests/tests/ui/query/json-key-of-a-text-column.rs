use signals_core::Model;

#[derive(Model)]
struct Product {
    id: Option<i64>,
    name: String,
}

fn main() {
    let _ = Product::query().filter(Product::NAME.key("color").eq("red"));
}
