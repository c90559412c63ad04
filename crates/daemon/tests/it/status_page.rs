//! The status page as a person sees it: a real daemon against the emulator, its store
//! seeded with known runs, changes and jobs, and the page rendered by headless Chromium.
//! The DOM Chromium built is checked against the store and `/status.json` (through each
//! value's `data-k`, its JSON pointer), and a phone-sized screenshot is kept in
//! `target/test-artefacts/status-page.png` for people to look at.
//!
//! Chromium is Debian's package (`/usr/bin/chromium`; `.ci/run` installs it). Without it
//! the browser test fails when `CI=true` and is skipped with a warning otherwise, as the
//! PostgreSQL tests are.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use chrono::Utc;
use orgsync_daemon::Clock as _;
use orgsync_jobs::runs::{
    self, AppliedChange, JobName, RunFailure, RunOutcome, RunRecord, Trigger,
};
use orgsync_store::{NewJob, Store};
use serde_json::Value;

use crate::common::{env, wait_for};

const T: Duration = Duration::from_secs(30);
const CHROMIUM: &str = "/usr/bin/chromium";
/// A hung browser is killed after this, so it cannot hang the suite.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// A subject that would be markup if the page did not escape it.
const HOSTILE: &str = "<img src=x onerror=alert(1)>&o'neil@example.com";

/// Chromium's path, or `None` (after a warning on stderr) when it is missing outside CI.
fn chromium() -> Option<&'static str> {
    if Path::new(CHROMIUM).exists() {
        return Some(CHROMIUM);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{CHROMIUM} is missing and CI=true: the status page must be tested in a real \
             browser in CI. Install it with `apt-get install -y chromium` (.ci/run does)."
        );
    }
    // Straight to stderr: the harness swallows a passing test's captured output, and a
    // skip must never be silent.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "WARNING: skipping the status page's browser test: {CHROMIUM} is missing \
         (apt-get install -y chromium); with CI=true this fails."
    );
    None
}

/// Run headless Chromium on `url` with `extra` flags, in its own process group and
/// profile, killing the whole group after [`BROWSER_TIMEOUT`].
async fn run_chromium(chromium: &str, profile: &Path, extra: &[String], url: &str) -> Output {
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .process_group(0)
    .kill_on_drop(true);
    let child = cmd.spawn().expect("chromium starts");
    let pid = child.id();
    match tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.expect("chromium runs"),
        Err(_) => {
            // The browser itself was killed when its future was dropped; its renderer and
            // helpers share its process group.
            if let Some(pid) = pid {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}: {url}");
        }
    }
}

/// Where test artefacts go: `<target dir>/test-artefacts`.
fn artefacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-artefacts");
    std::fs::create_dir_all(&dir).expect("create the artefacts directory");
    dir
}

/// One element of the DOM that carries a value: its `data-k` (a JSON pointer into
/// `/status.json`), its `data-v` or else its text, and its start tag.
#[derive(Debug)]
struct Shown {
    key: String,
    value: String,
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

/// Every value-carrying element of a serialised DOM, in document order.
fn shown_values(dom: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find(" data-k=\"") {
        let open = rest[..i].rfind('<').expect("data-k inside a tag");
        let close = i + rest[i..].find('>').expect("tag ends");
        let tag = &rest[open..=close];
        let text_end = close + 1 + rest[close + 1..].find('<').unwrap_or(0);
        let text = unescape(&rest[close + 1..text_end]);
        out.push(Shown {
            key: attr(tag, "data-k").expect("data-k"),
            value: attr(tag, "data-v").unwrap_or(text),
        });
        rest = &rest[close..];
    }
    out
}

fn value<'a>(shown: &'a [Shown], key: &str) -> &'a str {
    match shown.iter().find(|s| s.key == key) {
        Some(s) => &s.value,
        None => panic!("the page shows no {key}"),
    }
}

/// The text inside the element with `id` (tags stripped).
fn text_of_id(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id}"));
    let body = &dom[start + dom[start..].find('>').unwrap() + 1..];
    let mut depth = 1;
    let mut text = String::new();
    let mut rest = body;
    while depth > 0 && !rest.is_empty() {
        match rest.find('<') {
            Some(0) => {
                let end = rest.find('>').unwrap();
                if rest.starts_with("</") {
                    depth -= 1;
                } else if !rest[..end].ends_with('/') {
                    depth += 1;
                }
                rest = &rest[end + 1..];
            }
            Some(n) => {
                text.push_str(&rest[..n]);
                rest = &rest[n..];
            }
            None => break,
        }
    }
    unescape(&text)
}

/// Whether a value on the page is the JSON's (times compared as instants, numbers as
/// numbers).
fn same(json: &Value, shown: &str) -> bool {
    if let Some(s) = json.as_str() {
        if let (Ok(a), Ok(b)) = (
            chrono::DateTime::parse_from_rfc3339(s),
            chrono::DateTime::parse_from_rfc3339(shown),
        ) {
            return a == b;
        }
        return s == shown;
    }
    if json.is_number() {
        return shown.parse::<f64>().ok() == json.as_f64();
    }
    match json {
        Value::Null => shown == "null",
        Value::Bool(b) => shown == if *b { "true" } else { "false" },
        _ => false,
    }
}

async fn get_json(addr: std::net::SocketAddr) -> Value {
    let resp = reqwest::get(format!("http://{addr}/status.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    resp.json().await.unwrap()
}

/// Seed what the page must show: a contacts run the guard stopped (with more failures
/// than a record keeps), a failed users run, changes, a pending job and a failing one.
async fn seed(store: &dyn Store, now: chrono::DateTime<Utc>) {
    let guard = RunRecord {
        job: JobName::Contacts,
        trigger: Trigger::Schedule,
        started_at: now - chrono::Duration::minutes(12),
        finished_at: now - chrono::Duration::minutes(10),
        outcome: RunOutcome::Guard,
        counts: [("address_books".to_owned(), 240), ("deleted".to_owned(), 0)]
            .into_iter()
            .collect(),
        failures: Vec::new(),
        failures_total: 0,
        message: Some(
            "safety guard: 31% of the last complete run's sources are gone (limit 20%)".into(),
        ),
        complete: true,
    }
    .with_failures(
        std::iter::once(RunFailure {
            subject: HOSTILE.into(),
            reason: "<b>guarded</b>: would delete 40 of 41".into(),
        })
        .chain((1..runs::MAX_FAILURES + 4).map(|i| RunFailure {
            subject: format!("person{i}@example.com"),
            reason: "would delete most of the book".into(),
        })),
    );
    runs::record_run(store, &guard).await.unwrap();
    runs::add_changes(
        store,
        vec![
            AppliedChange {
                at: now - chrono::Duration::minutes(3),
                job: JobName::Users,
                action: "deactivated".into(),
                subject: "leaver@example.com".into(),
                detail: Some("suspended in the directory".into()),
            },
            AppliedChange {
                at: now - chrono::Duration::minutes(2),
                job: JobName::Users,
                action: "created".into(),
                subject: HOSTILE.into(),
                detail: None,
            },
            AppliedChange {
                at: now - chrono::Duration::minutes(1),
                job: JobName::Contacts,
                action: "contacts written".into(),
                subject: "12 address books".into(),
                detail: Some("1 created, 11 updated, 0 deleted (push run)".into()),
            },
        ],
    )
    .await
    .unwrap();
    // A job that fails (claimed by a test worker at a later time, then failed), and one
    // that waits: both due in the future, so the daemon's workers leave them alone.
    let mut failing = NewJob::new("user.refresh", now + chrono::Duration::minutes(30));
    failing.user_email = Some("retry@example.com".into());
    failing.dedupe_key = Some("status-test:failing".into());
    let failing = store.enqueue_job(&failing).await.unwrap().id;
    let later = now + chrono::Duration::minutes(45);
    let claimed = store
        .claim_jobs("status-test", 1, later, chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [failing]);
    store
        .fail_job(
            failing,
            "status-test",
            "reading the directory failed: <503> backend error",
            now + chrono::Duration::hours(3),
            later,
        )
        .await
        .unwrap();
    let mut waiting = NewJob::new("user.refresh", now + chrono::Duration::hours(1));
    waiting.user_email = Some("queued@example.com".into());
    waiting.dedupe_key = Some("status-test:waiting".into());
    store.enqueue_job(&waiting).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_what_the_store_holds_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        return;
    };
    let e = env(3).await;
    let store = e.sqlite("a.db").await;
    let d = e.start(e.config(), store.clone()).await;
    e.wait_for_channels(store.as_ref(), T).await;
    // serve's first reconcile records itself as the users job's run, started by serve.
    let users_run = wait_for("the start reconcile's record", T, || async {
        runs::last_run(store.as_ref(), JobName::Users)
            .await
            .unwrap()
            .filter(|r| r.trigger == Trigger::Start)
    })
    .await;
    assert_eq!(users_run.outcome, RunOutcome::Ok);
    assert!(users_run.counts["created"] >= 4, "{users_run:?}");
    // A push: the worker's applied change joins the list, and the channel's last
    // notification is remembered.
    let pushed = e.insert_user("pushed").await;
    let pushed_email = pushed.primary_email.clone().unwrap();
    let pushed_id = pushed.id.clone().unwrap();
    // Named by the email the notification carried, else by the directory id.
    let pushed_subject = wait_for("the push applied and listed", T, || async {
        runs::recent_changes(store.as_ref())
            .await
            .unwrap()
            .into_iter()
            .find(|c| {
                c.action == "created" && (c.subject == pushed_email || c.subject == pushed_id)
            })
            .map(|c| c.subject)
    })
    .await;
    wait_for("an idle queue", T, || async {
        (store.count_jobs().await.unwrap() == 0).then_some(())
    })
    .await;
    seed(store.as_ref(), e.clock.now()).await;

    let base = format!("http://{}/", d.addr);
    let page = reqwest::get(&base).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
    let json = get_json(d.addr).await;

    // The DOM as Chromium built it.
    let profile = tempfile::tempdir().unwrap();
    let out = run_chromium(chromium, profile.path(), &["--dump-dom".into()], &base).await;
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).expect("the DOM is UTF-8");
    assert!(
        dom.contains("<h1>orgsync serve</h1>"),
        "not the page:\n{dom}"
    );
    let shown = shown_values(&dom);
    assert!(shown.len() > 100, "only {} values on the page", shown.len());

    // Every value on the page is /status.json's (except what moves between two reads).
    let volatile = ["/instance/uptime_secs", "/instance/rendered_at", "/google/"];
    for s in &shown {
        if volatile.iter().any(|v| s.key.starts_with(v)) {
            continue;
        }
        let Some(j) = json.pointer(&s.key) else {
            panic!(
                "the page shows {} = {:?}; /status.json has no such value",
                s.key, s.value
            );
        };
        assert!(same(j, &s.value), "{}: page {:?}, json {j}", s.key, s.value);
    }

    // The header.
    assert_eq!(value(&shown, "/instance/id"), d.instance_id());
    assert_eq!(value(&shown, "/instance/leader"), "true");
    assert_eq!(
        value(&shown, "/instance/version"),
        env!("CARGO_PKG_VERSION")
    );
    assert!(dom.contains("http-equiv=\"refresh\" content=\"30\""));

    // The contacts run the guard stopped, as the store holds it.
    let contacts = runs::last_run(store.as_ref(), JobName::Contacts)
        .await
        .unwrap()
        .expect("the seeded run");
    let c = "/jobs/contacts/last_run/ok";
    assert_eq!(value(&shown, &format!("{c}/outcome")), "guard");
    let banner = text_of_id(&dom, "guard-contacts");
    assert!(
        banner.contains("stopped by the safety guard, waiting for orgsync contacts sync --force"),
        "{banner}"
    );
    assert!(
        banner.contains(contacts.message.as_deref().unwrap()),
        "{banner}"
    );
    assert_eq!(
        value(&shown, &format!("{c}/failures_total")),
        contacts.failures_total.to_string()
    );
    for (i, f) in contacts.failures.iter().enumerate() {
        assert_eq!(
            value(&shown, &format!("{c}/failures/{i}/subject")),
            f.subject
        );
        assert_eq!(value(&shown, &format!("{c}/failures/{i}/reason")), f.reason);
    }
    let more = contacts.failures_total - contacts.failures.len();
    assert!(more > 0);
    assert_eq!(
        text_of_id(&dom, "more-contacts"),
        format!("and {more} more")
    );
    for (name, n) in &contacts.counts {
        assert_eq!(value(&shown, &format!("{c}/counts/{name}")), n.to_string());
    }
    assert_eq!(value(&shown, &format!("{c}/trigger")), "schedule");

    // The users run serve started, with its counts.
    let u = "/jobs/users/last_run/ok";
    assert_eq!(value(&shown, &format!("{u}/trigger")), "start");
    assert_eq!(value(&shown, &format!("{u}/outcome")), "ok");
    for (name, n) in &users_run.counts {
        assert_eq!(value(&shown, &format!("{u}/counts/{name}")), n.to_string());
    }
    let complete = runs::last_complete(store.as_ref(), JobName::Users)
        .await
        .unwrap()
        .unwrap();
    assert!(same(
        &Value::String(complete.to_rfc3339()),
        value(&shown, "/jobs/users/last_complete/ok")
    ));

    // The changes, newest first, as the store lists them; the hostile one as text.
    let changes = runs::recent_changes(store.as_ref()).await.unwrap();
    let listed: Vec<&str> = shown
        .iter()
        .filter(|s| s.key.starts_with("/changes/ok/") && s.key.ends_with("/subject"))
        .map(|s| s.value.as_str())
        .collect();
    let stored: Vec<&str> = changes.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(listed, stored);
    assert_eq!(listed.first(), Some(&"12 address books"));
    assert!(listed.contains(&HOSTILE));
    assert!(listed.contains(&pushed_subject.as_str()));
    assert!(!dom.contains("<img"), "a subject became markup");
    assert!(!dom.contains("<b>guarded"), "a reason became markup");

    // The queue.
    let q = store.queue_summary().await.unwrap();
    assert_eq!(
        value(&shown, "/queue/summary/ok/pending"),
        q.pending.to_string()
    );
    assert_eq!(value(&shown, "/queue/summary/ok/failing"), "1");
    assert_eq!(q.pending, 2);
    assert_eq!(
        value(&shown, "/queue/failing/ok/0/last_error"),
        "reading the directory failed: <503> backend error"
    );
    assert_eq!(
        value(&shown, "/queue/failing/ok/0/subject"),
        "retry@example.com"
    );
    // The lag of the push job this instance ran.
    assert!(json["queue"]["lag"]["samples"].as_u64().unwrap() >= 1);
    assert!(json["queue"]["lag"]["p99_secs"].is_number());

    // The channels: every stored one, and the notifications this instance accepted.
    let channels = store.list_channels().await.unwrap();
    assert_eq!(
        value(&shown, "/channels/ok/total"),
        channels.len().to_string()
    );
    let live = shown
        .iter()
        .filter(|s| s.key.ends_with("/state") && s.value == "live")
        .count();
    assert_eq!(live, 5);
    let heard: Vec<&Shown> = shown
        .iter()
        .filter(|s| s.key.ends_with("/last_notification") && s.value != "null")
        .collect();
    assert!(!heard.is_empty(), "no channel shows the push it delivered");

    // The outbox: no sink configured, the reconcile's entries pending.
    let pending = store.list_pending_outbox(1000).await.unwrap();
    assert_eq!(
        value(&shown, "/outbox/pending/ok/count"),
        pending.len().to_string()
    );
    assert_eq!(value(&shown, "/outbox/sink/configured"), "false");

    // Google: the calls this process made.
    assert!(json["google"]["calls"].as_u64().unwrap() > 0);
    assert!(
        shown.iter().any(|s| s.key == "/google/calls"),
        "no Google calls on the page"
    );

    // No channel token, in the page or the JSON.
    let json_text = json.to_string();
    for ch in &channels {
        let token = ch.token.expose();
        assert!(
            !dom.contains(token),
            "channel {}'s token is on the page",
            ch.id
        );
        assert!(
            !json_text.contains(token),
            "channel {}'s token is in the JSON",
            ch.id
        );
    }

    // A phone-sized screenshot, kept for people to look at.
    let png = artefacts_dir().join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let out = run_chromium(
        chromium,
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=412,915".into(),
            "--hide-scrollbars".into(),
        ],
        &base,
    )
    .await;
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "{} is {size} bytes", png.display());

    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_answers_when_the_store_cannot() {
    let e = env(2).await;
    let store = e.sqlite("a.db").await;
    let d = e.start(e.config(), store.clone()).await;
    e.wait_for_channels(store.as_ref(), T).await;
    store.close().await;

    let page = reqwest::get(format!("http://{}/", d.addr)).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("unavailable: "), "{html}");
    assert!(html.contains("<h1>orgsync serve</h1>"));
    let json = get_json(d.addr).await;
    for section in [
        &json["jobs"]["contacts"]["last_run"],
        &json["jobs"]["users"]["last_complete"],
        &json["channels"],
        &json["queue"]["summary"],
        &json["changes"],
        &json["outbox"]["pending"],
    ] {
        assert!(section["unavailable"].is_string(), "{section}");
    }
    // What needs no store is still there.
    assert_eq!(json["instance"]["id"], d.instance_id());
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}
