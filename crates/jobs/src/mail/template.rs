//! Templates: `{name}` placeholders that fail loudly, and the welcome mail rendered from
//! a directory user.

use std::collections::BTreeMap;

use orgsync_wire::directory::User;

use super::MailError;
use super::compose::OutgoingMail;

/// Replace `{name}` placeholders with `fields[name]`; `{{` and `}}` are literal braces.
/// Every placeholder without a value is an error naming all of them (and the known
/// names), so a typo never reaches a mailbox.
pub fn render_template(
    template: &str,
    fields: &BTreeMap<String, String>,
) -> Result<String, MailError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut unknown: Vec<String> = Vec::new();
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let rest = &template[i + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(MailError::Template(format!(
                        "unclosed '{{' at byte {i}; write '{{{{' for a literal brace"
                    )));
                };
                let name = rest[..end].trim();
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(MailError::Template(format!(
                        "invalid placeholder {{{}}} at byte {i}; names are letters, digits and _ \
                         (write '{{{{' for a literal brace)",
                        &rest[..end]
                    )));
                }
                match fields.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        if !unknown.iter().any(|u| u == name) {
                            unknown.push(name.to_string());
                        }
                    }
                }
                // Skip the placeholder's characters.
                for _ in 0..rest[..=end].chars().count() {
                    chars.next();
                }
            }
            '}' => {
                return Err(MailError::Template(format!(
                    "unmatched '}}' at byte {i}; write '}}}}' for a literal brace"
                )));
            }
            c => out.push(c),
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = fields.keys().map(String::as_str).collect();
        return Err(MailError::Template(format!(
            "unknown placeholder(s) {}; known: {}",
            unknown
                .iter()
                .map(|u| format!("{{{u}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )));
    }
    Ok(out)
}

/// The fields a welcome template can use, from a directory user. Missing values are
/// empty strings (a placeholder that exists never fails).
pub fn welcome_fields(user: &User) -> BTreeMap<String, String> {
    let name = user.name.clone().unwrap_or_default();
    let org = user
        .organizations
        .as_ref()
        .and_then(|o| {
            o.iter()
                .find(|o| o.primary == Some(true))
                .or_else(|| o.first())
        })
        .cloned();
    let mut f = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        f.insert(k.to_string(), v.unwrap_or_default());
    };
    put("given_name", name.given_name.clone());
    put("family_name", name.family_name.clone());
    put(
        "full_name",
        name.full_name.clone().or_else(|| {
            let s = format!(
                "{} {}",
                name.given_name.as_deref().unwrap_or(""),
                name.family_name.as_deref().unwrap_or("")
            );
            Some(s.trim().to_string())
        }),
    );
    put("email", user.primary_email.clone());
    put("org_unit", user.org_unit_path.clone());
    put("title", org.as_ref().and_then(|o| o.title.clone()));
    put(
        "department",
        org.as_ref().and_then(|o| o.department.clone()),
    );
    put("company", org.as_ref().and_then(|o| o.name.clone()));
    f
}

/// The placeholders a welcome template may use (see [`welcome_fields`]).
pub const WELCOME_FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "full_name",
    "email",
    "org_unit",
    "title",
    "department",
    "company",
];

/// A loaded welcome template: subject and body, checked against [`WELCOME_FIELDS`]
/// when loaded, so a typo stops the job at start-up rather than at the first new hire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeTemplate {
    pub subject: String,
    pub body: String,
}

impl WelcomeTemplate {
    /// From `[mail.welcome]`: None when disabled. The subject defaults to
    /// "Welcome, {given_name}!".
    pub fn from_config(
        config: &crate::config::WelcomeConfig,
    ) -> Result<Option<WelcomeTemplate>, MailError> {
        if !config.enabled {
            return Ok(None);
        }
        let path = config.template_file.as_ref().ok_or_else(|| {
            MailError::Template(
                "[mail.welcome] enabled = true needs template_file (the body, with \
                 {given_name}, {email}, … placeholders)"
                    .into(),
            )
        })?;
        let body = std::fs::read_to_string(path)
            .map_err(|e| MailError::Template(format!("cannot read {} ({e})", path.display())))?;
        let subject = config
            .subject
            .clone()
            .unwrap_or_else(|| "Welcome, {given_name}!".into());
        let probe: BTreeMap<String, String> = WELCOME_FIELDS
            .iter()
            .map(|f| (f.to_string(), String::new()))
            .collect();
        render_template(&subject, &probe)
            .map_err(|e| MailError::Template(format!("[mail.welcome] subject: {e}")))?;
        render_template(&body, &probe)
            .map_err(|e| MailError::Template(format!("{}: {e}", path.display())))?;
        Ok(Some(WelcomeTemplate { subject, body }))
    }

    /// The message for `user`, sent from `from`.
    pub fn render(&self, from: &str, user: &User) -> Result<OutgoingMail, MailError> {
        welcome_mail(from, user, &self.subject, &self.body)
    }
}

/// A welcome message for `user` from `from`, rendered from `template` (subject and body
/// may both use placeholders).
pub fn welcome_mail(
    from: &str,
    user: &User,
    subject_template: &str,
    body_template: &str,
) -> Result<OutgoingMail, MailError> {
    let fields = welcome_fields(user);
    let to = user
        .primary_email
        .clone()
        .ok_or_else(|| MailError::Invalid("the new user has no primary email".into()))?;
    Ok(OutgoingMail {
        from: Some(from.to_string()),
        to: vec![to],
        subject: render_template(subject_template, &fields)?,
        text: render_template(body_template, &fields)?,
        ..Default::default()
    })
}
