//! Parsing of the comma-separated `fingerprint` and `store_status` values.
//!
//! Each problem in a list becomes its own error at the string literal, because a span cannot
//! point inside a literal on stable Rust.

use syn::LitStr;

use crate::config::{BodyFingerprint, Fingerprint, parse_header_name};
use crate::diagnostic::closest_match;

/// The fingerprint items other than `header:<name>`.
const FINGERPRINT_ITEMS: [&str; 5] = ["method", "path", "query", "body", "json"];

const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 599;
const STATUS_COUNT: usize = (LAST_STATUS - FIRST_STATUS + 1) as usize;

pub(crate) fn parse_fingerprint(text: &LitStr) -> syn::Result<Fingerprint> {
    let value = text.value();
    if value.trim().is_empty() {
        let message = "`fingerprint` is empty, expected the request parts to hash, \
                       such as \"method,path,query,body\"";
        return Err(syn::Error::new(text.span(), message));
    }

    let mut fingerprint = Fingerprint {
        method: false,
        path: false,
        query: false,
        body: BodyFingerprint::Ignore,
        headers: Vec::new(),
    };
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    for item in value.split(',').map(str::trim) {
        if let Err(problem) = add_fingerprint_item(&mut fingerprint, &mut seen, item) {
            problems.push(problem);
        }
    }
    into_result(text, problems).map(|()| fingerprint)
}

/// Adds one item to `fingerprint`. `seen` contains the items added so far, with header names in
/// lowercase.
fn add_fingerprint_item(
    fingerprint: &mut Fingerprint,
    seen: &mut Vec<String>,
    item: &str,
) -> Result<(), String> {
    if item.is_empty() {
        return Err("`fingerprint` has an empty item, remove the extra comma".to_owned());
    }
    let normalized = match item.strip_prefix("header:") {
        Some(name) => {
            let name = parse_header_name(name.trim()).map_err(|reason| {
                format!("invalid header name in `fingerprint` item `{item}` ({reason})")
            })?;
            format!("header:{name}")
        }
        None => item.to_owned(),
    };
    if seen.contains(&normalized) {
        return Err(format!("`fingerprint` lists `{item}` more than once"));
    }

    match normalized.as_str() {
        "method" => fingerprint.method = true,
        "path" => fingerprint.path = true,
        "query" => fingerprint.query = true,
        "body" | "json" if fingerprint.body != BodyFingerprint::Ignore => {
            return Err("`fingerprint` cannot contain both `body` and `json` \
                        because both hash the request body, keep one of them"
                .to_owned());
        }
        "body" => fingerprint.body = BodyFingerprint::Bytes,
        "json" => fingerprint.body = BodyFingerprint::Json,
        header if header.starts_with("header:") => {
            let name = &header["header:".len()..];
            fingerprint.headers.push(name.to_owned());
        }
        _ => return Err(unknown_fingerprint_item(item)),
    }
    seen.push(normalized);
    Ok(())
}

fn unknown_fingerprint_item(item: &str) -> String {
    let items = "`method`, `path`, `query`, `body`, `json` and `header:<name>`";
    let suggestion = match item.split_once(':') {
        Some((prefix, name)) => {
            closest_match(prefix, &["header"]).map(|_| format!("header:{name}"))
        }
        None => closest_match(item, &FINGERPRINT_ITEMS).map(str::to_owned),
    };
    match suggestion {
        Some(suggestion) => format!(
            "unknown `fingerprint` item `{item}`, did you mean `{suggestion}`? The items are {items}"
        ),
        None => format!("unknown `fingerprint` item `{item}`, the items are {items}"),
    }
}

/// Parses `store_status` into sorted, disjoint, inclusive ranges of status codes.
///
/// The items apply from left to right to a set that starts empty: `2xx` or `201` adds, `!4xx`
/// or `!404` removes.
pub(crate) fn parse_store_status(text: &LitStr) -> syn::Result<Vec<(u16, u16)>> {
    let value = text.value();
    let mut stored = [false; STATUS_COUNT];
    let mut problems = Vec::new();
    for item in value.split(',').map(str::trim) {
        let (remove, statuses) = match item.strip_prefix('!') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, item),
        };
        let Some((first, last)) = parse_status_item(statuses) else {
            problems.push(invalid_status_item(item));
            continue;
        };
        for code in first..=last {
            stored[usize::from(code - FIRST_STATUS)] = !remove;
        }
    }
    into_result(text, problems)?;

    let ranges = status_ranges(&stored);
    if ranges.is_empty() {
        let message = format!(
            "`store_status` {value:?} stores no status, because the list starts from the empty \
             set, so name the statuses to store before any `!` removal, as in \"2xx,4xx,!429\""
        );
        return Err(syn::Error::new(text.span(), message));
    }
    Ok(ranges)
}

/// Parses a class such as `4xx` or a code such as `404` into an inclusive range.
fn parse_status_item(item: &str) -> Option<(u16, u16)> {
    let bytes = item.as_bytes();
    let [hundreds, tens, ones] = *bytes else {
        return None;
    };
    if (b'1'..=b'5').contains(&hundreds) && bytes[1..].eq_ignore_ascii_case(b"xx") {
        let first = u16::from(hundreds - b'0') * 100;
        return Some((first, first + 99));
    }
    if !(hundreds.is_ascii_digit() && tens.is_ascii_digit() && ones.is_ascii_digit()) {
        return None;
    }
    let code: u16 = item.parse().ok()?;
    (FIRST_STATUS..=LAST_STATUS)
        .contains(&code)
        .then_some((code, code))
}

fn invalid_status_item(item: &str) -> String {
    if item.is_empty() {
        return "`store_status` has an empty item, remove the extra comma".to_owned();
    }
    format!(
        "invalid `store_status` item `{item}`, expected a class from `1xx` to `5xx` or a code \
         from `100` to `599`, either of which `!` in front removes"
    )
}

/// Returns the runs of `true` in `stored` as inclusive ranges of status codes.
fn status_ranges(stored: &[bool; STATUS_COUNT]) -> Vec<(u16, u16)> {
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for (code, _) in (FIRST_STATUS..=LAST_STATUS)
        .zip(stored)
        .filter(|(_, is_stored)| **is_stored)
    {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == code => *last = code,
            _ => ranges.push((code, code)),
        }
    }
    ranges
}

/// Turns each problem into an error at the literal.
fn into_result(text: &LitStr, problems: Vec<String>) -> syn::Result<()> {
    let mut errors = problems
        .into_iter()
        .map(|problem| syn::Error::new(text.span(), problem));
    let Some(mut combined) = errors.next() else {
        return Ok(());
    };
    for error in errors {
        combined.combine(error);
    }
    Err(combined)
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;

    fn literal(text: &str) -> LitStr {
        LitStr::new(text, Span::call_site())
    }

    fn fingerprint(text: &str) -> Result<Fingerprint, Vec<String>> {
        parse_fingerprint(&literal(text))
            .map_err(|error| error.into_iter().map(|error| error.to_string()).collect())
    }

    fn store_status(text: &str) -> Result<Vec<(u16, u16)>, Vec<String>> {
        parse_store_status(&literal(text))
            .map_err(|error| error.into_iter().map(|error| error.to_string()).collect())
    }

    #[test]
    fn fingerprint_default_list_is_default() {
        assert_eq!(
            fingerprint("method,path,query,body"),
            Ok(Fingerprint::default())
        );
    }

    #[test]
    fn fingerprint_reads_items_and_headers() {
        let parsed = fingerprint(" path , json, header:X-Tenant,header: Accept ");

        let expected = Fingerprint {
            method: false,
            path: true,
            query: false,
            body: BodyFingerprint::Json,
            headers: vec!["x-tenant".to_owned(), "accept".to_owned()],
        };
        assert_eq!(parsed, Ok(expected));
    }

    #[test]
    fn fingerprint_reports_every_bad_item() {
        let errors = fingerprint("methd,,body,json,path,path,header:x y,headr:x").unwrap_err();

        assert_eq!(
            errors,
            [
                "unknown `fingerprint` item `methd`, did you mean `method`? The items are \
                 `method`, `path`, `query`, `body`, `json` and `header:<name>`",
                "`fingerprint` has an empty item, remove the extra comma",
                "`fingerprint` cannot contain both `body` and `json` because both hash the \
                 request body, keep one of them",
                "`fingerprint` lists `path` more than once",
                "invalid header name in `fingerprint` item `header:x y` (' ' is not allowed in \
                 a header name)",
                "unknown `fingerprint` item `headr:x`, did you mean `header:x`? The items are \
                 `method`, `path`, `query`, `body`, `json` and `header:<name>`",
            ]
        );
    }

    #[test]
    fn fingerprint_rejects_empty_list_and_repeated_header() {
        assert_eq!(
            fingerprint(" "),
            Err(vec![
                "`fingerprint` is empty, expected the request parts to hash, such as \
                 \"method,path,query,body\""
                    .to_owned()
            ])
        );
        assert_eq!(
            fingerprint("header:X-A,header:x-a"),
            Err(vec![
                "`fingerprint` lists `header:x-a` more than once".to_owned()
            ])
        );
    }

    #[test]
    fn store_status_default_list_matches_runtime_default() {
        assert_eq!(
            store_status("1xx,2xx,3xx,4xx,!408,!429"),
            Ok(vec![(100, 407), (409, 428), (430, 499)])
        );
    }

    #[test]
    fn store_status_applies_items_in_order() {
        assert_eq!(
            store_status("2xx, 4xx, !4XX, 404"),
            Ok(vec![(200, 299), (404, 404)])
        );
        assert_eq!(store_status("201,200,202"), Ok(vec![(200, 202)]));
        assert_eq!(store_status("5xx,!500,599"), Ok(vec![(501, 599)]));
        assert_eq!(store_status("100"), Ok(vec![(100, 100)]));
    }

    #[test]
    fn store_status_reports_every_bad_item() {
        let errors = store_status("2xx,6xx,99,600,!,abc,,20x").unwrap_err();

        let invalid = |item: &str| {
            format!(
                "invalid `store_status` item `{item}`, expected a class from `1xx` to `5xx` or a \
                 code from `100` to `599`, either of which `!` in front removes"
            )
        };
        assert_eq!(
            errors,
            [
                invalid("6xx"),
                invalid("99"),
                invalid("600"),
                invalid("!"),
                invalid("abc"),
                "`store_status` has an empty item, remove the extra comma".to_owned(),
                invalid("20x"),
            ]
        );
    }

    #[test]
    fn store_status_rejects_empty_result() {
        let expected = |value: &str| {
            vec![format!(
                "`store_status` {value:?} stores no status, because the list starts from the \
                 empty set, so name the statuses to store before any `!` removal, as in \
                 \"2xx,4xx,!429\""
            )]
        };

        assert_eq!(store_status("!429"), Err(expected("!429")));
        assert_eq!(store_status("2xx,!2xx"), Err(expected("2xx,!2xx")));
    }
}
