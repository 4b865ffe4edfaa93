use signals_core::Signal;

struct OrderPlaced {
    id: u64,
}

static ORDER_PLACED: Signal<OrderPlaced> = Signal::new("order_placed");

fn main() {
    ORDER_PLACED.connect("audit", async |id: &u64| {
        println!("{id}");
        Ok(())
    });
    let _ = OrderPlaced { id: 1 }.id;
}
