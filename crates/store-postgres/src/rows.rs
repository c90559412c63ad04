//! Reading PostgreSQL rows: the typed column extraction ([`orgsync_store::rows::RowAccess`]);
//! the decoders and column lists are shared with the other backends in
//! [`orgsync_store::rows`]. PostgreSQL keeps JSON as JSONB and UUIDs as UUID.

use orgsync_store::rows::{self as shared, RowAccess};
use orgsync_store::{AppUser, Channel, ContactsUserState, Job, Lease, OutboxEntry, StoreError};
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::db_err;

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

pub(crate) use orgsync_store::rows::{
    channel_cols, contacts_state_cols, job_cols, outbox_cols, user_cols,
};

/// A PostgreSQL row seen through [`RowAccess`].
struct Pg<'r>(&'r PgRow);

impl Pg<'_> {
    fn get<'r, T>(&'r self, col: &str) -> Result<T>
    where
        T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        self.0.try_get(col).map_err(db_err)
    }
}

impl RowAccess for Pg<'_> {
    fn text(&self, col: &'static str) -> Result<String> {
        self.get(col)
    }
    fn opt_text(&self, col: &'static str) -> Result<Option<String>> {
        self.get(col)
    }
    fn boolean(&self, col: &'static str) -> Result<bool> {
        self.get(col)
    }
    fn int32(&self, col: &'static str) -> Result<i32> {
        self.get(col)
    }
    fn int64(&self, col: &'static str) -> Result<i64> {
        self.get(col)
    }
    fn opt_int64(&self, col: &'static str) -> Result<Option<i64>> {
        self.get(col)
    }
    fn json<T: DeserializeOwned>(&self, col: &'static str) -> Result<T> {
        shared::json_from_value(col, self.get::<serde_json::Value>(col)?)
    }
    fn uuid(&self, col: &'static str) -> Result<Uuid> {
        self.get(col)
    }
}

pub(crate) fn user(row: &PgRow) -> Result<AppUser> {
    shared::user(&Pg(row))
}

pub(crate) fn outbox(row: &PgRow) -> Result<OutboxEntry> {
    shared::outbox(&Pg(row))
}

pub(crate) fn job(row: &PgRow) -> Result<Job> {
    shared::job(&Pg(row))
}

pub(crate) fn channel(row: &PgRow) -> Result<Channel> {
    shared::channel(&Pg(row))
}

pub(crate) fn contacts_state(row: &PgRow) -> Result<ContactsUserState> {
    shared::contacts_state(&Pg(row))
}

pub(crate) fn lease(row: &PgRow) -> Result<Lease> {
    shared::lease(&Pg(row))
}

pub(crate) fn key_value(row: &PgRow) -> Result<(String, String)> {
    shared::key_value(&Pg(row))
}
