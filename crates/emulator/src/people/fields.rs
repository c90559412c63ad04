//! Field masks (`personFields`, `readMask`, `updatePersonFields`, `groupFields`), body
//! validation against the discovery schemas, and projecting a stored contact onto the
//! requested fields. Google rejects unknown JSON names instead of dropping them, and so
//! do we: a client that misspells a field must find out here, not in production.

use std::borrow::Cow;

use orgsync_wire::people::{
    Name, Person, READABLE_PERSON_FIELDS, SINGLETON_PERSON_FIELDS, UPDATABLE_PERSON_FIELDS,
};
use serde_json::Value;

use super::bad;
use super::book::Contact;
use super::schema::{Kind, SCHEMAS};
use crate::error::ApiError;

/// A set of Person field names, as a bitmask over [`READABLE_PERSON_FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSet(u32);

fn readable_index(name: &str) -> Option<usize> {
    READABLE_PERSON_FIELDS.iter().position(|f| *f == name)
}

/// The bit of readable field `name` (a compile-time error when it is not readable).
const fn readable_bit(name: &str) -> u32 {
    let mut i = 0;
    while i < READABLE_PERSON_FIELDS.len() {
        let f = READABLE_PERSON_FIELDS[i].as_bytes();
        let n = name.as_bytes();
        if f.len() == n.len() {
            let mut j = 0;
            while j < n.len() && f[j] == n[j] {
                j += 1;
            }
            if j == n.len() {
                return 1 << i;
            }
        }
        i += 1;
    }
    panic!("not a readable Person field")
}

impl FieldSet {
    pub const METADATA: u32 = readable_bit("metadata");
    pub const NAMES: u32 = readable_bit("names");
    pub const EMAIL_ADDRESSES: u32 = readable_bit("emailAddresses");
    pub const PHONE_NUMBERS: u32 = readable_bit("phoneNumbers");
    pub const ORGANIZATIONS: u32 = readable_bit("organizations");
    pub const CLIENT_DATA: u32 = readable_bit("clientData");
    pub const EXTERNAL_IDS: u32 = readable_bit("externalIds");
    pub const MEMBERSHIPS: u32 = readable_bit("memberships");
    pub const BIOGRAPHIES: u32 = readable_bit("biographies");
    pub const USER_DEFINED: u32 = readable_bit("userDefined");
    pub const PHOTOS: u32 = readable_bit("photos");

    /// Whether the field with bit `bit` (one of the constants above) is in the set.
    pub fn has_bit(&self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    pub fn all_readable() -> Self {
        FieldSet((1u32 << READABLE_PERSON_FIELDS.len()) - 1)
    }

    pub fn has(&self, name: &str) -> bool {
        readable_index(name).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    pub fn bits(&self) -> u32 {
        self.0
    }

    /// Parse a comma-separated read mask. `what` names the parameter in errors.
    pub fn parse_read(mask: &str, what: &str, doc: &str) -> Result<Self, ApiError> {
        let mut bits = 0u32;
        let mut any = false;
        for raw in mask.split(',') {
            let f = raw.trim();
            if f.is_empty() {
                continue;
            }
            // `person.names` is accepted by Google as well.
            let f = f.strip_prefix("person.").unwrap_or(f);
            let camel = snake_to_camel(f);
            let i = readable_index(&camel).ok_or_else(|| {
                bad(format!(
                    "Invalid {what} mask path: \"{f}\". Valid paths are documented at {doc}."
                ))
            })?;
            bits |= 1 << i;
            any = true;
        }
        if !any {
            return Err(bad(format!(
                "{what} mask is required. Please specify one or more valid paths. Valid paths are documented at {doc}."
            )));
        }
        Ok(FieldSet(bits))
    }

    /// Parse an update mask: names must be in [`UPDATABLE_PERSON_FIELDS`].
    pub fn parse_update(mask: &str, what: &str) -> Result<Vec<&'static str>, ApiError> {
        let mut out: Vec<&'static str> = Vec::new();
        for raw in mask.split(',') {
            let f = raw.trim();
            if f.is_empty() {
                continue;
            }
            let f = f.strip_prefix("person.").unwrap_or(f);
            let camel = snake_to_camel(f);
            let name = UPDATABLE_PERSON_FIELDS
                .iter()
                .find(|u| **u == camel)
                .ok_or_else(|| {
                    bad(format!(
                        "Invalid {what} mask path: \"{f}\". Valid paths are documented at https://developers.google.com/people/api/rest/v1/people/updateContact."
                    ))
                })?;
            if !out.contains(name) {
                out.push(name);
            }
        }
        if out.is_empty() {
            return Err(bad(format!(
                "{what} mask is required. Please specify one or more valid paths."
            )));
        }
        Ok(out)
    }
}

pub const CONNECTIONS_DOC: &str =
    "https://developers.google.com/people/api/rest/v1/people.connections/list";
pub const PEOPLE_GET_DOC: &str = "https://developers.google.com/people/api/rest/v1/people/get";

pub fn snake_to_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for ch in s.chars() {
        if ch == '_' {
            up = true;
        } else if up {
            out.extend(ch.to_uppercase());
            up = false;
        } else {
            out.push(ch);
        }
    }
    out
}

fn camel_to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for ch in s.chars() {
        if ch.is_ascii_uppercase() {
            out.push('_');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn schema(name: &str) -> Option<&'static [(&'static str, Kind)]> {
    SCHEMAS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// Validate `value` against discovery schema `schema_name`; `path` is the field path
/// Google reports (e.g. `person`, `contacts[0].contact_person`).
pub fn validate(value: &Value, schema_name: &str, path: &str) -> Result<(), ApiError> {
    let Some(props) = schema(schema_name) else {
        return Ok(());
    };
    let Value::Object(map) = value else {
        return Err(invalid_value(path, value, "an object"));
    };
    for (k, v) in map {
        let Some((_, kind)) = props.iter().find(|(n, _)| n == k) else {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" at '{path}'")
            };
            return Err(bad(format!(
                "Invalid JSON payload received. Unknown name \"{k}\"{at}: Cannot find field."
            )));
        };
        let sub = if path.is_empty() {
            camel_to_snake(k)
        } else {
            format!("{path}.{}", camel_to_snake(k))
        };
        validate_kind(v, kind, &sub)?;
    }
    Ok(())
}

fn validate_kind(v: &Value, kind: &Kind, path: &str) -> Result<(), ApiError> {
    if v.is_null() {
        return Ok(());
    }
    match kind {
        Kind::Any => Ok(()),
        Kind::Str if v.is_string() => Ok(()),
        Kind::Bool if v.is_boolean() => Ok(()),
        Kind::Int if v.is_i64() || v.is_u64() => Ok(()),
        Kind::Int if v.as_str().is_some_and(|s| s.trim().parse::<i64>().is_ok()) => Ok(()),
        Kind::Num if v.is_number() => Ok(()),
        Kind::Obj(s) => validate(v, s, path),
        Kind::Arr(s) => {
            let Value::Array(items) = v else {
                return Err(invalid_value(path, v, "a list"));
            };
            for (i, item) in items.iter().enumerate() {
                validate(item, s, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Kind::ArrOf(inner) => {
            let Value::Array(items) = v else {
                return Err(invalid_value(path, v, "a list"));
            };
            for (i, item) in items.iter().enumerate() {
                validate_kind(item, inner, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Kind::Map(s) => {
            let Value::Object(m) = v else {
                return Err(invalid_value(path, v, "an object"));
            };
            for (k, item) in m {
                validate(item, s, &format!("{path}[{k}]"))?;
            }
            Ok(())
        }
        Kind::Str => Err(invalid_value(path, v, "a string")),
        Kind::Bool => Err(invalid_value(path, v, "a boolean")),
        Kind::Int | Kind::Num => Err(invalid_value(path, v, "a number")),
    }
}

fn invalid_value(path: &str, v: &Value, expected: &str) -> ApiError {
    let shown = v.to_string();
    let shown: String = shown.chars().take(60).collect();
    bad(format!(
        "Invalid JSON payload received. Invalid value at '{path}' ({expected} expected): {shown}"
    ))
}

/// Validate and parse a Person body.
pub fn parse_person(v: Value, path: &str) -> Result<Person, ApiError> {
    validate(&v, "Person", path)?;
    serde_json::from_value(v)
        .map_err(|e| bad(format!("Invalid JSON payload received. {e} at '{path}'")))
}

/// Number of values a field has on `p`, for modelled and `extra` fields alike.
pub fn field_len(p: &Person, name: &str) -> usize {
    match name {
        "names" => p.names.len(),
        "biographies" => p.biographies.len(),
        "emailAddresses" => p.email_addresses.len(),
        "phoneNumbers" => p.phone_numbers.len(),
        "organizations" => p.organizations.len(),
        "clientData" => p.client_data.len(),
        "externalIds" => p.external_ids.len(),
        "memberships" => p.memberships.len(),
        "userDefined" => p.user_defined.len(),
        "photos" => p.photos.len(),
        other => match p.extra.get(other) {
            Some(Value::Array(a)) => a.len(),
            Some(Value::Null) | None => 0,
            Some(_) => 1,
        },
    }
}

/// 400 when a contact singleton field has more than one value.
pub fn check_singletons(p: &Person, path: &str) -> Result<(), ApiError> {
    for f in SINGLETON_PERSON_FIELDS {
        if field_len(p, f) > 1 {
            return Err(bad(format!(
                "Invalid {path}.{}: Only one value is allowed for the singleton field \"{f}\" on a contact.",
                camel_to_snake(f)
            )));
        }
    }
    Ok(())
}

/// Copy field `name` from `src` to `dst` (replacing; cleared when absent on `src`).
pub fn copy_field(dst: &mut Person, src: &Person, name: &str) {
    match name {
        "names" => dst.names = src.names.clone(),
        "biographies" => dst.biographies = src.biographies.clone(),
        "emailAddresses" => dst.email_addresses = src.email_addresses.clone(),
        "phoneNumbers" => dst.phone_numbers = src.phone_numbers.clone(),
        "organizations" => dst.organizations = src.organizations.clone(),
        "clientData" => dst.client_data = src.client_data.clone(),
        "externalIds" => dst.external_ids = src.external_ids.clone(),
        "memberships" => dst.memberships = src.memberships.clone(),
        "userDefined" => dst.user_defined = src.user_defined.clone(),
        "photos" => dst.photos = src.photos.clone(),
        other => match src.extra.get(other) {
            Some(v) if !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()) => {
                dst.extra.insert(other.to_string(), v.clone());
            }
            _ => {
                dst.extra.remove(other);
            }
        },
    }
}

/// Fields [`copy_field`] reads from `Person`'s own members rather than from `extra`, and
/// the ones [`project`] builds itself (`metadata`).
pub fn is_modelled(name: &str) -> bool {
    matches!(
        name,
        "names"
            | "biographies"
            | "emailAddresses"
            | "phoneNumbers"
            | "organizations"
            | "clientData"
            | "externalIds"
            | "memberships"
            | "userDefined"
            | "photos"
            | "metadata"
    )
}

/// [`writable_data`] of a Person the caller owns: the same result, moved instead of
/// cloned, with list capacities trimmed (they are stored for the contact's life).
pub fn writable_data_owned(mut p: Person) -> Person {
    let mut out = Person {
        names: std::mem::take(&mut p.names),
        biographies: std::mem::take(&mut p.biographies),
        email_addresses: std::mem::take(&mut p.email_addresses),
        phone_numbers: std::mem::take(&mut p.phone_numbers),
        organizations: std::mem::take(&mut p.organizations),
        client_data: std::mem::take(&mut p.client_data),
        external_ids: std::mem::take(&mut p.external_ids),
        user_defined: std::mem::take(&mut p.user_defined),
        ..Default::default()
    };
    for (k, v) in std::mem::take(&mut p.extra) {
        let keep = !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty());
        if keep && !is_modelled(&k) && UPDATABLE_PERSON_FIELDS.contains(&k.as_str()) {
            out.extra.insert(k, v);
        }
    }
    strip_field_metadata(&mut out);
    out.names.shrink_to_fit();
    out.biographies.shrink_to_fit();
    out.email_addresses.shrink_to_fit();
    out.phone_numbers.shrink_to_fit();
    out.organizations.shrink_to_fit();
    out.client_data.shrink_to_fit();
    out.external_ids.shrink_to_fit();
    out.user_defined.shrink_to_fit();
    out
}

/// The stored (writable) part of a Person a client sent on create: updatable fields
/// except memberships; output-only fields are ignored.
pub fn writable_data(p: &Person) -> Person {
    let mut out = Person::default();
    for f in UPDATABLE_PERSON_FIELDS {
        if f != "memberships" {
            copy_field(&mut out, p, f);
        }
    }
    strip_field_metadata(&mut out);
    out
}

/// Field-level `metadata` is output only (except `primary`, which we keep).
fn strip_field_metadata(p: &mut Person) {
    for e in &mut p.email_addresses {
        e.formatted_type = None;
    }
    for e in &mut p.phone_numbers {
        e.formatted_type = None;
        e.canonical_form = e.value.as_deref().and_then(canonical_form);
    }
}

/// `canonicalForm` (output only): the number in E.164. Google reads a national number in
/// the account's region; the emulator has no region, so only a number written with its
/// country code (`+44 20 7946 0018` → `+442079460018`) gets one, as "when known".
fn canonical_form(value: &str) -> Option<String> {
    let rest = value.trim().strip_prefix('+')?;
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || " -.()/".contains(c))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    (7..=15)
        .contains(&digits.len())
        .then(|| format!("+{digits}"))
}

/// The response form of a contact restricted to `fields` (+ resourceName, etag).
/// `base` is the emulator's URL, for `photos[].url`.
pub fn project(c: &Contact, fields: FieldSet, base: &str) -> Person {
    let mut p = Person {
        resource_name: Some(c.resource_name()),
        etag: Some(c.etag()),
        ..Default::default()
    };
    for f in READABLE_PERSON_FIELDS {
        if !fields.has(f) {
            continue;
        }
        match f {
            "metadata" => p.metadata = Some(c.metadata()),
            "memberships" => p.memberships = c.memberships(),
            "photos" => p.photos = super::photos::photos_of(c, base),
            other => copy_field(&mut p, &c.data, other),
        }
    }
    if fields.has("names") {
        for n in &mut p.names {
            fill_display_names(n);
        }
    }
    p
}

/// Google fills `displayName` and `displayNameLastFirst` from the structured parts.
fn fill_display_names(n: &mut orgsync_wire::people::Name) {
    let (display, last_first) = display_names(n);
    let display = display.map(Cow::into_owned);
    let last_first = last_first.map(Cow::into_owned);
    n.display_name = display;
    n.display_name_last_first = last_first;
}

/// `displayName` and `displayNameLastFirst` as Google shows them: the stored ones, else
/// built from the given, middle and family names (the unstructured name when there are
/// none).
pub fn display_names(n: &Name) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    let given = n.given_name.as_deref().unwrap_or_default();
    let family = n.family_name.as_deref().unwrap_or_default();
    let middle = n.middle_name.as_deref().unwrap_or_default();
    fn joined<'a>(parts: &[&'a str]) -> Option<Cow<'a, str>> {
        let mut it = parts.iter().filter(|s| !s.is_empty());
        let first = it.next()?;
        let mut out = Cow::Borrowed(*first);
        for p in it {
            let o = out.to_mut();
            o.push(' ');
            o.push_str(p);
        }
        Some(out)
    }
    let display: Option<Cow<'_, str>> = match &n.display_name {
        Some(d) => Some(Cow::Borrowed(d)),
        None => joined(&[given, middle, family])
            .or_else(|| n.unstructured_name.as_deref().map(Cow::Borrowed)),
    };
    let last_first = match &n.display_name_last_first {
        Some(v) => Some(Cow::Borrowed(v.as_str())),
        None => match (family.is_empty(), joined(&[given, middle])) {
            (false, Some(first)) => Some(Cow::Owned(format!("{family}, {first}"))),
            (false, None) => Some(Cow::Borrowed(family)),
            (true, Some(first)) => Some(first),
            (true, None) => display.clone(),
        },
    };
    (display, last_first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_names_are_rejected_with_googles_message() {
        let e = validate(&json!({"names": [], "x": 1}), "Person", "person").unwrap_err();
        assert_eq!(
            e.message,
            "Invalid JSON payload received. Unknown name \"x\" at 'person': Cannot find field."
        );
        let e = validate(
            &json!({"emailAddresses": [{"value": "a@b", "bogus": true}]}),
            "Person",
            "person",
        )
        .unwrap_err();
        assert!(
            e.message.contains("at 'person.email_addresses[0]'"),
            "{}",
            e.message
        );
        assert!(validate(&json!({"addresses": "nope"}), "Person", "person").is_err());
        assert!(
            validate(
                &json!({"addresses": [{"formattedValue": "1 Main"}], "birthdays": [{"date": {"year": 1990}}]}),
                "Person",
                "person"
            )
            .is_ok()
        );
    }

    #[test]
    fn masks_accept_snake_and_camel_and_reject_unknown() {
        let f = FieldSet::parse_read(
            "names,email_addresses,person.clientData",
            "personFields",
            "d",
        )
        .unwrap();
        assert!(f.has("names") && f.has("emailAddresses") && f.has("clientData"));
        assert!(!f.has("phoneNumbers"));
        assert!(FieldSet::parse_read("names,bogus", "personFields", "d").is_err());
        assert!(FieldSet::parse_read(" , ", "personFields", "d").is_err());
        assert!(FieldSet::parse_update("photos", "updatePersonFields").is_err());
        assert_eq!(
            FieldSet::parse_update("names,names,clientData", "updatePersonFields").unwrap(),
            ["names", "clientData"]
        );
    }

    #[test]
    fn singletons_are_enforced() {
        let p: Person =
            serde_json::from_value(json!({"names": [{"givenName": "a"}, {"givenName": "b"}]}))
                .unwrap();
        assert!(check_singletons(&p, "person").is_err());
        let p: Person =
            serde_json::from_value(json!({"birthdays": [{"text": "a"}, {"text": "b"}]})).unwrap();
        assert!(check_singletons(&p, "person").is_err());
    }
}
