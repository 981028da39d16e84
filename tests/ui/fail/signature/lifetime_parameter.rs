//! A handler with a lifetime parameter.

use idempotent_runtime::idempotent;

#[idempotent]
async fn create<'a>(body: String) -> &'a str {
    let _ = body;
    "created"
}

fn main() {}
