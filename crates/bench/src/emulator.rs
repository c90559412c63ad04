//! Emulator throughput: `users.list` over a large org, small `users.get` requests under
//! concurrency, and `connections.list` over 25,000 contacts. The emulator must not be the
//! bottleneck of the sync benchmarks (target: ≥ 5,000 small requests/s on 2 cores with no
//! injected latency). Client and server share this process and its cores, as they do in
//! every test here, so the figure is a floor for the server alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orgsync_emulator::auth::IssuedToken;
use orgsync_emulator::{EmulatorConfig, spawn};
use orgsync_wire::directory::Users;
use orgsync_wire::people::{
    BatchCreateContactsRequest, ContactToCreate, ListConnectionsResponse, Name, Person,
};
use orgsync_wire::scopes;

use crate::measure::{flag, ms, peak_rss_mib, percentile};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let users: usize = flag(args, "--users", 100_000);
    let seconds: u64 = flag(args, "--seconds", 5);
    let concurrency: usize = flag(args, "--concurrency", 32);
    let contacts: usize = flag(args, "--contacts", 25_000);

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

    // 3. connections.list over `contacts` contacts of one user, pages of 1000.
    let member = emails
        .iter()
        .find(|e| !e.starts_with("admin@"))
        .cloned()
        .unwrap_or_default();
    let people_token = mint(&member, scopes::CONTACTS);
    let t = Instant::now();
    let mut created = 0;
    while created < contacts {
        let n = (contacts - created).min(200);
        let body = BatchCreateContactsRequest {
            contacts: (0..n)
                .map(|i| ContactToCreate {
                    contact_person: Person {
                        names: vec![Name {
                            given_name: Some(format!("Bench{}", created + i)),
                            family_name: Some("Contact".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                })
                .collect(),
            read_mask: "names".into(),
            sources: vec![],
        };
        http.post(format!("{base}/v1/people:batchCreateContacts"))
            .bearer_auth(&people_token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        created += n;
    }
    let create_time = t.elapsed();
    let t = Instant::now();
    let (mut pages, mut seen, mut token) = (0usize, 0usize, None::<String>);
    loop {
        let mut req = http
            .get(format!("{base}/v1/people/me/connections"))
            .bearer_auth(&people_token)
            .query(&[
                (
                    "personFields",
                    "names,emailAddresses,phoneNumbers,clientData,memberships",
                ),
                ("pageSize", "1000"),
            ]);
        if let Some(tok) = &token {
            req = req.query(&[("pageToken", tok)]);
        }
        let page: ListConnectionsResponse = req.send().await?.error_for_status()?.json().await?;
        pages += 1;
        seen += page.connections.len();
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let list_time = t.elapsed();
    println!(
        "people: created {created} contacts in {} batch calls, {:.2} s; connections.list {seen} contacts in {pages} pages, {:.2} s ({:.1} ms/page)",
        created.div_ceil(200),
        create_time.as_secs_f64(),
        list_time.as_secs_f64(),
        ms(list_time) / pages.max(1) as f64,
    );
    println!(
        "peak RSS (emulator + load generator): {:.0} MiB",
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    handle.shutdown().await?;
    Ok(())
}
