//! `orgsync-bench serve --phases contacts`: a directory change → every address book, through
//! `orgsync serve` with the shipped defaults, under Google's quota model.
//!
//! For each org size (`--contacts-users 300,1000`):
//!
//! 1. **Fill**: a first `contacts sync` of the whole org (the emulator's `google` quota
//!    profile with a one-second quota minute, and orgsync told the same, so the setup
//!    takes seconds; it is setup, not a figure).
//! 2. The emulator goes to `--latency-ms` (20) per call and the `google` profile with a
//!    real 60-second minute; a daemon starts (production `Tuning`, the system clock, a
//!    SQLite file, `[serve] contacts` on with its defaults) and opens its channels.
//! 3. **Single changes** (`--contacts-changes 3`): after a quiet minute (the per-minute
//!    windows empty), one user's family name is changed with `users.update`. When the
//!    push-driven run has finished, every book is read back (with the quota profile
//!    switched off so the reads do not count) and the contact's `updateTime` less the
//!    moment `users.update` returned is that book's latency: p50 and p100 over the books,
//!    and the Google calls the daemon made for the change, per method.
//! 4. **A burst** of `--contacts-burst 100` joiners (`users.insert`, 8 at a time): the
//!    latency of each joiner's contact in each existing book, from that joiner's insert,
//!    p50 and p100, and when the joiners' own books were filled.
//!
//! The target is p100 < 60 s for a single change at 1,000 people.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use orgsync_client::GoogleClient;
use orgsync_client::directory::UsersListParams;
use orgsync_client::people::ConnectionsParams;
use orgsync_jobs::contacts::{self, ContactsOptions, Mode};
use orgsync_jobs::runs::{self, JobName, Trigger};
use orgsync_store::Store;
use orgsync_wire::directory::{User, UserName};
use orgsync_wire::people::Person;

use orgsync_core::contacts::markers::ID as MARKER_ID;

use crate::measure::percentile;
use crate::serve::{ADMIN, Emu, start_daemon};

pub fn set_overrides(spec: &str) -> anyhow::Result<()> {
    let mut map = BTreeMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .context("--contacts-quota takes METRIC.SCOPE=N")?;
        map.insert(
            k.trim().to_string(),
            v.trim().parse().context("a quota is a number")?,
        );
    }
    let _ = OVERRIDES.set(map);
    Ok(())
}

pub async fn run(
    sizes: &[usize],
    latency_ms: u64,
    changes: usize,
    burst: usize,
) -> anyhow::Result<()> {
    for &n in sizes {
        one_org(n, latency_ms, changes, burst).await?;
    }
    Ok(())
}

async fn faults(emu: &Emu, body: serde_json::Value) -> anyhow::Result<()> {
    reqwest::Client::new()
        .put(format!("{}/emulator/v1/faults", emu.base))
        .json(&body)
        .send()
        .await?
        .error_for_status()
        .context("setting the emulator's faults")?;
    Ok(())
}

/// `--contacts-quota METRIC.SCOPE=N,…`: limits the emulator enforces *and* orgsync is told
/// (as an admin who raised or lowered them in the Cloud console would configure), to put a
/// small org under the pressure a large one is under.
static OVERRIDES: std::sync::OnceLock<BTreeMap<String, u64>> = std::sync::OnceLock::new();

fn overrides() -> &'static BTreeMap<String, u64> {
    OVERRIDES.get_or_init(BTreeMap::new)
}

async fn measured(emu: &Emu, latency_ms: u64) -> anyhow::Result<()> {
    faults(
        emu,
        serde_json::json!({"latency_ms": latency_ms, "quota_profile": "google", "quota_minute_secs": 60, "quota": overrides()}),
    )
    .await
}

/// The emulator's refusals per quota metric since the profile was last set: which limit
/// a run ran into.
async fn rejected(emu: &Emu) -> anyhow::Result<BTreeMap<String, u64>> {
    let stats: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/emulator/v1/stats", emu.base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut out = BTreeMap::new();
    if let Some(quota) = stats.get("quota").and_then(|q| q.as_object()) {
        for (metric, m) in quota {
            for (field, scope) in [
                ("rejected_by_user_limit", "user"),
                ("rejected_by_project_limit", "project"),
            ] {
                let n = m.get(field).and_then(|r| r.as_u64()).unwrap_or(0);
                if n > 0 {
                    out.insert(format!("{metric}.{scope}"), n);
                }
            }
        }
    }
    Ok(out)
}

/// Quota off and no latency: reads the benchmark makes to measure do not count.
async fn unmeasured(emu: &Emu) -> anyhow::Result<()> {
    faults(emu, serde_json::json!({"latency_ms": 0})).await
}

async fn one_org(n: usize, latency_ms: u64, changes: usize, burst: usize) -> anyhow::Result<()> {
    println!(
        "\n== serve contacts: {n}-person org, {latency_ms} ms per Google call, `google` quota profile (60 s minute), shipped defaults =="
    );
    let emu = Emu::start(&format!("contacts-{n}"), n, 0).await?;
    let mut config = emu.config();
    config.serve.contacts = true;
    // The shipped default: pace to the quotas. (`emulator_config` turns pacing off for
    // an emulator without quotas; this one enforces Google's, as Google does.)
    config.google.quotas.pace = true;
    for (key, n) in overrides() {
        let (metric, scope) = key
            .rsplit_once('.')
            .context("--contacts-quota takes METRIC.SCOPE=N")?;
        let metric = metric.replace('.', "_");
        match scope {
            "user" => config.google.quotas.per_user.insert(metric, *n),
            "project" => config.google.quotas.per_project.insert(metric, *n),
            other => bail!("--contacts-quota: scope {other:?} is not user or project"),
        };
    }
    if !overrides().is_empty() {
        println!(
            "  quota overrides (emulator and orgsync alike): {:?}",
            overrides()
        );
    }
    let state = emu.dir.join("contacts-state.db");
    config.state.url = Some(format!("sqlite://{}", state.display()));
    let store: Arc<dyn Store> =
        Arc::new(orgsync_store_sqlite::SqliteStore::connect(&config.state.database_url()).await?);

    // 1. Fill every book (setup).
    faults(
        &emu,
        serde_json::json!({"latency_ms": 0, "quota_profile": "google", "quota_minute_secs": 1}),
    )
    .await?;
    let mut fill_config = config.clone();
    fill_config.google.quotas.minute_secs = 1.0;
    let t = Instant::now();
    let fill_client = orgsync_jobs::context::service_account_client(&fill_config)?;
    let fill = contacts::run(
        &fill_client,
        store.clone(),
        &fill_config,
        &ContactsOptions::new(Mode::Sync),
    )
    .await?;
    println!(
        "  setup: first sync of {} books ({} contacts) in {:.1} s (1 s quota minute)",
        fill.totals.targets,
        fill.totals.created,
        t.elapsed().as_secs_f64()
    );

    // 2. The daemon, as shipped.
    measured(&emu, latency_ms).await?;
    let daemon = start_daemon(config.clone(), store.clone()).await?;
    wait_channels(store.as_ref()).await?;
    let admin = emu.admin()?;
    let observer = emu.observer()?;
    let users = directory(&admin).await?;
    let targets: Vec<User> = users
        .iter()
        .filter(|u| u.suspended != Some(true) && u.archived != Some(true))
        .cloned()
        .collect();
    let sources: Vec<User> = targets
        .iter()
        .filter(|u| u.include_in_global_address_list != Some(false))
        .filter(|u| u.primary_email.as_deref() != Some(ADMIN))
        .cloned()
        .collect();
    println!(
        "  daemon up: {} books, {} sources; workers {}, contacts_batch_secs {}",
        targets.len(),
        sources.len(),
        config.serve.workers,
        config.serve.contacts_batch_secs
    );

    // 3. Single changes.
    for i in 0..changes {
        let who = &sources[(i * 7919) % sources.len()];
        let id = who.id.clone().unwrap_or_default();
        println!("  quiet minute before change {} …", i + 1);
        tokio::time::sleep(Duration::from_secs(61)).await;
        let before = daemon.shared.client.stats().snapshot();
        let family = format!("Changed{i}x{}", Utc::now().timestamp());
        let mut u = who.clone();
        u.name.get_or_insert_default().family_name = Some(family.clone());
        u.password = None;
        admin.directory().users_update(&id, &u).await?;
        let t0 = Utc::now();
        let run = wait_push_run(store.as_ref(), t0, Duration::from_secs(600)).await?;
        let after = daemon.shared.client.stats().snapshot();
        let refused = rejected(&emu).await?;
        unmeasured(&emu).await?;
        let times = contact_times(&observer, &targets, &[id.as_str()]).await?;
        measured(&emu, latency_ms).await?;
        let mut lat: Vec<f64> = times
            .values()
            .filter_map(|m| m.get(&id))
            .map(|t| (*t - t0).num_milliseconds() as f64 / 1000.0)
            .collect();
        lat.sort_by(f64::total_cmp);
        let expected = targets.len() - 1;
        let calls: BTreeMap<&str, u64> = after
            .methods
            .iter()
            .map(|(m, s)| (*m, s.calls - before.methods.get(m).map_or(0, |b| b.calls)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let total: u64 = calls.values().sum();
        let p100 = lat.last().copied().unwrap_or(f64::NAN);
        println!(
            "  change {}: {} of {expected} books updated; p50 {:.1} s, p100 {:.1} s (target < 60 s: ratio {:.2}, {}); run {:.1} s; {} calls, {:.2} per book: {:?}; 429s {}",
            i + 1,
            lat.len(),
            pct(&lat, 50.0),
            p100,
            p100 / 60.0,
            if p100 < 60.0 && lat.len() == expected {
                "met"
            } else {
                "MISSED"
            },
            run.duration_ms() as f64 / 1000.0,
            total,
            total as f64 / targets.len() as f64,
            calls,
            after.total_429 - before.total_429
        );
        if !refused.is_empty() {
            println!("    refused by the emulator, per metric: {refused:?}");
        }
    }

    // 4. A burst of joiners.
    if burst > 0 {
        println!("  quiet minute before the burst …");
        tokio::time::sleep(Duration::from_secs(61)).await;
        let before = daemon.shared.client.stats().snapshot();
        let stamp = Utc::now().timestamp();
        let inserted: Vec<(String, DateTime<Utc>)> = futures::stream::iter(0..burst)
            .map(|i| {
                let admin = admin.clone();
                async move {
                    let user = User {
                        primary_email: Some(format!("joiner{stamp}-{i}@example.com")),
                        name: Some(UserName {
                            given_name: Some("Joiner".into()),
                            family_name: Some(format!("N{i}")),
                            ..Default::default()
                        }),
                        password: Some("not-a-real-password".into()),
                        ..Default::default()
                    };
                    let u = admin.directory().users_insert(&user).await?;
                    anyhow::Ok((u.id.unwrap_or_default(), Utc::now()))
                }
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let first = inserted
            .iter()
            .map(|(_, t)| *t)
            .min()
            .unwrap_or_else(Utc::now);
        let last_insert = inserted
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap_or_else(Utc::now);
        // Runs until every joiner is in: the last push run must start after the last insert.
        let run = wait_push_run(store.as_ref(), last_insert, Duration::from_secs(1800)).await?;
        let after = daemon.shared.client.stats().snapshot();
        let refused = rejected(&emu).await?;
        unmeasured(&emu).await?;
        let ids: Vec<&str> = inserted.iter().map(|(id, _)| id.as_str()).collect();
        let times = contact_times(&observer, &targets, &ids).await?;
        let at: BTreeMap<&str, DateTime<Utc>> =
            inserted.iter().map(|(id, t)| (id.as_str(), *t)).collect();
        let mut lat: Vec<f64> = Vec::new();
        for m in times.values() {
            for (id, t) in m {
                if let Some(t0) = at.get(id.as_str()) {
                    lat.push((*t - *t0).num_milliseconds() as f64 / 1000.0);
                }
            }
        }
        lat.sort_by(f64::total_cmp);
        let expected = targets.len() * burst;
        // The joiners' own books.
        let joiners: Vec<User> = ids
            .iter()
            .map(|id| User {
                id: Some(id.to_string()),
                primary_email: None,
                ..Default::default()
            })
            .collect();
        let own = own_books_filled(&observer, &admin, &joiners).await?;
        measured(&emu, latency_ms).await?;
        let writes = |s: &orgsync_client::StatsSnapshot| {
            s.calls("people.people.batchCreateContacts") + s.calls("people.people.createContact")
        };
        println!(
            "  burst of {burst} joiners (inserted over {:.1} s): {} of {expected} contacts in existing books; p50 {:.1} s, p100 {:.1} s from each insert; joiners' own books filled by {:.1} s after the first insert; runs until done {:.1} s; create calls {} for {} books; 429s {}",
            (last_insert - first).num_milliseconds() as f64 / 1000.0,
            lat.len(),
            pct(&lat, 50.0),
            lat.last().copied().unwrap_or(f64::NAN),
            own.map_or(f64::NAN, |t| (t - first).num_milliseconds() as f64 / 1000.0),
            run.duration_ms() as f64 / 1000.0,
            writes(&after) - writes(&before),
            targets.len() + burst,
            after.total_429 - before.total_429
        );
        if !refused.is_empty() {
            println!("    refused by the emulator, per metric: {refused:?}");
        }
        let retried: BTreeMap<&str, u64> = after
            .methods
            .iter()
            .map(|(m, s)| {
                (
                    *m,
                    s.http_429 - before.methods.get(m).map_or(0, |b| b.http_429),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        if !retried.is_empty() {
            println!("    429 answers per method: {retried:?}");
        }
    }
    daemon.shutdown().await;
    emu.stop();
    Ok(())
}

/// `p`th percentile, seconds.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let d: Vec<Duration> = sorted
        .iter()
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
        .collect();
    percentile(&d, p).as_secs_f64()
}

async fn directory(admin: &GoogleClient) -> anyhow::Result<Vec<User>> {
    Ok(admin
        .directory()
        .users_list(UsersListParams {
            projection: Some("full".into()),
            ..Default::default()
        })
        .try_collect()
        .await?)
}

async fn wait_channels(store: &dyn Store) -> anyhow::Result<()> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        let live = store.list_live_channels(Utc::now()).await?;
        if live.iter().filter(|c| c.replaced_by.is_none()).count() == 5 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the daemon opened no channels in 120 s")
}

/// The push-driven contacts run that started after `after`, once it and any run queued
/// behind it have finished.
async fn wait_push_run(
    store: &dyn Store,
    after: DateTime<Utc>,
    timeout: Duration,
) -> anyhow::Result<runs::RunRecord> {
    let t = Instant::now();
    loop {
        if let Some(r) = runs::last_run(store, JobName::Contacts).await?
            && r.trigger == Trigger::Push
            && r.started_at > after
        {
            let q = store.queue_summary().await?;
            if q.pending + q.running == 0 {
                return Ok(r);
            }
        }
        if t.elapsed() > timeout {
            bail!("no push-driven contacts run finished within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// For each target's book: managed contact id → its `updateTime`, for the ids in `ids`.
async fn contact_times(
    observer: &GoogleClient,
    targets: &[User],
    ids: &[&str],
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, DateTime<Utc>>>> {
    let wanted: std::collections::HashSet<&str> = ids.iter().copied().collect();
    let books = futures::stream::iter(targets.iter().filter_map(|t| t.primary_email.clone()))
        .map(|email| {
            let observer = observer.clone();
            let wanted = &wanted;
            async move {
                let people: Vec<Person> = observer
                    .people(&email)
                    .connections_list(ConnectionsParams::new("clientData,metadata"))
                    .try_collect()
                    .await?;
                let mut out = BTreeMap::new();
                for p in people {
                    let Some(id) = p.client_data_value(MARKER_ID).map(str::to_string) else {
                        continue;
                    };
                    if !wanted.contains(id.as_str()) {
                        continue;
                    }
                    if let Some(t) = update_time(&p) {
                        out.insert(id, t);
                    }
                }
                anyhow::Ok((email, out))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(books.into_iter().collect())
}

fn update_time(p: &Person) -> Option<DateTime<Utc>> {
    let meta = p.metadata.as_ref()?;
    meta.sources
        .iter()
        .filter_map(|s| s.update_time.as_deref())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .max()
}

/// When the last of the joiners' own books received its last contact.
async fn own_books_filled(
    observer: &GoogleClient,
    admin: &GoogleClient,
    joiners: &[User],
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let mut latest: Option<DateTime<Utc>> = None;
    for j in joiners {
        let id = j.id.as_deref().unwrap_or_default();
        let u = admin.directory().users_get(id, None, None).await?;
        let Some(email) = u.primary_email else {
            continue;
        };
        let people: Vec<Person> = observer
            .people(&email)
            .connections_list(ConnectionsParams::new("clientData,metadata"))
            .try_collect()
            .await?;
        for p in people {
            if p.client_data_value(MARKER_ID).is_some()
                && let Some(t) = update_time(&p)
            {
                latest = Some(latest.map_or(t, |l| l.max(t)));
            }
        }
    }
    Ok(latest)
}
