use signals_core::Model;

#[derive(Model)]
struct User(Option<i64>, String);

fn main() {}
