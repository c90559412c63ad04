//! The welcome mail, sent at most once per user: a record per user in the store's sync
//! state moves `pending` → `sending` (a claim under a short store lease) → `sent`, and the
//! mail goes out as a Gmail draft whose id is saved before it is sent (see [`WelcomeRecord`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use orgsync_client::{ErrorKind, GoogleClient, RetryPolicy};
use orgsync_store::{AppUser, Store, UserProfile};
use orgsync_wire::directory::User;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::mail::WelcomeTemplate;

/// Tries for a `welcome:<id>` lease another run holds: five, 20 ms doubling (its holder
/// releases it within milliseconds; see `orgsync_client::retry` for every policy's reasons).
const WELCOME_LOCK_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    base: Duration::from_millis(20),
    max_backoff: Duration::from_millis(320),
    max_retry_after: Duration::ZERO,
    max_elapsed: Duration::MAX,
};

/// Sync-state scope of the welcome mail: one [`WelcomeRecord`] (JSON) per directory id.
pub const WELCOME_SCOPE: &str = "welcome";
/// A `sending` claim older than this is taken over (its holder crashed mid-send).
pub const WELCOME_CLAIM_STALE_SECS: i64 = 600;
/// A pending record whose user is not in the store after this long is dropped.
const WELCOME_ORPHAN_SECS: i64 = 86_400;
/// How long the store lease that serialises one user's claim is held at most.
const WELCOME_LEASE_SECS: i64 = 60;

/// Where one user's welcome mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WelcomeState {
    /// To send (new user, or an earlier attempt failed).
    Pending,
    /// Claimed by one run, which is sending it now (or crashed while doing so).
    Sending,
    /// Sent; never sent again.
    Sent,
}

/// The stored record of one user's welcome mail (sync state `welcome/<directory id>`).
///
/// The mail is sent as a Gmail *draft* that is then sent: the draft id is recorded before
/// `drafts.send`, and a later attempt first asks `drafts.get` whether the draft still
/// exists. Gmail removes a draft when it is sent, so a 404 proves it went out (or a person
/// deleted it): either way it is never sent twice, even after a crash or a 5xx whose
/// outcome is unknown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WelcomeRecord {
    pub state: WelcomeState,
    pub email: String,
    /// When the user was provisioned (the record was created).
    pub since: DateTime<Utc>,
    /// Last change of the record.
    pub at: DateTime<Utc>,
    pub attempts: u32,
    /// The draft holding the message, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The claim's holder while `sending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One welcome mail that could not be sent in this run (retried by the next one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WelcomeFailure {
    pub directory_id: String,
    pub email: String,
    pub error: String,
}

/// The welcome mail of a run (present when `[mail.welcome]` is enabled).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WelcomeReport {
    pub sent: usize,
    /// Not sent in this run; kept and retried by the next run.
    pub failed: usize,
    /// Left for later: the user is not active (yet), or another run holds the claim.
    pub waiting: usize,
    /// Dry run: how many a real run would try to send.
    pub would_send: usize,
    /// The first full reconcile imports the existing directory without welcome mail.
    pub initial_import: bool,
    pub failures: Vec<WelcomeFailure>,
}

/// What the welcome step did for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WelcomeOutcome {
    Sent,
    Failed,
    Waiting,
    /// Nothing to do (already sent, or no record).
    None,
}

/// Sends welcome mail at most once per user. See [`WelcomeRecord`] for the protocol; the
/// claim (`pending` → `sending`) is a read-check-write under a short store lease named
/// `welcome:<id>`, so two runs or two daemon instances never both send.
pub struct Welcomer<'a> {
    client: &'a GoogleClient,
    store: &'a dyn Store,
    /// The loaded template, or why it cannot be used (a failure of every send, not of
    /// the sync).
    template: Result<WelcomeTemplate, String>,
    /// `[mail] from`, else `[google] admin_subject`.
    from: Option<String>,
    holder: String,
}

impl<'a> Welcomer<'a> {
    /// `None` when `[mail.welcome]` is not enabled.
    pub fn new(client: &'a GoogleClient, config: &Config, store: &'a dyn Store) -> Option<Self> {
        let template = match WelcomeTemplate::from_config(&config.mail.welcome) {
            Ok(None) => return None,
            Ok(Some(t)) => Ok(t),
            Err(e) => Err(e.to_string()),
        };
        Some(Welcomer {
            client,
            store,
            template,
            from: config
                .mail
                .from
                .clone()
                .or_else(|| config.google.admin_subject.clone()),
            holder: format!(
                "welcome-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ),
        })
    }

    async fn record(&self, id: &str) -> orgsync_store::Result<Option<WelcomeRecord>> {
        Ok(self
            .store
            .get_sync_state(WELCOME_SCOPE, id)
            .await?
            .and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn put(
        &self,
        id: &str,
        rec: &WelcomeRecord,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<()> {
        let value = serde_json::to_string(rec).unwrap_or_default();
        self.store
            .set_sync_state(WELCOME_SCOPE, id, &value, now)
            .await
    }

    /// Record that `id` was provisioned and is owed a welcome (no-op if a record exists).
    /// Under the `welcome:<id>` lease, so it never overwrites a claim; if another run holds
    /// the lease, that run is already working on the record and nothing is needed.
    pub async fn mark_pending(
        &self,
        id: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<()> {
        if !self.lock(id, now).await? {
            return Ok(());
        }
        let result = async {
            if self.record(id).await?.is_some() {
                return Ok(());
            }
            let rec = WelcomeRecord {
                state: WelcomeState::Pending,
                email: email.to_owned(),
                since: now,
                at: now,
                attempts: 0,
                draft_id: None,
                message_id: None,
                by: None,
                last_error: None,
            };
            self.put(id, &rec, now).await
        }
        .await;
        self.unlock(id).await;
        result
    }

    /// Write the outcome of our claim, unless it was taken over meanwhile (then the new
    /// holder writes it).
    async fn finish(
        &self,
        id: &str,
        rec: &WelcomeRecord,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<()> {
        let locked = self.lock(id, now).await?;
        let result = async {
            let current = self.record(id).await?;
            if !locked || current.is_none_or(|c| c.by == Some(self.holder.clone())) {
                self.put(id, rec, now).await?;
            }
            Ok(())
        }
        .await;
        if locked {
            self.unlock(id).await;
        }
        result
    }

    /// Take the `welcome:<id>` lease (a few short tries); `false` when another run holds
    /// it. Release with [`Self::unlock`].
    async fn lock(&self, id: &str, now: DateTime<Utc>) -> orgsync_store::Result<bool> {
        let name = format!("welcome:{id}");
        let ttl = chrono::Duration::seconds(WELCOME_LEASE_SECS);
        for attempt in 1..=WELCOME_LOCK_RETRY.max_attempts {
            if self
                .store
                .try_acquire_lease(&name, &self.holder, now, ttl)
                .await?
            {
                return Ok(true);
            }
            if WELCOME_LOCK_RETRY.allows_another(attempt) {
                tokio::time::sleep(WELCOME_LOCK_RETRY.backoff(attempt)).await;
            }
        }
        Ok(false)
    }

    async fn unlock(&self, id: &str) {
        let name = format!("welcome:{id}");
        if let Err(e) = self.store.release_lease(&name, &self.holder).await {
            tracing::debug!(error = %e, "cannot release a welcome lease; it expires");
        }
    }

    /// Under the lease: pending (or an abandoned claim) → sending, by us.
    async fn claim(
        &self,
        id: &str,
        row: Option<&AppUser>,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<Claim> {
        let Some(mut rec) = self.record(id).await? else {
            return Ok(Claim::Nothing);
        };
        match rec.state {
            WelcomeState::Sent => return Ok(Claim::Nothing),
            WelcomeState::Sending
                if now - rec.at < chrono::Duration::seconds(WELCOME_CLAIM_STALE_SECS) =>
            {
                return Ok(Claim::Busy);
            }
            _ => {}
        }
        let Some(row) = row else {
            // Not in the store: its create may still be on its way (another instance), or
            // it never happened (a stale create) or the user was deleted since. After a day
            // the record is dropped; a later create records a new one.
            let orphan = now - rec.since > chrono::Duration::seconds(WELCOME_ORPHAN_SECS);
            if orphan && rec.state == WelcomeState::Pending && rec.draft_id.is_none() {
                self.store.delete_sync_state(WELCOME_SCOPE, id).await?;
            }
            return Ok(Claim::Nothing);
        };
        if !row.active() {
            return Ok(Claim::Busy);
        }
        rec.state = WelcomeState::Sending;
        rec.at = now;
        rec.attempts += 1;
        rec.by = Some(self.holder.clone());
        self.put(id, &rec, now).await?;
        Ok(Claim::Mine(rec))
    }

    /// Under the lease: record the new draft if the claim is still ours.
    async fn record_draft(
        &self,
        id: &str,
        rec: &mut WelcomeRecord,
        draft_id: &str,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<bool> {
        let current = self.record(id).await?;
        let still = current.is_some_and(|c| c.state == WelcomeState::Sending && c.by == rec.by);
        if still {
            rec.draft_id = Some(draft_id.to_owned());
            self.put(id, rec, now).await?;
        }
        Ok(still)
    }

    /// Send `id`'s welcome if it is owed and the user is active. `user` gives the
    /// template's fields (else the stored row does). Never fails: problems are logged and
    /// counted in `report`.
    pub async fn deliver(
        &self,
        id: &str,
        user: Option<&User>,
        now: DateTime<Utc>,
        report: &mut WelcomeReport,
    ) -> WelcomeOutcome {
        let outcome = match self.try_deliver(id, user, now).await {
            Ok(o) => o,
            Err(e) => Err(format!("state store: {e}")),
        };
        match outcome {
            Ok(DeliverStep::Sent) => {
                report.sent += 1;
                WelcomeOutcome::Sent
            }
            Ok(DeliverStep::Waiting) => {
                report.waiting += 1;
                WelcomeOutcome::Waiting
            }
            Ok(DeliverStep::Nothing) => WelcomeOutcome::None,
            Err(error) => {
                let email = self
                    .record(id)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.email)
                    .unwrap_or_default();
                tracing::warn!(
                    directory_id = id,
                    %email,
                    %error,
                    "welcome mail not sent; the next run retries it"
                );
                report.failed += 1;
                report.failures.push(WelcomeFailure {
                    directory_id: id.to_owned(),
                    email,
                    error,
                });
                WelcomeOutcome::Failed
            }
        }
    }

    async fn try_deliver(
        &self,
        id: &str,
        user: Option<&User>,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<Result<DeliverStep, String>> {
        let row = self.store.get_user(id).await?;
        let claimed = if self.lock(id, now).await? {
            let claimed = self.claim(id, row.as_ref(), now).await;
            self.unlock(id).await;
            Some(claimed?)
        } else {
            None
        };
        let mut rec = match claimed {
            None | Some(Claim::Busy) => return Ok(Ok(DeliverStep::Waiting)),
            Some(Claim::Nothing) => return Ok(Ok(DeliverStep::Nothing)),
            Some(Claim::Mine(rec)) => rec,
        };
        let result = self.send(id, user, row.as_ref(), &mut rec, now).await?;
        match &result {
            Ok(message_id) => {
                rec.state = WelcomeState::Sent;
                rec.message_id = message_id.clone();
                rec.last_error = None;
                tracing::info!(directory_id = id, email = %rec.email, "welcome mail sent");
            }
            Err(e) => {
                rec.state = WelcomeState::Pending;
                rec.last_error = Some(e.clone());
            }
        }
        rec.at = now;
        self.finish(id, &WelcomeRecord { by: None, ..rec }, now)
            .await?;
        Ok(result.map(|_| DeliverStep::Sent))
    }

    /// Create the draft (unless one exists), record it, send it. `Ok(Ok(message id))`
    /// when the mail went out (now or in an earlier attempt whose answer was lost).
    async fn send(
        &self,
        id: &str,
        user: Option<&User>,
        row: Option<&AppUser>,
        rec: &mut WelcomeRecord,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<Result<Option<String>, String>> {
        let Some(from) = &self.from else {
            return Ok(Err(
                "no sender: set [mail] from (or [google] admin_subject)".into(),
            ));
        };
        let sender = match crate::mail::parse_mailbox(from) {
            Ok(m) => m.email,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let gmail = self.client.gmail(Some(&sender));
        let draft_id = match rec.draft_id.clone() {
            Some(draft_id) => {
                // An earlier attempt made the draft: if it is gone, it was sent.
                match gmail.drafts_get(&draft_id, Some("minimal")).await {
                    Ok(_) => draft_id,
                    Err(e) if e.is(ErrorKind::NotFound) => return Ok(Ok(None)),
                    Err(e) => return Ok(Err(format!("checking the earlier draft: {e}"))),
                }
            }
            None => {
                let template = match &self.template {
                    Ok(t) => t,
                    Err(e) => return Ok(Err(e.clone())),
                };
                let fallback;
                let user = match user {
                    Some(u) => u,
                    None => match row {
                        Some(r) => {
                            fallback = user_from_profile(&r.profile);
                            &fallback
                        }
                        None => return Ok(Err("the user is not in the store".into())),
                    },
                };
                let raw = match template
                    .render(from, user)
                    .and_then(|m| crate::mail::build_mime(&m))
                {
                    Ok(raw) => raw,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                let draft = match crate::mail::create_draft(self.client, Some(&sender), &raw).await
                {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(format!("creating the draft: {e}"))),
                };
                let Some(draft_id) = draft.draft_id else {
                    return Ok(Err("Gmail returned a draft without an id".into()));
                };
                // Record the draft before sending it, and check the claim is still ours
                // (a claim taken over as abandoned must not send a second message).
                let mine = if self.lock(id, now).await? {
                    let mine = self.record_draft(id, rec, &draft_id, now).await;
                    self.unlock(id).await;
                    mine?
                } else {
                    false
                };
                if !mine {
                    // Left as a draft in the sender's mailbox: never sent.
                    return Ok(Err("the claim was taken over by another run".into()));
                }
                draft_id
            }
        };
        match gmail.drafts_send(&draft_id).await {
            Ok(m) => Ok(Ok(m.id)),
            // Gone between the check and the send: someone else sent it.
            Err(e) if e.is(ErrorKind::NotFound) => Ok(Ok(None)),
            Err(e) => Ok(Err(format!("sending the draft: {e}"))),
        }
    }

    /// Try every owed welcome (new users of this run, and earlier failures). `directory`
    /// gives the template fields of the users it has.
    pub async fn sweep(
        &self,
        directory: &BTreeMap<String, User>,
        now: DateTime<Utc>,
        report: &mut WelcomeReport,
    ) {
        let entries = match self.store.list_sync_state(WELCOME_SCOPE).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list owed welcome mail");
                report.failed += 1;
                report.failures.push(WelcomeFailure {
                    directory_id: String::new(),
                    email: String::new(),
                    error: format!("state store: {e}"),
                });
                return;
            }
        };
        for (id, value) in entries {
            let owed = serde_json::from_str::<WelcomeRecord>(&value)
                .is_ok_and(|r| r.state != WelcomeState::Sent);
            if owed {
                self.deliver(&id, directory.get(&id), now, report).await;
            }
        }
    }

    /// The directory ids of owed welcomes (not yet sent): the reconcile keeps these users'
    /// directory entries for the template, and a dry run counts them. A store error is the
    /// sweep's to report.
    pub(super) async fn owed_ids(&self) -> BTreeSet<String> {
        let entries = self
            .store
            .list_sync_state(WELCOME_SCOPE)
            .await
            .unwrap_or_default();
        entries
            .into_iter()
            .filter(|(_, v)| {
                serde_json::from_str::<WelcomeRecord>(v)
                    .is_ok_and(|r| r.state != WelcomeState::Sent)
            })
            .map(|(id, _)| id)
            .collect()
    }
}

enum Claim {
    Mine(WelcomeRecord),
    Busy,
    Nothing,
}

enum DeliverStep {
    Sent,
    Waiting,
    Nothing,
}

/// A directory user rebuilt from a stored row, for the template (no company name).
fn user_from_profile(p: &UserProfile) -> User {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    User {
        id: Some(p.directory_id.clone()),
        primary_email: Some(p.primary_email.clone()),
        name: Some(orgsync_wire::directory::UserName {
            given_name: opt(&p.given_name),
            family_name: opt(&p.family_name),
            full_name: opt(&p.display_name),
            ..Default::default()
        }),
        org_unit_path: opt(&p.org_unit_path),
        organizations: (p.title.is_some() || p.department.is_some()).then(|| {
            vec![orgsync_wire::directory::UserOrganization {
                title: p.title.clone(),
                department: p.department.clone(),
                primary: Some(true),
                ..Default::default()
            }]
        }),
        ..Default::default()
    }
}
