//! Partial responses: the `fields` standard parameter every Google API method takes.
//!
//! `fields=kind,users(id,name/fullName),nextPageToken` asks for only those parts of the
//! answer: a comma-separated list, `a/b` for field `b` inside `a`, `a(b,c)` for several
//! fields inside `a`, `*` for every field at one level; a selection inside an array
//! applies to each element. A selection that cannot be parsed is a 400 before the method
//! runs. Google documents the syntax once for all its JSON APIs:
//! <https://developers.google.com/admin-sdk/directory/v1/guides/performance#partial-response>
//! and <https://developers.google.com/drive/api/guides/fields-parameter>.
//!
//! Google also refuses a selection naming a field the resource does not have; the
//! emulator does not know every resource's schema here, so it returns such a field as
//! absent instead.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{Api, ApiError};

/// A parsed `fields` value: for each selected key, all of it or a sub-selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection(BTreeMap<String, Node>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    All,
    Sub(Selection),
}

impl Selection {
    /// Parse a `fields` value. The error is the message Google gives.
    pub fn parse(fields: &str) -> Result<Selection, String> {
        let mut p = Parser {
            chars: fields.chars().filter(|c| !c.is_whitespace()).collect(),
            at: 0,
        };
        let invalid = || format!("Invalid field selection {fields}");
        let mut sel = Selection::default();
        p.list(&mut sel, 0).map_err(|_| invalid())?;
        if p.at != p.chars.len() {
            return Err(invalid());
        }
        Ok(sel)
    }

    fn insert(&mut self, path: &[String], node: Node) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            match (self.0.get_mut(first), node) {
                (Some(Node::All), _) => {}
                (Some(Node::Sub(have)), Node::Sub(more)) => have.merge(more),
                (_, node) => {
                    self.0.insert(first.clone(), node);
                }
            }
            return;
        }
        let entry = self
            .0
            .entry(first.clone())
            .or_insert_with(|| Node::Sub(Selection::default()));
        if let Node::Sub(sub) = entry {
            sub.insert(rest, node);
        }
    }

    fn merge(&mut self, other: Selection) {
        for (k, node) in other.0 {
            self.insert(&[k], node);
        }
    }

    /// Keep only the selected parts of `value`.
    pub fn apply(&self, value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let star = self.0.get("*");
                let kept = map
                    .into_iter()
                    .filter_map(|(k, v)| match self.0.get(&k).or(star)? {
                        Node::All => Some((k, v)),
                        Node::Sub(sub) => Some((k, sub.apply(v))),
                    })
                    .collect();
                Value::Object(kept)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.apply(v)).collect()),
            scalar => scalar,
        }
    }
}

/// [`Selection::apply`] while parsing: fields outside the selection are skipped, never
/// built (a `users.list` page cut to a few fields per user would otherwise be parsed
/// whole first).
#[derive(Clone, Copy)]
struct Cut<'a>(&'a Selection);

impl<'de> serde::de::DeserializeSeed<'de> for Cut<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Cut<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let star = self.0.0.get("*");
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.0.0.get(&key).or(star) {
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Some(Node::All) => {
                    out.insert(key, map.next_value::<Value>()?);
                }
                Some(Node::Sub(sub)) => {
                    out.insert(key, map.next_value_seed(Cut(sub))?);
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// `item (',' item)*`, up to the end (depth 0) or a closing parenthesis.
    fn list(&mut self, sel: &mut Selection, depth: usize) -> Result<(), ()> {
        loop {
            self.item(sel, depth)?;
            match self.peek() {
                Some(',') => self.at += 1,
                Some(')') if depth > 0 => return Ok(()),
                None if depth == 0 => return Ok(()),
                _ => return Err(()),
            }
        }
    }

    /// `name ('/' name)* ['(' list ')']`.
    fn item(&mut self, sel: &mut Selection, depth: usize) -> Result<(), ()> {
        let mut path = vec![self.name()?];
        while self.peek() == Some('/') {
            self.at += 1;
            path.push(self.name()?);
        }
        if self.peek() == Some('(') {
            self.at += 1;
            let mut sub = Selection::default();
            self.list(&mut sub, depth + 1)?;
            if self.peek() != Some(')') {
                return Err(());
            }
            self.at += 1;
            sel.insert(&path, Node::Sub(sub));
        } else {
            sel.insert(&path, Node::All);
        }
        Ok(())
    }

    fn name(&mut self) -> Result<String, ()> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "_*.@$-".contains(c))
        {
            self.at += 1;
        }
        if self.at == start {
            return Err(());
        }
        Ok(self.chars[start..self.at].iter().collect())
    }
}

/// The middleware: an unparsable `fields` is a 400 before the method runs; a JSON
/// answer of 2xx is cut down to the selection. Error answers and media are left whole,
/// as Google leaves them.
pub async fn middleware(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = Api::from_path(req.uri().path());
    let fields = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .filter(|(k, _)| k == "fields")
            .last()
            .map(|(_, v)| v.into_owned())
    });
    let Some(fields) = fields.filter(|f| !f.trim().is_empty()) else {
        return next.run(req).await;
    };
    let selection = match Selection::parse(&fields) {
        Ok(s) => s,
        Err(message) => {
            return ApiError::bad_request(api, message)
                .with_location("parameter", "fields")
                .into_response();
        }
    };
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !resp.status().is_success() || !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::new(
            api,
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "backendError",
            "Internal error encountered.",
        )
        .into_response();
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let Ok(value) = serde::de::DeserializeSeed::deserialize(Cut(&selection), &mut de) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let cut = serde_json::to_vec(&value).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    Response::from_parts(parts, axum::body::Body::from(cut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cut(fields: &str, v: Value) -> Value {
        Selection::parse(fields).unwrap().apply(v)
    }

    /// The example of Google's partial-response guide, field for field.
    #[test]
    fn googles_documented_example() {
        let full = json!({
            "kind": "demo",
            "etag": "x",
            "items": [
                {"title": "First title", "comment": "First comment.",
                 "characteristics": {"length": "short", "accuracy": "high", "followers": ["Jo"]},
                 "status": "active"},
                {"title": "Second title", "comment": "Second comment.",
                 "characteristics": {"length": "long", "accuracy": "medium", "followers": []},
                 "status": "pending"}
            ]
        });
        assert_eq!(
            cut("kind,items(title,characteristics/length)", full),
            json!({
                "kind": "demo",
                "items": [
                    {"title": "First title", "characteristics": {"length": "short"}},
                    {"title": "Second title", "characteristics": {"length": "long"}}
                ]
            })
        );
    }

    #[test]
    fn paths_subselections_and_wildcards_combine() {
        let user = json!({
            "id": "1", "primaryEmail": "a@example.com",
            "name": {"givenName": "A", "familyName": "B", "fullName": "A B"},
            "phones": [{"value": "1", "type": "work"}, {"value": "2", "type": "home"}],
            "suspended": false
        });
        assert_eq!(
            cut("id,name/fullName,phones/value", user.clone()),
            json!({"id": "1", "name": {"fullName": "A B"}, "phones": [{"value": "1"}, {"value": "2"}]})
        );
        // Two selections of one object merge; a whole selection wins over a part.
        assert_eq!(
            cut("name/givenName,name(familyName)", user.clone()),
            json!({"name": {"givenName": "A", "familyName": "B"}})
        );
        assert_eq!(
            cut("name/givenName,name", user.clone())["name"],
            user["name"]
        );
        assert_eq!(cut("*", user.clone()), user);
        assert_eq!(
            cut("name(*)", user.clone()),
            json!({"name": user["name"].clone()})
        );
        // A field the answer does not carry is simply absent.
        assert_eq!(cut("id,nextPageToken", user), json!({"id": "1"}));
    }

    /// The middleware cuts while parsing; it must agree with [`Selection::apply`].
    #[test]
    fn cutting_while_parsing_equals_cutting_the_parsed_value() {
        let v = json!({
            "kind": "admin#directory#users", "nextPageToken": "t",
            "users": [
                {"id": "1", "name": {"fullName": "A B", "givenName": "A"}, "emails": [{"address": "a@x"}],
                 "phones": [{"value": "1", "type": "work"}], "suspended": false, "n": 1.5, "z": null},
                {"id": "2", "archived": true, "phones": []}
            ]
        });
        for fields in [
            "users(id,name/fullName,phones/value),nextPageToken",
            "*",
            "users(*)",
            "kind",
            "users/n,users/z,users/suspended",
        ] {
            let sel = Selection::parse(fields).unwrap();
            let bytes = serde_json::to_vec(&v).unwrap();
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            let streamed = serde::de::DeserializeSeed::deserialize(Cut(&sel), &mut de).unwrap();
            assert_eq!(streamed, sel.apply(v.clone()), "{fields}");
        }
    }

    #[test]
    fn unparsable_selections_are_refused_with_googles_message() {
        for bad in [
            "users(id", "users)", "a,,b", "a/", "(a)", "a(b)c", "a//b", ",",
        ] {
            assert_eq!(
                Selection::parse(bad),
                Err(format!("Invalid field selection {bad}")),
                "{bad}"
            );
        }
        assert!(Selection::parse(" users( id , name/fullName ) , nextPageToken ").is_ok());
    }
}
