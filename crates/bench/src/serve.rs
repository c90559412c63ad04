//! `orgsync-bench serve`: the users job and the push daemon against the emulator.
//!
//! The emulator runs in a child process (see [`crate::client`]); the daemon
//! (`orgsync_daemon::start` with production [`Tuning`] and the system clock), its store and
//! the load generator run in this process. Three phases, each printed with its target or
//! bound and the ratio:
//!
//! - `reconcile`: a full reconcile (`orgsync_jobs::users::reconcile`, what `orgsync users
//!   sync` runs) of a generated org into a fresh SQLite file, then a no-change re-run, then
//!   the same first run into a fresh PostgreSQL schema. Calls against the lower bound
//!   ⌈users/500⌉ `users.list` pages (the default scope names no groups), wall time against
//!   the latency bound (pages are sequential), peak RSS of this process.
//! - `latency`: the daemon on a SQLite file holds real `users.watch` channels; the emulator
//!   (with `--latency-ms`) delivers its pushes over HTTP to the webhook. `--changes` users
//!   are renamed with `users.update` by `--concurrency` writers, each pausing `--spacing-ms`
//!   between its changes. A watcher polls the outbox (written in the same transaction as
//!   the row) every 2 ms; the figure is the time from the update call returning (and, as an
//!   upper bound, from it starting) to the first poll that sees the changed row.
//! - `push`: synthetic but valid notifications (the live `update` channel's id, token and
//!   resource id, Google's headers, a user id in the body, fresh message numbers) POSTed
//!   to the webhook for `--seconds` over `--connections` keep-alive connections, on SQLite
//!   and on PostgreSQL. Accepted/s, rejections, request latency; then the time until the
//!   workers (`users.get` against the emulator at `--drain-latency-ms`) have emptied the job
//!   queue, and checks that every accepted notification is stored and no job failed.
//!
//! - `connections`: `--rounds` rounds of `--conn-count` client connections to `/healthz` on
//!   127.0.0.1, opened `--conn-parallel` at a time, each sending one keep-alive request and
//!   then held until the whole round is open; then all are closed. Printed per round: the
//!   requests answered, the sockets the server held (descriptors of this process minus the
//!   client's), this process's resident memory while they are held and 2 s after they
//!   closed. Not part of the default phases (it is a memory check, not a speed target).
//!
//! - `contacts`: address books kept in step by the daemon ([`crate::serve_contacts`]).
//!   Not part of the default phases (minutes of quiet quota windows per change).
//!
//! Flags: `--phases reconcile,latency,push` (or `connections`, `contacts`), `--postgres URL|none`
//! (default `postgres://postgres@127.0.0.1:5432/test`; each run uses a fresh schema, dropped
//! after), `--reconcile-users 10000`, `--latency-ms 20`, `--changes 200`,
//! `--concurrency 4`, `--spacing-ms 100`, `--push-users 2000`, `--seconds 10`,
//! `--connections 64`, `--drain-latency-ms 0`, `--rounds 4`, `--conn-count 8000`,
//! `--conn-parallel 200`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::TryStreamExt as _;
use orgsync_client::GoogleClient;
use orgsync_client::directory::UsersListParams;
use orgsync_daemon::{DaemonHandle, SystemClock, Tuning};
use orgsync_jobs::config::Config;
use orgsync_jobs::context;
use orgsync_jobs::users::{ReconcileOptions, reconcile};
use orgsync_store::{OutboxKind, UserQuery, prelude::*};
use orgsync_store_postgres::PgStore;
use orgsync_store_sqlite::SqliteStore;
use orgsync_wire::directory::{User, push_headers as h};

use crate::client::{EmulatorChild, reset_peak_rss};
use crate::measure::{flag, ms, peak_rss_mib, percentile};

pub(crate) const ADMIN: &str = "admin@example.com";
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const USERS_PAGE: u64 = 500;
const LATENCY_TARGET: Duration = Duration::from_secs(1);
const PUSH_TARGET_PER_SEC: f64 = 2000.0;
/// Message numbers of synthetic notifications start here, far above the emulator's own.
const FIRST_MESSAGE: i64 = 1_000_000_000;

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let phases: String = flag(args, "--phases", "reconcile,latency,push".to_string());
    let pg: String = flag(args, "--postgres", DEFAULT_PG.to_string());
    let pg = (pg != "none").then_some(pg);
    let latency_ms: u64 = flag(args, "--latency-ms", 20);
    println!(
        "machine: {} CPUs, load average {} (shared machine: others compile and test meanwhile)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    for phase in phases.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match phase {
            "reconcile" => {
                let users: usize = flag(args, "--reconcile-users", 10_000);
                reconcile_phase(users, latency_ms, pg.as_deref()).await?;
            }
            "latency" => {
                let changes: usize = flag(args, "--changes", 200);
                let concurrency: usize = flag(args, "--concurrency", 4);
                let spacing: u64 = flag(args, "--spacing-ms", 100);
                latency_phase(changes, latency_ms, concurrency.max(1), spacing).await?;
            }
            "push" => {
                let opts = PushOptions {
                    users: flag(args, "--push-users", 2000),
                    seconds: flag(args, "--seconds", 10),
                    connections: flag(args, "--connections", 64usize).max(1),
                    drain_latency_ms: flag(args, "--drain-latency-ms", 0),
                };
                push_phase(&opts, Backend::Sqlite).await?;
                match &pg {
                    Some(url) => push_phase(&opts, Backend::Postgres(url.clone())).await?,
                    None => println!("\n(push on PostgreSQL skipped: --postgres none)"),
                }
            }
            "connections" => {
                let rounds: usize = flag(args, "--rounds", 4);
                let count: usize = flag(args, "--conn-count", 8000);
                let parallel: usize = flag(args, "--conn-parallel", 200);
                connections_phase(rounds, count, parallel.max(1)).await?;
            }
            "contacts" => {
                let sizes: String = flag(args, "--contacts-users", "300,1000".to_string());
                let sizes: Vec<usize> = sizes
                    .split(',')
                    .map(|s| s.trim().parse().context("--contacts-users takes numbers"))
                    .collect::<anyhow::Result<_>>()?;
                let changes: usize = flag(args, "--contacts-changes", 3);
                let burst: usize = flag(args, "--contacts-burst", 100);
                crate::serve_contacts::set_overrides(&flag(
                    args,
                    "--contacts-quota",
                    String::new(),
                ))?;
                crate::serve_contacts::run(&sizes, latency_ms, changes, burst).await?;
            }
            other => bail!(
                "unknown phase {other:?}: use reconcile, latency, push, connections, contacts"
            ),
        }
    }
    Ok(())
}

// ---- shared set-up ----------------------------------------------------------------------

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// User + system CPU time of this process, seconds (`/proc/self/stat`, 100 ticks/s).
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The emulator child process with its key, and a scratch directory for SQLite files.
pub(crate) struct Emu {
    child: EmulatorChild,
    pub(crate) dir: PathBuf,
    pub(crate) base: String,
    key: String,
}

impl Emu {
    pub(crate) async fn start(tag: &str, users: usize, latency_ms: u64) -> anyhow::Result<Emu> {
        let dir =
            std::env::temp_dir().join(format!("orgsync-bench-serve-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let child = EmulatorChild::start(users, &dir, None)?;
        let base = child.base_url.clone();
        let key = std::fs::read_to_string(dir.join("service-account.json"))?;
        let emu = Emu {
            child,
            dir,
            base,
            key,
        };
        emu.set_latency(latency_ms).await?;
        Ok(emu)
    }

    async fn set_latency(&self, latency_ms: u64) -> anyhow::Result<()> {
        reqwest::Client::new()
            .put(format!("{}/emulator/v1/faults", self.base))
            .json(&serde_json::json!({ "latency_ms": latency_ms }))
            .send()
            .await?
            .error_for_status()
            .context("setting the emulator's latency")?;
        Ok(())
    }

    pub(crate) fn config(&self) -> Config {
        context::emulator_config(&self.base, self.key.clone(), ADMIN)
    }

    /// A client with the Directory write scope: the admin changing the directory.
    pub(crate) fn admin(&self) -> anyhow::Result<GoogleClient> {
        let config = self.config();
        let sa = context::service_account(&config)?;
        let mut cc = context::client_config(&config);
        cc.scopes.directory = vec![orgsync_wire::scopes::DIRECTORY_USER.into()];
        Ok(GoogleClient::new(Arc::new(sa), cc))
    }

    /// The admin with the group scope too (the SCIM benchmark adds groups and members;
    /// the emulator must delegate the scope first).
    pub(crate) fn admin_with_groups(&self) -> anyhow::Result<GoogleClient> {
        let config = self.config();
        let sa = context::service_account(&config)?;
        let mut cc = context::client_config(&config);
        cc.scopes.directory = vec![
            orgsync_wire::scopes::DIRECTORY_USER.into(),
            orgsync_wire::scopes::DIRECTORY_GROUP.into(),
        ];
        Ok(GoogleClient::new(Arc::new(sa), cc))
    }

    /// A client with orgsync's default scopes (contacts included), unpaced: the benchmark
    /// reading address books back.
    pub(crate) fn observer(&self) -> anyhow::Result<GoogleClient> {
        let config = self.config();
        let sa = context::service_account(&config)?;
        let mut cc = context::client_config(&config);
        cc.quotas = orgsync_client::QuotaLimits::unlimited();
        Ok(GoogleClient::new(Arc::new(sa), cc))
    }

    pub(crate) fn stop(mut self) {
        if let Some(mib) = self.child.stop() {
            println!("  (emulator child process peak RSS {mib:.0} MiB, not orgsync's)");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Backend {
    Sqlite,
    Postgres(String),
}

/// A fresh store plus what is needed to count rows behind the trait and clean up.
struct Opened {
    store: Arc<dyn Store>,
    raw: Raw,
    label: &'static str,
}

enum Raw {
    Sqlite(SqliteStore),
    Pg {
        store: PgStore,
        url: String,
        schema: String,
    },
}

impl Opened {
    async fn open(backend: &Backend, dir: &std::path::Path, name: &str) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let path = dir.join(format!("{name}.db"));
                let s = SqliteStore::open_path(&path)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                Ok(Opened {
                    store: Arc::new(s.clone()),
                    raw: Raw::Sqlite(s),
                    label: "SQLite",
                })
            }
            Backend::Postgres(url) => {
                use sqlx::Connection as _;
                let options = sqlx::postgres::PgConnectOptions::from_str(url)
                    .context("--postgres is not a PostgreSQL URL")?;
                let mut conn = sqlx::postgres::PgConnection::connect_with(&options)
                    .await
                    .with_context(|| {
                        format!("cannot connect to PostgreSQL at {url} (or pass --postgres none)")
                    })?;
                let schema = format!(
                    "bench_{name}_{}_{}",
                    std::process::id(),
                    chrono::Utc::now().timestamp_millis()
                );
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .context("creating a scratch schema")?;
                conn.close().await.ok();
                let s = PgStore::connect_with(
                    options.options([("search_path", schema.as_str())]),
                    orgsync_store_postgres::DEFAULT_MAX_CONNECTIONS,
                )
                .await?;
                Ok(Opened {
                    store: Arc::new(s.clone()),
                    raw: Raw::Pg {
                        store: s,
                        url: url.clone(),
                        schema,
                    },
                    label: "PostgreSQL",
                })
            }
        }
    }

    /// `SELECT count(*) …` straight on the database (static SQL only).
    async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(match &self.raw {
            Raw::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await?,
            Raw::Pg { store, .. } => sqlx::query_scalar(sql).fetch_one(store.pool()).await?,
        })
    }

    async fn close(self) {
        self.store.close().await;
        if let Raw::Pg {
            store, url, schema, ..
        } = self.raw
        {
            use sqlx::Connection as _;
            store.close().await;
            if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&mut conn)
                    .await;
                conn.close().await.ok();
            }
        }
    }
}

pub(crate) async fn start_daemon(
    config: Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<DaemonHandle> {
    let client = context::service_account_client(&config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(orgsync_daemon::start(
        config,
        client,
        store,
        Arc::new(SystemClock),
        Tuning::default(),
        listener,
    )
    .await?)
}

/// Wait until the daemon holds one channel per event type, its start-up reconcile stored
/// `users` rows and the job queue is empty.
async fn wait_ready(store: &dyn Store, users: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        let now = chrono::Utc::now();
        let channels = store
            .list_live_channels(now)
            .await?
            .iter()
            .filter(|c| c.replaced_by.is_none())
            .count();
        if channels == 5
            && store.count_users(false).await? >= users
            && store.count_jobs().await? == 0
        {
            return Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!(
                "the daemon was not ready after 120 s ({channels} channels, {} users)",
                store.count_users(false).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

// ---- full reconcile -----------------------------------------------------------------------

async fn reconcile_phase(users: usize, latency_ms: u64, pg: Option<&str>) -> anyhow::Result<()> {
    let expected = users as u64 + 1; // plus admin@
    println!(
        "\n== full reconcile: {expected} directory users ({users} + the admin), {latency_ms} ms per call =="
    );
    let emu = Emu::start("reconcile", users, latency_ms).await?;
    let config = emu.config();
    let pages = expected.div_ceil(USERS_PAGE);

    let mut backends = vec![Backend::Sqlite];
    if let Some(url) = pg {
        backends.push(Backend::Postgres(url.to_owned()));
    }
    for backend in &backends {
        let opened = Opened::open(backend, &emu.dir, "reconcile").await?;
        let store = opened.store.clone();
        let client = context::service_account_client(&config)?;
        let resets = reset_peak_rss();
        let cpu0 = cpu_seconds();
        let t = Instant::now();
        let report = reconcile(
            &client,
            &config,
            store.as_ref(),
            ReconcileOptions::default(),
            chrono::Utc::now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("reconcile failed: {e}"))?;
        let wall = t.elapsed();
        let cpu = cpu_seconds() - cpu0;
        let peak = peak_rss_mib().unwrap_or(f64::NAN);
        ensure!(
            report.created as u64 == expected && store.count_users(false).await? == expected,
            "expected {expected} users created, got {} ({} rows)",
            report.created,
            store.count_users(false).await?
        );
        let calls: u64 = report.calls.values().sum();
        let time_bound = pages as f64 * latency_ms as f64 / 1000.0;
        println!("first run into a fresh {} store:", opened.label);
        println!(
            "  users created                     {:>9}       expected {expected}",
            report.created
        );
        println!(
            "  API calls                         {calls:>9}       lower bound {pages:>7}   ratio {:.3}   ({})",
            calls as f64 / pages as f64,
            report
                .calls
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  wall time                         {:>9.2} s     latency bound {time_bound:>6.2} s   ratio {:.2}   ({:.0} users/s; CPU {cpu:.2} s)",
            wall.as_secs_f64(),
            wall.as_secs_f64() / time_bound,
            expected as f64 / wall.as_secs_f64()
        );
        println!(
            "  peak RSS (this process)           {peak:>9.1} MiB   {}",
            if resets {
                "(high-water mark reset before the run)"
            } else {
                "(cumulative: the high-water mark could not be reset)"
            }
        );
        if matches!(backend, Backend::Sqlite) {
            let t = Instant::now();
            let again = reconcile(
                &client,
                &config,
                store.as_ref(),
                ReconcileOptions::default(),
                chrono::Utc::now,
            )
            .await
            .map_err(|e| anyhow::anyhow!("second reconcile failed: {e}"))?;
            let wall = t.elapsed();
            let calls: u64 = again.calls.values().sum();
            println!("no-change re-run ({}):", opened.label);
            println!(
                "  changes                           {:>9}       target 0",
                again.total_changes()
            );
            println!(
                "  API calls                         {calls:>9}       lower bound {pages:>7}   ratio {:.3}",
                calls as f64 / pages as f64
            );
            println!(
                "  wall time                         {:>9.2} s     latency bound {time_bound:>6.2} s   ratio {:.2}",
                wall.as_secs_f64(),
                wall.as_secs_f64() / time_bound
            );
        }
        opened.close().await;
    }
    emu.stop();
    Ok(())
}

// ---- change → row latency -----------------------------------------------------------------

async fn latency_phase(
    changes: usize,
    latency_ms: u64,
    concurrency: usize,
    spacing_ms: u64,
) -> anyhow::Result<()> {
    let org = changes.max(500);
    println!(
        "\n== directory change -> updated row: {changes} users.update calls, {latency_ms} ms per Google call, {concurrency} writers pausing {spacing_ms} ms, SQLite file store, {} workers ==",
        Config::default().serve.workers
    );
    let emu = Emu::start("latency", org, latency_ms).await?;
    let opened = Opened::open(&Backend::Sqlite, &emu.dir, "latency").await?;
    let store = opened.store.clone();
    let daemon = start_daemon(emu.config(), store.clone()).await?;
    let ready = wait_ready(store.as_ref(), org as u64 + 1).await?;
    println!(
        "  daemon ready (5 channels, start-up reconcile of {} users) in {:.2} s",
        org + 1,
        ready.as_secs_f64()
    );

    let admin = emu.admin()?;
    let mut users: Vec<User> = admin
        .directory()
        .users_list(UsersListParams {
            projection: Some("full".into()),
            ..Default::default()
        })
        .try_collect()
        .await?;
    users.retain(|u| u.primary_email.as_deref() != Some(ADMIN));
    users.truncate(changes);
    ensure!(users.len() == changes, "the org has too few users");

    // The watcher: the first instant an `updated` outbox entry of each user is visible.
    let mut after = 0;
    loop {
        let page = store.list_outbox(after, 1000).await?;
        match page.last() {
            Some(last) => after = last.seq,
            None => break,
        }
    }
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (store, seen, stop) = (store.clone(), seen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut after = after;
            while !stop.load(Ordering::Relaxed) {
                match store.list_outbox(after, 1000).await {
                    Ok(page) => {
                        let now = Instant::now();
                        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                        for e in &page {
                            after = after.max(e.seq);
                            if e.kind == OutboxKind::Updated {
                                s.entry(e.directory_id.clone()).or_insert(now);
                            }
                        }
                    }
                    Err(e) => eprintln!("outbox poll failed: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // The writers: each renames its share of the users, one after another.
    let stamp = chrono::Utc::now().timestamp();
    let mut slices: Vec<Vec<User>> = vec![Vec::new(); concurrency];
    for (i, u) in users.into_iter().enumerate() {
        slices[i % concurrency].push(u);
    }
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut writers = Vec::new();
    for slice in slices {
        let admin = admin.clone();
        writers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for mut u in slice {
                let id = u.id.clone().unwrap_or_default();
                let family = format!("Bench{stamp}-{}", out.len());
                u.name.get_or_insert_default().family_name = Some(family.clone());
                u.password = None;
                let t0 = Instant::now();
                admin.directory().users_update(&id, &u).await?;
                let t1 = Instant::now();
                out.push((id, family, t0, t1));
                tokio::time::sleep(Duration::from_millis(spacing_ms)).await;
            }
            anyhow::Ok(out)
        }));
    }
    let mut done = Vec::new();
    for w in writers {
        done.extend(w.await??);
    }
    let writing = started.elapsed();
    // Every change must show up; give stragglers time.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = {
            let s = seen.lock().unwrap_or_else(|e| e.into_inner());
            done.iter().filter(|(id, ..)| s.contains_key(id)).count()
        };
        if n == done.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {n} of {} changes reached the store within 60 s",
                done.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await?;
    let cpu = cpu_seconds() - cpu0;
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut from_return = Vec::new();
    let mut from_start = Vec::new();
    for (id, family, t0, t1) in &done {
        let row = store
            .get_user(id)
            .await?
            .with_context(|| format!("user {id} has no row"))?;
        ensure!(
            &row.profile.family_name == family,
            "row {id} has family name {:?}, expected {family:?}",
            row.profile.family_name
        );
        let at = seen[id];
        from_return.push(at.saturating_duration_since(*t1));
        from_start.push(at.saturating_duration_since(*t0));
    }
    from_return.sort();
    from_start.sort();
    let p = |s: &[Duration], q: f64| ms(percentile(s, q));
    println!(
        "  {} changes in {:.2} s ({:.0} changes/s); every row checked afterwards; orgsync+load CPU {cpu:.2} s",
        done.len(),
        writing.as_secs_f64(),
        done.len() as f64 / writing.as_secs_f64()
    );
    let p99 = percentile(&from_return, 99.0);
    println!(
        "  update returned -> row visible    p50 {:>6.1} ms  p95 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms   target p99 < {} ms   ratio {:.3}   {}",
        p(&from_return, 50.0),
        p(&from_return, 95.0),
        p(&from_return, 99.0),
        p(&from_return, 100.0),
        LATENCY_TARGET.as_millis(),
        p99.as_secs_f64() / LATENCY_TARGET.as_secs_f64(),
        verdict(p99 < LATENCY_TARGET)
    );
    println!(
        "  update sent -> row visible        p50 {:>6.1} ms  p95 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms   (upper bound: includes the update call)",
        p(&from_start, 50.0),
        p(&from_start, 95.0),
        p(&from_start, 99.0),
        p(&from_start, 100.0),
    );
    println!(
        "  floor: one users.get by the worker = {latency_ms} ms (the push itself carries no latency)"
    );
    let m = daemon.metrics();
    println!(
        "  daemon: {} update notifications received, jobs applied {} / unchanged {} / failed {}",
        m.get("orgsync_notifications_received_total", "update"),
        m.get("orgsync_jobs_total", "applied"),
        m.get("orgsync_jobs_total", "unchanged"),
        m.get("orgsync_jobs_total", "failed"),
    );
    daemon.shutdown().await;
    opened.close().await;
    emu.stop();
    Ok(())
}

// ---- notifications/s ----------------------------------------------------------------------

struct PushOptions {
    users: usize,
    seconds: u64,
    connections: usize,
    drain_latency_ms: u64,
}

#[derive(Default)]
struct LoadResult {
    ok: u64,
    by_status: BTreeMap<u16, u64>,
    errors: u64,
    latencies: Vec<Duration>,
}

async fn push_phase(opts: &PushOptions, backend: Backend) -> anyhow::Result<()> {
    let name = match backend {
        Backend::Sqlite => "SQLite file",
        Backend::Postgres(_) => "PostgreSQL",
    };
    let workers = Config::default().serve.workers;
    println!(
        "\n== notifications/s into one serve instance, {name} store: {} connections for {} s, {} users, {workers} workers; users.get at {} ms ==",
        opts.connections, opts.seconds, opts.users, opts.drain_latency_ms
    );
    let emu = Emu::start("push", opts.users, opts.drain_latency_ms).await?;
    let opened = Opened::open(&backend, &emu.dir, "push").await?;
    let store = opened.store.clone();
    let config = emu.config();
    let path = config.serve.webhook_path.clone();
    let daemon = start_daemon(config, store.clone()).await?;
    wait_ready(store.as_ref(), opts.users as u64 + 1).await?;
    let channel = store
        .list_live_channels(chrono::Utc::now())
        .await?
        .into_iter()
        .find(|c| c.event == "update" && c.replaced_by.is_none())
        .context("no live update channel")?;
    let url = format!("http://{}{path}", daemon.addr);

    // Every user's notification body, built once.
    let mut bodies = Vec::new();
    let mut q = UserQuery::default();
    loop {
        let page = store.list_users(&q).await?;
        let Some(last) = page.last() else { break };
        q.after_id = Some(last.directory_id().to_owned());
        for u in &page {
            bodies.push(
                serde_json::json!({
                    "kind": "admin#directory#user",
                    "id": u.directory_id(),
                    "etag": "\"bench\"",
                    "primaryEmail": u.primary_email(),
                })
                .to_string(),
            );
        }
    }
    let bodies: Arc<Vec<String>> = Arc::new(bodies);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(opts.connections)
        .timeout(Duration::from_secs(30))
        .build()?;
    let expiration = channel
        .expiration
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let resource_uri = channel.resource_uri.clone().unwrap_or_default();
    let next = Arc::new(AtomicI64::new(FIRST_MESSAGE));
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(opts.seconds);
    let mut tasks = Vec::new();
    for _ in 0..opts.connections {
        let (http, url, bodies, next) = (http.clone(), url.clone(), bodies.clone(), next.clone());
        let (id, token, rid) = (
            channel.id.clone(),
            channel.token.expose().to_owned(),
            channel.resource_id.clone(),
        );
        let (expiration, resource_uri) = (expiration.clone(), resource_uri.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = LoadResult::default();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let body = bodies[(n - FIRST_MESSAGE) as usize % bodies.len()].clone();
                let t = Instant::now();
                let sent = http
                    .post(&url)
                    .header(h::CHANNEL_ID, &id)
                    .header(h::CHANNEL_TOKEN, &token)
                    .header(h::CHANNEL_EXPIRATION, &expiration)
                    .header(h::RESOURCE_ID, &rid)
                    .header(h::RESOURCE_URI, &resource_uri)
                    .header(h::RESOURCE_STATE, "update")
                    .header(h::MESSAGE_NUMBER, n.to_string())
                    .header("content-type", "application/json; charset=UTF-8")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        r.latencies.push(t.elapsed());
                        if status == 200 {
                            r.ok += 1;
                        } else {
                            *r.by_status.entry(status).or_default() += 1;
                        }
                    }
                    Err(_) => r.errors += 1,
                }
            }
            r
        }));
    }
    let mut total = LoadResult::default();
    for t in tasks {
        let r = t.await?;
        total.ok += r.ok;
        total.errors += r.errors;
        for (s, n) in r.by_status {
            *total.by_status.entry(s).or_default() += n;
        }
        total.latencies.extend(r.latencies);
    }
    let elapsed = started.elapsed();
    let load_cpu = cpu_seconds() - cpu0;
    let rate = total.ok as f64 / elapsed.as_secs_f64();

    // Drain: every accepted notification's job must run.
    let drain_started = Instant::now();
    let mut peak_queue = 0;
    loop {
        let queued = store.count_jobs().await?;
        peak_queue = peak_queue.max(queued);
        if queued == 0 {
            break;
        }
        if drain_started.elapsed() > Duration::from_secs(600) {
            bail!("{queued} jobs still queued 600 s after the load stopped");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain = drain_started.elapsed();
    let stored = opened
        .count("SELECT count(*) FROM notifications WHERE message_number >= 1000000000")
        .await?;
    let failed_now = store.list_failed_jobs(10).await?.len();
    let m = daemon.metrics();
    let jobs_done = m.get("orgsync_jobs_total", "applied")
        + m.get("orgsync_jobs_total", "unchanged")
        + m.get("orgsync_jobs_total", "stale");
    let job_failures = m.get("orgsync_jobs_total", "failed");
    let gets = daemon
        .shared
        .client
        .stats()
        .snapshot()
        .calls("directory.users.get");
    total.latencies.sort();
    let rejected: u64 = total.by_status.values().sum();
    println!(
        "  accepted (200)                    {:>9}       in {:.2} s",
        total.ok,
        elapsed.as_secs_f64()
    );
    println!(
        "  accepted/s                        {rate:>9.0}       target >= {PUSH_TARGET_PER_SEC:.0}/s   ratio {:.2}   {}",
        rate / PUSH_TARGET_PER_SEC,
        verdict(rate >= PUSH_TARGET_PER_SEC)
    );
    println!(
        "  not accepted                      {:>9}       target 0   (by status {:?}; transport errors {})",
        rejected + total.errors,
        total.by_status,
        total.errors
    );
    println!(
        "  request latency                   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; this process's CPU {load_cpu:.2} s in {:.2} s (daemon + load generator)",
        ms(percentile(&total.latencies, 50.0)),
        ms(percentile(&total.latencies, 99.0)),
        ms(percentile(&total.latencies, 100.0)),
        elapsed.as_secs_f64()
    );
    println!(
        "  stored notifications              {stored:>9}       expected {} (each accepted one recorded once)   {}",
        total.ok,
        verdict(stored as u64 == total.ok)
    );
    println!(
        "  drain after the load              {:>9.2} s     queue at the end of the load {peak_queue}; jobs run {jobs_done} ({} coalesced per user), users.get calls {gets}",
        drain.as_secs_f64(),
        total.ok.saturating_sub(jobs_done)
    );
    println!(
        "  every job applied                 {:>9}       jobs queued 0, failing now {failed_now}, failed attempts {job_failures}",
        verdict(failed_now == 0)
    );
    daemon.shutdown().await;
    opened.close().await;
    emu.stop();
    Ok(())
}

// ---- connections and memory -------------------------------------------------------------

/// Resident set size of this process now (Linux `VmRSS`), in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// One client connection: connect, one keep-alive `GET /healthz`, read the answer.
async fn healthz_connection(
    addr: std::net::SocketAddr,
) -> anyhow::Result<(tokio::net::TcpStream, bool)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .context("connect timed out")??;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
        .await?;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap_or(Ok(0))
        .unwrap_or(0);
    Ok((s, buf[..n].starts_with(b"HTTP/1.1 200")))
}

async fn connections_phase(rounds: usize, count: usize, parallel: usize) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    ensure!(
        (1..=20).contains(&rounds) && (1..=9000).contains(&count),
        "--rounds must be 1..=20 and --conn-count 1..=9000 (two descriptors per connection \
         in this process)"
    );
    println!(
        "\n== connections: {rounds} rounds of {count} keep-alive connections to /healthz on 127.0.0.1, {parallel} opened at a time, each held until the round is open =="
    );
    let emu = Emu::start("connections", 10, 0).await?;
    let opened = Opened::open(&Backend::Sqlite, &emu.dir, "connections").await?;
    let store = opened.store.clone();
    let daemon = start_daemon(emu.config(), store.clone()).await?;
    wait_ready(store.as_ref(), 11).await?;
    let addr = daemon.addr;
    ensure!(
        addr.ip().is_loopback(),
        "the daemon must listen on loopback"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base_fds = open_fds();
    println!(
        "  before the first round: RSS {:.1} MiB, {base_fds} descriptors",
        rss_mib()
    );
    println!("  round  answered  server sockets held  RSS held (MiB)  RSS 2 s after close (MiB)");
    for round in 1..=rounds {
        let started = Instant::now();
        let mut streams = Vec::with_capacity(count);
        let mut answered = 0usize;
        let mut failed = 0usize;
        let mut pending = futures::stream::iter((0..count).map(|_| healthz_connection(addr)))
            .buffer_unordered(parallel);
        while let Some(r) = pending.next().await {
            match r {
                Ok((s, ok)) => {
                    answered += usize::from(ok);
                    streams.push(s);
                }
                Err(_) => failed += 1,
            }
        }
        drop(pending);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let server_held = open_fds().saturating_sub(base_fds + streams.len());
        let held = rss_mib();
        drop(streams);
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "  {round:>5}  {answered:>8}  {server_held:>19}  {held:>14.1}  {:>25.1}   ({failed} connects failed; {:.1} s)",
            rss_mib(),
            started.elapsed().as_secs_f64()
        );
    }
    daemon.shutdown().await;
    opened.close().await;
    emu.stop();
    Ok(())
}
