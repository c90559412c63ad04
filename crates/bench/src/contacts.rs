//! `orgsync-bench contacts`: the contacts sync against an emulator with injected
//! latency, run exactly as `orgsync contacts sync` runs it (`orgsync_jobs::contacts::run`).
//!
//! The emulator runs in a child process (see [`crate::client`]), so the peak RSS printed
//! is orgsync's alone. For each org size it prints: calls of the first full sync against
//! the lower bound (per target one list page per 1,000 contacts, ⌈creates/200⌉ batches,
//! one group call, and with `personal_duplicates = "skip"`, the shipped default, one
//! read of a new book's own contacts before creating: skipping a colleague the person
//! saved needs their contacts first; plus the directory pages) and against one-call-per-contact; wall time
//! against the latency bound for the concurrency; the same for a second, no-change run;
//! peak RSS.
//!
//! `--users 300,2000` org sizes; `--targets N` caps the address books written for orgs
//! larger than N (every target still receives every colleague, so per-target figures
//! are those of the full org; the emulator would otherwise hold 4 million contacts);
//! `--latency-ms 20`; `--concurrency N` (default: the shipped default, as many address
//! books at once as the quotas can use; the bound uses what the run used);
//! `--personal-duplicates skip|add` (default `skip`, the shipped default);
//! `--mutation-hold-ms 0`: the emulator holds
//! every People mutation at least this long (its stand-in for a backend's write
//! latency, 10 ms by default in the emulator). The bench sets 0 so that each call costs
//! exactly the injected latency, as the bound assumes; with a hold, the bound
//! printed adds it to every mutation.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use orgsync_jobs::contacts::{self, ContactsOptions, ContactsReport, Mode};
use orgsync_jobs::context;

use crate::client::{EmulatorChild, reset_peak_rss};
use crate::measure::{flag, peak_rss_mib};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "--quota") {
        return crate::contacts_quota::run(args).await;
    }
    let sizes: String = flag(args, "--users", "300,2000".to_string());
    let cap: usize = flag(args, "--targets", 300);
    let latency: u64 = flag(args, "--latency-ms", 20);
    // 0: the shipped default (as many address books at once as the quotas can use).
    let concurrency: usize = flag(args, "--concurrency", 0);
    let hold: u64 = flag(args, "--mutation-hold-ms", 0);
    // The shipped default ("skip"), or "add" to see what reading new books first costs.
    let duplicates: String = flag(args, "--personal-duplicates", "skip".to_string());
    let duplicates = match duplicates.as_str() {
        "skip" => orgsync_core::contacts::PersonalDuplicates::Skip,
        "add" => orgsync_core::contacts::PersonalDuplicates::Add,
        other => anyhow::bail!("--personal-duplicates takes skip or add, not {other:?}"),
    };
    for size in sizes.split(',').filter(|s| !s.is_empty()) {
        let users: usize = size.trim().parse().context("--users takes numbers")?;
        let lat = Latency {
            per_call_ms: latency,
            mutation_hold_ms: hold,
            concurrency,
        };
        one_org(users, cap, lat, duplicates).await?;
    }
    Ok(())
}

/// What the emulator adds to each call, and how many run at once.
#[derive(Clone, Copy)]
struct Latency {
    per_call_ms: u64,
    mutation_hold_ms: u64,
    concurrency: usize,
}

impl Latency {
    /// Seconds if every call waited only for its latency: the directory pages one after
    /// another, the People calls `concurrency` at a time.
    fn bound(&self, r: &ContactsReport, directory_pages: u64) -> f64 {
        let mut people_ms = 0u64;
        for (method, n) in &r.calls.by_method {
            if method.starts_with("directory.") {
                continue;
            }
            let hold = if is_write(method) {
                self.mutation_hold_ms
            } else {
                0
            };
            people_ms += n * (self.per_call_ms + hold);
        }
        (directory_pages * self.per_call_ms) as f64 / 1000.0
            + people_ms as f64 / r.concurrency.max(1) as f64 / 1000.0
    }
}

fn is_write(method: &str) -> bool {
    !method.ends_with(".list") && !method.ends_with(".get")
}

async fn one_org(
    users: usize,
    cap: usize,
    lat: Latency,
    duplicates: orgsync_core::contacts::PersonalDuplicates,
) -> anyhow::Result<()> {
    let (latency, concurrency) = (lat.per_call_ms, lat.concurrency);
    let dir = std::env::temp_dir().join(format!(
        "orgsync-bench-contacts-{}-{users}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let mut child = EmulatorChild::start(users, &dir, Some(lat.mutation_hold_ms))?;
    let base = child.base_url.clone();
    reqwest::Client::new()
        .put(format!("{base}/emulator/v1/faults"))
        .json(&serde_json::json!({ "latency_ms": latency }))
        .send()
        .await?
        .error_for_status()
        .context("setting the emulator's latency")?;
    let key = std::fs::read_to_string(dir.join("service-account.json"))?;
    let mut config = context::emulator_config(&base, key, "admin@example.com");
    let state: PathBuf = dir.join("state.db");
    config.state.url = Some(format!("sqlite://{}", state.display()));
    config.contacts.concurrency = (concurrency > 0).then_some(concurrency);
    config.contacts.personal_duplicates = duplicates;
    let store: std::sync::Arc<dyn orgsync_store::Store> = std::sync::Arc::new(
        orgsync_store_sqlite::SqliteStore::connect(&config.state.database_url()).await?,
    );
    let limit = (users > cap).then_some(cap);
    let options = ContactsOptions {
        limit,
        ..ContactsOptions::new(Mode::Sync)
    };

    println!(
        "\n== {users}-person org ({} people with the admin), {latency} ms per call, People mutation hold {} ms, concurrency {} ==",
        users + 1,
        lat.mutation_hold_ms,
        if concurrency > 0 {
            concurrency.to_string()
        } else {
            "default".into()
        }
    );
    reset_peak_rss();
    let client = context::service_account_client(&config)?;
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let first = contacts::run(&client, store.clone(), &config, &options).await?;
    let first_wall = started.elapsed();
    let first_cpu = cpu_seconds() - cpu_before;
    ensure_no_failures(&first)?;
    let skip =
        config.contacts.personal_duplicates == orgsync_core::contacts::PersonalDuplicates::Skip;
    report_first(&first, users, first_wall.as_secs_f64(), lat, skip);
    println!(
        "  orgsync CPU time                  {first_cpu:>9.2} s     (2 cores shared with the emulator, which stores every contact)"
    );

    let client = context::service_account_client(&config)?;
    let started = Instant::now();
    let second = contacts::run(&client, store.clone(), &config, &options).await?;
    let second_wall = started.elapsed();
    report_second(&second, users, second_wall.as_secs_f64(), lat);
    let rss = peak_rss_mib().unwrap_or(f64::NAN);
    println!(
        "  peak RSS (orgsync process)        {rss:>9.1} MiB   target < 200 MiB   ratio {:.2}",
        rss / 200.0
    );
    store.close().await;
    let emulator_rss = child.stop();
    if let Some(e) = emulator_rss {
        println!("  (emulator child peak RSS          {e:>9.1} MiB, not orgsync's)");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// User + system CPU time of this process, seconds (`/proc/self/stat`, 100 ticks/s).
pub(crate) fn cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

/// User + system CPU time of the process whose `stat` file is at `path`.
pub(crate) fn cpu_seconds_of(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
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
    // After the command name: state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn directory_pages(users: usize) -> u64 {
    (users as u64 + 1).div_ceil(500)
}

fn report_first(r: &ContactsReport, users: usize, wall: f64, lat: Latency, skip: bool) {
    let targets = r.totals.targets as u64;
    let mut bound = directory_pages(users);
    let mut naive = 0u64;
    for u in &r.users {
        let created = u.created as u64;
        let contacts_after = created + u.personal as u64;
        let own_read = u64::from(skip && u.path == Some(contacts::ReadPath::Fresh));
        bound += contacts_after.max(1).div_ceil(1000) + created.div_ceil(200) + 1 + own_read;
        naive += created + 1;
    }
    let calls = r.calls.total;
    println!(
        "first sync: {targets} targets, {} sources, {} contacts created",
        r.sources, r.totals.created
    );
    println!(
        "  API calls                         {calls:>9}       lower bound {bound:>7}   ratio {:.3}   (target <= 1.05)",
        calls as f64 / bound as f64
    );
    println!(
        "  vs one call per contact           {naive:>9}       {:.0}x fewer calls (target >= 100x; the lower bound itself is {:.0}x)",
        naive as f64 / calls as f64,
        naive as f64 / bound as f64
    );
    for (m, n) in &r.calls.by_method {
        println!("    {m:<40} {n:>8}");
    }
    let time_bound = lat.bound(r, directory_pages(users));
    println!(
        "  wall time                         {wall:>9.2} s     latency bound {time_bound:>6.2} s   ratio {:.2}   (target <= 2)",
        wall / time_bound
    );
}

fn report_second(r: &ContactsReport, users: usize, wall: f64, lat: Latency) {
    let targets = r.totals.targets as u64;
    let writes: u64 = r
        .calls
        .by_method
        .iter()
        .filter(|(m, _)| is_write(m))
        .map(|(_, n)| n)
        .sum();
    let reads = r
        .calls
        .by_method
        .get("people.people.connections.list")
        .copied()
        .unwrap_or(0);
    let bound = targets + directory_pages(users);
    println!(
        "second, no-change run: {} of {targets} users by one incremental read",
        r.totals.users_incremental
    );
    println!("  writes                            {writes:>9}       target 0");
    println!(
        "  address-book reads                {reads:>9}       at most {targets} (one per target)"
    );
    println!(
        "  API calls                         {:>9}       bound {bound:>7}   ratio {:.3}",
        r.calls.total,
        r.calls.total as f64 / bound as f64
    );
    let time_bound = lat.bound(r, directory_pages(users));
    println!(
        "  wall time                         {wall:>9.2} s     latency bound {time_bound:>6.2} s   ratio {:.2}",
        wall / time_bound
    );
}

/// A benchmark run whose users failed measured something else: stop and say which.
pub(crate) fn ensure_no_failures(report: &contacts::ContactsReport) -> anyhow::Result<()> {
    anyhow::ensure!(
        report.totals.users_failed == 0,
        "users failed: {:?}",
        report
            .users
            .iter()
            .filter(|u| u.reason.is_some())
            .collect::<Vec<_>>()
    );
    Ok(())
}
