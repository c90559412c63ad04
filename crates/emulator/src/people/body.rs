//! Request bodies without the `serde_json::Value` detour, when they are valid.
//!
//! The exact path is: parse the body into a `Value` (a syntax error answers 400 before
//! anything else), validate it against the discovery schema ([`fields::validate`], whose
//! first failure in key order is the error Google's parser gives), then deserialize the
//! typed request from the `Value`. Building and walking that tree is most of what a big
//! `batchCreateContacts` costs.
//!
//! The fast path checks the raw bytes against the same schema tables in one streaming pass
//! that allocates nothing ([`schema_accepts`]), then deserializes the typed request from
//! the bytes. It accepts only what the exact path accepts: every value the `Value` would
//! hold is checked by the same rules (a repeated key, which the `Value` keeps only the last
//! of, must be valid every time), and the streaming pass reads strings and numbers exactly
//! as the `Value` parser does (same UTF-8 and escape checks, same nesting limit). If
//! either step fails for any reason, the handler takes the exact path, so every error —
//! syntax, unknown field, wrong type, typed-parse message — is the one it always was.
//!
//! [`fields::validate`]: super::fields::validate

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess};
use serde_json::Value;

use super::schema::{Kind, SCHEMAS};
use crate::error::{Api, ApiError};

/// A request body read in full, parsed by the handler (see the module doc). Rejections
/// are those of [`crate::error::json::GJson`].
pub struct RawBody {
    api: Api,
    bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let api = Api::from_path(req.uri().path());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(api, format!("Could not read body: {e}")))?;
        Ok(RawBody { api, bytes })
    }
}

/// A body after the syntax check: typed already (fast path) or a `Value` still to validate.
pub enum Parsed<T> {
    Typed(T),
    Value(Value),
}

impl RawBody {
    /// The body as JSON: an empty (all-whitespace) body is `{}`, as for `GJson`.
    fn json(&self) -> &[u8] {
        if self.bytes.iter().all(|b| b.is_ascii_whitespace()) {
            b"{}"
        } else {
            &self.bytes
        }
    }

    /// Parse as `T` when the body is valid for discovery schema `schema`; otherwise into a
    /// `Value` (400 on a syntax error, exactly as `GJson<Value>` answers).
    pub fn parse<T: DeserializeOwned>(&self, schema: &str) -> Result<Parsed<T>, ApiError> {
        let json = self.json();
        if schema_accepts(json, schema)
            && let Ok(t) = serde_json::from_slice::<T>(json)
        {
            return Ok(Parsed::Typed(t));
        }
        serde_json::from_slice::<Value>(json)
            .map(Parsed::Value)
            .map_err(|e| {
                ApiError::bad_request(self.api, format!("Invalid JSON payload received. {e}"))
            })
    }
}

fn props(schema: &str) -> Option<&'static [(&'static str, Kind)]> {
    SCHEMAS.iter().find(|(n, _)| *n == schema).map(|(_, p)| *p)
}

/// Whether `json` is one JSON value that `fields::validate(value, schema, _)` accepts.
pub fn schema_accepts(json: &[u8], schema: &str) -> bool {
    let mut de = serde_json::Deserializer::from_slice(json);
    Check::object(schema).deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// What one JSON value must be, mirroring `fields::validate` / `validate_kind`.
#[derive(Clone, Copy)]
enum Check {
    /// `validate(v, schema)`: an object whose keys are the schema's; null only when
    /// reached through `validate_kind` (a field), not as a list or map item.
    Object {
        props: &'static [(&'static str, Kind)],
        nullable: bool,
    },
    /// `validate_kind(v, kind)` for the scalar, list and map kinds: null, or that kind.
    Kind(Kind),
    /// Anything (`Kind::Any`, or a schema the tables do not have).
    Any,
}

impl Check {
    /// `validate(v, schema)`.
    fn object(schema: &str) -> Check {
        match props(schema) {
            Some(props) => Check::Object {
                props,
                nullable: false,
            },
            None => Check::Any,
        }
    }

    /// `validate_kind(v, kind)`.
    fn kind(kind: Kind) -> Check {
        match kind {
            Kind::Obj(s) => match props(s) {
                Some(props) => Check::Object {
                    props,
                    nullable: true,
                },
                None => Check::Any,
            },
            Kind::Any => Check::Any,
            k => Check::Kind(k),
        }
    }
}

fn reject<E: de::Error>() -> E {
    E::custom("")
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a value valid for the schema")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        match self {
            Check::Object { nullable, .. } if !nullable => Err(reject()),
            _ => Ok(()),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        match self {
            Check::Kind(Kind::Bool) | Check::Any => Ok(()),
            _ => Err(reject()),
        }
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        match self {
            Check::Kind(Kind::Int | Kind::Num) | Check::Any => Ok(()),
            _ => Err(reject()),
        }
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.visit_i64(0)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        match self {
            Check::Kind(Kind::Num) | Check::Any => Ok(()),
            _ => Err(reject()),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self {
            Check::Kind(Kind::Str) | Check::Any => Ok(()),
            Check::Kind(Kind::Int) if v.trim().parse::<i64>().is_ok() => Ok(()),
            _ => Err(reject()),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let item = match self {
            Check::Kind(Kind::Arr(s)) => Check::object(s),
            Check::Kind(Kind::ArrOf(inner)) => Check::kind(*inner),
            Check::Any => Check::Any,
            _ => return Err(reject()),
        };
        while seq.next_element_seed(item)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self {
            Check::Object { props, .. } => {
                while let Some(kind) = map.next_key_seed(Key(props))? {
                    map.next_value_seed(Check::kind(kind))?;
                }
            }
            Check::Kind(Kind::Map(s)) => {
                let value = Check::object(s);
                while map.next_key_seed(Check::Any)?.is_some() {
                    map.next_value_seed(value)?;
                }
            }
            Check::Any => {
                while map.next_key_seed(Check::Any)?.is_some() {
                    map.next_value_seed(Check::Any)?;
                }
            }
            _ => return Err(reject()),
        }
        Ok(())
    }
}

/// An object key: known to the schema (its kind), or the end of the check.
struct Key(&'static [(&'static str, Kind)]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Kind;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> de::Visitor<'de> for Key {
    type Value = Kind;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        self.0
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, k)| *k)
            .ok_or_else(reject)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fields::validate;
    use super::*;

    /// What the exact path decides: the body parses as a `Value` and validates.
    fn exact(json: &str, schema: &str) -> bool {
        serde_json::from_str::<Value>(json).is_ok_and(|v| validate(&v, schema, "").is_ok())
    }

    const VALUES: [&str; 26] = [
        "null",
        "true",
        "0",
        "-7",
        "18446744073709551615",
        "1.5",
        "1e2",
        "-0",
        "\"x\"",
        "\" 12 \"",
        "\"-3\"",
        "\"1.5\"",
        "\"\\u00e9\\n\"",
        "[]",
        "[null]",
        "[1]",
        "[\"s\"]",
        "[{}]",
        "[{\"bogus\": 1}]",
        "[[]]",
        "{}",
        "{\"bogus\": 1}",
        "{\"k\": {}}",
        "{\"k\": null}",
        "{\"k\": 1}",
        "{\"k\": \"v\"}",
    ];

    /// Every property of every schema, given every kind of value, and every value as a
    /// whole body: the streaming check decides exactly as `validate` on a `Value`.
    #[test]
    fn streaming_check_decides_like_validate() {
        let mut checked = 0;
        for (schema, props) in SCHEMAS {
            for v in VALUES {
                assert_eq!(
                    schema_accepts(v.as_bytes(), schema),
                    exact(v, schema),
                    "{schema}: {v}"
                );
                checked += 1;
            }
            for (prop, _) in props.iter() {
                for v in VALUES {
                    for body in [
                        format!("{{\"{prop}\": {v}}}"),
                        format!(" {{ \"{prop}\" : {v} , \"{prop}\": {v} }} \n"),
                    ] {
                        assert_eq!(
                            schema_accepts(body.as_bytes(), schema),
                            exact(&body, schema),
                            "{schema}: {body}"
                        );
                        checked += 1;
                    }
                }
            }
            let unknown = "{\"notAField\": 1}";
            assert_eq!(
                schema_accepts(unknown.as_bytes(), schema),
                exact(unknown, schema)
            );
        }
        assert!(checked > 5000);
        // A schema the tables do not have accepts any value, as `validate` does.
        assert!(schema_accepts(b"[1, {\"a\": null}]", "NoSuchSchema"));
    }

    #[test]
    fn malformed_or_truncated_json_is_never_accepted() {
        let good = r#"{"contacts": [{"contactPerson": {"names": [{"givenName": "A"}]}}], "readMask": "metadata"}"#;
        assert!(schema_accepts(
            good.as_bytes(),
            "BatchCreateContactsRequest"
        ));
        for cut in 0..good.len() {
            let bytes = &good.as_bytes()[..cut];
            assert!(
                !schema_accepts(bytes, "BatchCreateContactsRequest"),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        for bad in [
            &b"{\"readMask\": \"a\"} x"[..],
            b"{\"readMask\": \"\\ud800\"}",
            b"{\"readMask\": \"\xff\"}",
            b"{\"readMask\": 1e400}",
            b"{\"readMask\": \"a\",}",
        ] {
            assert!(!schema_accepts(bad, "BatchCreateContactsRequest"));
            assert!(serde_json::from_slice::<Value>(bad).is_err());
        }
        // A repeated key is checked every time, even though a `Value` keeps the last.
        let dup = br#"{"readMask": 1, "readMask": "ok"}"#;
        assert!(exact(
            std::str::from_utf8(dup).unwrap(),
            "BatchCreateContactsRequest"
        ));
        assert!(!schema_accepts(dup, "BatchCreateContactsRequest"));
        // Deep nesting fails as the `Value` parser does.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(!schema_accepts(deep.as_bytes(), "NoSuchSchema"));
        let shallow = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(schema_accepts(shallow.as_bytes(), "NoSuchSchema"));
    }
}
