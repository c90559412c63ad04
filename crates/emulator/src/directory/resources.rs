//! Directory `resources.calendars`: the customer's meeting rooms and other bookable
//! resources (<https://developers.google.com/workspace/admin/directory/reference/rest/v1/resources.calendars>),
//! as the contacts job's room list reads them.
//!
//! Google's shapes: a resource is keyed by its `resourceId` (chosen by the admin at
//! insert, required with `resourceName`); `resourceEmail` and `generatedResourceName`
//! are Google's (`{customer}-{hash}@resource.calendar.google.com`, "Building-Floor-Name
//! (capacity)"); list pages hold at most 500 (`maxResults`, default 100), ordered by
//! `resourceId` unless `orderBy` names `resourceName`, `capacity`, `buildingId` or
//! `floorName`. `query` supports `field=value` and `field:prefix*` clauses joined by
//! `AND` over those fields and `resourceCategory`, `resourceType`, `resourceEmail`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use orgsync_wire::directory::{CalendarResource, CalendarResources};
use orgsync_wire::scopes;
use sha2::{Digest, Sha256};

use super::{DirectoryState, authorize, check_path_customer, etag, page_token};
use crate::auth::Caller;
use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::query::Params;
use crate::state::Emulator;

const READ: &[&str] = &[
    scopes::DIRECTORY_RESOURCE_CALENDAR,
    scopes::DIRECTORY_RESOURCE_CALENDAR_READONLY,
];
const WRITE: &[&str] = &[scopes::DIRECTORY_RESOURCE_CALENDAR];
const KIND: &str = "admin#directory#resources#calendars#CalendarResource";
const KIND_LIST: &str = "admin#directory#resources#calendars#calendarResourcesList";
const MAX_PAGE: i64 = 500;

fn not_found() -> ApiError {
    ApiError::not_found(Api::Directory, "Resource Not Found: calendarResourceId")
}

/// A stored resource as Google returns it: its read-only fields filled.
fn render(state: &DirectoryState, r: &CalendarResource) -> CalendarResource {
    let mut out = r.clone();
    out.kind = Some(KIND.into());
    out.etags = Some(etag(
        &state.customer_id,
        &format!(
            "resource:{}:{}",
            r.resource_id,
            serde_json::to_string(r).unwrap_or_default()
        ),
    ));
    let hash = hex::encode(&Sha256::digest(r.resource_id.as_bytes())[..6]);
    out.resource_email = Some(format!(
        "{}-{hash}@resource.calendar.google.com",
        state.customer_id
    ));
    let mut generated = String::new();
    for part in [r.building_id.as_deref(), r.floor_name.as_deref()]
        .into_iter()
        .flatten()
    {
        generated.push_str(part);
        generated.push('-');
    }
    generated.push_str(&r.resource_name);
    if let Some(c) = r.capacity {
        generated.push_str(&format!(" ({c})"));
    }
    out.generated_resource_name = Some(generated);
    out
}

fn field(r: &CalendarResource, name: &str) -> Result<Option<String>, ()> {
    Ok(match name {
        "resourceName" => Some(r.resource_name.clone()),
        "resourceId" => Some(r.resource_id.clone()),
        "buildingId" => r.building_id.clone(),
        "floorName" => r.floor_name.clone(),
        "resourceCategory" => r.resource_category.clone(),
        "resourceType" => r.resource_type.clone(),
        "capacity" => r.capacity.map(|c| c.to_string()),
        _ => return Err(()),
    })
}

/// `field=value` / `field:prefix*` clauses joined by `AND` (or spaces).
fn matches(query: &str, r: &CalendarResource) -> Result<bool, ApiError> {
    let bad = || ApiError::bad_request(Api::Directory, "Invalid Input: query");
    for clause in query
        .split(" AND ")
        .flat_map(|c| c.split_whitespace())
        .filter(|c| !c.is_empty() && *c != "AND")
    {
        let (name, op, value) = if let Some((n, v)) = clause.split_once(':') {
            (n, ':', v)
        } else if let Some((n, v)) = clause.split_once('=') {
            (n, '=', v)
        } else {
            return Err(bad());
        };
        let value = value.trim_matches('"').trim_matches('\'');
        let have = field(r, name).map_err(|_| bad())?.unwrap_or_default();
        let ok = match (op, value.strip_suffix('*')) {
            (':', Some(prefix)) => have.to_lowercase().starts_with(&prefix.to_lowercase()),
            _ => have.eq_ignore_ascii_case(value),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET admin/directory/v1/customer/{customer}/resources/calendars`
pub async fn list(
    State(emu): State<Arc<Emulator>>,
    Path(customer): Path<String>,
    caller: Caller,
    params: Params,
) -> Result<Json<CalendarResources>, ApiError> {
    authorize(&emu, &caller, READ, true)?;
    let max = params.int_in("maxResults", 100, 1, MAX_PAGE)? as usize;
    let query = params.get("query").unwrap_or("").trim().to_string();
    let order = params
        .get("orderBy")
        .unwrap_or("resourceId")
        .trim()
        .to_string();
    let (order_field, descending) = match order.split_whitespace().collect::<Vec<_>>()[..] {
        [f] => (f.to_string(), false),
        [f, "asc"] => (f.to_string(), false),
        [f, "desc"] => (f.to_string(), true),
        _ => {
            return Err(ApiError::bad_request(
                Api::Directory,
                "Invalid Input: orderBy",
            ));
        }
    };
    if ![
        "resourceId",
        "resourceName",
        "capacity",
        "buildingId",
        "floorName",
    ]
    .contains(&order_field.as_str())
    {
        return Err(ApiError::bad_request(
            Api::Directory,
            "Invalid Input: orderBy",
        ));
    }
    let now = emu.clock.now_ms();
    let state = emu.directory.read();
    check_path_customer(&state, &customer)?;
    let mut all: Vec<&CalendarResource> = Vec::new();
    for r in state.resources.values() {
        if matches(&query, r)? {
            all.push(r);
        }
    }
    // A sort key that keeps ties in resourceId order, so pages never repeat or skip.
    let key = |r: &CalendarResource| -> (String, String) {
        let v = match order_field.as_str() {
            "capacity" => format!("{:012}", r.capacity.unwrap_or(0)),
            f => field(r, f)
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_lowercase(),
        };
        (v, r.resource_id.clone())
    };
    all.sort_by_key(|r| key(r));
    if descending {
        all.reverse();
    }
    let fp = page_token::fingerprint(&["resources", &customer, &query, &order]);
    let start = match params.get_nonempty("pageToken") {
        Some(t) => page_token::decode(t, &fp, now)?
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(Api::Directory, "Invalid page token"))?,
        None => 0,
    };
    let page: Vec<CalendarResource> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|r| render(&state, r))
        .collect();
    let next = start + page.len();
    Ok(Json(CalendarResources {
        kind: Some(KIND_LIST.into()),
        etag: Some(etag(
            &state.customer_id,
            &format!("resources:{next}:{query}"),
        )),
        items: page,
        next_page_token: (next < all.len())
            .then(|| page_token::encode(&fp, &next.to_string(), now)),
    }))
}

/// `GET admin/directory/v1/customer/{customer}/resources/calendars/{calendarResourceId}`
pub async fn get(
    State(emu): State<Arc<Emulator>>,
    Path((customer, id)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<CalendarResource>, ApiError> {
    authorize(&emu, &caller, READ, true)?;
    let state = emu.directory.read();
    check_path_customer(&state, &customer)?;
    let r = state.resources.get(&id).ok_or_else(not_found)?;
    Ok(Json(render(&state, r)))
}

/// `POST admin/directory/v1/customer/{customer}/resources/calendars`
pub async fn insert(
    State(emu): State<Arc<Emulator>>,
    Path(customer): Path<String>,
    caller: Caller,
    GJson(body): GJson<CalendarResource>,
) -> Result<Json<CalendarResource>, ApiError> {
    authorize(&emu, &caller, WRITE, true)?;
    if body.resource_id.trim().is_empty() {
        return Err(ApiError::required(Api::Directory, "resourceId"));
    }
    if body.resource_name.trim().is_empty() {
        return Err(ApiError::required(Api::Directory, "resourceName"));
    }
    let mut state = emu.directory.write();
    check_path_customer(&state, &customer)?;
    if state.resources.contains_key(&body.resource_id) {
        return Err(ApiError::new(
            Api::Directory,
            StatusCode::CONFLICT,
            "duplicate",
            "Entity Already Exists.",
        ));
    }
    let stored = CalendarResource {
        kind: None,
        etags: None,
        resource_email: None,
        generated_resource_name: None,
        resource_category: body
            .resource_category
            .clone()
            .or_else(|| Some("CONFERENCE_ROOM".into())),
        ..body
    };
    let out = render(&state, &stored);
    state.resources.insert(stored.resource_id.clone(), stored);
    Ok(Json(out))
}

/// `DELETE admin/directory/v1/customer/{customer}/resources/calendars/{calendarResourceId}`
pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    Path((customer, id)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    authorize(&emu, &caller, WRITE, true)?;
    let mut state = emu.directory.write();
    check_path_customer(&state, &customer)?;
    state.resources.remove(&id).ok_or_else(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}
