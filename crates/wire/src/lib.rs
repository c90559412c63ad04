//! Wire types for the Google APIs orgsync speaks: Admin SDK Directory v1, People v1,
//! Gmail v1, Calendar v3 and the OAuth 2.0 token endpoint.
//!
//! One set of types serves both sides of the wire: the client (`orgsync-client`)
//! deserialises what Google sends, and the emulator (`orgsync-emulator`) serialises what
//! it answers. Sharing them is what keeps the two honest with each other; the Python
//! conformance suite then checks the emulator against Google's own client.
//!
//! Conventions, taken from Google's discovery documents (as shipped in
//! google-api-python-client 2.202.0; see `docs/ARCHITECTURE.md`):
//! - field names are camelCase on the wire (`#[serde(rename_all = "camelCase")]`);
//! - every field is optional on the wire, so absent fields default rather than fail;
//! - int64 values travel as JSON strings, but some Google examples send numbers, so
//!   [`int64`] reads both and writes strings;
//! - Directory types several `User` list fields as `any`: [`lenient`] reads them as
//!   typed vectors and drops items of an unexpected shape instead of failing the page;
//! - types that a client round-trips (a People `Person` on update, a Directory `User`)
//!   keep unknown fields in a flattened `extra` map so nothing is lost.

pub mod calendar;
pub mod directory;
pub mod error;
pub mod gmail;
pub mod int64;
pub mod lenient;
pub mod oauth;
pub mod people;
pub mod quota;
pub mod scopes;
