use signals_core::Model;

// Every attribute that may be written once, written twice: each repeat reported at its
// own token, all in one pass.
#[derive(Model)]
#[model(table = "users", table = "people")]
#[model(old_values, old_values)]
struct User {
    #[model(primary_key, primary_key)]
    id: Option<i64>,
    #[model(column = "login", column = "name")]
    username: String,
    #[model(unique, max_length = 20, unique, max_length = 30)]
    email: String,
    #[model(foreign_key = Team, foreign_key = Team, on_delete = cascade, on_delete = restrict)]
    team: Option<i64>,
    #[model(max_digits = 10, decimal_places = 2, max_digits = 12, decimal_places = 3)]
    price: rust_decimal::Decimal,
    #[model(unique = true)]
    nickname: String,
}

#[derive(Model)]
struct Team {
    id: Option<i64>,
}

fn main() {}
