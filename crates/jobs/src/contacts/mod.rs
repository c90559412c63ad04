//! The Directory → Contacts run: `orgsync contacts plan | sync | undo`.
//!
//! One directory read per run, then every target user in parallel (`concurrency`),
//! each user's work sequential (the client also serialises People mutations per user):
//!
//! 1. **Incremental shortcut.** With a stored sync token and an unchanged *directory
//!    view* (hash of everything that determines this user's contacts), one
//!    `connections.list?syncToken=` tells whether the address book changed. Nothing, or
//!    only personal contacts → done: one read, no write.
//! 2. **Managed group.** Found by its `clientData` marker (or its name), created if
//!    missing. A group created *now* for a user without state means nothing of ours should
//!    be in that address book yet: the full read is done after the writes instead of
//!    before (the "fresh" path), so a first sync costs what the lower bound says. That
//!    read is parsed as markers only and checked by
//!    `orgsync_core::contacts::fresh_creates_landed` (each create once, in the label,
//!    with its planned markers, nothing else of ours); anything else — stale contacts of
//!    a lost state file, a create that landed twice — costs one more, full read and a
//!    re-plan that repairs it.
//! 3. **Read, plan, guard, apply.** All pages (sync token requested), the pure planner
//!    (`orgsync_core::contacts::plan_user`), the per-user guard, then batch writes:
//!    deletes (500), updates under one field mask (200), creates (200, marker-checked
//!    when an outcome is unknown). Each colleague's contact is serialised once per run
//!    (`DesiredDirectory::new_person_json`); a book's creates only splice in its label.
//! 4. **Refresh and record.** After writes, the changes since the pre-write token are
//!    read back (our own writes, usually one page) so the stored token is fresh; any
//!    change we did not make clears the view hash, forcing a full read next time. A
//!    stale etag (someone edited a contact mid-run) re-runs the user from a full read.
//!
//! # The safety guard, before any write
//!
//! Holding every user's plan in memory to judge them together would cost gigabytes at
//! 2,000 users, so the run-level guard predicts instead: orgsync records the source ids
//! of the last complete run; the share of them missing now is the share of managed
//! contacts a sync would delete. Over the limit (or an empty directory read) the run
//! stops before reading a single address book. Each user's real plan is also checked
//! before that user's first write (catching, say, a lost state file); a user stopped
//! there gets no write and the run exits 3.
//!
//! # One writing run at a time
//!
//! `sync` and `undo` hold the [`lease::RUN_LEASE`] store lease for the whole run (see
//! [`lease`]); a second one waits for it, or fails at once with [`lease::LeaseError::Held`]
//! when asked not to wait. `plan` and `--dry-run` write nothing and take no lease.

pub mod lease;
mod lists;
mod photos;
mod report;
mod target;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use orgsync_client::GoogleClient;
use orgsync_core::contacts::estimate::{BookWork, Consumption, estimate};
use orgsync_core::contacts::{
    DesiredDirectory, DesiredDirectoryBuilder, LeaverPolicy, MappingOptions, PersonalDuplicates,
    PlanOptions,
};
use orgsync_core::guard::{GuardVerdict, SafetyGuard};
use orgsync_store::{Store, StoreError};

pub use report::{
    ActionSummary, CallReport, ContactsReport, Mode, QuotaEstimate, QuotaReport, ReadPath, Totals,
    UserOutcome, UserStatus,
};

use crate::config::{Config, ContactsConfig, LeaverAction};
use crate::directory::{DirectoryRead, read_directory_each};
use crate::error::FailureKind;
use crate::runs::{self, AppliedChange, JobName, RunFailure, RunOutcome, RunRecord, Trigger};

/// Why a contacts run as a whole failed (a single user's failure is in the report). Each
/// variant's message says what was being done; its source says why.
#[derive(Debug, thiserror::Error)]
pub enum ContactsError {
    #[error("reading the directory")]
    Directory(#[source] orgsync_client::Error),
    /// A target the caller restricted the run to is not one of this sync's targets.
    #[error(
        "{email}: not a target of this sync (not in the directory, or outside \
         [contacts.targets])"
    )]
    UnknownTarget { email: String },
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    /// The state store failed; `doing` says at which step.
    #[error("{doing}")]
    Store {
        doing: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("recording the run's sources")]
    Encode(#[source] serde_json::Error),
    /// A shared list that cannot be used as configured (a bad CSV row, an unknown
    /// label): nothing was written.
    #[error("shared list {list:?}: {problem}")]
    List { list: String, problem: String },
    /// A custom attribute the config names does not exist in the Directory.
    #[error(transparent)]
    UnknownAttribute(#[from] crate::attributes::UnknownAttribute),
    /// A shared list's source could not be read from Google.
    #[error("shared list {list:?}: {doing}")]
    ListRead {
        list: String,
        doing: String,
        #[source]
        source: orgsync_client::Error,
    },
}

impl ContactsError {
    pub fn kind(&self) -> FailureKind {
        match self {
            ContactsError::Directory(e) => FailureKind::Google(e.kind()),
            ContactsError::UnknownTarget { .. } => FailureKind::Config,
            ContactsError::Lease(e) => e.kind(),
            ContactsError::Store { .. } | ContactsError::Encode(_) => FailureKind::Store,
            ContactsError::List { .. } | ContactsError::UnknownAttribute(_) => FailureKind::Config,
            ContactsError::ListRead { source, .. } => FailureKind::Google(source.kind()),
        }
    }

    fn store(doing: &'static str) -> impl FnOnce(StoreError) -> ContactsError {
        move |source| ContactsError::Store { doing, source }
    }
}

/// Fields read from each contact: everything the planner compares or preserves.
pub const READ_MASK: &str =
    "names,emailAddresses,phoneNumbers,organizations,externalIds,clientData,memberships,metadata";
/// [`READ_MASK`] and `userDefined`, when `custom_fields` write some. Only then: a sync
/// token is bound to the fields it was asked with, so a new mask costs every book one
/// full read.
pub const READ_MASK_WITH_USER_DEFINED: &str = "names,emailAddresses,phoneNumbers,organizations,\
    externalIds,clientData,memberships,metadata,userDefined";
/// [`READ_MASK`] and the fields only shared lists write (notes, addresses), when a list
/// has them: like `userDefined`, only then.
pub const READ_MASK_WITH_LIST_FIELDS: &str = "names,emailAddresses,phoneNumbers,organizations,\
    externalIds,clientData,memberships,metadata,addresses,biographies";
/// Both of the above.
pub const READ_MASK_WITH_ALL: &str = "names,emailAddresses,phoneNumbers,organizations,\
    externalIds,clientData,memberships,metadata,userDefined,addresses,biographies";
/// Fields read back from writes: only their resource names are used (the verifying read
/// comes after), so the smallest valid mask keeps both sides from (de)serialising every
/// written contact a second time.
pub const WRITE_READ_MASK: &str = "metadata";

/// `sync_state` scope and key of the last complete run's source ids.
const STATE_SCOPE: &str = "contacts";
const SOURCES_KEY: &str = "sources";

/// What the caller asks for.
#[derive(Clone)]
pub struct ContactsOptions {
    pub mode: Mode,
    /// Sync/undo: decide and report, write nothing.
    pub dry_run: bool,
    /// Override the safety guard.
    pub force: bool,
    /// Restrict targets to these emails (case-insensitive).
    pub users: Vec<String>,
    /// At most this many targets (after `users`).
    pub limit: Option<usize>,
    /// Users processed in parallel; `None` = the config's `contacts.concurrency`.
    pub concurrency: Option<usize>,
    /// Told of each finished target as the run goes (the CLI draws a progress bar).
    pub progress: Option<Arc<dyn Progress>>,
    /// How a writing run takes the [`lease::RUN_LEASE`] lease.
    pub lease: LeaseOptions,
    /// `serve`'s push-driven run: a book whose directory view is the one last written is
    /// not read at all (see [`ReadPath::Unread`]); the run is not a complete one.
    pub changed_views_only: bool,
    /// What started the run, for its record ([`crate::runs`]).
    pub trigger: Trigger,
}

impl std::fmt::Debug for ContactsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactsOptions")
            .field("mode", &self.mode)
            .field("dry_run", &self.dry_run)
            .field("force", &self.force)
            .field("users", &self.users)
            .field("limit", &self.limit)
            .field("concurrency", &self.concurrency)
            .field("progress", &self.progress.as_ref().map(|_| "<progress>"))
            .field("lease", &self.lease)
            .field("changed_views_only", &self.changed_views_only)
            .field("trigger", &self.trigger)
            .finish()
    }
}

/// What a run tells its caller as it goes, so that the caller can show progress; the run
/// itself never draws anything.
pub trait Progress: Send + Sync {
    /// The run is about to work on `targets` address books.
    fn started(&self, targets: usize);
    /// One target is done; `outcome.status` says how.
    fn user_done(&self, outcome: &UserOutcome);
    /// Every target is done.
    fn finished(&self);
}

/// Called when a run finds the lease held and starts (or goes on) waiting.
pub type OnLeaseWait = Arc<dyn Fn(&orgsync_store::Lease) + Send + Sync>;

/// How a writing run takes the lease.
#[derive(Clone, Default)]
pub struct LeaseOptions {
    /// Fail at once with [`lease::LeaseError::Held`] instead of waiting.
    pub no_wait: bool,
    /// Told when the run starts waiting for another holder (default: a warning in the log).
    pub on_wait: Option<OnLeaseWait>,
    pub timing: lease::LeaseTiming,
}

impl std::fmt::Debug for LeaseOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseOptions")
            .field("no_wait", &self.no_wait)
            .field("on_wait", &self.on_wait.as_ref().map(|_| "<callback>"))
            .field("timing", &self.timing)
            .finish()
    }
}

impl ContactsOptions {
    pub fn new(mode: Mode) -> Self {
        ContactsOptions {
            mode,
            dry_run: false,
            force: false,
            users: Vec::new(),
            limit: None,
            concurrency: None,
            progress: None,
            lease: LeaseOptions::default(),
            changed_views_only: false,
            trigger: Trigger::Manual,
        }
    }
}

/// A target address book's owner: all the run needs of their directory entry.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub id: Option<String>,
    pub primary_email: Option<String>,
    /// The shared lists this person receives.
    pub lists: BTreeSet<String>,
}

/// What the contact mapping reads of a directory user ([`orgsync_core::contacts::mapping`]:
/// names, aliases, phones, the primary organisation, employee ids, the photo's etag).
/// Asking for only these (Google's partial response) keeps the rest of each user off the
/// wire and out of memory. A field the mapping starts to read must be added here:
/// `a_partial_directory_read_maps_and_selects_exactly_as_a_whole_one` fails otherwise.
pub const MAPPING_FIELDS: &str = "name(givenName,familyName,fullName,displayName),\
    phones(value,type,customType),organizations(name,title,department,primary),\
    externalIds(value,type),thumbnailPhotoEtag";

/// The `fields` of the contacts run's directory read: the mapping's and the scope's.
pub fn directory_fields() -> String {
    format!("{},{MAPPING_FIELDS}", crate::directory::SCOPE_FIELDS)
}

/// Everything one user's work needs, shared by all tasks of a run.
struct RunCtx {
    client: GoogleClient,
    store: Arc<dyn Store>,
    directory: DesiredDirectory,
    plan_options: PlanOptions,
    guard: SafetyGuard,
    group_name: String,
    mode: Mode,
    dry_run: bool,
    /// Directory photos fetched this run (`include_photos`), shared by all targets.
    photos: photos::PhotoCache,
    /// Whole-book reads at once (see [`BOOK_READS_AT_ONCE`]).
    book_reads: tokio::sync::Semaphore,
    /// [`ContactsOptions::changed_views_only`].
    changed_only: bool,
}

impl RunCtx {
    /// The `personFields` every read of a book asks for.
    fn read_mask(&self) -> &'static str {
        let user_defined = !self.directory.mapping.custom_fields.is_empty();
        match (user_defined, self.directory.has_list_fields()) {
            (false, false) => READ_MASK,
            (true, false) => READ_MASK_WITH_USER_DEFINED,
            (false, true) => READ_MASK_WITH_LIST_FIELDS,
            (true, true) => READ_MASK_WITH_ALL,
        }
    }
}

/// How many address books may be read whole at the same time. Books run in parallel to
/// fill the project's write quota (a hundred at once for a 10,000-person first sync),
/// and they finish their writes together, so without a gate a hundred read-backs would
/// each hold a 1,000-contact page (about 2.5 MB with its decoding) at the same moment:
/// at 10,000 people that was the run's peak memory. Reads cost little quota, so queuing
/// them costs little time (measured in docs/PERFORMANCE.md).
const BOOK_READS_AT_ONCE: usize = 32;

/// The mapping options a config describes.
pub fn mapping_options(config: &Config) -> MappingOptions {
    MappingOptions {
        company_name: config.contacts.company_name.clone(),
        include_aliases: config.contacts.include_aliases,
        include_employee_id: config.contacts.include_employee_id,
        include_photos: config.contacts.include_photos,
        phone_format: config.contacts.phone_format,
        phone_region: config.contacts.phone_region.clone(),
        custom_fields: config.contacts.custom_fields.clone(),
        label_by: config.contacts.label_by,
        label_prefix: if config.contacts.label_by.is_some() {
            config.contacts.group_name.clone()
        } else {
            String::new()
        },
        ..MappingOptions::default()
    }
}

/// Whether a run with these options writes (and so needs the lease).
pub fn writes(options: &ContactsOptions) -> bool {
    options.mode != Mode::Plan && !options.dry_run
}

/// Run the contacts job. Errors are for the run as a whole (directory read, state
/// store, the lease: [`lease::LeaseError`]); a user's failure is recorded in the report
/// and the others go on.
///
/// A writing run first takes the [`lease::RUN_LEASE`] lease (waiting for another run
/// unless `options.lease.no_wait`) and releases it at the end, on success or error.
pub async fn run(
    client: &GoogleClient,
    store: Arc<dyn Store>,
    config: &Config,
    options: &ContactsOptions,
) -> Result<ContactsReport, ContactsError> {
    if !writes(options) {
        return run_unleased(client, store, config, options).await;
    }
    let holder = lease::holder_id();
    let timing = options.lease.timing;
    let held = if options.lease.no_wait {
        lease::RunLease::try_acquire(store.clone(), lease::RUN_LEASE, &holder, timing)
            .await
            .map_err(lease::LeaseError::Store)?
            .map_err(lease::LeaseError::Held)?
    } else {
        let on_wait = options.lease.on_wait.clone();
        lease::RunLease::acquire_waiting(store.clone(), lease::RUN_LEASE, &holder, timing, |l| {
            match &on_wait {
                Some(tell) => tell(l),
                None => tracing::warn!(
                    holder = %l.holder,
                    since = %lease::since(l),
                    "another contacts run holds the lease; waiting"
                ),
            }
        })
        .await
        .map_err(lease::LeaseError::Store)?
    };
    tracing::debug!(holder = %held.holder(), "contacts-run lease taken");
    let result = run_under_lease(&held, client, store.clone(), config, options).await;
    held.release().await;
    result
}

/// A run under a lease the caller holds (a long-lived holder takes it once and runs many
/// times). If the lease is lost the run stops at once — its in-flight requests are dropped
/// — and fails with [`lease::LeaseError::Lost`].
pub async fn run_under_lease(
    lease: &lease::RunLease,
    client: &GoogleClient,
    store: Arc<dyn Store>,
    config: &Config,
    options: &ContactsOptions,
) -> Result<ContactsReport, ContactsError> {
    let started_at = chrono::Utc::now();
    let result = tokio::select! {
        biased;
        reason = lease.lost() => Err(lease::LeaseError::Lost(reason).into()),
        report = run_unleased(client, store.clone(), config, options) => report,
    };
    if writes(options) {
        let record = run_record(options, started_at, &result);
        let changes = applied_changes(&record);
        let stored = async {
            runs::record_run(&*store, &record).await?;
            runs::add_changes(&*store, changes).await
        };
        if let Err(e) = stored.await {
            tracing::warn!(error = %e, "cannot record the contacts run for the status page");
        }
    }
    result
}

/// The record of a writing run, for [`crate::runs`].
fn run_record(
    options: &ContactsOptions,
    started_at: chrono::DateTime<chrono::Utc>,
    result: &Result<ContactsReport, ContactsError>,
) -> RunRecord {
    let mut record = RunRecord {
        job: JobName::Contacts,
        trigger: options.trigger,
        started_at,
        finished_at: chrono::Utc::now(),
        outcome: RunOutcome::Ok,
        counts: Default::default(),
        failures: Vec::new(),
        failures_total: 0,
        message: None,
        complete: options.mode == Mode::Sync
            && options.users.is_empty()
            && options.limit.is_none()
            && !options.changed_views_only,
    };
    match result {
        Err(e) => {
            record.outcome = RunOutcome::Failed;
            record.message = Some(crate::error::chain_text(e));
            record
        }
        Ok(report) => {
            let t = &report.totals;
            for (name, n) in [
                ("address_books", t.targets),
                ("created", t.created),
                ("updated", t.updated + t.relabelled),
                ("deleted", t.deleted),
                ("unchanged", t.unchanged),
                ("books_changed", t.users_changed),
                ("books_unread", t.users_unread),
                ("books_failed", t.users_failed),
                ("books_guarded", t.users_guarded),
            ] {
                record.counts.insert(name.to_string(), n as u64);
            }
            if let orgsync_core::guard::GuardVerdict::Stop {
                reason,
                what_to_check,
            } = &report.guard
            {
                record.outcome = RunOutcome::Guard;
                record.message = Some(format!(
                    "{reason}; {what_to_check}; run `orgsync contacts sync --force` if intended"
                ));
            } else if t.users_guarded > 0 {
                record.outcome = RunOutcome::Guard;
                record.message = Some(format!(
                    "{} address books stopped by the safety guard; run `orgsync contacts \
                     sync` to review and --force if intended",
                    t.users_guarded
                ));
            } else if t.users_failed > 0 {
                record.outcome = RunOutcome::Partial;
            }
            record.with_failures(
                report
                    .users
                    .iter()
                    .filter(|u| matches!(u.status, UserStatus::Failed | UserStatus::Guarded))
                    .map(|u| RunFailure {
                        subject: u.email.clone(),
                        reason: u.reason.clone().unwrap_or_default(),
                    }),
            )
        }
    }
}

/// What a run changed, as one line of the status page's list.
fn applied_changes(record: &RunRecord) -> Vec<AppliedChange> {
    let n = |k: &str| record.counts.get(k).copied().unwrap_or(0);
    let (created, updated, deleted) = (n("created"), n("updated"), n("deleted"));
    if created + updated + deleted == 0 {
        return Vec::new();
    }
    vec![AppliedChange {
        at: record.finished_at,
        job: JobName::Contacts,
        action: "contacts written".into(),
        subject: format!("{} address books", n("books_changed")),
        detail: Some(
            format!(
                "{created} created, {updated} updated, {deleted} deleted ({:?} run)",
                record.trigger
            )
            .to_lowercase(),
        ),
    }]
}

/// The run itself; the caller holds the lease if it writes.
async fn run_unleased(
    client: &GoogleClient,
    store: Arc<dyn Store>,
    config: &Config,
    options: &ContactsOptions,
) -> Result<ContactsReport, ContactsError> {
    let started = Instant::now();
    let contacts = &config.contacts;
    let mapping = mapping_options(config);
    // The config's own names first, then the lists: a misspelt attribute, a bad file
    // or label stops the run before the directory read.
    crate::attributes::check(
        client,
        &config.google,
        &crate::attributes::of_contacts(config),
    )
    .await?;
    let list_contacts = lists::read_all(client, config, &mapping).await?;
    let mut scopes = vec![&contacts.sources, &contacts.targets];
    scopes.extend(
        contacts
            .shared_lists
            .iter()
            .filter_map(|l| l.targets.as_ref()),
    );
    // Books orgsync filled whose owners are no longer targets: emptied of orgsync's
    // contacts when their owner is still active (moved out of [contacts.targets]), only
    // forgotten when orgsync can no longer write as them (suspended, deleted).
    let find_former =
        options.mode == Mode::Sync && options.users.is_empty() && options.limit.is_none();
    let books = if find_former {
        store
            .list_contacts_state()
            .await
            .map_err(ContactsError::store(
                "listing the address books of earlier runs",
            ))?
    } else {
        Vec::new()
    };
    let book_owner_ids: HashSet<&str> = books.iter().map(|b| b.target_id.as_str()).collect();
    let mut book_owners: HashMap<String, BookOwner> = HashMap::new();
    // The directory streams through: each source is mapped to its desired contact as its
    // page arrives, each target reduced to its id, address and lists, and the page dropped
    // (no `User` outlives its page).
    let mut builder = DesiredDirectoryBuilder::new(&mapping);
    let mut targets: Vec<Target> = Vec::new();
    let mut source_ids: Vec<String> = Vec::new();
    let mut directory_users = 0usize;
    read_directory_each(
        client,
        &config.google,
        &scopes,
        "basic",
        Some(&directory_fields()),
        &contacts
            .custom_fields
            .iter()
            .map(|c| c.schema.as_str())
            .collect::<Vec<_>>(),
        |read, u| {
            directory_users += 1;
            let id = u.id.as_deref().filter(|id| !id.is_empty());
            if let Some(id) = id.filter(|id| book_owner_ids.contains(id)) {
                book_owners.insert(
                    id.to_owned(),
                    BookOwner {
                        email: u.primary_email.clone(),
                        writable: !u.suspended.unwrap_or(false) && !u.archived.unwrap_or(false),
                    },
                );
            }
            if id.is_some() && read.selects(&contacts.targets, &u) {
                targets.push(target_of(contacts, read, &u));
            }
            if read.selects(&contacts.sources, &u) {
                if let Some(id) = id {
                    source_ids.push(id.to_owned());
                }
                builder.add(&u);
            }
        },
    )
    .await
    .map_err(ContactsError::Directory)?;
    let mut directory = builder.finish(directory_users);
    targets.sort_by(|a, b| a.primary_email.cmp(&b.primary_email));
    targets.dedup_by(|a, b| a.id == b.id);
    if !options.users.is_empty() {
        let wanted: BTreeSet<String> = options.users.iter().map(|u| u.to_lowercase()).collect();
        let known: BTreeSet<String> = targets
            .iter()
            .filter_map(|u| u.primary_email.as_deref().map(str::to_lowercase))
            .collect();
        if let Some(missing) = wanted.iter().find(|w| !known.contains(*w)) {
            return Err(ContactsError::UnknownTarget {
                email: missing.clone(),
            });
        }
        targets.retain(|u| {
            u.primary_email
                .as_deref()
                .is_some_and(|e| wanted.contains(&e.to_lowercase()))
        });
    }
    if let Some(limit) = options.limit {
        targets.truncate(limit);
    }
    let former = former_targets(&books, &targets, book_owners);
    // The lists' contacts are judged by the guard like colleagues; sorted once, with them.
    source_ids.extend(list_contacts.iter().map(|d| d.directory_id.clone()));
    source_ids.sort_unstable();
    source_ids.dedup();
    if !list_contacts.is_empty() {
        directory.add_list_contacts(list_contacts);
    }
    if !directory.custom_fields_unseen.is_empty() {
        tracing::warn!(
            fields = %directory.custom_fields_unseen.join(", "),
            "no selected user has a value for these custom fields: check their names"
        );
    }
    if let Some((email, number)) = directory.phones_kept_as_written.first() {
        tracing::warn!(
            count = directory.phones_kept_as_written.len(),
            first = %format!("{email}: {number}"),
            "phone numbers that are not valid for phone_region are written as in the directory"
        );
    }

    let guard = SafetyGuard {
        max_delete_share: contacts.max_delete_share,
        force: options.force,
    };
    let previous = previous_sources(&*store).await?;
    let mut verdict = GuardVerdict::Proceed;
    if options.mode != Mode::Undo {
        verdict = predict_guard(
            previous.as_deref().unwrap_or(&[]),
            &guard,
            &source_ids,
            targets.len(),
            &directory,
        );
    }
    let mut report = ContactsReport {
        mode: options.mode,
        dry_run: options.dry_run,
        directory_users,
        sources: source_ids.len(),
        guard: verdict.clone(),
        totals: Totals::default(),
        users: Vec::new(),
        calls: CallReport::default(),
        duration_ms: 0,
        concurrency: 0,
        quota: QuotaReport::default(),
        phones_kept_as_written: directory.phones_kept_as_written.clone(),
        custom_fields_unseen: directory.custom_fields_unseen.clone(),
    };
    if options.mode == Mode::Sync && !options.dry_run {
        let books = books_before(
            &*store,
            &directory,
            &targets,
            &source_ids,
            previous.as_deref(),
            contacts.personal_duplicates == PersonalDuplicates::Skip,
        )
        .await?;
        report.quota.predicted = estimate_for(client, books);
    }
    // In plan mode the verdict is information; a sync stops here.
    if !verdict.may_proceed() && options.mode == Mode::Sync {
        report.totals.targets = targets.len();
        report.calls = CallReport::from(&client.stats().snapshot());
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    let ctx = Arc::new(RunCtx {
        client: client.clone(),
        store: store.clone(),
        directory,
        plan_options: PlanOptions {
            leavers: match contacts.leavers {
                LeaverAction::Delete => LeaverPolicy::Delete,
                LeaverAction::Keep => LeaverPolicy::Keep,
            },
            personal_duplicates: contacts.personal_duplicates,
            ..PlanOptions::default()
        },
        guard,
        group_name: contacts.group_name.clone(),
        mode: options.mode,
        dry_run: options.dry_run,
        photos: photos::PhotoCache::default(),
        book_reads: tokio::sync::Semaphore::new(BOOK_READS_AT_ONCE),
        changed_only: options.changed_views_only && options.mode == Mode::Sync,
    });
    let progress = options.progress.as_deref();
    if let Some(p) = progress {
        p.started(targets.len());
    }
    let concurrency = options
        .concurrency
        .or(contacts.concurrency)
        .unwrap_or_else(|| fill_the_project(client, contacts.max_concurrency, targets.len()))
        .max(1);
    report.concurrency = concurrency;
    tracing::info!(
        concurrency,
        targets = targets.len(),
        "address books worked on at once"
    );
    let mut former_outcomes = Vec::new();
    if !former.is_empty() {
        former_outcomes = empty_former_books(&ctx, &former, options.force, directory_users).await;
    }
    let mut outcomes: Vec<UserOutcome> = futures::stream::iter(targets)
        .map(|user| {
            let ctx = ctx.clone();
            // Polled on this task, not spawned: measured on 2 cores (docs/PERFORMANCE.md),
            // a task per user cost more CPU and memory than it gained in parallelism.
            async move { target::process(&ctx, &user).await }
        })
        .buffer_unordered(concurrency)
        .inspect(|o| {
            if let Some(p) = progress {
                p.user_done(o);
            }
        })
        .collect()
        .await;
    if let Some(p) = progress {
        p.finished();
    }
    outcomes.extend(former_outcomes);
    outcomes.sort_by(|a, b| a.email.cmp(&b.email));
    report.totals = ContactsReport::totals_from(&outcomes);
    if options.mode == Mode::Plan || options.dry_run {
        report.quota.predicted = estimate_for(client, books_planned(&outcomes));
    }
    report.users = outcomes;

    // A complete, clean sync becomes the baseline of the next run's guard prediction.
    let complete = options.users.is_empty() && options.limit.is_none();
    if options.mode == Mode::Sync
        && !options.dry_run
        && complete
        && report.totals.users_failed == 0
        && report.totals.users_guarded == 0
    {
        let json = serde_json::to_string(&source_ids).map_err(ContactsError::Encode)?;
        store
            .set_sync_state(STATE_SCOPE, SOURCES_KEY, &json, chrono::Utc::now())
            .await
            .map_err(ContactsError::store("recording the run's sources"))?;
    }
    if options.mode == Mode::Undo && !options.dry_run && complete {
        store
            .delete_sync_state(STATE_SCOPE, SOURCES_KEY)
            .await
            .map_err(ContactsError::store("clearing the recorded sources"))?;
    }
    report.calls = CallReport::from(&client.stats().snapshot());
    report.quota.metrics = client.quota_usage();
    report.quota.http_429 = client.stats().snapshot().total_429;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Books of the last runs whose owners are not targets now.
#[derive(Default)]
struct FormerTargets {
    /// Still active: their books are emptied of orgsync's contacts.
    to_empty: Vec<Target>,
    /// Suspended, archived or gone: orgsync cannot write as them; their state is dropped,
    /// so a return to the targets starts from a full read.
    to_forget: Vec<String>,
    /// Books with state, this run's targets included (the guard's denominator).
    books: usize,
}

impl FormerTargets {
    fn is_empty(&self) -> bool {
        self.to_empty.is_empty() && self.to_forget.is_empty()
    }
}

/// What a former target's directory entry tells: their address, and whether orgsync can
/// still write as them (not suspended or archived).
struct BookOwner {
    email: Option<String>,
    writable: bool,
}

/// The books of `books` (every book orgsync filled) whose owners are not among `targets`,
/// sorted by what their directory entries (`owners`, by id) allow.
fn former_targets(
    books: &[orgsync_store::ContactsUserState],
    targets: &[Target],
    mut owners: HashMap<String, BookOwner>,
) -> FormerTargets {
    let current: HashSet<&str> = targets.iter().filter_map(|t| t.id.as_deref()).collect();
    let mut former = FormerTargets {
        books: books.len(),
        ..FormerTargets::default()
    };
    for book in books {
        let id = book.target_id.as_str();
        if current.contains(id) {
            continue;
        }
        match owners.remove(id) {
            Some(owner) if owner.writable => former.to_empty.push(Target {
                id: Some(id.to_owned()),
                primary_email: owner.email.or(Some(book.target_email.clone())),
                lists: BTreeSet::new(),
            }),
            _ => former.to_forget.push(id.to_owned()),
        }
    }
    former
}

/// A target of this run as the directory read has them: id, address, and the shared lists
/// they receive.
fn target_of(
    contacts: &ContactsConfig,
    read: &DirectoryRead,
    u: &orgsync_wire::directory::User,
) -> Target {
    Target {
        id: u.id.clone(),
        primary_email: u.primary_email.clone(),
        lists: contacts
            .shared_lists
            .iter()
            .filter(|l| l.targets.as_ref().is_none_or(|t| read.selects(t, u)))
            // The person a label is copied from has those contacts already.
            .filter(|l| {
                l.from_user.as_deref().is_none_or(|from| {
                    !u.primary_email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(from.trim()))
                })
            })
            .map(|l| l.name.clone())
            .collect(),
    }
}

/// Empty the former targets' books (or, with a dry run or plan, say what would go), under
/// their own guard; forget the books orgsync can no longer write.
async fn empty_former_books(
    ctx: &RunCtx,
    former: &FormerTargets,
    force: bool,
    read_count: usize,
) -> Vec<UserOutcome> {
    let guard = SafetyGuard {
        max_delete_share: ctx.guard.max_delete_share,
        force,
    };
    let verdict = guard.check_former_targets(
        former.books,
        former.to_empty.len(),
        ctx.directory.is_empty(),
        read_count,
    );
    let mut out = Vec::new();
    if let GuardVerdict::Stop { reason, .. } = &verdict {
        for t in &former.to_empty {
            let mut o = UserOutcome::new(
                t.primary_email.as_deref().unwrap_or("?"),
                t.id.as_deref().unwrap_or(""),
                UserStatus::Guarded,
            );
            o.reason = Some(format!("left [contacts.targets]; not emptied: {reason}"));
            out.push(o);
        }
    } else {
        for t in &former.to_empty {
            let mut o = target::empty_former(ctx, t).await;
            if o.status != UserStatus::Failed {
                o.reason = Some("left [contacts.targets]: orgsync's contacts removed".into());
            }
            out.push(o);
        }
    }
    if ctx.mode == Mode::Sync && !ctx.dry_run {
        for id in &former.to_forget {
            if let Err(e) = ctx.store.delete_contacts_state(id).await {
                tracing::warn!(user = %id, error = %e, "cannot forget a former target's state");
            }
        }
    }
    out
}

/// The source ids of the last complete run, if there was one.
async fn previous_sources(store: &dyn Store) -> Result<Option<Vec<String>>, ContactsError> {
    Ok(store
        .get_sync_state(STATE_SCOPE, SOURCES_KEY)
        .await
        .map_err(ContactsError::store("reading the previous run's sources"))?
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// The run-level guard: the share of the last run's sources that are gone now.
fn predict_guard(
    previous: &[String],
    guard: &SafetyGuard,
    source_ids: &[String],
    books: usize,
    directory: &DesiredDirectory,
) -> GuardVerdict {
    if previous.is_empty() {
        return GuardVerdict::Proceed;
    }
    let now: BTreeSet<&str> = source_ids.iter().map(String::as_str).collect();
    let gone = previous
        .iter()
        .filter(|id| !now.contains(id.as_str()))
        .count();
    guard.check_source_counts(
        previous.len(),
        gone,
        books,
        directory.is_empty(),
        directory.read_count,
    )
}

/// Enough address books at once to spend the project's quota: per-user limits are
/// independent, so that is the project limit over the per-user one (100 for critical
/// writes by default), plus a quarter for users between calls. No project limit (or
/// no pacing): as many as allowed. Never more than `max` or the targets.
pub fn fill_the_project(client: &GoogleClient, max: usize, targets: usize) -> usize {
    use orgsync_wire::quota::{Metric, Scope};
    let mut need = 0usize;
    for metric in [
        Metric::PeopleRead,
        Metric::PeopleWrite,
        Metric::PeopleDeleteGroupWrite,
    ] {
        match (
            client.quota_limit(metric, Scope::User),
            client.quota_limit(metric, Scope::Project),
        ) {
            (Some(user), Some(project)) => {
                need = need.max(project.div_ceil(user) as usize);
            }
            _ => need = max,
        }
    }
    (need + need.div_ceil(4))
        .clamp(1, max.max(1))
        .min(targets.max(1))
}

/// The work each target is expected to need before its book is read: a target with no
/// stored state receives every source; one with state costs one read plus the sources
/// that joined or left since the last complete run.
async fn books_before(
    store: &dyn Store,
    directory: &DesiredDirectory,
    targets: &[Target],
    source_ids: &[String],
    previous: Option<&[String]>,
    skip: bool,
) -> Result<Vec<BookWork>, ContactsError> {
    let known: BTreeSet<String> = store
        .list_contacts_state()
        .await
        .map_err(ContactsError::store("reading the users' sync state"))?
        .into_iter()
        .map(|s| s.target_id)
        .collect();
    let (joined, left) = match previous {
        Some(prev) => {
            let before: BTreeSet<&str> = prev.iter().map(String::as_str).collect();
            let now: BTreeSet<&str> = source_ids.iter().map(String::as_str).collect();
            (
                now.difference(&before).count() as u64,
                before.difference(&now).count() as u64,
            )
        }
        // No complete run recorded (only partial ones): a book with state is assumed
        // current; its read will tell.
        None => (0, 0),
    };
    Ok(targets
        .iter()
        .map(|t| {
            let id = t.id.as_deref().unwrap_or_default();
            if known.contains(id) {
                BookWork {
                    creates: joined,
                    deletes: left,
                    ..BookWork::default()
                }
            } else {
                let target = orgsync_core::contacts::TargetUser {
                    directory_id: id.to_string(),
                    lists: t.lists.clone(),
                    ..Default::default()
                };
                BookWork {
                    creates: directory.desired_count(&target) as u64,
                    new_group: true,
                    new_labels: directory.labels_for(&target).len() as u64,
                    personal_read: skip,
                    ..BookWork::default()
                }
            }
        })
        .collect())
}

/// What the plan of each user would cost, as `contacts plan` and `--dry-run` found it.
fn books_planned(users: &[UserOutcome]) -> Vec<BookWork> {
    users
        .iter()
        .map(|u| BookWork {
            creates: u.created as u64,
            updates: (u.updated + u.relabelled) as u64,
            deletes: (u.deleted + u.duplicates_merged) as u64,
            contacts_read: 0,
            new_group: u.managed == 0 && u.created > 0,
            new_labels: 0,
            personal_read: false,
        })
        .collect()
}

/// The quota estimate of `books` under the client's limits (after any adaptation).
/// The run's time by quota, or `None` when no limit applies (pacing off, as against an
/// emulator without quotas): "about 0 s" would be a prediction nobody should trust.
fn estimate_for(client: &GoogleClient, books: Vec<BookWork>) -> Option<QuotaEstimate> {
    let consumption = Consumption::of_books(books);
    let e = estimate(&consumption, &|m, s| client.quota_limit(m, s));
    e.binding
        .is_some()
        .then(|| QuotaEstimate::new(e, client.config().quotas.minute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context;
    use orgsync_emulator::EmulatorConfig;
    use std::time::Duration;

    /// The run tells its [`Progress`] about every target, once, between `started` and
    /// `finished`: the binary's progress bar is fed from nothing else.
    #[tokio::test]
    async fn progress_hears_of_every_target_between_start_and_finish() {
        #[derive(Default)]
        struct Heard(std::sync::Mutex<Vec<String>>);
        impl Progress for Heard {
            fn started(&self, targets: usize) {
                self.0.lock().unwrap().push(format!("started {targets}"));
            }
            fn user_done(&self, outcome: &UserOutcome) {
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("done {}", outcome.email));
            }
            fn finished(&self) {
                self.0.lock().unwrap().push("finished".into());
            }
        }
        let emu = orgsync_emulator::spawn(EmulatorConfig::for_tests(4))
            .await
            .unwrap();
        let key = orgsync_emulator::oauth::service_account_key(&emu.emulator).unwrap();
        let config = context::emulator_config(
            &emu.base_url,
            serde_json::to_string(&key).unwrap(),
            &emu.emulator.config.admin_email(),
        );
        let client = context::service_account_client(&config).unwrap();
        let store: Arc<dyn Store> = Arc::new(
            orgsync_store_sqlite::SqliteStore::connect("sqlite::memory:")
                .await
                .unwrap(),
        );
        let heard = Arc::new(Heard::default());
        let options = ContactsOptions {
            progress: Some(heard.clone()),
            ..ContactsOptions::new(Mode::Plan)
        };
        let report = run(&client, store, &config, &options).await.unwrap();
        let heard = heard.0.lock().unwrap().clone();
        let targets = report.users.len();
        assert!(targets > 0, "{report:?}");
        assert_eq!(heard.len(), targets + 2, "{heard:?}");
        assert_eq!(heard[0], format!("started {targets}"));
        assert_eq!(heard[targets + 1], "finished");
        let mut done: Vec<&str> = heard[1..=targets]
            .iter()
            .map(|h| h.strip_prefix("done ").unwrap())
            .collect();
        done.sort_unstable();
        let reported: Vec<&str> = report.users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(done, reported);
    }

    /// A run whose lease is lost mid-run (another holder took it) stops writing and fails
    /// with [`lease::LeaseError::Lost`] instead of finishing beside the new holder.
    #[tokio::test]
    async fn a_run_that_loses_its_lease_stops_and_says_so() {
        let emu = orgsync_emulator::spawn(EmulatorConfig {
            // Slow enough that the run is still going when the lease is taken away.
            latency_ms: 200,
            ..EmulatorConfig::for_tests(8)
        })
        .await
        .unwrap();
        let key = orgsync_emulator::oauth::service_account_key(&emu.emulator).unwrap();
        let config = context::emulator_config(
            &emu.base_url,
            serde_json::to_string(&key).unwrap(),
            &emu.emulator.config.admin_email(),
        );
        let client = context::service_account_client(&config).unwrap();
        let store: Arc<dyn Store> = Arc::new(
            orgsync_store_sqlite::SqliteStore::connect("sqlite::memory:")
                .await
                .unwrap(),
        );
        let timing = lease::LeaseTiming {
            ttl: Duration::from_secs(5),
            renew_every: Duration::from_millis(200),
            poll_every: Duration::from_millis(50),
        };
        let held = lease::RunLease::try_acquire(store.clone(), lease::RUN_LEASE, "us", timing)
            .await
            .unwrap()
            .unwrap();
        let thief = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            thief.release_lease(lease::RUN_LEASE, "us").await.unwrap();
            let ttl = chrono::Duration::seconds(60);
            assert!(
                thief
                    .try_acquire_lease(lease::RUN_LEASE, "them", chrono::Utc::now(), ttl)
                    .await
                    .unwrap()
            );
        });
        let options = ContactsOptions {
            concurrency: Some(1),
            ..ContactsOptions::new(Mode::Sync)
        };
        let err = run_under_lease(&held, &client, store.clone(), &config, &options)
            .await
            .expect_err("the run went on without its lease");
        assert!(
            matches!(&err, ContactsError::Lease(lease::LeaseError::Lost(reason)) if reason.contains("them")),
            "{err:?}"
        );
        held.release().await;
        assert_eq!(
            store
                .get_lease(lease::RUN_LEASE)
                .await
                .unwrap()
                .unwrap()
                .holder,
            "them",
            "releasing a lost lease freed the new holder's"
        );
    }
}
