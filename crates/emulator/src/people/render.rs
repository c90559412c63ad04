//! Serialising stored contacts straight from the book, without first cloning them into a
//! fresh [`Person`] (what [`fields::project`] builds). A [`ContactView`] writes exactly the
//! bytes `serde_json` writes for `project(c, fields, base)` — same fields, same order,
//! same display names, metadata and memberships — which the tests below check over
//! contacts with every modelled field and unmodelled (`extra`) ones.
//!
//! [`fields::project`]: super::fields::project

use std::borrow::Cow;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orgsync_wire::people::{Name, Person, Status};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use super::book::{Contact, rfc3339, source_etag_bytes};
use super::fields::{FieldSet, display_names, is_modelled};

/// A stored contact as the response form restricted to `fields` (+ resourceName, etag).
pub struct ContactView<'a> {
    pub c: &'a Contact,
    pub fields: FieldSet,
    /// The emulator's URL, for `photos[].url`.
    pub base: &'a str,
}

/// Lower-case hex of a contact id (its source id).
struct Hex(u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:x}", self.0))
    }
}

/// `person_etag(id, seq)` without the intermediate allocations.
struct PersonEtag(u64, u64);

impl Serialize for PersonEtag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = super::book::person_etag_bytes(self.0, self.1);
        let mut out = [0u8; 1 + 20];
        out[0] = b'%';
        let n = STANDARD
            .encode_slice(raw, &mut out[1..])
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&out[..1 + n]).map_err(serde::ser::Error::custom)?)
    }
}

/// `source_etag(id, seq)` without the intermediate allocations.
struct SourceEtag(u64, u64);

impl Serialize for SourceEtag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = source_etag_bytes(self.0, self.1);
        let mut out = [0u8; 1 + 8];
        out[0] = b'#';
        let n = STANDARD
            .encode_slice(raw, &mut out[1..])
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&out[..1 + n]).map_err(serde::ser::Error::custom)?)
    }
}

/// `Contact::metadata()`: one CONTACT source and `objectType`.
struct MetadataView<'a>(&'a Contact);

impl Serialize for MetadataView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Sources<'a>(&'a Contact);
        impl Serialize for Sources<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let c = self.0;
                let mut seq = s.serialize_seq(Some(1))?;
                seq.serialize_element(&SourceView {
                    id: c.id,
                    etag: Some((c.id, c.seq)),
                    update_ms: Some(c.updated_ms),
                })?;
                seq.end()
            }
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("sources", &Sources(self.0))?;
        m.serialize_entry("objectType", "PERSON")?;
        m.end()
    }
}

/// A `Source` of type CONTACT.
struct SourceView {
    id: u64,
    etag: Option<(u64, u64)>,
    update_ms: Option<i64>,
}

impl Serialize for SourceView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "CONTACT")?;
        m.serialize_entry("id", &Hex(self.id))?;
        if let Some((id, seq)) = self.etag {
            m.serialize_entry("etag", &SourceEtag(id, seq))?;
        }
        if let Some(ms) = self.update_ms {
            m.serialize_entry("updateTime", &rfc3339(ms))?;
        }
        m.end()
    }
}

/// `Contact::memberships()`: one membership per group, sourced from the contact.
struct MembershipsView<'a>(&'a Contact);

impl Serialize for MembershipsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Meta(u64);
        impl Serialize for Meta {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry(
                    "source",
                    &SourceView {
                        id: self.0,
                        etag: None,
                        update_ms: None,
                    },
                )?;
                m.end()
            }
        }
        struct Group<'a>(&'a str);
        impl Serialize for Group<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("contactGroupId", self.0)?;
                m.serialize_entry(
                    "contactGroupResourceName",
                    &Args(format_args!("contactGroups/{}", self.0)),
                )?;
                m.end()
            }
        }
        struct One<'a>(u64, &'a str);
        impl Serialize for One<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("metadata", &Meta(self.0))?;
                m.serialize_entry("contactGroupMembership", &Group(self.1))?;
                m.end()
            }
        }
        let c = self.0;
        let mut seq = s.serialize_seq(Some(c.groups.len()))?;
        for g in &c.groups {
            seq.serialize_element(&One(c.id, g))?;
        }
        seq.end()
    }
}

/// `format_args!` as a serialisable string, written without an allocation.
struct Args<'a>(std::fmt::Arguments<'a>);

impl Serialize for Args<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A stored name with `displayName` / `displayNameLastFirst` filled as Google does.
struct NameView<'a>(&'a Name);

impl Serialize for NameView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        let (display, last_first): (Option<Cow<'_, str>>, Option<Cow<'_, str>>) = display_names(n);
        let mut m = s.serialize_map(None)?;
        if let Some(v) = &n.metadata {
            m.serialize_entry("metadata", v)?;
        }
        if let Some(v) = &display {
            m.serialize_entry("displayName", v)?;
        }
        if let Some(v) = &last_first {
            m.serialize_entry("displayNameLastFirst", v)?;
        }
        if let Some(v) = &n.unstructured_name {
            m.serialize_entry("unstructuredName", v)?;
        }
        if let Some(v) = &n.given_name {
            m.serialize_entry("givenName", v)?;
        }
        if let Some(v) = &n.family_name {
            m.serialize_entry("familyName", v)?;
        }
        if let Some(v) = &n.middle_name {
            m.serialize_entry("middleName", v)?;
        }
        for (k, v) in &n.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct NamesView<'a>(&'a [Name]);

impl Serialize for NamesView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for n in self.0 {
            seq.serialize_element(&NameView(n))?;
        }
        seq.end()
    }
}

/// What `project` copies from an `extra` field: present, not null, not an empty list.
fn keep_extra(v: &Value) -> bool {
    !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty())
}

impl Serialize for ContactView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (c, f) = (self.c, self.fields);
        let d = &c.data;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("resourceName", &Args(format_args!("people/c{}", c.id)))?;
        m.serialize_entry("etag", &PersonEtag(c.id, c.seq))?;
        if f.has_bit(FieldSet::METADATA) {
            m.serialize_entry("metadata", &MetadataView(c))?;
        }
        if f.has_bit(FieldSet::NAMES) && !d.names.is_empty() {
            m.serialize_entry("names", &NamesView(&d.names))?;
        }
        if f.has_bit(FieldSet::EMAIL_ADDRESSES) && !d.email_addresses.is_empty() {
            m.serialize_entry("emailAddresses", &d.email_addresses)?;
        }
        if f.has_bit(FieldSet::PHONE_NUMBERS) && !d.phone_numbers.is_empty() {
            m.serialize_entry("phoneNumbers", &d.phone_numbers)?;
        }
        if f.has_bit(FieldSet::ORGANIZATIONS) && !d.organizations.is_empty() {
            m.serialize_entry("organizations", &d.organizations)?;
        }
        if f.has_bit(FieldSet::CLIENT_DATA) && !d.client_data.is_empty() {
            m.serialize_entry("clientData", &d.client_data)?;
        }
        if f.has_bit(FieldSet::EXTERNAL_IDS) && !d.external_ids.is_empty() {
            m.serialize_entry("externalIds", &d.external_ids)?;
        }
        if f.has_bit(FieldSet::MEMBERSHIPS) && !c.groups.is_empty() {
            m.serialize_entry("memberships", &MembershipsView(c))?;
        }
        if f.has_bit(FieldSet::BIOGRAPHIES) && !d.biographies.is_empty() {
            m.serialize_entry("biographies", &d.biographies)?;
        }
        if f.has_bit(FieldSet::USER_DEFINED) && !d.user_defined.is_empty() {
            m.serialize_entry("userDefined", &d.user_defined)?;
        }
        if f.has_bit(FieldSet::PHOTOS) {
            m.serialize_entry("photos", &super::photos::photos_of(c, self.base))?;
        }
        // `project` copies the requested unmodelled fields into a sorted map.
        for (k, v) in &d.extra {
            if !is_modelled(k) && f.has(k) && keep_extra(v) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// One entry of a `connections.list` page: a live contact, or a deletion (incremental).
#[derive(Serialize)]
#[serde(untagged)]
pub enum Listed<'a> {
    Live(ContactView<'a>),
    Deleted(Box<Person>),
}

/// `ListConnectionsResponse` with borrowed connections.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOut<'a> {
    pub connections: Vec<Listed<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_sync_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_items: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_people: Option<i64>,
}

/// `PersonResponse` of a successful write, with a borrowed person.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written<'a> {
    pub person: ContactView<'a>,
    pub status: Status,
    pub http_status_code: i32,
}

/// `BatchCreateContactsResponse` with borrowed people.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedOut<'a> {
    pub created_people: Vec<Written<'a>>,
}

/// Serialise `value` into a buffer of `capacity` bytes (grown if needed).
pub fn to_json(value: &impl Serialize, capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(capacity);
    // Serialising these types cannot fail (string keys, no non-finite floats).
    let _ = serde_json::to_writer(&mut buf, value);
    buf
}

/// A JSON body as `axum::Json` answers it.
pub struct JsonBytes(pub Vec<u8>);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use orgsync_wire::people::{READABLE_PERSON_FIELDS, UPDATABLE_PERSON_FIELDS};
    use serde_json::json;

    use super::super::book::UserBook;
    use super::super::fields::{self, project, writable_data, writable_data_owned};
    use super::*;

    /// Every modelled field, unmodelled (`extra`) ones of each kind `project` treats
    /// differently, field metadata, escapes and non-ASCII text.
    fn rich_person(names: Value) -> Person {
        serde_json::from_value(json!({
            "resourceName": "people/c1",
            "etag": "%old",
            "metadata": {"sources": [{"type": "CONTACT", "id": "1"}]},
            "names": names,
            "emailAddresses": [
                {"value": "a@example.com", "type": "work", "formattedType": "Work",
                 "metadata": {"primary": true}},
                {"value": "b\"q\\u{7}@example.com", "displayName": "B \u{e9}", "type": "home"}
            ],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile", "canonicalForm": "+15550100",
                              "formattedType": "Mobile"}],
            "organizations": [{"type": "work", "name": "Ex\u{e4}mple", "title": "T", "department": "D",
                               "current": true, "costCenter": "42", "startDate": {"year": 2020},
                               "metadata": {"primary": true, "source": {"type": "CONTACT", "id": "x"}}}],
            "clientData": [{"key": "orgsync.id", "value": "1"}, {"key": "k", "value": "\n\t</script>"}],
            "externalIds": [{"value": "E1", "type": "organization"}],
            "memberships": [{"contactGroupMembership": {"contactGroupResourceName": "contactGroups/starred"}}],
            "biographies": [{"value": "bio", "contentType": "TEXT_PLAIN"}],
            "userDefined": [{"key": "uk", "value": "uv"}],
            "photos": [{"url": "https://example.com/p.jpg"}],
            "addresses": [{"formattedValue": "1 Main St", "type": "home"}],
            "birthdays": [{"date": {"year": 1990, "month": 1, "day": 2}}],
            "urls": [],
            "nicknames": null,
            "events": [{"date": {"month": 3, "day": 4}, "type": "anniversary"}],
            "genders": [{"value": "unspecified"}],
            "imClients": [{"username": "u", "protocol": "xmpp"}],
            "relations": [{"person": "P", "type": "spouse"}],
            "sipAddresses": [{"value": "sip:a@b"}],
            "locations": [{"value": "HQ", "current": true}],
            "miscKeywords": [{"value": "m", "type": "OUTLOOK_BILLING_INFORMATION"}],
            "interests": [{"value": "i"}],
            "locales": [{"value": "fr"}],
            "occupations": [{"value": "o"}],
            "calendarUrls": [{"url": "https://cal"}],
            "skills": [{"value": "not updatable"}],
            "coverPhotos": [{"url": "https://cover"}],
            "ageRanges": [{"ageRange": "TWENTY_ONE_OR_OLDER"}],
            "zzUnknown": 1
        }))
        .unwrap()
    }

    fn name_variants() -> Vec<Value> {
        vec![
            json!([{"givenName": "Ada", "familyName": "Lovelace", "unstructuredName": "Ada Lovelace",
                    "phoneticGivenName": "A", "honorificPrefix": "Dr."}]),
            json!([{"givenName": "Ada", "middleName": "K", "familyName": "Lovelace"}]),
            json!([{"familyName": "Lovelace"}]),
            json!([{"givenName": "Ada", "middleName": "K"}]),
            json!([{"unstructuredName": "Just Text"}]),
            json!([{"displayName": "Shown", "givenName": "Ada", "familyName": "L"}]),
            json!([{"displayNameLastFirst": "L, A", "givenName": "Ada"}]),
            json!([{"givenName": "", "familyName": "", "middleName": ""}]),
            json!([{"metadata": {"primary": true}}]),
            json!([]),
        ]
    }

    fn masks() -> Vec<FieldSet> {
        let mut out = vec![
            FieldSet::all_readable(),
            FieldSet::parse_read(
                "names,emailAddresses,phoneNumbers,organizations,externalIds,clientData,memberships,metadata",
                "personFields",
                "d",
            )
            .unwrap(),
        ];
        for f in READABLE_PERSON_FIELDS {
            out.push(FieldSet::parse_read(f, "personFields", "d").unwrap());
        }
        // Deterministic pseudo-random subsets.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let picked: Vec<&str> = READABLE_PERSON_FIELDS
                .iter()
                .enumerate()
                .filter(|(i, _)| x >> i & 1 == 1)
                .map(|(_, f)| *f)
                .collect();
            if !picked.is_empty() {
                out.push(FieldSet::parse_read(&picked.join(","), "personFields", "d").unwrap());
            }
        }
        out
    }

    /// The view writes the very bytes of the typed projection, for every mask.
    #[test]
    fn contact_view_equals_the_typed_projection_byte_for_byte() {
        let mut b = UserBook::new("a@example.com");
        let mut ids = Vec::new();
        for (i, names) in name_variants().into_iter().enumerate() {
            let p = rich_person(names);
            let groups: BTreeSet<String> = match i % 3 {
                0 => BTreeSet::from(["myContacts".into()]),
                1 => BTreeSet::from(["myContacts".into(), "starred".into(), "0123abcd".into()]),
                _ => BTreeSet::new(),
            };
            ids.push(b.insert(writable_data_owned(p.clone()), groups, 1_700_000_000_123));
            // The stored data as a restored snapshot or a raw insert may hold it too:
            // everything the client sent, unfiltered.
            ids.push(b.insert(p, BTreeSet::new(), -5));
        }
        b.insert(Person::default(), BTreeSet::new(), 0);
        let id = ids[0];
        b.contacts.get_mut(&id).unwrap().photo = Some(super::super::photos::ContactPhoto {
            data_b64: String::new(),
            mime_type: "image/png".into(),
            book: 7,
            version: 3,
        });
        let base = "http://127.0.0.1:1";
        let mut compared = 0;
        for c in b.contacts.values() {
            for fields in masks() {
                let typed = serde_json::to_string(&project(c, fields, base)).unwrap();
                let view = serde_json::to_string(&ContactView { c, fields, base }).unwrap();
                assert_eq!(view, typed, "contact {} mask {:b}", c.id, fields.bits());
                compared += 1;
            }
        }
        assert!(compared > 500);
    }

    #[test]
    fn list_and_create_envelopes_match_the_wire_types() {
        let mut b = UserBook::new("a@example.com");
        let id = b.insert(
            writable_data_owned(rich_person(name_variants().remove(0))),
            BTreeSet::from(["myContacts".into()]),
            5,
        );
        let gone_id = b.insert(Person::default(), BTreeSet::new(), 6);
        b.remove(gone_id, 7);
        let c = &b.contacts[&id];
        let fields = FieldSet::all_readable();
        let base = "http://h";
        let gone = Person {
            resource_name: Some("people/c9".into()),
            ..Default::default()
        };
        let typed = orgsync_wire::people::ListConnectionsResponse {
            connections: vec![project(c, fields, base), gone.clone()],
            next_page_token: Some("p".into()),
            next_sync_token: None,
            total_items: Some(2),
            total_people: Some(2),
        };
        let view = ListOut {
            connections: vec![
                Listed::Live(ContactView { c, fields, base }),
                Listed::Deleted(Box::new(gone)),
            ],
            next_page_token: Some("p".into()),
            next_sync_token: None,
            total_items: Some(2),
            total_people: Some(2),
        };
        assert_eq!(
            to_json(&view, 0),
            serde_json::to_vec(&typed).unwrap(),
            "list page"
        );
        let empty = ListOut {
            connections: vec![],
            next_page_token: None,
            next_sync_token: Some("s".into()),
            total_items: Some(0),
            total_people: Some(0),
        };
        let typed_empty = orgsync_wire::people::ListConnectionsResponse {
            next_sync_token: Some("s".into()),
            total_items: Some(0),
            total_people: Some(0),
            ..Default::default()
        };
        assert_eq!(
            to_json(&empty, 0),
            serde_json::to_vec(&typed_empty).unwrap()
        );

        let meta = FieldSet::parse_read("metadata", "readMask", "d").unwrap();
        let typed = orgsync_wire::people::BatchCreateContactsResponse {
            created_people: vec![orgsync_wire::people::PersonResponse {
                person: Some(project(c, meta, base)),
                requested_resource_name: None,
                status: Some(Status::default()),
                http_status_code: Some(200),
            }],
        };
        let view = CreatedOut {
            created_people: vec![Written {
                person: ContactView {
                    c,
                    fields: meta,
                    base,
                },
                status: Status::default(),
                http_status_code: 200,
            }],
        };
        assert_eq!(to_json(&view, 0), serde_json::to_vec(&typed).unwrap());
    }

    #[test]
    fn writable_data_owned_equals_the_cloning_form() {
        for names in name_variants() {
            let p = rich_person(names);
            let owned = writable_data_owned(p.clone());
            assert_eq!(owned, writable_data(&p));
            assert_eq!(
                owned.email_addresses.capacity(),
                owned.email_addresses.len()
            );
            // Nothing that is not updatable (or that is output only) is kept.
            assert!(owned.resource_name.is_none() && owned.metadata.is_none());
            assert!(owned.memberships.is_empty() && owned.photos.is_empty());
            for k in owned.extra.keys() {
                assert!(UPDATABLE_PERSON_FIELDS.contains(&k.as_str()), "{k}");
            }
        }
        assert_eq!(
            writable_data_owned(Person::default()),
            fields::writable_data(&Person::default())
        );
    }
}
