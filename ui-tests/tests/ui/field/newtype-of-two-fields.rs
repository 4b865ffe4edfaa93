use signals_core::FieldType;

#[derive(Debug, FieldType)]
struct Point(i32, i32);

fn main() {}
