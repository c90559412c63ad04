//! Credentials against the emulator's real `/token` endpoint.

use std::sync::Arc;

use orgsync_client::{AuthError, Error, ErrorKind, ServiceAccount, TokenSource};
use orgsync_emulator::EmulatorConfig;
use orgsync_wire::scopes;
use reqwest::Method;
use serde_json::json;

use orgsync_testkit::emulator::directory_users;

use super::common::{admin, env, env_with};

#[tokio::test]
async fn good_key_gets_a_token_and_lists_users() {
    let env = env(20).await;
    let users = directory_users(&env.client).await;
    assert_eq!(users.len(), 21, "20 generated users plus the admin");
    assert_eq!(env.sa.token_requests(), 1);
    let stats = env.stats().await;
    assert_eq!(stats["token_grants"]["jwt-bearer"]["ok"], 1, "{stats}");
}

#[tokio::test]
async fn assertion_claims_follow_google_auth() {
    let env = env(0).await;
    let jwt = env
        .sa
        .assertion(Some("u@example.com"), &["a", "b"])
        .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    use base64::Engine;
    let dec = |s: &str| -> serde_json::Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    let header = dec(parts[0]);
    let claims = dec(parts[1]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], env.key.private_key_id.as_str());
    assert_eq!(claims["iss"], env.key.client_email.as_str());
    assert_eq!(claims["aud"], scopes::GOOGLE_TOKEN_AUDIENCE);
    assert_eq!(claims["scope"], "a b", "space-separated");
    assert_eq!(claims["sub"], "u@example.com");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn key_of_another_emulator_is_a_bad_signature() {
    let a = env(0).await;
    let b = env(0).await;
    // B's key (same service-account email, different key) sent to A's token endpoint.
    let foreign = ServiceAccount::from_key(b.key.clone())
        .unwrap()
        .with_token_uri(a.key.token_uri.clone());
    let err = foreign
        .token(Some(&admin()), &[scopes::DIRECTORY_USER_READONLY])
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::BadSignature { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("deleted/disabled or is not this service account's"),
        "{msg}"
    );
}

#[tokio::test]
async fn undelegated_scopes_name_client_id_and_scopes() {
    let env = env(0).await;
    env.control(
        Method::PUT,
        "delegation",
        Some(json!({"scopes":[scopes::DIRECTORY_USER_READONLY]})),
    )
    .await;
    let err = env
        .sa
        .token(Some(&admin()), &[scopes::DIRECTORY_USER, scopes::CONTACTS])
        .await
        .unwrap_err();
    let AuthError::DelegationNotGranted(d) = &err else {
        panic!("expected DelegationNotGranted, got {err:?}");
    };
    assert_eq!(d.client_id, env.key.client_id);
    let msg = err.to_string();
    assert!(msg.contains(&env.key.client_id), "{msg}");
    assert!(
        msg.contains(&format!("{},{}", scopes::DIRECTORY_USER, scopes::CONTACTS)),
        "comma-separated scope list for the Admin console: {msg}"
    );
    assert!(msg.contains("Domain-wide delegation"), "{msg}");
    // Through the client it surfaces as an Auth error, not retried.
    let e = env
        .client
        .directory()
        .users_get(&admin(), None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Auth(_)) && e.is(ErrorKind::Auth),
        "{e:?}"
    );
}

#[tokio::test]
async fn unknown_subject_says_user_does_not_exist() {
    let env = env(0).await;
    let err = env
        .sa
        .token(Some("ghost@example.com"), &[scopes::CONTACTS])
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::UnknownSubject { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("ghost@example.com does not exist or is suspended"),
        "{err}"
    );
}

#[tokio::test]
async fn non_admin_subject_gets_a_403_auth_error_from_directory() {
    let env = env(5).await;
    let user = env.non_admin().await;
    let err = env
        .client
        .directory_as(Some(&user))
        .users_get(&admin(), None, None)
        .await
        .unwrap_err();
    let api = err.api().expect("an API error");
    assert_eq!(api.status, Some(403), "{err}");
    assert_eq!(api.kind, ErrorKind::Auth);
    assert_eq!(api.attempts, 1, "permission errors are not retried");
}

#[tokio::test]
async fn hundred_concurrent_callers_cause_one_token_request() {
    let env = env(2).await;
    let sa = env.sa.clone();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let sa = sa.clone();
            tokio::spawn(async move {
                sa.token(Some(&admin()), &[scopes::CONTACTS, scopes::DIRECTORY_USER])
                    .await
                    .map(|t| t.secret().to_string())
            })
        })
        .collect();
    let mut secrets = std::collections::HashSet::new();
    for t in tasks {
        secrets.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(secrets.len(), 1, "everyone got the same token");
    assert_eq!(sa.token_requests(), 1);
    assert_eq!(env.stats().await["token_grants"]["jwt-bearer"]["ok"], 1);
    // Same scopes in another order share the cache; another subject does not.
    sa.token(Some(&admin()), &[scopes::DIRECTORY_USER, scopes::CONTACTS])
        .await
        .unwrap();
    assert_eq!(sa.token_requests(), 1);
    let user = env.non_admin().await;
    sa.token(Some(&user), &[scopes::CONTACTS]).await.unwrap();
    assert!(sa.token_requests() >= 2);
}

#[tokio::test]
async fn concurrent_failures_are_shared_not_repeated() {
    let env = env(0).await;
    let sa = env.sa.clone();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let sa = sa.clone();
            tokio::spawn(async move {
                sa.token(Some("ghost@example.com"), &[scopes::CONTACTS])
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_err());
    }
    assert!(sa.token_requests() <= 2, "got {}", sa.token_requests());
}

#[tokio::test]
async fn expired_token_is_refreshed_after_a_401() {
    // Tokens live 400 s: fresh for the client's 5-minute margin, so it caches them.
    let env = env_with(EmulatorConfig {
        access_token_ttl_secs: 400,
        ..EmulatorConfig::for_tests(3)
    })
    .await;
    let dir = env.client.directory();
    dir.users_get(&admin(), None, None).await.unwrap();
    dir.users_get(&admin(), None, None).await.unwrap();
    assert_eq!(env.sa.token_requests(), 1, "cached");
    env.control(Method::POST, "clock/advance", Some(json!({"seconds": 450})))
        .await;
    let user = dir.users_get(&admin(), None, None).await.unwrap();
    assert_eq!(user.primary_email.as_deref(), Some(admin().as_str()));
    assert_eq!(env.sa.token_requests(), 2, "one refresh after the 401");
    let snap = env.client.stats().snapshot();
    assert_eq!(
        snap.methods["directory.users.get"].requests, 4,
        "3 calls + 1 replay after 401"
    );
}

#[tokio::test]
async fn token_near_expiry_is_renewed_before_use() {
    // 200 s left is under the 5-minute margin: each call fetches a new token.
    let env = env_with(EmulatorConfig {
        access_token_ttl_secs: 200,
        ..EmulatorConfig::for_tests(0)
    })
    .await;
    env.client
        .directory()
        .users_get(&admin(), None, None)
        .await
        .unwrap();
    env.client
        .directory()
        .users_get(&admin(), None, None)
        .await
        .unwrap();
    assert_eq!(env.sa.token_requests(), 2);
}

#[tokio::test]
async fn key_file_from_the_emulator_loads_from_disk() {
    let env = env(0).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service-account.json");
    std::fs::write(&path, serde_json::to_string(&env.key).unwrap()).unwrap();
    let sa = Arc::new(ServiceAccount::from_file(&path).unwrap());
    assert_eq!(sa.client_id(), env.key.client_id);
    assert!(!format!("{sa:?}").contains("PRIVATE KEY"));
    let t = sa
        .token(Some(&admin()), &[scopes::DIRECTORY_USER_READONLY])
        .await
        .unwrap();
    assert!(!format!("{t:?}").contains(t.secret()));
}

/// Run the emulator's installed-app flow headlessly (auto-consent) and return a refresh token.
async fn login(
    env: &super::common::Env,
    user: &str,
) -> (orgsync_wire::oauth::InstalledClient, String) {
    use base64::Engine;
    let client = orgsync_emulator::oauth::client_secret_file(&env.emu.emulator)
        .unwrap()
        .installed;
    let verifier = "v".repeat(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()),
    );
    let redirect = "http://127.0.0.1:9/";
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(&client.auth_uri)
        .query(&[
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", scopes::CONTACTS),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "st"),
            ("access_type", "offline"),
            ("login_hint", user),
        ])
        .send()
        .await
        .unwrap();
    let location = resp
        .headers()
        .get("location")
        .expect("302 to the loopback")
        .to_str()
        .unwrap()
        .to_string();
    let url = url::Url::parse(&location).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .to_string();
    let tokens: orgsync_wire::oauth::TokenResponse = http
        .post(&client.token_uri)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client.client_id),
            ("client_secret", &client.client_secret),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        client,
        tokens
            .refresh_token
            .expect("offline access gives a refresh token"),
    )
}

#[tokio::test]
async fn refresh_token_credential_works_and_asks_for_login_when_revoked() {
    use orgsync_client::people::ConnectionsParams;
    use orgsync_client::{GoogleClient, RefreshTokenCredential};
    let env = env(2).await;
    let user = env.non_admin().await;
    let (client, refresh) = login(&env, &user).await;
    let cred = Arc::new(RefreshTokenCredential::new(
        client.client_id.clone(),
        client.client_secret.clone(),
        refresh.clone(),
        client.token_uri.clone(),
    ));
    assert!(!format!("{cred:?}").contains(&refresh));
    let api = GoogleClient::new(cred.clone(), super::common::config_for(&env.emu));
    // No subject: the token is the person's own.
    let listing = api
        .people(&user)
        .connections_list_all(ConnectionsParams::new("names"))
        .await;
    assert!(listing.is_ok(), "{listing:?}");
    assert_eq!(cred.token_requests(), 1);

    reqwest::Client::new()
        .post(format!("{}/revoke", env.emu.base_url))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    let fresh = RefreshTokenCredential::new(
        client.client_id,
        client.client_secret,
        refresh,
        client.token_uri,
    );
    let err = fresh.token(None, &[]).await.unwrap_err();
    assert!(matches!(err, AuthError::ReauthRequired { .. }), "{err:?}");
    assert!(
        err.to_string().contains("run `orgsync auth login` again"),
        "{err}"
    );
}
