//! The attribute on a constant.

use idempotent_runtime::idempotent;

#[idempotent]
const LIMIT: u32 = 3;

fn main() {
    let _ = LIMIT;
}
