use signals_core::Model;

#[derive(Model)]
#[post_save(changed(status))]
struct Post {
    id: Option<i64>,
    status: String,
}

fn main() {}
