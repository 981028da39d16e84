//! The attribute on a trait method declaration without a body.

use idempotent_runtime::idempotent;

trait Payments {
    #[idempotent]
    async fn create(body: String) -> String;
}

fn main() {}
