//! The OAuth endpoints, fault injection and the control API over real HTTP, with real
//! RS256 assertions signed by an independent JWT library (jsonwebtoken) using the key
//! file the emulator generated.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orgsync_emulator::{EmulatorConfig, EmulatorHandle, spawn};
use orgsync_wire::oauth::{ServiceAccountKey, messages};
use orgsync_wire::scopes;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ADMIN: &str = "admin@example.com";

async fn start(users: usize) -> EmulatorHandle {
    orgsync_testkit::spawn(EmulatorConfig::for_tests(users)).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn key_of(h: &EmulatorHandle) -> ServiceAccountKey {
    orgsync_emulator::oauth::service_account_key(&h.emulator).expect("generated key")
}

fn now(h: &EmulatorHandle) -> i64 {
    h.emulator.clock.now_ms() / 1000
}

/// Sign `claims` with `pem` using jsonwebtoken (not the emulator's own signer).
fn sign(pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// google-auth's claims for `sub` and `scopes`.
fn claims(h: &EmulatorHandle, key: &ServiceAccountKey, sub: Option<&str>, scope: &str) -> Value {
    let iat = now(h);
    let mut c = json!({
        "iss": key.client_email,
        "aud": scopes::GOOGLE_TOKEN_AUDIENCE,
        "scope": scope,
        "iat": iat,
        "exp": iat + 3600,
    });
    if let Some(sub) = sub {
        c["sub"] = sub.into();
    }
    c
}

async fn post_form(h: &EmulatorHandle, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = http()
        .post(format!("{}{path}", h.base_url))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn grant(h: &EmulatorHandle, assertion: &str) -> (StatusCode, Value) {
    post_form(
        h,
        "/token",
        &[
            ("grant_type", scopes::JWT_BEARER_GRANT),
            ("assertion", assertion),
        ],
    )
    .await
}

fn assert_oauth_error(got: &(StatusCode, Value), status: u16, error: &str, description: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error"], error, "{}", got.1);
    assert_eq!(got.1["error_description"], description, "{}", got.1);
}

async fn admin_token(h: &EmulatorHandle) -> String {
    let key = key_of(h);
    let c = claims(h, &key, Some(ADMIN), scopes::DIRECTORY_USER_READONLY);
    let (status, body) = grant(h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

async fn get_admin_user(h: &EmulatorHandle, token: &str) -> reqwest::Response {
    http()
        .get(format!(
            "{}/admin/directory/v1/users/admin%40example.com",
            h.base_url
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn control(
    h: &EmulatorHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http().request(method, format!("{}/emulator/v1/{path}", h.base_url));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn tokeninfo(h: &EmulatorHandle, token: &str) -> (StatusCode, Value) {
    let resp = http()
        .get(format!("{}/tokeninfo", h.base_url))
        .query(&[("access_token", token)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

// ---------------------------------------------------------------------------------------
// JWT-bearer grant

#[tokio::test]
async fn jwt_grant_with_delegation_issues_a_working_bearer_token() {
    let h = start(3).await;
    let key = key_of(&h);
    assert_eq!(key.token_uri, format!("{}/token", h.base_url));
    let c = claims(
        &h,
        &key,
        Some(ADMIN),
        &format!("{} {}", scopes::DIRECTORY_USER_READONLY, scopes::CONTACTS),
    );
    let (status, body) = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["scope"],
        format!("{} {}", scopes::DIRECTORY_USER_READONLY, scopes::CONTACTS)
    );
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("ya29."));

    let resp = get_admin_user(&h, token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, info) = tokeninfo(&h, token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["email"], ADMIN);
    assert_eq!(info["aud"], key.client_id);

    // yup-oauth2 style: `aud` = the key file's token_uri, no `kid` (key chosen by `iss`).
    let mut c = claims(&h, &key, Some(ADMIN), scopes::CONTACTS);
    c["aud"] = key.token_uri.clone().into();
    let (status, body) = grant(&h, &sign(&key.private_key, None, &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The emulator's own helper signs an equivalent assertion.
    let a = orgsync_emulator::oauth::sign_assertion(&h.emulator, Some(ADMIN), &[scopes::CONTACTS])
        .unwrap();
    assert_eq!(grant(&h, &a).await.0, StatusCode::OK);
}

#[tokio::test]
async fn assertion_signed_by_another_key_is_an_invalid_signature() {
    let h = start(0).await;
    let other = start(0).await;
    let key = key_of(&h);
    let foreign = key_of(&other);
    assert_ne!(key.private_key_id, foreign.private_key_id);
    let c = claims(&h, &key, Some(ADMIN), scopes::CONTACTS);
    // Foreign key with its own kid (same client_email: both emulators name it alike).
    let got = grant(
        &h,
        &sign(&foreign.private_key, Some(&foreign.private_key_id), &c),
    )
    .await;
    assert_oauth_error(&got, 400, "invalid_grant", messages::BAD_SIGNATURE);
    // Foreign key claiming our kid: the signature check itself must fail.
    let got = grant(
        &h,
        &sign(&foreign.private_key, Some(&key.private_key_id), &c),
    )
    .await;
    assert_oauth_error(&got, 400, "invalid_grant", messages::BAD_SIGNATURE);
    // Tampered claims under a valid signature.
    let good = sign(&key.private_key, Some(&key.private_key_id), &c);
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = c.clone();
    evil["sub"] = "someone@example.com".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(evil.to_string()),
        parts[2]
    );
    let got = grant(&h, &forged).await;
    assert_oauth_error(&got, 400, "invalid_grant", messages::BAD_SIGNATURE);
}

#[tokio::test]
async fn unknown_issuer_is_refused() {
    let h = start(0).await;
    let key = key_of(&h);
    let mut c = claims(&h, &key, Some(ADMIN), scopes::CONTACTS);
    c["iss"] = "intruder@evil.iam.gserviceaccount.com".into();
    let got = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_eq!(got.0, StatusCode::BAD_REQUEST);
    assert_eq!(got.1["error"], "invalid_grant");
    // Without kid the key is chosen by iss, which is unknown.
    let got = grant(&h, &sign(&key.private_key, None, &c)).await;
    assert_eq!(got.1["error"], "invalid_grant");
}

#[tokio::test]
async fn assertion_times_are_checked_on_wall_or_emulator_clock() {
    let h = start(0).await;
    let key = key_of(&h);
    let kid = Some(key.private_key_id.as_str());
    let t = now(&h);
    let with_times = |iat: i64, exp: i64| {
        let mut c = claims(&h, &key, Some(ADMIN), scopes::CONTACTS);
        c["iat"] = iat.into();
        c["exp"] = exp.into();
        sign(&key.private_key, kid, &c)
    };
    for (iat, exp, why) in [
        (t, t + 66 * 60, "lifetime over 65 minutes"),
        (t - 7200, t - 3600, "expired"),
        (t + 3600, t + 7200, "issued in the future"),
        (t, t - 10, "exp before iat"),
    ] {
        let got = grant(&h, &with_times(iat, exp)).await;
        assert_eq!(
            got.1["error_description"],
            messages::BAD_TIME,
            "{why}: {}",
            got.1
        );
        assert_eq!(got.1["error"], "invalid_grant", "{why}");
    }
    // 65 minutes is tolerated.
    assert_eq!(
        grant(&h, &with_times(t, t + 65 * 60)).await.0,
        StatusCode::OK
    );
    // Signers use wall time while tests advance the emulator clock: after advancing two
    // hours, a fresh wall-clock assertion is still accepted (google-auth must keep
    // working), one signed on the emulator clock too, and one valid on neither is not.
    control(
        &h,
        reqwest::Method::POST,
        "clock/advance",
        Some(json!({"seconds": 7200})),
    )
    .await;
    let wall = chrono::Utc::now().timestamp();
    assert_eq!(
        grant(&h, &with_times(wall, wall + 3600)).await.0,
        StatusCode::OK
    );
    let emu_now = h.emulator.clock.now_ms() / 1000;
    assert_eq!(
        grant(&h, &with_times(emu_now, emu_now + 3600)).await.0,
        StatusCode::OK
    );
    let neither = with_times(wall - 4 * 3600, wall - 3 * 3600);
    let got = grant(&h, &neither).await;
    assert_eq!(got.1["error_description"], messages::BAD_TIME);
}

#[tokio::test]
async fn empty_unknown_or_comma_separated_scopes_are_invalid_scope() {
    let h = start(0).await;
    let key = key_of(&h);
    for scope in [
        String::new(),
        "https://www.googleapis.com/auth/bogus".to_string(),
        format!("{},{}", scopes::CONTACTS, scopes::GMAIL_SEND),
    ] {
        let c = claims(&h, &key, Some(ADMIN), &scope);
        let got = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
        assert_oauth_error(&got, 400, "invalid_scope", messages::INVALID_SCOPE);
    }
}

#[tokio::test]
async fn undelegated_scope_is_unauthorized_client_401() {
    let h = start(0).await;
    let key = key_of(&h);
    // Group write access is not in the default delegation.
    let c = claims(
        &h,
        &key,
        Some(ADMIN),
        &format!("{} {}", scopes::CONTACTS, scopes::DIRECTORY_GROUP),
    );
    let got = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_oauth_error(
        &got,
        401,
        "unauthorized_client",
        messages::UNAUTHORIZED_CLIENT,
    );

    // Narrow the delegation at run time: contacts stops working.
    let (status, _) = control(
        &h,
        reqwest::Method::PUT,
        "delegation",
        Some(json!({"scopes": [scopes::DIRECTORY_USER_READONLY]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let c = claims(&h, &key, Some(ADMIN), scopes::CONTACTS);
    let got = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_oauth_error(
        &got,
        401,
        "unauthorized_client",
        messages::UNAUTHORIZED_CLIENT,
    );
}

/// Real Google scopes outside the APIs the emulator serves, or outside orgsync's needs.
const REAL_UNDELEGATED: [&str; 4] = [
    "https://www.googleapis.com/auth/gmail.settings.sharing",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/admin.directory.rolemanagement.readonly",
    "https://www.googleapis.com/auth/calendar.settings.readonly",
];

#[tokio::test]
async fn undelegated_real_scope_is_unauthorized_client_not_invalid_scope() {
    let h = start(0).await;
    let key = key_of(&h);
    for scope in REAL_UNDELEGATED {
        // Alone, and next to a delegated scope: both are a delegation problem.
        for asked in [scope.to_string(), format!("{} {scope}", scopes::CONTACTS)] {
            let c = claims(&h, &key, Some(ADMIN), &asked);
            let got = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
            assert_oauth_error(
                &got,
                401,
                "unauthorized_client",
                messages::UNAUTHORIZED_CLIENT,
            );
        }
    }
    // A made-up scope is still `invalid_scope`, even next to an undelegated real one.
    let asked = format!(
        "{} https://www.googleapis.com/auth/gmail.bogus",
        REAL_UNDELEGATED[0]
    );
    let c = claims(&h, &key, Some(ADMIN), &asked);
    let got = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_oauth_error(&got, 400, "invalid_scope", messages::INVALID_SCOPE);
}

#[tokio::test]
async fn delegating_a_real_scope_of_another_api_makes_the_grant_succeed() {
    let h = start(0).await;
    let key = key_of(&h);
    let (status, body) = control(
        &h,
        reqwest::Method::PUT,
        "delegation",
        Some(json!({"scopes": [REAL_UNDELEGATED[0], REAL_UNDELEGATED[1]]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let asked = format!("{} {}", REAL_UNDELEGATED[0], REAL_UNDELEGATED[1]);
    let c = claims(&h, &key, Some(ADMIN), &asked);
    let (status, body) = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], asked.as_str());
}

#[tokio::test]
async fn unknown_subject_is_invalid_grant() {
    let h = start(0).await;
    let key = key_of(&h);
    let c = claims(&h, &key, Some("nobody@example.com"), scopes::CONTACTS);
    let got = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_oauth_error(&got, 400, "invalid_grant", messages::INVALID_EMAIL);
}

#[tokio::test]
async fn suspended_subject_is_invalid_grant() {
    let h = start(3).await;
    let key = key_of(&h);
    let c = claims(&h, &key, Some(ADMIN), scopes::DIRECTORY_USER);
    let (_, body) = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    let admin = body["access_token"].as_str().unwrap().to_string();
    let list: Value = http()
        .get(format!(
            "{}/admin/directory/v1/users?customer=my_customer&maxResults=10",
            h.base_url
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["primaryEmail"].as_str())
        .find(|e| *e != ADMIN)
        .expect("a generated member")
        .to_string();
    let ok = claims(&h, &key, Some(&member), scopes::CONTACTS);
    assert_eq!(
        grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &ok))
            .await
            .0,
        StatusCode::OK
    );

    let resp = http()
        .patch(format!("{}/admin/directory/v1/users/{member}", h.base_url))
        .bearer_auth(&admin)
        .json(&json!({"suspended": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let c = claims(&h, &key, Some(&member), scopes::CONTACTS);
    let got = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_oauth_error(&got, 400, "invalid_grant", messages::INVALID_EMAIL);
}

#[tokio::test]
async fn grant_without_subject_acts_as_the_service_account() {
    let h = start(0).await;
    let key = key_of(&h);
    // Without `sub` no delegation applies, so even an undelegated scope is fine.
    let c = claims(&h, &key, None, scopes::DIRECTORY_GROUP);
    let (status, body) = grant(&h, &sign(&key.private_key, Some(&key.private_key_id), &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, info) = tokeninfo(&h, body["access_token"].as_str().unwrap()).await;
    assert!(info.get("email").is_none(), "{info}");
    assert_eq!(info["sub"], key.client_id);
}

#[tokio::test]
async fn malformed_token_requests_are_4xx_never_5xx() {
    let h = start(0).await;
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("grant_type", "password")],
        vec![("grant_type", scopes::JWT_BEARER_GRANT)],
        vec![
            ("grant_type", scopes::JWT_BEARER_GRANT),
            ("assertion", "not-a-jwt"),
        ],
        vec![
            ("grant_type", scopes::JWT_BEARER_GRANT),
            ("assertion", "a.b.c"),
        ],
        vec![
            ("grant_type", scopes::JWT_BEARER_GRANT),
            ("assertion", "e30.e30.!!"),
        ],
        vec![("grant_type", "authorization_code")],
        vec![("grant_type", "refresh_token"), ("client_id", "x")],
    ];
    for form in cases {
        let (status, body) = post_form(&h, "/token", &form).await;
        assert!(status.is_client_error(), "{form:?} -> {status} {body}");
        assert!(body["error"].is_string(), "{form:?} -> {body}");
    }
    let (status, body) = post_form(&h, "/token", &[("grant_type", "password")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn access_token_expires_with_the_emulator_clock() {
    let h = start(0).await;
    let token = admin_token(&h).await;
    assert_eq!(get_admin_user(&h, &token).await.status(), StatusCode::OK);
    let (status, clock) = control(
        &h,
        reqwest::Method::POST,
        "clock/advance",
        Some(json!({"seconds": 3601})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(clock["offset_seconds"].as_i64().unwrap() >= 3601);
    let resp = get_admin_user(&h, &token).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("www-authenticate"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    assert_eq!(tokeninfo(&h, &token).await.0, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------
// Installed-app flow

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = format!("{}~verifier-0123456789", "v".repeat(60));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn client_of(h: &EmulatorHandle) -> (String, String) {
    let f = orgsync_emulator::oauth::client_secret_file(&h.emulator).unwrap();
    assert_eq!(f.installed.token_uri, format!("{}/token", h.base_url));
    (f.installed.client_id, f.installed.client_secret)
}

/// Run the authorization endpoint; returns the 302 Location.
async fn authorize(h: &EmulatorHandle, params: &[(&str, &str)]) -> (StatusCode, Option<url::Url>) {
    let resp = http()
        .get(format!("{}/o/oauth2/v2/auth", h.base_url))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let loc = resp
        .headers()
        .get("location")
        .map(|v| url::Url::parse(v.to_str().unwrap()).unwrap());
    (status, loc)
}

fn query_of(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn get_code(h: &EmulatorHandle, redirect: &str, p: &Pkce) -> String {
    let (client_id, _) = client_of(h);
    let scope = format!("{} {}", scopes::CONTACTS, scopes::GMAIL_SEND);
    let (status, loc) = authorize(
        h,
        &[
            ("client_id", &client_id),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", &scope),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
            ("state", "xyz-state"),
            ("access_type", "offline"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    let loc = loc.unwrap();
    assert!(loc.as_str().starts_with(redirect), "{loc}");
    assert_eq!(query_of(&loc, "state").as_deref(), Some("xyz-state"));
    query_of(&loc, "code").expect("code in redirect")
}

async fn exchange(
    h: &EmulatorHandle,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let (client_id, secret) = client_of(h);
    post_form(
        h,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await
}

#[tokio::test]
async fn pkce_flow_happy_path_and_single_use_code() {
    let h = start(0).await;
    let p = pkce();
    let redirect = "http://127.0.0.1:53682/";
    let code = get_code(&h, redirect, &p).await;
    let (status, body) = exchange(&h, &code, redirect, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].as_str().unwrap().starts_with("1//"));
    assert_eq!(body["expires_in"], 3599);
    let (_, info) = tokeninfo(&h, body["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], ADMIN, "consents as the admin by default");

    let again = exchange(&h, &code, redirect, &p.verifier).await;
    assert_eq!(again.0, StatusCode::BAD_REQUEST);
    assert_eq!(again.1["error"], "invalid_grant");
}

#[tokio::test]
async fn pkce_wrong_verifier_or_redirect_is_refused() {
    let h = start(0).await;
    let p = pkce();
    let redirect = "http://localhost:8080/";
    let code = get_code(&h, redirect, &p).await;
    let got = exchange(&h, &code, redirect, &format!("{}x", p.verifier)).await;
    assert_oauth_error(&got, 400, "invalid_grant", "Invalid code verifier.");

    let code = get_code(&h, redirect, &p).await;
    let got = exchange(&h, &code, "http://localhost:8081/", &p.verifier).await;
    assert_eq!(got.0, StatusCode::BAD_REQUEST);
    assert_eq!(got.1["error"], "redirect_uri_mismatch");

    let got = exchange(&h, "4/0nonsense", redirect, &p.verifier).await;
    assert_oauth_error(&got, 400, "invalid_grant", messages::BAD_CODE);

    // Wrong client secret.
    let code = get_code(&h, redirect, &p).await;
    let (client_id, _) = client_of(&h);
    let got = post_form(
        &h,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("client_secret", "wrong"),
            ("redirect_uri", redirect),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_oauth_error(&got, 401, "invalid_client", "Unauthorized");
}

#[tokio::test]
async fn authorization_endpoint_validates_before_redirecting() {
    let h = start(0).await;
    let p = pkce();
    let (client_id, _) = client_of(&h);
    let base = |redirect: &'static str| {
        vec![
            ("client_id", client_id.clone()),
            ("redirect_uri", redirect.to_string()),
            ("response_type", "code".to_string()),
            ("scope", scopes::CONTACTS.to_string()),
            ("state", "s1".to_string()),
        ]
    };
    fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        v.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    // A non-loopback redirect is never redirected to.
    let mut params = base("https://evil.example/cb");
    params.push(("code_challenge", p.challenge.clone()));
    params.push(("code_challenge_method", "S256".into()));
    let (status, loc) = authorize(&h, &refs(&params)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(loc.is_none());

    // Unknown client: no redirect either.
    let mut params = base("http://127.0.0.1:9/");
    params[0].1 = "nope.apps.googleusercontent.com".into();
    let (status, loc) = authorize(&h, &refs(&params)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(loc.is_none());

    // Missing PKCE: redirected back with an error and the state.
    let params = base("http://127.0.0.1:9/");
    let (status, loc) = authorize(&h, &refs(&params)).await;
    assert_eq!(status, StatusCode::FOUND);
    let loc = loc.unwrap();
    assert_eq!(query_of(&loc, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_of(&loc, "state").as_deref(), Some("s1"));
    assert!(query_of(&loc, "code").is_none());
}

#[tokio::test]
async fn installed_app_flow_consents_to_real_scopes_of_any_api_and_refuses_made_up_ones() {
    let h = start(0).await;
    let p = pkce();
    let (client_id, _) = client_of(&h);
    let redirect = "http://127.0.0.1:53682/";
    let ask = |scope: String| {
        vec![
            ("client_id", client_id.clone()),
            ("redirect_uri", redirect.to_string()),
            ("response_type", "code".to_string()),
            ("scope", scope),
            ("code_challenge", p.challenge.clone()),
            ("code_challenge_method", "S256".to_string()),
            ("state", "s2".to_string()),
        ]
    };
    fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        v.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    // A user may consent to any real scope; nothing is delegated in this flow.
    let real = format!("{} {}", REAL_UNDELEGATED[0], REAL_UNDELEGATED[1]);
    let params = ask(real.clone());
    let (status, loc) = authorize(&h, &refs(&params)).await;
    assert_eq!(status, StatusCode::FOUND);
    let loc = loc.unwrap();
    assert_eq!(query_of(&loc, "error"), None, "{loc}");
    let code = query_of(&loc, "code").expect("code in redirect");
    let (status, body) = exchange(&h, &code, redirect, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], real.as_str());

    let params = ask("https://www.googleapis.com/auth/drive.bogus".into());
    let (status, loc) = authorize(&h, &refs(&params)).await;
    assert_eq!(status, StatusCode::FOUND);
    let loc = loc.unwrap();
    assert_eq!(query_of(&loc, "error").as_deref(), Some("invalid_scope"));
    assert!(query_of(&loc, "code").is_none());
}

#[tokio::test]
async fn refresh_grant_then_revoke_kills_the_grant() {
    let h = start(0).await;
    let p = pkce();
    let redirect = "http://[::1]:41000/cb";
    let code = get_code(&h, redirect, &p).await;
    let (_, body) = exchange(&h, &code, redirect, &p.verifier).await;
    let refresh_token = body["refresh_token"].as_str().unwrap().to_string();
    let (client_id, secret) = client_of(&h);

    // Client credentials in HTTP Basic auth, as the oauth2 crate sends them.
    let resp = http()
        .post(format!("{}/token", h.base_url))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let refreshed: Value = resp.json().await.unwrap();
    let access = refreshed["access_token"].as_str().unwrap().to_string();
    assert!(refreshed.get("refresh_token").is_none());
    assert_eq!(tokeninfo(&h, &access).await.0, StatusCode::OK);

    let (status, _) = post_form(&h, "/revoke", &[("token", &refresh_token)]).await;
    assert_eq!(status, StatusCode::OK);
    let got = post_form(
        &h,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_oauth_error(&got, 400, "invalid_grant", messages::EXPIRED_OR_REVOKED);
    assert_eq!(
        tokeninfo(&h, &access).await.0,
        StatusCode::BAD_REQUEST,
        "access tokens of the grant die too"
    );

    // Revoking again, or something unknown, is invalid_token.
    let got = post_form(&h, &format!("/revoke?token={refresh_token}"), &[]).await;
    assert_oauth_error(&got, 400, "invalid_token", "Token expired or revoked");
}

// ---------------------------------------------------------------------------------------
// Faults, quotas, stats

#[tokio::test]
async fn error_rate_one_answers_503_in_each_apis_envelope() {
    let h = start(0).await;
    let token = admin_token(&h).await;
    let (status, settings) = control(
        &h,
        reqwest::Method::PUT,
        "faults",
        Some(json!({"error_rate": 1.0, "error_kinds": ["backendError"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["error_rate"], 1.0);

    let resp = get_admin_user(&h, &token).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 503);
    assert_eq!(body["error"]["errors"][0]["reason"], "backendError");

    let resp = http()
        .get(format!(
            "{}/v1/people/me/connections?personFields=names",
            h.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAVAILABLE", "{body}");

    let (_, stats) = control(&h, reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["errors_injected"]["backendError"], 2, "{stats}");
    assert_eq!(stats["responses_by_status"]["503"], 2, "{stats}");

    // Back to normal at run time.
    control(&h, reqwest::Method::PUT, "faults", Some(json!({}))).await;
    assert_eq!(get_admin_user(&h, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn injected_connection_reset_gives_the_client_no_response() {
    let h = start(0).await;
    let token = admin_token(&h).await;
    control(
        &h,
        reqwest::Method::PUT,
        "faults",
        Some(json!({"error_rate": 1.0, "error_kinds": ["connectionReset"]})),
    )
    .await;
    let result = http()
        .get(format!(
            "{}/admin/directory/v1/users/admin%40example.com",
            h.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await;
    // The connection closes before any response head: hyper reports IncompleteMessage,
    // which is what a real reset mid-request looks like to a client.
    let err = result.expect_err("a reset must not produce a response");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert!(format!("{err:?}").contains("IncompleteMessage"), "{err:?}");
    let (_, stats) = control(&h, reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["errors_injected"]["connectionReset"], 1, "{stats}");
}

#[tokio::test]
async fn per_user_quota_answers_429_with_retry_after_until_the_minute_turns() {
    let h = start(0).await;
    let token = admin_token(&h).await;
    let (status, _) = control(
        &h,
        reqwest::Method::PUT,
        "faults",
        Some(json!({"quota_per_user_per_minute": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(get_admin_user(&h, &token).await.status(), StatusCode::OK);
    }
    let resp = get_admin_user(&h, &token).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "rateLimitExceeded");

    // Another API has its own window.
    let resp = http()
        .get(format!(
            "{}/v1/people/me/connections?personFields=names",
            h.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    control(
        &h,
        reqwest::Method::POST,
        "clock/advance",
        Some(json!({"seconds": retry})),
    )
    .await;
    assert_eq!(get_admin_user(&h, &token).await.status(), StatusCode::OK);

    let (_, stats) = control(&h, reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["rate_limited"], 1, "{stats}");
    assert_eq!(stats["errors_injected"]["quotaExceeded"], 1, "{stats}");
}

#[tokio::test]
async fn per_method_override_only_hits_that_method() {
    let h = start(0).await;
    let token = admin_token(&h).await;
    let (status, body) = control(
        &h,
        reqwest::Method::PUT,
        "faults",
        Some(json!({"overrides": [{"method": "people.people.connections", "error_rate": 1.0, "error_kinds": ["rateLimitExceeded"]}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get_admin_user(&h, &token).await.status(), StatusCode::OK);
    let resp = http()
        .get(format!(
            "{}/v1/people/me/connections?personFields=names",
            h.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn stats_count_calls_by_method_and_subject() {
    let h = start(2).await;
    let token = admin_token(&h).await;
    let (status, _) = control(&h, reqwest::Method::POST, "reset", None).await;
    assert_eq!(status, StatusCode::OK);
    get_admin_user(&h, &token).await;
    get_admin_user(&h, &token).await;
    http()
        .get(format!(
            "{}/admin/directory/v1/users?customer=my_customer",
            h.base_url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // Unauthenticated calls count against "(anonymous)".
    http()
        .get(format!(
            "{}/admin/directory/v1/users?customer=my_customer",
            h.base_url
        ))
        .send()
        .await
        .unwrap();
    let (_, s) = control(&h, reqwest::Method::GET, "stats", None).await;
    assert_eq!(s["total_calls"], 4, "{s}");
    assert_eq!(s["calls_by_method"]["directory.users.get"], 2, "{s}");
    assert_eq!(s["calls_by_method"]["directory.users.list"], 2, "{s}");
    assert_eq!(s["calls_by_subject"][ADMIN], 3, "{s}");
    assert_eq!(s["calls_by_subject"]["(anonymous)"], 1, "{s}");
    assert_eq!(s["responses_by_status"]["401"], 1, "{s}");
    assert!(s["bytes_out"].as_u64().unwrap() > 100, "{s}");
}

#[tokio::test]
async fn control_api_rejects_bad_input_with_400() {
    let h = start(0).await;
    for (method, path, body) in [
        (reqwest::Method::PUT, "faults", "{not json"),
        (reqwest::Method::PUT, "faults", r#"{"error_rate": 2}"#),
        (reqwest::Method::PUT, "faults", r#"{"error_rate": "high"}"#),
        (reqwest::Method::PUT, "faults", r#"{"latncy_ms": 5}"#),
        (
            reqwest::Method::PUT,
            "faults",
            r#"{"error_kinds": ["meteor"]}"#,
        ),
        (reqwest::Method::POST, "clock/advance", r#"{"seconds": -5}"#),
        (reqwest::Method::POST, "clock/advance", "[]"),
        (reqwest::Method::POST, "reset", r#"{"state": "yes"}"#),
        (
            reqwest::Method::PUT,
            "delegation",
            r#"{"scopes": ["bogus"]}"#,
        ),
        (reqwest::Method::PUT, "apis", r#"{"disabled": ["drive"]}"#),
        (reqwest::Method::PUT, "apis", r#"{"enabled": []}"#),
    ] {
        let resp = http()
            .request(method.clone(), format!("{}/emulator/v1/{path}", h.base_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}"
        );
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], 400, "{v}");
    }
    let (_, before) = control(&h, reqwest::Method::GET, "clock", None).await;
    let (_, after) = control(
        &h,
        reqwest::Method::POST,
        "clock/advance",
        Some(json!({"seconds": 86400})),
    )
    .await;
    let delta = after["now_ms"].as_i64().unwrap() - before["now_ms"].as_i64().unwrap();
    assert!((86_400_000..86_460_000).contains(&delta), "{delta}");
}

#[tokio::test]
async fn reset_with_state_reseeds_and_drops_tokens() {
    let h = start(1).await;
    let token = admin_token(&h).await;
    let key_before = key_of(&h);
    let (status, _) = control(
        &h,
        reqwest::Method::POST,
        "reset",
        Some(json!({"state": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get_admin_user(&h, &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Same key still works, and the re-seeded admin exists.
    assert_eq!(key_of(&h).private_key_id, key_before.private_key_id);
    let token = admin_token(&h).await;
    assert_eq!(get_admin_user(&h, &token).await.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Persistence

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn data_dir_keeps_keys_and_state_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::for_tests(2)
    };
    let h = spawn(config.clone()).await.unwrap();
    let sa_path = dir.path().join("service-account.json");
    let key: ServiceAccountKey = serde_json::from_slice(&std::fs::read(&sa_path).unwrap()).unwrap();
    assert_eq!(key.token_uri, format!("{}/token", h.base_url));
    assert!(dir.path().join("client_secret.json").exists());
    #[cfg(unix)]
    {
        assert_eq!(mode(&sa_path), 0o600);
        assert_eq!(mode(&dir.path().join("client_secret.json")), 0o600);
        assert_eq!(mode(&dir.path().join("emulator-state.json")), 0o600);
    }
    let toml = std::fs::read_to_string(dir.path().join("orgsync.toml")).unwrap();
    assert!(
        toml.contains(&format!("endpoint = \"{}\"", h.base_url)),
        "{toml}"
    );
    assert!(
        toml.contains("admin_subject = \"admin@example.com\""),
        "{toml}"
    );
    assert!(toml.contains("service-account.json"), "{toml}");

    let token = admin_token(&h).await;
    control(
        &h,
        reqwest::Method::POST,
        "clock/advance",
        Some(json!({"seconds": 600})),
    )
    .await;
    let old_base = h.base_url.clone();
    h.shutdown().await.unwrap();

    let h2 = spawn(config).await.unwrap();
    let key2: ServiceAccountKey =
        serde_json::from_slice(&std::fs::read(&sa_path).unwrap()).unwrap();
    assert_eq!(key2.private_key_id, key.private_key_id);
    assert_eq!(key2.private_key, key.private_key);
    assert_eq!(key2.token_uri, format!("{}/token", h2.base_url));
    if h2.base_url != old_base {
        let toml = std::fs::read_to_string(dir.path().join("orgsync.toml")).unwrap();
        assert!(
            toml.contains(&h2.base_url),
            "orgsync.toml follows the new port"
        );
    }
    // The access token, the clock offset and the org survived.
    assert_eq!(get_admin_user(&h2, &token).await.status(), StatusCode::OK);
    assert!(h2.emulator.clock.offset().num_seconds() >= 600);
    // The old key file still signs valid assertions.
    let c = claims(&h2, &key, Some(ADMIN), scopes::CONTACTS);
    assert_eq!(
        grant(&h2, &sign(&key.private_key, Some(&key.private_key_id), &c))
            .await
            .0,
        StatusCode::OK
    );
    h2.shutdown().await.unwrap();
}

#[tokio::test]
async fn corrupt_saved_state_refuses_to_start_instead_of_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("emulator-state.json"), b"{garbage").unwrap();
    let config = EmulatorConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..EmulatorConfig::for_tests(0)
    };
    let err = spawn(config).await.err().expect("must not start");
    assert!(err.to_string().contains("emulator-state.json"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("emulator-state.json")).unwrap(),
        b"{garbage"
    );
}

/// `PUT apis` switches an API off in the emulated project: a valid token gets Google's
/// 403 `accessNotConfigured` (legacy reason plus the `SERVICE_DISABLED` detail with the
/// activation link), a bad token is still a 401, and `reset` with faults enables it again.
#[tokio::test]
async fn a_disabled_api_answers_access_not_configured_and_reset_enables_it() {
    let h = start(0).await;
    let token = admin_token(&h).await;
    let (status, body) = control(
        &h,
        reqwest::Method::PUT,
        "apis",
        Some(json!({"disabled": ["directory"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"disabled": ["directory"]}));

    let resp = get_admin_user(&h, &token).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let e: Value = resp.json().await.unwrap();
    let e = &e["error"];
    assert_eq!(e["errors"][0]["reason"], "accessNotConfigured");
    assert_eq!(e["errors"][0]["domain"], "usageLimits");
    assert_eq!(e["status"], "PERMISSION_DENIED");
    assert_eq!(e["details"][0]["reason"], "SERVICE_DISABLED");
    assert_eq!(
        e["details"][0]["metadata"]["service"],
        "admin.googleapis.com"
    );
    let link = e["details"][0]["metadata"]["activationUrl"]
        .as_str()
        .unwrap();
    assert!(
        link.starts_with("https://console.developers.google.com/apis/api/admin.googleapis.com"),
        "{link}"
    );
    assert!(e["message"].as_str().unwrap().contains(link));

    assert_eq!(
        get_admin_user(&h, "ya29.not-a-token").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let (status, _) = control(
        &h,
        reqwest::Method::POST,
        "reset",
        Some(json!({"faults": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get_admin_user(&h, &token).await.status(), StatusCode::OK);
}
