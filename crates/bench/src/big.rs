//! Big directories: the peak memory of the shipped `orgsync` binary over 100,000 and
//! 500,000 generated users, against the target of 3 KB per directory user.
//!
//! `orgsync-bench big [--users 100000,500000] [--limit 100] [--contacts-users 100000]
//! [--serve-interval-secs 60]`
//!
//! Each org runs as a user would run it: `orgsync emulator --users N --data-dir D` in its
//! own process (built from the same tree, `target/release/orgsync`), then the commands
//! below with the `orgsync.toml` it writes and nothing tuned, each in a process of its own.
//! Peak RSS is that process's `VmHWM`, sampled from `/proc` every 10 ms until it exits
//! (a high-water mark: the last sample is the peak up to that moment).
//!
//! - `users sync --json`: the first import into a fresh SQLite state, then a no-change
//!   run; their wall time beside the time spent inside `users.list` (the report's calls).
//! - `contacts plan --limit 1` (one target, every colleague as a source).
//! - `contacts sync --limit L` (default 100 targets, each to receive the whole org; only
//!   with `--contacts-users` at or above N). Google caps a book at 25,000 contacts, so
//!   every book is refused at planning: this is the shared desired contacts plus the
//!   targets' plans.
//! - `serve` on a fresh state with `reconcile_interval_secs = S` (default 60; 0 skips
//!   it): RSS once the start-up reconcile (a first import) has finished, then once a
//!   scheduled one has, and 10 s after that, as `/status.json` reports them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::measure::flag;

/// The target: peak RSS per directory user.
const TARGET_KB_PER_USER: f64 = 3.0;

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let users: String = flag(args, "--users", "100000,500000".to_string());
    let limit: usize = flag(args, "--limit", 100);
    let serve_secs: u64 = flag(args, "--serve-interval-secs", 60);
    let contacts_users: usize = flag(args, "--contacts-users", 100_000);
    let exe = orgsync_exe()?;
    println!(
        "orgsync binary: {} (release); targets: peak RSS <= {TARGET_KB_PER_USER} KB per directory user",
        exe.display()
    );
    for n in users.split(',').map(|s| s.trim().parse::<usize>()) {
        let n = n.context("--users takes a comma-separated list of counts")?;
        one_org(&exe, n, limit, n <= contacts_users, serve_secs).await?;
    }
    Ok(())
}

/// `target/release/orgsync` beside this benchmark's own binary.
fn orgsync_exe() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let exe = me.with_file_name("orgsync");
    if !exe.exists() {
        bail!(
            "{} is missing: build it first (cargo build --release --bins)",
            exe.display()
        );
    }
    Ok(exe)
}

async fn one_org(
    exe: &Path,
    n: usize,
    limit: usize,
    contacts_sync: bool,
    serve_secs: u64,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("orgsync-bench-big-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let emulator = Emulator::start(exe, n, &dir)?;
    println!(
        "\n== {n} users: emulator ready in {:.1} s (pid {}) ==",
        started.elapsed().as_secs_f64(),
        emulator.child.id()
    );
    let config = dir.join("orgsync.toml");
    let bound_mib = n as f64 * TARGET_KB_PER_USER * 1000.0 / (1024.0 * 1024.0);

    let first = Run::of(exe, &config, &["users", "sync", "--json"])?;
    first.print("users sync, first import", n, bound_mib);
    let again = Run::of(exe, &config, &["users", "sync", "--json"])?;
    again.print("users sync, no change", n, bound_mib);
    let plan = Run::of(
        exe,
        &config,
        &["contacts", "plan", "--limit", "1", "--json"],
    )?;
    plan.print("contacts plan --limit 1", n, bound_mib);
    if contacts_sync {
        // Google caps an address book at 25,000 contacts: with the whole org as sources
        // every book is refused at planning, so this measures the shared desired contacts
        // and `limit` targets' plans, not their writes.
        let limit_arg = limit.to_string();
        let sync = Run::of(
            exe,
            &config,
            &["contacts", "sync", "--limit", &limit_arg, "--json"],
        )?;
        sync.print(&format!("contacts sync --limit {limit}"), n, bound_mib);
    }
    if serve_secs > 0 {
        serve(exe, &dir, &config, n, serve_secs, bound_mib).await?;
    }
    drop(emulator);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `orgsync emulator` in its own process; killed on drop.
struct Emulator {
    child: Child,
}

impl Emulator {
    fn start(exe: &Path, n: usize, dir: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("emulator.log"))?;
        let child = Command::new(exe)
            .args(["emulator", "--users", &n.to_string(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir)
            .env("ORGSYNC_LOG", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting `orgsync emulator`")?;
        let emulator = Emulator { child };
        let deadline = Instant::now() + Duration::from_secs(600);
        let config = dir.join("orgsync.toml");
        while !(config.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            if Instant::now() > deadline {
                bail!(
                    "the emulator did not start in 10 minutes; see {}/emulator.log",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(emulator)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `orgsync` command: its wall time, peak RSS and JSON report.
struct Run {
    wall: Duration,
    peak_mib: f64,
    report: serde_json::Value,
}

impl Run {
    fn of(exe: &Path, config: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let started = Instant::now();
        let mut child = Command::new(exe)
            .arg("--config")
            .arg(config)
            .args(args)
            .env("ORGSYNC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("running orgsync {}", args.join(" ")))?;
        let status_path = format!("/proc/{}/status", child.id());
        let mut stdout = child.stdout.take().context("child stdout")?;
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
            out
        });
        let mut peak_kb = 0u64;
        let status = loop {
            if let Some(kb) = vm_hwm_kb(&status_path) {
                peak_kb = peak_kb.max(kb);
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let wall = started.elapsed();
        let out = reader.join().unwrap_or_default();
        if !status.success() {
            bail!("orgsync {} exited with {status}:\n{out}", args.join(" "));
        }
        let report = serde_json::from_str(&out)
            .with_context(|| format!("the JSON report of orgsync {}", args.join(" ")))?;
        Ok(Run {
            wall,
            peak_mib: peak_kb as f64 / 1024.0,
            report,
        })
    }

    fn print(&self, what: &str, n: usize, bound_mib: f64) {
        let per_user_kb = self.peak_mib * 1024.0 * 1024.0 / 1000.0 / n as f64;
        let mut line = format!(
            "{what}: wall {:.2} s; peak RSS {:.0} MiB = {per_user_kb:.2} KB per directory user \
             (target {bound_mib:.0} MiB, ratio {:.2})",
            self.wall.as_secs_f64(),
            self.peak_mib,
            self.peak_mib / bound_mib,
        );
        if let Some(calls) = self.report.get("calls").and_then(|c| c.as_object()) {
            let list = calls
                .iter()
                .filter(|(m, _)| m.contains("users.list") || m.contains("users_list"))
                .filter_map(|(_, v)| v.as_u64())
                .sum::<u64>();
            line.push_str(&format!("; users.list calls {list}"));
        }
        if let Some(ms) = self.report.get("users_list_ms").and_then(|v| v.as_u64()) {
            line.push_str(&format!(
                "; inside users.list {:.2} s (wall / that {:.2})",
                ms as f64 / 1000.0,
                self.wall.as_secs_f64() * 1000.0 / ms.max(1) as f64
            ));
        }
        for key in ["created", "updated", "unchanged", "deactivated"] {
            if let Some(v) = self.report.get(key).and_then(|v| v.as_u64()) {
                line.push_str(&format!("; {key} {v}"));
            }
        }
        println!("{line}");
        let _ = std::io::stdout().flush();
    }
}

fn vm_hwm_kb(path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `orgsync serve` on a fresh state: RSS after its start-up reconcile and after a
/// scheduled one.
async fn serve(
    exe: &Path,
    dir: &Path,
    config: &Path,
    n: usize,
    interval_secs: u64,
    bound_mib: f64,
) -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let serve_config = dir.join("orgsync-serve.toml");
    let text = std::fs::read_to_string(config)?;
    let fresh = dir.join("serve-state.db").display().to_string();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("path = ") {
                format!("path = {fresh:?}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        &serve_config,
        format!(
            "{text}\n[serve]\nlisten = \"127.0.0.1:{port}\"\nreconcile_interval_secs = {interval_secs}\n"
        ),
    )?;
    let mut child = Command::new(exe)
        .arg("--config")
        .arg(&serve_config)
        .arg("serve")
        .env("ORGSYNC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting orgsync serve")?;
    let status_path = format!("/proc/{}/status", child.id());
    let url = format!("http://127.0.0.1:{port}/status.json");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(interval_secs * 4 + 600);
    let mut finished: Vec<String> = Vec::new();
    let mut after_scheduled: Option<Instant> = None;
    let result = loop {
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "serve did not finish two reconciles in time"
            ));
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!("orgsync serve exited with {status}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(last) = last_users_run(&http, &url).await else {
            continue;
        };
        if finished.last() != Some(&last) {
            finished.push(last);
            let (rss, hwm) = vm_rss_and_hwm_kb(&status_path).unwrap_or((0, 0));
            let what = if finished.len() == 1 {
                "start-up reconcile (first import)"
            } else {
                "scheduled reconcile (no change)"
            };
            println!(
                "serve: after its {what} at {:.0} s: RSS {:.0} MiB (ratio {:.2}); peak so far {:.0} MiB",
                started.elapsed().as_secs_f64(),
                rss as f64 / 1024.0,
                rss as f64 / 1024.0 / bound_mib,
                hwm as f64 / 1024.0,
            );
            if finished.len() == 2 {
                after_scheduled = Some(Instant::now());
            }
        }
        if let Some(at) = after_scheduled
            && at.elapsed() >= Duration::from_secs(10)
        {
            let (rss, hwm) = vm_rss_and_hwm_kb(&status_path).unwrap_or((0, 0));
            println!(
                "serve: 10 s later, idle: RSS {:.0} MiB = {:.2} KB per directory user; peak {:.0} MiB (ratio {:.2})",
                rss as f64 / 1024.0,
                rss as f64 * 1024.0 / 1000.0 / n as f64,
                hwm as f64 / 1024.0,
                hwm as f64 / 1024.0 / bound_mib,
            );
            break Ok(());
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `finished_at` of the users job's last run, from the daemon's `/status.json`.
async fn last_users_run(http: &reqwest::Client, url: &str) -> Option<String> {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status: serde_json::Value = response.json().await.ok()?;
    find_key(&status["jobs"]["users"]["last_run"], "finished_at")
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn find_key<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        _ => None,
    }
}

fn vm_rss_and_hwm_kb(path: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
