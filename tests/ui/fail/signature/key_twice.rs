//! Two arguments that both take the idempotency key.

use idempotent_runtime::{IdempotencyKey, idempotent};

#[idempotent(required = true)]
async fn create(key: IdempotencyKey, again: Option<IdempotencyKey>, body: String) -> String {
    format!("{} {} {body}", key.as_str(), again.is_some())
}

fn main() {}
