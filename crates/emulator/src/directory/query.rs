//! The `users.list` search language
//! (<https://developers.google.com/workspace/admin/directory/v1/guides/search-users>):
//! clauses `field op value`, separated by whitespace and joined by an implicit AND.
//!
//! Parsing is separate from matching so a bad query is rejected (400 "Invalid Input")
//! before any user is scanned, and so that values needing the directory (a manager's
//! id) are resolved once per request, not once per user.
//!
//! Choices where Google's documentation is silent:
//! - field names are matched case-insensitively (`givenname` = `givenName`);
//! - a bare term matches a whole word of givenName/familyName, the primary email or an
//!   alias exactly, or a word of the email's local part; `term*` is a prefix on those;
//! - `:` on a text field means "these words appear contiguously, in order";
//! - an unknown `Schema.field` matches nothing (the emulator keeps no schema registry);
//! - `*` is only a prefix operator on `email`, `givenName`, `familyName`, `name` and
//!   bare terms; elsewhere it is an error, as Google documents.

use orgsync_wire::directory::User;
use serde_json::Value;

/// A parse error; the API answers it as 400 "Invalid Input".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query: {0}")]
pub struct QueryError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolField {
    IsAdmin,
    IsDelegatedAdmin,
    IsSuspended,
    IsArchived,
    IsEnrolledIn2Sv,
    IsEnforcedIn2Sv,
    IsGuest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A bare term.
    Any,
    Name,
    Email,
    GivenName,
    FamilyName,
    Bool(BoolField),
    OrgUnitPath,
    /// `organizations[].{key}` (name, title, department, description, costCenter).
    Org(&'static str),
    Phone,
    ExternalId,
    Im,
    /// `relations[type=manager].value` (manager and directManager; one level only).
    Manager,
    /// Like [`Field::Manager`] but the value is the manager's id.
    ManagerId,
    /// `addresses[]`: `None` = any sub-field, else the sub-field key.
    Address(Option<&'static str>),
    Custom {
        schema: String,
        field: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq,
    Contains,
    Prefix,
    /// `:[MIN,MAX]`: MIN inclusive, MAX exclusive.
    Range(String, String),
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub field: Field,
    pub op: Op,
    pub value: String,
}

/// Parse a query into clauses (all must match).
pub fn parse(query: &str) -> Result<Vec<Clause>, QueryError> {
    let chars: Vec<char> = query.chars().collect();
    let mut i = 0;
    let mut clauses = Vec::new();
    let err = |m: &str| QueryError(m.to_string());
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        if is_quote(chars[i]) {
            let (value, next) = read_quoted(&chars, i)?;
            i = next;
            clauses.push(bare(value)?);
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
        {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        let op_char = chars.get(i).copied();
        let is_op = matches!(op_char, Some('=' | ':' | '<' | '>'));
        if !is_op || name.is_empty() {
            if name.is_empty() && is_op {
                return Err(err("an operator needs a field name"));
            }
            // A bare term: everything up to the next whitespace.
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            let value: String = chars[start..i].iter().collect();
            if value.contains(['=', ':', '<', '>']) {
                return Err(QueryError(format!("cannot parse {value:?}")));
            }
            clauses.push(bare(value)?);
            continue;
        }
        // Operator.
        let mut op = match op_char {
            Some('=') => Op::Eq,
            Some(':') => Op::Contains,
            Some('<') => Op::Lt,
            _ => Op::Gt,
        };
        i += 1;
        if matches!(op, Op::Lt | Op::Gt) && chars.get(i) == Some(&'=') {
            op = if op == Op::Lt { Op::Le } else { Op::Ge };
            i += 1;
        }
        // Value.
        let value: String;
        if op == Op::Contains && chars.get(i) == Some(&'[') {
            let close = chars[i..]
                .iter()
                .position(|c| *c == ']')
                .ok_or_else(|| err("unterminated range"))?;
            let inner: String = chars[i + 1..i + close].iter().collect();
            i += close + 1;
            if i < chars.len() && !chars[i].is_whitespace() {
                return Err(err("unexpected text after range"));
            }
            let (lo, hi) = inner
                .split_once(',')
                .ok_or_else(|| err("a range needs MIN,MAX"))?;
            let (lo, hi) = (unquote(lo.trim()), unquote(hi.trim()));
            if lo.is_empty() || hi.is_empty() {
                return Err(err("a range needs MIN,MAX"));
            }
            op = Op::Range(lo, hi);
            value = inner;
        } else if i < chars.len() && is_quote(chars[i]) {
            let (v, next) = read_quoted(&chars, i)?;
            if next < chars.len() && !chars[next].is_whitespace() {
                return Err(err("unexpected text after a quoted value"));
            }
            i = next;
            value = v;
        } else {
            let vstart = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            value = chars[vstart..i].iter().collect();
        }
        if value.is_empty() {
            return Err(QueryError(format!("missing value for {name}")));
        }
        clauses.push(clause(&name, op, value)?);
    }
    Ok(clauses)
}

fn is_quote(c: char) -> bool {
    c == '\'' || c == '"'
}

fn unquote(s: &str) -> String {
    let t = s.trim_matches(|c| c == '\'' || c == '"');
    t.to_string()
}

/// Read a quoted value starting at `chars[at]` (the quote); returns (value, index after).
fn read_quoted(chars: &[char], at: usize) -> Result<(String, usize), QueryError> {
    let quote = chars[at];
    let mut out = String::new();
    let mut i = at + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            c if c == quote => return Ok((out, i + 1)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(QueryError("unterminated quoted value".into()))
}

fn bare(value: String) -> Result<Clause, QueryError> {
    if value.trim().is_empty() {
        return Err(QueryError("empty term".into()));
    }
    let (op, value) = split_prefix(Op::Contains, value);
    Ok(Clause {
        field: Field::Any,
        op,
        value,
    })
}

fn split_prefix(op: Op, value: String) -> (Op, String) {
    if op == Op::Contains
        && let Some(p) = value.strip_suffix('*')
    {
        return (Op::Prefix, p.to_string());
    }
    (op, value)
}

fn clause(name: &str, op: Op, value: String) -> Result<Clause, QueryError> {
    let lower = name.to_ascii_lowercase();
    let field = match lower.as_str() {
        "name" => Field::Name,
        "email" => Field::Email,
        "givenname" => Field::GivenName,
        "familyname" => Field::FamilyName,
        "isadmin" => Field::Bool(BoolField::IsAdmin),
        "isdelegatedadmin" => Field::Bool(BoolField::IsDelegatedAdmin),
        "issuspended" => Field::Bool(BoolField::IsSuspended),
        "isarchived" => Field::Bool(BoolField::IsArchived),
        "isenrolledin2sv" => Field::Bool(BoolField::IsEnrolledIn2Sv),
        "isenforcedin2sv" => Field::Bool(BoolField::IsEnforcedIn2Sv),
        "isguest" => Field::Bool(BoolField::IsGuest),
        "orgunitpath" => Field::OrgUnitPath,
        "orgname" => Field::Org("name"),
        "orgtitle" => Field::Org("title"),
        "orgdepartment" => Field::Org("department"),
        "orgdescription" => Field::Org("description"),
        "orgcostcenter" => Field::Org("costCenter"),
        "phone" => Field::Phone,
        "externalid" => Field::ExternalId,
        "im" => Field::Im,
        "manager" | "directmanager" => Field::Manager,
        "managerid" | "directmanagerid" => Field::ManagerId,
        "address" => Field::Address(None),
        "addresspobox" => Field::Address(Some("poBox")),
        "addressextended" => Field::Address(Some("extendedAddress")),
        "addressstreet" => Field::Address(Some("streetAddress")),
        "addresslocality" => Field::Address(Some("locality")),
        "addressregion" => Field::Address(Some("region")),
        "addresspostalcode" => Field::Address(Some("postalCode")),
        "addresscountry" => Field::Address(Some("country")),
        _ => match name.split_once('.') {
            Some((schema, field))
                if !schema.is_empty() && !field.is_empty() && !field.contains('.') =>
            {
                Field::Custom {
                    schema: schema.to_string(),
                    field: field.to_string(),
                }
            }
            _ => return Err(QueryError(format!("unknown field {name:?}"))),
        },
    };
    let prefixable = matches!(
        field,
        Field::Email | Field::GivenName | Field::FamilyName | Field::Name
    );
    let (op, value) = if prefixable {
        split_prefix(op, value)
    } else {
        (op, value)
    };
    let bad_op = || QueryError(format!("operator not supported for {name}"));
    match (&field, &op) {
        (Field::Custom { .. }, Op::Contains) if value.ends_with('*') => {
            return Err(QueryError(
                "prefix search is not supported on custom fields".into(),
            ));
        }
        (Field::Custom { .. }, _) => {}
        (_, Op::Range(..) | Op::Gt | Op::Ge | Op::Lt | Op::Le) => return Err(bad_op()),
        (Field::Bool(_), Op::Eq)
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") =>
        {
            return Err(QueryError(format!("{name} takes true or false")));
        }
        (Field::Bool(_), Op::Eq) => {}
        (Field::Bool(_), _) => return Err(bad_op()),
        (Field::OrgUnitPath, Op::Eq) if !value.starts_with('/') => {
            return Err(QueryError("orgUnitPath must start with /".into()));
        }
        (Field::OrgUnitPath, Op::Eq) => {}
        (Field::Phone | Field::Manager | Field::ManagerId, Op::Eq) => {}
        (Field::Phone | Field::Manager | Field::ManagerId | Field::OrgUnitPath, _) => {
            return Err(bad_op());
        }
        _ => {}
    }
    if op != Op::Prefix && value.ends_with('*') && !matches!(field, Field::Custom { .. }) {
        return Err(QueryError(format!(
            "prefix search is not supported on {name}"
        )));
    }
    if op == Op::Prefix && value.is_empty() {
        return Err(QueryError("empty prefix".into()));
    }
    Ok(Clause { field, op, value })
}

/// Lower-cased alphanumeric words of `s`.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// `needle`'s words appear contiguously, in order, in `hay`.
fn contains_words(hay: &str, needle: &str) -> bool {
    let n = words(needle);
    if n.is_empty() {
        return false;
    }
    let h = words(hay);
    h.windows(n.len()).any(|w| w == n.as_slice())
}

fn eq_ci(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

fn starts_ci(hay: &str, prefix: &str) -> bool {
    hay.to_lowercase().starts_with(&prefix.to_lowercase())
}

pub(crate) fn text_match(op: &Op, hay: &str, value: &str) -> bool {
    match op {
        Op::Eq => eq_ci(hay, value),
        Op::Contains => contains_words(hay, value),
        Op::Prefix => starts_ci(hay, value),
        _ => false,
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_digit()).collect()
}

fn extra_list<'a>(
    u: &'a User,
    key: &str,
) -> impl Iterator<Item = &'a serde_json::Map<String, Value>> {
    u.extra
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn extra_bool(u: &User, key: &str) -> bool {
    u.extra.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Does `user` satisfy `clause`? `manager_email` resolves a `managerId` value to the
/// manager's primary email (done once by the caller).
pub fn matches(clause: &Clause, user: &User, resolved: Option<&str>) -> bool {
    let given = user
        .name
        .as_ref()
        .and_then(|n| n.given_name.as_deref())
        .unwrap_or("");
    let family = user
        .name
        .as_ref()
        .and_then(|n| n.family_name.as_deref())
        .unwrap_or("");
    let email = user.primary_email.as_deref().unwrap_or("");
    let aliases = user.aliases.iter().flatten().map(String::as_str);
    let v = clause.value.as_str();
    match &clause.field {
        Field::Any => match clause.op {
            Op::Prefix => {
                starts_ci(given, v)
                    || starts_ci(family, v)
                    || starts_ci(email, v)
                    || words(given)
                        .iter()
                        .chain(words(family).iter())
                        .any(|w| starts_ci(w, v))
            }
            _ => {
                contains_words(given, v)
                    || contains_words(family, v)
                    || eq_ci(email, v)
                    || aliases.clone().any(|a| eq_ci(a, v))
                    || contains_words(email.split('@').next().unwrap_or(""), v)
            }
        },
        Field::Name => {
            let full = format!("{given} {family}");
            text_match(&clause.op, &full, v)
        }
        Field::Email => std::iter::once(email)
            .chain(aliases)
            .any(|e| text_match(&clause.op, e, v)),
        Field::GivenName => text_match(&clause.op, given, v),
        Field::FamilyName => text_match(&clause.op, family, v),
        Field::Bool(b) => {
            let want = v.eq_ignore_ascii_case("true");
            let have = match b {
                BoolField::IsAdmin => user.is_admin.unwrap_or(false),
                BoolField::IsDelegatedAdmin => user.is_delegated_admin.unwrap_or(false),
                BoolField::IsSuspended => user.suspended.unwrap_or(false),
                BoolField::IsArchived => user.archived.unwrap_or(false),
                BoolField::IsEnrolledIn2Sv => extra_bool(user, "isEnrolledIn2Sv"),
                BoolField::IsEnforcedIn2Sv => extra_bool(user, "isEnforcedIn2Sv"),
                BoolField::IsGuest => extra_bool(user, "isGuestUser"),
            };
            want == have
        }
        Field::OrgUnitPath => {
            let path = user.org_unit_path.as_deref().unwrap_or("/").to_lowercase();
            let want = v.trim_end_matches('/').to_lowercase();
            want.is_empty() || path == want || path.starts_with(&format!("{want}/"))
        }
        Field::Org(key) => user.organizations.iter().flatten().any(|o| {
            let hay = match *key {
                "name" => o.name.as_deref(),
                "title" => o.title.as_deref(),
                "department" => o.department.as_deref(),
                "description" => o.description.as_deref(),
                _ => o.cost_center.as_deref(),
            };
            hay.is_some_and(|h| text_match(&clause.op, h, v))
        }),
        Field::Phone => {
            let want = digits(v);
            !want.is_empty()
                && user
                    .phones
                    .iter()
                    .flatten()
                    .any(|p| digits(&p.value) == want)
        }
        Field::ExternalId => user
            .external_ids
            .iter()
            .flatten()
            .any(|x| text_match(&clause.op, &x.value, v)),
        Field::Im => extra_list(user, "ims").any(|im| {
            im.get("im")
                .and_then(Value::as_str)
                .is_some_and(|h| text_match(&clause.op, h, v))
        }),
        Field::Manager | Field::ManagerId => {
            let want = match clause.field {
                Field::ManagerId => match resolved {
                    Some(e) => e,
                    None => return false,
                },
                _ => v,
            };
            extra_list(user, "relations").any(|r| {
                r.get("type").and_then(Value::as_str) == Some("manager")
                    && r.get("value")
                        .and_then(Value::as_str)
                        .is_some_and(|m| eq_ci(m, want))
            })
        }
        Field::Address(key) => extra_list(user, "addresses").any(|a| match key {
            Some(k) => a
                .get(*k)
                .and_then(Value::as_str)
                .is_some_and(|h| text_match(&clause.op, h, v)),
            None => a
                .values()
                .filter_map(Value::as_str)
                .any(|h| text_match(&clause.op, h, v)),
        }),
        Field::Custom { schema, field } => {
            let Some(value) = user.custom_field(schema, field) else {
                return false;
            };
            custom_values(value).any(|s| custom_match(&clause.op, &s, v))
        }
    }
}

/// The scalar values of a custom field: a scalar, or a multi-valued
/// `[{"value": …, "type": …}]` / `[scalar]` array.
fn custom_values(value: &Value) -> Box<dyn Iterator<Item = String> + '_> {
    match value {
        Value::Array(items) => Box::new(items.iter().filter_map(|item| match item {
            Value::Object(o) => o.get("value").and_then(scalar),
            other => scalar(other),
        })),
        other => Box::new(scalar(other).into_iter()),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Compare two values numerically when both are numbers, else as strings (ISO dates
/// `YYYY-MM-DD` order correctly as strings).
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.cmp(b),
    }
}

fn custom_match(op: &Op, have: &str, want: &str) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => eq_ci(have, want) || compare(have, want) == Equal && want.parse::<f64>().is_ok(),
        Op::Contains => contains_words(have, want),
        Op::Prefix => false,
        Op::Range(lo, hi) => compare(have, lo) != Less && compare(have, hi) == Less,
        Op::Gt => compare(have, want) == Greater,
        Op::Ge => compare(have, want) != Less,
        Op::Lt => compare(have, want) == Less,
        Op::Le => compare(have, want) != Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_wire::directory::{UserExternalId, UserName, UserOrganization, UserPhone};
    use serde_json::json;

    fn user() -> User {
        let mut u = User {
            primary_email: Some("jane.o'neil.smith@example.com".into()),
            aliases: Some(vec!["jane@example.com".into()]),
            name: Some(UserName {
                given_name: Some("Jane Marie".into()),
                family_name: Some("Smith".into()),
                ..Default::default()
            }),
            is_admin: Some(false),
            suspended: Some(true),
            org_unit_path: Some("/Sales/EMEA".into()),
            organizations: Some(vec![UserOrganization {
                name: Some("Acme Corp".into()),
                title: Some("Senior Account Executive".into()),
                department: Some("Sales".into()),
                ..Default::default()
            }]),
            phones: Some(vec![UserPhone {
                value: "+44 20 7946 0123".into(),
                kind: Some("work".into()),
                ..Default::default()
            }]),
            external_ids: Some(vec![UserExternalId {
                value: "E000042".into(),
                kind: Some("organization".into()),
                ..Default::default()
            }]),
            custom_schemas: Some(
                json!({"Roles":{"billing":true},"EmployeeInfo":{"jobLevel":6,"startDate":"2021-03-04",
                       "skills":[{"value":"rust"},{"value":"go"}]}})
                .as_object()
                .unwrap()
                .clone(),
            ),
            ..Default::default()
        };
        u.extra.insert(
            "relations".into(),
            json!([{"type":"manager","value":"boss@example.com"}]),
        );
        u.extra.insert(
            "addresses".into(),
            json!([{"type":"work","locality":"London","country":"United Kingdom"}]),
        );
        u
    }

    fn m(q: &str) -> bool {
        let clauses = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        clauses
            .iter()
            .all(|c| matches(c, &user(), Some("boss@example.com")))
    }

    #[test]
    fn parses_clauses_with_operators_and_quotes() {
        let c = parse(r"email:admin*  name='O\'Neil Smith' EmployeeInfo.jobLevel:[5,8] x.y>=3")
            .unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].field, Field::Email);
        assert_eq!(c[0].op, Op::Prefix);
        assert_eq!(c[0].value, "admin");
        assert_eq!(c[1].field, Field::Name);
        assert_eq!(c[1].op, Op::Eq);
        assert_eq!(c[1].value, "O'Neil Smith");
        assert_eq!(c[2].op, Op::Range("5".into(), "8".into()));
        assert_eq!(c[3].op, Op::Ge);
        assert_eq!(parse("   ").unwrap(), vec![]);
    }

    #[test]
    fn rejects_malformed_queries() {
        for q in [
            "email='unterminated",
            "nosuchfield=1",
            "isAdmin=maybe",
            "isAdmin:true",
            "orgUnitPath:/Sales",
            "orgUnitPath=Sales",
            "phone:123",
            "email=",
            "=value",
            "Roles.admin:tru*",
            "orgName:Acme*",
            "givenName>3",
            "Schema.f:[1]",
            "Schema.f:[1,2",
            "email='a'b",
        ] {
            assert!(parse(q).is_err(), "{q} should be rejected");
        }
    }

    #[test]
    fn text_fields_match_exact_words_and_prefixes() {
        assert!(m("email=JANE.O'NEIL.SMITH@example.com"));
        assert!(m("email=jane@example.com"), "aliases count for email");
        assert!(m("email:jane*"));
        assert!(!m("email:smith*"));
        assert!(m("givenName='Jane Marie'"));
        assert!(!m("givenName=Jane"), "= is exact");
        assert!(m("givenName:Marie"));
        assert!(m("givenName:Ja*"));
        assert!(m("familyName=smith"));
        assert!(m("name='Jane Marie Smith'"));
        assert!(!m("name='Jane'"));
        assert!(m("name:'Marie Smith'"));
        assert!(!m("name:'Smith Marie'"), "words must be in order");
    }

    #[test]
    fn bare_terms_match_names_or_email() {
        assert!(m("smith"));
        assert!(m("Jane smith"));
        assert!(m("sm*"));
        assert!(!m("bob"));
    }

    #[test]
    fn booleans_org_units_and_organization_fields() {
        assert!(m("isSuspended=true isAdmin=false"));
        assert!(!m("isSuspended=false"));
        assert!(m("orgUnitPath=/Sales"), "subtree match");
        assert!(m("orgUnitPath=/sales/emea"));
        assert!(m("orgUnitPath=/"));
        assert!(!m("orgUnitPath=/Sales/Americas"));
        assert!(!m("orgUnitPath=/Sal"), "whole path segments only");
        assert!(m("orgTitle:'Account Executive'"));
        assert!(m("orgDepartment=sales orgName='Acme Corp'"));
        assert!(!m("orgDepartment=Engineering"));
    }

    #[test]
    fn phones_external_ids_managers_addresses() {
        assert!(m("phone=+442079460123"));
        assert!(!m("phone=+442079460999"));
        assert!(m("externalId=E000042"));
        assert!(m("manager=boss@example.com"));
        assert!(m("managerId=12345"), "resolved by the caller");
        assert!(m("addressLocality=London"));
        assert!(m("address:Kingdom"));
    }

    #[test]
    fn custom_schema_fields() {
        assert!(m("Roles.billing=true"));
        assert!(!m("Roles.admin=true"), "absent field never matches");
        assert!(m("EmployeeInfo.jobLevel=6"));
        assert!(m("EmployeeInfo.jobLevel:[5,8]"));
        assert!(!m("EmployeeInfo.jobLevel:[7,8]"));
        assert!(!m("EmployeeInfo.jobLevel:[1,6]"), "max is exclusive");
        assert!(m("EmployeeInfo.jobLevel>5 EmployeeInfo.jobLevel<=6"));
        assert!(!m("EmployeeInfo.jobLevel>6"));
        assert!(m("EmployeeInfo.startDate>=2021-01-01"));
        assert!(m("EmployeeInfo.skills=rust"), "multi-valued fields");
        assert!(!m("Nope.field=1"));
    }
}
