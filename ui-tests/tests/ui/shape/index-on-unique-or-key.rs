use signals_core::Model;

#[derive(Model)]
struct Post {
    #[model(index)]
    id: Option<i64>,
    #[model(unique, index)]
    slug: String,
    #[model(default = 1)]
    #[model(default = 2)]
    views: i64,
}

fn main() {}
