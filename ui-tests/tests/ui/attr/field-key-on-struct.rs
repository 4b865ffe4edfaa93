use signals_core::Model;

#[derive(Model)]
#[model(primary_key)]
struct User {
    id: Option<i64>,
}

fn main() {}
