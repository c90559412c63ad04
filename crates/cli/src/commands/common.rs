//! What several commands share: loading the configuration and turning setup errors
//! into exit code 2 with a message that says what to do.

use orgsync_jobs::config::{self, Config};

use crate::cli::Global;
use crate::exit::{CodedError, Exit};

/// Load and validate the configuration (`--config`, `./orgsync.toml`, environment).
pub fn load_config(global: &Global) -> anyhow::Result<Config> {
    let loaded = config::load(global.config.as_deref())
        .map_err(|e| CodedError::new(Exit::Config, e.to_string()))?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(file) = &loaded.file {
        tracing::debug!(file = %file.display(), "configuration loaded");
    }
    Ok(loaded.config)
}

/// Print `value` as pretty JSON on stdout (the `--json` output of every command).
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
