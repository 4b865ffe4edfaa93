use signals_core::Model;

#[derive(Model)]
struct Post {
    id: Option<i64>,
    #[model(default = "a\0b")]
    title: String,
}

fn main() {}
