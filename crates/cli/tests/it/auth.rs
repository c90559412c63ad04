//! `orgsync auth login|status|logout` end to end against the in-process emulator: the
//! test plays the browser (GET the authorization URL without following redirects, then
//! deliver the 302's `Location` to the loopback listener), so the whole installed-app
//! flow — PKCE, `state`, code exchange, token file — runs over real HTTP, headless.

use std::path::PathBuf;
use std::time::Duration;

use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_jobs::auth::{self, LoginError, LoginOptions};
use orgsync_testkit::cli::{ConfigDir, Out};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::{orgsync, spawn_login};

struct Env {
    emu: EmulatorHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
    token: PathBuf,
}

async fn env() -> Env {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(3)).await;
    let ConfigDir { dir, config } = ConfigDir::new(
        &emu,
        "[auth]\nclient_secret_file = \"client_secret.json\"\ntoken_file = \"tokens/token.json\"\n",
    )
    .with_client_secret(&emu);
    let token = dir.path().join("tokens").join("token.json");
    Env {
        emu,
        dir,
        config,
        token,
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Play the browser: consent (the emulator auto-consents and 302s), optionally tamper
/// with the redirect, deliver it to the loopback listener. Returns the listener's status.
async fn browse(auth_url: &str, tamper: impl FnOnce(url::Url) -> url::Url) -> u16 {
    let http = no_redirects();
    let resp = http
        .get(auth_url)
        .send()
        .await
        .expect("authorization endpoint");
    assert_eq!(resp.status().as_u16(), 302, "consent redirects");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let target = tamper(url::Url::parse(&location).unwrap());
    http.get(target.as_str())
        .send()
        .await
        .expect("loopback listener answers")
        .status()
        .as_u16()
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn with_query(mut url: url::Url, name: &str, value: &str) -> url::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url
}

/// Run `orgsync auth login --no-browser` and play the browser with the URL it prints.
async fn cli_login(
    env: &Env,
    tamper: impl FnOnce(url::Url) -> url::Url + Send + 'static,
) -> (Out, url::Url) {
    cli_login_visits(env, vec![Box::new(tamper)]).await
}

type Tamper = Box<dyn FnOnce(url::Url) -> url::Url + Send>;

/// [`cli_login`] with several visits to the authorization URL, each redirect tampered
/// with by its own step, in order.
async fn cli_login_visits(env: &Env, visits: Vec<Tamper>) -> (Out, url::Url) {
    let mut child = spawn_login(&env.config);
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("http") {
                return url::Url::parse(line.trim()).unwrap();
            }
        }
        panic!("login printed no URL: {seen}");
    })
    .await
    .expect("URL printed in time");
    for tamper in visits {
        browse(url.as_str(), tamper).await;
    }
    let mut rest = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push_str(&line);
        rest.push('\n');
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("login finishes")
        .unwrap();
    (
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: seen + &rest,
        },
        url,
    )
}

async fn grants(env: &Env, kind: &str) -> (u64, u64) {
    let stats = orgsync_testkit::stats(&env.emu).await;
    let g = &stats["token_grants"][kind];
    (
        g["ok"].as_u64().unwrap_or(0),
        g["error"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn login_stores_a_private_token_and_status_shows_it_without_secrets() {
    let env = env().await;
    let (out, url) = cli_login(&env, |u| u).await;
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );

    // The authorization request: loopback on 127.0.0.1, PKCE S256, a state, offline.
    let redirect = url::Url::parse(&query(&url, "redirect_uri").unwrap()).unwrap();
    assert_eq!(redirect.host_str(), Some("127.0.0.1"));
    assert_ne!(redirect.port(), None);
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query(&url, "code_challenge").unwrap().len(), 43);
    assert!(query(&url, "state").unwrap().len() >= 32);
    assert_eq!(query(&url, "access_type").as_deref(), Some("offline"));
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));

    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["account"], "admin@example.com");
    let scopes: Vec<&str> = printed["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&orgsync_wire::scopes::GMAIL_COMPOSE),
        "{scopes:?}"
    );

    // The token file: 0600 in a 0700 directory, readable as google-auth's authorized_user.
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(&env.token).expect("token file written");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = std::fs::metadata(env.token.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let stored: Value = serde_json::from_slice(&std::fs::read(&env.token).unwrap()).unwrap();
    assert_eq!(stored["type"], "authorized_user");
    let refresh = stored["refresh_token"].as_str().unwrap().to_string();
    assert!(!refresh.is_empty());
    assert_eq!(grants(&env, "authorization_code").await, (1, 0));

    let status = orgsync(&env.config, &["auth", "status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let s: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(s["account"], "admin@example.com");
    let expires =
        chrono::DateTime::parse_from_rfc3339(s["access_token_expires_at"].as_str().unwrap())
            .unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((3000..=3600).contains(&left), "expires in {left}s");
    let secret = stored["client_secret"].as_str().unwrap();
    for text in [&status.stdout, &status.stderr, &out.stdout, &out.stderr] {
        assert!(
            !text.contains(&refresh) && !text.contains(secret),
            "secret leaked: {text}"
        );
    }
    let human = orgsync(&env.config, &["auth", "status"]).await;
    assert!(
        human.stdout.contains("logged in as   admin@example.com"),
        "{}",
        human.stdout
    );
}

#[tokio::test]
async fn a_redirect_with_another_state_is_ignored_and_the_login_keeps_waiting() {
    let env = env().await;
    // A forged redirect first (another page, a stale tab), then the real one.
    let (out, _) = cli_login_visits(
        &env,
        vec![
            Box::new(|u| with_query(u, "state", "forged-by-another-page")),
            Box::new(|u| u),
        ],
    )
    .await;
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(env.token.exists());
    // Only the real redirect's code was exchanged.
    assert_eq!(grants(&env, "authorization_code").await, (1, 0));
}

#[tokio::test]
async fn a_redirect_with_another_state_alone_saves_nothing() {
    let env = env().await;
    let secret = auth::read_client_secret(&env.dir.path().join("client_secret.json")).unwrap();
    let mut options = LoginOptions::new(secret);
    options.timeout = Duration::from_secs(3);
    let (tx, rx) = tokio::sync::oneshot::channel::<u16>();
    let result = auth::login(&options, move |url| {
        let url = url.to_string();
        tokio::spawn(async move {
            let status = browse(&url, |u| with_query(u, "state", "forged-by-another-page")).await;
            let _ = tx.send(status);
        });
    })
    .await;
    // The forged redirect is refused, and the login waits for its own until the timeout.
    assert_eq!(rx.await.unwrap(), 400);
    assert!(
        matches!(result, Err(auth::LoginError::Timeout(_))),
        "{result:?}"
    );
    assert!(!env.token.exists());
    assert_eq!(grants(&env, "authorization_code").await, (0, 0));
}

#[tokio::test]
async fn an_intercepted_code_is_useless_without_the_verifier() {
    let env = env().await;
    let secret = auth::read_client_secret(&env.dir.path().join("client_secret.json")).unwrap();
    let mut options = LoginOptions::new(secret.clone());
    options.timeout = Duration::from_secs(30);
    let (tx, rx) = tokio::sync::oneshot::channel::<(u16, String, String)>();
    let result = auth::login(&options, move |url| {
        let url = url.to_string();
        let client = secret.clone();
        tokio::spawn(async move {
            let http = no_redirects();
            let resp = http.get(&url).send().await.unwrap();
            let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
            // An attacker who saw the redirect tries the code with a verifier of its own.
            let code = query(&location, "code").unwrap();
            let redirect = query(&url::Url::parse(&url).unwrap(), "redirect_uri").unwrap();
            let attempt = http
                .post(&client.token_uri)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("client_id", &client.client_id),
                    ("client_secret", &client.client_secret),
                    ("redirect_uri", &redirect),
                    ("code_verifier", &"A".repeat(64)),
                ])
                .send()
                .await
                .unwrap();
            let status = attempt.status().as_u16();
            let body: Value = attempt.json().await.unwrap();
            let _ = tx.send((
                status,
                body["error"].as_str().unwrap_or("").to_string(),
                body["error_description"].as_str().unwrap_or("").to_string(),
            ));
            // Then the real redirect reaches orgsync (a stray request first).
            let port = location.port().unwrap();
            let stray = http
                .get(format!("http://127.0.0.1:{port}/favicon.ico"))
                .send()
                .await
                .unwrap();
            assert_eq!(stray.status().as_u16(), 404);
            http.get(location.as_str()).send().await.unwrap();
        });
    })
    .await;
    let (status, error, description) = rx.await.unwrap();
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert!(description.contains("verifier"), "{description}");
    // The code was single-use: the attacker spent it, so this login fails cleanly too.
    match result {
        Err(LoginError::Exchange { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("expected the exchange to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn library_login_with_a_browser_callback_and_the_right_verifier() {
    let env = env().await;
    let secret = auth::read_client_secret(&env.dir.path().join("client_secret.json")).unwrap();
    let mut options = LoginOptions::new(secret);
    options.scopes = auth::expand_scopes(&["gmail.send", "openid", "userinfo.email"]);
    options.login_hint = Some("admin@example.com".into());
    let outcome = auth::login(&options, |url| {
        let url = url.to_string();
        tokio::spawn(async move { browse(&url, |u| u).await });
    })
    .await
    .expect("login succeeds");
    assert_eq!(outcome.login.account.as_deref(), Some("admin@example.com"));
    assert_eq!(
        outcome.login.scopes,
        auth::expand_scopes(&["gmail.send", "openid", "userinfo.email"])
    );
    assert!(outcome.access_token_expires_in.unwrap() > Duration::from_secs(3000));
    // The stored refresh token works.
    let token = orgsync_client::TokenSource::token(&outcome.login.credential(), None, &[])
        .await
        .expect("refresh works");
    assert!(!token.secret().is_empty());
}

#[tokio::test]
async fn refused_consent_and_silence_are_clear_errors() {
    let env = env().await;
    let secret = auth::read_client_secret(&env.dir.path().join("client_secret.json")).unwrap();
    let mut options = LoginOptions::new(secret);
    options.timeout = Duration::from_secs(20);
    let denied = auth::login(&options, |url| {
        let url = url.to_string();
        tokio::spawn(async move {
            browse(&url, |u| {
                let state = query(&u, "state").unwrap();
                let mut d = u.clone();
                d.query_pairs_mut()
                    .clear()
                    .append_pair("error", "access_denied")
                    .append_pair("state", &state);
                d
            })
            .await
        });
    })
    .await
    .unwrap_err();
    assert!(matches!(denied, LoginError::Denied { ref error, .. } if error == "access_denied"));
    assert!(denied.to_string().contains("access_denied"), "{denied}");

    options.timeout = Duration::from_millis(300);
    let silent = auth::login(&options, |_| {}).await.unwrap_err();
    assert!(matches!(silent, LoginError::Timeout(_)), "{silent:?}");
    assert!(
        silent.to_string().contains("orgsync auth login"),
        "{silent}"
    );
}

#[tokio::test]
async fn a_revoked_login_asks_to_log_in_again_and_opens_nothing() {
    let env = env().await;
    let (out, _) = cli_login(&env, |u| u).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stored: Value = serde_json::from_slice(&std::fs::read(&env.token).unwrap()).unwrap();
    let refresh = stored["refresh_token"].as_str().unwrap();
    // Revoked elsewhere (the account's security page, an admin, 6 months unused…).
    let r = reqwest::Client::new()
        .post(format!("{}/revoke", env.emu.base_url))
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    for args in [
        &["auth", "status"][..],
        &[
            "mail",
            "send",
            "--to",
            "user1@example.com",
            "--subject",
            "x",
            "--body",
            "y",
        ][..],
        &["calendar", "agenda"][..],
    ] {
        let out = orgsync(&env.config, args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("run `orgsync auth login` again"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("/o/oauth2/auth"),
            "no login flow: {}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn logout_revokes_and_deletes_the_token_file() {
    let env = env().await;
    let (out, _) = cli_login(&env, |u| u).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.emu.emulator.oauth.read().refresh_token_count(), 1);

    let out = orgsync(&env.config, &["auth", "logout"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("access revoked"), "{}", out.stdout);
    assert!(!env.token.exists());
    assert_eq!(env.emu.emulator.oauth.read().refresh_token_count(), 0);
}

#[tokio::test]
async fn logging_out_twice_succeeds_with_nothing_to_do() {
    let env = env().await;
    let (out, _) = cli_login(&env, |u| u).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first = orgsync(&env.config, &["auth", "logout"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let again = orgsync(&env.config, &["auth", "logout"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("not logged in"), "{}", again.stdout);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}

#[tokio::test]
async fn login_without_a_client_file_says_where_to_get_one() {
    let env = env().await;
    std::fs::write(&env.config, "[google]\n").unwrap();
    let out = orgsync(&env.config, &["auth", "login", "--no-browser"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--client-secret"), "{}", out.stderr);
    let sa = env.dir.path().join("sa.json");
    let out = orgsync(
        &env.config,
        &[
            "auth",
            "login",
            "--no-browser",
            "--client-secret",
            sa.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("service-account key"), "{}", out.stderr);
}

/// `orgsync doctor --job mail,calendar` checks a personal login too: it works, its token
/// file is private, and a revoked one says to log in again.
#[tokio::test]
async fn doctor_checks_the_personal_login_its_file_mode_and_its_revocation() {
    let env = env().await;
    let (out, _) = cli_login(&env, |u| u).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doctor = |env: &Env| {
        let config = env.config.clone();
        async move { orgsync(&config, &["doctor", "--json", "--job", "mail,calendar"]).await }
    };
    let logins = |report: &Value, status: &str| -> Vec<String> {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == status)
            .filter(|c| {
                c["line"].as_str().unwrap().contains("personal login") || c["id"] == "login"
            })
            .map(|c| format!("{} {}", c["line"], c["fix"]))
            .collect()
    };
    let out = doctor(&env).await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(logins(&out.json(), "pass").len(), 2, "{}", out.stdout);

    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&env.token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = doctor(&env).await;
    assert_eq!(out.code, 2);
    let failed = logins(&out.json(), "fail");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("chmod 600"), "{failed:?}");
    std::fs::set_permissions(&env.token, std::fs::Permissions::from_mode(0o600)).unwrap();

    let stored: Value = serde_json::from_slice(&std::fs::read(&env.token).unwrap()).unwrap();
    reqwest::Client::new()
        .post(format!("{}/revoke", env.emu.base_url))
        .form(&[("token", stored["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let out = doctor(&env).await;
    assert_eq!(out.code, 2);
    let failed = logins(&out.json(), "fail");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("orgsync auth login"), "{failed:?}");
}
