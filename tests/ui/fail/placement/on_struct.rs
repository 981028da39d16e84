//! The attribute on a struct.

use idempotent_runtime::idempotent;

#[idempotent]
struct Payment;

fn main() {
    let _ = Payment;
}
