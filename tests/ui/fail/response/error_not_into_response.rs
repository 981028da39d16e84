//! A `Result` whose error type does not implement `IntoResponse`.

use idempotent_runtime::idempotent;

struct PaymentError;

#[idempotent]
async fn create(body: String) -> Result<String, PaymentError> {
    if body.is_empty() {
        return Err(PaymentError);
    }
    Ok(body)
}

fn main() {}
