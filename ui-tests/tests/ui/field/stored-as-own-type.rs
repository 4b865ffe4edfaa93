use signals_core::FieldType;
use signals_core::sqlx::error::BoxDynError;

#[derive(Debug, Clone)]
struct Celsius(f64);

#[derive(Debug, Clone)]
struct Reading(Celsius);

impl FieldType for Reading {
    type Stored = Celsius;
    fn to_stored(&self) -> Celsius {
        self.0.clone()
    }
    fn from_stored(stored: Celsius) -> Result<Self, BoxDynError> {
        Ok(Reading(stored))
    }
}

fn main() {}
