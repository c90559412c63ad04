//! Fault injection, quotas and accounting around every API call: latency, a random
//! error rate, per-subject per-minute quotas (429 + Retry-After), and the counters
//! behind `GET /emulator/v1/stats`. (To be implemented.)

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::config::EmulatorConfig;
use crate::state::Emulator;

pub struct Faults {}

impl Faults {
    pub fn new(_config: &EmulatorConfig) -> Self {
        Faults {}
    }
}

pub async fn middleware(State(_emu): State<Arc<Emulator>>, req: Request, next: Next) -> Response {
    next.run(req).await
}
