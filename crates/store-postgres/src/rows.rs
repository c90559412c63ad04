//! Decoding PostgreSQL rows into domain types. Column lists live here next to their decoders so
//! a query and its decoder cannot disagree.

use orgsync_store::time::{from_ms, opt_from_ms};
use orgsync_store::{
    AppUser, Channel, ChannelToken, ContactsUserState, Job, JobState, Lease, OutboxEntry,
    OutboxKind, Phone, StoreError, UserProfile,
};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::db_err;

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

macro_rules! user_cols {
    () => {
        "directory_id, primary_email, given_name, family_name, display_name, is_admin, \
         suspended, archived, org_unit_path, department, title, phones, custom_schemas, roles, \
         active, directory_etag, content_hash, created_at, updated_at, deactivated_at, \
         last_synced_at"
    };
}
macro_rules! outbox_cols {
    () => {
        "seq, idempotency_key, kind, directory_id, payload, created_at, attempts, \
         next_attempt_at, leased_until, delivered_at, last_error"
    };
}
macro_rules! job_cols {
    () => {
        "id, kind, directory_user_id, user_email, payload, dedupe_key, state, attempts, run_at, \
         locked_by, locked_until, last_error, created_at, updated_at"
    };
}
macro_rules! channel_cols {
    () => {
        "id, resource_id, resource_uri, event, token, address, expiration, created_at, \
         stopped_at, replaced_by"
    };
}
pub(crate) use {channel_cols, job_cols, outbox_cols, user_cols};

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col).map_err(db_err)
}

fn json<T: serde::de::DeserializeOwned>(row: &PgRow, col: &'static str) -> Result<T> {
    let value: serde_json::Value = get(row, col)?;
    serde_json::from_value(value).map_err(|e| StoreError::decode(col, e))
}

pub(crate) fn user(row: &PgRow) -> Result<AppUser> {
    let phones: Vec<Phone> = json(row, "phones")?;
    Ok(AppUser {
        profile: UserProfile {
            directory_id: get(row, "directory_id")?,
            primary_email: get(row, "primary_email")?,
            given_name: get(row, "given_name")?,
            family_name: get(row, "family_name")?,
            display_name: get(row, "display_name")?,
            is_admin: get(row, "is_admin")?,
            suspended: get(row, "suspended")?,
            archived: get(row, "archived")?,
            org_unit_path: get(row, "org_unit_path")?,
            department: get(row, "department")?,
            title: get(row, "title")?,
            phones,
            custom_schemas: json(row, "custom_schemas")?,
            roles: json(row, "roles")?,
            active: get(row, "active")?,
            directory_etag: get(row, "directory_etag")?,
        },
        content_hash: get(row, "content_hash")?,
        created_at: from_ms(get(row, "created_at")?),
        updated_at: from_ms(get(row, "updated_at")?),
        deactivated_at: opt_from_ms(get(row, "deactivated_at")?),
        last_synced_at: from_ms(get(row, "last_synced_at")?),
    })
}

pub(crate) fn outbox(row: &PgRow) -> Result<OutboxEntry> {
    let kind: String = get(row, "kind")?;
    Ok(OutboxEntry {
        seq: get(row, "seq")?,
        idempotency_key: get(row, "idempotency_key")?,
        kind: kind
            .parse::<OutboxKind>()
            .map_err(|e| StoreError::decode("outbox kind", e))?,
        directory_id: get(row, "directory_id")?,
        payload: json(row, "payload")?,
        created_at: from_ms(get(row, "created_at")?),
        attempts: get(row, "attempts")?,
        next_attempt_at: from_ms(get(row, "next_attempt_at")?),
        leased_until: opt_from_ms(get(row, "leased_until")?),
        delivered_at: opt_from_ms(get(row, "delivered_at")?),
        last_error: get(row, "last_error")?,
    })
}

pub(crate) fn job(row: &PgRow) -> Result<Job> {
    let state: String = get(row, "state")?;
    Ok(Job {
        id: get(row, "id")?,
        kind: get(row, "kind")?,
        directory_user_id: get(row, "directory_user_id")?,
        user_email: get(row, "user_email")?,
        payload: json(row, "payload")?,
        dedupe_key: get(row, "dedupe_key")?,
        state: state
            .parse::<JobState>()
            .map_err(|e| StoreError::decode("job state", e))?,
        attempts: get(row, "attempts")?,
        run_at: from_ms(get(row, "run_at")?),
        locked_by: get(row, "locked_by")?,
        locked_until: opt_from_ms(get(row, "locked_until")?),
        last_error: get(row, "last_error")?,
        created_at: from_ms(get(row, "created_at")?),
        updated_at: from_ms(get(row, "updated_at")?),
    })
}

pub(crate) fn channel(row: &PgRow) -> Result<Channel> {
    Ok(Channel {
        id: get(row, "id")?,
        resource_id: get(row, "resource_id")?,
        resource_uri: get(row, "resource_uri")?,
        event: get(row, "event")?,
        token: ChannelToken::new(get::<String>(row, "token")?),
        address: get(row, "address")?,
        expiration: from_ms(get(row, "expiration")?),
        created_at: from_ms(get(row, "created_at")?),
        stopped_at: opt_from_ms(get(row, "stopped_at")?),
        replaced_by: get(row, "replaced_by")?,
    })
}

pub(crate) fn contacts_state(row: &PgRow) -> Result<ContactsUserState> {
    Ok(ContactsUserState {
        target_id: get(row, "target_id")?,
        target_email: get(row, "target_email")?,
        sync_token: get(row, "sync_token")?,
        view_hash: get(row, "view_hash")?,
        managed_group: get(row, "managed_group")?,
        updated_at: from_ms(get(row, "updated_at")?),
    })
}

pub(crate) fn lease(row: &PgRow) -> Result<Lease> {
    Ok(Lease {
        name: get(row, "name")?,
        holder: get(row, "holder")?,
        acquired_at: from_ms(get(row, "acquired_at")?),
        expires_at: from_ms(get(row, "expires_at")?),
    })
}
