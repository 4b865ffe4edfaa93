use signals_core::FieldType;

#[derive(Debug, FieldType)]
#[field(integer)]
enum Priority {
    Low = 1,
    #[field(rename = "high")]
    High = 5,
}

fn main() {}
