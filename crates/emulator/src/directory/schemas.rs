//! Directory `schemas`: the customer's custom user attributes, by category
//! (<https://developers.google.com/workspace/admin/directory/reference/rest/v1/schemas>).
//!
//! Google's shapes: a schema is named by `schemaName` (letters, digits and `_`) and has
//! a generated `schemaId`; either one is its `schemaKey` in a path. `list` answers every
//! schema at once (no paging). Reading needs `admin.directory.userschema(.readonly)`.
//! The generated org defines the two schemas its users carry (`Roles`, `EmployeeInfo`).
//!
//! One leniency, on purpose: `users.insert`/`update` accept values under a schema that
//! was never defined (Google answers `400 Invalid Input: custom_schema`), so tests can
//! give a user an attribute in one step. What orgsync checks against is this registry.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use orgsync_wire::directory::{Schema, SchemaFieldSpec, Schemas};
use orgsync_wire::scopes;
use sha2::{Digest, Sha256};

use super::{DirectoryState, authorize, check_path_customer, etag};
use crate::auth::Caller;
use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::state::Emulator;

const READ: &[&str] = &[
    scopes::DIRECTORY_USERSCHEMA,
    scopes::DIRECTORY_USERSCHEMA_READONLY,
];
const WRITE: &[&str] = &[scopes::DIRECTORY_USERSCHEMA];
const KIND: &str = "admin#directory#schema";
const KIND_FIELD: &str = "admin#directory#schema#fieldspec";
const KIND_LIST: &str = "admin#directory#schemas";
const FIELD_TYPES: &[&str] = &[
    "STRING", "INT64", "BOOL", "DOUBLE", "EMAIL", "PHONE", "DATE",
];

fn not_found() -> ApiError {
    ApiError::not_found(Api::Directory, "Resource Not Found: schemaKey")
}

fn id_of(customer: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{customer}/{name}").as_bytes());
    base64::engine::general_purpose::URL_SAFE.encode(&digest[..16])
}

impl DirectoryState {
    /// Define (or replace) a custom schema, as an admin does in the Admin console; ids,
    /// kinds and etags are filled in. For tests and the generated org.
    pub fn define_schema(&mut self, mut schema: Schema) {
        let customer = self.customer_id.clone();
        schema.kind = Some(KIND.into());
        schema.schema_id = Some(id_of(&customer, &schema.schema_name));
        for f in &mut schema.fields {
            f.kind = Some(KIND_FIELD.into());
            f.field_id = Some(id_of(
                &customer,
                &format!("{}.{}", schema.schema_name, f.field_name),
            ));
            f.read_access_type
                .get_or_insert_with(|| "ALL_DOMAIN_USERS".into());
            f.multi_valued.get_or_insert(false);
            f.etag = Some(etag(&customer, &format!("field:{}", f.field_name)));
        }
        schema.etag = Some(etag(
            &customer,
            &format!(
                "schema:{}",
                serde_json::to_string(&schema.fields).unwrap_or_default()
            ),
        ));
        self.schemas.insert(schema.schema_name.clone(), schema);
    }

    fn schema_by_key(&self, key: &str) -> Option<&Schema> {
        self.schemas.get(key).or_else(|| {
            self.schemas
                .values()
                .find(|s| s.schema_id.as_deref() == Some(key))
        })
    }
}

/// A schema with these `(field, type)` pairs (for the generated org and tests).
pub fn schema(name: &str, fields: &[(&str, &str)]) -> Schema {
    Schema {
        schema_name: name.into(),
        display_name: Some(name.into()),
        fields: fields
            .iter()
            .map(|(f, t)| SchemaFieldSpec {
                field_name: (*f).into(),
                field_type: (*t).into(),
                display_name: Some((*f).into()),
                ..SchemaFieldSpec::default()
            })
            .collect(),
        ..Schema::default()
    }
}

/// `GET admin/directory/v1/customer/{customerId}/schemas`
pub async fn list(
    State(emu): State<Arc<Emulator>>,
    Path(customer): Path<String>,
    caller: Caller,
) -> Result<Json<Schemas>, ApiError> {
    authorize(&emu, &caller, READ, true)?;
    let state = emu.directory.read();
    check_path_customer(&state, &customer)?;
    Ok(Json(Schemas {
        kind: Some(KIND_LIST.into()),
        etag: Some(etag(
            &state.customer_id,
            &format!("schemas:{}", state.schemas.len()),
        )),
        schemas: state.schemas.values().cloned().collect(),
    }))
}

/// `GET admin/directory/v1/customer/{customerId}/schemas/{schemaKey}`
pub async fn get(
    State(emu): State<Arc<Emulator>>,
    Path((customer, key)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Schema>, ApiError> {
    authorize(&emu, &caller, READ, true)?;
    let state = emu.directory.read();
    check_path_customer(&state, &customer)?;
    state
        .schema_by_key(&key)
        .cloned()
        .map(Json)
        .ok_or_else(not_found)
}

/// `POST admin/directory/v1/customer/{customerId}/schemas`
pub async fn insert(
    State(emu): State<Arc<Emulator>>,
    Path(customer): Path<String>,
    caller: Caller,
    GJson(body): GJson<Schema>,
) -> Result<Json<Schema>, ApiError> {
    authorize(&emu, &caller, WRITE, true)?;
    let name = body.schema_name.trim();
    if name.is_empty() {
        return Err(ApiError::required(Api::Directory, "schemaName"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ApiError::bad_request(
            Api::Directory,
            "Invalid Input: schemaName",
        ));
    }
    if body.fields.is_empty() {
        return Err(ApiError::required(Api::Directory, "fields"));
    }
    for f in &body.fields {
        if f.field_name.trim().is_empty() {
            return Err(ApiError::required(Api::Directory, "fieldName"));
        }
        if !FIELD_TYPES.contains(&f.field_type.as_str()) {
            return Err(ApiError::bad_request(
                Api::Directory,
                "Invalid Input: fieldType",
            ));
        }
    }
    let mut state = emu.directory.write();
    check_path_customer(&state, &customer)?;
    if state.schemas.contains_key(name) {
        return Err(ApiError::new(
            Api::Directory,
            StatusCode::CONFLICT,
            "duplicate",
            "Entity Already Exists.",
        ));
    }
    let name = name.to_string();
    state.define_schema(Schema {
        schema_name: name.clone(),
        ..body
    });
    Ok(Json(state.schemas[&name].clone()))
}

/// `DELETE admin/directory/v1/customer/{customerId}/schemas/{schemaKey}`
pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    Path((customer, key)): Path<(String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    authorize(&emu, &caller, WRITE, true)?;
    let mut state = emu.directory.write();
    check_path_customer(&state, &customer)?;
    let name = state
        .schema_by_key(&key)
        .map(|s| s.schema_name.clone())
        .ok_or_else(not_found)?;
    state.schemas.remove(&name);
    Ok(StatusCode::NO_CONTENT)
}
