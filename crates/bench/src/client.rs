//! Client listing benchmark: stream 100k users and 25k contacts of one user through
//! `orgsync-client` and report calls, wall time and peak RSS against their bounds
//! (the target: listing 100k users stays under 300 MB of memory).
//!
//! Why two processes: the emulator holds the whole org in memory, so measured in the
//! same process its heap would swamp the client's. The bench re-executes itself with
//! `client --serve-emulator` to run the emulator in a child process; the parent is then
//! only the client, and `VmHWM` of the parent is the client's peak memory.
//!
//! Why reset the high-water mark per phase: `VmHWM` only grows, so a phase measured
//! after a hungrier one would inherit its peak. Writing `5` to `/proc/self/clear_refs`
//! resets it to the current RSS (Linux ≥ 4.0); when that is refused the figures are
//! labelled cumulative. The non-streamed contrast (all users collected in a `Vec`) runs
//! last, because the allocator may keep the freed memory resident afterwards.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::TryStreamExt as _;
use orgsync_client::directory::UsersListParams;
use orgsync_client::people::ConnectionsParams;
use orgsync_client::{ClientConfig, Endpoints, GoogleClient, QuotaLimits, ServiceAccount};
use orgsync_emulator::{EmulatorConfig, spawn};
use orgsync_wire::directory::User;
use orgsync_wire::people::{Name, Person};

use crate::measure::{flag, ms, peak_rss_mib};

/// The memory target for listing 100k users.
const RSS_TARGET_MIB: f64 = 300.0;
const USERS_PAGE: usize = 500;
const CONTACTS_PAGE: usize = 1000;
const BATCH_CREATE: usize = 200;
const PERSON_FIELDS: &str =
    "names,emailAddresses,phoneNumbers,organizations,clientData,memberships,metadata";

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let users: usize = flag(args, "--users", 100_000);
    let contacts: usize = flag(args, "--contacts", 25_000);
    if args.iter().any(|a| a == "--serve-emulator") {
        let dir: PathBuf = flag(args, "--key-dir", PathBuf::new());
        let hold: Option<u64> = args
            .iter()
            .position(|a| a == "--mutation-hold-ms")
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok());
        return serve_emulator(users, &dir, hold).await;
    }
    let domain = EmulatorConfig::default().domain;

    // 1. The emulator, in a child process.
    let key_dir = std::env::temp_dir().join(format!("orgsync-bench-client-{}", std::process::id()));
    std::fs::create_dir_all(&key_dir).with_context(|| format!("creating {}", key_dir.display()))?;
    let t = Instant::now();
    let mut child = EmulatorChild::start(users, &key_dir, None)?;
    let base = child.base_url.clone();
    println!(
        "emulator (child process {}): {users} users + admin at {base}, ready in {:.2} s",
        child.child.id(),
        t.elapsed().as_secs_f64()
    );
    let result = measure(&base, &key_dir, &domain, users, contacts).await;
    let emulator_peak = child.stop();
    let _ = std::fs::remove_dir_all(&key_dir);
    match emulator_peak {
        Some(mib) => println!(
            "emulator child process peak RSS: {mib:.0} MiB (not part of the client figures)"
        ),
        None => println!("emulator child process peak RSS: not reported"),
    }
    result
}

async fn measure(
    base: &str,
    key_dir: &Path,
    domain: &str,
    users: usize,
    contacts: usize,
) -> anyhow::Result<()> {
    let sa = ServiceAccount::from_file(key_dir.join("service-account.json"))?;
    let client = GoogleClient::new(
        Arc::new(sa),
        ClientConfig {
            endpoints: Endpoints::emulator(base),
            quotas: QuotaLimits::unlimited(),
            admin_subject: Some(format!("admin@{domain}")),
            ..Default::default()
        },
    );
    let hwm_resets = reset_peak_rss();
    println!(
        "client process {}: RSS at start {:.0} MiB; peak RSS {}",
        std::process::id(),
        current_rss_mib().unwrap_or(f64::NAN),
        if hwm_resets {
            "reset before each phase (per-phase peaks)"
        } else {
            "cannot be reset here: figures are cumulative peaks"
        }
    );

    // 2. Stream every user: count them, keep nothing but one member's address.
    let expected_users = users + 1; // the generated users plus admin@
    client.stats().reset();
    reset_peak_rss();
    let start_rss = current_rss_mib().unwrap_or(f64::NAN);
    let t = Instant::now();
    let (mut seen, mut member) = (0usize, None::<String>);
    let mut pages = std::pin::pin!(client.directory().users_pages(UsersListParams::default()));
    while let Some(page) = pages.try_next().await? {
        seen += page.users.len();
        if member.is_none() {
            member = page
                .users
                .iter()
                .filter_map(|u| u.primary_email.clone())
                .find(|e| !e.starts_with("admin@"));
        }
    }
    let elapsed = t.elapsed();
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    let calls = client.stats().snapshot();
    if seen != expected_users {
        bail!("users.list streamed {seen} users, expected {expected_users}");
    }
    if calls.total_errors > 0 || calls.total_retries > 0 {
        bail!("users.list had errors or retries: {calls:?}");
    }
    let bound = expected_users.div_ceil(USERS_PAGE) as u64;
    let list_calls = calls.calls("directory.users.list");
    println!(
        "users, streamed: {seen} users; calls {list_calls} users.list, {} in all (bound ⌈{expected_users}/{USERS_PAGE}⌉ = {bound}, ratio {:.2}); wall {:.2} s ({:.0} users/s, {:.1} ms/page); peak RSS {peak:.0} MiB, {start_rss:.0} MiB at start (target < {RSS_TARGET_MIB:.0} MiB, ratio {:.2})",
        calls.total_calls,
        list_calls as f64 / bound as f64,
        elapsed.as_secs_f64(),
        seen as f64 / elapsed.as_secs_f64(),
        ms(elapsed) / list_calls.max(1) as f64,
        peak / RSS_TARGET_MIB,
    );
    if peak >= RSS_TARGET_MIB {
        bail!(
            "streaming {seen} users peaked at {peak:.0} MiB, over the {RSS_TARGET_MIB:.0} MiB target"
        );
    }
    let member = member.context("the org has no user besides the admin")?;

    // 3. Seed `contacts` contacts of one user through People batchCreateContacts.
    let people = client.people(&member);
    let t = Instant::now();
    client.stats().reset();
    // Chunk by chunk, dropping each answer, so seeding leaves no heap behind to
    // inflate the listing's peak below.
    for start in (0..contacts).step_by(BATCH_CREATE) {
        let chunk: Vec<Person> = (start..(start + BATCH_CREATE).min(contacts))
            .map(|i| Person {
                names: vec![Name {
                    given_name: Some(format!("Bench{i}")),
                    family_name: Some("Contact".into()),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        people.batch_create_contacts(chunk, "names").await?;
    }
    let seed = client.stats().snapshot();
    println!(
        "contacts seeded for {member}: {contacts} in {} batchCreateContacts calls (bound ⌈{contacts}/{BATCH_CREATE}⌉ = {}), {:.2} s (setup, not measured)",
        seed.calls("people.people.batchCreateContacts"),
        contacts.div_ceil(BATCH_CREATE),
        t.elapsed().as_secs_f64(),
    );

    // 4. Stream that user's connections, pages of 1000.
    client.stats().reset();
    reset_peak_rss();
    let start_rss = current_rss_mib().unwrap_or(f64::NAN);
    let t = Instant::now();
    let mut seen = 0usize;
    let mut pages = std::pin::pin!(people.connections_pages(ConnectionsParams::new(PERSON_FIELDS)));
    while let Some(page) = pages.try_next().await? {
        seen += page.connections.len();
    }
    let elapsed = t.elapsed();
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    let calls = client.stats().snapshot();
    if seen != contacts {
        bail!("connections.list streamed {seen} contacts, expected {contacts}");
    }
    let bound = contacts.div_ceil(CONTACTS_PAGE) as u64;
    let list_calls = calls.calls("people.people.connections.list");
    println!(
        "contacts, streamed: {seen} contacts; calls {list_calls} connections.list (bound ⌈{contacts}/{CONTACTS_PAGE}⌉ = {bound}, ratio {:.2}); wall {:.2} s ({:.0} contacts/s, {:.1} ms/page); peak RSS {peak:.0} MiB, {start_rss:.0} MiB at start",
        list_calls as f64 / bound as f64,
        elapsed.as_secs_f64(),
        seen as f64 / elapsed.as_secs_f64(),
        ms(elapsed) / list_calls.max(1) as f64,
    );

    // 5. Contrast, not how orgsync lists: every user collected into a Vec.
    client.stats().reset();
    reset_peak_rss();
    let start_rss = current_rss_mib().unwrap_or(f64::NAN);
    let t = Instant::now();
    let all: Vec<User> = client
        .directory()
        .users_list(UsersListParams::default())
        .try_collect()
        .await?;
    let elapsed = t.elapsed();
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    let calls = client.stats().snapshot();
    println!(
        "users, NOT streamed (contrast: all collected into a Vec<User>): {} users; calls {}; wall {:.2} s; peak RSS {peak:.0} MiB, {start_rss:.0} MiB at start (ratio to the {RSS_TARGET_MIB:.0} MiB target {:.2})",
        all.len(),
        calls.calls("directory.users.list"),
        elapsed.as_secs_f64(),
        peak / RSS_TARGET_MIB,
    );
    drop(all);
    Ok(())
}

/// Reset this process's `VmHWM` to its current RSS; false when the kernel refuses.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Current resident set size of this process (`VmRSS`), in MiB.
fn current_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The emulator child process. Dropping it kills the child, so an early error in the
/// parent never leaves an emulator behind.
pub(crate) struct EmulatorChild {
    child: Child,
    stdout: BufReader<ChildStdout>,
    pub(crate) base_url: String,
}

impl EmulatorChild {
    /// `mutation_hold_ms`: the People mutation hold (the emulator's stand-in for a
    /// backend's write latency, 10 ms by default); `None` keeps the default.
    pub(crate) fn start(
        users: usize,
        key_dir: &Path,
        mutation_hold_ms: Option<u64>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary to re-execute")?;
        let mut command = Command::new(exe);
        command
            .args(["client", "--serve-emulator", "--users"])
            .arg(users.to_string())
            .arg("--key-dir")
            .arg(key_dir);
        if let Some(hold) = mutation_hold_ms {
            command.arg("--mutation-hold-ms").arg(hold.to_string());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the emulator child process")?;
        let mut stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(base_url) = line.trim().strip_prefix("READY ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the emulator child did not start (said {line:?}); see its stderr above");
        };
        Ok(EmulatorChild {
            child,
            stdout,
            base_url,
        })
    }

    /// User + system CPU seconds the child has used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        crate::contacts::cpu_seconds_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Close the child's stdin (its signal to stop), wait, and return its peak RSS.
    pub(crate) fn stop(&mut self) -> Option<f64> {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        let _ = self.child.wait();
        rest.lines()
            .find_map(|l| l.strip_prefix("PEAK_RSS_MIB "))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for EmulatorChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Child side: run the emulator, write the service-account key (0600) into `dir`, say
/// `READY <base>`, serve until stdin closes, then report this process's peak RSS.
async fn serve_emulator(users: usize, dir: &Path, hold_ms: Option<u64>) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() {
        bail!("--serve-emulator needs --key-dir DIR");
    }
    let handle = spawn(EmulatorConfig::for_tests(users)).await?;
    if let Some(ms) = hold_ms {
        handle
            .emulator
            .people
            .set_mutation_hold(Duration::from_millis(ms));
    }
    let key = orgsync_emulator::oauth::service_account_key(&handle.emulator)
        .context("the emulator has no service account")?;
    let path = dir.join("service-account.json");
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?
    };
    file.write_all(serde_json::to_string(&key)?.as_bytes())?;
    drop(file);
    println!("READY {}", handle.base_url);
    std::io::stdout().flush()?;
    // Block on stdin in a blocking thread: EOF (the parent closed it or died) = stop.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    tokio::time::timeout(Duration::from_secs(10), handle.shutdown())
        .await
        .ok();
    println!("PEAK_RSS_MIB {:.1}", peak_rss_mib().unwrap_or(f64::NAN));
    Ok(())
}
