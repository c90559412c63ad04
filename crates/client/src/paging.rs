//! One paginator for every list method: follow `nextPageToken` to the end.
//!
//! Pages come as a `Stream`, one request at a time, so a caller holds one page in
//! memory however long the listing is (100k users stay streamed). An empty page that
//! still carries a token means "keep going" (Calendar does this); a repeated token is
//! an error rather than an endless loop.

use futures::stream::{self, Stream, TryStreamExt};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::transport::{Call, GoogleClient, decode};

/// A list response with a continuation token.
pub trait Page: DeserializeOwned + Send + 'static {
    type Item: Send + 'static;
    fn next_page_token(&self) -> Option<&str>;
    fn into_items(self) -> Vec<Self::Item>;
}

/// Stream the pages of a list call. `make(page_token)` builds each request.
pub(crate) fn pages<P, F>(
    client: GoogleClient,
    make: F,
) -> impl Stream<Item = Result<P, Error>> + Send + 'static
where
    P: Page,
    F: Fn(Option<&str>) -> Call + Send + Sync + 'static,
{
    // State: None = finished; Some(token) = fetch the page at `token`.
    stream::try_unfold(
        (Some(None::<String>), client, make),
        |(state, client, make)| async move {
            let Some(token) = state else {
                return Ok(None);
            };
            let call = make(token.as_deref());
            let method = call.method_id;
            let page: P = client.send_json(call).await?;
            let next = next_token(method, page.next_page_token(), &token)?;
            Ok(Some((page, (next.map(Some), client, make))))
        },
    )
}

/// Like [`pages`], with the next page's request in flight while the caller decodes and
/// works on this one. A listing's pages must come one after another (each names the
/// next), so a long listing costs pages × (latency + decoding); reading the token
/// first (a skim of the body) and decoding the page while the next one travels makes
/// it pages × latency. For listings always read to the end (the directory's users):
/// a consumer that stops early has made one request it did not need (dropping the
/// stream cancels it). At most two pages are in memory.
pub(crate) fn pages_ahead<P, F>(
    client: GoogleClient,
    make: F,
) -> impl Stream<Item = Result<P, Error>> + Send + 'static
where
    P: Page,
    F: Fn(Option<&str>) -> Call + Send + Sync + 'static,
{
    let first = Fetch::start(&client, make(None), None);
    stream::try_unfold(
        (Some(first), client, make),
        |(fetch, client, make)| async move {
            let Some(fetch) = fetch else {
                return Ok(None);
            };
            let (method, token) = (fetch.method, fetch.token.clone());
            let bytes = fetch.finish().await?;
            let skim = decode::<NextToken>(method, &bytes)?;
            let next = next_token(method, skim.next_page_token.as_deref(), &token)?;
            let ahead = next.map(|t| Fetch::start(&client, make(Some(&t)), Some(t)));
            let page: P = decode(method, &bytes)?;
            drop(bytes);
            Ok(Some((page, (ahead, client, make))))
        },
    )
}

/// The page after this one: none for an empty token; an error for the token this page
/// was fetched with (a server repeating itself would loop for ever).
fn next_token(
    method: &'static str,
    next: Option<&str>,
    current: &Option<String>,
) -> Result<Option<String>, Error> {
    let next = next.filter(|t| !t.is_empty());
    if next.is_some() && next == current.as_deref() {
        return Err(Error::Decode {
            method,
            message: "the server returned the same nextPageToken twice".into(),
        });
    }
    Ok(next.map(str::to_string))
}

/// Only the continuation token of a list answer (the rest is skimmed, not built).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct NextToken {
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A page request running on its own task; dropping it cancels the request.
struct Fetch {
    method: &'static str,
    token: Option<String>,
    task: tokio::task::JoinHandle<Result<bytes::Bytes, Error>>,
}

impl Fetch {
    fn start(client: &GoogleClient, call: Call, token: Option<String>) -> Self {
        let method = call.method_id;
        let client = client.clone();
        let task = tokio::spawn(async move { client.send(call).await });
        Fetch {
            method,
            token,
            task,
        }
    }

    async fn finish(mut self) -> Result<bytes::Bytes, Error> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only `Drop` aborts the task, and then nobody awaits it.
            Err(_) => Err(Error::Decode {
                method: self.method,
                message: "the page request was cancelled".into(),
            }),
        }
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Flatten a page stream into its items.
pub(crate) fn items<P: Page>(
    pages: impl Stream<Item = Result<P, Error>> + Send + 'static,
) -> impl Stream<Item = Result<P::Item, Error>> + Send + 'static {
    pages
        .map_ok(|p| stream::iter(p.into_items().into_iter().map(Ok)))
        .try_flatten()
}

macro_rules! impl_page {
    ($t:ty, $item:ty, $field:ident) => {
        impl Page for $t {
            type Item = $item;
            fn next_page_token(&self) -> Option<&str> {
                self.next_page_token.as_deref()
            }
            fn into_items(self) -> Vec<$item> {
                self.$field
            }
        }
    };
}

use orgsync_wire::{calendar, directory, gmail, people};
impl_page!(directory::Users, directory::User, users);
impl_page!(directory::Groups, directory::Group, groups);
impl_page!(directory::Members, directory::Member, members);
impl_page!(
    directory::CalendarResources,
    directory::CalendarResource,
    items
);
impl_page!(people::ListConnectionsResponse, people::Person, connections);
impl_page!(
    people::ListContactGroupsResponse,
    people::ContactGroup,
    contact_groups
);
impl_page!(gmail::ListMessagesResponse, gmail::Message, messages);
impl_page!(calendar::Events, calendar::Event, items);

/// Count a stream without keeping it (handy for benchmarks).
pub async fn count<T>(s: impl Stream<Item = Result<T, Error>>) -> Result<u64, Error> {
    s.try_fold(0u64, |n, _| async move { Ok(n + 1) }).await
}
