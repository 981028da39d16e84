//! The attribute on an impl block instead of one of its functions.

use idempotent_runtime::idempotent;

struct Payments;

#[idempotent]
impl Payments {
    async fn create() {}
}

fn main() {}
