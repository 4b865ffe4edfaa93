use signals_core::FieldType;

#[derive(Debug, FieldType)]
#[field(integr)]
enum Priority {
    Low = 1,
    High = 5,
}

fn main() {}
