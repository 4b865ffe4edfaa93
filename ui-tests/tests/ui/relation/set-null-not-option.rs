use signals_core::Model;

#[derive(Model)]
struct User {
    id: Option<i64>,
}

#[derive(Model)]
struct Comment {
    id: Option<i64>,
    #[model(foreign_key = User, on_delete = set_null)]
    author_id: i64,
}

fn main() {}
