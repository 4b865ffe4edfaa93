use signals_core::Model;

#[derive(Model)]
struct User {
    id: Option<i64>,
    tags: std::collections::HashMap<String, String>,
}

fn main() {}
