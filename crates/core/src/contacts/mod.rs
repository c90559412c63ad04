//! Directory → each member's Google Contacts (the contacts job): the pure planner.
//!
//! # Ownership (why orgsync can run nightly without fear)
//!
//! The baseline script (see `docs/ARCHITECTURE.md`) deleted every contact whose first
//! email was not a directory address, phone-only and personal contacts included; similar
//! tools bulldoze personal contacts
//! (<https://github.com/grahamr975/EWS-Office365-Contact-Sync/issues/12>), duplicate them
//! (<https://github.com/frappe/erpnext/issues/21159>) or, keyed on email, cannot remove a
//! contact that has none (<https://github.com/grahamr975/EWS-Office365-Contact-Sync/issues/28>).
//! Here a contact is **managed** only when its `clientData` has `orgsync.source = orgsync`
//! *and* a non-empty `orgsync.id`. Everything else — a
//! contact with a colleague's email, with no email, with only an `orgsync.id` copied from
//! somewhere — is personal and never appears in any plan action.
//!
//! Markers (see [`markers`]): `orgsync.source` (ownership), `orgsync.id` (the Directory
//! user's immutable id: a rename is an update, never delete + create), `orgsync.hash`
//! (hash of the mapped fields, so unchanged data costs no write — the spurious updates of
//! <https://github.com/fleapower/Google-Script-Contacts-Sync/issues/14> came from diffing
//! server-decorated JSON), `orgsync.owned` (fingerprints of the list entries orgsync
//! wrote), `orgsync.state = left` (a kept leaver) and `orgsync.photo` (etag of the last
//! photo uploaded; written by the executor after a photo upload, preserved by the
//! planner).
//!
//! # Field-level ownership
//!
//! orgsync manages `names` (whole field), and *inside* `emailAddresses`, `phoneNumbers`,
//! `organizations` and `externalIds` only the entries it wrote; the `orgsync.*` keys of
//! `clientData`; and the memberships in My Contacts and the managed group. Everything
//! else on a managed contact (a home phone, an extra email, a note, other clientData,
//! other labels, any field orgsync does not map) belongs to the person and is kept.
//!
//! **Rule for "ours" inside a list field:** an entry is ours when its value key
//! (email lower-cased; phone reduced to `+`, digits and letters; external id type|value;
//! organization name|title|department) has its fingerprint in the contact's
//! `orgsync.owned` set (what we wrote last time), or equals the key of an entry we want
//! now. Everything else is theirs and is kept verbatim. If `orgsync.owned` is missing
//! (damaged marker), entries of the types orgsync writes (`work` emails, work-ish phone
//! types, `organization` external ids, all organizations) count as ours, so stale values
//! are replaced instead of piling up (old and new phone both shown:
//! <https://github.com/grahamr975/EWS-Office365-Contact-Sync/issues/112>).
//!
//! # Deciding whether to write
//!
//! The planner merges the observed contact with the desired one and compares *managed
//! projections* (values and types only — never server decorations such as
//! `metadata`, `formattedType`, `canonicalForm`) field by field. The update mask holds
//! exactly the fields that differ; an empty mask means unchanged. When `orgsync.hash`
//! is current, names are compared on given/family only, so a server that rewrites the
//! unstructured name cannot cause an update loop.

pub mod estimate;
pub mod landed;
pub mod lists;
pub mod mapping;
pub mod markers;
pub mod plan;

pub use landed::{FreshCheck, MarkedContact, fresh_creates_landed};
pub use mapping::{
    CustomField, DesiredContact, DesiredOrganization, LabelBy, MAPPING_VERSION, MappingOptions,
    PhoneFormat, TypedValue, department_label, desired_contact, format_phone, is_phone_region,
    people_phone_type,
};
pub use plan::{
    ContactCreate, ContactUpdate, DesiredDirectory, DesiredDirectoryBuilder, LeaverPolicy,
    PersonalDuplicates, PhotoWrite, PlanOptions, TargetUser, UserPlan, plan_user, view_hash,
};
