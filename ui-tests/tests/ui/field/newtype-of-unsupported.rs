use signals_core::FieldType;

#[derive(Debug, FieldType)]
struct Tags(std::collections::HashSet<String>);

fn main() {}
