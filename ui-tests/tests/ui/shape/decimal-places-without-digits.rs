use signals_core::Model;

#[derive(Model)]
struct Product {
    id: Option<i64>,
    #[model(decimal_places = 2)]
    price: rust_decimal::Decimal,
    #[model(max_digits = 4, decimal_places = 6)]
    weight: rust_decimal::Decimal,
}

fn main() {}
