//! An `impl Trait` return type whose value does not implement `IntoResponse`.

use std::fmt::Debug;

use idempotent_runtime::idempotent;

#[idempotent]
async fn create(body: String) -> impl Debug {
    body.len()
}

fn main() {}
