use signals_core::Model;

#[derive(Model)]
struct User {
    user_id: Option<i64>,
    username: String,
}

fn main() {}
