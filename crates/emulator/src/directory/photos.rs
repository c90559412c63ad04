//! `users.photos.*` (`admin/directory/v1/users/{userKey}/photos/thumbnail`): get,
//! update (PUT), patch and delete, the URL that serves a stored photo, the demo
//! generator's photos, and the image helpers People's contact photos share.
//!
//! Choices where Google is undocumented or uncertain:
//! - A user without a photo answers **404 "Resource Not Found: userKey"** on get, patch
//!   (without `photoData`) and delete, the same answer as for an unknown user.
//! - Google "downsizes [every photo] to 96x96 pixels"; the emulator stores the bytes as
//!   sent and reports their real `width`/`height` (read from the image header) and the
//!   sniffed MIME type (`image/png`, ...), whatever `mimeType` the body claimed.
//! - `photoData` is decoded leniently: web-safe or standard alphabet, padding `=`, `*`,
//!   `.` or none. It must be a JPEG, PNG, GIF, BMP or TIFF (magic bytes), else 400.
//! - Every update and delete is a user change: a new photo etag, the user's
//!   `thumbnailPhotoEtag`/`thumbnailPhotoUrl` set or cleared, a new user etag and an
//!   `update` push notification.
//! - `thumbnailPhotoUrl` is `{emulator}/photos/ao/{userId}-{digest}`, served without
//!   authentication (Google's URL is also a bare, possibly temporary, link); a URL of a
//!   replaced photo answers 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose::URL_SAFE};
use orgsync_wire::directory::{KIND_USER_PHOTO, UserPhoto};
use orgsync_wire::scopes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{DirectoryState, StoredUser, authorize, etag, push};
use crate::auth::Caller;
use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::state::Emulator;

const GET_SCOPES: &[&str] = &[scopes::DIRECTORY_USER, scopes::DIRECTORY_USER_READONLY];
const WRITE_SCOPES: &[&str] = &[scopes::DIRECTORY_USER];

/// A user's photo as stored (keyed by user id in [`DirectoryState`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPhoto {
    /// The image bytes, standard base64 (keeps the persisted JSON compact).
    pub data_b64: String,
    /// Sniffed, e.g. `image/png`.
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i32>,
    /// Changes with every update, even of identical bytes.
    pub etag: String,
}

impl StoredPhoto {
    pub fn bytes(&self) -> Vec<u8> {
        STANDARD.decode(&self.data_b64).unwrap_or_default()
    }

    /// The path segment of the serving URL: `{userId}-{16 hex digits}`.
    fn url_token(&self, user_id: &str) -> String {
        format!(
            "{user_id}-{}",
            hex::encode(&Sha256::digest(self.etag.as_bytes())[..8])
        )
    }
}

// ---------------------------------------------------------------- image helpers

/// An image format the APIs accept, sniffed from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Gif,
    Bmp,
    Tiff,
}

impl ImageKind {
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Gif => "image/gif",
            ImageKind::Bmp => "image/bmp",
            ImageKind::Tiff => "image/tiff",
        }
    }
}

/// The format of `bytes`, from its magic bytes; None for anything else.
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageKind::Gif)
    } else if bytes.starts_with(b"BM") && bytes.len() >= 26 {
        Some(ImageKind::Bmp)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(ImageKind::Tiff)
    } else {
        None
    }
}

/// Width and height from the image header, when it can be read.
pub fn dimensions(kind: ImageKind, b: &[u8]) -> Option<(i32, i32)> {
    let be32 =
        |i: usize| -> Option<u32> { Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
    let le16 =
        |i: usize| -> Option<u16> { Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let be16 =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let le32 =
        |i: usize| -> Option<i32> { Some(i32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
    let (w, h) = match kind {
        ImageKind::Png if b.get(12..16) == Some(b"IHDR") => (be32(16)? as i64, be32(20)? as i64),
        ImageKind::Gif => (le16(6)? as i64, le16(8)? as i64),
        ImageKind::Bmp => (le32(18)? as i64, (le32(22)? as i64).abs()),
        ImageKind::Jpeg => {
            // Walk the segments to the first start-of-frame marker.
            let mut i = 2;
            loop {
                while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
                    i += 1;
                }
                if *b.get(i)? != 0xFF {
                    return None;
                }
                let marker = *b.get(i + 1)?;
                let len = be16(i + 2)? as usize;
                let sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
                if sof {
                    break (be16(i + 7)? as i64, be16(i + 5)? as i64);
                }
                i += 2 + len;
            }
        }
        _ => return None,
    };
    let w = i32::try_from(w).ok()?;
    let h = i32::try_from(h).ok()?;
    (w > 0 && h > 0).then_some((w, h))
}

/// Decode base64 leniently: standard or web-safe alphabet (or a mix), padding `=`,
/// Directory's `*` and `.`, or none, ASCII whitespace ignored. None when it is not
/// base64 at all.
pub fn decode_base64_lenient(s: &str) -> Option<Vec<u8>> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mut t: String = s
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    while t.ends_with(['=', '*', '.']) {
        t.pop();
    }
    ENGINE.decode(t).ok()
}

/// Web-safe base64 with `=` padding, as Directory sends `photoData`.
pub fn encode_web_safe(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for p in parts {
        for &byte in *p {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// A valid, deterministic 16x16 palette PNG (about 350 bytes): a mirrored 8x8
/// identicon drawn from `seed` (each cell 2x2 pixels), like a default avatar.
pub fn identicon_png(seed: &[u8]) -> Vec<u8> {
    const SIZE: usize = 16;
    let h = Sha256::digest(seed);
    let fg = [h[0] / 2 + 32, h[1] / 2 + 32, h[2] / 2 + 32];
    let bg = [240u8, 240, 240];
    let bits = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
    // Raw scanlines: filter byte 0, then one palette index per pixel.
    let mut raw = Vec::with_capacity(SIZE * (SIZE + 1));
    for y in 0..SIZE {
        raw.push(0u8);
        for x in 0..SIZE {
            let (cx, cy) = (x / 2, y / 2);
            let col = if cx < 4 { cx } else { 7 - cx };
            let on = bits >> (cy * 4 + col) & 1 == 1;
            raw.push(u8::from(on));
        }
    }
    // zlib stream with one stored (uncompressed) deflate block.
    let mut z = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(SIZE as u32).to_be_bytes());
    ihdr.extend_from_slice(&(SIZE as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]); // 8-bit palette, no interlace
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"PLTE", &[bg, fg].concat());
    png_chunk(&mut out, b"IDAT", &z);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

// ---------------------------------------------------------------- state

impl DirectoryState {
    /// The stored photo of user `id` (live or deleted).
    pub fn user_photo(&self, id: &str) -> Option<&StoredPhoto> {
        self.photos.get(id)
    }

    /// Store `bytes` as user `id`'s photo without any change to the user record
    /// (the generator uses this; handlers go through [`set_photo`]).
    fn store_photo(
        &mut self,
        id: &str,
        bytes: &[u8],
        kind: ImageKind,
        version: u64,
    ) -> StoredPhoto {
        let (width, height) = match dimensions(kind, bytes) {
            Some((w, h)) => (Some(w), Some(h)),
            None => (None, None),
        };
        let digest = hex::encode(&Sha256::digest(bytes)[..8]);
        let photo = StoredPhoto {
            data_b64: STANDARD.encode(bytes),
            mime_type: kind.mime().to_string(),
            width,
            height,
            etag: etag(&self.customer_id, &format!("photo:{id}:{digest}:{version}")),
        };
        self.photos.insert(id.to_string(), photo.clone());
        photo
    }
}

fn photo_url(base: &str, user_id: &str, photo: &StoredPhoto) -> String {
    format!("{base}/photos/ao/{}", photo.url_token(user_id))
}

/// Store a photo for the live user `id` and record it on the user as a user change.
fn set_photo(
    state: &mut DirectoryState,
    base: &str,
    id: &str,
    bytes: &[u8],
    kind: ImageKind,
) -> Option<StoredPhoto> {
    let mut su: StoredUser = state.users.get(id)?.clone();
    let version = state.next_version();
    let photo = state.store_photo(id, bytes, kind, version);
    su.user.thumbnail_photo_etag = Some(photo.etag.clone());
    su.user.thumbnail_photo_url = Some(photo_url(base, id, &photo));
    state.put_user(su);
    Some(photo)
}

/// Give `share` (0..=1) of the live users a deterministic identicon photo, chosen and
/// drawn from `seed` and the user id. User versions (and so etags) are unchanged: the
/// photos are part of the generated org, not changes to it.
pub fn seed_photos(state: &mut DirectoryState, share: f64, seed: u64, base: &str) {
    if share.is_nan() || share <= 0.0 {
        return;
    }
    let share = share.min(1.0);
    let ids: Vec<String> = state.users.keys().cloned().collect();
    for id in ids {
        let h = Sha256::digest(format!("photo/{seed}/{id}").as_bytes());
        let pick = u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64;
        if pick >= share {
            continue;
        }
        let png = identicon_png(&h);
        let photo = state.store_photo(&id, &png, ImageKind::Png, 0);
        if let Some(su) = state.users.get_mut(&id) {
            su.user.thumbnail_photo_etag = Some(photo.etag.clone());
            su.user.thumbnail_photo_url = Some(photo_url(base, &id, &photo));
        }
    }
}

// ---------------------------------------------------------------- handlers

fn not_found_user() -> ApiError {
    ApiError::not_found(Api::Directory, "Resource Not Found: userKey")
}

fn invalid(message: &str) -> ApiError {
    ApiError::bad_request(Api::Directory, message)
}

fn render(su: &StoredUser, p: &StoredPhoto) -> UserPhoto {
    UserPhoto {
        kind: Some(KIND_USER_PHOTO.into()),
        id: Some(su.id().to_string()),
        etag: Some(p.etag.clone()),
        primary_email: Some(su.email().to_string()),
        photo_data: Some(encode_web_safe(&p.bytes())),
        mime_type: Some(p.mime_type.clone()),
        width: p.width,
        height: p.height,
    }
}

/// `GET admin/directory/v1/users/{userKey}/photos/thumbnail`
pub async fn get(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
) -> Result<Json<UserPhoto>, ApiError> {
    authorize(&emu, &caller, GET_SCOPES, true)?;
    let state = emu.directory.read();
    let su = state.resolve_user(&user_key).ok_or_else(not_found_user)?;
    let p = state.user_photo(su.id()).ok_or_else(not_found_user)?;
    Ok(Json(render(su, p)))
}

/// The `photoData` of a body, decoded and checked; None when absent or empty.
fn body_photo(body: &Value) -> Result<Option<(Vec<u8>, ImageKind)>, ApiError> {
    let Value::Object(map) = body else {
        return Err(invalid(
            "Invalid JSON payload received. Expected an object.",
        ));
    };
    let data = match map.get("photoData") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(invalid("Invalid Input: photoData must be a string")
                .with_location("body", "photoData"));
        }
    };
    let bytes = decode_base64_lenient(data).ok_or_else(|| {
        invalid("Invalid Input: photoData is not web-safe base64")
            .with_location("body", "photoData")
    })?;
    let kind = sniff(&bytes).ok_or_else(|| {
        invalid("Invalid Input: photoData is not a JPEG, PNG, GIF, BMP or TIFF image")
            .with_location("body", "photoData")
    })?;
    Ok(Some((bytes, kind)))
}

/// `PUT` (update) and `PATCH` (patch) `admin/directory/v1/users/{userKey}/photos/thumbnail`.
/// Update requires `photoData`; a patch without it changes nothing and answers the
/// current photo (404 when there is none).
async fn write(
    emu: Arc<Emulator>,
    user_key: String,
    caller: Caller,
    body: Value,
    patch: bool,
) -> Result<Json<UserPhoto>, ApiError> {
    authorize(&emu, &caller, WRITE_SCOPES, true)?;
    let photo = body_photo(&body)?;
    let base = emu.base_url();
    let (rendered, id) = {
        let mut state = emu.directory.write();
        let id = state
            .resolve_user(&user_key)
            .ok_or_else(not_found_user)?
            .id()
            .to_string();
        let Some((bytes, kind)) = photo else {
            if !patch {
                return Err(ApiError::required(Api::Directory, "photoData")
                    .with_location("body", "photoData"));
            }
            let su = state.users.get(&id).ok_or_else(not_found_user)?;
            let p = state.user_photo(&id).ok_or_else(not_found_user)?;
            return Ok(Json(render(su, p)));
        };
        let p = set_photo(&mut state, &base, &id, &bytes, kind).ok_or_else(not_found_user)?;
        let su = state.users.get(&id).ok_or_else(not_found_user)?;
        (render(su, &p), id)
    };
    push::notify(&emu, "update", &id);
    Ok(Json(rendered))
}

pub async fn update(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
    GJson(body): GJson<Value>,
) -> Result<Json<UserPhoto>, ApiError> {
    write(emu, user_key, caller, body, false).await
}

pub async fn patch(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
    GJson(body): GJson<Value>,
) -> Result<Json<UserPhoto>, ApiError> {
    write(emu, user_key, caller, body, true).await
}

/// `DELETE admin/directory/v1/users/{userKey}/photos/thumbnail` (204).
pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    authorize(&emu, &caller, WRITE_SCOPES, true)?;
    let id = {
        let mut state = emu.directory.write();
        let mut su = state
            .resolve_user(&user_key)
            .ok_or_else(not_found_user)?
            .clone();
        let id = su.id().to_string();
        if state.photos.remove(&id).is_none() {
            return Err(not_found_user());
        }
        su.user.thumbnail_photo_etag = None;
        su.user.thumbnail_photo_url = None;
        state.put_user(su);
        id
    };
    push::notify(&emu, "update", &id);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /photos/ao/{userId}-{digest}[=s96]`: the bytes of a current photo, no auth.
pub async fn serve(State(emu): State<Arc<Emulator>>, Path(token): Path<String>) -> Response {
    let token = token.split('=').next().unwrap_or("");
    let found = token.rsplit_once('-').and_then(|(id, _)| {
        let state = emu.directory.read();
        let p = state.user_photo(id)?;
        state.users.contains_key(id).then_some(())?;
        (p.url_token(id) == token).then(|| (p.mime_type.clone(), p.bytes()))
    });
    match found {
        Some((mime, bytes)) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        None => (StatusCode::NOT_FOUND, "photo not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identicons_are_valid_small_pngs_that_differ_per_seed() {
        let a = identicon_png(b"user-1");
        let b = identicon_png(b"user-2");
        assert_ne!(a, b);
        assert_eq!(identicon_png(b"user-1"), a, "deterministic");
        assert!((200..600).contains(&a.len()), "{}", a.len());
        assert_eq!(sniff(&a), Some(ImageKind::Png));
        assert_eq!(dimensions(ImageKind::Png, &a), Some((16, 16)));
        // Every chunk's CRC checks out.
        let mut i = 8;
        let mut kinds = Vec::new();
        while i < a.len() {
            let len = u32::from_be_bytes(a[i..i + 4].try_into().unwrap()) as usize;
            let kind = &a[i + 4..i + 8];
            let data = &a[i + 8..i + 8 + len];
            let crc = u32::from_be_bytes(a[i + 8 + len..i + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32(&[kind, data]));
            kinds.push(String::from_utf8(kind.to_vec()).unwrap());
            i += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "PLTE", "IDAT", "IEND"]);
    }

    #[test]
    fn crc32_matches_the_reference_value() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
    }

    #[test]
    fn base64_is_decoded_leniently() {
        let bytes = vec![0xFBu8, 0xFF, 0xBF, 0x00, 0x10];
        let std = STANDARD.encode(&bytes);
        let web = URL_SAFE.encode(&bytes);
        assert!(std.contains('+') || std.contains('/'));
        assert!(web.contains('-') || web.contains('_'));
        for s in [
            std.clone(),
            web.clone(),
            web.trim_end_matches('=').to_string(),
            web.replace('=', "*"),
            web.replace('=', "."),
            format!(" {std}\n"),
        ] {
            assert_eq!(
                decode_base64_lenient(&s).as_deref(),
                Some(&bytes[..]),
                "{s}"
            );
        }
        assert_eq!(decode_base64_lenient("not base64!"), None);
    }

    #[test]
    fn sniffs_formats_and_reads_dimensions() {
        let gif = b"GIF89a\x20\x00\x10\x00\x80\x00\x00";
        assert_eq!(sniff(gif), Some(ImageKind::Gif));
        assert_eq!(dimensions(ImageKind::Gif, gif), Some((32, 16)));
        // SOI, APP0 (len 16), SOF0 with height 48, width 64.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(&[0; 14]);
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x30, 0x00, 0x40, 0x03]);
        assert_eq!(sniff(&jpeg), Some(ImageKind::Jpeg));
        assert_eq!(dimensions(ImageKind::Jpeg, &jpeg), Some((64, 48)));
        assert_eq!(sniff(b"hello world"), None);
        assert_eq!(sniff(b""), None);
    }
}
