use signals_core::Model;

#[derive(Model)]
struct User {
    id: Option<i64>,
    #[model(column = "login", column = "name")]
    username: String,
}

fn main() {}
