//! The attribute on a trait method declaration that takes `&self`.

use idempotent_runtime::idempotent;

trait Payments {
    #[idempotent]
    async fn create(&self, body: String) -> String;
}

fn main() {}
