//! `[[contacts.shared_lists]]`: contacts that are not colleagues, pushed into the books
//! of the contacts job's targets (see `orgsync_core::contacts::lists`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, ScopeConfig};

/// One shared list. Exactly one source: `file`, `from_user` (with `from_label`) or
/// `rooms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SharedListConfig {
    /// The list's label in every book, and its identity: renaming a list replaces its
    /// contacts.
    pub name: String,
    /// Who receives the list, among the contacts job's targets. Unset: all of them.
    pub targets: Option<ScopeConfig>,
    /// A UTF-8 CSV file with a header (`key`, `given_name`, `family_name`,
    /// `organization`, `title`, `email`, `phone`, `mobile`, `label:<name>`); relative
    /// to the config file.
    pub file: Option<PathBuf>,
    /// Copy the label `from_label` of this person's own address book to everyone.
    pub from_user: Option<String>,
    pub from_label: Option<String>,
    /// The Directory's meeting rooms (calendar resources). Needs the scope
    /// `https://www.googleapis.com/auth/admin.directory.resource.calendar.readonly`
    /// delegated to the service account.
    pub rooms: bool,
}

/// Where a list's contacts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ListSource<'a> {
    File(&'a std::path::Path),
    FromUser { user: &'a str, label: &'a str },
    Rooms,
}

impl SharedListConfig {
    /// The one source this list names (validated at load).
    pub fn source(&self) -> ListSource<'_> {
        if let Some(f) = &self.file {
            ListSource::File(f)
        } else if let (Some(user), Some(label)) = (&self.from_user, &self.from_label) {
            ListSource::FromUser { user, label }
        } else {
            ListSource::Rooms
        }
    }
}

pub(super) fn validate_all(
    lists: &[SharedListConfig],
    group_name: &str,
) -> Result<(), ConfigError> {
    let mut names = BTreeSet::new();
    for (i, l) in lists.iter().enumerate() {
        let at = format!("contacts.shared_lists[{i}]");
        let name = l.name.trim();
        if name.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{at} needs a name: the label its contacts get in every book (name = \"Suppliers\")"
            )));
        }
        if name != l.name {
            return Err(ConfigError::Invalid(format!(
                "{at}.name {:?} starts or ends with spaces; write it as {name:?}",
                l.name
            )));
        }
        if name.eq_ignore_ascii_case(group_name.trim()) {
            return Err(ConfigError::Invalid(format!(
                "{at}.name {name:?} is the main label's name (contacts.group_name); give the \
                 list a label of its own"
            )));
        }
        if !names.insert(name.to_lowercase()) {
            return Err(ConfigError::Invalid(format!(
                "{at}.name {name:?} is used by an earlier list; each list needs its own label"
            )));
        }
        let sources = [l.file.is_some(), l.from_user.is_some(), l.rooms]
            .iter()
            .filter(|s| **s)
            .count();
        if sources != 1 {
            return Err(ConfigError::Invalid(format!(
                "{at} ({name:?}) needs exactly one source: file = \"vendors.csv\", \
                 from_user = \"reception@example.com\" with from_label = \"Suppliers\", or \
                 rooms = true"
            )));
        }
        match (&l.from_user, &l.from_label) {
            (Some(u), Some(label)) => {
                if !u.contains('@') {
                    return Err(ConfigError::Invalid(format!(
                        "{at}.from_user {u:?} is not an email address: name the person whose \
                         label is copied"
                    )));
                }
                if label.trim().is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "{at}.from_label must name a label in {u}'s Google Contacts"
                    )));
                }
            }
            (Some(u), None) => {
                return Err(ConfigError::Invalid(format!(
                    "{at} copies from {u} but names no label: add from_label = \"…\" (a label \
                     in their Google Contacts)"
                )));
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(format!(
                    "{at}.from_label needs from_user: the person whose label it is"
                )));
            }
            (None, None) => {}
        }
    }
    Ok(())
}
