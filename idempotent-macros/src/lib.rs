//! The `#[idempotent]` attribute, which makes an axum 0.8 handler safe to retry.
//!
//! Use it through the `idempotent-runtime` crate, which re-exports it and contains the code that
//! the attribute generates calls to. This crate only parses the attribute, checks it at compile
//! time and rewrites the handler.
//!
//! See [`macro@idempotent`] for the arguments and the expansion.

mod args;
mod config;
mod diagnostic;
mod expand;
mod handler;
mod lists;

use proc_macro::TokenStream;

use crate::args::Args;
use crate::config::Config;
use crate::diagnostic::Errors;
use crate::handler::{Handler, parse_function};

/// Makes an `async fn` axum handler safe to retry with an `Idempotency-Key` header.
///
/// The first request with a key runs the handler and stores its response. A retry with the
/// same key and the same request gets the stored response without running the handler again.
/// A retry with the same key and a different request gets `422`, and a retry that arrives while
/// the first request is still running gets `409` (or waits, with `on_conflict = "wait"`).
///
/// ```ignore
/// use axum::{Json, extract::State, http::StatusCode};
/// use idempotent_runtime::{IdempotencyKey, idempotent};
///
/// /// Creates a payment.
/// #[idempotent(ttl = "24h", required = true, scope = Tenant)]
/// pub async fn create_payment(
///     State(db): State<Db>,
///     key: IdempotencyKey,
///     Json(request): Json<NewPayment>,
/// ) -> Result<(StatusCode, Json<Payment>), AppError> {
///     let payment = db.insert_payment(key.as_str(), request).await?;
///     Ok((StatusCode::CREATED, Json(payment)))
/// }
/// ```
///
/// # Arguments
///
/// Every argument is optional and checked at compile time.
///
/// | argument | value | default |
/// | --- | --- | --- |
/// | `ttl` | how long a response is kept, such as `"90s"`, `"15m"`, `"24h"` or `"7d"`, from 1 second to 365 days | `"24h"` |
/// | `lock_timeout` | how long a key stays locked while its request runs, if the server running it stops, from 1 second to 24 hours | `"30s"` |
/// | `required` | `true` to reject requests without a key with `400` | `false` |
/// | `header` | the key header's name, any valid HTTP header name | `"Idempotency-Key"` |
/// | `max_body` | the largest response body stored, as a size such as `"64KiB"` (units `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`) or a number of bytes, at most 1 GiB | `"1MiB"` |
/// | `on_conflict` | what a retry gets while the first request runs: `"reject"` (`409`) or `"wait"` (it waits for the first request, at most `lock_timeout`, and gets its response) | `"reject"` |
/// | `scope` | an extractor type that implements `FromRequestParts<S>` and `IdempotencyScope`, whose value separates the key spaces of callers | none |
/// | `fingerprint` | the request parts compared between a request and its retries, from `method`, `path`, `query`, `body` (the bytes), `json` (the body as canonical JSON) and `header:<name>` | `"method,path,query,body"` |
/// | `store_status` | the response statuses stored, applied from left to right to an empty set: a class such as `2xx`, a code such as `201`, or either after `!` to remove it | `"1xx,2xx,3xx,4xx,!408,!429"` |
///
/// A response with a status outside `store_status` is not stored, so a retry runs the handler
/// again. Requests with a safe method (`GET`, `HEAD`, `OPTIONS`, `TRACE`) run the handler without
/// storing anything.
///
/// # Handler arguments
///
/// The handler keeps its own extractors. Its last extractor runs after the store was checked,
/// on a buffered copy of the body so that the fingerprint can include the body, and only when
/// the handler runs. An argument of type `IdempotencyKey` (which needs
/// `required = true`) or `Option<IdempotencyKey>` receives the request's key and is not an
/// extractor.
///
/// # What this expands to
///
/// The example above becomes, in outline:
///
/// ```ignore
/// /// Creates a payment.
/// pub async fn create_payment(
///     __idempotent_scope: Tenant,
///     State(db): State<Db>,
///     __idempotent_request: IdempotentRequest<Json<NewPayment>>,
/// ) -> Response {
///     static __IDEMPOTENT_CONFIG: Config = Config {
///         endpoint: concat!(module_path!(), "::", "create_payment"),
///         ttl: Duration::from_secs(86400),
///         // ... every other argument, with its default filled in
///     };
///     let __idempotent_scope_bytes = scope_bytes(&__idempotent_scope);
///     // `run` runs the `Json` extractor, then the closure, only for a new key.
///     run(&__IDEMPOTENT_CONFIG, __idempotent_request, __idempotent_scope_bytes,
///         move |__idempotent_inner, __idempotent_key| async move {
///             let key: IdempotencyKey = match required_key(&__IDEMPOTENT_CONFIG, __idempotent_key) {
///                 Ok(key) => key,
///                 Err(rejection) => return rejection,
///             };
///             let Json(request): Json<NewPayment> = __idempotent_inner;
///             let __idempotent_output: Result<(StatusCode, Json<Payment>), AppError> =
///                 async move { /* the original body */ }.await;
///             into_response(__idempotent_output)
///         })
///         .await
/// }
/// ```
///
/// The runtime items live in `idempotent_runtime::__private`, which is not a public API. The
/// handler's attributes, such as doc comments and `#[allow(...)]`, stay on the generated
/// function. The `impl Trait` parts of the return type become `_` in the `let` above, because a
/// `let` cannot name `impl Trait`.
///
/// # Other attributes
///
/// Attributes below `#[idempotent]` apply to the generated function, and attributes above it
/// to the original one.
///
/// - Put `#[axum::debug_handler]` below `#[idempotent]`, so that it checks the handler that axum
///   calls. Above it, it checks the original signature, and fails to compile when `scope` or a
///   key argument changes the number of arguments.
/// - Put `#[tracing::instrument]` above `#[idempotent]` to trace the original body with the
///   original arguments, which is what `skip(name)` and `fields(...)` usually refer to.
///   Below `#[idempotent]`, the span wraps the generated function and records the generated
///   arguments, so `skip(name)` cannot name the last extractor or the key argument, and the
///   `scope` type must implement `Debug` unless skipped. `skip_all` avoids both problems.
///
/// # Compile errors
///
/// The attribute reports every problem at once, each at its token, and emits the handler
/// unchanged next to the errors, so that code that names the handler gets no further "cannot
/// find" errors. It rejects:
///
/// - an item other than a function, a function without `async`, a method that takes `self`, a
///   `const`, `unsafe`, `extern` or variadic function, and lifetime parameters,
/// - unknown or repeated arguments, values of the wrong kind, and values out of range,
/// - a body extractor (`Json`, `Form`, `Bytes`, `String`, `Body`, `Request`, `Multipart`,
///   `RawForm`, and axum-extra's `JsonLines` and `Protobuf`) before the last argument,
///   reference arguments, and more than 16 extractors counting `scope`,
/// - a second key argument, and an `IdempotencyKey` argument without `required = true`.
///
/// A return type that does not implement `IntoResponse` fails at the return type.
#[proc_macro_attribute]
pub fn idempotent(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_attribute(args.into(), item.into()).into()
}

/// Parses the arguments and the handler, checks both, and generates the new handler. On any
/// error, returns the errors followed by the item unchanged.
fn expand_attribute(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let mut errors = Errors::default();
    let args = syn::parse2::<Args>(args).unwrap_or_else(|error| {
        errors.push(error);
        Args::default()
    });
    let config = Config::build(args, &mut errors);

    let handler = match parse_function(item.clone()) {
        Ok(function) => Handler::build(function, &config, &mut errors),
        Err(error) => {
            errors.push(error);
            return errors_and_item(errors, item);
        }
    };
    if errors.is_empty() {
        expand::expand(handler, config)
    } else {
        errors_and_item(errors, item)
    }
}

/// Returns the errors followed by the item as written, so that code that calls the handler
/// still finds it and only the errors of the attribute are reported.
fn errors_and_item(errors: Errors, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let errors = errors.into_compile_error();
    quote::quote!(#errors #item)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn valid_handler_is_rewritten() {
        let output = expand_attribute(
            quote!(ttl = "1h", required = true),
            quote! {
                /// Creates a payment.
                pub async fn create(State(db): State<Db>, key: IdempotencyKey, Json(p): Json<P>)
                    -> Result<Json<P>, AppError> { Ok(Json(p)) }
            },
        );

        let function: syn::ItemFn = syn::parse2(output).expect("the output is one function");
        let arguments: Vec<String> = function
            .sig
            .inputs
            .iter()
            .map(|argument| quote!(#argument).to_string())
            .collect();
        assert_eq!(
            arguments,
            [
                "State (db) : State < Db >",
                "__idempotent_request : :: idempotent_runtime :: __private :: \
                 IdempotentRequest < Json < P > >",
            ]
        );
        let output = &function.sig.output;
        assert_eq!(
            quote!(#output).to_string(),
            "-> :: idempotent_runtime :: __private :: Response"
        );
        assert_eq!(function.attrs.len(), 1, "the doc comment is kept");
        let body = quote!(#function).to_string();
        assert!(body.contains(
            "ttl : :: idempotent_runtime :: __private :: Duration :: from_secs (3600u64)"
        ));
        assert!(body.contains("required : true"));
    }

    #[test]
    fn invalid_arguments_keep_the_function() {
        let function = quote! {
            async fn create(body: String) -> String { body }
        };

        let output = expand_attribute(quote!(tll = "1h", required = 1), function.clone());

        let output = output.to_string();
        assert_eq!(output.matches("compile_error").count(), 2, "{output}");
        assert!(output.ends_with(&function.to_string()), "{output}");
    }
}
