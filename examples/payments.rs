//! A small payments API whose `POST /payments` is safe to retry.
//!
//! ```text
//! cargo run -p idempotent-examples --example payments
//! ```
//!
//! - `POST /payments` creates a payment and charges the card once per `Idempotency-Key`. The key
//!   is required and scoped to the merchant named by the `X-Merchant` header.
//! - `GET /payments/{id}` returns one payment.
//! - `GET /ledger` returns every charge that ran, so a retry that charged twice would show.
//!
//! The server listens on 127.0.0.1, port 3000 unless `PORT` is set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idempotent_runtime::{
    IdempotencyKey, IdempotencyLayer, IdempotencyScope, MokaStore, idempotent,
};
use serde::{Deserialize, Serialize};

/// The request body of `POST /payments`.
#[derive(Debug, Deserialize)]
struct NewPayment {
    amount_cents: u64,
    currency: String,
    description: Option<String>,
}

/// A stored payment.
#[derive(Debug, Clone, Serialize)]
struct Payment {
    id: u64,
    merchant: String,
    amount_cents: u64,
    currency: String,
    description: Option<String>,
    /// The idempotency key sent on to the card processor, so that its charge is not repeated
    /// either.
    processor_key: String,
}

/// One charge made at the card processor.
#[derive(Debug, Clone, Serialize)]
struct Charge {
    payment_id: u64,
    amount_cents: u64,
    currency: String,
}

#[derive(Debug, Default)]
struct Ledger {
    payments: BTreeMap<u64, Payment>,
    charges: Vec<Charge>,
}

type Db = Arc<Mutex<Ledger>>;

/// The merchant a request is made for, from the `X-Merchant` header. A real service would take
/// it from an authenticated session or token.
struct Merchant(String);

impl<S: Send + Sync> FromRequestParts<S> for Merchant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let merchant = parts
            .headers
            .get("x-merchant")
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty());
        match merchant {
            Some(merchant) => Ok(Self(merchant.to_owned())),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing X-Merchant header: name the merchant, for example `X-Merchant: acme`",
            )),
        }
    }
}

impl IdempotencyScope for Merchant {
    fn scope(&self) -> impl AsRef<[u8]> + '_ {
        self.0.as_bytes()
    }
}

/// An error response of this API.
struct ApiError {
    status: StatusCode,
    message: &'static str,
}

impl ApiError {
    fn new(status: StatusCode, message: &'static str) -> Self {
        Self { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// Creates a payment and charges it once, however often the client retries.
#[idempotent(ttl = "24h", required = true, scope = Merchant)]
async fn create_payment(
    State(db): State<Db>,
    merchant: Merchant,
    key: IdempotencyKey,
    Json(request): Json<NewPayment>,
) -> Result<(StatusCode, Json<Payment>), ApiError> {
    if request.amount_cents == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_cents must be greater than zero",
        ));
    }
    let mut ledger = db.lock().expect("ledger lock poisoned");
    let id = ledger.payments.len() as u64 + 1;
    let payment = Payment {
        id,
        merchant: merchant.0,
        amount_cents: request.amount_cents,
        currency: request.currency,
        description: request.description,
        processor_key: format!("payment-{}", key.as_str()),
    };
    ledger.charges.push(Charge {
        payment_id: id,
        amount_cents: payment.amount_cents,
        currency: payment.currency.clone(),
    });
    ledger.payments.insert(id, payment.clone());
    Ok((StatusCode::CREATED, Json(payment)))
}

async fn get_payment(State(db): State<Db>, Path(id): Path<u64>) -> Result<Json<Payment>, ApiError> {
    let ledger = db.lock().expect("ledger lock poisoned");
    match ledger.payments.get(&id) {
        Some(payment) => Ok(Json(payment.clone())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no payment with this id",
        )),
    }
}

async fn get_ledger(State(db): State<Db>) -> Json<serde_json::Value> {
    let ledger = db.lock().expect("ledger lock poisoned");
    Json(serde_json::json!({
        "charge_count": ledger.charges.len(),
        "charges": ledger.charges,
    }))
}

/// Builds the API with its own store.
fn app(db: Db, store: MokaStore) -> Router {
    Router::new()
        .route("/payments", post(create_payment))
        .route("/payments/{id}", get(get_payment))
        .route("/ledger", get(get_ledger))
        .layer(IdempotencyLayer::new(store))
        .with_state(db)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,idempotent=debug".into()),
        )
        .init();

    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid PORT {port:?}: expected a number from 0 to 65535"),
            )
        })?,
        Err(_) => 3000,
    };
    let store = MokaStore::builder()
        .max_capacity_bytes(64 * 1024 * 1024)
        .build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(address = %listener.local_addr()?, "payments example listening");
    axum::serve(listener, app(Db::default(), store)).await
}
