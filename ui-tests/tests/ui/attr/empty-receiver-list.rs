use signals_core::Model;

#[derive(Model)]
#[post_save()]
#[pre_save]
struct User {
    id: Option<i64>,
}

fn main() {}
