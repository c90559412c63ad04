//! Reading SQLite rows: the typed column extraction ([`orgsync_store::rows::RowAccess`]);
//! the decoders and column lists are shared with the other backends in
//! [`orgsync_store::rows`]. SQLite keeps JSON and UUIDs as TEXT.

use orgsync_store::rows::{self as shared, RowAccess};
use orgsync_store::{AppUser, Channel, ContactsUserState, Job, Lease, OutboxEntry, StoreError};
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::db_err;

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

pub(crate) use orgsync_store::rows::{
    channel_cols, contacts_state_cols, job_cols, outbox_cols, user_cols,
};

/// A SQLite row seen through [`RowAccess`].
struct Sqlite<'r>(&'r SqliteRow);

impl Sqlite<'_> {
    fn get<'r, T>(&'r self, col: &str) -> Result<T>
    where
        T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        self.0.try_get(col).map_err(db_err)
    }
}

impl RowAccess for Sqlite<'_> {
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
        shared::json_from_text(col, &self.get::<String>(col)?)
    }
    fn uuid(&self, col: &'static str) -> Result<Uuid> {
        shared::uuid_from_text(col, &self.get::<String>(col)?)
    }
}

pub(crate) fn user(row: &SqliteRow) -> Result<AppUser> {
    shared::user(&Sqlite(row))
}

pub(crate) fn outbox(row: &SqliteRow) -> Result<OutboxEntry> {
    shared::outbox(&Sqlite(row))
}

pub(crate) fn job(row: &SqliteRow) -> Result<Job> {
    shared::job(&Sqlite(row))
}

pub(crate) fn channel(row: &SqliteRow) -> Result<Channel> {
    shared::channel(&Sqlite(row))
}

pub(crate) fn contacts_state(row: &SqliteRow) -> Result<ContactsUserState> {
    shared::contacts_state(&Sqlite(row))
}

pub(crate) fn lease(row: &SqliteRow) -> Result<Lease> {
    shared::lease(&Sqlite(row))
}

pub(crate) fn key_value(row: &SqliteRow) -> Result<(String, String)> {
    shared::key_value(&Sqlite(row))
}
