//! Scoping keys to the caller.

/// An extractor whose value separates the key spaces of different callers.
///
/// Name it in `#[idempotent(scope = AuthUser)]`: the attribute extracts it like any other
/// argument (its rejection, such as a `401`, is returned as is), and hashes
/// [`scope`](Self::scope) together with the client's key. Two callers who send the same key
/// then never see each other's response.
///
/// ```
/// use axum::extract::FromRequestParts;
/// use axum::http::{request::Parts, StatusCode};
/// use idempotent_runtime::IdempotencyScope;
///
/// struct Tenant(String);
///
/// impl<S: Send + Sync> FromRequestParts<S> for Tenant {
///     type Rejection = StatusCode;
///
///     async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
///         let tenant = parts.headers.get("x-tenant").ok_or(StatusCode::UNAUTHORIZED)?;
///         let tenant = tenant.to_str().map_err(|_| StatusCode::UNAUTHORIZED)?;
///         Ok(Tenant(tenant.to_owned()))
///     }
/// }
///
/// impl IdempotencyScope for Tenant {
///     fn scope(&self) -> impl AsRef<[u8]> + '_ {
///         self.0.as_bytes()
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot scope idempotency keys",
    label = "this type does not implement `IdempotencyScope`",
    note = "implement `idempotent_runtime::IdempotencyScope` for `{Self}`, returning the bytes that identify the caller, such as a user or tenant id"
)]
pub trait IdempotencyScope {
    /// Returns the bytes that identify the caller, such as a user or tenant id.
    fn scope(&self) -> impl AsRef<[u8]> + '_;
}
