//! An associated function without `self` in an inherent impl.
#![deny(warnings)]

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::idempotent;

#[derive(Clone)]
struct Payments {
    currency: &'static str,
}

impl Payments {
    #[idempotent]
    async fn create(State(payments): State<Self>, Json(amount): Json<u64>) -> String {
        Self::describe(&payments, amount)
    }

    fn describe(&self, amount: u64) -> String {
        format!("{amount} {}", self.currency)
    }
}

fn main() {
    let _app: Router = Router::new()
        .route("/payments", post(Payments::create))
        .with_state(Payments { currency: "EUR" });
}
