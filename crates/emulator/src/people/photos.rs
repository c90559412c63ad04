//! Contact photos: `people.updateContactPhoto` (`PATCH v1/{+resourceName}:updateContactPhoto`),
//! `people.deleteContactPhoto` (`DELETE v1/{+resourceName}:deleteContactPhoto`), the
//! `photos` field of a projected contact, and the URL that serves the bytes.
//!
//! Choices where Google is undocumented or uncertain:
//! - `photoBytes` must be non-empty base64 (standard or web-safe, as Google's JSON parser
//!   accepts) of a JPEG, PNG or GIF (magic bytes); anything else is 400
//!   INVALID_ARGUMENT. The discovery text names JPEG and PNG only; GIF is accepted too.
//! - Both methods answer `{}` unless `personFields` is set ("Defaults to empty if not
//!   set, which will skip the post mutate get"), then `{"person": …}`.
//! - An upload is a contact change: new etag, new update time, and the contact appears
//!   in the next incremental sync. Deleting when there is no photo changes nothing and
//!   succeeds (it is not an error to ask for the state that already holds).
//! - A contact without an uploaded photo reads as one default photo
//!   (`"default": true`), as Google's letter avatars do; an uploaded one has no
//!   `default`. Both are `primary` and sourced from the CONTACT.
//! - Photo URLs are `{emulator}/photos/cm/{token}=s100`, served without authentication
//!   like Google's `lh3.googleusercontent.com` links; the URL of a replaced or deleted
//!   photo answers 404. A `=sNN` suffix or `?sz=NN` is accepted and ignored.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orgsync_wire::people::{
    DeleteContactPhotoResponse, FieldMetadata, Photo, Source, UpdateContactPhotoRequest,
    UpdateContactPhotoResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::book::{Contact, parse_contact_name};
use super::contacts::{READ_SOURCES, check_sources, write_scope};
use super::fields::{self, FieldSet, PEOPLE_GET_DOC, project};
use super::{bad, caller_user, mutate, not_found};
use crate::auth::Caller;
use crate::directory::photos::{ImageKind, decode_base64_lenient, identicon_png, sniff};
use crate::error::ApiError;
use crate::query::Params;
use crate::state::Emulator;

/// A contact's uploaded photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactPhoto {
    /// The image bytes, standard base64.
    pub data_b64: String,
    /// Sniffed, e.g. `image/jpeg`.
    pub mime_type: String,
    /// The owning address book's [`super::UserBook::identity`] (survives renames).
    pub book: u64,
    /// The contact's change sequence when the photo was uploaded.
    pub version: u64,
}

impl ContactPhoto {
    fn token(&self, contact_id: u64) -> String {
        format!("{:x}-{contact_id:x}-{:x}", self.book, self.version)
    }
}

fn contact_source(c: &Contact) -> Option<FieldMetadata> {
    Some(FieldMetadata {
        primary: Some(true),
        source: Some(Source {
            source_type: Some("CONTACT".into()),
            id: Some(format!("{:x}", c.id)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The `photos` field of contact `c`: the uploaded photo, or Google's default one.
pub fn photos_of(c: &Contact, base: &str) -> Vec<Photo> {
    match &c.photo {
        Some(p) => vec![Photo {
            metadata: contact_source(c),
            url: Some(format!("{base}/photos/cm/{}=s100", p.token(c.id))),
            default: None,
        }],
        None => vec![Photo {
            metadata: contact_source(c),
            url: Some(format!("{base}/photos/cm/default/{:x}=s100", c.id)),
            default: Some(true),
        }],
    }
}

fn contact_id(rid: &str) -> Result<u64, ApiError> {
    let name = format!("people/{rid}");
    parse_contact_name(&name).ok_or_else(|| {
        bad(format!(
            "Resource name \"{name}\" is not a valid contact resource name."
        ))
    })
}

/// An optional `personFields`: None (skip the read-back) when absent or empty.
fn optional_fields(mask: Option<&str>) -> Result<Option<FieldSet>, ApiError> {
    match mask.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Ok(Some(FieldSet::parse_read(
            m,
            "personFields",
            PEOPLE_GET_DOC,
        )?)),
        None => Ok(None),
    }
}

/// Decode and check `photoBytes`.
fn photo_bytes(encoded: &str) -> Result<(Vec<u8>, ImageKind), ApiError> {
    if encoded.trim().is_empty() {
        return Err(bad(
            "Invalid photo_bytes: the request must contain the photo's bytes (base64).",
        ));
    }
    let bytes = decode_base64_lenient(encoded).ok_or_else(|| {
        let shown: String = encoded.chars().take(40).collect();
        bad(format!(
            "Invalid value at 'photo_bytes' (TYPE_BYTES), Base64 decoding failed for \"{shown}\""
        ))
    })?;
    match sniff(&bytes) {
        Some(kind @ (ImageKind::Jpeg | ImageKind::Png | ImageKind::Gif)) => Ok((bytes, kind)),
        _ => Err(bad(
            "Invalid photo_bytes: the photo must be a JPEG, PNG or GIF image.",
        )),
    }
}

/// `PATCH v1/people/{id}:updateContactPhoto` (dispatched from `patch_person`).
pub(crate) async fn update_contact_photo(
    emu: &Emulator,
    rid: &str,
    caller: &Caller,
    body: Value,
) -> Result<UpdateContactPhotoResponse, ApiError> {
    write_scope(caller)?;
    let user = caller_user(emu, caller)?;
    let cid = contact_id(rid)?;
    fields::validate(&body, "UpdateContactPhotoRequest", "")?;
    let req: UpdateContactPhotoRequest = serde_json::from_value(body)
        .map_err(|e| bad(format!("Invalid JSON payload received. {e}")))?;
    for s in &req.sources {
        if !READ_SOURCES.contains(&s.as_str()) {
            return Err(bad(format!(
                "Invalid value at 'sources' (type.googleapis.com/google.people.v1.ReadSourceType), \"{s}\""
            )));
        }
    }
    let fields = optional_fields(req.person_fields.as_deref())?;
    let (bytes, kind) = photo_bytes(&req.photo_bytes)?;
    let base = emu.base_url();
    let person = mutate(emu, &user, |b, ctx| {
        if !b.contacts.contains_key(&cid) {
            return Err(not_found());
        }
        let book = b.identity();
        b.touch(cid, ctx.now_ms);
        let c = b.contacts.get_mut(&cid).ok_or_else(not_found)?;
        c.photo = Some(ContactPhoto {
            data_b64: STANDARD.encode(&bytes),
            mime_type: kind.mime().to_string(),
            book,
            version: c.seq,
        });
        Ok(fields.map(|f| project(c, f, &base)))
    })
    .await?;
    Ok(UpdateContactPhotoResponse { person })
}

/// `DELETE v1/people/{id}:deleteContactPhoto` (dispatched from `delete_person`).
pub(crate) async fn delete_contact_photo(
    emu: &Emulator,
    rid: &str,
    caller: &Caller,
    params: &Params,
) -> Result<DeleteContactPhotoResponse, ApiError> {
    write_scope(caller)?;
    let user = caller_user(emu, caller)?;
    let cid = contact_id(rid)?;
    let fields = optional_fields(params.get("personFields"))?;
    check_sources(params)?;
    let base = emu.base_url();
    let person = mutate(emu, &user, |b, ctx| {
        let had = b
            .contacts
            .get_mut(&cid)
            .ok_or_else(not_found)?
            .photo
            .take()
            .is_some();
        if had {
            b.touch(cid, ctx.now_ms);
        }
        Ok(fields.map(|f| project(&b.contacts[&cid], f, &base)))
    })
    .await?;
    Ok(DeleteContactPhotoResponse { person })
}

/// `GET /photos/cm/{token}`: an uploaded photo's bytes, or a default avatar.
pub async fn serve(State(emu): State<Arc<Emulator>>, Path(token): Path<String>) -> Response {
    let token = token.split('=').next().unwrap_or("");
    if let Some(id) = token.strip_prefix("default/") {
        let png = identicon_png(format!("default/{id}").as_bytes());
        return ([(header::CONTENT_TYPE, "image/png")], png).into_response();
    }
    let found = find(&emu, token);
    match found {
        Some((mime, bytes)) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        None => (StatusCode::NOT_FOUND, "photo not found").into_response(),
    }
}

fn find(emu: &Emulator, token: &str) -> Option<(String, Vec<u8>)> {
    let mut parts = token.split('-');
    let book = u64::from_str_radix(parts.next()?, 16).ok()?;
    let id = u64::from_str_radix(parts.next()?, 16).ok()?;
    let books: Vec<_> = emu.people.users.read().values().cloned().collect();
    for b in books {
        let b = b.lock();
        if b.identity() != book {
            continue;
        }
        let p = b.contacts.get(&id)?.photo.as_ref()?;
        if p.token(id) != token {
            return None;
        }
        return Some((p.mime_type.clone(), STANDARD.decode(&p.data_b64).ok()?));
    }
    None
}
