//! Groups and members: `groups.list/get/insert`, `members.list/insert`,
//! `members.hasMember`.
//!
//! Members are stored by id and rendered from the live user or group, so a renamed
//! user shows the new address and a deleted user drops out of every group.
//! `includeDerivedMembership=true` and `hasMember` walk nested groups depth-first
//! with a visited set, so even a cycle in loaded data cannot loop; inserts refuse
//! cycles (Google: "Membership cycles are rejected").

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use orgsync_wire::directory::{
    GROUPS_MAX_PAGE, Group, Groups, KIND_GROUP, KIND_GROUPS, KIND_MEMBER, KIND_MEMBERS, Member,
    Members,
};
use orgsync_wire::scopes;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::query::{self, Field};
use super::{DirectoryState, authorize, check_customer, etag, lower, page_token};
use crate::auth::Caller;
use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::query::Params;
use crate::state::Emulator;

const GROUP_MEMBER: &str = "https://www.googleapis.com/auth/admin.directory.group.member";
const GROUP_READ: &[&str] = &[scopes::DIRECTORY_GROUP, scopes::DIRECTORY_GROUP_READONLY];
const GROUP_WRITE: &[&str] = &[scopes::DIRECTORY_GROUP];
const MEMBER_READ: &[&str] = &[
    scopes::DIRECTORY_GROUP,
    scopes::DIRECTORY_GROUP_READONLY,
    GROUP_MEMBER,
    scopes::DIRECTORY_GROUP_MEMBER_READONLY,
];
const MEMBER_WRITE: &[&str] = &[scopes::DIRECTORY_GROUP, GROUP_MEMBER];

/// A stored membership: who (by id), in which role, of which kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRec {
    pub id: String,
    /// OWNER, MANAGER or MEMBER.
    pub role: String,
    /// USER or GROUP.
    pub kind: String,
}

impl MemberRec {
    pub fn user(id: &str, role: &str) -> Self {
        MemberRec {
            id: id.into(),
            role: role.into(),
            kind: "USER".into(),
        }
    }

    pub fn group(id: &str) -> Self {
        MemberRec {
            id: id.into(),
            role: "MEMBER".into(),
            kind: "GROUP".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRec {
    pub group: Group,
    pub members: Vec<MemberRec>,
    #[serde(default)]
    pub version: u64,
}

impl GroupRec {
    /// A new group with a Google-like id (`0` + 14 lowercase alphanumerics).
    pub fn new(
        rng: &mut impl Rng,
        email: &str,
        name: &str,
        description: &str,
        members: Vec<MemberRec>,
    ) -> Self {
        GroupRec {
            group: Group {
                id: Some(new_group_id(rng)),
                email: email.to_string(),
                name: Some(name.to_string()),
                description: Some(description.to_string()),
                admin_created: Some(true),
                ..Default::default()
            },
            members,
            version: 0,
        }
    }
}

fn new_group_id(rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..14)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("0{tail}")
}

impl DirectoryState {
    /// Insert or replace a group, keeping indexes in step; returns its id.
    pub(crate) fn put_group(&mut self, mut g: GroupRec) -> String {
        let id = g.group.id.clone().unwrap_or_default();
        if let Some(old) = self.groups.remove(&id) {
            self.idx.group_by_email.remove(&lower(&old.group.email));
            for a in old.group.aliases.iter().flatten() {
                self.idx.group_alias.remove(&lower(a));
            }
        }
        g.version = self.next_version();
        self.idx
            .group_by_email
            .insert(lower(&g.group.email), id.clone());
        for a in g.group.aliases.iter().flatten() {
            self.idx.group_alias.insert(lower(a), id.clone());
        }
        self.groups.insert(id.clone(), g);
        id
    }

    /// A group by email, alias or id.
    pub(crate) fn resolve_group(&self, key: &str) -> Option<&GroupRec> {
        if let Some(g) = self.groups.get(key) {
            return Some(g);
        }
        let k = lower(key);
        self.idx
            .group_by_email
            .get(&k)
            .or_else(|| self.idx.group_alias.get(&k))
            .and_then(|id| self.groups.get(id))
    }

    /// A member that still exists, with its current email and status.
    fn live_member(&self, m: &MemberRec) -> Option<(String, &'static str)> {
        match m.kind.as_str() {
            "GROUP" => self
                .groups
                .get(&m.id)
                .map(|g| (g.group.email.clone(), "ACTIVE")),
            _ => self.users.get(&m.id).map(|u| {
                let status = if u.user.suspended == Some(true) {
                    "SUSPENDED"
                } else {
                    "ACTIVE"
                };
                (u.email().to_string(), status)
            }),
        }
    }

    fn direct_count(&self, g: &GroupRec) -> i64 {
        g.members
            .iter()
            .filter(|m| self.live_member(m).is_some())
            .count() as i64
    }

    /// Members of `group_id`, expanded through nested groups when `derived`; each id
    /// once, direct memberships first.
    fn expanded_members(&self, group_id: &str, derived: bool) -> Vec<MemberRec> {
        let mut out = Vec::new();
        let mut seen_members = HashSet::new();
        let mut visited = HashSet::new();
        self.collect_members(group_id, derived, &mut visited, &mut seen_members, &mut out);
        out
    }

    fn collect_members(
        &self,
        group_id: &str,
        derived: bool,
        visited: &mut HashSet<String>,
        seen: &mut HashSet<String>,
        out: &mut Vec<MemberRec>,
    ) {
        if !visited.insert(group_id.to_string()) {
            return;
        }
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        for m in &g.members {
            if self.live_member(m).is_some() && seen.insert(m.id.clone()) {
                out.push(m.clone());
            }
        }
        if derived {
            for m in &g.members {
                if m.kind == "GROUP" {
                    self.collect_members(&m.id, derived, visited, seen, out);
                }
            }
        }
    }

    /// Is `member_id` a direct or nested member of `group_id`?
    fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        self.expanded_members(group_id, true)
            .iter()
            .any(|m| m.id == member_id)
    }

    fn render_group(&self, g: &GroupRec) -> Group {
        let mut out = g.group.clone();
        out.kind = Some(KIND_GROUP.into());
        out.etag = Some(etag(
            &self.customer_id,
            &format!(
                "group:{}:{}",
                g.group.id.as_deref().unwrap_or(""),
                g.version
            ),
        ));
        out.direct_members_count = Some(self.direct_count(g));
        out
    }

    fn render_member(&self, group_id: &str, m: &MemberRec) -> Option<Member> {
        let (email, status) = self.live_member(m)?;
        Some(Member {
            kind: Some(KIND_MEMBER.into()),
            id: Some(m.id.clone()),
            etag: Some(etag(
                &self.customer_id,
                &format!("member:{group_id}:{}:{}", m.id, m.role),
            )),
            email: Some(email),
            role: Some(m.role.clone()),
            kind_of_member: Some(m.kind.clone()),
            status: Some(status.into()),
            delivery_settings: (m.kind == "USER").then(|| "ALL_MAIL".into()),
        })
    }
}

fn group_not_found() -> ApiError {
    ApiError::not_found(Api::Directory, "Resource Not Found: groupKey")
}

fn member_not_found() -> ApiError {
    ApiError::not_found(Api::Directory, "Resource Not Found: memberKey")
}

fn page_size(params: &Params) -> Result<usize, ApiError> {
    let n = params.int_in("maxResults", 200, 1, i64::from(i32::MAX))?;
    Ok(n.min(i64::from(GROUPS_MAX_PAGE)) as usize)
}

/// `GET admin/directory/v1/groups`
pub async fn list(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Groups>, ApiError> {
    authorize(&emu, &caller, GROUP_READ, true)?;
    let max = page_size(&params)?;
    params.one_of("orderBy", &["email"])?;
    let descending =
        params.one_of("sortOrder", &["ASCENDING", "DESCENDING"])? == Some("DESCENDING");
    let query_text = params.get("query").unwrap_or("");
    let clauses = query::parse(query_text)
        .map_err(|_| ApiError::bad_request(Api::Directory, "Invalid Input"))?;
    if clauses
        .iter()
        .any(|c| !matches!(c.field, Field::Email | Field::Name | Field::Any))
    {
        return Err(ApiError::bad_request(Api::Directory, "Invalid Input"));
    }
    let now = emu.clock.now_ms();
    let state = emu.directory.read();
    let user_key = params.get_nonempty("userKey");
    let member_of: Option<String> = match user_key {
        Some(_) if params.get_nonempty("customer").is_some() => {
            return Err(ApiError::bad_request(Api::Directory, "Bad Request")
                .with_location("parameter", "userKey"));
        }
        Some(k) => Some(
            state
                .resolve_user(k)
                .map(|u| u.id().to_string())
                .or_else(|| state.resolve_group(k).and_then(|g| g.group.id.clone()))
                .ok_or_else(|| {
                    ApiError::not_found(Api::Directory, "Resource Not Found: userKey")
                })?,
        ),
        None => {
            check_customer(&state, &params)?;
            None
        }
    };
    let fp = page_token::fingerprint(&[
        "groups",
        params.get("customer").unwrap_or(""),
        params.get("domain").unwrap_or(""),
        user_key.unwrap_or(""),
        query_text,
        if descending { "d" } else { "a" },
    ]);
    let after = match params.get_nonempty("pageToken") {
        Some(t) => Some(page_token::decode(t, &fp, now)?),
        None => None,
    };
    use std::ops::Bound::{Excluded, Unbounded};
    let bounds = match (&after, descending) {
        (None, _) => (Unbounded, Unbounded),
        (Some(a), false) => (Excluded(a.clone()), Unbounded),
        (Some(a), true) => (Unbounded, Excluded(a.clone())),
    };
    let range = state.idx.group_by_email.range::<String, _>(bounds);
    let iter: Box<dyn Iterator<Item = (&String, &String)>> = if descending {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut page: Vec<(&String, &GroupRec)> = Vec::new();
    for (key, id) in iter {
        let Some(g) = state.groups.get(id) else {
            continue;
        };
        if let Some(m) = &member_of
            && !g.members.iter().any(|x| &x.id == m)
        {
            continue;
        }
        let name = g.group.name.as_deref().unwrap_or("");
        let ok = clauses.iter().all(|c| match c.field {
            Field::Email => std::iter::once(&g.group.email)
                .chain(g.group.aliases.iter().flatten())
                .any(|e| query::text_match(&c.op, e, &c.value)),
            Field::Name => query::text_match(&c.op, name, &c.value),
            _ => {
                query::text_match(&c.op, name, &c.value)
                    || query::text_match(&c.op, &g.group.email, &c.value)
            }
        });
        if ok {
            page.push((key, g));
            if page.len() > max {
                break;
            }
        }
    }
    let next_page_token = if page.len() > max {
        page.truncate(max);
        page.last().map(|(k, _)| page_token::encode(&fp, k, now))
    } else {
        None
    };
    let groups: Vec<Group> = page.iter().map(|(_, g)| state.render_group(g)).collect();
    Ok(Json(Groups {
        kind: Some(KIND_GROUPS.into()),
        etag: Some(etag(
            &state.customer_id,
            &format!("groups:{}", groups.len()),
        )),
        groups,
        next_page_token,
    }))
}

/// `GET admin/directory/v1/groups/{groupKey}`
pub async fn get(
    State(emu): State<Arc<Emulator>>,
    Path(group_key): Path<String>,
    caller: Caller,
) -> Result<Json<Group>, ApiError> {
    authorize(&emu, &caller, GROUP_READ, true)?;
    let state = emu.directory.read();
    let g = state
        .resolve_group(&group_key)
        .ok_or_else(group_not_found)?;
    Ok(Json(state.render_group(g)))
}

/// `POST admin/directory/v1/groups`
pub async fn insert(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    GJson(body): GJson<Group>,
) -> Result<Json<Group>, ApiError> {
    authorize(&emu, &caller, GROUP_WRITE, true)?;
    if body.email.is_empty() {
        return Err(ApiError::required(Api::Directory, "email"));
    }
    let mut state = emu.directory.write();
    let domain = body.email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if body.email.matches('@').count() != 1 || !domain.eq_ignore_ascii_case(&state.domain) {
        return Err(ApiError::bad_request(Api::Directory, "Domain not found."));
    }
    if state.email_taken(&body.email) {
        return Err(ApiError::new(
            Api::Directory,
            StatusCode::CONFLICT,
            "duplicate",
            "Entity already exists.",
        ));
    }
    let mut rec = GroupRec::new(
        &mut rand::rng(),
        &body.email,
        body.name.as_deref().unwrap_or(&body.email),
        body.description.as_deref().unwrap_or(""),
        vec![],
    );
    rec.group.extra = body.extra;
    let id = state.put_group(rec);
    let g = state.groups.get(&id).expect("just inserted");
    Ok(Json(state.render_group(g)))
}

/// `GET admin/directory/v1/groups/{groupKey}/members`
pub async fn members_list(
    State(emu): State<Arc<Emulator>>,
    Path(group_key): Path<String>,
    caller: Caller,
    params: Params,
) -> Result<Json<Members>, ApiError> {
    authorize(&emu, &caller, MEMBER_READ, true)?;
    let max = page_size(&params)?;
    let derived = params.bool("includeDerivedMembership")?.unwrap_or(false);
    let roles: Vec<String> = params
        .all("roles")
        .into_iter()
        .map(|r| r.to_ascii_uppercase())
        .collect();
    if let Some(bad) = roles
        .iter()
        .find(|r| !["OWNER", "MANAGER", "MEMBER"].contains(&r.as_str()))
    {
        return Err(
            ApiError::bad_request(Api::Directory, format!("Invalid Input: roles {bad}"))
                .with_location("parameter", "roles"),
        );
    }
    let now = emu.clock.now_ms();
    let state = emu.directory.read();
    let g = state
        .resolve_group(&group_key)
        .ok_or_else(group_not_found)?;
    let gid = g.group.id.clone().unwrap_or_default();
    let fp = page_token::fingerprint(&[
        "members",
        &gid,
        &roles.join(","),
        if derived { "d" } else { "" },
    ]);
    let start: usize = match params.get_nonempty("pageToken") {
        Some(t) => page_token::decode(t, &fp, now)?.parse().map_err(|_| {
            ApiError::bad_request(Api::Directory, "Invalid page token")
                .with_location("parameter", "pageToken")
        })?,
        None => 0,
    };
    let all: Vec<MemberRec> = state
        .expanded_members(&gid, derived)
        .into_iter()
        .filter(|m| roles.is_empty() || roles.contains(&m.role))
        .collect();
    let members: Vec<Member> = all
        .iter()
        .skip(start)
        .take(max)
        .filter_map(|m| state.render_member(&gid, m))
        .collect();
    let end = start + max;
    let next_page_token = (end < all.len()).then(|| page_token::encode(&fp, &end.to_string(), now));
    Ok(Json(Members {
        kind: Some(KIND_MEMBERS.into()),
        etag: Some(etag(
            &state.customer_id,
            &format!("members:{gid}:{}", g.version),
        )),
        members,
        next_page_token,
    }))
}

/// `POST admin/directory/v1/groups/{groupKey}/members`
pub async fn members_insert(
    State(emu): State<Arc<Emulator>>,
    Path(group_key): Path<String>,
    caller: Caller,
    GJson(body): GJson<Member>,
) -> Result<Json<Member>, ApiError> {
    authorize(&emu, &caller, MEMBER_WRITE, true)?;
    let role = body
        .role
        .as_deref()
        .unwrap_or("MEMBER")
        .to_ascii_uppercase();
    if !["OWNER", "MANAGER", "MEMBER"].contains(&role.as_str()) {
        return Err(ApiError::bad_request(Api::Directory, "Invalid Input: role"));
    }
    let key = body
        .email
        .clone()
        .or(body.id.clone())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::required(Api::Directory, "memberKey"))?;
    let mut state = emu.directory.write();
    let mut g = state
        .resolve_group(&group_key)
        .ok_or_else(group_not_found)?
        .clone();
    let gid = g.group.id.clone().unwrap_or_default();
    let rec = if let Some(u) = state.resolve_user(&key) {
        MemberRec::user(u.id(), &role)
    } else if let Some(other) = state.resolve_group(&key) {
        let oid = other.group.id.clone().unwrap_or_default();
        if oid == gid || state.is_member(&oid, &gid) {
            return Err(ApiError::bad_request(
                Api::Directory,
                "Invalid Input: membership cycle",
            ));
        }
        MemberRec {
            role: role.clone(),
            ..MemberRec::group(&oid)
        }
    } else {
        return Err(member_not_found());
    };
    if g.members.iter().any(|m| m.id == rec.id) {
        return Err(ApiError::new(
            Api::Directory,
            StatusCode::CONFLICT,
            "duplicate",
            "Member already exists.",
        ));
    }
    g.members.push(rec.clone());
    state.put_group(g);
    state
        .render_member(&gid, &rec)
        .map(Json)
        .ok_or_else(member_not_found)
}

/// `DELETE admin/directory/v1/groups/{groupKey}/members/{memberKey}`: the member (a user
/// or a group, by email or id) leaves the group; 204 with an empty body, as Google
/// answers (<https://developers.google.com/workspace/admin/directory/reference/rest/v1/members/delete>).
pub async fn members_delete(
    State(emu): State<Arc<Emulator>>,
    Path((group_key, member_key)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    authorize(&emu, &caller, MEMBER_WRITE, true)?;
    let mut state = emu.directory.write();
    let mut g = state
        .resolve_group(&group_key)
        .ok_or_else(group_not_found)?
        .clone();
    let id = if let Some(u) = state.resolve_user(&member_key) {
        u.id().to_string()
    } else if let Some(other) = state.resolve_group(&member_key) {
        other.group.id.clone().unwrap_or_default()
    } else {
        return Err(member_not_found());
    };
    let before = g.members.len();
    g.members.retain(|m| m.id != id);
    if g.members.len() == before {
        return Err(member_not_found());
    }
    state.put_group(g);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET admin/directory/v1/groups/{groupKey}/hasMember/{memberKey}`
pub async fn has_member(
    State(emu): State<Arc<Emulator>>,
    Path((group_key, member_key)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    authorize(&emu, &caller, MEMBER_READ, true)?;
    let state = emu.directory.read();
    let g = state
        .resolve_group(&group_key)
        .ok_or_else(group_not_found)?;
    let member_id = state
        .resolve_user(&member_key)
        .map(|u| u.id().to_string())
        .or_else(|| {
            state
                .resolve_group(&member_key)
                .and_then(|g| g.group.id.clone())
        })
        .ok_or_else(member_not_found)?;
    let is = state.is_member(g.group.id.as_deref().unwrap_or(""), &member_id);
    Ok(Json(json!({ "isMember": is })))
}
