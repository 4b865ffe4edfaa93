use signals_core::FieldType;

#[derive(Debug, FieldType)]
#[field(rename_all = "snakecase")]
enum Status {
    Draft,
    Published,
}

fn main() {}
