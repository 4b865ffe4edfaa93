use signals_core::FieldType;

#[derive(Debug, FieldType)]
#[field(rename_all = "lowercase")]
enum Status {
    Draft,
    #[field(rename = "draft")]
    Sketch,
}

fn main() {}
