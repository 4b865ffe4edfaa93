use signals_core::Model;

#[derive(Model)]
#[model(tabl = "users")]
struct User {
    #[model(primary_kee)]
    id: Option<i64>,
    #[model(colum = "login")]
    username: String,
}

fn main() {}
