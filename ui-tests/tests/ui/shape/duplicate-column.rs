use signals_core::Model;

#[derive(Model)]
struct User {
    id: Option<i64>,
    username: String,
    #[model(column = "username")]
    login: String,
}

fn main() {}
