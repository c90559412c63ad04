//! Page and sync tokens. Both are opaque to clients: base64url of a small JSON payload
//! plus a checksum, so a corrupted or hand-made token is a clean 400 rather than a
//! misread. Page tokens are bound to the request's other parameters (Google: "all other
//! request parameters must match the first call"); sync tokens to the user, the
//! request's field mask, and the book's sync epoch (changed to expire them all).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bad;
use crate::error::ApiError;

const TOKEN_SALT: &[u8] = b"orgsync-emulator-people-v1";

fn checksum(payload: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(TOKEN_SALT);
    h.update(payload);
    let d = h.finalize();
    d[..8].try_into().expect("8 bytes")
}

pub fn encode<T: Serialize>(prefix: &str, value: &T) -> String {
    let payload = serde_json::to_vec(value).unwrap_or_default();
    let mut bytes = checksum(&payload).to_vec();
    bytes.extend_from_slice(&payload);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn decode<T: for<'de> Deserialize<'de>>(prefix: &str, token: &str) -> Option<T> {
    let body = token.strip_prefix(prefix)?;
    let bytes = URL_SAFE_NO_PAD.decode(body.trim_end_matches('=')).ok()?;
    if bytes.len() < 8 {
        return None;
    }
    let (sum, payload) = bytes.split_at(8);
    if sum != checksum(payload) {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// A hash of the values a continuation must repeat.
pub fn binding(parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cursor {
    /// After (ascending) or before (descending) this change sequence.
    Seq(u64),
    /// After this (sort key, contact id).
    Key(String, u64),
    /// Offset into a small list (contact groups).
    Offset(usize),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageToken {
    /// Binding of the request's other parameters.
    pub b: u64,
    /// Change sequence when the listing started (the next sync token's position).
    pub s: u64,
    /// When the full sync that started this chain happened (ms).
    pub t: i64,
    pub c: Cursor,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncToken {
    /// Binding of user and field mask.
    pub b: u64,
    /// Sync epoch of the book.
    pub e: u64,
    /// Changes after this sequence are returned.
    pub s: u64,
    /// When the full sync that started the chain happened (ms).
    pub t: i64,
}

pub fn decode_page(token: &str, expected_binding: u64) -> Result<PageToken, ApiError> {
    let p: PageToken = decode("P", token)
        .ok_or_else(|| bad("Page token is invalid. Please retry the request without it."))?;
    if p.b != expected_binding {
        return Err(bad(
            "Parameters in the request do not match those of the request that returned the page token; all other request parameters must match the first call.",
        ));
    }
    Ok(p)
}

pub fn decode_sync(token: &str) -> Result<SyncToken, ApiError> {
    decode("S", token).ok_or_else(|| bad("Sync token is invalid."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let t = SyncToken {
            b: 1,
            e: 2,
            s: 3,
            t: 4,
        };
        let s = encode("S", &t);
        let back: SyncToken = decode("S", &s).unwrap();
        assert_eq!((back.b, back.e, back.s, back.t), (1, 2, 3, 4));
        let mut tampered = s.clone();
        tampered.pop();
        tampered.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert!(decode::<SyncToken>("S", &tampered).is_none());
        assert!(decode::<SyncToken>("P", &s).is_none());
        assert!(decode::<SyncToken>("S", "S!!!").is_none());
        assert!(
            decode_page(
                &encode(
                    "P",
                    &PageToken {
                        b: 9,
                        s: 0,
                        t: 0,
                        c: Cursor::Seq(0)
                    }
                ),
                8
            )
            .is_err()
        );
    }
}
