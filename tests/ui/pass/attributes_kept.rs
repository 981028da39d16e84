//! Doc comments and lint attributes stay on the generated handler.
#![deny(warnings)]
#![deny(missing_docs)]

use axum::Router;
use axum::routing::post;

/// Handlers, each of which must keep its documentation.
pub mod handlers {
    use idempotent_runtime::idempotent;

    /// Echoes the body.
    #[idempotent]
    #[deny(unused_variables)]
    pub async fn echo(body: String) -> String {
        #![allow(clippy::needless_return)]
        return body;
    }

    #[doc = "Echoes the body, documented with an attribute."]
    #[idempotent]
    #[allow(unused_mut)]
    pub async fn echo_again(mut body: String) -> String {
        body
    }
}

fn main() {
    let _app: Router = Router::new()
        .route("/echo", post(handlers::echo))
        .route("/echo-again", post(handlers::echo_again));
}
