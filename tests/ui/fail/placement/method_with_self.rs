//! The attribute on a method that takes `&self`.

use idempotent_runtime::idempotent;

struct Payments;

impl Payments {
    #[idempotent]
    async fn create(&self, body: String) -> String {
        body
    }
}

fn main() {}
