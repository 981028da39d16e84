//! `State` with a concrete type and with a generic type.
#![deny(warnings)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use idempotent_runtime::idempotent;

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

#[idempotent]
async fn increment(State(counter): State<Counter>) -> String {
    counter.0.fetch_add(1, Ordering::SeqCst).to_string()
}

trait Clock: Clone + Send + Sync + 'static {
    fn now(&self) -> u64;
}

#[derive(Clone)]
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        7
    }
}

#[idempotent]
async fn stamp<C>(State(clock): State<C>, body: String) -> String
where
    C: Clock,
{
    format!("{body} at {}", clock.now())
}

fn main() {
    let _counter: Router = Router::new()
        .route("/increment", post(increment))
        .with_state(Counter::default());
    let _clock: Router = Router::new()
        .route("/stamp", post(stamp::<FixedClock>))
        .with_state(FixedClock);
}
