use signals_core::Model;

#[derive(Model)]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(primary_key)]
    username: String,
}

fn main() {}
