use signals_core::Model;

const EMPTY: &str = "";

#[derive(Model)]
struct Post {
    id: Option<i64>,
    #[model(default = EMPTY)]
    title: String,
    #[model(default = -true)]
    draft: bool,
}

fn main() {}
