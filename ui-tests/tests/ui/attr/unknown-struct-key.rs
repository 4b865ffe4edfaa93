use signals_core::Model;

#[derive(Model)]
#[model(tabel = "account_user")]
struct User {
    id: Option<i64>,
}

fn main() {}
