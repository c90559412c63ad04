//! Stable content hashes.
//!
//! Hashes are compared across runs and processes (they are stored in contacts'
//! `clientData` and in the app user store), so they must not depend on map iteration
//! order or on the Rust version: we hash a canonical JSON rendering (serde_json maps are
//! sorted because the `preserve_order` feature is off, and every struct serialises its
//! fields in declaration order) with SHA-256.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the canonical JSON of `value`, truncated to 32 hex chars (128 bits:
/// plenty for change detection, and short enough for a `clientData` value).
pub fn stable_hash<T: Serialize + ?Sized>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    hash_bytes(&json)
}

/// Hex SHA-256 of raw bytes, truncated to 32 hex chars.
pub fn hash_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(&digest[..16])
}

/// A short (10 hex chars, 40 bits) fingerprint, used per list entry.
pub fn short_fingerprint(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_order_does_not_change_the_hash() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":[1,2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":[1,2],"a":1}"#).unwrap();
        assert_eq!(stable_hash(&a), stable_hash(&b));
        assert_ne!(
            stable_hash(&a),
            stable_hash(&serde_json::json!({"a":2,"b":[1,2]}))
        );
        assert_eq!(stable_hash(&a).len(), 32);
        assert_eq!(short_fingerprint("x").len(), 10);
    }
}
