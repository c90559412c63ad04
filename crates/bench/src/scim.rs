//! `orgsync-bench scim`: provisioning a SCIM app (scim2-server, the real independent
//! server the tests use) with the shipped defaults of `[[scim]]`.
//!
//! 1. The emulator (its own process) with `--users` people; `--groups` groups in all:
//!    the generated org's nested unit, department and all-staff groups plus teams of 20
//!    direct members added through the Directory API.
//! 2. **First sync** of every user and group: requests per method against the bound
//!    stated below, wall time, peak RSS.
//! 3. **No-change sync**: listing requests only.
//! 4. **Push latency**: the emulator at `--latency-ms` (20) per Google call, `orgsync
//!    serve` with the target configured (production `Tuning`), `--changes` family-name
//!    edits one after another; each edit's latency is from `users.update` returning to
//!    the SCIM resource showing the new name (read by id every 10 ms). p50, p99 and the
//!    ratio of p99 to the 2 s target.
//!
//! The request bound of a first sync: one `ServiceProviderConfig`, one listing page each
//! of Users and Groups (empty), one POST per active user (creates go in waves down the
//! management chain, so each is created with its manager's SCIM id; a PATCH per person
//! is counted only when a second pass had to set a manager), one POST per group, and one
//! PATCH per further 100 members of a group (`members_per_patch`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::TryStreamExt as _;
use orgsync_client::GoogleClient;
use orgsync_jobs::config::ScimTargetConfig;
use orgsync_jobs::scim::{ScimOptions, ScimReport, sync};
use orgsync_store::Store;
use orgsync_testkit::scim::{ScimServer, TOKEN};
use orgsync_wire::directory::Group;

use crate::measure::{flag, ms, peak_rss_mib, percentile};
use crate::serve::{Emu, start_daemon};

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let users: usize = flag(args, "--users", 10_000);
    let groups: usize = flag(args, "--groups", 200);
    let latency_ms: u64 = flag(args, "--latency-ms", 20);
    let changes: usize = flag(args, "--changes", 20);
    println!(
        "== scim: {users} people, {groups} groups into scim2-server, shipped [[scim]] defaults =="
    );
    let emu = Emu::start("scim", users, 0).await?;
    grant_group_write(&emu).await?;
    let admin = emu.admin_with_groups()?;
    let all_groups = add_teams(&admin, &emu, groups).await?;
    let server = ScimServer::spawn().await;
    let token_file = emu.dir.join("scim.token");
    std::fs::write(&token_file, TOKEN)?;
    let mut config = emu.config();
    config.scim = vec![ScimTargetConfig {
        name: "app".into(),
        url: server.base.clone(),
        token_file: Some(token_file),
        groups: all_groups.clone(),
        ..ScimTargetConfig::default()
    }];
    let store: Arc<dyn Store> =
        Arc::new(orgsync_store_sqlite::SqliteStore::open_path(&emu.dir.join("scim.db")).await?);
    let client = orgsync_jobs::context::service_account_client(&config)?;

    // First sync.
    let t = Instant::now();
    let cpu = crate::serve::cpu_seconds();
    let first = one(&client, &config, store.as_ref()).await?;
    let wall = t.elapsed();
    let cpu = crate::serve::cpu_seconds() - cpu;
    let memberships = group_sizes(&client, &all_groups).await?;
    let extra_patches: u64 = memberships
        .iter()
        .map(|m| (m.saturating_sub(1) / 100) as u64)
        .sum();
    let manager_patches = first
        .changes
        .iter()
        .filter(|c| c.kind == "user" && c.action == "update")
        .count() as u64;
    let bound = 3
        + first.users.created as u64
        + manager_patches
        + first.groups.created as u64
        + extra_patches;
    let calls: u64 = first.calls.values().sum();
    println!(
        "first sync: {} users created, {} groups created ({} memberships), {} not provisioned \
         (suspended or archived)",
        first.users.created,
        first.groups.created,
        memberships.iter().sum::<usize>(),
        first.users.not_created_inactive
    );
    println!(
        "  SCIM requests: {calls} (bound {bound}: ratio {:.3})",
        calls as f64 / bound as f64
    );
    for (k, v) in &first.calls {
        println!("    {k}: {v}");
    }
    println!(
        "  of which manager PATCHes after the creates: {manager_patches}; member PATCHes beyond the POST: {extra_patches}"
    );
    println!(
        "  wall {:.1} s ({:.1} ms per created resource; orgsync's CPU {cpu:.1} s); peak RSS of \
         orgsync's process {:.0} MiB",
        wall.as_secs_f64(),
        ms(wall) / (first.users.created + first.groups.created).max(1) as f64,
        peak_rss_mib().unwrap_or(f64::NAN)
    );

    // No change.
    let t = Instant::now();
    let again = one(&client, &config, store.as_ref()).await?;
    let wall = t.elapsed();
    let page = first
        .features
        .map_or(100, |f| f.max_results.unwrap_or(100).min(1000));
    let list_pages = 1 + first.users.created.div_ceil(page) + first.groups.created.div_ceil(page);
    println!(
        "no-change sync: {} changes, {} SCIM requests (bound {list_pages}: ServiceProviderConfig \
         and {page}-resource listing pages), wall {:.1} s",
        again.total_changes(),
        again.calls.values().sum::<u64>(),
        wall.as_secs_f64()
    );
    if again.total_changes() != 0 {
        bail!("the no-change run changed {:?}", again.changes);
    }

    // Push latency through serve.
    set_latency(&emu, latency_ms).await?;
    let daemon = start_daemon(config.clone(), store.clone()).await?;
    wait_channels(store.as_ref()).await?;
    // The full SCIM run on start (nothing to change) finishes before the edits, as in
    // production between two scheduled runs.
    let t = Instant::now();
    while store
        .get_sync_state("serve", "next_scim_at")
        .await?
        .is_none()
    {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("the daemon's start-up SCIM run did not finish in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = scim_ids(&server).await;
    let directory = orgsync_testkit::emulator::directory_users(&admin).await;
    let victims: Vec<_> = directory
        .iter()
        .filter(|u| u.suspended != Some(true) && u.archived != Some(true))
        .filter(|u| {
            !u.primary_email
                .as_deref()
                .unwrap_or("")
                .starts_with("admin@")
        })
        .filter_map(|u| Some((u.id.clone()?, ids.get(u.id.as_ref()?)?.clone())))
        .take(changes)
        .collect();
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    for (i, (id, scim_id)) in victims.iter().enumerate() {
        let family = format!("Pushed{i}");
        let dir = admin.directory();
        let mut u = dir.users_get(id, Some("full"), None).await?;
        u.name.get_or_insert_default().family_name = Some(family.clone());
        u.password = None;
        dir.users_update(id, &u).await?;
        let t = Instant::now();
        loop {
            let r: serde_json::Value = http
                .get(format!("{}Users/{scim_id}", server.base))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .json()
                .await?;
            if r["name"]["familyName"] == family.as_str() {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("edit {i} did not reach the app in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    latencies.sort();
    let p99 = percentile(&latencies, 99.0);
    println!(
        "push: {} edits at {latency_ms} ms per Google call: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         p99 / 2 s target = {:.2}",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(p99),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        p99.as_secs_f64() / 2.0
    );
    daemon.shutdown().await;
    emu.stop();
    Ok(())
}

async fn one(
    client: &GoogleClient,
    config: &orgsync_jobs::config::Config,
    store: &dyn Store,
) -> anyhow::Result<ScimReport> {
    let mut results = sync(client, config, store, None, ScimOptions::default()).await?;
    let (_, r) = results.remove(0);
    let r = r?;
    if !r.failures.is_empty() || r.outage.is_some() {
        bail!("the run failed: {:?} {:?}", r.failures, r.outage);
    }
    Ok(r)
}

async fn grant_group_write(emu: &Emu) -> anyhow::Result<()> {
    let mut scopes: Vec<&str> = orgsync_emulator::oauth::DEFAULT_DELEGATED_SCOPES.to_vec();
    scopes.push(orgsync_wire::scopes::DIRECTORY_GROUP);
    reqwest::Client::new()
        .put(format!("{}/emulator/v1/delegation", emu.base))
        .json(&serde_json::json!({ "scopes": scopes }))
        .send()
        .await?
        .error_for_status()
        .context("delegating the group scope")?;
    Ok(())
}

/// The generated groups plus `total - generated` teams of 20 people each.
async fn add_teams(admin: &GoogleClient, emu: &Emu, total: usize) -> anyhow::Result<Vec<String>> {
    let dir = admin.directory();
    let mut emails: Vec<String> = dir
        .groups_list(Default::default())
        .map_ok(|g| g.email)
        .try_collect()
        .await?;
    let people: Vec<String> = orgsync_testkit::emulator::directory_users(admin)
        .await
        .into_iter()
        .filter_map(|u| u.primary_email)
        .filter(|e| !e.starts_with("admin@"))
        .collect();
    let domain = emu.config().google.admin_subject.unwrap_or_default();
    let domain = domain
        .split('@')
        .nth(1)
        .unwrap_or("example.com")
        .to_string();
    let mut k = 0usize;
    while emails.len() < total {
        let email = format!("team-{k}@{domain}");
        dir.groups_insert(&Group {
            email: email.clone(),
            name: Some(format!("Team {k}")),
            ..Group::default()
        })
        .await?;
        for j in 0..20 {
            let who = &people[(k * 37 + j * 101) % people.len()];
            let _ = dir.members_insert(&email, who).await;
        }
        emails.push(email);
        k += 1;
    }
    Ok(emails)
}

async fn group_sizes(client: &GoogleClient, groups: &[String]) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for g in groups {
        let n = client
            .directory()
            .members_list(g, true, None)
            .try_filter(|m| {
                futures::future::ready(m.kind_of_member.as_deref().is_none_or(|t| t == "USER"))
            })
            .try_collect::<Vec<_>>()
            .await?
            .len();
        out.push(n);
    }
    Ok(out)
}

async fn set_latency(emu: &Emu, latency_ms: u64) -> anyhow::Result<()> {
    reqwest::Client::new()
        .put(format!("{}/emulator/v1/faults", emu.base))
        .json(&serde_json::json!({ "latency_ms": latency_ms }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn wait_channels(store: &dyn Store) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let n = store
            .list_live_channels(chrono::Utc::now())
            .await?
            .iter()
            .filter(|c| c.replaced_by.is_none())
            .count();
        if n == 5 {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("the daemon opened {n} channels in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// externalId → SCIM id of every user on the server.
async fn scim_ids(server: &ScimServer) -> BTreeMap<String, String> {
    server
        .users()
        .await
        .into_iter()
        .filter_map(|u| {
            Some((
                u["externalId"].as_str()?.to_string(),
                u["id"].as_str()?.to_string(),
            ))
        })
        .collect()
}
