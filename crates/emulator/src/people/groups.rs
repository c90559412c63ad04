//! `contactGroups.*` and `contactGroups.members.modify`. Membership changes go through
//! [`UserBook::set_groups`] and touch each affected contact, so an incremental sync sees
//! a contact whose labels changed.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use orgsync_wire::people::{
    ContactGroup, ContactGroupMetadata, CreateContactGroupRequest, MEMBERS_MODIFY_MAX,
    ModifyContactGroupMembersRequest, ModifyContactGroupMembersResponse, Status,
    UpdateContactGroupRequest,
};
use orgsync_wire::scopes::{CONTACTS, CONTACTS_READONLY};
use serde::Serialize;
use serde_json::{Map, Value};

use super::book::{ADDABLE_SYSTEM_GROUPS, Group, UserBook, contact_name, parse_contact_name};
use super::sync::{self, Cursor, PageToken};
use super::{bad, caller_user, failed_precondition, mutate, not_found};
use crate::auth::Caller;
use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::query::Params;
use crate::state::Emulator;

const GROUP_FIELDS: [&str; 5] = ["clientData", "groupType", "memberCount", "metadata", "name"];
const DEFAULT_GROUP_FIELDS: &str = "metadata,groupType,memberCount,name";
const MAX_MEMBERS: i64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct GroupFields(u8);

impl GroupFields {
    fn parse(mask: Option<&str>) -> Result<Self, ApiError> {
        let mask = mask
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(DEFAULT_GROUP_FIELDS);
        let mut bits = 0u8;
        for f in mask.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let camel = super::fields::snake_to_camel(f);
            let i = GROUP_FIELDS
                .iter()
                .position(|g| *g == camel)
                .ok_or_else(|| bad(format!("Invalid groupFields mask path: \"{f}\".")))?;
            bits |= 1 << i;
        }
        Ok(GroupFields(bits))
    }

    fn has(&self, f: &str) -> bool {
        GROUP_FIELDS
            .iter()
            .position(|g| *g == f)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

fn render(g: &Group, fields: GroupFields, max_members: usize) -> ContactGroup {
    let mut out = ContactGroup {
        resource_name: Some(g.resource_name()),
        etag: Some(g.etag()),
        ..Default::default()
    };
    if fields.has("name") {
        out.name = Some(g.name.clone());
        out.formatted_name = Some(g.formatted_name());
    }
    if fields.has("groupType") {
        out.group_type = Some(
            if g.system {
                "SYSTEM_CONTACT_GROUP"
            } else {
                "USER_CONTACT_GROUP"
            }
            .into(),
        );
    }
    if fields.has("memberCount") && !g.members.is_empty() {
        out.member_count = Some(g.members.len() as i64);
    }
    if fields.has("metadata") && !g.system {
        out.metadata = Some(ContactGroupMetadata {
            update_time: Some(super::book::rfc3339(g.updated_ms)),
            deleted: None,
        });
    }
    if fields.has("clientData") {
        out.client_data = g.client_data.clone();
    }
    out.member_resource_names = g
        .members
        .iter()
        .take(max_members)
        .map(|id| contact_name(*id))
        .collect();
    out
}

fn group_id(id: &str) -> Result<&str, ApiError> {
    if id.is_empty() || id.contains(':') || id.contains('/') {
        return Err(ApiError::not_found(
            Api::People,
            format!("The requested URL /v1/contactGroups/{id} was not found on this server."),
        ));
    }
    Ok(id)
}

fn parse_body<T: serde::de::DeserializeOwned>(v: Value, schema: &str) -> Result<T, ApiError> {
    super::fields::validate(&v, schema, "")?;
    serde_json::from_value(v).map_err(|e| bad(format!("Invalid JSON payload received. {e}")))
}

fn check_name(b: &UserBook, name: Option<&str>, except: Option<&str>) -> Result<String, ApiError> {
    let name = name.map(str::trim).unwrap_or("");
    if name.is_empty() {
        return Err(bad("Contact group name must not be empty."));
    }
    if name.chars().count() > 255 {
        return Err(bad("Contact group name is too long."));
    }
    let lower = name.to_lowercase();
    let taken = b.groups.values().any(|g| {
        Some(g.id.as_str()) != except
            && (g.name.to_lowercase() == lower || g.formatted_name().to_lowercase() == lower)
    });
    if taken {
        return Err(ApiError::new(
            Api::People,
            StatusCode::CONFLICT,
            "",
            "Contact group name already exists.",
        )
        .with_rpc_status("ALREADY_EXISTS"));
    }
    Ok(name.to_string())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListGroups {
    contact_groups: Vec<ContactGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    total_items: i64,
}

pub async fn list_groups(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    params: Params,
) -> Result<Json<ListGroups>, ApiError> {
    caller.require_any_scope(&[CONTACTS, CONTACTS_READONLY])?;
    let user = caller_user(&emu, &caller)?;
    let fields = GroupFields::parse(params.get("groupFields"))?;
    let mut size = params.int_in("pageSize", 30, 0, 1000)? as usize;
    if size == 0 {
        size = 30;
    }
    let binding = sync::binding(&[
        &user.to_ascii_lowercase(),
        &fields.0.to_string(),
        &size.to_string(),
    ]);
    let offset = match params.get_nonempty("pageToken") {
        Some(t) => match sync::decode_page(t, binding)?.c {
            Cursor::Offset(o) => o,
            _ => return Err(bad("Page token is invalid.")),
        },
        None => 0,
    };
    let book = emu.people.book(&user);
    let b = book.lock();
    let mut all: Vec<&Group> = b.groups.values().collect();
    all.sort_by_key(|g| g.order);
    let total = all.len();
    let page: Vec<ContactGroup> = all
        .iter()
        .skip(offset)
        .take(size)
        .map(|g| render(g, fields, 0))
        .collect();
    let next = (offset + size < total).then(|| {
        sync::encode(
            "P",
            &PageToken {
                b: binding,
                s: 0,
                t: 0,
                c: Cursor::Offset(offset + size),
            },
        )
    });
    Ok(Json(ListGroups {
        contact_groups: page,
        next_page_token: next,
        total_items: total as i64,
    }))
}

pub async fn create_group(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    GJson(body): GJson<Value>,
) -> Result<Json<ContactGroup>, ApiError> {
    caller.require_any_scope(&[CONTACTS])?;
    let user = caller_user(&emu, &caller)?;
    let req: CreateContactGroupRequest = parse_body(body, "CreateContactGroupRequest")?;
    let fields = GroupFields::parse(req.read_group_fields.as_deref())?;
    let out = mutate(&emu, &user, |b, ctx| {
        let name = check_name(b, req.contact_group.name.as_deref(), None)?;
        let (id, order) = b.new_group_id();
        let g = Group {
            id: id.clone(),
            name,
            system: false,
            client_data: req.contact_group.client_data.clone(),
            members: BTreeSet::new(),
            version: 1,
            updated_ms: ctx.now_ms,
            order,
        };
        let out = render(&g, fields, 0);
        b.groups.insert(id, g);
        Ok(out)
    })
    .await?;
    Ok(Json(out))
}

pub async fn get_group(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
    params: Params,
) -> Result<Json<ContactGroup>, ApiError> {
    let id = group_id(&id)?;
    caller.require_any_scope(&[CONTACTS, CONTACTS_READONLY])?;
    let user = caller_user(&emu, &caller)?;
    let fields = GroupFields::parse(params.get("groupFields"))?;
    let max = params.int_in("maxMembers", 0, 0, MAX_MEMBERS)? as usize;
    let book = emu.people.book(&user);
    let b = book.lock();
    let g = b.groups.get(id).ok_or_else(not_found)?;
    Ok(Json(render(g, fields, max)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResponse {
    requested_resource_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_group: Option<ContactGroup>,
    status: Status,
}

#[derive(Serialize)]
pub struct BatchGetGroups {
    responses: Vec<GroupResponse>,
}

pub async fn batch_get_groups(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    params: Params,
) -> Result<Json<BatchGetGroups>, ApiError> {
    caller.require_any_scope(&[CONTACTS, CONTACTS_READONLY])?;
    let user = caller_user(&emu, &caller)?;
    let names = params.all("resourceNames");
    if names.is_empty() {
        return Err(bad("resourceNames is required."));
    }
    if names.len() > 200 {
        return Err(bad(
            "Too many resource names. A maximum of 200 resource names can be requested.",
        ));
    }
    let fields = GroupFields::parse(params.get("groupFields"))?;
    let max = params.int_in("maxMembers", 0, 0, MAX_MEMBERS)? as usize;
    let book = emu.people.book(&user);
    let b = book.lock();
    let responses = names
        .into_iter()
        .map(|n| {
            let g = b.group_id_of(&n).and_then(|id| b.groups.get(&id));
            GroupResponse {
                contact_group: g.map(|g| render(g, fields, max)),
                status: match g {
                    Some(_) => Status::default(),
                    None => Status {
                        code: 5,
                        message: Some("Requested entity was not found.".into()),
                        details: Vec::new(),
                    },
                },
                requested_resource_name: n,
            }
        })
        .collect();
    Ok(Json(BatchGetGroups { responses }))
}

pub async fn update_group(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
    GJson(body): GJson<Value>,
) -> Result<Json<ContactGroup>, ApiError> {
    let id = group_id(&id)?.to_string();
    caller.require_any_scope(&[CONTACTS])?;
    let user = caller_user(&emu, &caller)?;
    let req: UpdateContactGroupRequest = parse_body(body, "UpdateContactGroupRequest")?;
    let update = req
        .update_group_fields
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or("name");
    let mut update_name = false;
    let mut update_client_data = false;
    for f in update.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match super::fields::snake_to_camel(f).as_str() {
            "name" => update_name = true,
            "clientData" => update_client_data = true,
            _ => {
                return Err(bad(format!(
                    "Invalid updateGroupFields mask path: \"{f}\"."
                )));
            }
        }
    }
    let fields = GroupFields::parse(req.read_group_fields.as_deref())?;
    let out = mutate(&emu, &user, |b, ctx| {
        let g = b.groups.get(&id).ok_or_else(not_found)?;
        if g.system {
            return Err(bad("System contact groups cannot be updated."));
        }
        if let Some(etag) = req.contact_group.etag.as_deref().filter(|e| !e.is_empty())
            && etag != g.etag()
        {
            return Err(failed_precondition(
                "Request contact group etag is different than the current contact group etag. Clear local cache and get the latest contact group.",
            ));
        }
        let name = if update_name {
            Some(check_name(b, req.contact_group.name.as_deref(), Some(&id))?)
        } else {
            None
        };
        let g = b.groups.get_mut(&id).ok_or_else(not_found)?;
        if let Some(n) = name {
            g.name = n;
        }
        if update_client_data {
            g.client_data = req.contact_group.client_data.clone();
        }
        g.version += 1;
        g.updated_ms = ctx.now_ms;
        Ok(render(g, fields, 0))
    })
    .await?;
    Ok(Json(out))
}

pub async fn delete_group(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let id = group_id(&id)?.to_string();
    caller.require_any_scope(&[CONTACTS])?;
    let user = caller_user(&emu, &caller)?;
    let delete_contacts = params.bool("deleteContacts")?.unwrap_or(false);
    mutate(&emu, &user, |b, ctx| {
        let g = b.groups.get(&id).ok_or_else(not_found)?;
        if g.system {
            return Err(bad("System contact groups cannot be deleted."));
        }
        let members: Vec<u64> = g.members.iter().copied().collect();
        for cid in members {
            if delete_contacts {
                b.remove(cid, ctx.now_ms);
            } else {
                let mut groups = b.contacts[&cid].groups.clone();
                groups.remove(&id);
                if groups.is_empty() {
                    groups.insert("myContacts".into());
                }
                b.set_groups(cid, groups);
                b.touch(cid, ctx.now_ms);
            }
        }
        b.groups.remove(&id);
        Ok(())
    })
    .await?;
    Ok(Json(Value::Object(Map::new())))
}

pub async fn modify_members(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    caller: Caller,
    GJson(body): GJson<Value>,
) -> Result<Json<ModifyContactGroupMembersResponse>, ApiError> {
    let id = group_id(&id)?.to_string();
    caller.require_any_scope(&[CONTACTS])?;
    let user = caller_user(&emu, &caller)?;
    let req: ModifyContactGroupMembersRequest =
        parse_body(body, "ModifyContactGroupMembersRequest")?;
    let n = req.resource_names_to_add.len() + req.resource_names_to_remove.len();
    if n > MEMBERS_MODIFY_MAX {
        return Err(bad(format!(
            "Too many resource names. A maximum of {MEMBERS_MODIFY_MAX} resource names can be added or removed per request."
        )));
    }
    let out = mutate(&emu, &user, |b, ctx| {
        let g = b.groups.get(&id).ok_or_else(not_found)?;
        if !req.resource_names_to_add.is_empty()
            && g.system
            && !ADDABLE_SYSTEM_GROUPS.contains(&id.as_str())
        {
            return Err(bad(format!(
                "Cannot add contacts to system contact group \"contactGroups/{id}\"."
            )));
        }
        let mut resp = ModifyContactGroupMembersResponse::default();
        let mut changed = BTreeSet::new();
        for name in &req.resource_names_to_add {
            match parse_contact_name(name).filter(|c| b.contacts.contains_key(c)) {
                None => resp.not_found_resource_names.push(name.clone()),
                Some(cid) => {
                    let mut groups = b.contacts[&cid].groups.clone();
                    if groups.insert(id.clone()) {
                        b.set_groups(cid, groups);
                        changed.insert(cid);
                    }
                }
            }
        }
        for name in &req.resource_names_to_remove {
            match parse_contact_name(name).filter(|c| b.contacts.contains_key(c)) {
                None => resp.not_found_resource_names.push(name.clone()),
                Some(cid) => {
                    let mut groups = b.contacts[&cid].groups.clone();
                    if !groups.contains(&id) {
                        continue;
                    }
                    if groups.len() == 1 {
                        resp.can_not_remove_last_contact_group_resource_names
                            .push(name.clone());
                        continue;
                    }
                    groups.remove(&id);
                    b.set_groups(cid, groups);
                    changed.insert(cid);
                }
            }
        }
        for cid in changed {
            b.touch(cid, ctx.now_ms);
        }
        Ok(resp)
    })
    .await?;
    Ok(Json(out))
}
