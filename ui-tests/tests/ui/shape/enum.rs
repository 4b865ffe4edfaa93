use signals_core::Model;

#[derive(Model)]
enum User {
    Active { id: Option<i64> },
}

fn main() {}
