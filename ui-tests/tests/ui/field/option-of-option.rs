use signals_core::Model;

#[derive(Model)]
struct Note {
    id: Option<i64>,
    due: Option<Option<chrono::NaiveDate>>,
}

fn main() {}
