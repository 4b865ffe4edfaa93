use signals_core::{Committed, Db, Model};

#[derive(Model, Clone)]
struct Customer {
    id: Option<i64>,
}

// One mistake in a receiver attribute: only it is reported, not errors where the model's
// columns, loaders and relations are used.
#[derive(Model, Clone, serde::Serialize, serde::Deserialize)]
#[on_commit(confirm, changed(statuss))]
struct Order {
    id: Option<i64>,
    #[model(foreign_key = Customer, on_delete = cascade)]
    customer_id: i64,
    status: String,
    total: i64,
}

#[derive(Model)]
struct Line {
    id: Option<i64>,
    #[model(foreign_key = Order, on_delete = cascade)]
    order_id: i64,
}

async fn confirm(_: Order, _: Committed) -> signals_core::Result<()> {
    Ok(())
}

async fn used(db: &Db, order: &Order) -> signals_core::Result<()> {
    let _big = Order::query().filter(Order::TOTAL.gt(100)).all(db).await?;
    let _customer = order.customer(db).await?;
    let _ = Line::query().all(db).await?;
    Ok(())
}

fn main() {
    let _ = used;
}
