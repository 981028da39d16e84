//! The request fingerprint and the hashed store key.

use http::{HeaderMap, Method, Uri};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::config::{BodyFingerprint, FingerprintConfig};
use crate::store::{Fingerprint, StoreKey};

/// Hashes the handler's `endpoint` name and the parts of a request that `config` names.
///
/// The endpoint is always included, so one key sent to two handlers is a mismatch even when the
/// fingerprint leaves the path out. Every part is length-prefixed, so moving bytes from one
/// part to the next changes the hash.
pub fn fingerprint(
    config: &FingerprintConfig,
    endpoint: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(b"idempotent fingerprint v1");
    update_part(&mut hasher, b'e', endpoint.as_bytes());
    if config.method {
        update_part(&mut hasher, b'm', method.as_str().as_bytes());
    }
    if config.path {
        update_part(&mut hasher, b'p', uri.path().as_bytes());
    }
    if config.query {
        update_part(&mut hasher, b'q', uri.query().unwrap_or("").as_bytes());
    }
    for name in config.headers {
        update_part(&mut hasher, b'h', name.as_bytes());
        for value in headers.get_all(*name) {
            update_part(&mut hasher, b'v', value.as_bytes());
        }
    }
    match config.body {
        BodyFingerprint::Ignore => {}
        BodyFingerprint::Bytes => update_part(&mut hasher, b'b', body),
        BodyFingerprint::Json => match canonical_json(body) {
            Some(canonical) => update_part(&mut hasher, b'j', &canonical),
            None => update_part(&mut hasher, b'b', body),
        },
    }
    Fingerprint(hasher.finalize().into())
}

/// Hashes a client's key together with its scope into the name the store uses.
pub fn store_key(scope: Option<&[u8]>, key: &str) -> StoreKey {
    let mut hasher = Sha256::new();
    hasher.update(b"idempotent key v1");
    match scope {
        Some(scope) => update_part(&mut hasher, b's', scope),
        None => hasher.update([b'n']),
    }
    update_part(&mut hasher, b'k', key.as_bytes());
    StoreKey(hasher.finalize().into())
}

fn update_part(hasher: &mut Sha256, tag: u8, bytes: &[u8]) {
    hasher.update([tag]);
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// The deepest nesting of arrays and objects that [`canonical_json`] canonicalises. Each level
/// parses its subtree again, so the work is at most this many times the body's length.
const MAX_JSON_DEPTH: usize = 32;

/// Returns `body` as canonical JSON: object keys sorted by their UTF-8 bytes, no white space,
/// strings re-escaped the way `serde_json` writes them, and numbers, `true`, `false` and `null`
/// exactly as sent. Returns `None` when `body` is not JSON, nests deeper than 32 levels, or
/// repeats a key within an object. The fingerprint then hashes the raw bytes.
///
/// Keys are sorted here rather than by `serde_json::Map`, whose order depends on whether any
/// crate in the build enables serde_json's `preserve_order` feature. Numbers keep their text
/// because parsing them into `f64` would make distinct large or precise numbers equal, so
/// `1.0` and `1` count as different requests. A repeated key is not canonicalised because
/// parsers disagree on which of its values counts.
pub fn canonical_json(body: &[u8]) -> Option<Vec<u8>> {
    if nesting_depth(body) > MAX_JSON_DEPTH {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let value: &RawValue = serde_json::from_str(text).ok()?;
    let mut out = Vec::with_capacity(body.len());
    write_canonical(value.get(), MAX_JSON_DEPTH, &mut out)?;
    Some(out)
}

/// Returns the deepest nesting of `[` and `{` outside strings, in one pass over the bytes.
fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Writes one JSON value, which `serde_json` has already checked, in canonical form, with at
/// most `depth` levels of nesting. Recursion is bounded by `depth`, because the input comes from
/// the client.
fn write_canonical(value: &str, depth: usize, out: &mut Vec<u8>) -> Option<()> {
    let first = *value.as_bytes().first()?;
    if (first == b'{' || first == b'[') && depth == 0 {
        return None;
    }
    match first {
        b'{' => {
            let Members(mut members) = serde_json::from_str(value).ok()?;
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            if members.windows(2).any(|pair| pair[0].0 == pair[1].0) {
                return None;
            }
            out.push(b'{');
            for (index, (name, member)) in members.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, &name).ok()?;
                out.push(b':');
                write_canonical(member.get(), depth - 1, out)?;
            }
            out.push(b'}');
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(value).ok()?;
            out.push(b'[');
            for (index, item) in items.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item.get(), depth - 1, out)?;
            }
            out.push(b']');
        }
        b'"' => {
            let string: String = serde_json::from_str(value).ok()?;
            serde_json::to_writer(&mut *out, &string).ok()?;
        }
        _ => out.extend_from_slice(value.as_bytes()),
    }
    Some(())
}

/// The members of one JSON object in the order sent, repeated names included, which a map
/// would merge.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;

        impl<'de> serde::de::Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Formats bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(config: &FingerprintConfig, uri: &str, body: &[u8]) -> Fingerprint {
        let uri: Uri = uri.parse().unwrap();
        fingerprint(
            config,
            "create",
            &Method::POST,
            &uri,
            &HeaderMap::new(),
            body,
        )
    }

    #[test]
    fn each_part_changes_the_hash() {
        let config = FingerprintConfig::DEFAULT;
        let base = hash(&config, "/a?x=1", b"{}");

        assert_ne!(base, hash(&config, "/b?x=1", b"{}"));
        assert_ne!(base, hash(&config, "/a?x=2", b"{}"));
        assert_ne!(base, hash(&config, "/a?x=1", b"{ }"));
        let uri: Uri = "/a?x=1".parse().unwrap();
        let put = fingerprint(
            &config,
            "create",
            &Method::PUT,
            &uri,
            &HeaderMap::new(),
            b"{}",
        );
        assert_ne!(base, put);
    }

    #[test]
    fn endpoint_changes_the_hash() {
        let config = FingerprintConfig {
            path: false,
            ..FingerprintConfig::DEFAULT
        };
        let uri: Uri = "/a".parse().unwrap();
        let headers = HeaderMap::new();

        let payments = fingerprint(&config, "api::pay", &Method::POST, &uri, &headers, b"1");
        let refunds = fingerprint(&config, "api::refund", &Method::POST, &uri, &headers, b"1");

        assert_ne!(payments, refunds);
    }

    #[test]
    fn ignored_body_does_not_change_the_hash() {
        let config = FingerprintConfig {
            body: BodyFingerprint::Ignore,
            ..FingerprintConfig::DEFAULT
        };

        assert_eq!(hash(&config, "/a", b"1"), hash(&config, "/a", b"2"));
    }

    #[test]
    fn json_body_ignores_key_order_and_space() {
        let config = FingerprintConfig {
            body: BodyFingerprint::Json,
            ..FingerprintConfig::DEFAULT
        };

        let first = hash(&config, "/a", br#"{"b": 1, "a": [1, {"y": 2, "x": "s"}]}"#);
        let second = hash(&config, "/a", br#"{"a":[1,{"x":"s","y":2}],"b":1}"#);

        assert_eq!(first, second);
        assert_ne!(
            first,
            hash(&config, "/a", br#"{"a":[1,{"x":"s","y":3}],"b":1}"#)
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let canonical = canonical_json(br#"{"z":null,"a":{"c":true,"b":1.5}}"#).unwrap();

        assert_eq!(canonical, br#"{"a":{"b":1.5,"c":true},"z":null}"#);
    }

    #[test]
    fn canonical_json_keeps_number_text() {
        let first = canonical_json(br#"{"amount": 18446744073709551616}"#).unwrap();
        let second = canonical_json(br#"{"amount": 18446744073709551617}"#).unwrap();
        let precise = canonical_json(br#"[0.1000000000000000000001, 1.0, 1]"#).unwrap();

        assert_eq!(first, br#"{"amount":18446744073709551616}"#);
        assert_ne!(first, second);
        assert_eq!(precise, br#"[0.1000000000000000000001,1.0,1]"#);
    }

    #[test]
    fn canonical_json_normalises_strings() {
        let escaped = canonical_json(br#"{"\u0061": "caf\u00e9 \/"}"#).unwrap();

        assert_eq!(escaped, "{\"a\":\"caf\u{e9} /\"}".as_bytes());
    }

    #[test]
    fn canonical_json_rejects_repeated_keys() {
        assert_eq!(canonical_json(br#"{"amount":100000,"amount":1}"#), None);
        assert_eq!(canonical_json(br#"{"amount":1,"\u0061mount":1}"#), None);
        assert_eq!(
            canonical_json(br#"[{"a":1},{"a":2}]"#).unwrap(),
            br#"[{"a":1},{"a":2}]"#
        );
    }

    #[test]
    fn canonical_json_limits_nesting() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let deepest = nested(MAX_JSON_DEPTH);
        let too_deep = nested(1_000_000);
        let brackets_in_string = format!("[\"{}\"]", "[".repeat(100));

        assert_eq!(
            canonical_json(deepest.as_bytes()).unwrap(),
            deepest.as_bytes()
        );
        assert_eq!(canonical_json(nested(MAX_JSON_DEPTH + 1).as_bytes()), None);
        assert_eq!(canonical_json(too_deep.as_bytes()), None);
        assert_eq!(nesting_depth(brackets_in_string.as_bytes()), 1);
        assert_eq!(nesting_depth(br#"["a\"[", {"b": [1]}]"#), 3);
    }

    #[test]
    fn canonical_json_rejects_invalid_json() {
        assert_eq!(canonical_json(b"{\"a\":"), None);
        assert_eq!(canonical_json(b"{} {}"), None);
        assert_eq!(canonical_json(&[0xff]), None);
    }

    #[test]
    fn scope_separates_keys() {
        assert_ne!(store_key(Some(b"alice"), "k"), store_key(Some(b"bob"), "k"));
        assert_ne!(store_key(None, "k"), store_key(Some(b""), "k"));
        assert_eq!(
            store_key(Some(b"alice"), "k"),
            store_key(Some(b"alice"), "k")
        );
    }
}
