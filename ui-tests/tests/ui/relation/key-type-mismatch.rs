use signals_core::Model;

#[derive(Model)]
struct User {
    id: Option<i64>,
}

#[derive(Model)]
struct Profile {
    id: Option<i64>,
    #[model(one_to_one = User, on_delete = cascade)]
    user_id: String,
}

fn main() {}
