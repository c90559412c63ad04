//! Contact photos (`[contacts] include_photos = true`).
//!
//! The People API has no batch photo call, so a photo costs one `updateContactPhoto` per
//! contact, plus one Directory `users.photos.get` per *source* per run (the bytes are
//! fetched once and shared by every target, [`PhotoCache`]). After the uploads, one
//! `batchUpdateContacts` per 200 contacts records the uploaded photo's etag in the
//! `orgsync.photo` marker, so the next plan uploads only photos that changed.
//!
//! A photo that fails is reported and retried by the next run (its marker is not
//! written, and the user's view is not recorded as clean); it never fails the user: the
//! contact's text fields, which are what caller ID needs, are already written. A source
//! whose Directory photo disappeared between the read and the upload is skipped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use orgsync_client::people::People;
use orgsync_client::{Error as ClientError, GoogleClient};
use orgsync_core::contacts::PhotoWrite;
use orgsync_core::contacts::markers;
use orgsync_wire::people::Person;
use tokio::sync::OnceCell;

/// A source's photo as the Directory returned it.
#[derive(Debug)]
pub(super) struct SourcePhoto {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
}

type Cell = Arc<OnceCell<Option<Arc<SourcePhoto>>>>;

/// Directory photos fetched during one run, each at most once however many targets
/// receive it (concurrent targets asking for the same source wait for one fetch).
#[derive(Default)]
pub(super) struct PhotoCache {
    cells: Mutex<HashMap<String, Cell>>,
}

impl PhotoCache {
    async fn get(
        &self,
        client: &GoogleClient,
        directory_id: &str,
    ) -> Result<Option<Arc<SourcePhoto>>, ClientError> {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            cells.entry(directory_id.to_string()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            let photo = client.directory().users_photos_get(directory_id).await?;
            let Some(photo) = photo else { return Ok(None) };
            let bytes = match photo.photo_data.as_deref() {
                Some(data) => orgsync_client::directory::decode_photo_data(data)?,
                None => return Ok(None),
            };
            Ok(Some(Arc::new(SourcePhoto {
                bytes,
                etag: photo.etag,
            })))
        })
        .await
        .cloned()
    }
}

/// What the photo step did for one target.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct PhotoOutcome {
    pub uploaded: usize,
    pub failed: usize,
}

/// Upload `writes` to the target's contacts. `created` maps directory ids to the
/// resource names of contacts created earlier in this apply (writes for new contacts
/// have no resource name in the plan). Every contact touched goes into `written`.
pub(super) async fn upload(
    client: &GoogleClient,
    cache: &PhotoCache,
    people: &People,
    writes: Vec<PhotoWrite>,
    created: &HashMap<String, String>,
    written: &mut HashSet<String>,
) -> PhotoOutcome {
    let mut out = PhotoOutcome::default();
    let mut markers_batch: BTreeMap<String, Person> = BTreeMap::new();
    for w in writes {
        let Some(rn) = w
            .resource_name
            .clone()
            .or_else(|| created.get(&w.directory_id).cloned())
        else {
            tracing::warn!(directory_id = %w.directory_id, "photo: the new contact was not found");
            out.failed += 1;
            continue;
        };
        let photo = match cache.get(client, &w.directory_id).await {
            Ok(Some(photo)) => photo,
            Ok(None) => {
                tracing::debug!(directory_id = %w.directory_id, "photo: the directory has none any more");
                continue;
            }
            Err(e) => {
                tracing::warn!(directory_id = %w.directory_id, error = %e, "photo: reading the directory photo failed");
                out.failed += 1;
                continue;
            }
        };
        match people
            .update_contact_photo(&rn, &photo.bytes, Some("clientData,metadata"))
            .await
        {
            Ok(Some(mut person)) => {
                written.insert(rn.clone());
                let etag = photo.etag.as_deref().unwrap_or(&w.photo_etag);
                markers::set_photo(&mut person, etag);
                let marker = Person {
                    etag: person.etag.take(),
                    client_data: std::mem::take(&mut person.client_data),
                    ..Person::default()
                };
                markers_batch.insert(rn, marker);
                out.uploaded += 1;
            }
            Ok(None) => {
                // Only without person fields; we always ask for them.
                written.insert(rn);
                out.failed += 1;
            }
            Err(e) => {
                tracing::warn!(contact = %rn, error = %e, "photo: upload failed; the next run retries");
                out.failed += 1;
            }
        }
    }
    if !markers_batch.is_empty() {
        let n = markers_batch.len();
        if let Err(e) = people
            .batch_update_contacts_chunked(markers_batch, "clientData", "metadata")
            .await
        {
            tracing::warn!(error = %e, "photo: recording the uploaded photos failed; the next run uploads them again");
            out.failed += n;
            out.uploaded -= n;
        }
    }
    out
}
