//! A `const fn` handler.

use idempotent_runtime::idempotent;

#[idempotent]
const async fn create() {}

fn main() {}
