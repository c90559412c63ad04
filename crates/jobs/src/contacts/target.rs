//! One target user's address book: read, plan, guard, apply, refresh, record.
//! The module docs of [`super`] explain the paths; this file is their code.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures::TryStreamExt;
use orgsync_client::people::{
    ConnectionsListing, ConnectionsParams, MARKER_KEY, NewContactJson, People,
};
use orgsync_client::{Error as ClientError, ErrorKind, RetryPolicy};
use orgsync_core::contacts::markers;
use orgsync_core::contacts::{
    FreshCheck, MarkedContact, PersonalDuplicates, TargetUser, UserPlan, plan_user, view_hash,
};
use orgsync_core::guard::GuardVerdict;
use orgsync_store::{ContactsUserState, StoreError};
use orgsync_wire::people::{
    BATCH_CREATE_MAX, CONTACTS_PER_USER_CAP, ContactGroup, GroupClientData, MY_CONTACTS, Person,
};

use super::photos::{self, PhotoOutcome};
use super::report::{ActionSummary, ReadPath, UserOutcome, UserStatus};
use super::{Mode, RunCtx, WRITE_READ_MASK};

const GROUP_FIELDS: &str = "name,clientData,groupType,metadata";
/// Tries per user when a contact changed under us (stale etag): three immediate re-reads,
/// because a person's edit, not load, caused it (see `orgsync_client::retry`).
const STALE_ETAG_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base: Duration::ZERO,
    max_backoff: Duration::ZERO,
    max_retry_after: Duration::ZERO,
    max_elapsed: Duration::MAX,
};

pub(super) async fn process(ctx: &RunCtx, user: &super::Target) -> UserOutcome {
    let (Some(id), Some(email)) = (user.id.as_deref(), user.primary_email.as_deref()) else {
        return UserOutcome::failed(
            user.primary_email.as_deref().unwrap_or("?"),
            user.id.as_deref().unwrap_or(""),
            "the directory user has no id or primary email".into(),
        );
    };
    let result = match (ctx.mode, ctx.dry_run) {
        (Mode::Plan, _) | (Mode::Sync, true) => plan_only(ctx, id, email, &user.lists).await,
        (Mode::Sync, false) => sync_with_retry(ctx, id, email, &user.lists).await,
        (Mode::Undo, dry_run) => undo(ctx, id, email, dry_run).await,
    };
    result.unwrap_or_else(|e| {
        tracing::warn!(user = %email, error = %crate::error::chain_text(&e), "contacts: user failed");
        UserOutcome::failed(email, id, describe(&e))
    })
}

/// Why one user's work failed: what was being done, and the error that stopped it.
#[derive(Debug, thiserror::Error)]
enum UserError {
    #[error("{doing}")]
    Google {
        doing: &'static str,
        /// Boxed: a client error is large, and this travels on every `?`.
        #[source]
        source: Box<ClientError>,
    },
    #[error("{doing}")]
    Store {
        doing: &'static str,
        #[source]
        source: StoreError,
    },
    /// A problem with nothing underneath (a conflicting label, a malformed answer).
    #[error("{0}")]
    Plain(String),
}

type UserResult<T> = Result<T, UserError>;

/// Adds what was being done to a client or store error.
trait Doing<T> {
    fn doing(self, doing: &'static str) -> UserResult<T>;
}

impl<T> Doing<T> for Result<T, ClientError> {
    fn doing(self, doing: &'static str) -> UserResult<T> {
        self.map_err(|source| UserError::Google {
            doing,
            source: Box::new(source),
        })
    }
}

impl<T> Doing<T> for Result<T, StoreError> {
    fn doing(self, doing: &'static str) -> UserResult<T> {
        self.map_err(|source| UserError::Store { doing, source })
    }
}

impl<T> Doing<T> for Option<T> {
    fn doing(self, doing: &'static str) -> UserResult<T> {
        self.ok_or_else(|| UserError::Plain(doing.to_string()))
    }
}

fn describe(e: &UserError) -> String {
    let text = crate::error::chain_text(e);
    if let Some(ce) = client_error(e) {
        let hint = match ce.kind() {
            ErrorKind::Auth => {
                "; check that domain-wide delegation grants the contacts scope and that the \
                 user exists and is not suspended"
            }
            ErrorKind::Retryable => "; Google kept failing or throttling: the next run retries",
            _ => "",
        };
        return format!("{text}{hint}");
    }
    text
}

fn client_error(e: &UserError) -> Option<&ClientError> {
    match e {
        UserError::Google { source, .. } => Some(source.as_ref()),
        _ => None,
    }
}

fn is_kind(e: &UserError, kind: ErrorKind) -> bool {
    client_error(e).is_some_and(|c| c.is(kind))
}

async fn sync_with_retry(
    ctx: &RunCtx,
    id: &str,
    email: &str,
    lists: &BTreeSet<String>,
) -> UserResult<UserOutcome> {
    let mut attempt = 1;
    loop {
        match sync_user(ctx, id, email, lists, attempt > 1).await {
            Err(e)
                if STALE_ETAG_RETRY.allows_another(attempt)
                    && is_kind(&e, ErrorKind::PreconditionFailed) =>
            {
                tracing::info!(user = %email, "a contact changed during the sync; re-reading");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The planner's view of a target: who they are, which shared lists they receive and
/// their main group (the extra labels are filled in by [`ensure_labels`]).
fn target_user(
    id: &str,
    email: &str,
    lists: &BTreeSet<String>,
    managed_group: Option<String>,
) -> TargetUser {
    TargetUser {
        directory_id: id.to_string(),
        email: email.to_string(),
        managed_group,
        lists: lists.clone(),
        labels: BTreeMap::new(),
    }
}

async fn sync_user(
    ctx: &RunCtx,
    id: &str,
    email: &str,
    lists: &BTreeSet<String>,
    force_full: bool,
) -> UserResult<UserOutcome> {
    let people = ctx.client.people(email);
    // Everyone selected but themself, and the lists they receive.
    let desired_count = ctx
        .directory
        .desired_count(&target_user(id, email, lists, None));
    let state = ctx
        .store
        .get_contacts_state(id)
        .await
        .doing("reading the user's sync state")?;

    // 0. A push-driven run touches only the books whose view changed: the others hold
    // what the last run wrote, and personal edits wait for the scheduled full run.
    if ctx.changed_only
        && !force_full
        && let Some(st) = &state
        && st.sync_token.is_some()
        && let Some(stored_hash) = &st.view_hash
    {
        let target = target_user(id, email, lists, st.managed_group.clone());
        if view_of(ctx, &target) == *stored_hash {
            let mut out = UserOutcome::new(email, id, UserStatus::Unchanged);
            out.path = Some(ReadPath::Unread);
            out.unchanged = desired_count;
            return Ok(out);
        }
    }

    // 1. The incremental shortcut.
    if !force_full
        && let Some(st) = &state
        && let (Some(token), Some(stored_hash)) = (&st.sync_token, &st.view_hash)
    {
        let target = target_user(id, email, lists, st.managed_group.clone());
        if view_of(ctx, &target) == *stored_hash {
            match people
                .connections_list_all(ConnectionsParams::incremental(ctx.read_mask(), token))
                .await
            {
                Ok(listing) if listing.people.iter().all(|p| ignorable(ctx, p)) => {
                    let personal = listing.people.len();
                    record(
                        ctx,
                        id,
                        email,
                        listing.next_sync_token,
                        Some(stored_hash.clone()),
                        st.managed_group.clone(),
                    )
                    .await?;
                    let mut out = UserOutcome::new(email, id, UserStatus::Unchanged);
                    out.path = Some(ReadPath::Incremental);
                    out.unchanged = desired_count;
                    out.personal = personal;
                    return Ok(out);
                }
                Ok(_) => {}
                Err(e) if e.is(ErrorKind::SyncTokenExpired) => {
                    tracing::info!(user = %email, "sync token expired; reading the address book in full");
                }
                Err(e) => return Err(e).doing("reading contact changes"),
            }
        }
    }

    // 2. The managed group, and the read. A group that a contact still belongs to
    // exists: no need to list the groups to find it.
    let known = state.as_ref().and_then(|s| s.managed_group.clone());
    // Only when nothing on our side changed (the label's name included) can the group
    // be taken on trust; otherwise it is listed, and renamed if the config says so. A
    // push-driven run trusts it too: only colleagues changed (the daemon's config is the
    // one its last full run used), and a renamed label waits for the scheduled run.
    let view_same = ctx.changed_only
        || known.as_ref().is_some_and(|k| {
            let t = target_user(id, email, lists, Some(k.clone()));
            state.as_ref().and_then(|s| s.view_hash.as_deref()) == Some(view_of(ctx, &t).as_str())
        });
    let mut listing = None;
    // Every contact group of the book, when a step had to list them.
    let mut groups_seen = None;
    // Held from a whole-book read until its listing is dropped after planning.
    let mut reading = None;
    if let Some(known) = known.as_ref().filter(|_| view_same) {
        reading = ctx.book_reads.acquire().await.ok();
        let l = full_read(ctx, &people).await?;
        if l.people
            .iter()
            .any(|p| p.group_resource_names().any(|g| g == known))
        {
            listing = Some((l, known.clone()));
        } else {
            let main = ensure_group(ctx, &people, false).await?;
            groups_seen = main.listed;
            listing = Some((l, main.resource_name));
        }
    }
    let (group, fresh, observed, token) = match listing {
        Some((l, group)) => (group, false, l.people, l.next_sync_token),
        None => {
            let main = ensure_group(ctx, &people, state.is_none()).await?;
            let (group, group_is_new) = (main.resource_name, main.created);
            groups_seen = main.listed;
            // Nothing of ours can be in an address book whose managed group did not
            // exist and of which we have no record: read after writing, not before.
            // Skipping personal duplicates needs the person's own contacts first: their
            // addresses only, one small read.
            if group_is_new && desired_count <= CONTACTS_PER_USER_CAP / 2 {
                let own = if ctx.plan_options.personal_duplicates == PersonalDuplicates::Skip {
                    people
                        .connections_list_all(ConnectionsParams::new("emailAddresses"))
                        .await
                        .doing("reading the person's own contacts")?
                        .people
                } else {
                    Vec::new()
                };
                (group, true, own, None)
            } else {
                reading = ctx.book_reads.acquire().await.ok();
                let l = full_read(ctx, &people).await?;
                (group, false, l.people, l.next_sync_token)
            }
        }
    };
    let mut target = target_user(id, email, lists, Some(group.clone()));
    let stale_labels = ensure_labels(ctx, &people, &mut target, groups_seen, true).await?;

    // 3. Plan, guard, apply.
    let plan = plan_user(&target, &ctx.directory, &observed, &ctx.plan_options);
    drop(observed);
    drop(reading);
    let mut out = UserOutcome::new(email, id, UserStatus::Unchanged);
    out.path = Some(if fresh {
        ReadPath::Fresh
    } else {
        ReadPath::Full
    });
    out.personal = plan.personal_observed;
    out.managed = plan.managed_observed;
    out.skipped_duplicates = plan.skipped_duplicates.len();
    let skipped: BTreeSet<String> = plan.skipped_duplicates.iter().cloned().collect();
    if let Some(reason) = &plan.skipped {
        out.status = UserStatus::Skipped;
        out.reason = Some(reason.clone());
        return Ok(out);
    }
    if let Some(stop) = guard_user(ctx, &plan) {
        out.status = UserStatus::Guarded;
        out.reason = Some(stop);
        return Ok(out);
    }
    let view = view_of(ctx, &target);
    let mut written = HashSet::new();
    count(&mut out, &plan);
    let photos_planned = !plan.photo_writes.is_empty();
    // Only a refresh from a token needs the names written; a fresh book is checked by
    // its markers, and a book read in full again needs none.
    let remember = token.is_some();
    let mut photo_result = apply(ctx, &people, &target, plan, &mut written, remember).await?;
    // Labels nothing is in any more go after the writes: deleting a group edits its
    // members, which would have made the planned updates' etags stale.
    for rn in stale_labels {
        match people.contact_groups_delete(&rn, false).await {
            Ok(()) => {}
            Err(e) if e.is(ErrorKind::NotFound) => {}
            Err(e) => return Err(e).doing("deleting a label orgsync no longer uses"),
        }
    }

    // 4. Refresh the token past our own writes, verify, record.
    let verified = match token {
        // Fresh path: the read that verifies the creates also yields the token. Markers
        // are enough to verify them (see `fresh_creates_landed`); photo uploads rewrite
        // markers, so those books are verified in full.
        None if !photos_planned => verify_fresh(ctx, &people, &target, skipped).await?,
        _ => None,
    };
    let (token, clean) = match (token, verified) {
        (None, Some((token, personal))) => {
            out.personal = personal;
            (token, true)
        }
        (None, None) => {
            let _reading = ctx.book_reads.acquire().await.ok();
            let listing = full_read(ctx, &people).await?;
            let repair = plan_user(&target, &ctx.directory, &listing.people, &ctx.plan_options);
            out.personal = repair.personal_observed;
            if repair.is_empty() || repair.skipped.is_some() {
                (listing.next_sync_token, repair.is_empty())
            } else {
                tracing::info!(user = %email, writes = repair.write_count(), "repairing what the read-back found");
                if let Some(stop) = guard_user(ctx, &repair) {
                    out.status = UserStatus::Guarded;
                    out.reason = Some(stop);
                    return Ok(out);
                }
                count(&mut out, &repair);
                let mut repaired = HashSet::new();
                let repaired_photos =
                    apply(ctx, &people, &target, repair, &mut repaired, false).await?;
                // The repair retried every photo still missing its marker.
                photo_result.uploaded += repaired_photos.uploaded;
                photo_result.failed = repaired_photos.failed;
                (listing.next_sync_token, false)
            }
        }
        (Some(token), _) if !written.is_empty() => refresh(ctx, &people, &token, &written).await?,
        (Some(token), _) => (Some(token), true),
    };
    out.photos = photo_result.uploaded;
    out.photos_failed = photo_result.failed;
    // A photo that failed must be retried: no clean view, so no incremental shortcut.
    let clean = clean && photo_result.failed == 0;
    if out.writes() > 0 || out.photos > 0 {
        out.status = UserStatus::Changed;
    }
    out.unchanged = desired_count.saturating_sub(out.created + out.updated);
    record(ctx, id, email, token, clean.then_some(view), Some(group)).await?;
    Ok(out)
}

/// The fresh path's verifying read, parsed as markers only: `Some((token, personal
/// contacts))` when every create landed as planned, `None` when the book must be read
/// in full and re-planned (the extra read happens only then).
async fn verify_fresh(
    ctx: &RunCtx,
    people: &People,
    target: &TargetUser,
    skipped: BTreeSet<String>,
) -> UserResult<Option<(Option<String>, usize)>> {
    let Some(mut check) = FreshCheck::skipping(target, &ctx.directory, skipped) else {
        return Ok(None);
    };
    let _reading = ctx.book_reads.acquire().await.ok();
    // Page by page: the book is checked as it arrives and never held whole.
    let mut pages = std::pin::pin!(
        people.connections_pages_as::<MarkedContact>(ConnectionsParams::full_sync(ctx.read_mask()))
    );
    let mut token = None;
    let mut ok = true;
    while let Some(page) = pages
        .try_next()
        .await
        .doing("reading the address book back")?
    {
        ok = ok && page.connections.iter().all(|c| check.see(c));
        if page.next_sync_token.is_some() {
            token = page.next_sync_token;
        }
    }
    Ok(match check.finish().filter(|_| ok) {
        Some(personal) => Some((token, personal)),
        None => {
            tracing::info!(
                user = %target.email,
                "the read-back does not show every create as planned; re-reading in full to repair"
            );
            None
        }
    })
}

async fn full_read(ctx: &RunCtx, people: &People) -> UserResult<ConnectionsListing> {
    people
        .connections_list_all(ConnectionsParams::full_sync(ctx.read_mask()))
        .await
        .doing("reading the address book")
}

/// What the stored view hash covers: the planner's view of this target plus the name of
/// the label (a renamed label must not look unchanged).
fn view_of(ctx: &RunCtx, target: &TargetUser) -> String {
    let core = view_hash(target, &ctx.directory, &ctx.plan_options);
    orgsync_core::hash::stable_hash(&(core, &ctx.group_name))
}

/// A change from an incremental read that cannot concern orgsync: a personal contact
/// added or edited. Tombstones might be ours (their markers are gone), so they count.
fn is_personal_change(p: &Person) -> bool {
    !p.is_deleted() && !markers::is_managed(p) && !markers::is_orphan(p)
}

/// A change the incremental shortcut may pass over: a personal one, unless personal
/// duplicates are skipped. Then a personal contact decides whether orgsync's copy of a
/// colleague belongs in the book (one edited away from a colleague's address makes room
/// for it), so any change means a full read of that one book.
fn ignorable(ctx: &RunCtx, p: &Person) -> bool {
    ctx.plan_options.personal_duplicates == PersonalDuplicates::Add && is_personal_change(p)
}

fn guard_user(ctx: &RunCtx, plan: &UserPlan) -> Option<String> {
    match ctx.guard.check_contact_counts(
        plan.managed_observed,
        plan.deletes.len(),
        ctx.directory.is_empty(),
        ctx.directory.read_count,
    ) {
        GuardVerdict::Stop {
            reason,
            what_to_check,
        } => Some(format!("{reason} ({what_to_check})")),
        GuardVerdict::Forced { reason } => {
            tracing::warn!(user = %plan.target_email, %reason, "guard overridden by --force");
            None
        }
        GuardVerdict::Proceed => None,
    }
}

fn count(out: &mut UserOutcome, plan: &UserPlan) {
    out.created += plan.creates.len();
    out.updated += plan.updates.len();
    out.relabelled += plan.relabels.len();
    out.deleted += plan.deletes.len();
    out.duplicates_merged += plan.duplicates_merged.len();
}

/// Apply a plan with the batch endpoints: deletes first (they free room under the
/// contact cap), then updates, then creates, then photos ([`super::photos`]). `written`
/// collects every resource name touched, to recognise our own writes in the refresh
/// read. Photo failures do not fail the user; they come back in the outcome.
async fn apply(
    ctx: &RunCtx,
    people: &People,
    target: &TargetUser,
    mut plan: UserPlan,
    written: &mut HashSet<String>,
    remember: bool,
) -> UserResult<PhotoOutcome> {
    let deletes: Vec<String> = plan.all_deletes().map(str::to_string).collect();
    if !deletes.is_empty() {
        written.extend(deletes.iter().cloned());
        people
            .batch_delete_contacts_chunked(deletes)
            .await
            .doing("deleting contacts")?;
    }
    // One field mask for all updates: each update carries the whole merged contact, so
    // a field outside its own mask is written back with the value it already has. Two
    // directory changes (a phone, a rename) then cost one batch, not one per mask.
    let mut mask: BTreeSet<String> = BTreeSet::new();
    let mut batch: BTreeMap<String, Person> = BTreeMap::new();
    for u in plan.updates.drain(..).chain(plan.relabels.drain(..)) {
        written.insert(u.resource_name.clone());
        mask.extend(u.update_mask);
        batch.insert(u.resource_name, u.person);
    }
    if !batch.is_empty() {
        let mask = mask.into_iter().collect::<Vec<_>>().join(",");
        people
            .batch_update_contacts_chunked(batch, &mask, WRITE_READ_MASK)
            .await
            .doing("updating contacts")?;
    }
    // New contacts that get a photo must be found again by directory id: only then are
    // their markers worth reading back.
    let photos_for_new = plan.photo_writes.iter().any(|w| w.resource_name.is_none());
    // Each colleague's contact was serialised once for the run; only the memberships
    // are this book's own. One batch at a time: a first sync holds a hundred books of
    // ten thousand creates each for ten quota minutes, so nothing per contact is kept
    // beyond its batch unless a later step needs it (`remember`: the refresh from a
    // token skips our own writes by name; a new contact's photo needs its name).
    let mut created_ids: HashMap<String, String> = HashMap::new();
    if !plan.creates.is_empty() {
        let read_mask = if photos_for_new {
            "clientData,metadata"
        } else {
            WRITE_READ_MASK
        };
        // Every contact is in My Contacts; the rest of its groups (the main label for a
        // colleague, a department's or a list's label) travel with it, so a batch holds
        // contacts of any labels. They are worked out one batch at a time: worked out
        // for the whole book up front they were ~115 MB across a hundred books of ten
        // thousand creates (heaptrack's peak consumers).
        for chunk in plan.creates.chunks(BATCH_CREATE_MAX) {
            let groups: Vec<(&str, Vec<&str>)> = chunk
                .iter()
                .filter_map(|c| {
                    let d = ctx.directory.contacts.get(&c.directory_id)?;
                    Some((c.directory_id.as_str(), target.groups_for(d)))
                })
                .collect();
            let batch: Vec<NewContactJson<'_>> = groups
                .iter()
                .filter_map(|(id, groups)| {
                    Some(NewContactJson {
                        marker: id,
                        person: ctx.directory.new_person_json(id)?,
                        groups,
                    })
                })
                .collect();
            if batch.is_empty() {
                continue;
            }
            let created = people
                .create_contacts_json(&batch, &[MY_CONTACTS], MARKER_KEY, read_mask)
                .await
                .doing("creating contacts")?;
            for c in created {
                if photos_for_new && let Some(id) = c.marker {
                    created_ids.insert(id, c.resource_name.clone());
                }
                if remember {
                    written.insert(c.resource_name);
                }
            }
        }
    }
    let writes = std::mem::take(&mut plan.photo_writes);
    if writes.is_empty() {
        return Ok(PhotoOutcome::default());
    }
    Ok(photos::upload(
        &ctx.client,
        &ctx.photos,
        people,
        writes,
        &created_ids,
        written,
    )
    .await)
}

/// Read the changes since `token` (our own writes, normally) for a fresh token. Any
/// change we did not make clears the view hash so the next run reads in full.
async fn refresh(
    ctx: &RunCtx,
    people: &People,
    token: &str,
    written: &HashSet<String>,
) -> UserResult<(Option<String>, bool)> {
    match people
        .connections_list_all(ConnectionsParams::incremental(ctx.read_mask(), token))
        .await
    {
        Ok(listing) => {
            let clean = listing.people.iter().all(|p| {
                p.resource_name
                    .as_deref()
                    .is_some_and(|rn| written.contains(rn))
                    || ignorable(ctx, p)
            });
            Ok((listing.next_sync_token, clean))
        }
        Err(e) if e.is(ErrorKind::SyncTokenExpired) => Ok((None, false)),
        Err(e) => Err(e).doing("reading the changes back"),
    }
}

async fn record(
    ctx: &RunCtx,
    id: &str,
    email: &str,
    sync_token: Option<String>,
    view_hash: Option<String>,
    managed_group: Option<String>,
) -> UserResult<()> {
    let state = ContactsUserState {
        target_id: id.to_string(),
        target_email: email.to_string(),
        view_hash: view_hash.filter(|_| sync_token.is_some()),
        sync_token,
        managed_group,
        updated_at: chrono::Utc::now(),
    };
    ctx.store
        .put_contacts_state(&state)
        .await
        .doing("recording the user's sync state")
}

// ---- the managed group -------------------------------------------------------------

fn is_ours(g: &ContactGroup) -> bool {
    g.client_data.iter().any(|c| {
        c.key.as_deref() == Some(markers::SOURCE)
            && c.value.as_deref() == Some(markers::SOURCE_VALUE)
    }) && !g.metadata.as_ref().and_then(|m| m.deleted).unwrap_or(false)
}

/// The `orgsync.label` of an extra managed label: the name orgsync gave it.
fn label_key(g: &ContactGroup) -> Option<&str> {
    g.client_data
        .iter()
        .find(|c| c.key.as_deref() == Some(markers::LABEL))
        .and_then(|c| c.value.as_deref())
}

/// The main managed group: ours, and not an extra label.
fn is_our_group(g: &ContactGroup) -> bool {
    is_ours(g) && label_key(g).is_none()
}

async fn list_groups(people: &People) -> UserResult<Vec<ContactGroup>> {
    people
        .contact_groups_list(Some(GROUP_FIELDS))
        .try_collect()
        .await
        .doing("listing contact groups")
}

fn new_group(name: &str, label: Option<&str>) -> ContactGroup {
    let mut client_data = vec![GroupClientData {
        key: Some(markers::SOURCE.to_string()),
        value: Some(markers::SOURCE_VALUE.to_string()),
    }];
    if let Some(label) = label {
        client_data.push(GroupClientData {
            key: Some(markers::LABEL.to_string()),
            value: Some(label.to_string()),
        });
    }
    ContactGroup {
        name: Some(name.to_string()),
        client_data,
        ..ContactGroup::default()
    }
}

fn conflict_message(name: &str) -> String {
    format!(
        "this address book already has a contact group named {name:?} that orgsync did not \
         create; rename that label in Google Contacts or set [contacts] group_name to another name"
    )
}

fn label_conflict_message(name: &str) -> String {
    format!(
        "this address book already has a contact group named {name:?} that orgsync did not \
         create; rename that label in Google Contacts, or rename the department or shared list \
         it collides with"
    )
}

/// The main group, found or made.
struct MainGroup {
    resource_name: String,
    /// Created by this call.
    created: bool,
    /// Every group of the book, when they were listed to find it.
    listed: Option<Vec<ContactGroup>>,
}

/// The managed group's resource name, creating the group if needed.
async fn ensure_group(ctx: &RunCtx, people: &People, no_state: bool) -> UserResult<MainGroup> {
    if no_state {
        // A user orgsync never synced: creating first costs one call when the group is
        // new, and a Conflict tells us it exists.
        match people
            .contact_groups_create(new_group(&ctx.group_name, None), Some(GROUP_FIELDS))
            .await
        {
            Ok(g) => {
                let resource_name = g
                    .resource_name
                    .doing("contactGroups.create returned no resourceName")?;
                return Ok(MainGroup {
                    resource_name,
                    created: true,
                    listed: None,
                });
            }
            Err(e) if e.is(ErrorKind::Conflict) => {}
            Err(e) => return Err(e).doing("creating the managed contact group"),
        }
    }
    let groups = list_groups(people).await?;
    if let Some(g) = groups.iter().find(|g| is_our_group(g)) {
        let rn = g
            .resource_name
            .clone()
            .doing("a contact group without resourceName")?;
        if g.name.as_deref() != Some(ctx.group_name.as_str()) {
            // `group_name` changed in the config: rename, keep the members.
            let renamed = ContactGroup {
                name: Some(ctx.group_name.clone()),
                ..g.clone()
            };
            people
                .contact_groups_update(renamed, Some("name"), Some(GROUP_FIELDS))
                .await
                .map_err(|e| {
                    if e.is(ErrorKind::Conflict) {
                        UserError::Plain(conflict_message(&ctx.group_name))
                    } else {
                        UserError::Google {
                            doing: "renaming the managed contact group",
                            source: Box::new(e),
                        }
                    }
                })?;
        }
        return Ok(MainGroup {
            resource_name: rn,
            created: false,
            listed: Some(groups),
        });
    }
    match people
        .contact_groups_create(new_group(&ctx.group_name, None), Some(GROUP_FIELDS))
        .await
    {
        Ok(g) => Ok(MainGroup {
            resource_name: g
                .resource_name
                .doing("contactGroups.create returned no resourceName")?,
            created: false,
            listed: Some(groups),
        }),
        Err(e) if e.is(ErrorKind::Conflict) => {
            Err(UserError::Plain(conflict_message(&ctx.group_name)))
        }
        Err(e) => Err(e).doing("creating the managed contact group"),
    }
}

/// Fill `target.labels` with the extra labels (departments, shared lists) its contacts
/// are in, creating the missing ones when `write`. Returns the extra labels of orgsync's
/// that no contact needs any more, for the caller to delete after its writes (none
/// when not `write`). `listed`: the book's groups, when a step already listed them; a
/// book that needs no extra label is listed only then, which is when a change of
/// configuration can have left labels behind (the view changed).
async fn ensure_labels(
    ctx: &RunCtx,
    people: &People,
    target: &mut TargetUser,
    listed: Option<Vec<ContactGroup>>,
    write: bool,
) -> UserResult<Vec<String>> {
    let needed = ctx.directory.labels_for(target);
    let groups = match listed {
        Some(groups) => groups,
        None if needed.is_empty() => return Ok(Vec::new()),
        None => list_groups(people).await?,
    };
    let mut ours: BTreeMap<String, ContactGroup> = BTreeMap::new();
    for g in groups {
        if is_ours(&g)
            && let Some(key) = label_key(&g)
            && g.resource_name.is_some()
        {
            ours.insert(key.to_string(), g);
        }
    }
    let mut labels = BTreeMap::new();
    for name in needed {
        match ours.remove(name) {
            Some(g) => {
                let rn = g.resource_name.clone().unwrap_or_default();
                if write && g.name.as_deref() != Some(name) {
                    // Renamed in Google Contacts: orgsync's name comes back.
                    let renamed = ContactGroup {
                        name: Some(name.to_string()),
                        ..g
                    };
                    people
                        .contact_groups_update(renamed, Some("name"), Some(GROUP_FIELDS))
                        .await
                        .map_err(|e| label_error(e, name))?;
                }
                labels.insert(name.to_string(), rn);
            }
            None if write => {
                let g = people
                    .contact_groups_create(new_group(name, Some(name)), Some(GROUP_FIELDS))
                    .await
                    .map_err(|e| label_error(e, name))?;
                let rn = g
                    .resource_name
                    .doing("contactGroups.create returned no resourceName")?;
                labels.insert(name.to_string(), rn);
            }
            // A plan: the label would be made; nothing can be in it yet.
            None => {}
        }
    }
    target.labels = labels;
    if !write {
        return Ok(Vec::new());
    }
    Ok(ours.into_values().filter_map(|g| g.resource_name).collect())
}

fn label_error(e: ClientError, name: &str) -> UserError {
    if e.is(ErrorKind::Conflict) {
        UserError::Plain(label_conflict_message(name))
    } else {
        UserError::Google {
            doing: "creating or renaming a label",
            source: Box::new(e),
        }
    }
}

// ---- plan and undo ---------------------------------------------------------------

fn display_name(p: &Person) -> String {
    p.names
        .first()
        .and_then(|n| {
            n.display_name
                .clone()
                .or_else(|| n.unstructured_name.clone())
        })
        .or_else(|| p.email_addresses.first().and_then(|e| e.value.clone()))
        .or_else(|| p.resource_name.clone())
        .unwrap_or_default()
}

async fn plan_only(
    ctx: &RunCtx,
    id: &str,
    email: &str,
    lists: &BTreeSet<String>,
) -> UserResult<UserOutcome> {
    let people = ctx.client.people(email);
    let groups = list_groups(&people).await?;
    let group = groups
        .iter()
        .find(|g| is_our_group(g))
        .and_then(|g| g.resource_name.clone());
    let mut target = target_user(id, email, lists, group);
    ensure_labels(ctx, &people, &mut target, Some(groups), false).await?;
    let observed: Vec<Person> = people
        .connections_list(ConnectionsParams::new(ctx.read_mask()))
        .try_collect()
        .await
        .doing("reading the address book")?;
    let plan = plan_user(&target, &ctx.directory, &observed, &ctx.plan_options);
    // Deletes carry only resource names: look the contacts up once, by name.
    let by_rn: HashMap<&str, &Person> = observed
        .iter()
        .filter_map(|p| Some((p.resource_name.as_deref()?, p)))
        .collect();
    let mut out = UserOutcome::new(email, id, UserStatus::Unchanged);
    out.path = Some(ReadPath::Full);
    out.skipped_duplicates = plan.skipped_duplicates.len();
    out.personal = plan.personal_observed;
    out.managed = plan.managed_observed;
    out.unchanged = plan.unchanged;
    if let Some(reason) = &plan.skipped {
        out.status = UserStatus::Skipped;
        out.reason = Some(reason.clone());
        return Ok(out);
    }
    if let Some(stop) = guard_user(ctx, &plan) {
        out.status = UserStatus::Guarded;
        out.reason = Some(stop);
    }
    count(&mut out, &plan);
    out.photos = plan.photo_writes.len();
    if (out.writes() > 0 || out.photos > 0) && out.status == UserStatus::Unchanged {
        out.status = UserStatus::Changed;
    }
    let action = |action, directory_id: &str, name: String, fields: Vec<String>| ActionSummary {
        action,
        directory_id: directory_id.to_string(),
        name,
        fields,
    };
    for c in &plan.creates {
        let name = ctx
            .directory
            .contacts
            .get(&c.directory_id)
            .map_or_else(|| c.directory_id.clone(), |d| d.full_name.clone());
        out.actions
            .push(action("create", &c.directory_id, name, Vec::new()));
    }
    for u in &plan.updates {
        out.actions.push(action(
            "update",
            &u.directory_id,
            display_name(&u.person),
            u.update_mask.clone(),
        ));
    }
    for u in &plan.relabels {
        out.actions.push(action(
            "relabel",
            &u.directory_id,
            display_name(&u.person),
            u.update_mask.clone(),
        ));
    }
    for w in &plan.photo_writes {
        let name = ctx
            .directory
            .contacts
            .get(&w.directory_id)
            .map_or_else(|| w.directory_id.clone(), |d| d.full_name.clone());
        out.actions
            .push(action("photo", &w.directory_id, name, Vec::new()));
    }
    let name_of = |rn: &str| {
        by_rn
            .get(rn)
            .map_or_else(|| rn.to_string(), |p| display_name(p))
    };
    let id_of = |rn: &str| {
        by_rn
            .get(rn)
            .and_then(|p| markers::managed_id(p))
            .unwrap_or("")
            .to_string()
    };
    for rn in &plan.deletes {
        out.actions
            .push(action("delete", &id_of(rn), name_of(rn), Vec::new()));
    }
    for rn in &plan.duplicates_merged {
        out.actions.push(action(
            "mergeDuplicate",
            &id_of(rn),
            name_of(rn),
            Vec::new(),
        ));
    }
    Ok(out)
}

/// Remove every contact orgsync created (managed and orphaned markers) and the managed
/// group; personal contacts stay.
/// Empty the book of someone who left the targets (as `undo` does for one user).
pub(super) async fn empty_former(ctx: &RunCtx, user: &super::Target) -> UserOutcome {
    let (Some(id), Some(email)) = (user.id.as_deref(), user.primary_email.as_deref()) else {
        return UserOutcome::failed("?", "", "a former target without id or email".into());
    };
    undo(ctx, id, email, ctx.dry_run || ctx.mode == Mode::Plan)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(user = %email, error = %crate::error::chain_text(&e), "contacts: emptying a former target's book failed");
            UserOutcome::failed(email, id, describe(&e))
        })
}

async fn undo(ctx: &RunCtx, id: &str, email: &str, dry_run: bool) -> UserResult<UserOutcome> {
    let people = ctx.client.people(email);
    // The main group and the extra labels: every group orgsync made.
    let groups: Vec<String> = list_groups(&people)
        .await?
        .into_iter()
        .filter(is_ours)
        .filter_map(|g| g.resource_name)
        .collect();
    let mut ours = Vec::new();
    let mut personal = 0;
    let mut listing =
        std::pin::pin!(people.connections_list(ConnectionsParams::new(ctx.read_mask())));
    while let Some(p) = listing.try_next().await.doing("reading the address book")? {
        if p.is_deleted() {
            continue;
        }
        match p.resource_name {
            Some(rn) if markers::is_managed(&p) || markers::is_orphan(&p) => ours.push(rn),
            _ => personal += 1,
        }
    }
    let mut out = UserOutcome::new(email, id, UserStatus::Unchanged);
    out.path = Some(ReadPath::Full);
    out.personal = personal;
    out.managed = ours.len();
    out.deleted = ours.len();
    if !ours.is_empty() || !groups.is_empty() {
        out.status = UserStatus::Changed;
    }
    if dry_run {
        return Ok(out);
    }
    if !ours.is_empty() {
        people
            .batch_delete_contacts_chunked(ours)
            .await
            .doing("deleting orgsync's contacts")?;
    }
    for group in groups {
        match people.contact_groups_delete(&group, false).await {
            Ok(()) => {}
            Err(e) if e.is(ErrorKind::NotFound) => {}
            Err(e) => return Err(e).doing("deleting the managed contact group"),
        }
    }
    ctx.store
        .delete_contacts_state(id)
        .await
        .doing("forgetting the user's sync state")?;
    Ok(out)
}
