//! A handler without `async`.

use idempotent_runtime::idempotent;

#[idempotent]
fn create(body: String) -> String {
    body
}

fn main() {}
