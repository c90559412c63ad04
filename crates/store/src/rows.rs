//! Row mapping shared by the backends. **For backend crates, not for callers of [`Store`].**
//!
//! Both backends store the same tables with the same columns; they differ only in how a
//! value comes out of a driver row (SQLite keeps JSON and UUIDs as TEXT, PostgreSQL as
//! JSONB and UUID, and their integer and boolean types decode differently). So a backend
//! implements [`RowAccess`], the typed extraction of one column, and everything above it
//! lives here once: which columns a query selects, how each domain type is built from
//! them, enums stored as text, timestamps stored as Unix milliseconds (see [`crate::time`]),
//! JSON columns, and the errors that name the column a corrupt value came from.
//!
//! The column lists are macros so that backends can `concat!` them into `'static` SQL;
//! they sit next to the decoders that read those columns, so the two cannot disagree.
//!
//! [`Store`]: crate::Store

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::time::{from_ms, opt_from_ms};
use crate::{
    AppUser, Channel, ChannelToken, ContactsUserState, Job, JobState, Lease, OutboxEntry,
    OutboxKind, Result, StoreError, UserProfile,
};

/// The `app_users` columns [`user`] reads.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_user_cols {
    () => {
        "directory_id, primary_email, given_name, family_name, display_name, is_admin, \
         suspended, archived, org_unit_path, department, title, phones, custom_schemas, roles, \
         active, directory_etag, content_hash, created_at, updated_at, deactivated_at, \
         last_synced_at"
    };
}

/// The `outbox` columns [`outbox`] reads.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_outbox_cols {
    () => {
        "seq, idempotency_key, kind, directory_id, payload, created_at, attempts, \
         next_attempt_at, leased_until, delivered_at, last_error"
    };
}

/// The `jobs` columns [`job`] reads.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_job_cols {
    () => {
        "id, kind, directory_user_id, user_email, payload, dedupe_key, state, attempts, run_at, \
         locked_by, locked_until, last_error, created_at, updated_at"
    };
}

/// The `channels` columns [`channel`] reads.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_channel_cols {
    () => {
        "id, resource_id, resource_uri, event, token, address, expiration, created_at, \
         stopped_at, replaced_by"
    };
}

/// The `contacts_user_state` columns [`contacts_state`] reads.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_contacts_state_cols {
    () => {
        "target_id, target_email, sync_token, view_hash, managed_group, updated_at"
    };
}

pub use crate::{
    __store_channel_cols as channel_cols, __store_contacts_state_cols as contacts_state_cols,
    __store_job_cols as job_cols, __store_outbox_cols as outbox_cols,
    __store_user_cols as user_cols,
};

/// Typed extraction of one column from a driver row: the only part of row mapping that
/// differs between backends. Each method fails with the backend's error when the column
/// is missing or has another type.
pub trait RowAccess {
    fn text(&self, col: &'static str) -> Result<String>;
    fn opt_text(&self, col: &'static str) -> Result<Option<String>>;
    fn boolean(&self, col: &'static str) -> Result<bool>;
    fn int32(&self, col: &'static str) -> Result<i32>;
    fn int64(&self, col: &'static str) -> Result<i64>;
    fn opt_int64(&self, col: &'static str) -> Result<Option<i64>>;
    /// A JSON column, decoded into `T` (use [`json_from_text`] or [`json_from_value`]).
    fn json<T: DeserializeOwned>(&self, col: &'static str) -> Result<T>;
    fn uuid(&self, col: &'static str) -> Result<Uuid>;

    /// An instant stored as Unix milliseconds.
    fn time(&self, col: &'static str) -> Result<chrono::DateTime<chrono::Utc>> {
        self.int64(col).map(from_ms)
    }

    /// An optional instant stored as Unix milliseconds.
    fn opt_time(&self, col: &'static str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        self.opt_int64(col).map(opt_from_ms)
    }
}

/// Serialise a value for a JSON column stored as TEXT.
pub fn json_text(v: &impl Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(unserializable)
}

/// Serialise a value for a JSON column stored natively (JSONB).
pub fn json_value(v: &impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(unserializable)
}

fn unserializable(e: serde_json::Error) -> StoreError {
    StoreError::InvalidArgument(format!("unserializable JSON: {e}"))
}

/// Decode a JSON column read as TEXT; a failure names the column.
pub fn json_from_text<T: DeserializeOwned>(col: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::decode(col, e))
}

/// Decode a JSON column read as a JSON value; a failure names the column.
pub fn json_from_value<T: DeserializeOwned>(
    col: &'static str,
    value: serde_json::Value,
) -> Result<T> {
    serde_json::from_value(value).map_err(|e| StoreError::decode(col, e))
}

/// Parse a UUID column read as TEXT; a failure names the column.
pub fn uuid_from_text(col: &'static str, text: &str) -> Result<Uuid> {
    text.parse().map_err(|e| StoreError::decode(col, e))
}

/// An `app_users` row ([`user_cols`]).
pub fn user(row: &impl RowAccess) -> Result<AppUser> {
    Ok(AppUser {
        profile: UserProfile {
            directory_id: row.text("directory_id")?,
            primary_email: row.text("primary_email")?,
            given_name: row.text("given_name")?,
            family_name: row.text("family_name")?,
            display_name: row.text("display_name")?,
            is_admin: row.boolean("is_admin")?,
            suspended: row.boolean("suspended")?,
            archived: row.boolean("archived")?,
            org_unit_path: row.text("org_unit_path")?,
            department: row.opt_text("department")?,
            title: row.opt_text("title")?,
            phones: row.json("phones")?,
            custom_schemas: row.json("custom_schemas")?,
            roles: row.json("roles")?,
            active: row.boolean("active")?,
            directory_etag: row.opt_text("directory_etag")?,
        },
        content_hash: row.text("content_hash")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        deactivated_at: row.opt_time("deactivated_at")?,
        last_synced_at: row.time("last_synced_at")?,
    })
}

/// An `outbox` row ([`outbox_cols`]).
pub fn outbox(row: &impl RowAccess) -> Result<OutboxEntry> {
    Ok(OutboxEntry {
        seq: row.int64("seq")?,
        idempotency_key: row.uuid("idempotency_key")?,
        kind: row
            .text("kind")?
            .parse::<OutboxKind>()
            .map_err(|e| StoreError::decode("outbox kind", e))?,
        directory_id: row.text("directory_id")?,
        payload: row.json("payload")?,
        created_at: row.time("created_at")?,
        attempts: row.int32("attempts")?,
        next_attempt_at: row.time("next_attempt_at")?,
        leased_until: row.opt_time("leased_until")?,
        delivered_at: row.opt_time("delivered_at")?,
        last_error: row.opt_text("last_error")?,
    })
}

/// A `jobs` row ([`job_cols`]).
pub fn job(row: &impl RowAccess) -> Result<Job> {
    Ok(Job {
        id: row.int64("id")?,
        kind: row.text("kind")?,
        directory_user_id: row.opt_text("directory_user_id")?,
        user_email: row.opt_text("user_email")?,
        payload: row.json("payload")?,
        dedupe_key: row.opt_text("dedupe_key")?,
        state: row
            .text("state")?
            .parse::<JobState>()
            .map_err(|e| StoreError::decode("job state", e))?,
        attempts: row.int32("attempts")?,
        run_at: row.time("run_at")?,
        locked_by: row.opt_text("locked_by")?,
        locked_until: row.opt_time("locked_until")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A `channels` row ([`channel_cols`]).
pub fn channel(row: &impl RowAccess) -> Result<Channel> {
    Ok(Channel {
        id: row.text("id")?,
        resource_id: row.text("resource_id")?,
        resource_uri: row.opt_text("resource_uri")?,
        event: row.text("event")?,
        token: ChannelToken::new(row.text("token")?),
        address: row.text("address")?,
        expiration: row.time("expiration")?,
        created_at: row.time("created_at")?,
        stopped_at: row.opt_time("stopped_at")?,
        replaced_by: row.opt_text("replaced_by")?,
    })
}

/// A `contacts_user_state` row ([`contacts_state_cols`]).
pub fn contacts_state(row: &impl RowAccess) -> Result<ContactsUserState> {
    Ok(ContactsUserState {
        target_id: row.text("target_id")?,
        target_email: row.text("target_email")?,
        sync_token: row.opt_text("sync_token")?,
        view_hash: row.opt_text("view_hash")?,
        managed_group: row.opt_text("managed_group")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A `leases` row (`name, holder, acquired_at, expires_at`).
pub fn lease(row: &impl RowAccess) -> Result<Lease> {
    Ok(Lease {
        name: row.text("name")?,
        holder: row.text("holder")?,
        acquired_at: row.time("acquired_at")?,
        expires_at: row.time("expires_at")?,
    })
}

/// A `sync_state` row (`key, value`).
pub fn key_value(row: &impl RowAccess) -> Result<(String, String)> {
    Ok((row.text("key")?, row.text("value")?))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::{Value, json};

    use super::*;
    use crate::time::to_ms;

    /// A row held as JSON values, storing JSON and UUIDs as TEXT like SQLite, that records
    /// which columns were read.
    #[derive(Default)]
    struct FakeRow {
        cols: BTreeMap<&'static str, Value>,
        read: RefCell<BTreeSet<&'static str>>,
    }

    impl FakeRow {
        fn new(cols: &[(&'static str, Value)]) -> Self {
            FakeRow {
                cols: cols.iter().cloned().collect(),
                read: RefCell::default(),
            }
        }
        fn get(&self, col: &'static str) -> Result<&Value> {
            self.read.borrow_mut().insert(col);
            self.cols
                .get(col)
                .ok_or_else(|| StoreError::decode(col, "no such column"))
        }
        fn typed<T: DeserializeOwned>(&self, col: &'static str) -> Result<T> {
            json_from_value(col, self.get(col)?.clone())
        }
    }

    impl RowAccess for FakeRow {
        fn text(&self, col: &'static str) -> Result<String> {
            self.typed(col)
        }
        fn opt_text(&self, col: &'static str) -> Result<Option<String>> {
            self.typed(col)
        }
        fn boolean(&self, col: &'static str) -> Result<bool> {
            self.typed(col)
        }
        fn int32(&self, col: &'static str) -> Result<i32> {
            self.typed(col)
        }
        fn int64(&self, col: &'static str) -> Result<i64> {
            self.typed(col)
        }
        fn opt_int64(&self, col: &'static str) -> Result<Option<i64>> {
            self.typed(col)
        }
        fn json<T: DeserializeOwned>(&self, col: &'static str) -> Result<T> {
            json_from_text(col, &self.text(col)?)
        }
        fn uuid(&self, col: &'static str) -> Result<Uuid> {
            uuid_from_text(col, &self.text(col)?)
        }
    }

    fn list(cols: &str) -> BTreeSet<&str> {
        cols.split(',').map(str::trim).collect()
    }

    fn job_row(state: &str) -> FakeRow {
        FakeRow::new(&[
            ("id", json!(7)),
            ("kind", json!("contacts.sync")),
            ("directory_user_id", json!("u1")),
            ("user_email", Value::Null),
            ("payload", json!(r#"{"full":true}"#)),
            ("dedupe_key", json!("k")),
            ("state", json!(state)),
            ("attempts", json!(2)),
            ("run_at", json!(1_700_000_000_123_i64)),
            ("locked_by", Value::Null),
            ("locked_until", Value::Null),
            ("last_error", json!("boom")),
            ("created_at", json!(0)),
            ("updated_at", json!(-1)),
        ])
    }

    #[test]
    fn job_decodes_enum_json_and_timestamps() {
        let job = job(&job_row("pending")).unwrap();
        assert_eq!(job.id, 7);
        assert_eq!(job.state, JobState::Pending);
        assert_eq!(job.payload, json!({"full": true}));
        assert_eq!(to_ms(job.run_at), 1_700_000_000_123);
        assert_eq!(to_ms(job.updated_at), -1);
        assert_eq!(job.user_email, None);
        assert_eq!(job.last_error.as_deref(), Some("boom"));
    }

    #[test]
    fn corrupt_values_name_what_was_wrong() {
        let err = job(&job_row("sleeping")).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Decode {
                    what: "job state",
                    ..
                }
            ),
            "{err:?}"
        );

        let mut row = job_row("pending");
        row.cols.insert("payload", json!("{not json"));
        let err = job(&row).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Decode {
                    what: "payload",
                    ..
                }
            ),
            "{err:?}"
        );

        let row = FakeRow::new(&[("idempotency_key", json!("not-a-uuid"))]);
        let err = row.uuid("idempotency_key").unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Decode {
                    what: "idempotency_key",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn decoders_read_exactly_their_column_lists() {
        /// A row with every listed column: integers for instants and counters, text
        /// otherwise, then the table's own values.
        fn check(
            cols: &'static str,
            own: &[(&'static str, Value)],
            decode: impl Fn(&FakeRow) -> Result<()>,
        ) {
            let mut row = FakeRow::default();
            for c in cols.split(',').map(str::trim) {
                let int = c.ends_with("_at") || c.ends_with("_until") || c == "expiration";
                row.cols.insert(c, if int { json!(5) } else { json!("x") });
            }
            row.cols.extend(own.iter().cloned());
            decode(&row).unwrap_or_else(|e| panic!("{cols}: {e}"));
            assert_eq!(row.read.into_inner(), list(cols), "decoder vs column list");
        }
        let flags = ["is_admin", "suspended", "archived", "active"].map(|c| (c, json!(true)));
        let mut user_own = flags.to_vec();
        user_own.extend([
            ("phones", json!("[]")),
            ("roles", json!("[]")),
            ("custom_schemas", json!("{}")),
        ]);
        check(user_cols!(), &user_own, |r| user(r).map(drop));
        check(
            outbox_cols!(),
            &[
                ("seq", json!(1)),
                ("attempts", json!(0)),
                ("payload", json!("{}")),
                ("kind", json!(OutboxKind::Created.as_str())),
                ("idempotency_key", json!(Uuid::nil().to_string())),
            ],
            |r| outbox(r).map(drop),
        );
        check(
            job_cols!(),
            &[
                ("id", json!(1)),
                ("attempts", json!(0)),
                ("payload", json!("{}")),
                ("state", json!("running")),
            ],
            |r| job(r).map(drop),
        );
        check(channel_cols!(), &[], |r| channel(r).map(drop));
        check(contacts_state_cols!(), &[], |r| contacts_state(r).map(drop));
    }

    #[test]
    fn json_columns_round_trip_in_both_encodings() {
        let phones = vec![crate::Phone {
            value: "+1 555".into(),
            kind: "work".into(),
        }];
        let text = json_text(&phones).unwrap();
        let back: Vec<crate::Phone> = json_from_text("phones", &text).unwrap();
        assert_eq!(back, phones);
        let value = json_value(&phones).unwrap();
        let back: Vec<crate::Phone> = json_from_value("phones", value).unwrap();
        assert_eq!(back, phones);
    }
}
