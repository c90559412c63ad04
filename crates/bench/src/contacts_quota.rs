//! `orgsync-bench contacts --quota`: the contacts sync against Google's quota model, run
//! with the **shipped default configuration** (no hand-tuned concurrency or pacing).
//!
//! The emulator (a child process, so the RSS printed is orgsync's) runs the `google`
//! quota profile with a one-second quota minute, and orgsync is told the same minute
//! (`[google.quotas] minute_secs = 1`), so an hour of quota time takes a minute and the
//! ratio to the bound is what it would be against Google.
//!
//! **The quota bound** is the larger of, over every metric: the busiest user's units over
//! the per-user limit, and the run's total units over the project limit, both as the
//! emulator counted them; plus the directory pages' latency. For each org it prints the
//! bound, the wall time and its ratio, 429s as a share of requests, calls, peak RSS and
//! orgsync's own prediction; then the same for a second, no-change run.
//!
//! `--users 2000,10000`, `--targets 400,100` (address books written per org; every one
//! receives the whole org), `--latency-ms 20`, `--quota-minute-secs 1` (longer shows the
//! ratio when two cores are not the limit), and `--adapt` for the adaptation run: the
//! emulator allows 10 critical writes per user per minute where orgsync believes 30.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use orgsync_jobs::config::Config;
use orgsync_jobs::contacts::{self, ContactsOptions, ContactsReport, Mode};
use serde::Deserialize;

use crate::client::{EmulatorChild, reset_peak_rss};
use crate::measure::{flag, peak_rss_mib};

/// One metric in the emulator's `GET /emulator/v1/stats` (`quota.<id>`).
#[derive(Debug, Deserialize)]
struct MetricStats {
    units: u64,
    rejected: u64,
    max_user_total_units: u64,
    limit_per_user: Option<u64>,
    limit_per_project: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Stats {
    #[serde(default)]
    quota: BTreeMap<String, MetricStats>,
}

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let sizes: String = flag(args, "--users", "2000,10000".to_string());
    let targets: String = flag(args, "--targets", "400,100".to_string());
    let latency: u64 = flag(args, "--latency-ms", 20);
    let adapt = args.iter().any(|a| a == "--adapt");
    let minute: u64 = flag(args, "--quota-minute-secs", 1);
    let targets: Vec<usize> = targets
        .split(',')
        .map(|t| t.trim().parse().context("--targets takes numbers"))
        .collect::<anyhow::Result<_>>()?;
    for (i, size) in sizes.split(',').filter(|s| !s.is_empty()).enumerate() {
        let users: usize = size.trim().parse().context("--users takes numbers")?;
        let cap = targets.get(i).or(targets.last()).copied().unwrap_or(100);
        one_org(users, cap, latency, adapt, minute).await?;
    }
    Ok(())
}

async fn one_org(
    users: usize,
    cap: usize,
    latency: u64,
    adapt: bool,
    minute: u64,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "orgsync-bench-quota-{}-{users}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let mut child = EmulatorChild::start(users, &dir, Some(0))?;
    let base = child.base_url.clone();
    let http = reqwest::Client::new();
    let mut faults = serde_json::json!({
        "latency_ms": latency,
        "quota_profile": "google",
        "quota_minute_secs": minute,
    });
    if adapt {
        faults["quota"] = serde_json::json!({"people.write.user": 10});
    }
    http.put(format!("{base}/emulator/v1/faults"))
        .json(&faults)
        .send()
        .await?
        .error_for_status()
        .context("setting the emulator's quota profile")?;

    // The shipped defaults, pointed at the emulator, with its one-second quota minute.
    let key = std::fs::read_to_string(dir.join("service-account.json"))?;
    let mut config = Config::default();
    config.google.endpoint = Some(base.clone());
    config.google.service_account_key = Some(key);
    config.google.admin_subject = Some("admin@example.com".into());
    config.google.quotas.minute_secs = minute as f64;
    let state: PathBuf = dir.join("state.db");
    config.state.url = Some(format!("sqlite://{}", state.display()));
    let store: std::sync::Arc<dyn orgsync_store::Store> = std::sync::Arc::new(
        orgsync_store_sqlite::SqliteStore::connect(&config.state.database_url()).await?,
    );
    let options = ContactsOptions {
        limit: Some(cap),
        ..ContactsOptions::new(Mode::Sync)
    };
    println!(
        "\n== quota: {users}-person org, {cap} address books, `google` profile{}, quota minute {minute} s, {latency} ms per call, shipped defaults ==",
        if adapt {
            " with people.write.user = 10 (orgsync believes 30)"
        } else {
            ""
        }
    );
    reset_peak_rss();
    for (run, label) in [(1, "first sync"), (2, "second, no-change run")] {
        let client = orgsync_jobs::context::service_account_client(&config)?;
        reset_emulator_stats(&http, &base).await?;
        let started = Instant::now();
        let cpu = crate::contacts::cpu_seconds();
        let emulator_cpu = child.cpu_seconds();
        let report = contacts::run(&client, store.clone(), &config, &options).await?;
        let wall = started.elapsed().as_secs_f64();
        let cpu = crate::contacts::cpu_seconds() - cpu;
        let emulator_cpu = child.cpu_seconds() - emulator_cpu;
        crate::contacts::ensure_no_failures(&report)?;
        let stats: Stats = http
            .get(format!("{base}/emulator/v1/stats"))
            .send()
            .await?
            .json()
            .await?;
        print_run(label, &report, &stats, wall, users, latency, minute);
        println!(
            "  CPU time: orgsync {cpu:.2} s, emulator {emulator_cpu:.2} s   ({:.0}% of 2 cores over the wall time)",
            100.0 * (cpu + emulator_cpu) / (2.0 * wall)
        );
        if run == 1 && adapt && report.quota.metrics.iter().all(|m| m.adapted.is_empty()) {
            println!("  ADAPTATION MISSING: no limit was adapted");
        }
        if adapt {
            break;
        }
    }
    let rss = peak_rss_mib().unwrap_or(f64::NAN);
    println!(
        "  peak RSS (orgsync process)        {rss:>9.1} MiB   target < 300 MiB   ratio {:.2}",
        rss / 300.0
    );
    store.close().await;
    if let Some(e) = child.stop() {
        println!("  (emulator child peak RSS          {e:>9.1} MiB, not orgsync's)");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn reset_emulator_stats(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    http.post(format!("{base}/emulator/v1/reset"))
        .json(&serde_json::json!({}))
        .send()
        .await?
        .error_for_status()
        .context("resetting the emulator's counters")?;
    Ok(())
}

/// The quota bound in quota minutes, and what binds it.
fn quota_bound(stats: &Stats) -> (f64, String) {
    let mut worst = (0.0, "nothing".to_string());
    for (id, m) in &stats.quota {
        if id == "people.daily_write" {
            continue; // a day's limit; no run here comes near it
        }
        for (units, limit, scope) in [
            (m.max_user_total_units, m.limit_per_user, "user"),
            (m.units, m.limit_per_project, "project"),
        ] {
            if let Some(l) = limit {
                let minutes = units as f64 / l as f64;
                if minutes > worst.0 {
                    worst = (minutes, format!("{id} per {scope} ({units} units / {l})"));
                }
            }
        }
    }
    worst
}

fn print_run(
    label: &str,
    r: &ContactsReport,
    stats: &Stats,
    wall: f64,
    users: usize,
    latency_ms: u64,
    minute_secs: u64,
) {
    let (minutes, binding) = quota_bound(stats);
    let directory = (users as u64 + 1).div_ceil(500) as f64 * latency_ms as f64 / 1000.0;
    let bound = minutes * minute_secs as f64 + directory;
    let requests: u64 = r.calls.total + r.calls.retries;
    let rejected: u64 = stats.quota.values().map(|m| m.rejected).sum();
    println!(
        "{label}: {} targets, {} sources, created {}, updated {}, deleted {}; {} address books at once",
        r.totals.targets,
        r.sources,
        r.totals.created,
        r.totals.updated,
        r.totals.deleted,
        r.concurrency
    );
    println!("  quota bound                       {bound:>9.2} s     bound by {binding}");
    println!(
        "  wall time                         {wall:>9.2} s     ratio {:.2}   (target <= 1.15)",
        wall / bound
    );
    println!(
        "  429s                              {:>9}       {:.2}% of {requests} requests (target <= 1%; adaptation <= 5%)",
        r.quota.http_429,
        100.0 * r.quota.http_429 as f64 / requests.max(1) as f64
    );
    println!(
        "  emulator refusals                 {rejected:>9}       (must equal the 429s orgsync saw)"
    );
    println!("  API calls                         {:>9}", r.calls.total);
    if let Some(p) = &r.quota.predicted {
        println!(
            "  orgsync's prediction              {:>9.2} s     ratio to wall {:.2}",
            p.seconds,
            wall / p.seconds.max(f64::EPSILON)
        );
    }
    for m in &r.quota.metrics {
        if m.waits > 0 || !m.adapted.is_empty() {
            print!(
                "    {:<28} {:>8} units, {:>6} waits, {:>9.1} s waited in all",
                m.id,
                m.units,
                m.waits,
                m.waited_ms as f64 / 1000.0
            );
            for a in &m.adapted {
                print!("; per {} adapted {:?} -> {}", a.scope, a.configured, a.now);
            }
            println!();
        }
    }
    for line in r.render_text().lines().filter(|l| l.starts_with("  time:")) {
        println!("  report says:{}", line.trim_start_matches("  time:"));
    }
}
