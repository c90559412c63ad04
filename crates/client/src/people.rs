//! People v1: connections (with sync tokens), contact mutations, contact groups
//! (<https://developers.google.com/people/v1/contacts>).
//!
//! A [`People`] handle is bound to one impersonated user: with domain-wide delegation
//! `people/me` is the only valid owner, so orgsync acts as each member in turn.
//! Every mutation takes [`GoogleClient::people_mutation_lock`] for that user, so one
//! user's mutations run one at a time (Google asks for this) while different users
//! run in parallel.
//!
//! **Making creates safe.** `createContact`/`batchCreateContacts` are not idempotent.
//! orgsync marks every contact it creates with a `clientData` entry
//! ([`MARKER_KEY`] = the directory user's id). When a create's outcome is unknown
//! (timeout or reset after the request was sent, or a 5xx), [`People::create_contacts_json`]
//! re-lists the user's contacts, treats those whose marker is present as created, and
//! creates only the rest. The sync layer additionally de-duplicates contacts with the
//! same marker on every run, so even a create that lands twice is repaired.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{Stream, TryStreamExt};
use orgsync_wire::people::{
    BATCH_CREATE_MAX, BATCH_DELETE_MAX, BATCH_GET_MAX, BATCH_UPDATE_MAX,
    BatchCreateContactsRequest, BatchCreateContactsResponse, BatchDeleteContactsRequest,
    BatchUpdateContactsRequest, BatchUpdateContactsResponse, CONNECTIONS_MAX_PAGE, ContactGroup,
    ContactToCreate, CreateContactGroupRequest, GetPeopleResponse, ListConnectionsResponse,
    ListContactGroupsResponse, MEMBERS_MODIFY_MAX, Membership, ModifyContactGroupMembersRequest,
    ModifyContactGroupMembersResponse, Person, PersonMarkers, PersonResponse,
    UpdateContactGroupRequest,
};
use orgsync_wire::people::{
    DeleteContactPhotoResponse, UpdateContactPhotoRequest, UpdateContactPhotoResponse,
};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::paging::{Page, items, pages};
use crate::transport::{Call, GoogleClient, Lane, encode_reserved};

/// The `clientData` key that marks a contact as orgsync's; value = directory user id.
pub const MARKER_KEY: &str = "orgsync.id";

/// `people.connections.list` parameters.
#[derive(Debug, Clone)]
pub struct ConnectionsParams {
    /// Required, e.g. `names,emailAddresses,clientData,metadata`.
    pub person_fields: String,
    /// 1–1000; defaults to 1000.
    pub page_size: u32,
    pub request_sync_token: bool,
    pub sync_token: Option<String>,
    pub sort_order: Option<String>,
    pub sources: Vec<String>,
}

impl ConnectionsParams {
    pub fn new(person_fields: impl Into<String>) -> Self {
        ConnectionsParams {
            person_fields: person_fields.into(),
            page_size: CONNECTIONS_MAX_PAGE,
            request_sync_token: false,
            sync_token: None,
            sort_order: None,
            sources: Vec::new(),
        }
    }

    /// A full listing that ends with a sync token.
    pub fn full_sync(person_fields: impl Into<String>) -> Self {
        ConnectionsParams {
            request_sync_token: true,
            ..Self::new(person_fields)
        }
    }

    /// An incremental listing since `token` (deleted contacts come back with
    /// `metadata.deleted`); also asks for the next token.
    pub fn incremental(person_fields: impl Into<String>, token: impl Into<String>) -> Self {
        ConnectionsParams {
            request_sync_token: true,
            sync_token: Some(token.into()),
            ..Self::new(person_fields)
        }
    }
}

/// A whole listing: every person and, if requested, the token for next time.
#[derive(Debug, Clone)]
pub struct ConnectionsListing<T = Person> {
    pub people: Vec<T>,
    pub next_sync_token: Option<String>,
}

impl<T> Default for ConnectionsListing<T> {
    fn default() -> Self {
        ConnectionsListing {
            people: Vec::new(),
            next_sync_token: None,
        }
    }
}

/// A contact to create, already serialised ([`People::create_contacts_json`]).
#[derive(Debug, Clone, Copy)]
pub struct NewContactJson<'a> {
    /// Its `clientData` value under the call's `marker_key`: how a re-list after an
    /// unknown outcome recognises it. Must be unique within the call.
    pub marker: &'a str,
    /// The Person as a JSON object (as `serde_json` writes a [`Person`]), without
    /// `memberships` when the call adds them.
    pub person: &'a str,
    /// Contact groups this contact joins besides the call's `memberships` (a label of
    /// its own, such as its department's), so one batch can hold contacts of different
    /// labels.
    pub groups: &'a [&'a str],
}

/// A contact [`People::create_contacts_json`] created (or found after an unknown
/// outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedContact {
    pub resource_name: String,
    /// Its marker, when the read mask included `clientData`.
    pub marker: Option<String>,
}

/// `batchCreateContacts` response, read as markers only.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedPeople {
    #[serde(default)]
    created_people: Vec<CreatedEntry>,
}

#[derive(Deserialize)]
struct CreatedEntry {
    #[serde(default)]
    person: Option<PersonMarkers>,
}

/// `"memberships":[...]` for these contact groups (empty: no memberships key).
fn memberships_json(groups: &[&str]) -> Result<String, Error> {
    if groups.is_empty() {
        return Ok(String::new());
    }
    let list: Vec<Membership> = groups.iter().map(|g| Membership::group(*g)).collect();
    let list = serde_json::to_string(&list)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode memberships: {e}")))?;
    Ok(format!("\"memberships\":{list}"))
}

/// The `batchCreateContacts` body, spliced from pre-serialised contacts: each
/// `{...}` becomes `{"contactPerson":{<memberships>,...}}`.
/// The `"memberships":[…]` member of one contact: the call's, plus the contact's own
/// groups when it has any.
fn memberships_of<'m>(
    call: &[&str],
    common: &'m str,
    c: &NewContactJson<'_>,
) -> std::borrow::Cow<'m, str> {
    if c.groups.is_empty() {
        return std::borrow::Cow::Borrowed(common);
    }
    let all: Vec<&str> = call.iter().chain(c.groups).copied().collect();
    // Group names are plain strings: encoding them cannot fail.
    std::borrow::Cow::Owned(memberships_json(&all).unwrap_or_default())
}

fn create_body(
    contacts: &[&NewContactJson<'_>],
    call_groups: &[&str],
    memberships: &str,
    read_mask: &str,
) -> Vec<u8> {
    let size: usize = contacts
        .iter()
        .map(|c| c.person.len() + memberships.len() + 24)
        .sum();
    let mut b = String::with_capacity(size + read_mask.len() + 32);
    b.push_str("{\"contacts\":[");
    for (i, c) in contacts.iter().enumerate() {
        if i > 0 {
            b.push(',');
        }
        b.push_str("{\"contactPerson\":");
        splice_memberships(
            c.person,
            &memberships_of(call_groups, memberships, c),
            &mut b,
        );
        b.push('}');
    }
    b.push_str("],\"readMask\":");
    b.push_str(&serde_json::Value::from(read_mask).to_string());
    b.push('}');
    b.into_bytes()
}

/// Up to this many creates or updates go one call each instead of in a batch. Google
/// charges a batch create or update 6 critical reads and 6 critical writes whatever its
/// size, and a single `createContact`/`updateContact` one of each
/// (<https://developers.google.com/people/v1/contacts>): a push-driven change writes
/// one contact into every address book, and as a batch it would spend six times the
/// project's write budget (6,000 units for a 1,000-person org against a 3,000 a minute
/// project limit: two minutes instead of one). Three single calls cost half a batch's
/// quota for two more round trips.
pub const SINGLE_WRITES_UP_TO: usize = 3;
/// Up to this many deletes go one `deleteContact` each (one unit of the delete metric)
/// instead of a `batchDeleteContacts` (ten units).
pub const SINGLE_DELETES_UP_TO: usize = 5;

/// The `createContact` body, spliced like [`create_body`]: the contact with its memberships.
fn single_create_body(
    contact: &NewContactJson<'_>,
    call_groups: &[&str],
    memberships: &str,
) -> Vec<u8> {
    let memberships = memberships_of(call_groups, memberships, contact);
    let mut b = String::with_capacity(contact.person.len() + memberships.len() + 2);
    splice_memberships(contact.person, &memberships, &mut b);
    b.into_bytes()
}

/// `person` (a JSON object, checked by the caller) with `memberships` (`"memberships":[…]`,
/// or empty) added as its first member.
fn splice_memberships(person: &str, memberships: &str, out: &mut String) {
    let person = person.trim();
    if memberships.is_empty() {
        out.push_str(person);
        return;
    }
    let inner = person[1..person.len() - 1].trim();
    out.push('{');
    out.push_str(memberships);
    if !inner.is_empty() {
        out.push(',');
        out.push_str(inner);
    }
    out.push('}');
}

/// One `connections.list` page with its people parsed as `T`
/// ([`People::connections_pages_as`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionsPage<T> {
    #[serde(default = "Vec::new")]
    pub connections: Vec<T>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
    pub next_sync_token: Option<String>,
}

impl<T: DeserializeOwned + Send + 'static> Page for ConnectionsPage<T> {
    type Item = T;
    fn next_page_token(&self) -> Option<&str> {
        self.next_page_token.as_deref()
    }
    fn into_items(self) -> Vec<T> {
        self.connections
    }
}

/// A People handle for one impersonated user.
#[derive(Debug, Clone)]
pub struct People {
    client: GoogleClient,
    subject: String,
}

impl GoogleClient {
    /// People calls as `subject` (the user whose contacts are touched).
    pub fn people(&self, subject: &str) -> People {
        People {
            client: self.clone(),
            subject: subject.to_string(),
        }
    }
}

fn too_many(what: &str, n: usize, max: usize) -> Error {
    Error::InvalidArgument(format!(
        "{what}: {n} items, at most {max} per call (use the *_chunked helper)"
    ))
}

impl People {
    pub fn subject(&self) -> &str {
        &self.subject
    }

    fn read(&self, id: &'static str, http: Method, path: String) -> Call {
        Call::new(id, Lane::PeopleRead, http, path).subject(Some(&self.subject))
    }

    fn write(&self, id: &'static str, http: Method, path: String) -> Call {
        Call::new(id, Lane::PeopleWrite, http, path).subject(Some(&self.subject))
    }

    async fn mutate<T: serde::de::DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let _guard = self.client.people_mutation_lock(&self.subject).await;
        self.client.send_json(call).await
    }

    // ---- connections ------------------------------------------------------------------

    fn connections_call(&self, params: &ConnectionsParams, token: Option<&str>) -> Call {
        let size = params.page_size.clamp(1, CONNECTIONS_MAX_PAGE);
        let mut call = self
            .read(
                "people.people.connections.list",
                Method::GET,
                "v1/people/me/connections".into(),
            )
            .query("personFields", params.person_fields.clone())
            .query("pageSize", size.to_string())
            .query_opt("syncToken", params.sync_token.clone())
            .query_opt("sortOrder", params.sort_order.clone())
            .query_opt("pageToken", token);
        if params.request_sync_token {
            call = call.query("requestSyncToken", "true");
        }
        for s in &params.sources {
            call = call.query("sources", s.clone());
        }
        call
    }

    /// `people.connections.list` pages; the last page carries `nextSyncToken`.
    pub fn connections_pages(
        &self,
        params: ConnectionsParams,
    ) -> impl Stream<Item = Result<ListConnectionsResponse, Error>> + Send + 'static {
        let this = self.clone();
        pages(self.client.clone(), move |token| {
            this.connections_call(&params, token)
        })
    }

    /// [`Self::connections_pages`] with each person parsed as `T`: a caller that needs
    /// a few fields of every contact declares a small struct, and the rest of each
    /// contact is skipped while parsing instead of being built and dropped. The request
    /// is the same (a sync token binds the `personFields` it was issued for).
    pub fn connections_pages_as<T>(
        &self,
        params: ConnectionsParams,
    ) -> impl Stream<Item = Result<ConnectionsPage<T>, Error>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        let this = self.clone();
        pages(self.client.clone(), move |token| {
            this.connections_call(&params, token)
        })
    }

    /// Every person, streamed (the sync token is lost: use [`Self::connections_list_all`]
    /// or the pages when you need it).
    pub fn connections_list(
        &self,
        params: ConnectionsParams,
    ) -> impl Stream<Item = Result<Person, Error>> + Send + 'static {
        items(self.connections_pages(params))
    }

    /// The whole listing plus the final `nextSyncToken`. An expired sync token fails
    /// with [`ErrorKind::SyncTokenExpired`]: drop it and list in full.
    pub async fn connections_list_all(
        &self,
        params: ConnectionsParams,
    ) -> Result<ConnectionsListing, Error> {
        self.connections_list_all_as(params).await
    }

    /// [`Self::connections_list_all`] with each person parsed as `T` (see
    /// [`Self::connections_pages_as`]).
    pub async fn connections_list_all_as<T>(
        &self,
        params: ConnectionsParams,
    ) -> Result<ConnectionsListing<T>, Error>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let mut out = ConnectionsListing::default();
        let mut stream = std::pin::pin!(self.connections_pages_as::<T>(params));
        while let Some(page) = stream.try_next().await? {
            out.people.extend(page.connections);
            if page.next_sync_token.is_some() {
                out.next_sync_token = page.next_sync_token;
            }
        }
        Ok(out)
    }

    // ---- single contacts --------------------------------------------------------------

    /// A `people.createContact` call, its body still to set.
    fn create_contact_call(&self, person_fields: &str) -> Call {
        self.write(
            "people.people.createContact",
            Method::POST,
            "v1/people:createContact".into(),
        )
        .query("personFields", person_fields)
    }

    /// `people.createContact`. Not idempotent: see the module docs.
    pub async fn create_contact(
        &self,
        person: &Person,
        person_fields: &str,
    ) -> Result<Person, Error> {
        let call = self.create_contact_call(person_fields).json(person)?;
        self.mutate(call).await
    }

    /// `people.updateContact`; `person` carries its `resourceName` and `etag`. A stale
    /// etag fails with [`ErrorKind::PreconditionFailed`].
    pub async fn update_contact(
        &self,
        person: &Person,
        update_person_fields: &str,
        person_fields: Option<&str>,
    ) -> Result<Person, Error> {
        let name = person.resource_name.as_deref().ok_or_else(|| {
            Error::InvalidArgument("updateContact: the person has no resourceName".into())
        })?;
        let call = self
            .write(
                "people.people.updateContact",
                Method::PATCH,
                format!("v1/{}:updateContact", encode_reserved(name)),
            )
            .query("updatePersonFields", update_person_fields)
            .query_opt("personFields", person_fields)
            .json(person)?
            // The etag makes a repeat fail cleanly instead of applying twice.
            .idempotent(true);
        self.mutate(call).await
    }

    /// `people.deleteContact`.
    pub async fn delete_contact(&self, resource_name: &str) -> Result<(), Error> {
        let call = self.write(
            "people.people.deleteContact",
            Method::DELETE,
            format!("v1/{}:deleteContact", encode_reserved(resource_name)),
        );
        let _guard = self.client.people_mutation_lock(&self.subject).await;
        self.client.send(call).await.map(drop)
    }

    // ---- photos -----------------------------------------------------------------------

    /// `people.updateContactPhoto`: `bytes` (a JPEG or PNG image) become the photo of
    /// the contact `resource_name` (`people/c…`); sent as standard base64. The contact's
    /// etag changes. With `person_fields` (e.g. `"photos,metadata"`) the updated person
    /// comes back; without, Google skips the read-back and this returns `None`.
    /// Re-uploading the same bytes is harmless, so it is retried. Another user's or an
    /// unknown contact fails with [`ErrorKind::NotFound`]; bytes Google does not take
    /// for an image with [`ErrorKind::Permanent`] (400 INVALID_ARGUMENT).
    pub async fn update_contact_photo(
        &self,
        resource_name: &str,
        bytes: &[u8],
        person_fields: Option<&str>,
    ) -> Result<Option<Person>, Error> {
        if bytes.is_empty() {
            return Err(Error::InvalidArgument(
                "updateContactPhoto: the photo is empty".into(),
            ));
        }
        let body = UpdateContactPhotoRequest {
            photo_bytes: STANDARD.encode(bytes),
            person_fields: person_fields
                .filter(|f| !f.trim().is_empty())
                .map(str::to_string),
            sources: Vec::new(),
        };
        let call = self
            .write(
                "people.people.updateContactPhoto",
                Method::PATCH,
                format!("v1/{}:updateContactPhoto", encode_reserved(resource_name)),
            )
            .json(&body)?
            .idempotent(true);
        let resp: UpdateContactPhotoResponse = self.mutate(call).await?;
        Ok(resp.person)
    }

    /// `people.deleteContactPhoto`: back to the default photo. `person_fields` as for
    /// [`Self::update_contact_photo`]. Retried (deleting twice is harmless).
    pub async fn delete_contact_photo(
        &self,
        resource_name: &str,
        person_fields: Option<&str>,
    ) -> Result<Option<Person>, Error> {
        let call = self
            .write(
                "people.people.deleteContactPhoto",
                Method::DELETE,
                format!("v1/{}:deleteContactPhoto", encode_reserved(resource_name)),
            )
            .query_opt(
                "personFields",
                person_fields.filter(|f| !f.trim().is_empty()),
            );
        let resp: DeleteContactPhotoResponse = self.mutate(call).await?;
        Ok(resp.person)
    }

    // ---- batches ----------------------------------------------------------------------

    /// `people.batchCreateContacts` (≤ 200). `read_mask` is required by Google; an
    /// empty one skips the read-back.
    pub async fn batch_create_contacts(
        &self,
        contacts: Vec<Person>,
        read_mask: &str,
    ) -> Result<Vec<PersonResponse>, Error> {
        if contacts.len() > BATCH_CREATE_MAX {
            return Err(too_many(
                "batchCreateContacts",
                contacts.len(),
                BATCH_CREATE_MAX,
            ));
        }
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let body = BatchCreateContactsRequest {
            contacts: contacts
                .into_iter()
                .map(|contact_person| ContactToCreate { contact_person })
                .collect(),
            read_mask: read_mask.to_string(),
            sources: Vec::new(),
        };
        let call = self
            .write(
                "people.people.batchCreateContacts",
                Method::POST,
                "v1/people:batchCreateContacts".into(),
            )
            .json(&body)?;
        let resp: BatchCreateContactsResponse = self.mutate(call).await?;
        Ok(resp.created_people)
    }

    /// Any number of contacts, 200 per call, in order.
    pub async fn batch_create_contacts_chunked(
        &self,
        contacts: Vec<Person>,
        read_mask: &str,
    ) -> Result<Vec<PersonResponse>, Error> {
        let mut out = Vec::with_capacity(contacts.len());
        for chunk in chunks(contacts, BATCH_CREATE_MAX) {
            out.extend(self.batch_create_contacts(chunk, read_mask).await?);
        }
        Ok(out)
    }

    /// Create contacts that each carry a `clientData` marker under `marker_key`, safely:
    /// when a batch's outcome is unknown, re-list, skip the ones that exist, and create
    /// only the rest. 200 per `batchCreateContacts`, in order.
    ///
    /// The contacts come already serialised ([`NewContactJson`]): a sync writes the
    /// same colleague into every address book, so it serialises each once per run, and
    /// `memberships` (the one part that differs per book) are added here to every
    /// contact. Returns each created (or found) contact's resource name and, when
    /// `read_mask` includes `clientData` (the re-list always reads it), its marker.
    pub async fn create_contacts_json(
        &self,
        contacts: &[NewContactJson<'_>],
        memberships: &[&str],
        marker_key: &str,
        read_mask: &str,
    ) -> Result<Vec<CreatedContact>, Error> {
        let mut list_mask: Vec<&str> = read_mask.split(',').filter(|s| !s.is_empty()).collect();
        if !list_mask.contains(&"clientData") {
            list_mask.push("clientData");
        }
        let list_mask = list_mask.join(",");
        let groups = memberships_json(memberships)?;
        for c in contacts {
            let body = c.person.trim();
            if !(body.starts_with('{') && body.ends_with('}')) {
                return Err(Error::InvalidArgument(format!(
                    "create_contacts_json: the contact marked {:?} is not a JSON object",
                    c.marker
                )));
            }
        }
        let max_rounds = self.client.config().retry.max_attempts.max(1);
        let mut out = Vec::with_capacity(contacts.len());
        for chunk in contacts.chunks(BATCH_CREATE_MAX) {
            let mut pending: Vec<&NewContactJson<'_>> = chunk.iter().collect();
            let mut round = 0;
            loop {
                round += 1;
                let sent = if pending.len() <= SINGLE_WRITES_UP_TO {
                    self.create_one_by_one(
                        &mut pending,
                        memberships,
                        &groups,
                        &list_mask,
                        marker_key,
                        &mut out,
                    )
                    .await
                } else {
                    let call = self
                        .write(
                            "people.people.batchCreateContacts",
                            Method::POST,
                            "v1/people:batchCreateContacts".into(),
                        )
                        .raw_body(
                            create_body(&pending, memberships, &groups, read_mask).into(),
                            "application/json",
                        );
                    self.mutate::<CreatedPeople>(call).await.map(|created| {
                        let n = created.created_people.len();
                        out.extend(created.created_people.into_iter().filter_map(|r| {
                            let p = r.person?;
                            Some(CreatedContact {
                                marker: p.client_data_value(marker_key).map(str::to_string),
                                resource_name: p.resource_name?,
                            })
                        }));
                        pending.clear();
                        n
                    })
                };
                match sent {
                    Ok(_) => break,
                    Err(e) if e.is(ErrorKind::OutcomeUnknown) && round < max_rounds => {
                        tracing::warn!(
                            subject = %self.subject,
                            contacts = pending.len(),
                            error = %e,
                            "batchCreateContacts outcome unknown; re-listing to check"
                        );
                        let wanted: HashSet<&str> = pending.iter().map(|c| c.marker).collect();
                        let mut found: HashSet<String> = HashSet::new();
                        let mut listing =
                            std::pin::pin!(self.connections_pages_as::<PersonMarkers>(
                                ConnectionsParams::new(list_mask.clone())
                            ));
                        while let Some(page) = listing.try_next().await? {
                            for p in page.connections {
                                if let (Some(m), Some(rn)) =
                                    (p.client_data_value(marker_key), p.resource_name.as_deref())
                                    && wanted.contains(m)
                                    && found.insert(m.to_string())
                                {
                                    out.push(CreatedContact {
                                        resource_name: rn.to_string(),
                                        marker: Some(m.to_string()),
                                    });
                                }
                            }
                        }
                        pending.retain(|c| !found.contains(c.marker));
                        if pending.is_empty() {
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// `createContact` for each of `pending` (a few: [`SINGLE_WRITES_UP_TO`]), removing
    /// each from `pending` once created. An error leaves the rest in `pending`, so the
    /// caller's outcome-unknown check looks for exactly those.
    async fn create_one_by_one(
        &self,
        pending: &mut Vec<&NewContactJson<'_>>,
        call_groups: &[&str],
        groups: &str,
        person_fields: &str,
        marker_key: &str,
        out: &mut Vec<CreatedContact>,
    ) -> Result<usize, Error> {
        let mut n = 0;
        while let Some(c) = pending.first().copied() {
            let call = self.create_contact_call(person_fields).raw_body(
                single_create_body(c, call_groups, groups).into(),
                "application/json",
            );
            let p: Person = self.mutate(call).await?;
            if let Some(rn) = p.resource_name.clone() {
                out.push(CreatedContact {
                    marker: p
                        .client_data_value(marker_key)
                        .unwrap_or(c.marker)
                        .to_string()
                        .into(),
                    resource_name: rn,
                });
            }
            pending.remove(0);
            n += 1;
        }
        Ok(n)
    }

    /// `people.batchUpdateContacts` (≤ 200): resource name → person with etag.
    pub async fn batch_update_contacts(
        &self,
        contacts: BTreeMap<String, Person>,
        update_mask: &str,
        read_mask: &str,
    ) -> Result<BTreeMap<String, PersonResponse>, Error> {
        if contacts.len() > BATCH_UPDATE_MAX {
            return Err(too_many(
                "batchUpdateContacts",
                contacts.len(),
                BATCH_UPDATE_MAX,
            ));
        }
        if contacts.is_empty() {
            return Ok(BTreeMap::new());
        }
        let body = BatchUpdateContactsRequest {
            contacts,
            update_mask: update_mask.to_string(),
            read_mask: read_mask.to_string(),
            sources: Vec::new(),
        };
        let call = self
            .write(
                "people.people.batchUpdateContacts",
                Method::POST,
                "v1/people:batchUpdateContacts".into(),
            )
            .json(&body)?
            // Etag-guarded: a repeat after success fails with a precondition error
            // rather than applying twice.
            .idempotent(true);
        let resp: BatchUpdateContactsResponse = self.mutate(call).await?;
        Ok(resp.update_result)
    }

    pub async fn batch_update_contacts_chunked(
        &self,
        contacts: BTreeMap<String, Person>,
        update_mask: &str,
        read_mask: &str,
    ) -> Result<BTreeMap<String, PersonResponse>, Error> {
        let mut out = BTreeMap::new();
        if contacts.len() <= SINGLE_WRITES_UP_TO {
            for (name, mut person) in contacts {
                person.resource_name = Some(name.clone());
                let p = self
                    .update_contact(&person, update_mask, Some(read_mask))
                    .await?;
                out.insert(
                    name,
                    PersonResponse {
                        person: Some(p),
                        ..PersonResponse::default()
                    },
                );
            }
            return Ok(out);
        }
        let all: Vec<(String, Person)> = contacts.into_iter().collect();
        for chunk in chunks(all, BATCH_UPDATE_MAX) {
            out.extend(
                self.batch_update_contacts(chunk.into_iter().collect(), update_mask, read_mask)
                    .await?,
            );
        }
        Ok(out)
    }

    /// `people.batchDeleteContacts` (≤ 500). Deleting twice is harmless: retried.
    pub async fn batch_delete_contacts(&self, resource_names: Vec<String>) -> Result<(), Error> {
        if resource_names.len() > BATCH_DELETE_MAX {
            return Err(too_many(
                "batchDeleteContacts",
                resource_names.len(),
                BATCH_DELETE_MAX,
            ));
        }
        if resource_names.is_empty() {
            return Ok(());
        }
        let call = self
            .write(
                "people.people.batchDeleteContacts",
                Method::POST,
                "v1/people:batchDeleteContacts".into(),
            )
            .json(&BatchDeleteContactsRequest { resource_names })?
            .idempotent(true);
        let _guard = self.client.people_mutation_lock(&self.subject).await;
        self.client.send(call).await.map(drop)
    }

    pub async fn batch_delete_contacts_chunked(
        &self,
        resource_names: Vec<String>,
    ) -> Result<(), Error> {
        if resource_names.len() <= SINGLE_DELETES_UP_TO {
            for name in &resource_names {
                match self.delete_contact(name).await {
                    // Already gone (a retry after a lost answer, or deleted meanwhile).
                    Err(e) if e.is(ErrorKind::NotFound) => {}
                    other => other?,
                }
            }
            return Ok(());
        }
        for chunk in chunks(resource_names, BATCH_DELETE_MAX) {
            self.batch_delete_contacts(chunk).await?;
        }
        Ok(())
    }

    /// `people.getBatchGet` (≤ 200).
    pub async fn get_batch_get(
        &self,
        resource_names: &[String],
        person_fields: &str,
    ) -> Result<Vec<PersonResponse>, Error> {
        if resource_names.len() > BATCH_GET_MAX {
            return Err(too_many("getBatchGet", resource_names.len(), BATCH_GET_MAX));
        }
        if resource_names.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self
            .read(
                "people.people.getBatchGet",
                Method::GET,
                "v1/people:batchGet".into(),
            )
            .query("personFields", person_fields);
        for n in resource_names {
            call = call.query("resourceNames", n.clone());
        }
        let resp: GetPeopleResponse = self.client.send_json(call).await?;
        Ok(resp.responses)
    }

    pub async fn get_batch_get_chunked(
        &self,
        resource_names: &[String],
        person_fields: &str,
    ) -> Result<Vec<PersonResponse>, Error> {
        let mut out = Vec::with_capacity(resource_names.len());
        for chunk in resource_names.chunks(BATCH_GET_MAX) {
            out.extend(self.get_batch_get(chunk, person_fields).await?);
        }
        Ok(out)
    }

    // ---- contact groups ---------------------------------------------------------------

    /// `people.contactGroups.list` pages (1000 per page).
    pub fn contact_groups_pages(
        &self,
        group_fields: Option<&str>,
    ) -> impl Stream<Item = Result<ListContactGroupsResponse, Error>> + Send + 'static {
        let this = self.clone();
        let fields = group_fields.map(str::to_string);
        pages(self.client.clone(), move |token| {
            this.read(
                "people.contactGroups.list",
                Method::GET,
                "v1/contactGroups".into(),
            )
            .query("pageSize", CONNECTIONS_MAX_PAGE.to_string())
            .query_opt("groupFields", fields.clone())
            .query_opt("pageToken", token)
        })
    }

    pub fn contact_groups_list(
        &self,
        group_fields: Option<&str>,
    ) -> impl Stream<Item = Result<ContactGroup, Error>> + Send + 'static {
        items(self.contact_groups_pages(group_fields))
    }

    /// `people.contactGroups.create`. A duplicate name fails with [`ErrorKind::Conflict`].
    pub async fn contact_groups_create(
        &self,
        group: ContactGroup,
        read_group_fields: Option<&str>,
    ) -> Result<ContactGroup, Error> {
        let call = self
            .write(
                "people.contactGroups.create",
                Method::POST,
                "v1/contactGroups".into(),
            )
            .json(&CreateContactGroupRequest {
                contact_group: group,
                read_group_fields: read_group_fields.map(str::to_string),
            })?;
        self.mutate(call).await
    }

    /// `people.contactGroups.get`; `max_members` > 0 fills `memberResourceNames`.
    pub async fn contact_groups_get(
        &self,
        resource_name: &str,
        max_members: Option<u32>,
        group_fields: Option<&str>,
    ) -> Result<ContactGroup, Error> {
        let call = self
            .read(
                "people.contactGroups.get",
                Method::GET,
                format!("v1/{}", encode_reserved(resource_name)),
            )
            .query_opt("maxMembers", max_members.map(|m| m.to_string()))
            .query_opt("groupFields", group_fields);
        self.client.send_json(call).await
    }

    /// `people.contactGroups.update` (PUT; `group` carries `resourceName` and `etag`).
    pub async fn contact_groups_update(
        &self,
        group: ContactGroup,
        update_group_fields: Option<&str>,
        read_group_fields: Option<&str>,
    ) -> Result<ContactGroup, Error> {
        let name = group.resource_name.clone().ok_or_else(|| {
            Error::InvalidArgument("contactGroups.update: the group has no resourceName".into())
        })?;
        let call = self
            .write(
                "people.contactGroups.update",
                Method::PUT,
                format!("v1/{}", encode_reserved(&name)),
            )
            .json(&UpdateContactGroupRequest {
                contact_group: group,
                update_group_fields: update_group_fields.map(str::to_string),
                read_group_fields: read_group_fields.map(str::to_string),
            })?;
        self.mutate(call).await
    }

    /// `people.contactGroups.delete`; `delete_contacts` also deletes its members.
    pub async fn contact_groups_delete(
        &self,
        resource_name: &str,
        delete_contacts: bool,
    ) -> Result<(), Error> {
        let mut call = self.write(
            "people.contactGroups.delete",
            Method::DELETE,
            format!("v1/{}", encode_reserved(resource_name)),
        );
        if delete_contacts {
            call = call.query("deleteContacts", "true");
        }
        let _guard = self.client.people_mutation_lock(&self.subject).await;
        self.client.send(call).await.map(drop)
    }

    /// `people.contactGroups.members.modify` (add + remove ≤ 1000). Idempotent.
    pub async fn contact_group_members_modify(
        &self,
        group: &str,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<ModifyContactGroupMembersResponse, Error> {
        if add.len() + remove.len() > MEMBERS_MODIFY_MAX {
            return Err(too_many(
                "members.modify",
                add.len() + remove.len(),
                MEMBERS_MODIFY_MAX,
            ));
        }
        let call = self
            .write(
                "people.contactGroups.members.modify",
                Method::POST,
                format!("v1/{}/members:modify", encode_reserved(group)),
            )
            .json(&ModifyContactGroupMembersRequest {
                resource_names_to_add: add,
                resource_names_to_remove: remove,
            })?
            .idempotent(true);
        self.mutate(call).await
    }

    /// Any number of additions and removals, 1000 per call; results merged.
    pub async fn contact_group_members_modify_chunked(
        &self,
        group: &str,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<ModifyContactGroupMembersResponse, Error> {
        let mut out = ModifyContactGroupMembersResponse::default();
        for chunk in chunks(add, MEMBERS_MODIFY_MAX) {
            let r = self
                .contact_group_members_modify(group, chunk, Vec::new())
                .await?;
            out.not_found_resource_names
                .extend(r.not_found_resource_names);
            out.can_not_remove_last_contact_group_resource_names
                .extend(r.can_not_remove_last_contact_group_resource_names);
        }
        for chunk in chunks(remove, MEMBERS_MODIFY_MAX) {
            let r = self
                .contact_group_members_modify(group, Vec::new(), chunk)
                .await?;
            out.not_found_resource_names
                .extend(r.not_found_resource_names);
            out.can_not_remove_last_contact_group_resource_names
                .extend(r.can_not_remove_last_contact_group_resource_names);
        }
        Ok(out)
    }
}

/// Split into batches of at most `max` (order kept).
pub fn chunks<T>(items: Vec<T>, max: usize) -> Vec<Vec<T>> {
    let max = max.max(1);
    let mut out = Vec::with_capacity(items.len().div_ceil(max));
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(max).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_maximum_and_keep_order() {
        let c = chunks((0..450).collect(), 200);
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), [200, 200, 50]);
        assert_eq!(c[2][0], 400);
        assert!(chunks(Vec::<u8>::new(), 200).is_empty());
    }
}
