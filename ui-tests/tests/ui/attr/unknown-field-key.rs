use signals_core::Model;

#[derive(Model)]
struct User {
    #[model(primary)]
    key: Option<i64>,
}

fn main() {}
