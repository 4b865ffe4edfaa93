use signals_core::Model;

#[derive(Model)]
#[post_save(robust)]
struct User {
    id: Option<i64>,
}

fn main() {}
