//! The users job's welcome mail, end to end: the in-process emulator over real HTTP, a
//! real SQLite file, the message read back from the sender's mailbox (`messages.list` /
//! `messages.get format=raw`) and parsed with mail-parser.

use std::path::Path;
use std::sync::Arc;

use crate::common::Env;
use chrono::Utc;
use mail_parser::MessageParser;
use orgsync_client::{GoogleClient, ServiceAccount, TokenSource};
use orgsync_emulator::EmulatorConfig;
use orgsync_emulator::faults::{ErrorKind, MethodOverride};
use orgsync_jobs::config::Config;
use orgsync_jobs::context;
use orgsync_jobs::users::{
    ReconcileOptions, UsersReport, WELCOME_SCOPE, WelcomeRecord, WelcomeReport, WelcomeState,
    reconcile,
};
use orgsync_store::Store;
use orgsync_testkit::gmail::{message_ids, raw_message};

const TEMPLATE: &str = "Hello {full_name},\n\nyour address is {email}.\n";

struct Welcome {
    env: Env,
    config: Config,
    store: Arc<dyn Store>,
    /// Reads the sender's mailbox (gmail.readonly through delegation).
    reader: GoogleClient,
    sender: String,
    dir: tempfile::TempDir,
}

async fn sqlite(path: &Path) -> Arc<dyn Store> {
    Arc::new(
        orgsync_store_sqlite::SqliteStore::open_path(path)
            .await
            .expect("sqlite"),
    )
}

async fn setup() -> Welcome {
    let env = Env::start(EmulatorConfig::for_tests(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("welcome.txt");
    std::fs::write(&template, TEMPLATE).unwrap();
    let sender = env.emulator.emulator.config.admin_email();
    let mut config = env.config.clone();
    config.mail.from = Some(format!("IT Desk <{sender}>"));
    config.mail.welcome.enabled = true;
    config.mail.welcome.subject = Some("Welcome, {given_name}!".into());
    config.mail.welcome.template_file = Some(template);
    let store = sqlite(&dir.path().join("state.db")).await;
    let key = config.service_account_key_json().unwrap();
    let sa: Arc<dyn TokenSource> = Arc::new(ServiceAccount::from_json(&key).unwrap());
    let mut cc = context::client_config(&config);
    cc.scopes.gmail = vec![orgsync_wire::scopes::GMAIL_READONLY.into()];
    let reader = GoogleClient::new(sa, cc);
    Welcome {
        env,
        config,
        store,
        reader,
        sender,
        dir,
    }
}

impl Welcome {
    async fn sync_with(&self, store: &dyn Store, dry_run: bool) -> UsersReport {
        let opts = ReconcileOptions {
            dry_run,
            force: false,
            ..ReconcileOptions::default()
        };
        reconcile(&self.env.client(), &self.config, store, opts, Utc::now)
            .await
            .expect("the reconcile completes")
    }

    async fn sync(&self) -> UsersReport {
        self.sync_with(self.store.as_ref(), false).await
    }

    /// Every message in the sender's SENT label, parsed: (to, subject, body).
    async fn sent(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for id in message_ids(&self.reader, &self.sender, "SENT").await {
            let raw = raw_message(&self.reader, &self.sender, &id).await;
            let msg = MessageParser::default().parse(&raw).unwrap();
            let from = msg.from().unwrap().first().unwrap();
            assert_eq!(from.address(), Some(self.sender.as_str()));
            assert_eq!(from.name(), Some("IT Desk"));
            out.push((
                msg.to()
                    .unwrap()
                    .first()
                    .unwrap()
                    .address()
                    .unwrap()
                    .to_string(),
                msg.subject().unwrap().to_string(),
                msg.body_text(0).unwrap().replace("\r\n", "\n"),
            ));
        }
        out.sort();
        out
    }

    async fn record(&self, id: &str) -> Option<WelcomeRecord> {
        self.store
            .get_sync_state(WELCOME_SCOPE, id)
            .await
            .unwrap()
            .map(|v| serde_json::from_str(&v).unwrap())
    }

    fn fail_draft_sends(&self, on: bool) {
        let faults = &self.env.emulator.emulator.faults;
        let mut f = faults.settings();
        f.overrides = if on {
            vec![MethodOverride {
                method: "gmail.users.drafts.send".into(),
                error_rate: Some(1.0),
                error_kinds: Some(vec![ErrorKind::BackendError]),
                ..Default::default()
            }]
        } else {
            Vec::new()
        };
        faults.set(f).unwrap();
    }
}

fn welcome(r: &UsersReport) -> &WelcomeReport {
    r.welcome.as_ref().expect("[mail.welcome] is enabled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_user_gets_exactly_one_welcome_and_the_initial_import_none() {
    let w = setup().await;
    let first = w.sync().await;
    assert!(first.created >= 4);
    assert!(welcome(&first).initial_import, "{first:?}");
    assert_eq!(welcome(&first).sent, 0);
    assert!(w.sent().await.is_empty(), "the initial import mails nobody");

    let eleni = w.env.insert_user("eleni", "Ελένη", "Παπαδοπούλου").await;
    let bob = w.env.insert_user("bob", "Bob", "Ng").await;

    // A dry run says what it would send and sends (and records) nothing.
    let dry = w.sync_with(w.store.as_ref(), true).await;
    assert_eq!(dry.created, 2);
    assert_eq!(welcome(&dry).would_send, 2);
    assert_eq!(welcome(&dry).sent, 0);
    assert!(dry.render_text().contains("would send 2"));
    assert!(w.sent().await.is_empty(), "a dry run sent mail");
    assert_eq!(w.record(eleni.id.as_deref().unwrap()).await, None);

    let second = w.sync().await;
    assert_eq!(second.created, 2);
    let wr = welcome(&second);
    assert_eq!((wr.sent, wr.failed, wr.initial_import), (2, 0, false));
    assert!(
        second.render_text().contains("welcome: sent 2, failed 0"),
        "{}",
        second.render_text()
    );
    let json = serde_json::to_value(&second).unwrap();
    assert_eq!(json["welcome"]["sent"], 2);
    assert_eq!(json["welcome"]["failed"], 0);

    let sent = w.sent().await;
    let eleni_email = eleni.primary_email.clone().unwrap();
    let bob_email = bob.primary_email.clone().unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[0],
        (
            bob_email.clone(),
            "Welcome, Bob!".to_string(),
            format!("Hello Bob Ng,\n\nyour address is {bob_email}.\n")
        )
    );
    assert_eq!(sent[1].0, eleni_email);
    assert_eq!(sent[1].1, "Welcome, Ελένη!");
    assert!(sent[1].2.contains("Ελένη Παπαδοπούλου") && sent[1].2.contains(&eleni_email));
    let rec = w.record(eleni.id.as_deref().unwrap()).await.unwrap();
    assert_eq!(rec.state, WelcomeState::Sent);
    assert_eq!(rec.attempts, 1);

    // Re-runs send nothing more.
    for _ in 0..2 {
        let again = w.sync().await;
        assert_eq!(welcome(&again).sent, 0);
        assert_eq!(welcome(&again).failed, 0);
    }
    assert_eq!(w.sent().await.len(), 2);

    // Without [mail.welcome] there is no welcome step at all.
    let mut off = w.config.clone();
    off.mail.welcome = Default::default();
    w.env.insert_user("carol", "Carol", "Diaz").await;
    let plain = reconcile(
        &w.env.client(),
        &off,
        w.store.as_ref(),
        ReconcileOptions::default(),
        Utc::now,
    )
    .await
    .unwrap();
    assert_eq!(plain.created, 1);
    assert!(plain.welcome.is_none());
    assert!(!serde_json::to_string(&plain).unwrap().contains("welcome"));
    assert_eq!(w.sent().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gmail_failure_never_fails_the_sync_and_is_retried_without_duplicates() {
    let w = setup().await;
    w.sync().await;
    let lost = w.env.insert_user("lost", "Lost", "Answer").await;
    let failed = w.env.insert_user("retry", "Retry", "Later").await;
    let lost_id = lost.id.clone().unwrap();
    let failed_id = failed.id.clone().unwrap();

    // Gmail answers 503 to every drafts.send: the users are still created.
    w.fail_draft_sends(true);
    let r = w.sync().await;
    assert_eq!(r.created, 2);
    let wr = welcome(&r);
    assert_eq!((wr.sent, wr.failed), (0, 2), "{wr:?}");
    assert!(
        wr.failures
            .iter()
            .any(|f| f.email == lost.primary_email.clone().unwrap())
    );
    assert!(wr.failures[0].error.contains("drafts.send"), "{wr:?}");
    assert!(r.render_text().contains("welcome: sent 0, failed 2"));
    assert!(w.sent().await.is_empty());
    let rec = w.record(&lost_id).await.unwrap();
    assert_eq!(rec.state, WelcomeState::Pending);
    let draft = rec
        .draft_id
        .clone()
        .expect("the draft is recorded before sending");

    // One of those 503s was a lie: Gmail did send it (the answer was lost). Play that by
    // sending the recorded draft by hand.
    w.fail_draft_sends(false);
    let sender = w.sender.clone();
    let sa: Arc<dyn TokenSource> =
        Arc::new(ServiceAccount::from_json(&w.config.service_account_key_json().unwrap()).unwrap());
    let composer = GoogleClient::new(sa, context::client_config(&w.config));
    composer
        .gmail(Some(&sender))
        .drafts_send(&draft)
        .await
        .unwrap();
    assert_eq!(w.sent().await.len(), 1);

    // The next run sends the failed one and recognises the lost one as sent.
    let r = w.sync().await;
    assert_eq!(r.created, 0);
    let wr = welcome(&r);
    assert_eq!((wr.sent, wr.failed), (2, 0), "{wr:?}");
    let sent = w.sent().await;
    let to: Vec<&str> = sent.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(sent.len(), 2, "exactly one mail each: {to:?}");
    assert!(to.contains(&lost.primary_email.as_deref().unwrap()));
    assert!(to.contains(&failed.primary_email.as_deref().unwrap()));
    assert_eq!(
        w.record(&failed_id).await.unwrap().attempts,
        2,
        "one failed attempt, one that sent"
    );
    let r = w.sync().await;
    assert_eq!(welcome(&r).sent, 0);
    assert_eq!(w.sent().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_held_by_a_live_run_waits_and_an_abandoned_one_is_taken_over() {
    let w = setup().await;
    w.sync().await;
    let u = w.env.insert_user("crash", "Crash", "Test").await;
    let id = u.id.clone().unwrap();
    // A failed attempt left its draft; then a run claimed it and crashed mid-send: the
    // record says `sending`.
    w.fail_draft_sends(true);
    w.sync().await;
    w.fail_draft_sends(false);
    let mut rec = w.record(&id).await.unwrap();
    rec.state = WelcomeState::Sending;
    rec.at = Utc::now();
    rec.by = Some("another-instance".into());
    let put = |rec: &WelcomeRecord| {
        let store = w.store.clone();
        let (id, v) = (id.clone(), serde_json::to_string(rec).unwrap());
        async move {
            store
                .set_sync_state(WELCOME_SCOPE, &id, &v, Utc::now())
                .await
                .unwrap()
        }
    };
    put(&rec).await;
    // Fresh: another instance may be sending right now, so this run leaves it alone.
    let r = w.sync().await;
    assert_eq!((welcome(&r).sent, welcome(&r).waiting), (0, 1));
    assert!(w.sent().await.is_empty());
    // Stale (the holder died): taken over; the recorded draft is sent exactly once.
    rec.at = Utc::now() - chrono::Duration::hours(1);
    put(&rec).await;
    let r = w.sync().await;
    assert_eq!(welcome(&r).sent, 1, "{:?}", r.welcome);
    assert_eq!(w.sent().await.len(), 1);
    assert_eq!(w.record(&id).await.unwrap().state, WelcomeState::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_reconciling_at_once_send_one_welcome_per_user() {
    let w = setup().await;
    w.sync().await;
    let mut emails = Vec::new();
    for i in 0..4 {
        let u = w
            .env
            .insert_user(&format!("twin{i}"), &format!("Twin{i}"), "Race")
            .await;
        emails.push(u.primary_email.unwrap());
    }
    // A second instance: its own connection pool on the same SQLite file.
    let other = sqlite(&w.dir.path().join("state.db")).await;
    let (a, b) = tokio::join!(w.sync(), w.sync_with(other.as_ref(), false));
    let sent_a = welcome(&a).sent;
    let sent_b = welcome(&b).sent;
    let failed = welcome(&a).failed + welcome(&b).failed;
    assert_eq!(failed, 0, "{:?} {:?}", a.welcome, b.welcome);
    // Whatever one instance left (waiting) the next run sends.
    let c = w.sync().await;
    assert_eq!(sent_a + sent_b + welcome(&c).sent, 4);
    let sent = w.sent().await;
    let mut to: Vec<String> = sent.into_iter().map(|m| m.0).collect();
    to.sort();
    emails.sort();
    assert_eq!(to, emails, "exactly one welcome per new user");
}
