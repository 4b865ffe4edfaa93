use signals_core::Model;

#[derive(Model)]
struct Post {
    id: Option<i64>,
    #[model(max_length = 10)]
    views: i64,
}

fn main() {}
