//! Shared contact lists: contacts that do not come from the directory (suppliers, the
//! cleaning company, the IT hotline, the meeting rooms) pushed into every book.
//!
//! Each list becomes [`DesiredContact`]s with [`DesiredContact::list`] set, an id in
//! the list namespace ([`markers::list_id`]: `list:<name>:<key>`) and the list's label
//! in [`DesiredContact::labels`]. From there the planner treats them like colleagues:
//! same markers, field-level ownership, hash shortcut and guard. A contact whose key
//! leaves the list leaves every book on the next run.
//!
//! Three sources, all mapped here (pure; the executor reads the file or the API):
//! - a UTF-8 CSV file with a header ([`parse_csv`]), the form admins keep such lists in;
//! - a label in one person's own address book ([`from_person`]), as gPanel's Contact
//!   Sync copies a receptionist's "Suppliers" label to everyone;
//! - the Directory's calendar resources ([`room_contact`]): meeting rooms with their
//!   building, floor and capacity
//!   (<https://developers.google.com/admin-sdk/directory/reference/rest/v1/resources.calendars>).

use std::collections::BTreeSet;
use std::fmt;

use orgsync_wire::directory::CalendarResource;
use orgsync_wire::people::Person;

use super::mapping::{
    DesiredContact, DesiredOrganization, MappingOptions, TypedValue, format_phone,
};
use super::markers;
use super::plan::{email_key, phone_key};

/// The columns a shared list's CSV may have (besides `label:<name>` columns).
pub const CSV_COLUMNS: [&str; 10] = [
    "key",
    "given_name",
    "family_name",
    "organization",
    "title",
    "email",
    "phone",
    "mobile",
    "notes",
    "address",
];

/// A CSV cell that cannot be used: where it is and what is wrong, in words an admin
/// can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// The column's header, when the problem is in one column.
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column {c:?}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl std::error::Error for CsvError {}

/// A shared list's contacts from CSV text (UTF-8, a header row). `list` is the list's
/// name (its label in every book). Every row needs a unique, non-empty `key`: it is the
/// contact's identity, so a row whose name or number changes is updated in place. A
/// `label:<name>` column puts the rows with a non-empty cell other than `no`, `false`
/// or `0` in that extra label too. Phones follow the mapping's `phone_format`.
///
/// All or nothing: the first problem is the answer, and no contact is returned.
pub fn parse_csv(
    list: &str,
    text: &str,
    opts: &MappingOptions,
) -> Result<Vec<DesiredContact>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(&e, &[]))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let header_error = |column: &str, message: String| CsvError {
        line: 1,
        column: Some(column.to_string()),
        message,
    };
    let mut seen_headers = BTreeSet::new();
    for h in &headers {
        if !seen_headers.insert(h.to_ascii_lowercase()) {
            return Err(header_error(h, "this column appears twice".into()));
        }
        let known = CSV_COLUMNS.contains(&h.to_ascii_lowercase().as_str());
        let label = h.strip_prefix("label:").map(str::trim);
        match label {
            Some("") => {
                return Err(header_error(
                    h,
                    "a label column needs a name after \"label:\" (label:Cleaning)".into(),
                ));
            }
            Some(_) => {}
            None if known => {}
            None => {
                return Err(header_error(
                    h,
                    format!(
                        "unknown column; the columns are {} and label:<name>",
                        CSV_COLUMNS.join(", ")
                    ),
                ));
            }
        }
    }
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(key_col) = col("key") else {
        return Err(CsvError {
            line: 1,
            column: None,
            message: "the header has no \"key\" column; every row needs a stable key (a \
                      supplier number, a short name) so a changed row is updated, not \
                      replaced"
                .into(),
        });
    };

    let mut out = Vec::new();
    let mut keys = BTreeSet::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&e, &headers))?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |name: &str| -> Option<String> {
            col(name)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let err = |column: &str, message: &str| CsvError {
            line,
            column: Some(column.to_string()),
            message: message.to_string(),
        };
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let key = record
            .get(key_col)
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| err("key", "empty key; every row needs one"))?
            .to_string();
        if !keys.insert(key.clone()) {
            return Err(err("key", "this key is already used by an earlier row"));
        }
        let email = cell("email");
        if let Some(e) = &email
            && !looks_like_email(e)
        {
            return Err(err("email", "not an email address"));
        }
        let mut phones = Vec::new();
        for (column, kind) in [("phone", "work"), ("mobile", "mobile")] {
            if let Some(v) = cell(column) {
                if !v.chars().any(|c| c.is_ascii_digit()) {
                    return Err(err(column, "not a phone number (no digits)"));
                }
                let v = format_phone(&v, opts).unwrap_or_else(|as_written| as_written);
                if !phones
                    .iter()
                    .any(|p: &TypedValue| phone_key(&p.value) == phone_key(&v))
                {
                    phones.push(TypedValue {
                        value: v,
                        kind: kind.into(),
                    });
                }
            }
        }
        let mut labels = vec![list.to_string()];
        for (i, h) in headers.iter().enumerate() {
            if let Some(name) = h.strip_prefix("label:").map(str::trim)
                && record.get(i).is_some_and(is_yes)
                && !labels.iter().any(|l| l == name)
            {
                labels.push(name.to_string());
            }
        }
        let organization = DesiredOrganization {
            name: cell("organization"),
            title: cell("title"),
            department: None,
        };
        let mut d = contact(
            list,
            &key,
            cell("given_name"),
            cell("family_name"),
            email,
            phones,
            organization,
            labels,
        )
        .ok_or_else(|| {
            err(
                "key",
                "the row has no name, organisation, email or phone to show",
            )
        })?;
        d.notes = cell("notes");
        d.address = cell("address");
        out.push(d);
    }
    Ok(out)
}

/// A CSV cell that puts its row in a `label:` column's label.
fn is_yes(cell: &str) -> bool {
    let c = cell.trim().to_ascii_lowercase();
    !(c.is_empty() || c == "no" || c == "false" || c == "0" || c == "n")
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !s.chars().any(char::is_whitespace)
}

fn csv_error(e: &csv::Error, headers: &[String]) -> CsvError {
    let line = e.position().map_or(1, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => {
            let column = headers.get(err.field()).cloned();
            return CsvError {
                line,
                column,
                message: "not valid UTF-8; save the file as \"CSV UTF-8\"".into(),
            };
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        _ => e.to_string(),
    };
    CsvError {
        line,
        column: None,
        message,
    }
}

/// A list contact, or `None` when there is nothing to show.
#[allow(clippy::too_many_arguments)]
fn contact(
    list: &str,
    key: &str,
    given_name: Option<String>,
    family_name: Option<String>,
    email: Option<String>,
    phones: Vec<TypedValue>,
    organization: DesiredOrganization,
    labels: Vec<String>,
) -> Option<DesiredContact> {
    let joined = [given_name.as_deref(), family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let full_name = Some(joined)
        .filter(|s| !s.trim().is_empty())
        .or_else(|| organization.name.clone())
        .or_else(|| email.clone())
        .or_else(|| phones.first().map(|p| p.value.clone()))?;
    // With no personal name, the organisation is the name (as a phone shows a company).
    let given_name = given_name
        .or_else(|| family_name.is_none().then(|| full_name.clone()))
        .filter(|g| !g.is_empty());
    Some(DesiredContact {
        directory_id: markers::list_id(list, key),
        primary_email: email.clone().unwrap_or_default(),
        given_name,
        family_name,
        full_name,
        emails: email
            .map(|value| TypedValue {
                value,
                kind: "work".into(),
            })
            .into_iter()
            .collect(),
        phones,
        organization: (organization != DesiredOrganization::default()).then_some(organization),
        external_ids: Vec::new(),
        user_defined: Vec::new(),
        photo_etag: None,
        list: Some(list.to_string()),
        labels,
        notes: None,
        address: None,
    })
}

/// A meeting room as a contact in list `list`: its name, its calendar address (so
/// a phone or mail client completes it), and building, floor and capacity shown as the
/// organisation's department and title. `None` for a resource with no name, and for
/// one of category `OTHER` (a projector, a car: not something to call).
pub fn room_contact(list: &str, r: &CalendarResource) -> Option<DesiredContact> {
    if r.resource_category.as_deref() == Some("OTHER") {
        return None;
    }
    let name = r
        .generated_resource_name
        .as_deref()
        .or(Some(r.resource_name.as_str()))
        .map(str::trim)
        .filter(|n| !n.is_empty())?
        .to_string();
    let clean = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let place: Vec<String> = [
        clean(r.building_id.as_deref()),
        clean(r.floor_name.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let title = match (clean(r.resource_type.as_deref()), r.capacity) {
        (Some(t), Some(c)) if c > 0 => Some(format!("{t}, {c} seats")),
        (None, Some(c)) if c > 0 => Some(format!("Meeting room, {c} seats")),
        (t, _) => t.or_else(|| Some("Meeting room".into())),
    };
    let organization = DesiredOrganization {
        name: None,
        title,
        department: (!place.is_empty()).then(|| place.join(", ")),
    };
    contact(
        list,
        &r.resource_id,
        Some(name),
        None,
        clean(r.resource_email.as_deref()),
        Vec::new(),
        organization,
        vec![list.to_string()],
    )
}

/// A contact from someone's own address book (a `from_user` list), keyed by its
/// resource name there. orgsync's own contacts in that book are never copied (they are
/// colleagues or other lists already); `None` for those and for a contact with nothing
/// to show.
pub fn from_person(list: &str, p: &Person, opts: &MappingOptions) -> Option<DesiredContact> {
    if p.client_data_value(markers::SOURCE) == Some(markers::SOURCE_VALUE) || p.is_deleted() {
        return None;
    }
    let key = p.resource_name.as_deref()?.trim();
    let key = key.strip_prefix("people/").unwrap_or(key);
    let name = p.names.first();
    let text = |s: Option<&String>| s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let mut emails: Vec<TypedValue> = Vec::new();
    for e in &p.email_addresses {
        if let Some(v) = text(e.value.as_ref())
            && !emails.iter().any(|x| email_key(&x.value) == email_key(&v))
        {
            emails.push(TypedValue {
                value: v,
                kind: text(e.kind.as_ref()).unwrap_or_else(|| "work".into()),
            });
        }
    }
    let mut phones: Vec<TypedValue> = Vec::new();
    for ph in &p.phone_numbers {
        if let Some(v) = text(ph.value.as_ref()) {
            let v = format_phone(&v, opts).unwrap_or_else(|as_written| as_written);
            if !phones.iter().any(|x| phone_key(&x.value) == phone_key(&v)) {
                phones.push(TypedValue {
                    value: v,
                    kind: text(ph.kind.as_ref()).unwrap_or_else(|| "work".into()),
                });
            }
        }
    }
    let org = p.organizations.first();
    let organization = DesiredOrganization {
        name: org.and_then(|o| text(o.name.as_ref())),
        title: org.and_then(|o| text(o.title.as_ref())),
        department: org.and_then(|o| text(o.department.as_ref())),
    };
    let mut d = contact(
        list,
        key,
        name.and_then(|n| text(n.given_name.as_ref())),
        name.and_then(|n| text(n.family_name.as_ref())),
        emails.first().map(|e| e.value.clone()),
        phones,
        organization,
        vec![list.to_string()],
    )?;
    // Every address, with its own type (`contact` writes one, as work).
    if !emails.is_empty() {
        d.emails = emails;
    }
    // The contact's notes and its first postal address, as a CSV row would give them.
    d.notes = p.biographies.first().and_then(|b| text(b.value.as_ref()));
    d.address = p
        .extra
        .get("addresses")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .and_then(|a| a.get("formattedValue"))
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    Some(d)
}
