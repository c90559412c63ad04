//! The control API under `/emulator/v1/`: what tests, the demo and the benchmark use to
//! look inside and steer the emulator. No authentication: the emulator is a loopback
//! tool. Malformed bodies answer 400 in the legacy error shape, like every other route.
//!
//! - `GET stats`: call counters (see [`crate::faults::Stats`]);
//! - `GET faults` / `PUT faults`: the fault settings, replaced whole;
//! - `POST reset`: zero the counters; `{"state":true}` also re-seeds the org (keys and
//!   clients survive, so key files stay valid); `{"faults":true}` restores the
//!   start-up fault settings and enables every API;
//! - `GET clock` / `POST clock/advance` `{"seconds":N}`: the emulator clock;
//! - `PUT delegation` `{"client":…,"scopes":[…]}`: a service account's delegated scopes,
//!   to reproduce a misconfigured domain-wide delegation;
//! - `GET apis` / `PUT apis` `{"disabled":["people",…]}`: APIs switched off in the
//!   emulated Cloud project, to reproduce Google's 403 `accessNotConfigured`;
//! - a subject without admin rights needs no switch: `users.makeAdmin` with
//!   `{"status":false}`, or any non-admin user as the subject, gives Google's 403.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::faults::{FaultSettings, Stats};
use crate::state::Emulator;

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/emulator/v1/stats", get(stats))
        .route("/emulator/v1/faults", get(get_faults).put(put_faults))
        .route("/emulator/v1/reset", post(reset))
        .route("/emulator/v1/clock", get(clock))
        .route("/emulator/v1/clock/advance", post(advance))
        .route(
            "/emulator/v1/delegation",
            get(get_delegation).put(put_delegation),
        )
        .route("/emulator/v1/apis", get(get_apis).put(put_apis))
}

fn apis_json(emu: &Emulator) -> Value {
    json!({"disabled": emu.faults.disabled_apis()})
}

async fn get_apis(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(apis_json(&emu))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Apis {
    /// `directory`, `people`, `gmail`, `calendar`: the rest are enabled.
    disabled: Vec<String>,
}

async fn put_apis(
    State(emu): State<Arc<Emulator>>,
    GJson(body): GJson<Apis>,
) -> Result<Json<Value>, ApiError> {
    let mut disabled = std::collections::BTreeSet::new();
    for name in &body.disabled {
        let api = match name.as_str() {
            "directory" => Api::Directory,
            "people" => Api::People,
            "gmail" => Api::Gmail,
            "calendar" => Api::Calendar,
            _ => {
                return Err(ApiError::bad_request(
                    Api::Control,
                    format!("unknown API {name:?}: one of directory, people, gmail, calendar"),
                ));
            }
        };
        disabled.insert(api);
    }
    emu.faults.set_disabled_apis(disabled);
    Ok(Json(apis_json(&emu)))
}

async fn stats(State(emu): State<Arc<Emulator>>) -> Json<Stats> {
    Json(emu.faults.stats())
}

async fn get_faults(State(emu): State<Arc<Emulator>>) -> Json<FaultSettings> {
    Json(emu.faults.settings())
}

async fn put_faults(
    State(emu): State<Arc<Emulator>>,
    GJson(settings): GJson<FaultSettings>,
) -> Result<Json<FaultSettings>, ApiError> {
    emu.faults
        .set(settings)
        .map(Json)
        .map_err(|e| ApiError::bad_request(Api::Control, e))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ResetBody {
    state: bool,
    faults: bool,
}

async fn reset(State(emu): State<Arc<Emulator>>, GJson(body): GJson<ResetBody>) -> Json<Value> {
    emu.faults.reset_stats();
    if body.faults {
        // Cannot fail: the start-up settings were valid enough to start with.
        let _ = emu.faults.set(FaultSettings::from_config(&emu.config));
        emu.faults.set_disabled_apis(Default::default());
    }
    if body.state {
        reseed(&emu);
    }
    Json(json!({"reset": true, "state": body.state, "faults": body.faults}))
}

/// Throw away the org and every grant, then generate it again from the config.
pub fn reseed(emu: &Emulator) {
    *emu.tokens.write() = Default::default();
    emu.oauth.write().clear_grants();
    *emu.directory.write() = Default::default();
    emu.people.restore(Default::default());
    *emu.gmail.write() = Default::default();
    *emu.calendar.write() = Default::default();
    crate::directory::seed(emu);
    crate::people::seed(emu);
}

fn clock_json(emu: &Emulator) -> Value {
    let now = emu.clock.now();
    json!({
        "now": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "now_ms": now.timestamp_millis(),
        "offset_seconds": emu.clock.offset().num_seconds(),
    })
}

async fn clock(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(clock_json(&emu))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

async fn advance(
    State(emu): State<Arc<Emulator>>,
    GJson(body): GJson<Advance>,
) -> Result<Json<Value>, ApiError> {
    // Time only moves forward: tokens, windows and sync tokens assume it.
    if !(0..=10 * 365 * 86_400).contains(&body.seconds) {
        return Err(ApiError::bad_request(
            Api::Control,
            "seconds must be between 0 and 315360000 (the clock only moves forward)",
        ));
    }
    emu.clock.advance(chrono::Duration::seconds(body.seconds));
    Ok(Json(clock_json(&emu)))
}

fn delegation_json(emu: &Emulator) -> Value {
    let oauth = emu.oauth.read();
    Value::Array(
        oauth
            .service_accounts
            .iter()
            .map(|c| {
                json!({
                    "client_email": c.account.client_email,
                    "client_id": c.account.client_id,
                    "scopes": c.delegated_scopes,
                })
            })
            .collect(),
    )
}

async fn get_delegation(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(delegation_json(&emu))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delegation {
    /// Email or numeric client id; defaults to the generated service account.
    #[serde(default)]
    client: Option<String>,
    scopes: Vec<String>,
}

async fn put_delegation(
    State(emu): State<Arc<Emulator>>,
    GJson(body): GJson<Delegation>,
) -> Result<Json<Value>, ApiError> {
    if let Some(bad) = body
        .scopes
        .iter()
        .find(|s| !crate::oauth::is_known_scope(s))
    {
        return Err(ApiError::bad_request(
            Api::Control,
            format!("unknown scope: {bad}"),
        ));
    }
    let scopes: Vec<&str> = body.scopes.iter().map(String::as_str).collect();
    let ok = {
        let mut oauth = emu.oauth.write();
        let client = match body.client {
            Some(c) => c,
            None => oauth
                .service_accounts
                .first()
                .map(|c| c.account.client_email.clone())
                .unwrap_or_default(),
        };
        oauth.set_delegated_scopes(&client, &scopes)
    };
    if !ok {
        return Err(ApiError::new(
            Api::Control,
            StatusCode::NOT_FOUND,
            "notFound",
            "no such service account",
        ));
    }
    Ok(Json(delegation_json(&emu)))
}
