//! Gmail `users.labels` (`list`, `get`, `create`, `patch`, `update`, `delete`) and
//! `users.messages.modify`, over the mailboxes of [`super`].
//!
//! What Gmail does and the emulator copies
//! (https://developers.google.com/workspace/gmail/api/reference/rest/v1/users.labels and
//! https://developers.google.com/workspace/gmail/api/guides/labels):
//! - Every mailbox has Gmail's fourteen system labels, whose id is their name (`INBOX`,
//!   `SENT`, `CATEGORY_SOCIAL`, …). They cannot be created, changed or deleted:
//!   `patch`/`update` answer 400 "Invalid update request", `delete` 400 "Invalid delete
//!   request".
//! - User labels get ids `Label_1`, `Label_2`, … A name must not be blank (400 "Invalid
//!   label name") and must differ, ignoring case, from every other label's name, system
//!   labels included (409 "Label name exists or conflicts", as Gmail answers).
//! - `list` returns each label's id, name, visibilities and type only; `get` adds the
//!   message and thread counts, computed from the mailbox at the time of the call.
//! - A color needs both `textColor` and `backgroundColor` from Gmail's palette (the
//!   `LabelColor` schema of the discovery document).
//! - Deleting a user label removes it from every message that carries it.
//! - `messages.modify` adds and removes label ids on one message: an unknown id, or
//!   `SENT`/`DRAFT` (which only Gmail sets), is 400 "Invalid label: <id>"; a request that
//!   adds and removes nothing is 400 "No label add or removes specified".

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Mailbox, gmail_error, invalid, json_body, mailbox_of, not_found, require, short_json};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::Emulator;

/// Scopes per method, from the discovery document (`""` = `https://mail.google.com/`).
const LABEL_READ: &[&str] = &["", "labels", "metadata", "modify", "readonly"];
const LABEL_WRITE: &[&str] = &["", "labels", "modify"];
const MESSAGE_MODIFY: &[&str] = &["", "modify"];

/// Most user labels a mailbox holds (the `Label` schema's description).
const MAX_USER_LABELS: usize = 10_000;

/// Gmail's system labels in the order `labels.list` returns them, with the
/// `messageListVisibility`/`labelListVisibility` Gmail reports for each (`None`: Gmail
/// omits both).
const SYSTEM_LABELS: &[(&str, Option<(&str, &str)>)] = &[
    ("CHAT", Some(("hide", "labelHide"))),
    ("SENT", None),
    ("INBOX", None),
    ("IMPORTANT", Some(("hide", "labelHide"))),
    ("TRASH", Some(("hide", "labelHide"))),
    ("DRAFT", None),
    ("SPAM", Some(("hide", "labelHide"))),
    ("CATEGORY_FORUMS", Some(("hide", "labelHide"))),
    ("CATEGORY_UPDATES", Some(("hide", "labelHide"))),
    ("CATEGORY_PERSONAL", Some(("hide", "labelHide"))),
    ("CATEGORY_PROMOTIONS", Some(("hide", "labelHide"))),
    ("CATEGORY_SOCIAL", Some(("hide", "labelHide"))),
    ("STARRED", None),
    ("UNREAD", None),
];

/// System labels only Gmail sets or clears on a message.
const NOT_MODIFIABLE: &[&str] = &["SENT", "DRAFT"];

/// The colors Gmail allows for `textColor` and `backgroundColor` (without the `#`).
const PALETTE: &[&str] = &[
    "000000", "434343", "666666", "999999", "cccccc", "efefef", "f3f3f3", "ffffff", "fb4c2f",
    "ffad47", "fad165", "16a766", "43d692", "4a86e8", "a479e2", "f691b3", "f6c5be", "ffe6c7",
    "fef1d1", "b9e4d0", "c6f3de", "c9daf8", "e4d7f5", "fcdee8", "efa093", "ffd6a2", "fce8b3",
    "89d3b2", "a0eac9", "a4c2f4", "d0bcf1", "fbc8d9", "e66550", "ffbc6b", "fcda83", "44b984",
    "68dfa9", "6d9eeb", "b694e8", "f7a7c0", "cc3a21", "eaa041", "f2c960", "149e60", "3dc789",
    "3c78d8", "8e63ce", "e07798", "ac2b16", "cf8933", "d5ae49", "0b804b", "2a9c68", "285bac",
    "653e9b", "b65775", "822111", "a46a21", "aa8831", "076239", "1a764d", "1c4587", "41236d",
    "83334c", "464646", "e7e7e7", "0d3472", "b6cff5", "0d3b44", "98d7e4", "3d188e", "e3d7ff",
    "711a36", "fbd3e0", "8a1c0a", "f2b2a8", "7a2e0b", "ffc8af", "7a4706", "ffdeb5", "594c05",
    "fbe983", "684e07", "fdedc1", "0b4f30", "b3efd3", "04502e", "a2dcc1", "c2c2c2", "4986e7",
    "2da2bb", "b99aff", "994a64", "f691b2", "ff7537", "ffad46", "662e37", "ebdbde", "cca6ac",
    "094228", "42d692", "16a765", "757575", "1e53b8", "007286", "7858c3", "c2185b", "d93025",
    "54240e", "633e04", "521d28", "202124", "083018",
];

/// A label the user created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UserLabel {
    id: String,
    name: String,
    #[serde(default)]
    message_list_visibility: Option<String>,
    #[serde(default)]
    label_list_visibility: Option<String>,
    #[serde(default)]
    color: Option<LabelColor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LabelColor {
    text_color: String,
    background_color: String,
}

fn system_label(id: &str) -> Option<&'static (&'static str, Option<(&'static str, &'static str)>)> {
    SYSTEM_LABELS.iter().find(|(name, _)| *name == id)
}

/// Whether `id` names a label of this mailbox (system or user).
pub(super) fn label_exists(mb: &Mailbox, id: &str) -> bool {
    system_label(id).is_some() || mb.labels.iter().any(|l| l.id == id)
}

fn system_json(id: &str, visibility: Option<(&str, &str)>) -> Value {
    let mut out = json!({"id": id, "name": id});
    if let Some((message, label)) = visibility {
        out["messageListVisibility"] = json!(message);
        out["labelListVisibility"] = json!(label);
    }
    out["type"] = json!("system");
    out
}

fn user_json(l: &UserLabel) -> Value {
    let mut out = json!({"id": l.id, "name": l.name});
    if let Some(v) = &l.message_list_visibility {
        out["messageListVisibility"] = json!(v);
    }
    if let Some(v) = &l.label_list_visibility {
        out["labelListVisibility"] = json!(v);
    }
    out["type"] = json!("user");
    if let Some(c) = &l.color {
        out["color"] = json!({"textColor": c.text_color, "backgroundColor": c.background_color});
    }
    out
}

/// `messagesTotal`, `messagesUnread`, `threadsTotal`, `threadsUnread` of label `id`.
fn add_counts(out: &mut Value, mb: Option<&Mailbox>, id: &str) {
    let (mut messages, mut unread) = (0usize, 0usize);
    let (mut threads, mut unread_threads) = (BTreeSet::new(), BTreeSet::new());
    for m in mb.into_iter().flat_map(|mb| mb.messages.values()) {
        if !m.label_ids.iter().any(|l| l == id) {
            continue;
        }
        messages += 1;
        threads.insert(m.thread_id.as_str());
        if m.label_ids.iter().any(|l| l == "UNREAD") {
            unread += 1;
            unread_threads.insert(m.thread_id.as_str());
        }
    }
    out["messagesTotal"] = json!(messages);
    out["messagesUnread"] = json!(unread);
    out["threadsTotal"] = json!(threads.len());
    out["threadsUnread"] = json!(unread_threads.len());
}

// ---------------------------------------------------------------------------------
// Request bodies

/// The mutable fields of a `Label` body; `None` where the body leaves a field out.
#[derive(Default)]
struct LabelFields {
    name: Option<String>,
    message_list_visibility: Option<String>,
    label_list_visibility: Option<String>,
    color: Option<LabelColor>,
}

fn string_field(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!(
            "Invalid value at 'label.{field}' (TYPE_STRING), {other}"
        ))),
    }
}

fn enum_field(
    body: &Map<String, Value>,
    field: &str,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match string_field(body, field)? {
        Some(v) if !allowed.contains(&v.as_str()) => Err(invalid(format!(
            "Invalid value at 'label.{field}' (TYPE_ENUM), \"{v}\": expected one of {}",
            allowed.join(", ")
        ))),
        v => Ok(v),
    }
}

fn color_field(body: &Map<String, Value>) -> Result<Option<LabelColor>, ApiError> {
    let c = match body.get("color") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(c)) => c,
        Some(other) => {
            return Err(invalid(format!(
                "Invalid value at 'label.color' (TYPE_MESSAGE), {other}"
            )));
        }
    };
    let pick = |field: &str| -> Result<String, ApiError> {
        let v = string_field(c, field)?
            .ok_or_else(|| {
                invalid(format!(
                    "Label color needs both textColor and backgroundColor; {field} is missing."
                ))
            })?
            .to_ascii_lowercase();
        if !v
            .strip_prefix('#')
            .is_some_and(|hex| PALETTE.contains(&hex))
        {
            return Err(invalid(format!(
                "Label color {v} is not on the allowed color palette"
            )));
        }
        Ok(v)
    };
    Ok(Some(LabelColor {
        text_color: pick("textColor")?,
        background_color: pick("backgroundColor")?,
    }))
}

fn label_fields(bytes: &[u8]) -> Result<LabelFields, ApiError> {
    let body = json_body(bytes)?;
    let Value::Object(body) = body else {
        return Ok(LabelFields::default());
    };
    Ok(LabelFields {
        name: string_field(&body, "name")?,
        message_list_visibility: enum_field(&body, "messageListVisibility", &["show", "hide"])?,
        label_list_visibility: enum_field(
            &body,
            "labelListVisibility",
            &["labelShow", "labelShowIfUnread", "labelHide"],
        )?,
        color: color_field(&body)?,
    })
}

/// A usable name for a label of `mb` other than `except`: no control characters (Gmail
/// refuses a name ending in `\r`), not blank once surrounding spaces are dropped, and
/// not the name of another label, ignoring case.
fn check_name(mb: Option<&Mailbox>, name: &str, except: Option<&str>) -> Result<String, ApiError> {
    if name.chars().any(char::is_control) {
        return Err(invalid("Invalid label name"));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("Invalid label name"));
    }
    let taken = SYSTEM_LABELS
        .iter()
        .any(|(id, _)| id.eq_ignore_ascii_case(name))
        || mb.is_some_and(|mb| {
            mb.labels
                .iter()
                .any(|l| Some(l.id.as_str()) != except && l.name.eq_ignore_ascii_case(name))
        });
    if taken {
        return Err(gmail_error(
            StatusCode::CONFLICT,
            "aborted",
            "Label name exists or conflicts",
        ));
    }
    Ok(name.to_string())
}

// ---------------------------------------------------------------------------------
// users.labels

pub(super) async fn labels_list(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require(&caller, LABEL_READ)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let st = emu.gmail.read();
    let mut labels: Vec<Value> = SYSTEM_LABELS
        .iter()
        .map(|(id, vis)| system_json(id, *vis))
        .collect();
    if let Some(mb) = st.mailboxes.get(&user) {
        labels.extend(mb.labels.iter().map(user_json));
    }
    Ok(Json(json!({ "labels": labels })))
}

pub(super) async fn labels_get(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require(&caller, LABEL_READ)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let st = emu.gmail.read();
    let mb = st.mailboxes.get(&user);
    let mut out = match system_label(&id) {
        Some((sid, vis)) => system_json(sid, *vis),
        None => mb
            .and_then(|mb| mb.labels.iter().find(|l| l.id == id))
            .map(user_json)
            .ok_or_else(not_found)?,
    };
    add_counts(&mut out, mb, &id);
    Ok(Json(out))
}

pub(super) async fn labels_create(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, LABEL_WRITE)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let fields = label_fields(&body)?;
    let mut st = emu.gmail.write();
    let mb = st.mailbox(&user);
    let name = check_name(Some(mb), fields.name.as_deref().unwrap_or(""), None)?;
    if mb.labels.len() >= MAX_USER_LABELS {
        return Err(invalid(format!(
            "Too many labels: a mailbox holds at most {MAX_USER_LABELS} labels; delete some first."
        )));
    }
    mb.last_label += 1;
    let label = UserLabel {
        id: format!("Label_{}", mb.last_label),
        name,
        message_list_visibility: fields.message_list_visibility,
        label_list_visibility: fields.label_list_visibility,
        color: fields.color,
    };
    let out = user_json(&label);
    mb.labels.push(label);
    mb.history_id += 1;
    Ok(Json(out))
}

/// `patch` (only the fields given change) and `update` (the body replaces the label).
async fn change_label(
    emu: &Emulator,
    caller: &Caller,
    user_id: &str,
    id: &str,
    body: &[u8],
    replace: bool,
) -> Result<Json<Value>, ApiError> {
    require(caller, LABEL_WRITE)?;
    let user = mailbox_of(emu, caller, user_id)?;
    if system_label(id).is_some() {
        return Err(invalid("Invalid update request"));
    }
    let fields = label_fields(body)?;
    let mut st = emu.gmail.write();
    let mb = st.mailbox(&user);
    let at = mb
        .labels
        .iter()
        .position(|l| l.id == id)
        .ok_or_else(not_found)?;
    let name = match (&fields.name, replace) {
        (Some(n), _) => Some(check_name(Some(mb), n, Some(id))?),
        (None, true) => return Err(invalid("Invalid label name")),
        (None, false) => None,
    };
    let label = &mut mb.labels[at];
    if let Some(n) = name {
        label.name = n;
    }
    if replace || fields.message_list_visibility.is_some() {
        label.message_list_visibility = fields.message_list_visibility;
    }
    if replace || fields.label_list_visibility.is_some() {
        label.label_list_visibility = fields.label_list_visibility;
    }
    if replace || fields.color.is_some() {
        label.color = fields.color;
    }
    let out = user_json(label);
    mb.history_id += 1;
    Ok(Json(out))
}

pub(super) async fn labels_patch(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    change_label(&emu, &caller, &user_id, &id, &body, false).await
}

pub(super) async fn labels_update(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    change_label(&emu, &caller, &user_id, &id, &body, true).await
}

pub(super) async fn labels_delete(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require(&caller, LABEL_WRITE)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    if system_label(&id).is_some() {
        return Err(invalid("Invalid delete request"));
    }
    let mut st = emu.gmail.write();
    let mb = st.mailbox(&user);
    let at = mb
        .labels
        .iter()
        .position(|l| l.id == id)
        .ok_or_else(not_found)?;
    mb.labels.remove(at);
    mb.history_id += 1;
    let history = mb.history_id;
    for m in mb.messages.values_mut() {
        if m.label_ids.contains(&id) {
            m.label_ids.retain(|l| *l != id);
            m.history_id = history;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------
// users.messages.modify

fn id_list(body: &Map<String, Value>, field: &str) -> Result<Vec<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    invalid(format!("Invalid value at '{field}' (TYPE_STRING), {v}"))
                })
            })
            .collect(),
        Some(other) => Err(invalid(format!(
            "Invalid value at '{field}': expected a list of label ids, got {other}"
        ))),
    }
}

pub(super) async fn messages_modify(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((user_id, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, MESSAGE_MODIFY)?;
    let user = mailbox_of(&emu, &caller, &user_id)?;
    let Value::Object(body) = json_body(&body)? else {
        return Err(invalid("No label add or removes specified"));
    };
    let add = id_list(&body, "addLabelIds")?;
    let remove = id_list(&body, "removeLabelIds")?;
    if add.is_empty() && remove.is_empty() {
        return Err(invalid("No label add or removes specified"));
    }
    let mut st = emu.gmail.write();
    let mb = st.mailbox(&user);
    if !mb.messages.contains_key(&id) {
        return Err(not_found());
    }
    if let Some(bad) = add
        .iter()
        .chain(&remove)
        .find(|l| !label_exists(mb, l) || NOT_MODIFIABLE.contains(&l.as_str()))
    {
        return Err(invalid(format!("Invalid label: {bad}")));
    }
    mb.history_id += 1;
    let history = mb.history_id;
    let Some(m) = mb.messages.get_mut(&id) else {
        return Err(not_found());
    };
    m.label_ids.retain(|l| !remove.contains(l));
    for l in add {
        if !remove.contains(&l) && !m.label_ids.contains(&l) {
            m.label_ids.push(l);
        }
    }
    m.history_id = history;
    Ok(Json(short_json(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_has_gmails_colors_once_each() {
        assert_eq!(PALETTE.len(), 113);
        let unique: BTreeSet<&&str> = PALETTE.iter().collect();
        assert_eq!(unique.len(), PALETTE.len());
        assert!(PALETTE.iter().all(|c| {
            c.len() == 6
                && c.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
    }

    #[test]
    fn names_conflict_ignoring_case_including_system_labels() {
        let mut mb = Mailbox::default();
        mb.labels.push(UserLabel {
            id: "Label_1".into(),
            name: "Work".into(),
            message_list_visibility: None,
            label_list_visibility: None,
            color: None,
        });
        for taken in ["work", "WORK ", "inbox", "Category_Social"] {
            let e = check_name(Some(&mb), taken, None).unwrap_err();
            assert_eq!(e.status, StatusCode::CONFLICT, "{taken}");
        }
        assert_eq!(
            check_name(Some(&mb), "work", Some("Label_1")).unwrap(),
            "work"
        );
        assert_eq!(
            check_name(None, " Projects/2026 ", None).unwrap(),
            "Projects/2026"
        );
        for bad in ["", "   ", "Unread\r"] {
            let e = check_name(None, bad, None).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }
}
