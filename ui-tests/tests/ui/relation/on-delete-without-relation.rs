use signals_core::Model;

#[derive(Model)]
struct Profile {
    id: Option<i64>,
    #[model(on_delete = cascade)]
    user_id: i64,
}

fn main() {}
