//! The checked configuration of one handler, built from the parsed arguments.
//!
//! Every value is checked here, at compile time, so the runtime never parses a string. A bad
//! value records an error and falls back to its default, so the remaining values are still
//! checked in the same build.

use std::time::Duration;

use syn::{LitStr, Type};

use crate::args::{Arg, Args, ByteSize};
use crate::diagnostic::{Errors, closest_match};
use crate::lists::{parse_fingerprint, parse_store_status};

const SECONDS_PER_DAY: u64 = 24 * 60 * 60;
const DEFAULT_TTL: Duration = Duration::from_secs(SECONDS_PER_DAY);
const MAX_TTL: Duration = Duration::from_secs(365 * SECONDS_PER_DAY);
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(SECONDS_PER_DAY);
const DEFAULT_HEADER: &str = "idempotency-key";
const MEBIBYTE: u64 = 1024 * 1024;
const GIBIBYTE: u64 = 1024 * MEBIBYTE;
const DEFAULT_MAX_BODY: u64 = MEBIBYTE;
const MAX_MAX_BODY: u64 = GIBIBYTE;

/// The units accepted by `max_body`, with their size in bytes.
const BYTE_UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1000),
    ("KiB", 1024),
    ("MB", 1000 * 1000),
    ("MiB", MEBIBYTE),
    ("GB", 1000 * 1000 * 1000),
    ("GiB", GIBIBYTE),
];

/// The response to a concurrent retry, as in the runtime's `OnConflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    Reject,
    Wait,
}

/// The form in which the body enters the fingerprint, as in the runtime's `BodyFingerprint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFingerprint {
    Ignore,
    Bytes,
    Json,
}

/// The request parts that are hashed, as in the runtime's `FingerprintConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub(crate) method: bool,
    pub(crate) path: bool,
    pub(crate) query: bool,
    pub(crate) body: BodyFingerprint,
    /// Lowercase header names, in the order written.
    pub(crate) headers: Vec<String>,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self {
            method: true,
            path: true,
            query: true,
            body: BodyFingerprint::Bytes,
            headers: Vec::new(),
        }
    }
}

/// Every value of `#[idempotent(...)]`, checked, with defaults filled in.
pub(crate) struct Config {
    pub(crate) ttl: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) required: bool,
    /// The key header's name, in lowercase.
    pub(crate) header: String,
    /// The largest stored response body, in bytes.
    pub(crate) max_body: u64,
    pub(crate) on_conflict: OnConflict,
    /// The `scope = T` extractor type.
    pub(crate) scope: Option<Type>,
    pub(crate) fingerprint: Fingerprint,
    /// The stored statuses as sorted, disjoint, inclusive ranges.
    pub(crate) store_status: Vec<(u16, u16)>,
}

impl Config {
    /// Checks every argument value, recording each problem in `errors`.
    pub(crate) fn build(args: Args, errors: &mut Errors) -> Self {
        let Args {
            ttl,
            lock_timeout,
            required,
            header,
            max_body,
            on_conflict,
            scope,
            fingerprint,
            store_status,
            errors: parse_errors,
        } = args;
        errors.extend(parse_errors);

        Self {
            ttl: check(ttl, errors, DEFAULT_TTL, |text| {
                parse_duration("ttl", text, "24h", MAX_TTL, "365 days")
            }),
            lock_timeout: check(lock_timeout, errors, DEFAULT_LOCK_TIMEOUT, |text| {
                parse_duration("lock_timeout", text, "30s", MAX_LOCK_TIMEOUT, "24 hours")
            }),
            required: required.is_some_and(|arg| arg.value.value),
            header: check(header, errors, DEFAULT_HEADER.to_owned(), parse_header),
            max_body: check(max_body, errors, DEFAULT_MAX_BODY, parse_max_body),
            on_conflict: check(on_conflict, errors, OnConflict::Reject, parse_on_conflict),
            scope: check(scope, errors, None, parse_scope),
            fingerprint: check(
                fingerprint,
                errors,
                Fingerprint::default(),
                parse_fingerprint,
            ),
            store_status: check(
                store_status,
                errors,
                default_store_status(),
                parse_store_status,
            ),
        }
    }
}

/// Runs `parse` on the argument's value, or returns `default` when the argument is absent or
/// its value is invalid.
fn check<K, V, T>(
    arg: Option<Arg<K, V>>,
    errors: &mut Errors,
    default: T,
    parse: impl FnOnce(&V) -> syn::Result<T>,
) -> T {
    let Some(arg) = arg else {
        return default;
    };
    match parse(&arg.value) {
        Ok(value) => value,
        Err(error) => {
            errors.push(error);
            default
        }
    }
}

fn parse_duration(
    name: &str,
    text: &LitStr,
    example: &str,
    max: Duration,
    max_text: &str,
) -> syn::Result<Duration> {
    let value = text.value();
    let duration = humantime::parse_duration(&value).map_err(|error| {
        let reason = describe_duration_error(&value, &error);
        let message = format!(
            "invalid duration {value:?} ({reason}), expected a duration such as \"{example}\""
        );
        syn::Error::new(text.span(), message)
    })?;
    // Below a second, timer resolution and store round trips let a lock lapse while its
    // request still runs, and a ttl ends before most retries arrive.
    if duration < Duration::from_secs(1) {
        let message = format!("`{name}` must be at least 1 second, such as \"{example}\"");
        return Err(syn::Error::new(text.span(), message));
    }
    if duration > max {
        let message = format!("`{name}` of {value:?} is longer than the maximum of {max_text}");
        return Err(syn::Error::new(text.span(), message));
    }
    Ok(duration)
}

fn describe_duration_error(value: &str, error: &humantime::DurationError) -> String {
    use humantime::DurationError;

    match error {
        DurationError::InvalidCharacter(offset) => {
            let character = value[*offset..].chars().next().unwrap_or(' ');
            format!("`{character}` is not allowed")
        }
        DurationError::NumberExpected(_) => "a number must come before each unit".to_owned(),
        DurationError::UnknownUnit { unit, .. } if unit.is_empty() => {
            "the number has no unit".to_owned()
        }
        DurationError::UnknownUnit { unit, .. } => {
            format!("unknown unit `{unit}`, the units include ms, s, m, h and d")
        }
        DurationError::NumberOverflow => "the number is too large".to_owned(),
        DurationError::Empty => "the string is empty".to_owned(),
    }
}

/// Checks an HTTP field name (RFC 9110 `token`) and returns it in lowercase.
pub(crate) fn parse_header_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("a header name cannot be empty".to_owned());
    }
    if let Some(character) = name.chars().find(|character| !is_token_char(*character)) {
        return Err(format!("{character:?} is not allowed in a header name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// Returns whether `character` is a `tchar` of RFC 9110, section 5.6.2.
fn is_token_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(character)
}

fn parse_header(text: &LitStr) -> syn::Result<String> {
    let value = text.value();
    parse_header_name(&value).map_err(|reason| {
        let message = format!(
            "invalid header name {value:?} ({reason}), expected a name such as \"Idempotency-Key\""
        );
        syn::Error::new(text.span(), message)
    })
}

fn parse_scope(ty: &Type) -> syn::Result<Option<Type>> {
    let mut inner = ty;
    while let Type::Group(group) = inner {
        inner = &group.elem;
    }
    match inner {
        Type::Path(_) => Ok(Some(ty.clone())),
        _ => Err(syn::Error::new_spanned(
            ty,
            "expected the name of an extractor type, such as `Tenant` or `auth::User`",
        )),
    }
}

fn parse_on_conflict(text: &LitStr) -> syn::Result<OnConflict> {
    match text.value().as_str() {
        "reject" => Ok(OnConflict::Reject),
        "wait" => Ok(OnConflict::Wait),
        other => {
            let hint = match closest_match(other, &["reject", "wait"]) {
                Some(suggestion) => format!(", did you mean \"{suggestion}\"?"),
                None => String::new(),
            };
            let message = format!(
                "unknown `on_conflict` value {other:?}, expected \"reject\" or \"wait\"{hint}"
            );
            Err(syn::Error::new(text.span(), message))
        }
    }
}

fn default_store_status() -> Vec<(u16, u16)> {
    vec![(100, 407), (409, 428), (430, 499)]
}

fn parse_max_body(size: &ByteSize) -> syn::Result<u64> {
    let (bytes, span, written) = match size {
        ByteSize::Bytes(number) => (
            number.base10_parse::<u64>()?,
            number.span(),
            number.to_string(),
        ),
        ByteSize::Text(text) => {
            let value = text.value();
            let bytes = parse_byte_size(&value).map_err(|reason| {
                let message =
                    format!("invalid size {value:?} ({reason}), expected a size such as \"1MiB\"");
                syn::Error::new(text.span(), message)
            })?;
            (bytes, text.span(), format!("{value:?}"))
        }
    };
    if bytes == 0 {
        let message = "`max_body` must be larger than zero, such as \"1MiB\"";
        return Err(syn::Error::new(span, message));
    }
    if bytes > MAX_MAX_BODY {
        let message = format!("`max_body` of {written} is larger than the maximum of 1 GiB");
        return Err(syn::Error::new(span, message));
    }
    Ok(bytes)
}

/// Parses a whole number with an optional unit from [`BYTE_UNITS`], such as `1536KiB`.
fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err("a size starts with a number".to_owned());
    }
    if unit.starts_with(['.', ',']) {
        return Err("the number must be whole, such as \"1536KiB\"".to_owned());
    }
    let number: u64 = number
        .parse()
        .map_err(|_| "the number is too large".to_owned())?;

    let multiplier = if unit.is_empty() {
        1
    } else {
        match BYTE_UNITS.iter().find(|(name, _)| *name == unit) {
            Some((_, multiplier)) => *multiplier,
            None => return Err(unknown_byte_unit(unit)),
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "the size is too large".to_owned())
}

fn unknown_byte_unit(unit: &str) -> String {
    let names = BYTE_UNITS.map(|(name, _)| name);
    let units = names.join(", ");
    match closest_match(unit, &names) {
        Some(suggestion) => {
            format!("unknown unit `{unit}`, did you mean `{suggestion}`? The units are {units}")
        }
        None => format!("unknown unit `{unit}`, the units are {units}"),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn build(tokens: proc_macro2::TokenStream) -> (Config, Vec<String>) {
        let args: Args = syn::parse2(tokens).expect("`Args::parse` records errors");
        let mut errors = Errors::default();
        let config = Config::build(args, &mut errors);
        (config, errors.messages())
    }

    #[test]
    fn defaults_match_runtime_defaults() {
        let (config, errors) = build(quote!());

        assert!(errors.is_empty());
        assert_eq!(config.ttl, Duration::from_secs(24 * 60 * 60));
        assert_eq!(config.lock_timeout, Duration::from_secs(30));
        assert!(!config.required);
        assert_eq!(config.header, "idempotency-key");
        assert_eq!(config.max_body, 1024 * 1024);
        assert_eq!(config.on_conflict, OnConflict::Reject);
        assert!(config.scope.is_none());
        assert_eq!(config.fingerprint, Fingerprint::default());
        assert_eq!(config.store_status, [(100, 407), (409, 428), (430, 499)]);
    }

    #[test]
    fn parses_durations() {
        let cases = [
            ("90s", Duration::from_secs(90)),
            ("15m", Duration::from_secs(15 * 60)),
            ("24h", Duration::from_secs(24 * 60 * 60)),
            ("7d", Duration::from_secs(7 * 24 * 60 * 60)),
            ("1h 30m", Duration::from_secs(90 * 60)),
            ("365d", MAX_TTL),
            ("1500ms", Duration::from_millis(1500)),
        ];

        for (text, expected) in cases {
            let (config, errors) = build(quote!(ttl = #text));
            assert!(errors.is_empty(), "{text}: {errors:?}");
            assert_eq!(config.ttl, expected, "{text}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        let cases = [
            (
                "24 parsecs",
                "invalid duration \"24 parsecs\" (unknown unit `parsecs`, the units include ms, \
                 s, m, h and d), expected a duration such as \"24h\"",
            ),
            (
                "24",
                "invalid duration \"24\" (the number has no unit), expected a duration such as \
                 \"24h\"",
            ),
            (
                "",
                "invalid duration \"\" (the string is empty), expected a duration such as \"24h\"",
            ),
            ("0s", "`ttl` must be at least 1 second, such as \"24h\""),
            ("999ms", "`ttl` must be at least 1 second, such as \"24h\""),
            (
                "366d",
                "`ttl` of \"366d\" is longer than the maximum of 365 days",
            ),
        ];

        for (text, expected) in cases {
            let (config, errors) = build(quote!(ttl = #text));
            assert_eq!(errors, [expected], "{text}");
            assert_eq!(config.ttl, DEFAULT_TTL, "{text}");
        }
    }

    #[test]
    fn limits_lock_timeout_to_one_day() {
        let (config, errors) = build(quote!(lock_timeout = "24h"));
        assert!(errors.is_empty());
        assert_eq!(config.lock_timeout, MAX_LOCK_TIMEOUT);

        let (_, errors) = build(quote!(lock_timeout = "25h"));
        assert_eq!(
            errors,
            ["`lock_timeout` of \"25h\" is longer than the maximum of 24 hours"]
        );
    }

    #[test]
    fn lowercases_header() {
        let (config, errors) = build(quote!(header = "X-Idempotency-Key"));

        assert!(errors.is_empty());
        assert_eq!(config.header, "x-idempotency-key");
    }

    #[test]
    fn rejects_invalid_header_names() {
        let cases = [
            ("X Key", "' ' is not allowed in a header name"),
            ("x-key:", "':' is not allowed in a header name"),
            ("", "a header name cannot be empty"),
            ("schlüssel", "'ü' is not allowed in a header name"),
        ];

        for (text, reason) in cases {
            let (_, errors) = build(quote!(header = #text));
            let expected = format!(
                "invalid header name {text:?} ({reason}), expected a name such as \
                 \"Idempotency-Key\""
            );
            assert_eq!(errors, [expected], "{text}");
        }
    }

    #[test]
    fn parses_byte_sizes() {
        let cases = [
            ("512", 512),
            ("512B", 512),
            ("64KB", 64_000),
            ("64KiB", 64 * 1024),
            ("2 MB", 2_000_000),
            ("2MiB", 2 * MEBIBYTE),
            ("1GB", 1_000_000_000),
            ("1GiB", GIBIBYTE),
        ];

        for (text, expected) in cases {
            let (config, errors) = build(quote!(max_body = #text));
            assert!(errors.is_empty(), "{text}: {errors:?}");
            assert_eq!(config.max_body, expected, "{text}");
        }

        let (config, errors) = build(quote!(max_body = 1_048_576));
        assert!(errors.is_empty());
        assert_eq!(config.max_body, MEBIBYTE);
    }

    #[test]
    fn rejects_bad_byte_sizes() {
        let cases = [
            (
                quote!(max_body = "1mib"),
                "invalid size \"1mib\" (unknown unit `mib`, did you mean `MiB`? The units are B, \
                 KB, KiB, MB, MiB, GB, GiB), expected a size such as \"1MiB\"",
            ),
            (
                quote!(max_body = "1.5MiB"),
                "invalid size \"1.5MiB\" (the number must be whole, such as \"1536KiB\"), \
                 expected a size such as \"1MiB\"",
            ),
            (
                quote!(max_body = "MiB"),
                "invalid size \"MiB\" (a size starts with a number), expected a size such as \
                 \"1MiB\"",
            ),
            (
                quote!(max_body = "0KiB"),
                "`max_body` must be larger than zero, such as \"1MiB\"",
            ),
            (
                quote!(max_body = "2GiB"),
                "`max_body` of \"2GiB\" is larger than the maximum of 1 GiB",
            ),
            (
                quote!(max_body = 1073741825),
                "`max_body` of 1073741825 is larger than the maximum of 1 GiB",
            ),
            (
                quote!(max_body = "99999999999999999999GiB"),
                "invalid size \"99999999999999999999GiB\" (the number is too large), expected a \
                 size such as \"1MiB\"",
            ),
        ];

        for (tokens, expected) in cases {
            let (config, errors) = build(tokens);
            assert_eq!(errors, [expected]);
            assert_eq!(config.max_body, DEFAULT_MAX_BODY);
        }
    }

    #[test]
    fn parses_on_conflict() {
        let (config, errors) = build(quote!(on_conflict = "wait"));
        assert!(errors.is_empty());
        assert_eq!(config.on_conflict, OnConflict::Wait);

        let (_, errors) = build(quote!(on_conflict = "wiat"));
        assert_eq!(
            errors,
            [
                "unknown `on_conflict` value \"wiat\", expected \"reject\" or \"wait\", did you mean \
              \"wait\"?"
            ]
        );

        let (_, errors) = build(quote!(on_conflict = "maybe"));
        assert_eq!(
            errors,
            ["unknown `on_conflict` value \"maybe\", expected \"reject\" or \"wait\""]
        );
    }

    #[test]
    fn scope_must_be_a_type_path() {
        let (config, errors) = build(quote!(scope = auth::Tenant<u8>));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(config.scope.is_some());

        let (config, errors) = build(quote!(scope = &Tenant));
        assert_eq!(
            errors,
            ["expected the name of an extractor type, such as `Tenant` or `auth::User`"]
        );
        assert!(config.scope.is_none());
    }

    #[test]
    fn keeps_parse_errors_before_value_errors() {
        let (_, errors) = build(quote!(ttl = "0s", bogus = 1, header = "a b"));

        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("unknown argument `bogus`"));
        assert!(errors[1].starts_with("`ttl` must be at least 1 second"));
        assert!(errors[2].starts_with("invalid header name \"a b\""));
    }
}
