use signals_core::Model;

#[derive(Model)]
struct Product {
    id: Option<i64>,
    #[model(max_digits = 6, decimal_places = 2)]
    label: String,
}

fn main() {}
