use signals_core::Model;

struct User {
    id: Option<i64>,
}

#[derive(Model)]
struct Profile {
    id: Option<i64>,
    #[model(one_to_one = User, on_delete = cascade)]
    user_id: i64,
}

fn main() {}
