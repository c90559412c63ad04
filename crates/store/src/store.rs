//! The `Store` trait: everything orgsync persists, behind object-safe async interfaces so
//! the daemon can hold `Arc<dyn Store>` and the same conformance suite runs on every
//! backend. `Store` joins one trait per role (users, outbox, sync state, channels, jobs,
//! leases, housekeeping), as lldap splits its backend handler: a part of the program that
//! needs one role can say so, and each role's SQL sits in its own file of `sql/`.
//! Calling a role's methods on a concrete store needs the role in scope: `use
//! orgsync_store::prelude::*;` (on `dyn Store` and on a `S: Store` parameter they resolve
//! without it).
//!
//! Time-dependent operations take `now` from the caller instead of reading a clock: the
//! daemon passes its (possibly simulated) clock, tests move time without sleeping, and
//! SQLite and PostgreSQL agree on what "expired" means.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::channels::{Channel, ReceivedNotification};
use crate::error::Result;
use crate::jobs::{Enqueued, Job, NewJob, QueueSummary};
use crate::outbox::OutboxEntry;
use crate::state::{ContactsUserState, Lease};
use crate::users::{AppUser, ApplyReport, ChangeOutcome, UserChange, UserProfile, UserQuery};

/// The database itself: name, health, schema, shutdown.
#[async_trait]
pub trait HousekeepingStore: Send + Sync + 'static {
    /// A short backend name (`"sqlite"`, `"postgres"`) for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Round trip to the database.
    async fn ping(&self) -> Result<()>;

    /// Apply any pending embedded migrations (also done on connect). Idempotent.
    async fn migrate(&self) -> Result<()>;

    /// Version of the newest applied migration.
    async fn schema_version(&self) -> Result<i64>;

    /// Close the pool, waiting for connections to be returned.
    async fn close(&self);
}

/// The `app_users` table and its outbox entries (see [`crate::users::decide`]).
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn get_user(&self, directory_id: &str) -> Result<Option<AppUser>>;

    /// Lookup by primary email, ignoring case. If several rows share the email (a transient
    /// rename swap), the active one with the smallest id wins.
    async fn get_user_by_email(&self, email: &str) -> Result<Option<AppUser>>;

    /// A page of users ordered by directory id.
    async fn list_users(&self, query: &UserQuery) -> Result<Vec<AppUser>>;

    async fn count_users(&self, active_only: bool) -> Result<u64>;

    /// Apply `changes` in order, in ONE transaction, each with its outbox entry: all or
    /// nothing. A reconcile calls this per chunk.
    async fn apply_user_changes(
        &self,
        changes: &[UserChange],
        now: DateTime<Utc>,
    ) -> Result<ApplyReport>;

    /// Create or update one user (see [`ChangeOutcome`]).
    async fn upsert_user(
        &self,
        profile: &UserProfile,
        observed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ChangeOutcome> {
        let change = UserChange::Upsert {
            profile: profile.clone(),
            observed_at,
        };
        single_outcome(self.apply_user_changes(&[change], now).await?)
    }

    /// Set `active = false`, keeping the row; `Unchanged` if already inactive.
    async fn deactivate_user(
        &self,
        directory_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ChangeOutcome> {
        let change = UserChange::Deactivate {
            directory_id: directory_id.to_owned(),
            reason: reason.to_owned(),
            observed_at: now,
        };
        single_outcome(self.apply_user_changes(&[change], now).await?)
    }

    /// Remove the row (the outbox entry carries its last state).
    async fn delete_user(
        &self,
        directory_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ChangeOutcome> {
        let change = UserChange::Delete {
            directory_id: directory_id.to_owned(),
            reason: reason.to_owned(),
            observed_at: now,
        };
        single_outcome(self.apply_user_changes(&[change], now).await?)
    }
}

/// The transactional outbox of user changes, delivered in order per user.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Lease up to `limit` undelivered entries due at `now` for `lease`, oldest first. An
    /// entry is only handed out when every earlier entry of the same user was delivered, so
    /// a receiver sees each user's changes in order. `attempts` is incremented.
    async fn claim_outbox(
        &self,
        limit: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>>;

    /// Mark delivered; returns `false` if the entry does not exist.
    async fn mark_outbox_delivered(&self, seq: i64, now: DateTime<Utc>) -> Result<bool>;

    /// Record a failed delivery and when to try again.
    async fn mark_outbox_failed(
        &self,
        seq: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Undelivered entries, oldest first (for status and metrics).
    async fn list_pending_outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>>;

    /// All entries with `seq > after_seq`, oldest first (delivered or not).
    async fn list_outbox(&self, after_seq: i64, limit: u32) -> Result<Vec<OutboxEntry>>;

    /// Delete entries delivered before `before`; returns how many.
    async fn prune_delivered_outbox(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Small key/value sync state and the per-user contacts sync state.
#[async_trait]
pub trait SyncStateStore: Send + Sync + 'static {
    async fn get_sync_state(&self, scope: &str, key: &str) -> Result<Option<String>>;

    async fn set_sync_state(
        &self,
        scope: &str,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Returns whether a value was removed.
    async fn delete_sync_state(&self, scope: &str, key: &str) -> Result<bool>;

    /// All (key, value) pairs of a scope, ordered by key.
    async fn list_sync_state(&self, scope: &str) -> Result<Vec<(String, String)>>;

    /// Set `entries` and remove `removed` in one scope, in one transaction: a run's batch
    /// of links (the SCIM job keeps one per provisioned resource) costs one commit, not
    /// one per key.
    async fn update_sync_states(
        &self,
        scope: &str,
        entries: &[(String, String)],
        removed: &[String],
        now: DateTime<Utc>,
    ) -> Result<()>;

    async fn get_contacts_state(&self, target_id: &str) -> Result<Option<ContactsUserState>>;

    /// Insert or replace.
    async fn put_contacts_state(&self, state: &ContactsUserState) -> Result<()>;

    async fn delete_contacts_state(&self, target_id: &str) -> Result<bool>;

    /// Ordered by target id.
    async fn list_contacts_state(&self) -> Result<Vec<ContactsUserState>>;
}

/// Push-notification channels and the notifications received on them.
#[async_trait]
pub trait ChannelStore: Send + Sync + 'static {
    /// Fails if a channel with the same id exists.
    async fn insert_channel(&self, channel: &Channel) -> Result<()>;

    async fn get_channel(&self, id: &str) -> Result<Option<Channel>>;

    /// Channels not stopped and not expired at `now`, ordered by expiration.
    async fn list_live_channels(&self, now: DateTime<Utc>) -> Result<Vec<Channel>>;

    /// Every stored channel, ordered by creation.
    async fn list_channels(&self) -> Result<Vec<Channel>>;

    async fn mark_channel_stopped(&self, id: &str, at: DateTime<Utc>) -> Result<bool>;

    async fn mark_channel_replaced(&self, id: &str, replaced_by: &str) -> Result<bool>;

    /// Delete channels that expired before `before`; returns how many.
    async fn delete_expired_channels(&self, before: DateTime<Utc>) -> Result<u64>;

    /// Record a notification once per (channel id, message number) and, only if it is new,
    /// enqueue `jobs` in the same transaction (each coalescing by its dedupe key). Returns
    /// `false` for a replay (nothing changed).
    async fn record_notification(
        &self,
        notification: &ReceivedNotification,
        jobs: &[NewJob],
    ) -> Result<bool>;

    /// Forget notifications received before `before`; returns how many.
    async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// The job queue.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Enqueue, or coalesce into a pending job with the same dedupe key (its `run_at` becomes
    /// the earlier of the two and its payload the new one).
    async fn enqueue_job(&self, job: &NewJob) -> Result<Enqueued>;

    /// Claim up to `limit` jobs due at `now` (pending with `run_at <= now`, or running with
    /// an expired lease) for `lease`. Concurrent claimers never get the same job.
    async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Job>>;

    /// Finish a job (it is deleted). `false` if `worker` no longer holds it.
    async fn complete_job(&self, id: i64, worker: &str) -> Result<bool>;

    /// Record a failure and reschedule at `retry_at` (the job is never dropped). `false` if
    /// `worker` no longer holds it.
    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Put a claimed job back, due at `run_at`, without counting the claim as an attempt
    /// or recording an error: the worker could not start it yet (another holder has what
    /// it needs). Folded into a pending job with the same dedupe key when there is one.
    /// `false` if `worker` no longer holds it.
    async fn release_job(&self, id: i64, worker: &str, run_at: DateTime<Utc>) -> Result<bool>;

    /// Keep a claimed job locked until `until` (a job that runs longer than its lease).
    /// `false` if `worker` no longer holds it.
    async fn extend_job(&self, id: i64, worker: &str, until: DateTime<Utc>) -> Result<bool>;

    async fn get_job(&self, id: i64) -> Result<Option<Job>>;

    /// Jobs whose last attempt failed, most attempts first.
    async fn list_failed_jobs(&self, limit: u32) -> Result<Vec<Job>>;

    /// Jobs not yet completed (pending or running).
    async fn count_jobs(&self) -> Result<u64>;

    /// The queue at a glance: how many jobs wait, run and are failing, and the oldest.
    async fn queue_summary(&self) -> Result<QueueSummary>;
}

/// Named leases (leader election).
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Acquire `name` for `holder` until `now + ttl` if it is free, expired, or already held
    /// by `holder` (then it is extended).
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool>;

    /// Extend a lease `holder` still holds (not expired); `false` means leadership was lost.
    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool>;

    /// Give the lease up; `false` if `holder` did not hold it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<bool>;

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>>;
}

/// Everything orgsync persists: every role trait, joined. Implemented for every type that
/// implements all of them (a blanket impl), so a backend implements the roles and never
/// `Store` itself.
pub trait Store:
    HousekeepingStore + UserStore + OutboxStore + SyncStateStore + ChannelStore + JobStore + LeaseStore
{
}

impl<T> Store for T where
    T: ?Sized
        + HousekeepingStore
        + UserStore
        + OutboxStore
        + SyncStateStore
        + ChannelStore
        + JobStore
        + LeaseStore
{
}

fn single_outcome(report: ApplyReport) -> Result<ChangeOutcome> {
    report
        .outcomes
        .into_iter()
        .next()
        .map(|(_, o)| o)
        .ok_or_else(|| crate::StoreError::InvalidArgument("empty apply report".into()))
}
