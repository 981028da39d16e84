//! Parsing and validation of the idempotency key header.

use std::fmt;

use http::HeaderMap;

/// The largest key accepted, in bytes, after quotes are removed.
pub const MAX_KEY_LEN: usize = 255;

/// A validated idempotency key, as the client sent it (without structured-field quotes).
///
/// A handler annotated with `#[idempotent]` can take this as an argument, or
/// `Option<IdempotencyKey>` when keys are optional, to pass the key on to downstream calls. The
/// attribute fills it in from the header it was configured with. It is deliberately not an
/// extractor: the attribute recognises the argument by its type name, so a renamed import or
/// an alias fails to compile instead of reading a header the attribute does not use.
/// `Debug` hides the key, so that logging a handler's arguments does not reveal it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Returns the key as the client sent it, without quotes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Validates one raw header value: a bare key such as `abc`, or a structured-field string
    /// such as `"abc"`, which is the same key.
    ///
    /// # Errors
    ///
    /// [`KeyError`] names what is wrong with the value.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyError> {
        let key = match raw.first() {
            Some(b'"') => unquote(raw)?,
            _ => raw.to_vec(),
        };
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong { len: key.len() });
        }
        if let Some(position) = key.iter().position(|byte| !byte.is_ascii_graphic()) {
            return Err(KeyError::InvalidCharacter { position });
        }
        // Every byte is visible ASCII, so the bytes are UTF-8.
        let key = String::from_utf8(key).map_err(|_| KeyError::InvalidCharacter { position: 0 })?;
        Ok(Self(key))
    }

    /// Finds and validates the key in `headers` under `name`.
    ///
    /// Returns `Ok(None)` when the header is absent.
    ///
    /// # Errors
    ///
    /// [`KeyError::Repeated`] when the header appears more than once, or the error from
    /// [`parse`](Self::parse).
    pub fn from_headers(headers: &HeaderMap, name: &str) -> Result<Option<Self>, KeyError> {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(KeyError::Repeated);
        }
        Self::parse(first.as_bytes()).map(Some)
    }
}

/// Removes structured-field string quotes: `"a\"b"` becomes `a"b`.
fn unquote(raw: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut key = Vec::with_capacity(raw.len());
    let mut bytes = raw[1..].iter().copied().enumerate();
    while let Some((index, byte)) = bytes.next() {
        match byte {
            b'"' => {
                if index + 2 != raw.len() {
                    return Err(KeyError::BadQuoting);
                }
                return Ok(key);
            }
            b'\\' => match bytes.next() {
                Some((_, escaped @ (b'"' | b'\\'))) => key.push(escaped),
                _ => return Err(KeyError::BadQuoting),
            },
            other => key.push(other),
        }
    }
    Err(KeyError::BadQuoting)
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdempotencyKey(..)")
    }
}

impl AsRef<str> for IdempotencyKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The reason a key header value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is empty.
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    TooLong {
        /// The key's length in bytes.
        len: usize,
    },
    /// The key contains a byte outside visible ASCII (`!` to `~`).
    InvalidCharacter {
        /// The byte offset of the first such byte, counted after quotes are removed.
        position: usize,
    },
    /// The header was sent more than once.
    Repeated,
    /// The value starts with `"` but is not one well-formed quoted string.
    BadQuoting,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the key is empty"),
            Self::TooLong { len } => {
                write!(
                    f,
                    "the key is {len} bytes long, over the limit of {MAX_KEY_LEN}"
                )
            }
            Self::InvalidCharacter { position } => write!(
                f,
                "the key has a character outside visible ASCII at byte offset {position} \
                 (counted from 0)"
            ),
            Self::Repeated => f.write_str("the key header was sent more than once"),
            Self::BadQuoting => {
                f.write_str("the key starts with a quote but is not one quoted string")
            }
        }
    }
}

impl std::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_and_quoted_are_one_key() {
        let bare = IdempotencyKey::parse(b"abc-123").unwrap();
        let quoted = IdempotencyKey::parse(b"\"abc-123\"").unwrap();

        assert_eq!(bare, quoted);
        assert_eq!(bare.as_str(), "abc-123");
    }

    #[test]
    fn quoted_escapes_are_removed() {
        let key = IdempotencyKey::parse(br#""a\"b\\c""#).unwrap();

        assert_eq!(key.as_str(), r#"a"b\c"#);
    }

    #[test]
    fn invalid_values_are_rejected() {
        let long = vec![b'a'; 256];
        let cases: [(&[u8], KeyError); 8] = [
            (b"", KeyError::Empty),
            (b"\"\"", KeyError::Empty),
            (&long, KeyError::TooLong { len: 256 }),
            (b"a b", KeyError::InvalidCharacter { position: 1 }),
            (
                &[b'a', 0xc3, 0xa9],
                KeyError::InvalidCharacter { position: 1 },
            ),
            (b"\"abc", KeyError::BadQuoting),
            (b"\"ab\"c", KeyError::BadQuoting),
            (b"\"a\\nb\"", KeyError::BadQuoting),
        ];

        for (raw, expected) in cases {
            assert_eq!(IdempotencyKey::parse(raw), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn longest_key_is_accepted() {
        let key = vec![b'k'; MAX_KEY_LEN];

        assert_eq!(
            IdempotencyKey::parse(&key).unwrap().as_str().len(),
            MAX_KEY_LEN
        );
    }

    #[test]
    fn repeated_header_is_rejected() {
        let mut headers = HeaderMap::new();
        headers.append("idempotency-key", "a".parse().unwrap());
        headers.append("idempotency-key", "a".parse().unwrap());

        let result = IdempotencyKey::from_headers(&headers, "idempotency-key");

        assert_eq!(result, Err(KeyError::Repeated));
    }

    #[test]
    fn debug_hides_key() {
        let key = IdempotencyKey::parse(b"secret").unwrap();

        assert_eq!(format!("{key:?}"), "IdempotencyKey(..)");
    }
}
