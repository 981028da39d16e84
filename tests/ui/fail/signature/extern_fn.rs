//! A handler with an `extern` ABI.

use idempotent_runtime::idempotent;

#[idempotent]
async extern "C" fn create() {}

fn main() {}
