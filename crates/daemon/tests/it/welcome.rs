//! The welcome mail from the daemon: a user created by a push `add` notification gets
//! exactly one welcome, sent by the worker that applied it; updates, restarts and the
//! reconcile on start send nothing more. Real HTTP against the emulator, a real SQLite file,
//! the mail read back from the sender's mailbox.

use std::time::Duration;

use crate::common::*;
use orgsync_client::GoogleClient;
use orgsync_jobs::users::{
    LAST_RECONCILE_KEY, STATE_SCOPE, WELCOME_SCOPE, WelcomeRecord, WelcomeState,
};
use orgsync_store::Store;
use orgsync_testkit::gmail::message_ids;

const T: Duration = Duration::from_secs(20);

/// (to, subject) of every message in the admin's SENT label.
async fn sent(reader: &GoogleClient) -> Vec<(String, String)> {
    let gmail = reader.gmail(Some(ADMIN));
    let mut out = Vec::new();
    for id in message_ids(reader, ADMIN, "SENT").await {
        let m = gmail.messages_get(&id, Some("metadata")).await.unwrap();
        let p = m.payload.unwrap();
        out.push((
            p.header("To")
                .unwrap_or_default()
                .trim_matches(['<', '>'])
                .to_string(),
            p.header("Subject").unwrap_or_default().to_string(),
        ));
    }
    out
}

async fn record(store: &dyn Store, id: &str) -> Option<WelcomeRecord> {
    store
        .get_sync_state(WELCOME_SCOPE, id)
        .await
        .unwrap()
        .map(|v| serde_json::from_str(&v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_added_by_a_push_gets_one_welcome_from_the_worker() {
    let e = env(3).await;
    let template = e.dir.path().join("welcome.txt");
    std::fs::write(
        &template,
        "Hi {given_name} {family_name}, you are {email}.\n",
    )
    .unwrap();
    let mut config = e.config();
    config.mail.welcome.enabled = true;
    config.mail.welcome.template_file = Some(template);
    let reader =
        e.client_with(|c| c.scopes.gmail = vec![orgsync_wire::scopes::GMAIL_READONLY.into()]);

    let store = e.sqlite("welcome.db").await;
    let d = e.start(config.clone(), store.clone()).await;
    e.wait_for_channels(store.as_ref(), T).await;
    wait_for("initial reconcile", T, || async {
        store
            .get_sync_state(STATE_SCOPE, LAST_RECONCILE_KEY)
            .await
            .unwrap()
    })
    .await;
    assert!(
        sent(&reader).await.is_empty(),
        "the initial import mails nobody"
    );

    let u = e.insert_user("pushed").await;
    let id = u.id.clone().unwrap();
    let rec = wait_for("welcome sent", T, || async {
        record(store.as_ref(), &id)
            .await
            .filter(|r| r.state == WelcomeState::Sent)
    })
    .await;
    assert_eq!(rec.email, "pushed@example.com");
    assert_eq!(rec.attempts, 1);
    assert!(rec.message_id.is_some());
    assert_eq!(
        sent(&reader).await,
        [(
            "pushed@example.com".to_string(),
            "Welcome, New!".to_string()
        )]
    );

    // An update of the same user sends nothing.
    e.rename_family(&id, "Renamed").await;
    wait_for_family(store.as_ref(), &id, "Renamed", T).await;
    d.shutdown().await;

    // A restart (reconcile on start) sends nothing either.
    e.advance(chrono::Duration::minutes(1));
    let before = store
        .get_sync_state(STATE_SCOPE, LAST_RECONCILE_KEY)
        .await
        .unwrap();
    let d = e.start(config, store.clone()).await;
    wait_for("the restart's reconcile", T, || async {
        let now = store
            .get_sync_state(STATE_SCOPE, LAST_RECONCILE_KEY)
            .await
            .unwrap();
        (now != before).then_some(())
    })
    .await;
    assert_eq!(sent(&reader).await.len(), 1, "exactly one welcome");
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}
