//! Parsing of the `#[idempotent(...)]` argument list.
//!
//! This step checks the shape of each argument: a known name, `=`, and a value of the right
//! kind. What a value means (whether `"24h"` is a duration) is checked in `validate`. A bad
//! argument is recorded and skipped up to the next comma, so one build reports every problem.

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Ident, LitBool, LitInt, LitStr, Token, Type};

use crate::diagnostic::{Errors, closest_match};

/// The argument names, as listed in error messages.
pub(crate) const ARGUMENT_NAMES: [&str; 9] = [
    "ttl",
    "lock_timeout",
    "required",
    "header",
    "max_body",
    "on_conflict",
    "scope",
    "fingerprint",
    "store_status",
];

pub(crate) mod kw {
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(lock_timeout);
    syn::custom_keyword!(required);
    syn::custom_keyword!(header);
    syn::custom_keyword!(max_body);
    syn::custom_keyword!(on_conflict);
    syn::custom_keyword!(scope);
    syn::custom_keyword!(fingerprint);
    syn::custom_keyword!(store_status);
}

/// One argument as written: its name token, kept so that errors can point at it, and its value.
pub(crate) struct Arg<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

/// The value of `max_body`: a string with a unit, or an integer number of bytes.
pub(crate) enum ByteSize {
    Text(LitStr),
    Bytes(LitInt),
}

/// The arguments of one `#[idempotent(...)]`, each `None` when absent or malformed.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) ttl: Option<Arg<kw::ttl, LitStr>>,
    pub(crate) lock_timeout: Option<Arg<kw::lock_timeout, LitStr>>,
    pub(crate) required: Option<Arg<kw::required, LitBool>>,
    pub(crate) header: Option<Arg<kw::header, LitStr>>,
    pub(crate) max_body: Option<Arg<kw::max_body, ByteSize>>,
    pub(crate) on_conflict: Option<Arg<kw::on_conflict, LitStr>>,
    pub(crate) scope: Option<Arg<kw::scope, Type>>,
    pub(crate) fingerprint: Option<Arg<kw::fingerprint, LitStr>>,
    pub(crate) store_status: Option<Arg<kw::store_status, LitStr>>,
    /// The problems found while parsing.
    pub(crate) errors: Errors,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Self::default();
        while !input.is_empty() {
            if let Err(error) = args.parse_argument(input) {
                args.errors.push(error);
                skip_to_next_argument(input);
            }
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                args.errors
                    .push(input.error("expected `,` between arguments"));
                skip_to_next_argument(input);
            }
            let _ = input.parse::<Option<Token![,]>>();
        }
        Ok(args)
    }
}

impl Args {
    fn parse_argument(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let errors = &mut self.errors;
        if input.peek(kw::ttl) {
            let arg = parse_arg(input, "ttl = \"24h\"", |input| {
                parse_string(input, "expected a duration string such as \"24h\"")
            })?;
            set_once(&mut self.ttl, arg, errors);
        } else if input.peek(kw::lock_timeout) {
            let arg = parse_arg(input, "lock_timeout = \"30s\"", |input| {
                parse_string(input, "expected a duration string such as \"30s\"")
            })?;
            set_once(&mut self.lock_timeout, arg, errors);
        } else if input.peek(kw::required) {
            let arg = parse_arg(input, "required = true", parse_bool)?;
            set_once(&mut self.required, arg, errors);
        } else if input.peek(kw::header) {
            let arg = parse_arg(input, "header = \"Idempotency-Key\"", |input| {
                parse_string(
                    input,
                    "expected a header name string such as \"Idempotency-Key\"",
                )
            })?;
            set_once(&mut self.header, arg, errors);
        } else if input.peek(kw::max_body) {
            let arg = parse_arg(input, "max_body = \"1MiB\"", parse_byte_size)?;
            set_once(&mut self.max_body, arg, errors);
        } else if input.peek(kw::on_conflict) {
            let arg = parse_arg(input, "on_conflict = \"wait\"", |input| {
                parse_string(input, "expected \"reject\" or \"wait\"")
            })?;
            set_once(&mut self.on_conflict, arg, errors);
        } else if input.peek(kw::scope) {
            let arg = parse_arg(input, "scope = Tenant", parse_type)?;
            set_once(&mut self.scope, arg, errors);
        } else if input.peek(kw::fingerprint) {
            let arg = parse_arg(input, "fingerprint = \"method,path,body\"", |input| {
                parse_string(
                    input,
                    "expected a list of request parts such as \"method,path,query,body\"",
                )
            })?;
            set_once(&mut self.fingerprint, arg, errors);
        } else if input.peek(kw::store_status) {
            let arg = parse_arg(input, "store_status = \"2xx,4xx\"", |input| {
                parse_string(
                    input,
                    "expected a list of statuses such as \"2xx,4xx,!429\"",
                )
            })?;
            set_once(&mut self.store_status, arg, errors);
        } else if input.peek(Ident::peek_any) {
            let name = input.call(Ident::parse_any)?;
            return Err(unknown_argument(&name));
        } else {
            return Err(input.error("expected an argument such as `ttl = \"24h\"`"));
        }
        Ok(())
    }
}

/// Parses `key = value`, with `value` read by `parse_value`.
fn parse_arg<K, V>(
    input: ParseStream<'_>,
    example: &str,
    parse_value: impl FnOnce(ParseStream<'_>) -> syn::Result<V>,
) -> syn::Result<Arg<K, V>>
where
    K: Parse + ToTokens,
{
    let key: K = input.parse()?;
    let Some(eq) = input.parse::<Option<Token![=]>>()? else {
        let name = key.to_token_stream();
        let message = format!("expected `=` and a value after `{name}`, as in `{example}`");
        return Err(syn::Error::new(key.span(), message));
    };
    if input.is_empty() || input.peek(Token![,]) {
        let message = format!("expected a value after `=`, as in `{example}`");
        return Err(syn::Error::new(eq.span, message));
    }
    let value = parse_value(input)?;
    Ok(Arg { key, value })
}

/// Stores `arg` in `slot`, or records an error at its name when the slot is already taken.
fn set_once<K: ToTokens, V>(slot: &mut Option<Arg<K, V>>, arg: Arg<K, V>, errors: &mut Errors) {
    if slot.is_some() {
        let name = arg.key.to_token_stream();
        let message = format!("`{name}` is set more than once, remove one of them");
        errors.push(syn::Error::new(arg.key.span(), message));
    } else {
        *slot = Some(arg);
    }
}

fn parse_string(input: ParseStream<'_>, expected: &str) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        input.parse()
    } else {
        Err(input.error(expected))
    }
}

fn parse_bool(input: ParseStream<'_>) -> syn::Result<LitBool> {
    if input.peek(LitBool) {
        return input.parse();
    }
    if input.peek(LitStr) {
        let text: LitStr = input.fork().parse()?;
        if text.value() == "true" || text.value() == "false" {
            let message = format!("expected `{}` without quotes", text.value());
            return Err(syn::Error::new(text.span(), message));
        }
    }
    Err(input.error("expected `true` or `false`"))
}

fn parse_byte_size(input: ParseStream<'_>) -> syn::Result<ByteSize> {
    if input.peek(LitStr) {
        input.parse().map(ByteSize::Text)
    } else if input.peek(LitInt) {
        input.parse().map(ByteSize::Bytes)
    } else {
        Err(input.error("expected a size such as \"1MiB\" or a number of bytes such as 1048576"))
    }
}

fn parse_type(input: ParseStream<'_>) -> syn::Result<Type> {
    if input.peek(LitStr) {
        let text: LitStr = input.fork().parse()?;
        let message = format!("expected the type `{}` without quotes", text.value());
        return Err(syn::Error::new(text.span(), message));
    }
    input.parse().map_err(|error| {
        syn::Error::new(
            error.span(),
            "expected the name of an extractor type, such as `Tenant` or `auth::User`",
        )
    })
}

fn unknown_argument(name: &Ident) -> syn::Error {
    let accepted = ARGUMENT_NAMES
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let unraw = name.unraw().to_string();
    let message = match closest_match(&unraw, &ARGUMENT_NAMES) {
        Some(suggestion) => format!(
            "unknown argument `{unraw}`, did you mean `{suggestion}`? The arguments are {accepted}"
        ),
        None => format!("unknown argument `{unraw}`, expected one of {accepted}"),
    };
    syn::Error::new(name.span(), message)
}

fn skip_to_next_argument(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<TokenTree>().is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse(tokens: proc_macro2::TokenStream) -> Args {
        syn::parse2(tokens).expect("`Args::parse` records errors instead of returning them")
    }

    #[test]
    fn parses_every_argument() {
        let args = parse(quote! {
            ttl = "7d", lock_timeout = "1m", required = true, header = "X-Key",
            max_body = 4096, on_conflict = "wait", scope = auth::Tenant,
            fingerprint = "method,json", store_status = "2xx",
        });

        assert_eq!(args.ttl.map(|arg| arg.value.value()).as_deref(), Some("7d"));
        assert_eq!(
            args.lock_timeout.map(|arg| arg.value.value()).as_deref(),
            Some("1m")
        );
        assert!(args.required.is_some_and(|arg| arg.value.value));
        assert_eq!(
            args.header.map(|arg| arg.value.value()).as_deref(),
            Some("X-Key")
        );
        assert!(matches!(
            args.max_body.map(|arg| arg.value),
            Some(ByteSize::Bytes(_))
        ));
        assert_eq!(
            args.on_conflict.map(|arg| arg.value.value()).as_deref(),
            Some("wait")
        );
        let scope = args
            .scope
            .map(|arg| arg.value.to_token_stream().to_string());
        assert_eq!(scope.as_deref(), Some("auth :: Tenant"));
        assert!(args.fingerprint.is_some());
        assert!(args.store_status.is_some());
        assert!(args.errors.messages().is_empty());
    }

    #[test]
    fn empty_list_sets_nothing() {
        let args = parse(quote!());

        assert!(args.ttl.is_none());
        assert!(args.scope.is_none());
        assert!(args.errors.messages().is_empty());
    }

    #[test]
    fn reports_every_problem() {
        let args = parse(quote! {
            tll = "1h", ttl = 24, required = "yes", ttl = "1h", ttl = "2h", scope = "Tenant",
        });

        let messages = args.errors.messages();
        assert_eq!(messages.len(), 5, "{messages:#?}");
        assert!(messages[0].starts_with("unknown argument `tll`, did you mean `ttl`?"));
        assert_eq!(messages[1], "expected a duration string such as \"24h\"");
        assert_eq!(messages[2], "expected `true` or `false`");
        assert_eq!(
            messages[3],
            "`ttl` is set more than once, remove one of them"
        );
        assert_eq!(messages[4], "expected the type `Tenant` without quotes");
        assert_eq!(args.ttl.map(|arg| arg.value.value()).as_deref(), Some("1h"));
    }

    #[test]
    fn unknown_argument_without_suggestion_lists_names() {
        let args = parse(quote!(retries = 3));

        let messages = args.errors.messages();
        assert_eq!(messages.len(), 1);
        assert!(messages[0].starts_with("unknown argument `retries`, expected one of `ttl`"));
    }

    #[test]
    fn missing_equals_and_value_are_reported() {
        let args = parse(quote!(required, ttl =, header = "X-Key"));

        let messages = args.errors.messages();
        assert_eq!(
            messages,
            [
                "expected `=` and a value after `required`, as in `required = true`",
                "expected a value after `=`, as in `ttl = \"24h\"`",
            ]
        );
        assert!(args.header.is_some());
    }

    #[test]
    fn missing_comma_skips_to_next_argument() {
        let args = parse(quote!(ttl = "1h" required = true, header = "X-Key"));

        assert_eq!(args.errors.messages(), ["expected `,` between arguments"]);
        assert!(args.ttl.is_some());
        assert!(args.required.is_none());
        assert!(args.header.is_some());
    }

    #[test]
    fn quoted_boolean_gets_a_hint() {
        let args = parse(quote!(required = "true"));

        assert_eq!(args.errors.messages(), ["expected `true` without quotes"]);
    }

    #[test]
    fn literal_in_place_of_a_name_is_reported() {
        let args = parse(quote!("24h"));

        assert_eq!(
            args.errors.messages(),
            ["expected an argument such as `ttl = \"24h\"`"]
        );
    }
}
