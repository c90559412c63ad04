//! Start-up and persistence: generate or load the org, write `service-account.json`,
//! `client_secret.json` and `orgsync.toml` into the data dir, and save state on
//! shutdown. (To be implemented.)

use std::net::SocketAddr;

use crate::state::Emulator;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot listen on {0}: {1} (is another emulator running? pick another --listen)")]
    Bind(SocketAddr, std::io::Error),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

pub fn bootstrap(_emu: &Emulator) -> Result<(), BootError> {
    Ok(())
}

pub fn save(_emu: &Emulator) -> Result<(), String> {
    Ok(())
}
