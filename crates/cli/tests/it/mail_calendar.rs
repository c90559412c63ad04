//! `orgsync mail` and `orgsync calendar` end to end: the real binary against the
//! in-process emulator, logged in through the real installed-app flow (the test plays
//! the browser), messages read back through `messages.get` and parsed with mail-parser.

use std::path::{Path, PathBuf};

use mail_parser::{MessageParser, MimeHeaders as _};
use orgsync_client::GoogleClient;
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_jobs::auth::{self, LoginOptions};
use orgsync_jobs::mail::{self, OutgoingMail};
use orgsync_testkit::cli::ConfigDir;
use orgsync_testkit::emulator::directory_users;
use orgsync_testkit::gmail::{message_ids, raw_message};
use orgsync_wire::scopes;
use serde_json::Value;

use crate::{ORGSYNC, json, orgsync, spawn_login};

const ADMIN: &str = "admin@example.com";

struct Env {
    emu: EmulatorHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
    /// Domain-wide delegation, for reading any mailbox.
    sa: GoogleClient,
    /// Non-admin users of the emulated domain.
    users: Vec<String>,
}

async fn env() -> Env {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(6)).await;
    let ConfigDir { dir, config } = ConfigDir::new(
        &emu,
        "[auth]\nclient_secret_file = \"client_secret.json\"\ntoken_file = \"token.json\"\n",
    )
    .with_client_secret(&emu);
    let sa = orgsync_testkit::client_with(&emu, |c| {
        c.scopes.gmail = vec![scopes::GMAIL_MODIFY.into()];
    });
    let mut users: Vec<String> = directory_users(&sa)
        .await
        .into_iter()
        .filter(|u| u.is_admin != Some(true) && u.suspended != Some(true))
        .filter_map(|u| u.primary_email)
        .collect();
    users.sort();
    assert!(users.len() >= 4, "{users:?}");
    let env = Env {
        emu,
        dir,
        config,
        sa,
        users,
    };
    login(&env).await;
    env
}

/// Log the admin in through the real flow and save the token where the config says.
async fn login(env: &Env) {
    let secret = auth::read_client_secret(&env.dir.path().join("client_secret.json")).unwrap();
    let outcome = auth::login(&LoginOptions::new(secret), |url| {
        let url = url.to_string();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let resp = http.get(&url).send().await.unwrap();
            let location = resp.headers()["location"].to_str().unwrap().to_string();
            http.get(location).send().await.unwrap();
        });
    })
    .await
    .expect("login");
    assert_eq!(outcome.login.account.as_deref(), Some(ADMIN));
    auth::save_login(&env.dir.path().join("token.json"), &outcome.login).unwrap();
}

/// The stored bytes of `id` in `user`'s mailbox (`messages.get format=raw`).
async fn raw_of(env: &Env, user: &str, id: &str) -> Vec<u8> {
    raw_message(&env.sa, user, id).await
}

async fn inbox(env: &Env, user: &str) -> Vec<String> {
    message_ids(&env.sa, user, "INBOX").await
}

async fn stats(env: &Env) -> Value {
    orgsync_testkit::stats(&env.emu).await
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    // xorshift: incompressible, deterministic, every byte value.
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test]
async fn utf8_subject_and_attachments_come_back_byte_exact() {
    let env = env().await;
    let d = env.dir.path();
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("report.pdf", random_bytes(200_000, 1), "application/pdf"),
        (
            "σημειώσεις.txt",
            "Γραμμή ένα\nline two\n\nno trailing CR\n"
                .as_bytes()
                .to_vec(),
            "text/plain",
        ),
        ("photo.png", random_bytes(30_000, 2), "image/png"),
        ("data.csv", b"a,b\n1,2\n".to_vec(), "text/csv"),
    ];
    let mut args: Vec<String> = [
        "mail",
        "send",
        "--to",
        &format!("Ελένη <{}>", env.users[0]),
        "--cc",
        &env.users[1],
        "--bcc",
        &env.users[2],
        "--subject",
        "Αναφορά Νοεμβρίου — résumé ✓ 日本語",
        "--body-file",
        &write(
            d,
            "body.txt",
            "Καλημέρα,\nthe report is attached.\n".as_bytes(),
        ),
        "--html",
        &write(d, "body.html", "<p>Καλημέρα</p>".as_bytes()),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, bytes, _) in &files {
        args.push("--attach".into());
        args.push(write(d, name, bytes));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = orgsync(&env.config, &args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sent = json(&out);
    let id = sent["message_id"].as_str().expect("message id");
    assert!(sent["thread_id"].as_str().is_some());
    assert!(
        sent["label_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "SENT"),
        "{sent}"
    );

    let raw = raw_of(&env, ADMIN, id).await;
    assert!(raw.is_ascii(), "7-bit clean on the wire");
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.subject(), Some("Αναφορά Νοεμβρίου — résumé ✓ 日本語"));
    assert_eq!(msg.from().unwrap().first().unwrap().address(), Some(ADMIN));
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some("Ελένη"), Some(env.users[0].as_str()))
    );
    assert_eq!(
        msg.body_text(0).unwrap().replace("\r\n", "\n"),
        "Καλημέρα,\nthe report is attached.\n"
    );
    assert_eq!(msg.body_html(0).as_deref(), Some("<p>Καλημέρα</p>"));
    assert_eq!(msg.attachment_count(), files.len());
    for (i, (name, bytes, ty)) in files.iter().enumerate() {
        let a = msg.attachment(i as u32).unwrap();
        assert_eq!(a.attachment_name(), Some(*name));
        let ct = a.content_type().unwrap();
        assert_eq!(
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")),
            *ty
        );
        assert_eq!(a.contents(), bytes.as_slice(), "{name} is byte-exact");
    }

    // Delivered to To, Cc and Bcc; the Bcc header is gone from delivered copies.
    for user in &env.users[..3] {
        let ids = inbox(&env, user).await;
        assert_eq!(ids.len(), 1, "{user}");
        let delivered = raw_of(&env, user, &ids[0]).await;
        let parsed = MessageParser::default().parse(&delivered).unwrap();
        assert!(parsed.bcc().is_none(), "no Bcc in {user}'s copy");
        assert_eq!(parsed.attachment_count(), files.len());
    }
    assert!(inbox(&env, &env.users[3]).await.is_empty());
}

#[tokio::test]
async fn the_library_message_is_stored_byte_for_byte() {
    let env = env().await;
    let login = auth::load_login(&env.dir.path().join("token.json")).unwrap();
    let config = orgsync_jobs::config::load_from(Some(&env.config), &[])
        .unwrap()
        .config;
    let me = auth::personal_client(&config, &login);
    let raw = mail::build_mime(&OutgoingMail {
        from: Some(ADMIN.into()),
        to: vec![env.users[0].clone()],
        subject: "Ünïcödé".into(),
        text: "body\n".into(),
        attachments: vec![mail::Attachment {
            filename: "x.bin".into(),
            content_type: "application/octet-stream".into(),
            data: random_bytes(5000, 3),
        }],
        ..Default::default()
    })
    .unwrap();
    let sent = mail::send_raw_message(&me, None, &raw).await.unwrap();
    let stored = raw_of(&env, ADMIN, sent.message_id.as_deref().unwrap()).await;
    assert_eq!(stored, raw);
}

#[tokio::test]
async fn a_draft_is_sent_later_and_as_sends_through_delegation() {
    let env = env().await;
    let to = env.users[0].clone();
    let out = orgsync(
        &env.config,
        &[
            "mail",
            "send",
            "--to",
            &to,
            "--subject",
            "Πρόχειρο",
            "--body",
            "draft body",
            "--draft",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let draft = json(&out);
    let draft_id = draft["draft_id"].as_str().expect("draft id").to_string();
    assert!(
        inbox(&env, &to).await.is_empty(),
        "a draft is not delivered"
    );

    let out = orgsync(&env.config, &["mail", "send-draft", &draft_id, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sent = json(&out);
    let ids = inbox(&env, &to).await;
    assert_eq!(ids.len(), 1);
    let parsed_raw = raw_of(&env, &to, &ids[0]).await;
    let parsed = MessageParser::default().parse(&parsed_raw).unwrap();
    assert_eq!(parsed.subject(), Some("Πρόχειρο"));
    assert!(sent["message_id"].as_str().is_some());

    // A draft id that does not exist: a clear failure, not a panic.
    let out = orgsync(&env.config, &["mail", "send-draft", "r-nonexistent"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("drafts.send"), "{}", out.stderr);

    // --as: another user of the domain through the service account.
    let sender = env.users[1].clone();
    let out = orgsync(
        &env.config,
        &[
            "mail",
            "send",
            "--as",
            &sender,
            "--to",
            &to,
            "--subject",
            "as",
            "--body",
            "x",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = json(&out)["message_id"].as_str().unwrap().to_string();
    let raw = raw_of(&env, &sender, &id).await;
    let parsed = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        parsed.from().unwrap().first().unwrap().address(),
        Some(sender.as_str())
    );
}

#[tokio::test]
async fn big_messages_use_the_upload_endpoint_and_huge_ones_are_refused_before_any_call() {
    let env = env().await;
    let d = env.dir.path();
    let to = env.users[0].clone();
    let big = random_bytes(6 * 1024 * 1024, 4);
    let big_path = write(d, "big.bin", &big);
    let base = [
        "mail",
        "send",
        "--to",
        &to,
        "--subject",
        "big",
        "--body",
        "x",
    ];

    let mut args = base.to_vec();
    args.extend(["--attach", &big_path, "--dry-run", "--json"]);
    let plan = json(&orgsync(&env.config, &args).await);
    assert_eq!(plan["send_path"], "upload");
    assert!(plan["bytes"].as_u64().unwrap() > 8_000_000);

    // The emulator answers 413 to a JSON `raw` over 5 MiB, so success means upload.
    let mut args = base.to_vec();
    args.extend(["--attach", &big_path, "--json"]);
    let out = orgsync(&env.config, &args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = json(&out)["message_id"].as_str().unwrap().to_string();
    let raw = raw_of(&env, ADMIN, &id).await;
    let parsed = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(parsed.attachment(0).unwrap().contents(), big.as_slice());

    // A big draft goes through drafts.create's upload endpoint, then drafts.send.
    let mut args = base.to_vec();
    args.extend(["--attach", &big_path, "--draft", "--json"]);
    let out = orgsync(&env.config, &args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let draft_id = json(&out)["draft_id"].as_str().unwrap().to_string();
    let out = orgsync(&env.config, &["mail", "send-draft", &draft_id]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ids = inbox(&env, &to).await;
    assert_eq!(ids.len(), 2);
    for id in ids {
        let raw = raw_of(&env, &to, &id).await;
        let parsed = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.attachment(0).unwrap().contents(), big.as_slice());
    }

    // Over 35 MiB after encoding: refused before any token or API call.
    let huge_path = write(d, "huge.bin", &random_bytes(27 * 1024 * 1024, 5));
    let before = stats(&env).await;
    let mut args = base.to_vec();
    args.extend(["--attach", &huge_path]);
    let out = orgsync(&env.config, &args).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("35 MiB"), "{}", out.stderr);
    assert!(out.stderr.contains("Nothing was sent"), "{}", out.stderr);

    // Over 100 recipients: refused up front too.
    let many: Vec<String> = (0..101).map(|i| format!("r{i}@example.org")).collect();
    let many = many.join(",");
    let out = orgsync(
        &env.config,
        &[
            "mail",
            "send",
            "--to",
            &many,
            "--subject",
            "s",
            "--body",
            "b",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("at most 100"), "{}", out.stderr);

    let after = stats(&env).await;
    assert_eq!(before["total_calls"], after["total_calls"], "no API call");
    assert_eq!(
        before["token_grants"], after["token_grants"],
        "no token call"
    );
}

#[tokio::test]
async fn run_reports_and_welcome_mail_from_a_template() {
    let env = env().await;
    let config = orgsync_jobs::config::load_from(Some(&env.config), &[])
        .unwrap()
        .config;
    let delegated = auth::delegated_client(&config).unwrap();
    let to = env.users[0].clone();
    let sent = mail::send_report(
        &delegated,
        ADMIN,
        std::slice::from_ref(&to),
        "orgsync: contacts sync — 3 created",
        "created 3, updated 0\n",
    )
    .await
    .unwrap();
    assert!(sent.label_ids.iter().any(|l| l == "SENT"));
    let ids = inbox(&env, &to).await;
    assert_eq!(ids.len(), 1);

    let user = env.sa.directory().users_get(&to, None, None).await.unwrap();
    let welcome = mail::welcome_mail(
        ADMIN,
        &user,
        "Welcome, {given_name}!",
        "Hello {full_name}, your address is {email} in {org_unit}.",
    )
    .unwrap();
    let raw = mail::build_mime(&welcome).unwrap();
    mail::send_raw_message(&delegated, Some(ADMIN), &raw)
        .await
        .unwrap();
    let ids = inbox(&env, &to).await;
    assert_eq!(ids.len(), 2);
    let given = user.name.as_ref().unwrap().given_name.clone().unwrap();
    let mut subjects = Vec::new();
    for id in &ids {
        let raw = raw_of(&env, &to, id).await;
        let m = MessageParser::default().parse(&raw).unwrap();
        subjects.push(m.subject().unwrap().to_string());
        if m.subject() == Some(format!("Welcome, {given}!").as_str()) {
            let body = m.body_text(0).unwrap();
            assert!(body.contains(&to) && !body.contains('{'), "{body}");
        }
    }
    assert!(
        subjects.contains(&format!("Welcome, {given}!")),
        "{subjects:?}"
    );

    let e = mail::welcome_mail(ADMIN, &user, "Hi {given_nmae}", "x").unwrap_err();
    assert!(e.to_string().contains("{given_nmae}"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Calendar

use chrono::{DateTime, Duration as CDuration, NaiveDate, TimeZone, Utc};

/// `events.insert` into `user`'s primary calendar, as `user`.
async fn insert_event(env: &Env, user: &str, event: Value) -> Value {
    let token = orgsync_testkit::token(&env.emu, user, &[scopes::CALENDAR]);
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/calendar/v3/calendars/primary/events",
            env.emu.base_url
        ))
        .bearer_auth(token)
        .json(&event)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "events.insert: {status} {body}");
    body
}

/// `date` at `h:m` local time in `zone`, as RFC 3339 with that zone's offset.
fn at(zone: chrono_tz::Tz, date: NaiveDate, h: u32, m: u32) -> DateTime<chrono_tz::Tz> {
    zone.from_local_datetime(&date.and_hms_opt(h, m, 0).unwrap())
        .earliest()
        .unwrap()
}

fn timed(zone: chrono_tz::Tz, start: DateTime<chrono_tz::Tz>, minutes: i64) -> Value {
    serde_json::json!({
        "start": {"dateTime": start.to_rfc3339(), "timeZone": zone.name()},
        "end": {"dateTime": (start + CDuration::minutes(minutes)).to_rfc3339(), "timeZone": zone.name()},
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    for (k, v) in b.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

fn summaries(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["summary"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn agenda_expands_recurring_events_orders_them_and_shows_local_times() {
    use chrono_tz::{America::New_York, Asia::Tokyo, Europe::Athens};
    let env = env().await;
    let user = env.users[0].clone();
    let today = Utc::now().date_naive();
    let day = |n: i64| today + CDuration::days(n);

    let standup = at(New_York, day(1), 9, 0);
    insert_event(
        &env,
        &user,
        merge(
            timed(New_York, standup, 15),
            serde_json::json!({"summary": "Daily standup", "recurrence": ["RRULE:FREQ=DAILY;COUNT=5"]}),
        ),
    )
    .await;
    let tokyo = at(Tokyo, day(2), 10, 0);
    insert_event(
        &env,
        &user,
        merge(
            timed(Tokyo, tokyo, 60),
            serde_json::json!({"summary": "Tokyo sync", "location": "Shibuya"}),
        ),
    )
    .await;
    insert_event(
        &env,
        &user,
        serde_json::json!({"summary": "Company holiday",
            "start": {"date": day(2).to_string()}, "end": {"date": day(3).to_string()}}),
    )
    .await;
    insert_event(
        &env,
        &user,
        serde_json::json!({"summary": "Offsite",
            "start": {"date": day(3).to_string()}, "end": {"date": day(6).to_string()}}),
    )
    .await;
    // Outside the window: in the past, and a month ahead.
    for (name, n) in [("Last week", -7), ("Next month", 30)] {
        let t = at(Athens, day(n), 12, 0);
        insert_event(
            &env,
            &user,
            merge(timed(Athens, t, 30), serde_json::json!({"summary": name})),
        )
        .await;
    }

    let out = orgsync(
        &env.config,
        &[
            "calendar",
            "agenda",
            "--user",
            &user,
            "--days",
            "10",
            "--tz",
            "Europe/Athens",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = json(&out);

    // The expected agenda, computed independently: start instants (all-day events start
    // at midnight in the calendar's zone, UTC here), then stable by insertion.
    let mut expected: Vec<(DateTime<Utc>, &str)> = (0..5)
        .map(|i| {
            let local = at(New_York, day(1 + i), 9, 0);
            (local.with_timezone(&Utc), "Daily standup")
        })
        .collect();
    expected.push((tokyo.with_timezone(&Utc), "Tokyo sync"));
    let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap());
    expected.push((midnight(day(2)), "Company holiday"));
    expected.push((midnight(day(3)), "Offsite"));
    expected.sort_by_key(|(t, _)| *t);
    let expected_names: Vec<String> = expected.iter().map(|(_, n)| n.to_string()).collect();
    assert_eq!(summaries(&rows), expected_names);

    for r in rows.as_array().unwrap() {
        match r["summary"].as_str().unwrap() {
            "Daily standup" => {
                assert!(r["recurring_event_id"].is_string(), "{r}");
                assert_eq!(r["all_day"], false);
                let start = DateTime::parse_from_rfc3339(r["start"].as_str().unwrap()).unwrap();
                let in_athens = start.with_timezone(&Athens);
                assert_eq!(
                    r["start_local"],
                    in_athens.format("%Y-%m-%d %H:%M").to_string()
                );
                // Expanded on New York wall time: 09:00 there, whatever the DST state.
                assert_eq!(
                    start.with_timezone(&New_York).format("%H:%M").to_string(),
                    "09:00"
                );
            }
            "Tokyo sync" => {
                let local = tokyo.with_timezone(&Athens);
                assert_eq!(r["start_local"], local.format("%Y-%m-%d %H:%M").to_string());
                assert_eq!(r["location"], "Shibuya");
            }
            "Company holiday" => {
                assert_eq!(r["all_day"], true);
                assert_eq!(r["start_local"], day(2).to_string());
                assert_eq!(r["end_local"], day(2).to_string());
            }
            "Offsite" => {
                assert_eq!(r["all_day"], true);
                assert_eq!(r["start_local"], day(3).to_string());
                assert_eq!(r["end_local"], day(5).to_string(), "end.date is exclusive");
            }
            other => panic!("unexpected event {other}"),
        }
    }

    // The table, in the process's local zone (TZ), all-day events marked.
    let out = ORGSYNC
        .run_env(
            &env.config,
            &["calendar", "agenda", "--user", &user, "--days", "10"],
            &[("TZ", "Asia/Tokyo")],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let table = out.stdout;
    let line = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in {table}"))
            .to_string()
    };
    assert!(line("Tokyo sync").contains("10:00–11:00"), "{table}");
    assert!(
        line("Tokyo sync").ends_with("Tokyo sync  @ Shibuya"),
        "{table}"
    );
    assert!(line("Company holiday").contains("all day "), "{table}");
    assert!(table.contains("all day (3 days, to"), "{table}");
    assert_eq!(table.matches("Daily standup  ↻").count(), 5, "{table}");
    assert!(
        !table.contains("Last week") && !table.contains("Next month"),
        "{table}"
    );

    // --max and --until cut the list.
    let out = orgsync(
        &env.config,
        &[
            "calendar", "agenda", "--user", &user, "--days", "10", "--max", "3", "--json",
        ],
    )
    .await;
    assert_eq!(summaries(&json(&out)), expected_names[..3]);
    let until = day(2).to_string();
    let out = orgsync(
        &env.config,
        &[
            "calendar", "agenda", "--user", &user, "--until", &until, "--tz", "UTC", "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let names = summaries(&json(&out));
    assert!(!names.contains(&"Offsite".to_string()), "{names:?}");
    assert!(names.contains(&"Company holiday".to_string()), "{names:?}");
    assert!(names.contains(&"Tokyo sync".to_string()), "{names:?}");

    let out = orgsync(&env.config, &["calendar", "agenda", "--tz", "Mars/Base"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("IANA"), "{}", out.stderr);
}

#[tokio::test]
async fn agenda_of_the_logged_in_person_follows_every_page() {
    let env = env().await;
    let today = Utc::now().date_naive();
    let start = at(chrono_tz::UTC, today + CDuration::days(1), 8, 0);
    // 3,000 daily instances: more than one page of 2,500.
    insert_event(
        &env,
        ADMIN,
        merge(
            timed(chrono_tz::UTC, start, 30),
            serde_json::json!({"summary": "Backup check", "recurrence": ["RRULE:FREQ=DAILY;COUNT=3000"]}),
        ),
    )
    .await;
    insert_event(
        &env,
        &env.users[0],
        merge(
            timed(chrono_tz::UTC, start, 30),
            serde_json::json!({"summary": "Someone else's"}),
        ),
    )
    .await;
    let out = orgsync(
        &env.config,
        &["calendar", "agenda", "--days", "4000", "--json"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3000);
    assert!(rows.iter().all(|r| r["summary"] == "Backup check"));
    let starts: Vec<&str> = rows.iter().map(|r| r["start"].as_str().unwrap()).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "ordered by start");
    let stats = stats(&env).await;
    assert_eq!(
        stats["calls_by_method"]["calendar.events.list"], 2,
        "{stats}"
    );
}

// ---------------------------------------------------------------------------------------
// The emulator's ready-made orgsync.toml

#[tokio::test]
async fn the_emulator_data_dir_config_logs_in_with_no_manual_setup() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let emu = orgsync_emulator::spawn(EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::for_tests(2)
    })
    .await
    .expect("emulator starts");
    let config_path = dir.path().join("orgsync.toml");
    let text = std::fs::read_to_string(&config_path).unwrap();
    assert!(text.contains("[auth]"), "{text}");
    let config = orgsync_jobs::config::load_from(Some(&config_path), &[])
        .unwrap()
        .config;
    let secret = config
        .auth
        .client_secret_file
        .clone()
        .expect("[auth] client_secret_file");
    let token = config.auth.token_file.clone().expect("[auth] token_file");
    assert_eq!(secret, dir.path().join("client_secret.json"));
    assert!(
        secret.exists(),
        "the emulator wrote the client file it names"
    );
    assert!(
        token.starts_with(dir.path()),
        "never the real login: {token:?}"
    );

    // `orgsync auth login` with nothing but that file (the test plays the browser).
    let mut child = spawn_login(&config_path);
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("http") {
                return line.trim().to_string();
            }
        }
        panic!("login printed no URL");
    })
    .await
    .expect("URL printed in time");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the emulator consents");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    http.get(location).send().await.unwrap();
    while lines.next_line().await.unwrap().is_some() {}
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("login finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        token.exists(),
        "the token went where [auth] token_file says"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let status = orgsync(&config_path, &["auth", "status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains(ADMIN), "{}", status.stdout);
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn agenda_with_an_absurd_window_is_a_usage_error_not_a_panic() {
    let env = env().await;
    for args in [
        ["--days", "99999999"],
        ["--days", "3000000"],
        ["--days", "0"],
        ["--until", "9999-12-31"],
    ] {
        let mut full = vec!["calendar", "agenda", "--user", &env.users[0]];
        full.extend(args);
        let out = orgsync(&env.config, &full).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
    // Nothing reached the Calendar API.
    let stats = stats(&env).await;
    assert!(
        stats["calls_by_method"]["calendar.events.list"].is_null(),
        "{stats}"
    );
}

#[tokio::test]
async fn attaching_a_device_or_a_huge_file_is_refused_from_metadata() {
    let env = env().await;
    let huge = env.dir.path().join("huge.bin");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(3 * 1024 * 1024 * 1024)
        .unwrap();
    for (attach, says) in [
        ("/dev/zero", "not a regular file"),
        (huge.to_str().unwrap(), "35 MiB"),
    ] {
        let out = orgsync(
            &env.config,
            &[
                "mail",
                "send",
                "--to",
                &env.users[1],
                "--subject",
                "s",
                "--body",
                "b",
                "--attach",
                attach,
                "--dry-run",
            ],
        )
        .await;
        assert_eq!(out.code, 2, "{attach}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{attach}: {}", out.stderr);
    }
}

#[tokio::test]
async fn dry_run_counts_each_comma_separated_recipient() {
    let env = env().await;
    let to = format!("{},{},{}", env.users[0], env.users[1], env.users[2]);
    let out = orgsync(
        &env.config,
        &[
            "mail",
            "send",
            "--to",
            &to,
            "--subject",
            "s",
            "--body",
            "b",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json(&out)["recipients"], 3);
}
