//! A handler that borrows an argument.

use idempotent_runtime::idempotent;

#[idempotent]
async fn create(body: &'static str) -> String {
    body.to_owned()
}

fn main() {}
