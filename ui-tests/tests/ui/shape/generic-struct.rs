use signals_core::Model;

#[derive(Model)]
struct User<T> {
    id: Option<i64>,
    extra: T,
}

fn main() {}
