//! Emulator throughput: `users.list` over a large org, small `users.get` requests under
//! concurrency, and the People calls a first contacts sync hammers. The emulator must not
//! be the bottleneck of the sync benchmarks (target: ≥ 5,000 small requests/s on 2 cores
//! with no injected latency). Client and server share this process and its cores, as they
//! do in every test here, so the figure is a floor for the server alone.
//!
//! The People phase runs a second emulator on a runtime of its own (threads named
//! `emu-people`), so it can print the emulator's own CPU seconds (those threads' user +
//! system time) per 1,000 contacts: `batchCreateContacts` of 200 contacts shaped like
//! orgsync's (names, emails, phones, organization, external id, four clientData markers,
//! two memberships), then `connections.list` with orgsync's full `personFields`, once
//! incrementally (`syncToken`, every contact new) and once in full (`requestSyncToken`).
//! `--books N` address books of `--contacts N` contacts each, `--book-concurrency C`
//! books at a time, `--only-people` to skip the Directory phases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orgsync_emulator::auth::IssuedToken;
use orgsync_emulator::{EmulatorConfig, spawn};
use orgsync_wire::directory::Users;
use orgsync_wire::scopes;

use crate::measure::{flag, ms, peak_rss_mib, percentile};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let users: usize = flag(args, "--users", 100_000);
    let seconds: u64 = flag(args, "--seconds", 5);
    let concurrency: usize = flag(args, "--concurrency", 32);
    if args.iter().any(|a| a == "--only-people") {
        return people(args).await;
    }

    let t = Instant::now();
    let handle = spawn(EmulatorConfig::for_tests(users)).await?;
    println!(
        "emulator: generated {users} users in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let emu = handle.emulator.clone();
    let base = handle.base_url.clone();
    let domain = emu.config.domain.clone();
    let mint = |subject: &str, scope: &str| {
        let now = emu.clock.now_ms();
        emu.tokens.write().issue(
            IssuedToken {
                subject: Some(subject.to_string()),
                client_id: "bench".into(),
                scopes: vec![scope.to_string()],
                expires_at_ms: now + 3_600_000,
            },
            now,
        )
    };
    let admin_token = mint(&format!("admin@{domain}"), scopes::DIRECTORY_USER);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    // 1. users.list over the whole org, pages of 500.
    let t = Instant::now();
    let (mut pages, mut seen, mut token) = (0usize, 0usize, None::<String>);
    let mut emails = Vec::new();
    loop {
        let mut req = http
            .get(format!("{base}/admin/directory/v1/users"))
            .bearer_auth(&admin_token)
            .query(&[("customer", "my_customer"), ("maxResults", "500")]);
        if let Some(tok) = &token {
            req = req.query(&[("pageToken", tok)]);
        }
        let page: Users = req.send().await?.error_for_status()?.json().await?;
        pages += 1;
        seen += page.users.len();
        if emails.len() < 10_000 {
            emails.extend(page.users.iter().filter_map(|u| u.primary_email.clone()));
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let list_time = t.elapsed();
    println!(
        "users.list: {seen} users in {pages} pages, {:.2} s ({:.0} users/s, {:.1} ms/page; bound: {} pages = ⌈users/500⌉, ratio {:.2})",
        list_time.as_secs_f64(),
        seen as f64 / list_time.as_secs_f64(),
        ms(list_time) / pages as f64,
        seen.div_ceil(500),
        pages as f64 / seen.div_ceil(500).max(1) as f64,
    );

    // 2. Small requests: users.get by email, `concurrency` workers for `seconds`.
    let emails = Arc::new(emails);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (http, base, token, emails) = (
            http.clone(),
            base.clone(),
            admin_token.clone(),
            emails.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = w;
            while Instant::now() < deadline {
                let email = &emails[i % emails.len()];
                i += concurrency;
                let t = Instant::now();
                let ok = http
                    .get(format!(
                        "{base}/admin/directory/v1/users/{}",
                        email.replace('@', "%40")
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                lat.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    lat.sort();
    let rps = lat.len() as f64 / seconds as f64;
    println!(
        "users.get: {} requests in {seconds} s with {concurrency} workers: {rps:.0} req/s (target ≥ 5000, ratio {:.2}), p50 {:.2} ms, p99 {:.2} ms, errors {errors}",
        lat.len(),
        rps / 5000.0,
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 99.0)),
    );

    handle.shutdown().await?;
    people(args).await?;
    println!(
        "peak RSS (emulators + load generator): {:.0} MiB",
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// The `personFields` orgsync lists contacts with.
const PERSON_FIELDS: &str =
    "names,emailAddresses,phoneNumbers,organizations,externalIds,clientData,memberships,metadata";

/// People phase: `--books` address books of `--contacts` contacts, created with
/// `batchCreateContacts` and listed back (incremental, then full), on an emulator whose
/// runtime threads are its own so that their CPU time is the emulator's.
async fn people(args: &[String]) -> anyhow::Result<()> {
    let books: usize = flag(args, "--books", 1).max(1);
    let per_book: usize = flag(args, "--contacts", 25_000);
    let book_concurrency: usize = flag(args, "--book-concurrency", 2).max(1);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(EMU_THREADS)
        .enable_all()
        .build()?;
    let handle = rt.spawn(spawn(EmulatorConfig::for_tests(books))).await??;
    let emu = handle.emulator.clone();
    let base = handle.base_url.clone();
    // Mutations hold their user's marker 10 ms by default (a sleep, no CPU): not needed
    // here, where every book is written by one task.
    emu.people.set_mutation_hold(Duration::ZERO);
    emu.people.set_contact_cap(per_book.max(25_000));
    let users: Vec<String> = emu
        .directory
        .read()
        .users_sorted()
        .filter_map(|u| u.primary_email.clone())
        .filter(|e| !e.starts_with("admin@"))
        .take(books)
        .collect();
    anyhow::ensure!(users.len() == books, "the emulator has too few users");
    let mint = |subject: &str| {
        let now = emu.clock.now_ms();
        emu.tokens.write().issue(
            IssuedToken {
                subject: Some(subject.to_string()),
                client_id: "bench".into(),
                scopes: vec![scopes::CONTACTS.to_string()],
                expires_at_ms: now + 3_600_000,
            },
            now,
        )
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(book_concurrency)
        .build()?;
    let books: Vec<Book> = users
        .iter()
        .enumerate()
        .map(|(i, u)| Book {
            index: i,
            token: mint(u),
            group: String::new(),
            sync: None,
        })
        .collect();

    // Setup (not measured): one label per book, and the sync token of the empty book.
    let books: Vec<Book> = futures::future::try_join_all(books.into_iter().map(|mut b| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let g: serde_json::Value = http
                .post(format!("{base}/v1/contactGroups"))
                .bearer_auth(&b.token)
                .json(&serde_json::json!({"contactGroup": {"name": "Example Org"}}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            b.group = g["resourceName"].as_str().unwrap_or_default().to_string();
            let (_, sync) = list_all(&http, &base, &b.token, None).await?;
            b.sync = sync;
            anyhow::Ok(b)
        }
    }))
    .await?;

    let total = per_book * books.len();
    let per_1000 = |cpu: f64| cpu * 1000.0 / total.max(1) as f64;

    // batchCreateContacts, 200 a call.
    let (cpu, t) = (threads_cpu_seconds(EMU_THREADS), Instant::now());
    let calls = for_each_book(&books, book_concurrency, |b| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let mut calls = 0usize;
            let mut created = 0usize;
            while created < per_book {
                let n = (per_book - created).min(200);
                let contacts: Vec<serde_json::Value> = (created..created + n)
                    .map(|i| contact_json(b.index, i, &b.group))
                    .collect();
                let body = serde_json::to_vec(&serde_json::json!({
                    "contacts": contacts,
                    "readMask": "metadata",
                }))?;
                http.post(format!("{base}/v1/people:batchCreateContacts"))
                    .bearer_auth(&b.token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                created += n;
                calls += 1;
            }
            anyhow::Ok((calls, 0usize, None))
        }
    })
    .await?;
    let (create_cpu, create_wall) = (threads_cpu_seconds(EMU_THREADS) - cpu, t.elapsed());
    println!(
        "people: {total} contacts in {} books, batchCreateContacts ({} calls): {:.2} s wall, emulator CPU {create_cpu:.2} s = {:.3} s per 1,000 contacts",
        books.len(),
        calls.iter().map(|c| c.0).sum::<usize>(),
        create_wall.as_secs_f64(),
        per_1000(create_cpu),
    );

    // connections.list with syncToken: every contact is a change.
    let (cpu, t) = (threads_cpu_seconds(EMU_THREADS), Instant::now());
    let lists = for_each_book(&books, book_concurrency, |b| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let (seen, sync) = list_all(&http, &base, &b.token, b.sync.as_deref()).await?;
            anyhow::Ok((0usize, seen, sync))
        }
    })
    .await?;
    let (inc_cpu, inc_wall) = (threads_cpu_seconds(EMU_THREADS) - cpu, t.elapsed());
    let seen: usize = lists.iter().map(|l| l.1).sum();
    anyhow::ensure!(seen == total, "incremental lists saw {seen} of {total}");
    println!(
        "people: connections.list syncToken=… ({seen} contacts, full personFields): {:.2} s wall, emulator CPU {inc_cpu:.2} s = {:.3} s per 1,000 contacts",
        inc_wall.as_secs_f64(),
        per_1000(inc_cpu),
    );

    // connections.list with requestSyncToken: the full listing.
    let (cpu, t) = (threads_cpu_seconds(EMU_THREADS), Instant::now());
    let lists = for_each_book(&books, book_concurrency, |b| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let (seen, sync) = list_all(&http, &base, &b.token, None).await?;
            anyhow::Ok((0usize, seen, sync))
        }
    })
    .await?;
    let (full_cpu, full_wall) = (threads_cpu_seconds(EMU_THREADS) - cpu, t.elapsed());
    let seen: usize = lists.iter().map(|l| l.1).sum();
    anyhow::ensure!(seen == total, "full lists saw {seen} of {total}");
    println!(
        "people: connections.list requestSyncToken=true ({seen} contacts, full personFields): {:.2} s wall, emulator CPU {full_cpu:.2} s = {:.3} s per 1,000 contacts",
        full_wall.as_secs_f64(),
        per_1000(full_cpu),
    );
    println!(
        "people: emulator CPU per 1,000 contacts created + listed twice: {:.3} s ({:.1} µs per contact)",
        per_1000(create_cpu + inc_cpu + full_cpu),
        (create_cpu + inc_cpu + full_cpu) * 1e6 / total.max(1) as f64,
    );
    rt.spawn(handle.shutdown()).await??;
    rt.shutdown_background();
    Ok(())
}

/// Thread-name prefix of the People phase's emulator runtime.
const EMU_THREADS: &str = "emu-people";

struct Book {
    index: usize,
    token: String,
    group: String,
    sync: Option<String>,
}

/// Run `f` for every book, `concurrency` at a time; the results in any order.
async fn for_each_book<'a, F, Fut>(
    books: &'a [Book],
    concurrency: usize,
    f: F,
) -> anyhow::Result<Vec<(usize, usize, Option<String>)>>
where
    F: Fn(&'a Book) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(usize, usize, Option<String>)>>,
{
    use futures::StreamExt;
    futures::stream::iter(books.iter().map(f))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    #[serde(default)]
    connections: Vec<serde::de::IgnoredAny>,
    next_page_token: Option<String>,
    next_sync_token: Option<String>,
}

/// Every page of `connections.list` (full personFields, 1,000 a page): contacts seen and
/// the sync token of the last page.
async fn list_all(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    sync: Option<&str>,
) -> anyhow::Result<(usize, Option<String>)> {
    let (mut seen, mut page_token) = (0usize, None::<String>);
    loop {
        let mut req = http
            .get(format!("{base}/v1/people/me/connections"))
            .bearer_auth(token)
            .query(&[("personFields", PERSON_FIELDS), ("pageSize", "1000")]);
        req = match sync {
            Some(s) => req.query(&[("syncToken", s)]),
            None => req.query(&[("requestSyncToken", "true")]),
        };
        if let Some(p) = &page_token {
            req = req.query(&[("pageToken", p)]);
        }
        let bytes = req.send().await?.error_for_status()?.bytes().await?;
        let page: ListPage = serde_json::from_slice(&bytes)?;
        seen += page.connections.len();
        match page.next_page_token {
            Some(p) => page_token = Some(p),
            None => return Ok((seen, page.next_sync_token)),
        }
    }
}

/// A contact shaped like the ones orgsync creates (`orgsync_core::contacts`): structured
/// name, one or two emails, one to three phones, an organization, sometimes an external
/// id, the four `orgsync.*` markers and two memberships.
fn contact_json(book: usize, i: usize, group: &str) -> serde_json::Value {
    use serde_json::json;
    let given = format!("Given{i}");
    let family = format!("Family{}", i % 97);
    let email = format!(
        "{}.{}@example.com",
        given.to_lowercase(),
        family.to_lowercase()
    );
    let mut emails = vec![json!({"value": email, "type": "work"})];
    if i.is_multiple_of(2) {
        emails.push(json!({"value": format!("g{i}@alias.example.com"), "type": "other"}));
    }
    let phones: Vec<serde_json::Value> = (0..1 + i % 3)
        .map(|k| {
            let kind = ["work", "mobile", "home"][k];
            json!({
                "value": format!("+1 555 01{:02} {:04}", (book + k) % 100, i % 10_000),
                "type": kind,
            })
        })
        .collect();
    let mut person = json!({
        "names": [{
            "givenName": given,
            "familyName": family,
            "unstructuredName": format!("{given} {family}"),
        }],
        "emailAddresses": emails,
        "phoneNumbers": phones,
        "organizations": [{
            "type": "work",
            "name": "Example Inc.",
            "title": "Senior Engineer",
            "department": format!("Department {}", i % 13),
            "current": true,
        }],
        "clientData": [
            {"key": "orgsync.source", "value": "orgsync"},
            {"key": "orgsync.id", "value": format!("{}", 100_000_000_000_000_000u64 + i as u64)},
            {"key": "orgsync.hash", "value": format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))},
            {"key": "orgsync.owned", "value": "email:work name organization phone:work phone:mobile"},
        ],
        "memberships": [
            {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/myContacts"}},
            {"contactGroupMembership": {"contactGroupResourceName": group}},
        ],
    });
    if i.is_multiple_of(3) {
        person["externalIds"] = json!([{"value": format!("E{i:06}"), "type": "organization"}]);
    }
    json!({ "contactPerson": person })
}

/// User + system CPU seconds of this process's threads whose name starts with `prefix`
/// (`/proc/self/task/*/stat`, 100 ticks/s).
fn threads_cpu_seconds(prefix: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0.0;
    for task in dir.flatten() {
        let path = task.path();
        let named = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|c| c.trim_end().starts_with(prefix));
        if !named {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = after.split_whitespace().collect();
        // After the command name: state is field 0, utime 11, stime 12.
        for i in [11, 12] {
            ticks += fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    ticks / 100.0
}
