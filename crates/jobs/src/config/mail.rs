//! `[mail]` and `[auth]`: mail sent by the sync jobs and the installed-app login.
//!
//! Relative paths (`template_file`, `client_secret_file`, `token_file`) are resolved
//! against the config file's directory, like every other path in the config.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// Sender of run reports and welcome mail (impersonated through domain-wide
    /// delegation); default: the admin subject.
    pub from: Option<String>,
    /// Mail the run summary of `contacts sync` / `users sync` here (also `--report-to`).
    pub report_to: Vec<String>,
    pub welcome: WelcomeConfig,
}

/// The welcome mail sent when the users job provisions a new user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WelcomeConfig {
    pub enabled: bool,
    pub subject: Option<String>,
    /// Template file; `{given_name}`, `{family_name}`, `{email}`, … are replaced.
    pub template_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The installed-app OAuth client (`client_secret.json` from the Cloud console).
    pub client_secret_file: Option<PathBuf>,
    /// Where the refresh token is stored (default: the user's config directory,
    /// e.g. `~/.config/orgsync/token.json`). Written with mode 0600.
    pub token_file: Option<PathBuf>,
    /// Scopes `orgsync auth login` asks for (shorthands like `gmail.send` allowed).
    /// Default: gmail.compose, calendar.readonly, openid, userinfo.email.
    pub scopes: Vec<String>,
}

impl MailConfig {
    /// Addresses must be addresses; an enabled welcome mail needs its template.
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        let check = |key: &str, v: &str| {
            crate::mail::parse_mailbox(v)
                .map(|_| ())
                .map_err(|e| super::ConfigError::Invalid(format!("mail.{key}: {e}")))
        };
        if let Some(from) = &self.from {
            check("from", from)?;
        }
        for to in &self.report_to {
            check("report_to", to)?;
        }
        if self.welcome.enabled && self.welcome.template_file.is_none() {
            return Err(super::ConfigError::Invalid(
                "mail.welcome.enabled = true needs mail.welcome.template_file (the message \
                 body, with {given_name}, {email}, … placeholders)"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_settings_are_validated() {
        let mut m = MailConfig::default();
        assert!(m.validate().is_ok());
        m.report_to = vec!["ops@example.com".into(), "not an address".into()];
        let e = m.validate().unwrap_err().to_string();
        assert!(
            e.contains("mail.report_to") && e.contains("not an address"),
            "{e}"
        );
        m.report_to.clear();
        m.welcome.enabled = true;
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("template_file"), "{e}");
    }
}
