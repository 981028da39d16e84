//! Code generation: the rewritten handler and its `static` configuration.
//!
//! Generated names start with `__idempotent_` (`__IDEMPOTENT_` for the static) so they cannot
//! clash with the user's, and runtime items are named by absolute paths into
//! `::idempotent_runtime::__private`.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    GenericParam, Generics, Ident, PatType, ReturnType, Token, Type, TypeInfer, TypeParamBound,
};

use crate::config::{BodyFingerprint, Config, Fingerprint, OnConflict};
use crate::handler::{Handler, KeyArgument};

/// Generates the handler that runs the original body under the idempotency runtime.
pub(crate) fn expand(handler: Handler, config: Config) -> TokenStream {
    let Handler {
        attrs,
        inner_attrs,
        vis,
        ident,
        generics,
        leading,
        last,
        key,
        output,
        block,
    } = handler;
    let (impl_generics, _, where_clause) = generics.split_for_impl();

    let config_static = config_static(&config, &ident);
    let (scope_param, scope_bytes) = scope(config.scope.as_ref());
    let (request_param, inner_binding) = last_extractor(last.as_ref());
    let key_binding = key.as_ref().map(key_binding);
    let (output_type, infer) = output_type(&output);
    let output_binding = output_binding(&output_type, &block);
    let return_bounds = return_bounds(infer, &generics, &output);
    let respond = respond(&output);

    quote! {
        #(#attrs)*
        #vis async fn #ident #impl_generics (
            #scope_param
            #(#leading,)*
            #request_param
        ) -> ::idempotent_runtime::__private::Response #where_clause {
            #(#inner_attrs)*
            #config_static
            let __idempotent_scope_bytes = #scope_bytes;
            ::idempotent_runtime::__private::run(
                &__IDEMPOTENT_CONFIG,
                __idempotent_request,
                __idempotent_scope_bytes,
                move |__idempotent_inner, __idempotent_key| async move {
                    #key_binding
                    #inner_binding
                    #output_binding
                    #return_bounds
                    #respond
                },
            )
            .await
        }
    }
}

/// Generates `static __IDEMPOTENT_CONFIG`, the runtime's `Config` for this handler.
fn config_static(config: &Config, ident: &Ident) -> TokenStream {
    let Config {
        ttl,
        lock_timeout,
        required,
        header,
        max_body,
        on_conflict,
        scope: _,
        fingerprint,
        store_status,
    } = config;
    let endpoint = ident.unraw().to_string();
    let ttl = duration(*ttl);
    let lock_timeout = duration(*lock_timeout);
    let max_body = usize::try_from(*max_body).unwrap_or(usize::MAX);
    let on_conflict = match on_conflict {
        OnConflict::Reject => quote!(Reject),
        OnConflict::Wait => quote!(Wait),
    };
    let fingerprint = fingerprint_config(fingerprint);
    let ranges = store_status
        .iter()
        .map(|(first, last)| quote!(.with_range(#first, #last)));

    quote! {
        static __IDEMPOTENT_CONFIG: ::idempotent_runtime::__private::Config =
            ::idempotent_runtime::__private::Config {
                endpoint: ::core::concat!(::core::module_path!(), "::", #endpoint),
                ttl: #ttl,
                lock_timeout: #lock_timeout,
                required: #required,
                header: #header,
                max_body: #max_body,
                on_conflict: ::idempotent_runtime::__private::OnConflict::#on_conflict,
                fingerprint: #fingerprint,
                store_status: ::idempotent_runtime::__private::StatusSet::EMPTY #(#ranges)*,
            };
    }
}

fn duration(duration: std::time::Duration) -> TokenStream {
    let seconds = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        quote!(::idempotent_runtime::__private::Duration::from_secs(#seconds))
    } else {
        quote!(::idempotent_runtime::__private::Duration::new(#seconds, #nanos))
    }
}

fn fingerprint_config(fingerprint: &Fingerprint) -> TokenStream {
    let Fingerprint {
        method,
        path,
        query,
        body,
        headers,
    } = fingerprint;
    let body = match body {
        BodyFingerprint::Ignore => quote!(Ignore),
        BodyFingerprint::Bytes => quote!(Bytes),
        BodyFingerprint::Json => quote!(Json),
    };
    quote! {
        ::idempotent_runtime::__private::FingerprintConfig {
            method: #method,
            path: #path,
            query: #query,
            body: ::idempotent_runtime::__private::BodyFingerprint::#body,
            headers: &[#(#headers),*],
        }
    }
}

/// Returns the scope parameter, placed first, and the expression for the scope bytes.
///
/// `scope_bytes` is spanned at the user's type, so a type that does not implement
/// `IdempotencyScope` is reported at `scope = T`.
fn scope(scope: Option<&Type>) -> (TokenStream, TokenStream) {
    let Some(ty) = scope else {
        return (TokenStream::new(), quote!(::core::option::Option::None));
    };
    let span = Span::call_site().located_at(ty.span());
    let bytes = quote_spanned! {span=>
        ::idempotent_runtime::__private::scope_bytes(&__idempotent_scope)
    };
    (quote!(__idempotent_scope: #ty,), bytes)
}

/// Returns the wrapped last parameter and the `let` that gives the user's pattern its value.
fn last_extractor(last: Option<&PatType>) -> (TokenStream, TokenStream) {
    let Some(PatType { attrs, pat, ty, .. }) = last else {
        let param = quote! {
            __idempotent_request: ::idempotent_runtime::__private::IdempotentRequest<()>
        };
        return (param, TokenStream::new());
    };
    let param = quote! {
        __idempotent_request: ::idempotent_runtime::__private::IdempotentRequest<#ty>
    };
    let binding = quote! {
        #(#attrs)*
        let #pat: #ty = __idempotent_inner;
    };
    (param, binding)
}

/// Binds the user's key argument to the key that the runtime passes in.
fn key_binding(key: &KeyArgument) -> TokenStream {
    let KeyArgument { argument, optional } = key;
    let PatType { attrs, pat, ty, .. } = argument;
    if *optional {
        return quote! {
            #(#attrs)*
            let #pat: #ty = __idempotent_key;
        };
    }
    quote! {
        #(#attrs)*
        let #pat: #ty = match ::idempotent_runtime::__private::required_key(
            &__IDEMPOTENT_CONFIG,
            __idempotent_key,
        ) {
            ::core::result::Result::Ok(__idempotent_present_key) => __idempotent_present_key,
            ::core::result::Result::Err(__idempotent_rejection) => return __idempotent_rejection,
        };
    }
}

/// Runs the original body in an `async move` block, so that `return` and `?` keep their
/// meaning, and binds its output with the declared return type.
fn output_binding(output_type: &TokenStream, block: &syn::Block) -> TokenStream {
    quote! {
        let __idempotent_output: #output_type = async move #block.await;
    }
}

/// Returns the declared return type with each `impl Trait` replaced by `_`, which a `let`
/// accepts, and the bounds of the replaced `impl Trait` types.
fn output_type(output: &ReturnType) -> (TokenStream, InferImplTrait) {
    let mut infer = InferImplTrait::default();
    let ty = match output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => {
            let mut ty = ty.as_ref().clone();
            infer.visit_type_mut(&mut ty);
            ty.into_token_stream()
        }
    };
    (ty, infer)
}

/// Converts the output into a response.
///
/// The argument of the call spans the return type from its first to its last token, so a type
/// that does not implement `IntoResponse` is underlined whole, as if the user wrote the call.
fn respond(output: &ReturnType) -> TokenStream {
    let ReturnType::Type(_, ty) = output else {
        return quote!(::idempotent_runtime::__private::into_response(
            __idempotent_output
        ));
    };
    let tokens = ty.to_token_stream();
    let first = tokens.clone().into_iter().next().map(|token| token.span());
    let last = tokens.into_iter().last().map(|token| token.span());
    let start = Span::call_site().located_at(first.unwrap_or_else(|| ty.span()));
    let end = Span::call_site().located_at(last.unwrap_or_else(|| ty.span()));

    let mut output = Group::new(
        Delimiter::Parenthesis,
        quote_spanned!(end=> __idempotent_output),
    );
    output.set_span(end);
    let identity = quote_spanned!(start=> ::core::convert::identity);
    quote! {
        ::idempotent_runtime::__private::into_response(#identity #output)
    }
}

fn output_span(output: &ReturnType) -> Span {
    match output {
        ReturnType::Default => Span::call_site(),
        ReturnType::Type(_, ty) => Span::call_site().located_at(ty.span()),
    }
}

/// Generates a function per `impl Trait` of the return type whose type parameter carries the
/// same traits, since the generated handler names them nowhere else and their imports would be
/// reported as unused. When the whole return type is `impl Trait`, the output is passed to that
/// function, so the traits are checked as in the original signature.
///
/// A nested function cannot name the handler's generic parameters, `Self` or its lifetimes, so
/// bounds that mention any of them get no function.
///
/// NOTE: the generic parameters of an enclosing `impl` block are invisible to an attribute on
/// one of its functions, so a bound that names one of them still gets a function, which then
/// fails to compile.
fn return_bounds(infer: InferImplTrait, generics: &Generics, output: &ReturnType) -> TokenStream {
    let span = output_span(output);
    let outer_names: Vec<String> = generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => Some(param.ident.to_string()),
            GenericParam::Const(param) => Some(param.ident.to_string()),
            GenericParam::Lifetime(_) => None,
        })
        .collect();

    let mut checks = TokenStream::new();
    for (index, bounds) in infer.replaced.into_iter().enumerate() {
        let traits: Vec<&TypeParamBound> = bounds
            .iter()
            .filter(|bound| matches!(bound, TypeParamBound::Trait(_)))
            .collect();
        if traits.is_empty() || !can_nest(&quote!(#(#traits)*), &outer_names) {
            continue;
        }
        let name = Ident::new(&format!("__idempotent_return_bounds_{index}"), span);
        checks.extend(quote_spanned! {span=>
            #[allow(dead_code)]
            fn #name<__IdempotentOutput: ?::core::marker::Sized #(+ #traits)*>(
                _: &__IdempotentOutput,
            ) {
            }
        });
        if infer.root_replaced && index == 0 {
            checks.extend(quote_spanned! {span=> #name(&__idempotent_output); });
        }
    }
    checks
}

/// Returns whether `tokens` can appear in a nested function: they name no generic parameter of
/// the handler, no `Self`, no lifetime other than `'static`, and no `impl`.
fn can_nest(tokens: &TokenStream, outer_names: &[String]) -> bool {
    let mut previous_was_quote = false;
    for token in tokens.clone() {
        let allowed = match &token {
            TokenTree::Group(group) => can_nest(&group.stream(), outer_names),
            TokenTree::Ident(ident) if previous_was_quote => ident == "static",
            TokenTree::Ident(ident) => {
                let name = ident.to_string();
                name != "Self" && name != "impl" && !outer_names.contains(&name)
            }
            TokenTree::Punct(_) | TokenTree::Literal(_) => true,
        };
        if !allowed {
            return false;
        }
        previous_was_quote = matches!(&token, TokenTree::Punct(punct) if punct.as_char() == '\'');
    }
    true
}

/// Replaces each `impl Trait` with `_` and keeps the bounds it removed.
#[derive(Default)]
struct InferImplTrait {
    /// The bounds of each replaced `impl Trait`, outermost first.
    replaced: Vec<Punctuated<TypeParamBound, Token![+]>>,
    /// Whether the whole type was an `impl Trait`.
    root_replaced: bool,
    depth: usize,
}

impl VisitMut for InferImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(impl_trait) = ty {
            self.root_replaced |= self.depth == 0;
            self.replaced.push(impl_trait.bounds.clone());
            *ty = Type::Infer(TypeInfer {
                underscore_token: Token![_](impl_trait.impl_token.span),
            });
            return;
        }
        self.depth += 1;
        syn::visit_mut::visit_type_mut(self, ty);
        self.depth -= 1;
    }
}
