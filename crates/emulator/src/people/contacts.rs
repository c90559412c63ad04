//! `people.*` and `people.connections.list`: contacts of the impersonated user.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orgsync_wire::people::{
    BATCH_CREATE_MAX, BATCH_DELETE_MAX, BATCH_GET_MAX, BATCH_UPDATE_MAX,
    BatchCreateContactsRequest, BatchDeleteContactsRequest, BatchUpdateContactsRequest,
    BatchUpdateContactsResponse, EmailAddress, FieldMetadata, GetPeopleResponse, Person,
    PersonMetadata, PersonResponse, Source, Status,
};
use orgsync_wire::scopes::{CONTACTS, CONTACTS_READONLY};
use serde_json::{Map, Value};

use super::body::{Parsed, RawBody};
use super::book::{UserBook, contact_name, parse_contact_name, person_etag};
use super::fields::{
    self, CONNECTIONS_DOC, FieldSet, PEOPLE_GET_DOC, check_singletons, copy_field, parse_person,
    project,
};
use super::render::{ContactView, CreatedOut, JsonBytes, ListOut, Listed, Written, to_json};
use super::sync::{self, Cursor, PageToken, SyncToken};
use super::{Ctx, bad, caller_user, failed_precondition, mutate, not_found};
use crate::auth::Caller;
use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::query::Params;
use crate::state::Emulator;

pub(crate) const STALE_ETAG: &str = "Request person.etag is different than the current person.etag. Clear local cache and get the latest person.";
pub(crate) const EXPIRED_SYNC_TOKEN: &str =
    "Sync token is expired. Clear local cache and retry call without the sync token.";
const MISSING_ETAG: &str = "Request must set person.etag or person.metadata.sources.etag for the source that is being updated.";
const SORT_ORDERS: [&str; 4] = [
    "LAST_MODIFIED_ASCENDING",
    "LAST_MODIFIED_DESCENDING",
    "FIRST_NAME_ASCENDING",
    "LAST_NAME_ASCENDING",
];
pub(super) const READ_SOURCES: [&str; 4] = [
    "READ_SOURCE_TYPE_PROFILE",
    "READ_SOURCE_TYPE_CONTACT",
    "READ_SOURCE_TYPE_DOMAIN_CONTACT",
    "READ_SOURCE_TYPE_OTHER_CONTACT",
];

fn read_scope(caller: &Caller) -> Result<(), ApiError> {
    caller.require_any_scope(&[CONTACTS, CONTACTS_READONLY])
}

pub(super) fn write_scope(caller: &Caller) -> Result<(), ApiError> {
    caller.require_any_scope(&[CONTACTS])
}

/// `personFields`, or the deprecated `requestMask.includeField`.
fn person_fields(params: &Params, doc: &str) -> Result<FieldSet, ApiError> {
    let mask = params
        .get_nonempty("personFields")
        .or_else(|| params.get_nonempty("requestMask.includeField"))
        .unwrap_or("");
    FieldSet::parse_read(mask, "personFields", doc)
}

/// Optional `personFields` on mutations: all fields when absent.
fn optional_person_fields(params: &Params) -> Result<FieldSet, ApiError> {
    match params.get_nonempty("personFields") {
        Some(m) => FieldSet::parse_read(m, "personFields", PEOPLE_GET_DOC),
        None => Ok(FieldSet::all_readable()),
    }
}

pub(super) fn check_sources(params: &Params) -> Result<String, ApiError> {
    let mut v = params.all("sources");
    for s in &v {
        if !READ_SOURCES.contains(&s.as_str()) {
            return Err(bad(format!(
                "Invalid value at 'sources' (type.googleapis.com/google.people.v1.ReadSourceType), \"{s}\""
            )));
        }
    }
    v.sort();
    Ok(v.join(","))
}

fn ok_status() -> Option<Status> {
    Some(Status::default())
}

fn parse_body<T: serde::de::DeserializeOwned>(v: Value, schema: &str) -> Result<T, ApiError> {
    fields::validate(&v, schema, "")?;
    serde_json::from_value(v).map_err(|e| bad(format!("Invalid JSON payload received. {e}")))
}

// ---------------------------------------------------------------- connections.list

pub async fn list_connections(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
    params: Params,
) -> Result<JsonBytes, ApiError> {
    read_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    if id != "me" {
        return Err(bad(format!(
            "Invalid resource name: people/{id}. Only 'people/me' is valid for connections.list."
        )));
    }
    let fields = person_fields(&params, CONNECTIONS_DOC)?;
    let mut page_size = params.int_in("pageSize", 100, 0, 1000)? as usize;
    if page_size == 0 {
        page_size = 100;
    }
    let sort = params
        .one_of("sortOrder", &SORT_ORDERS)?
        .unwrap_or("LAST_MODIFIED_ASCENDING");
    let request_sync = params.bool("requestSyncToken")?.unwrap_or(false);
    let sync_token = params.get_nonempty("syncToken");
    let sources = check_sources(&params)?;
    if sort == "LAST_MODIFIED_DESCENDING" && (request_sync || sync_token.is_some()) {
        return Err(bad(
            "Sync tokens are not supported with sortOrder LAST_MODIFIED_DESCENDING.",
        ));
    }
    let bits = fields.bits().to_string();
    let size_s = page_size.to_string();
    let page_binding = sync::binding(&[
        &user.to_ascii_lowercase(),
        &bits,
        &size_s,
        sort,
        if request_sync { "1" } else { "0" },
        sync_token.unwrap_or(""),
        &sources,
    ]);
    let now = emu.clock.now_ms();
    let base = emu.base_url();

    let book = emu.people.book(&user);
    let b = book.lock();
    // Bound to the address book, not the address: a token survives a rename.
    let sync_binding = sync::binding(&[&b.identity().to_string(), &bits, &sources]);

    let since = match sync_token {
        None => None,
        Some(t) => {
            let tok = sync::decode_sync(t)?;
            if tok.b != sync_binding {
                return Err(bad(
                    "Parameters in the request do not match those of the request that returned the sync token.",
                ));
            }
            if tok.e != b.sync_epoch || now - tok.t > super::SYNC_TOKEN_TTL_MS || tok.s > b.seq {
                return Err(ApiError::new(
                    Api::People,
                    StatusCode::BAD_REQUEST,
                    "EXPIRED_SYNC_TOKEN",
                    EXPIRED_SYNC_TOKEN,
                ));
            }
            Some(tok)
        }
    };
    let page = match params.get_nonempty("pageToken") {
        Some(t) => Some(sync::decode_page(t, page_binding)?),
        None => None,
    };
    let start_seq = page.as_ref().map(|p| p.s).unwrap_or(b.seq);
    let chain_at = match (&since, &page) {
        (Some(tok), _) => tok.t,
        (None, Some(p)) => p.t,
        (None, None) => now,
    };

    let (connections, next_cursor, total) = match &since {
        Some(tok) => incremental_page(
            &b,
            tok.s,
            page.as_ref().map(|p| &p.c),
            fields,
            page_size,
            &base,
        ),
        None => full_page(
            &b,
            sort,
            page.as_ref().map(|p| &p.c),
            fields,
            page_size,
            &base,
        ),
    };

    let mut resp = ListOut {
        total_items: Some(total as i64),
        total_people: Some(total as i64),
        next_page_token: None,
        next_sync_token: None,
        connections,
    };
    match next_cursor {
        Some(c) => {
            resp.next_page_token = Some(sync::encode(
                "P",
                &PageToken {
                    b: page_binding,
                    s: start_seq,
                    t: chain_at,
                    c,
                },
            ))
        }
        None if request_sync => {
            resp.next_sync_token = Some(sync::encode(
                "S",
                &SyncToken {
                    b: sync_binding,
                    e: b.sync_epoch,
                    s: start_seq,
                    t: chain_at,
                },
            ));
        }
        None => {}
    }
    // Serialised from the book itself, under its lock: nothing is cloned.
    let estimate = 256 + resp.connections.len() * bytes_per_contact(fields);
    let out = to_json(&resp, estimate);
    drop(resp);
    drop(b);
    Ok(JsonBytes(out))
}

/// A generous guess of one listed contact's JSON size, to size the response buffer once.
fn bytes_per_contact(fields: FieldSet) -> usize {
    128 + 192 * fields.bits().count_ones() as usize
}

type Page<'a> = (Vec<Listed<'a>>, Option<Cursor>, usize);

fn full_page<'a>(
    b: &'a UserBook,
    sort: &str,
    cursor: Option<&Cursor>,
    fields: FieldSet,
    size: usize,
    base: &'a str,
) -> Page<'a> {
    let total = b.contacts.len();
    let mut out = Vec::with_capacity(size.min(total));
    match sort {
        "LAST_MODIFIED_ASCENDING" | "LAST_MODIFIED_DESCENDING" => {
            let desc = sort == "LAST_MODIFIED_DESCENDING";
            let after = match cursor {
                Some(Cursor::Seq(s)) => Some(*s),
                _ => None,
            };
            let iter: Box<dyn Iterator<Item = (&u64, &u64)>> = match (desc, after) {
                (false, None) => Box::new(b.by_seq.iter()),
                (false, Some(s)) => Box::new(b.by_seq.range(s.saturating_add(1)..)),
                (true, None) => Box::new(b.by_seq.iter().rev()),
                (true, Some(s)) => Box::new(b.by_seq.range(..s).rev()),
            };
            let mut last = None;
            let mut more = false;
            for (seq, id) in iter {
                let Some(c) = b.contacts.get(id) else {
                    continue;
                };
                if out.len() == size {
                    more = true;
                    break;
                }
                out.push(Listed::Live(ContactView { c, fields, base }));
                last = Some(*seq);
            }
            (out, more.then(|| Cursor::Seq(last.unwrap_or(0))), total)
        }
        _ => {
            let by_first = sort == "FIRST_NAME_ASCENDING";
            let key_of = |c: &super::book::Contact| -> (String, u64) {
                // Contacts without names sort last, like Google's.
                let (first, last) = c.sort_keys();
                let k = if by_first { first } else { last };
                let k = if k.is_empty() {
                    "\u{10FFFF}".to_string()
                } else {
                    k
                };
                (k, c.id)
            };
            let after = match cursor {
                Some(Cursor::Key(k, id)) => Some((k.clone(), *id)),
                _ => None,
            };
            let mut keyed: Vec<((String, u64), &super::book::Contact)> = b
                .contacts
                .values()
                .map(|c| (key_of(c), &**c))
                .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
                .collect();
            let more = keyed.len() > size;
            if more {
                keyed.select_nth_unstable_by(size, |a, b| a.0.cmp(&b.0));
                keyed.truncate(size);
            }
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            let last = keyed.last().map(|(k, _)| k.clone());
            for (_, c) in &keyed {
                out.push(Listed::Live(ContactView { c, fields, base }));
            }
            let next = if more {
                last.map(|(k, id)| Cursor::Key(k, id))
            } else {
                None
            };
            (out, next, total)
        }
    }
}

fn incremental_page<'a>(
    b: &'a UserBook,
    since: u64,
    cursor: Option<&Cursor>,
    fields: FieldSet,
    size: usize,
    base: &'a str,
) -> Page<'a> {
    let after = match cursor {
        Some(Cursor::Seq(s)) => (*s).max(since),
        _ => since,
    };
    let total = b.by_seq.range(since.saturating_add(1)..).count();
    let mut out = Vec::new();
    let mut last = after;
    let mut more = false;
    for (seq, id) in b.by_seq.range(after.saturating_add(1)..) {
        if out.len() == size {
            more = true;
            break;
        }
        if let Some(c) = b.contacts.get(id) {
            out.push(Listed::Live(ContactView { c, fields, base }));
        } else if let Some(t) = b.tombstones.get(id) {
            out.push(Listed::Deleted(Box::new(Person {
                resource_name: Some(contact_name(*id)),
                etag: Some(person_etag(*id, t.seq)),
                metadata: Some(PersonMetadata {
                    deleted: Some(true),
                    sources: vec![Source {
                        source_type: Some("CONTACT".into()),
                        id: Some(format!("{id:x}")),
                        ..Default::default()
                    }],
                    object_type: Some("PERSON".into()),
                    ..Default::default()
                }),
                ..Default::default()
            })));
        } else {
            continue;
        }
        last = *seq;
    }
    (out, more.then_some(Cursor::Seq(last)), total)
}

// ---------------------------------------------------------------- mutations

/// The group ids a Person's `memberships` name; 400 for unknown or non-addable groups.
fn resolve_memberships(b: &UserBook, p: &Person, path: &str) -> Result<BTreeSet<String>, ApiError> {
    let mut out = BTreeSet::new();
    for (i, m) in p.memberships.iter().enumerate() {
        let Some(cg) = &m.contact_group_membership else {
            continue;
        };
        let name = cg
            .contact_group_resource_name
            .clone()
            .or_else(|| {
                cg.contact_group_id
                    .as_ref()
                    .map(|id| format!("contactGroups/{id}"))
            })
            .unwrap_or_default();
        let id = b.group_id_of(&name).ok_or_else(|| {
            bad(format!(
                "Invalid {path}.memberships[{i}]: contact group \"{name}\" does not exist."
            ))
        })?;
        let g = &b.groups[&id];
        if g.system && !super::book::ADDABLE_SYSTEM_GROUPS.contains(&id.as_str()) {
            return Err(bad(format!(
                "Invalid {path}.memberships[{i}]: cannot add contacts to system contact group \"{name}\"."
            )));
        }
        out.insert(id);
    }
    Ok(out)
}

fn check_cap(b: &UserBook, ctx: &Ctx, adding: usize) -> Result<(), ApiError> {
    if b.live_count() + adding > ctx.settings.contact_cap {
        return Err(failed_precondition("Contact limit exceeded."));
    }
    Ok(())
}

/// [`prepare_new`] of a Person the request owns: its fields are moved into the stored
/// data, not cloned. `path` names the person in errors (built only for one).
fn prepare_new_owned(
    b: &UserBook,
    p: Person,
    path: impl Fn() -> String,
) -> Result<(Person, BTreeSet<String>), ApiError> {
    if check_singletons(&p, "").is_err() {
        check_singletons(&p, &path())?;
    }
    let mut groups = match resolve_memberships(b, &p, "") {
        Ok(g) => g,
        Err(_) => resolve_memberships(b, &p, &path())?,
    };
    if groups.is_empty() {
        groups.insert("myContacts".into());
    }
    Ok((fields::writable_data_owned(p), groups))
}

/// Validate a new contact and return its data and groups.
fn prepare_new(
    b: &UserBook,
    p: &Person,
    path: &str,
) -> Result<(Person, BTreeSet<String>), ApiError> {
    check_singletons(p, path)?;
    let mut groups = resolve_memberships(b, p, path)?;
    if groups.is_empty() {
        groups.insert("myContacts".into());
    }
    Ok((fields::writable_data(p), groups))
}

pub async fn create_contact(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    params: Params,
    GJson(body): GJson<Value>,
) -> Result<Json<Person>, ApiError> {
    write_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    let fields = optional_person_fields(&params)?;
    check_sources(&params)?;
    let person = parse_person(body, "person")?;
    let base = emu.base_url();
    let out = mutate(&emu, &user, |b, ctx| {
        check_cap(b, ctx, 1)?;
        let (data, groups) = prepare_new(b, &person, "person")?;
        let id = b.insert(data, groups, ctx.now_ms);
        Ok(project(&b.contacts[&id], fields, &base))
    })
    .await?;
    Ok(Json(out))
}

pub async fn batch_create(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    body: RawBody,
) -> Result<JsonBytes, ApiError> {
    let body = body.parse::<BatchCreateContactsRequest>("BatchCreateContactsRequest")?;
    write_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    let req: BatchCreateContactsRequest = match body {
        Parsed::Typed(req) => req,
        Parsed::Value(v) => parse_body(v, "BatchCreateContactsRequest")?,
    };
    if req.contacts.is_empty() {
        return Err(bad("Request must contain at least one contact to create."));
    }
    if req.contacts.len() > BATCH_CREATE_MAX {
        return Err(bad(format!(
            "Too many contacts in the request. A maximum of {BATCH_CREATE_MAX} contacts can be created per request."
        )));
    }
    let fields = FieldSet::parse_read(&req.read_mask, "readMask", PEOPLE_GET_DOC)?;
    let base = emu.base_url();
    let contacts = req.contacts;
    mutate(&emu, &user, move |b, ctx| {
        check_cap(b, ctx, contacts.len())?;
        let mut prepared = Vec::with_capacity(contacts.len());
        for (i, c) in contacts.into_iter().enumerate() {
            prepared.push(prepare_new_owned(b, c.contact_person, || {
                format!("contacts[{i}].contact_person")
            })?);
        }
        let mut ids = Vec::with_capacity(prepared.len());
        for (data, groups) in prepared {
            ids.push(b.insert(data, groups, ctx.now_ms));
        }
        let created = CreatedOut {
            created_people: ids
                .iter()
                .map(|id| Written {
                    person: ContactView {
                        c: &b.contacts[id],
                        fields,
                        base: &base,
                    },
                    status: Status::default(),
                    http_status_code: 200,
                })
                .collect(),
        };
        Ok(to_json(
            &created,
            64 + ids.len() * bytes_per_contact(fields),
        ))
    })
    .await
    .map(JsonBytes)
}

fn etag_of(p: &Person) -> Option<&str> {
    p.etag.as_deref().filter(|e| !e.is_empty()).or_else(|| {
        p.metadata
            .as_ref()?
            .sources
            .iter()
            .find_map(|s| s.etag.as_deref().filter(|e| !e.is_empty()))
    })
}

/// Check one update against the book; returns the contact id and new group set.
fn check_update(
    b: &UserBook,
    name: &str,
    p: &Person,
    mask: &[&'static str],
    path: &str,
) -> Result<(u64, Option<BTreeSet<String>>), ApiError> {
    let id = parse_contact_name(name).ok_or_else(|| {
        bad(format!(
            "Resource name \"{name}\" is not a valid contact resource name."
        ))
    })?;
    let c = b.contacts.get(&id).ok_or_else(not_found)?;
    let etag = etag_of(p).ok_or_else(|| bad(MISSING_ETAG))?;
    if !c.etag_matches(etag) {
        return Err(failed_precondition(STALE_ETAG));
    }
    check_singletons(p, path)?;
    let groups = if mask.contains(&"memberships") {
        let g = resolve_memberships(b, p, path)?;
        if g.is_empty() {
            return Err(bad(
                "Contact must have at least one contact group membership when memberships are updated.",
            ));
        }
        Some(g)
    } else {
        None
    };
    Ok((id, groups))
}

fn apply_update(
    b: &mut UserBook,
    id: u64,
    p: &Person,
    mask: &[&'static str],
    groups: Option<BTreeSet<String>>,
    now_ms: i64,
) {
    let src = fields::writable_data(p);
    if let Some(c) = b.contacts.get_mut(&id) {
        for f in mask {
            if *f != "memberships" {
                copy_field(&mut c.data, &src, f);
            }
        }
    }
    if let Some(g) = groups {
        b.set_groups(id, g);
    }
    b.touch(id, now_ms);
}

pub async fn batch_update(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    GJson(body): GJson<Value>,
) -> Result<Json<Value>, ApiError> {
    write_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    let req: BatchUpdateContactsRequest = parse_body(body, "BatchUpdateContactsRequest")?;
    if req.contacts.is_empty() {
        return Err(bad("Request must contain at least one contact to update."));
    }
    if req.contacts.len() > BATCH_UPDATE_MAX {
        return Err(bad(format!(
            "Too many contacts in the request. A maximum of {BATCH_UPDATE_MAX} contacts can be updated per request."
        )));
    }
    let mask = FieldSet::parse_update(&req.update_mask, "updateMask")?;
    let read = if req.read_mask.trim().is_empty() {
        None
    } else {
        Some(FieldSet::parse_read(
            &req.read_mask,
            "readMask",
            PEOPLE_GET_DOC,
        )?)
    };
    let base = emu.base_url();
    let out = mutate(&emu, &user, |b, ctx| {
        let mut checked = Vec::with_capacity(req.contacts.len());
        for (name, p) in &req.contacts {
            let (id, groups) = check_update(b, name, p, &mask, &format!("contacts[{name}]"))?;
            checked.push((name, id, p, groups));
        }
        let mut result = BatchUpdateContactsResponse::default();
        for (name, id, p, groups) in checked {
            apply_update(b, id, p, &mask, groups, ctx.now_ms);
            if let Some(read) = read {
                result.update_result.insert(
                    name.clone(),
                    PersonResponse {
                        person: Some(project(&b.contacts[&id], read, &base)),
                        http_status_code: Some(200),
                        status: ok_status(),
                        requested_resource_name: Some(name.clone()),
                    },
                );
            }
        }
        Ok(result)
    })
    .await?;
    if read.is_none() {
        return Ok(Json(Value::Object(Map::new())));
    }
    Ok(Json(serde_json::to_value(out).unwrap_or_default()))
}

pub async fn batch_delete(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    GJson(body): GJson<Value>,
) -> Result<Json<Value>, ApiError> {
    write_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    let req: BatchDeleteContactsRequest = parse_body(body, "BatchDeleteContactsRequest")?;
    if req.resource_names.is_empty() {
        return Err(bad("Request must contain at least one resource name."));
    }
    if req.resource_names.len() > BATCH_DELETE_MAX {
        return Err(bad(format!(
            "Too many resource names in the request. A maximum of {BATCH_DELETE_MAX} contacts can be deleted per request."
        )));
    }
    mutate(&emu, &user, |b, ctx| {
        let mut ids = BTreeSet::new();
        for name in &req.resource_names {
            let id = parse_contact_name(name)
                .filter(|id| b.contacts.contains_key(id))
                .ok_or_else(|| {
                    bad(format!(
                        "Resource name \"{name}\" is not a valid contact or has been deleted."
                    ))
                })?;
            ids.insert(id);
        }
        for id in ids {
            b.remove(id, ctx.now_ms);
        }
        Ok(())
    })
    .await?;
    Ok(Json(Value::Object(Map::new())))
}

/// `{id}` of `/v1/people/{id}` split into the contact id part and the `:verb`.
fn split_verb(id: &str) -> (&str, Option<&str>) {
    match id.split_once(':') {
        Some((a, v)) => (a, Some(v)),
        None => (id, None),
    }
}

pub async fn patch_person(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
    params: Params,
    GJson(body): GJson<Value>,
) -> Result<Response, ApiError> {
    let (rid, verb) = split_verb(&id);
    if verb == Some("updateContactPhoto") {
        let out = super::photos::update_contact_photo(&emu, rid, &caller, body).await?;
        return Ok(Json(out).into_response());
    }
    if verb != Some("updateContact") {
        return Err(ApiError::not_found(
            Api::People,
            format!("The requested URL /v1/people/{id} was not found on this server."),
        ));
    }
    write_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    let name = format!("people/{rid}");
    let mask = FieldSet::parse_update(
        params.get("updatePersonFields").unwrap_or(""),
        "updatePersonFields",
    )?;
    let fields = optional_person_fields(&params)?;
    check_sources(&params)?;
    let person = parse_person(body, "person")?;
    if let Some(rn) = person.resource_name.as_deref()
        && !rn.is_empty()
        && rn != name
    {
        return Err(bad(format!(
            "Resource name \"{rn}\" in the person does not match \"{name}\" in the URL."
        )));
    }
    let base = emu.base_url();
    let out = mutate(&emu, &user, |b, ctx| {
        let (cid, groups) = check_update(b, &name, &person, &mask, "person")?;
        apply_update(b, cid, &person, &mask, groups, ctx.now_ms);
        Ok(project(&b.contacts[&cid], fields, &base))
    })
    .await?;
    Ok(Json(out).into_response())
}

pub async fn delete_person(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let (rid, verb) = split_verb(&id);
    if verb == Some("deleteContactPhoto") {
        let out = super::photos::delete_contact_photo(&emu, rid, &caller, &params).await?;
        return Ok(Json(serde_json::to_value(out).unwrap_or_default()));
    }
    if verb != Some("deleteContact") {
        return Err(ApiError::not_found(
            Api::People,
            format!("The requested URL /v1/people/{id} was not found on this server."),
        ));
    }
    write_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    let name = format!("people/{rid}");
    let cid = parse_contact_name(&name).ok_or_else(|| {
        bad(format!(
            "Resource name \"{name}\" is not a valid contact resource name."
        ))
    })?;
    mutate(&emu, &user, |b, ctx| {
        if b.remove(cid, ctx.now_ms) {
            Ok(())
        } else {
            Err(not_found())
        }
    })
    .await?;
    Ok(Json(Value::Object(Map::new())))
}

// ---------------------------------------------------------------- reads

/// `people/me`: the caller's profile, from the directory when it knows the subject.
fn profile(emu: &Emulator, user: &str, fields: FieldSet) -> Person {
    let subject = emu.directory.read().find_subject(user);
    let (id, email) = match &subject {
        Some(s) => (s.id.clone(), s.primary_email.clone()),
        None => {
            let digits: String = sync::binding(&[&user.to_ascii_lowercase()])
                .to_string()
                .chars()
                .take(21)
                .collect();
            (format!("1{digits}"), user.to_string())
        }
    };
    let source = Source {
        source_type: Some(if subject.is_some() {
            "DOMAIN_PROFILE".into()
        } else {
            "PROFILE".into()
        }),
        id: Some(id.clone()),
        ..Default::default()
    };
    let mut p = Person {
        resource_name: Some(format!("people/{id}")),
        etag: Some(person_etag(0, id.len() as u64)),
        ..Default::default()
    };
    if fields.has("emailAddresses") {
        p.email_addresses = vec![EmailAddress {
            metadata: Some(FieldMetadata {
                primary: Some(true),
                verified: Some(true),
                source: Some(source.clone()),
                ..Default::default()
            }),
            value: Some(email),
            ..Default::default()
        }];
    }
    if fields.has("metadata") {
        p.metadata = Some(PersonMetadata {
            sources: vec![source],
            object_type: Some("PERSON".into()),
            ..Default::default()
        });
    }
    p
}

/// One resource name → PersonResponse (for batchGet).
fn lookup(
    emu: &Emulator,
    b: &UserBook,
    user: &str,
    name: &str,
    fields: FieldSet,
) -> PersonResponse {
    let found = if name == "people/me" {
        Some(profile(emu, user, fields))
    } else {
        parse_contact_name(name)
            .and_then(|id| b.contacts.get(&id))
            .map(|c| project(c, fields, &emu.base_url()))
    };
    match found {
        Some(p) => PersonResponse {
            person: Some(p),
            requested_resource_name: Some(name.to_string()),
            status: ok_status(),
            http_status_code: Some(200),
        },
        None => PersonResponse {
            person: None,
            requested_resource_name: Some(name.to_string()),
            status: Some(Status {
                code: 5,
                message: Some("Requested entity was not found.".into()),
                details: Vec::new(),
            }),
            http_status_code: Some(404),
        },
    }
}

pub async fn get_person(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
    params: Params,
) -> Result<Json<Person>, ApiError> {
    if id.contains(':') {
        return Err(ApiError::not_found(
            Api::People,
            format!("The requested URL /v1/people/{id} was not found on this server."),
        ));
    }
    read_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    let fields = person_fields(&params, PEOPLE_GET_DOC)?;
    check_sources(&params)?;
    if id == "me" {
        return Ok(Json(profile(&emu, &user, fields)));
    }
    let name = format!("people/{id}");
    let cid = parse_contact_name(&name).ok_or_else(not_found)?;
    let book = emu.people.book(&user);
    let b = book.lock();
    let c = b.contacts.get(&cid).ok_or_else(not_found)?;
    Ok(Json(project(c, fields, &emu.base_url())))
}

pub async fn batch_get(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    params: Params,
) -> Result<Json<GetPeopleResponse>, ApiError> {
    read_scope(&caller)?;
    let user = caller_user(&emu, &caller)?;
    let names = params.all("resourceNames");
    if names.is_empty() {
        return Err(bad(
            "resourceNames is required. Please specify at least one resource name.",
        ));
    }
    if names.len() > BATCH_GET_MAX {
        return Err(bad(format!(
            "Too many resource names. A maximum of {BATCH_GET_MAX} resource names can be requested."
        )));
    }
    let fields = person_fields(&params, PEOPLE_GET_DOC)?;
    check_sources(&params)?;
    let book = emu.people.book(&user);
    let b = book.lock();
    let responses = names
        .iter()
        .map(|n| lookup(&emu, &b, &user, n, fields))
        .collect();
    Ok(Json(GetPeopleResponse { responses }))
}
