use signals_core::Model;

#[derive(Model)]
#[post_save("create_profile")]
struct User {
    id: Option<i64>,
}

fn main() {}
