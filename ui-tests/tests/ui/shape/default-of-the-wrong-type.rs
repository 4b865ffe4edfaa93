use signals_core::Model;

#[derive(Model)]
struct Post {
    id: Option<i64>,
    #[model(default = "many")]
    views: i64,
    #[model(default = 0)]
    title: String,
}

fn main() {}
