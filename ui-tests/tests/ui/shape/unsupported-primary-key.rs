use signals_core::Model;

#[derive(Model)]
struct User {
    id: Option<String>,
}

fn main() {}
