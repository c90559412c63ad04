//! Addresses as people type them (`user@domain`, `Name <user@domain>`, comma lists),
//! checked for what Gmail would bounce before any call: a host name it can deliver to, in
//! its A-label form. RFC 5322 parsers accept far more (quoted local parts, Unicode or
//! dotless domains); docs/DEPENDENCIES.md says why none is used here.

use super::MailError;

/// A parsed mailbox: optional display name and the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub email: String,
}

/// Parse `user@domain` or `Name <user@domain>`, rejecting what Gmail would bounce
/// (no `@`, spaces, several addresses in one argument).
pub fn parse_mailbox(input: &str) -> Result<Mailbox, MailError> {
    let s = input.trim();
    let bad = |why: &str| MailError::Invalid(format!("invalid address {input:?}: {why}"));
    let (name, email) = match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => {
            let name = s[..open].trim().trim_matches('"').trim();
            (
                (!name.is_empty()).then(|| name.to_string()),
                &s[open + 1..s.len() - 1],
            )
        }
        _ => (None, s),
    };
    let email = email.trim();
    if email.contains([',', ';']) {
        return Err(bad(
            "one address per argument (repeat the flag, or separate with commas)",
        ));
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\\"".contains(c))
    {
        return Err(bad(
            "it contains spaces or characters not allowed in an address",
        ));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(bad("expected user@domain"));
    };
    if local.is_empty()
        || domain.is_empty()
        || local.contains('@')
        || !domain.contains('.') && domain != "localhost"
    {
        return Err(bad("expected user@domain"));
    }
    // RFC 5321 §4.1.2 dot-string: no empty atom (leading, trailing or doubled dot).
    if local.split('.').any(str::is_empty) {
        return Err(bad("the part before @ has an empty part between dots"));
    }
    if let Some(why) = domain_problem(domain) {
        return Err(bad(&why));
    }
    Ok(Mailbox {
        name,
        email: email.to_string(),
    })
}

/// Why `domain` is no host name a mail can go to, if it is not (RFC 1035 §2.3.1 as relaxed
/// by RFC 1123 §2.1: labels of 1-63 letters, digits and hyphens, not starting or ending
/// with a hyphen; at most 253 characters). Internationalised names must be given in
/// their A-label (`xn--`) form, as Gmail's API expects.
fn domain_problem(domain: &str) -> Option<String> {
    if domain.len() > 253 {
        return Some("the domain is longer than 253 characters".into());
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Some("the domain has an empty label (two dots, or a dot at an end)".into());
        }
        if label.len() > 63 {
            return Some(format!(
                "the domain label {label:?} is longer than 63 characters"
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Some(format!(
                "the domain label {label:?} may hold only letters, digits and hyphens"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!(
                "the domain label {label:?} starts or ends with a hyphen"
            ));
        }
    }
    None
}

/// Split `a@x, b@y` lists as given on the command line and parse each address.
pub fn parse_address_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Mailbox>, MailError> {
    let mut out = Vec::new();
    for item in items {
        for part in split_addresses(item.as_ref()) {
            out.push(parse_mailbox(&part)?);
        }
    }
    Ok(out)
}

/// Split on commas that are outside quotes and angle brackets.
pub(super) fn split_addresses(s: &str) -> Vec<String> {
    let (mut parts, mut cur, mut quoted, mut angle) = (Vec::new(), String::new(), false, false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}
