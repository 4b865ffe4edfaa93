use signals_core::Model;

#[derive(Model)]
struct User {
    id: Option<i64>,
    #[model(table = "users")]
    username: String,
}

fn main() {}
