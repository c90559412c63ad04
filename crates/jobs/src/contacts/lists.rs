//! Reading the shared lists (`[[contacts.shared_lists]]`) for a run: the file, the
//! person's label or the Directory's rooms, mapped by `orgsync_core::contacts::lists`.
//! All of them are read before any book is touched, so a bad file or an unknown label
//! stops the run with nothing written.

use futures::TryStreamExt;
use orgsync_client::people::ConnectionsParams;
use orgsync_client::{ErrorKind, GoogleClient};
use orgsync_core::contacts::lists::{from_person, parse_csv, room_contact};
use orgsync_core::contacts::{DesiredContact, MappingOptions};

use super::ContactsError;
use crate::config::{Config, ListSource, SharedListConfig};

/// What a source person's contacts are read with: the fields a list contact shows, and
/// the memberships that say which are in the label.
const FROM_USER_MASK: &str = "names,emailAddresses,phoneNumbers,organizations,biographies,\
    addresses,clientData,memberships,metadata";

/// The scope `rooms = true` needs, named in the error when it is not delegated.
pub const ROOMS_SCOPE: &str =
    "https://www.googleapis.com/auth/admin.directory.resource.calendar.readonly";

/// Every shared list's contacts, in list order. The first list that cannot be read
/// stops the run.
pub(super) async fn read_all(
    client: &GoogleClient,
    config: &Config,
    mapping: &MappingOptions,
) -> Result<Vec<DesiredContact>, ContactsError> {
    let mut out = Vec::new();
    for list in &config.contacts.shared_lists {
        let contacts = read_one(client, config, list, mapping).await?;
        tracing::info!(list = %list.name, contacts = contacts.len(), "shared list read");
        out.extend(contacts);
    }
    Ok(out)
}

async fn read_one(
    client: &GoogleClient,
    config: &Config,
    list: &SharedListConfig,
    mapping: &MappingOptions,
) -> Result<Vec<DesiredContact>, ContactsError> {
    let name = list.name.as_str();
    let bad = |problem: String| ContactsError::List {
        list: name.to_string(),
        problem,
    };
    match list.source() {
        ListSource::File(path) => {
            let text = std::fs::read(path).map_err(|e| {
                bad(format!(
                    "cannot read {}: {e}; check contacts.shared_lists file",
                    path.display()
                ))
            })?;
            let text = String::from_utf8(text).map_err(|e| {
                let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count();
                bad(format!(
                    "{} line {line}: not valid UTF-8; save the file as \"CSV UTF-8\"",
                    path.display()
                ))
            })?;
            parse_csv(name, &text, mapping).map_err(|e| {
                bad(format!(
                    "{}: {e}; nothing was written, fix the file and run again",
                    path.display()
                ))
            })
        }
        ListSource::FromUser { user, label } => {
            let people = client.people(user);
            let groups: Vec<_> = people
                .contact_groups_list(Some("name,groupType"))
                .try_collect()
                .await
                .map_err(|e| from_user_error(name, user, e))?;
            let wanted = label.trim();
            let group = groups
                .iter()
                .find(|g| g.name.as_deref().map(str::trim) == Some(wanted))
                .or_else(|| {
                    groups.iter().find(|g| {
                        g.name
                            .as_deref()
                            .is_some_and(|n| n.trim().eq_ignore_ascii_case(wanted))
                    })
                });
            let Some(rn) = group.and_then(|g| g.resource_name.clone()) else {
                let mut names: Vec<&str> = groups
                    .iter()
                    .filter(|g| g.group_type.as_deref() == Some("USER_CONTACT_GROUP"))
                    .filter_map(|g| g.name.as_deref())
                    .collect();
                names.sort_unstable();
                return Err(bad(format!(
                    "{user} has no label {label:?} in Google Contacts (their labels: {}); \
                     fix from_label or from_user",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            let listing = people
                .connections_list_all(ConnectionsParams::new(FROM_USER_MASK))
                .await
                .map_err(|e| from_user_error(name, user, e))?;
            Ok(listing
                .people
                .iter()
                .filter(|p| p.group_resource_names().any(|g| g == rn))
                .filter_map(|p| from_person(name, p, mapping))
                .collect())
        }
        ListSource::Rooms => {
            let rooms: Vec<_> = client
                .directory()
                .calendar_resources_list(config.google.customer.as_deref())
                .try_collect()
                .await
                .map_err(|source| ContactsError::ListRead {
                    list: name.to_string(),
                    doing: format!(
                        "reading the meeting rooms (resources.calendars.list; the service \
                         account needs {ROOMS_SCOPE} delegated)"
                    ),
                    source,
                })?;
            Ok(rooms.iter().filter_map(|r| room_contact(name, r)).collect())
        }
    }
}

/// A source person's book that cannot be read: an unknown or suspended person is
/// something to fix in the config (exit 2); a Google outage is not.
fn from_user_error(list: &str, user: &str, source: orgsync_client::Error) -> ContactsError {
    let doing = format!("reading {user}'s Google Contacts (from_user)");
    if matches!(
        source.kind(),
        ErrorKind::Retryable | ErrorKind::OutcomeUnknown
    ) {
        ContactsError::ListRead {
            list: list.to_string(),
            doing,
            source,
        }
    } else {
        ContactsError::List {
            list: list.to_string(),
            problem: format!(
                "cannot read {user}'s Google Contacts ({source}); check that from_user is a \
                 user of this Workspace and is not suspended"
            ),
        }
    }
}
