use signals_core::FieldType;

#[derive(Debug, FieldType)]
enum Shape {
    Dot,
    Circle(f64),
}

fn main() {}
