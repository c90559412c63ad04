//! One paginator for every list method: follow `nextPageToken` to the end.
//!
//! Pages come as a `Stream`, one request at a time, so a caller holds one page in
//! memory however long the listing is (100k users stay streamed). An empty page that
//! still carries a token means "keep going" (Calendar does this); a repeated token is
//! an error rather than an endless loop.

use futures::stream::{self, Stream, TryStreamExt};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::transport::{Call, GoogleClient};

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
            let next = page
                .next_page_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if next.is_some() && next == token {
                return Err(Error::Decode {
                    method,
                    message: "the server returned the same nextPageToken twice".into(),
                });
            }
            Ok(Some((page, (next.map(Some), client, make))))
        },
    )
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
