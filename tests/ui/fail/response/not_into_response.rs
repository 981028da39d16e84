//! A return type that does not implement `IntoResponse`.

use idempotent_runtime::idempotent;

struct Payment {
    amount: u64,
}

#[idempotent]
async fn create(body: String) -> Payment {
    Payment { amount: body.len() as u64 }
}

fn main() {}
