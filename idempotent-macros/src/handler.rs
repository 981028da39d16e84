//! The annotated function, checked and sorted into the parts that the expansion rearranges.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{
    AttrStyle, Attribute, Block, FnArg, GenericArgument, GenericParam, Generics, Ident, Item,
    ItemFn, PatType, PathArguments, PathSegment, ReturnType, Signature, TraitItemFn, Type,
    Visibility,
};

use crate::config::Config;
use crate::diagnostic::Errors;

/// The maximum number of arguments of an axum 0.8 handler, since axum implements `Handler` for
/// functions of up to 16 extractors.
const MAX_EXTRACTORS: usize = 16;

/// Extractors that read the request body, by the last segment of their type path. axum runs
/// only the last argument with the body, so any of these elsewhere fails to compile. `JsonLines`
/// and `Protobuf` come from axum-extra.
const BODY_EXTRACTORS: [&str; 10] = [
    "Json",
    "Form",
    "Bytes",
    "String",
    "Body",
    "Request",
    "Multipart",
    "RawForm",
    "JsonLines",
    "Protobuf",
];

/// An annotated handler, split into the pieces that the expansion moves around.
pub(crate) struct Handler {
    /// The outer attributes, kept on the generated function.
    pub(crate) attrs: Vec<Attribute>,
    /// The `#![...]` attributes written at the top of the body.
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) generics: Generics,
    /// The extractors before the last one, which stay in the signature unchanged.
    pub(crate) leading: Vec<PatType>,
    /// The last extractor, which the runtime runs on a buffered copy of the body.
    pub(crate) last: Option<PatType>,
    pub(crate) key: Option<KeyArgument>,
    pub(crate) output: ReturnType,
    pub(crate) block: Box<Block>,
}

/// The argument that receives the idempotency key.
pub(crate) struct KeyArgument {
    pub(crate) argument: PatType,
    /// Whether the type is `Option<IdempotencyKey>` rather than `IdempotencyKey`.
    pub(crate) optional: bool,
}

/// Parses the item under the attribute, which must be a function with a body.
pub(crate) fn parse_function(item: TokenStream) -> syn::Result<ItemFn> {
    match syn::parse2::<Item>(item.clone())? {
        Item::Fn(function) => Ok(function),
        Item::Verbatim(_) => match syn::parse2::<TraitItemFn>(item) {
            Ok(function) => Err(bodiless_function(&function)),
            Err(_) => Err(syn::Error::new(Span::call_site(), NOT_A_FUNCTION)),
        },
        other => Err(syn::Error::new(item_keyword_span(&other), NOT_A_FUNCTION)),
    }
}

const NOT_A_FUNCTION: &str = "`#[idempotent]` applies only to an `async fn` axum handler";

fn bodiless_function(function: &TraitItemFn) -> syn::Error {
    if let Some(FnArg::Receiver(receiver)) = function.sig.inputs.first() {
        return receiver_error(receiver.self_token.span);
    }
    let span = function
        .semi_token
        .map_or_else(|| function.sig.span(), |semi| semi.span);
    syn::Error::new(
        span,
        "`#[idempotent]` needs a function with a body, because it rewrites the body",
    )
}

fn receiver_error(span: Span) -> syn::Error {
    let message = "`#[idempotent]` handlers cannot take `self` because axum passes only \
                   extractors, so take `State<Self>` instead or write a free function";
    syn::Error::new(span, message)
}

/// Returns the span of the keyword that names the item's kind, such as `struct`.
fn item_keyword_span(item: &Item) -> Span {
    match item {
        Item::Const(item) => item.const_token.span,
        Item::Enum(item) => item.enum_token.span,
        Item::ExternCrate(item) => item.extern_token.span,
        Item::ForeignMod(item) => item.abi.extern_token.span,
        Item::Impl(item) => item.impl_token.span,
        Item::Macro(item) => item.mac.path.span(),
        Item::Mod(item) => item.mod_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Struct(item) => item.struct_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::TraitAlias(item) => item.trait_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Union(item) => item.union_token.span,
        Item::Use(item) => item.use_token.span,
        other => other.span(),
    }
}

impl Handler {
    /// Checks the function and sorts its arguments, recording each problem in `errors`.
    pub(crate) fn build(function: ItemFn, config: &Config, errors: &mut Errors) -> Self {
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = function;
        check_signature(&sig, errors);
        let (key, mut extractors) = sort_arguments(&sig, config, errors);
        check_extractors(&extractors, config, errors);

        let last = extractors.pop();
        let (inner_attrs, attrs) = attrs
            .into_iter()
            .partition(|attr| matches!(attr.style, AttrStyle::Inner(_)));
        let Signature {
            ident,
            generics,
            output,
            ..
        } = sig;
        Self {
            attrs,
            inner_attrs,
            vis,
            ident,
            generics,
            leading: extractors,
            last,
            key,
            output,
            block,
        }
    }
}

/// Checks the parts of the signature that an axum handler cannot have.
fn check_signature(sig: &Signature, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        let message = "`#[idempotent]` handlers cannot be `const fn`, remove `const`";
        errors.push(syn::Error::new(constness.span, message));
    }
    if sig.asyncness.is_none() {
        let message = "`#[idempotent]` handlers must be `async fn`, add `async` before `fn`";
        errors.push(syn::Error::new(sig.fn_token.span, message));
    }
    if let Some(unsafety) = &sig.unsafety {
        let message = "`#[idempotent]` handlers cannot be `unsafe fn` because axum calls them \
                       as safe functions, so remove `unsafe`";
        errors.push(syn::Error::new(unsafety.span, message));
    }
    if let Some(abi) = &sig.abi {
        let message = "`#[idempotent]` handlers cannot have an `extern` ABI, remove it";
        errors.push(syn::Error::new_spanned(abi, message));
    }
    if let Some(variadic) = &sig.variadic {
        let message = "`#[idempotent]` handlers cannot be variadic, remove `...`";
        errors.push(syn::Error::new_spanned(variadic, message));
    }
    for param in &sig.generics.params {
        if let GenericParam::Lifetime(lifetime) = param {
            let message = format!(
                "`#[idempotent]` handlers cannot have lifetime parameters because the runtime \
                 needs `'static` arguments and output, so remove `{}`",
                lifetime.lifetime
            );
            errors.push(syn::Error::new_spanned(lifetime, message));
        }
    }
}

/// Splits the arguments into the key argument and the extractors, in order.
fn sort_arguments(
    sig: &Signature,
    config: &Config,
    errors: &mut Errors,
) -> (Option<KeyArgument>, Vec<PatType>) {
    let mut key: Option<KeyArgument> = None;
    let mut extractors = Vec::new();
    for input in &sig.inputs {
        let argument = match input {
            FnArg::Receiver(receiver) => {
                errors.push(receiver_error(receiver.self_token.span));
                continue;
            }
            FnArg::Typed(argument) => argument,
        };
        let Some(optional) = key_type(&argument.ty) else {
            extractors.push(argument.clone());
            continue;
        };
        if key.is_some() {
            let message = "the handler already takes the idempotency key in an earlier \
                           argument, remove this one";
            errors.push(syn::Error::new_spanned(argument, message));
            continue;
        }
        if !optional && !config.required {
            let message = "a request may come without a key unless `required = true` is set, \
                           so take `Option<IdempotencyKey>` or add `required = true` to \
                           `#[idempotent]`";
            errors.push(syn::Error::new_spanned(&argument.ty, message));
        }
        key = Some(KeyArgument {
            argument: argument.clone(),
            optional,
        });
    }
    (key, extractors)
}

/// Checks what axum requires of the extractors once the attribute has rewritten the signature.
fn check_extractors(extractors: &[PatType], config: &Config, errors: &mut Errors) {
    for argument in extractors {
        if let Type::Reference(reference) = strip_group(&argument.ty) {
            let message = "handler arguments cannot be references, because axum extracts \
                           owned values from the request; remove the `&`";
            errors.push(syn::Error::new_spanned(reference, message));
        }
    }

    if let Some((_, leading)) = extractors.split_last() {
        for argument in leading {
            if let Some(name) = body_extractor(&argument.ty) {
                let message = format!(
                    "move `{name}` to the end of the argument list, because it reads the \
                     request body and axum gives the body only to the last extractor"
                );
                errors.push(syn::Error::new_spanned(argument, message));
            }
        }
    }

    check_extractor_count(extractors, config, errors);
}

/// Checks that the generated handler, with the `scope` extractor first, stays within axum's
/// limit. `IdempotencyKey` arguments do not count, since the attribute removes them.
fn check_extractor_count(extractors: &[PatType], config: &Config, errors: &mut Errors) {
    let scope_places = usize::from(config.scope.is_some());
    let Some(first_excess) = extractors.get(MAX_EXTRACTORS - scope_places) else {
        return;
    };
    let counting_scope = if scope_places == 1 {
        " counting the `scope` extractor that `#[idempotent]` adds"
    } else {
        ""
    };
    let message = format!(
        "this is extractor number {}{counting_scope}, but axum handlers take at most \
         {MAX_EXTRACTORS}, so nest some of them in a tuple such as `(a, b): (A, B)`",
        MAX_EXTRACTORS + 1
    );
    errors.push(syn::Error::new_spanned(first_excess, message));
}

/// Returns `Some(false)` for `IdempotencyKey`, `Some(true)` for `Option<IdempotencyKey>` and
/// `None` for any other type. Types are matched by the last segment of their path.
fn key_type(ty: &Type) -> Option<bool> {
    let segment = last_segment(ty)?;
    if segment.ident == "IdempotencyKey" {
        return Some(false);
    }
    if segment.ident == "Option" {
        let inner = first_type_argument(segment)?;
        if last_segment(inner)?.ident == "IdempotencyKey" {
            return Some(true);
        }
    }
    None
}

/// Returns the name of a body extractor in `ty`, also when wrapped in `Option` or `Result`.
fn body_extractor(ty: &Type) -> Option<String> {
    let segment = last_segment(ty)?;
    let name = segment.ident.to_string();
    if BODY_EXTRACTORS.contains(&name.as_str()) {
        return Some(name);
    }
    if name == "Option" || name == "Result" {
        return body_extractor(first_type_argument(segment)?);
    }
    None
}

fn last_segment(ty: &Type) -> Option<&PathSegment> {
    match strip_group(ty) {
        Type::Path(path) => path.path.segments.last(),
        _ => None,
    }
}

fn first_type_argument(segment: &PathSegment) -> Option<&Type> {
    let PathArguments::AngleBracketed(arguments) = &segment.arguments else {
        return None;
    };
    arguments.args.iter().find_map(|argument| match argument {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

/// Removes the invisible groups and parentheses that macro expansion can wrap around a type.
fn strip_group(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_group(&group.elem),
        Type::Paren(paren) => strip_group(&paren.elem),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use quote::{ToTokens, quote};

    use super::*;
    use crate::args::Args;

    fn build(args: TokenStream, function: TokenStream) -> (Option<Handler>, Vec<String>) {
        let mut errors = Errors::default();
        let args: Args = syn::parse2(args).expect("`Args::parse` records errors");
        let config = Config::build(args, &mut errors);
        let handler = match parse_function(function) {
            Ok(function) => Some(Handler::build(function, &config, &mut errors)),
            Err(error) => {
                errors.push(error);
                None
            }
        };
        (handler, errors.messages())
    }

    fn names(arguments: &[PatType]) -> Vec<String> {
        arguments
            .iter()
            .map(|argument| argument.pat.to_token_stream().to_string())
            .collect()
    }

    #[test]
    fn sorts_key_and_extractors() {
        let (handler, errors) = build(
            quote!(required = true),
            quote! {
                async fn create(a: State<Db>, key: IdempotencyKey, b: Path<u32>, c: Json<T>) {}
            },
        );

        assert!(errors.is_empty(), "{errors:?}");
        let handler = handler.expect("the function parses");
        assert_eq!(names(&handler.leading), ["a", "b"]);
        assert_eq!(names(handler.last.as_slice()), ["c"]);
        let key = handler.key.expect("the key argument is found");
        assert!(!key.optional);
    }

    #[test]
    fn recognizes_key_types_by_last_segment() {
        let key = |ty: TokenStream| key_type(&syn::parse2(ty).expect("a type"));

        assert_eq!(key(quote!(IdempotencyKey)), Some(false));
        assert_eq!(key(quote!(idempotent_runtime::IdempotencyKey)), Some(false));
        assert_eq!(key(quote!(Option<IdempotencyKey>)), Some(true));
        assert_eq!(
            key(quote!(std::option::Option<crate::IdempotencyKey>)),
            Some(true)
        );
        assert_eq!(key(quote!(Option<String>)), None);
        assert_eq!(key(quote!(Result<IdempotencyKey, E>)), None);
        assert_eq!(key(quote!(&IdempotencyKey)), None);
    }

    #[test]
    fn recognizes_body_extractors_when_wrapped() {
        let body = |ty: TokenStream| body_extractor(&syn::parse2(ty).expect("a type"));

        assert_eq!(body(quote!(Json<T>)).as_deref(), Some("Json"));
        assert_eq!(body(quote!(axum::body::Bytes)).as_deref(), Some("Bytes"));
        assert_eq!(body(quote!(Option<Form<T>>)).as_deref(), Some("Form"));
        assert_eq!(body(quote!(Result<String, E>)).as_deref(), Some("String"));
        assert_eq!(body(quote!(Path<String>)), None);
        assert_eq!(body(quote!(HeaderMap)), None);
    }

    #[test]
    fn no_extractor_leaves_last_empty() {
        let (handler, errors) = build(
            quote!(),
            quote!(
                async fn ping(key: Option<IdempotencyKey>) {}
            ),
        );

        assert!(errors.is_empty(), "{errors:?}");
        let handler = handler.expect("the function parses");
        assert!(handler.leading.is_empty());
        assert!(handler.last.is_none());
        assert!(handler.key.is_some_and(|key| key.optional));
    }

    #[test]
    fn reports_every_signature_problem() {
        let (_, errors) = build(
            quote!(),
            quote! {
                const unsafe extern "C" fn create<'a>(
                    &self,
                    key: IdempotencyKey,
                    again: Option<IdempotencyKey>,
                    body: Json<T>,
                    text: &'a str,
                    path: Path<u32>,
                ) {}
            },
        );

        assert_eq!(errors.len(), 10, "{errors:#?}");
        assert!(errors[0].contains("cannot be `const fn`"));
        assert!(errors[1].contains("must be `async fn`"));
        assert!(errors[2].contains("cannot be `unsafe fn`"));
        assert!(errors[3].contains("cannot have an `extern` ABI"));
        assert!(errors[4].contains("cannot have lifetime parameters"));
        assert!(errors[5].contains("cannot take `self`"));
        assert!(errors[6].contains("unless `required = true` is set"));
        assert!(errors[7].contains("already takes the idempotency key"));
        assert!(errors[8].contains("cannot be references"));
        assert!(errors[9].starts_with("move `Json` to the end"));
    }

    #[test]
    fn counts_extractors_with_scope() {
        let arguments = |count: usize| -> Vec<TokenStream> {
            (0..count)
                .map(|index| {
                    let name = quote::format_ident!("m{index}");
                    quote!(#name: Method)
                })
                .collect()
        };
        let sixteen = arguments(16);
        let seventeen = arguments(17);

        let (_, errors) = build(quote!(), quote!(async fn f(#(#sixteen),*) {}));
        assert!(errors.is_empty(), "{errors:?}");

        let (_, errors) = build(
            quote!(required = true),
            quote!(async fn f(key: IdempotencyKey, #(#sixteen),*) {}),
        );
        assert!(errors.is_empty(), "{errors:?}");

        let (_, errors) = build(quote!(), quote!(async fn f(#(#seventeen),*) {}));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("this is extractor number 17, but"));

        let (_, errors) = build(quote!(scope = Tenant), quote!(async fn f(#(#sixteen),*) {}));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("this is extractor number 17 counting the `scope`"));
    }

    #[test]
    fn rejects_items_that_are_not_functions() {
        let cases = [
            quote!(
                struct Payment;
            ),
            quote!(impl Payments {}),
            quote!(
                const LIMIT: u32 = 3;
            ),
        ];

        for item in cases {
            let (handler, errors) = build(quote!(), item);
            assert!(handler.is_none());
            assert_eq!(errors, [NOT_A_FUNCTION]);
        }
    }

    #[test]
    fn rejects_trait_method_declarations() {
        let (_, errors) = build(
            quote!(),
            quote!(
                async fn create(&self);
            ),
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("cannot take `self`"));

        let (_, errors) = build(
            quote!(),
            quote!(
                async fn create(body: String);
            ),
        );
        assert_eq!(
            errors,
            ["`#[idempotent]` needs a function with a body, because it rewrites the body"]
        );
    }
}
