//! An `unsafe fn` handler.

use idempotent_runtime::idempotent;

#[idempotent]
async unsafe fn create(body: String) -> String {
    body
}

fn main() {}
