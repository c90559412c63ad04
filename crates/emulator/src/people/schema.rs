//! Property tables generated from `people.v1.json` (revision 20251117): the schemas a
//! People request body can contain, so unknown names and mistyped values answer 400
//! the way Google's JSON parser does instead of being silently dropped.

/// Number and free-form kinds exist in the schema language even where Person has none.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
    Num,
    Any,
    Obj(&'static str),
    Arr(&'static str),
    ArrOf(&'static Kind),
    Map(&'static str),
}

use Kind::*;

pub(crate) static SCHEMAS: &[(&str, &[(&str, Kind)])] = &[
    (
        "Person",
        &[
            ("addresses", Arr("Address")),
            ("ageRange", Str),
            ("ageRanges", Arr("AgeRangeType")),
            ("biographies", Arr("Biography")),
            ("birthdays", Arr("Birthday")),
            ("braggingRights", Arr("BraggingRights")),
            ("calendarUrls", Arr("CalendarUrl")),
            ("clientData", Arr("ClientData")),
            ("coverPhotos", Arr("CoverPhoto")),
            ("emailAddresses", Arr("EmailAddress")),
            ("etag", Str),
            ("events", Arr("Event")),
            ("externalIds", Arr("ExternalId")),
            ("fileAses", Arr("FileAs")),
            ("genders", Arr("Gender")),
            ("imClients", Arr("ImClient")),
            ("interests", Arr("Interest")),
            ("locales", Arr("Locale")),
            ("locations", Arr("Location")),
            ("memberships", Arr("Membership")),
            ("metadata", Obj("PersonMetadata")),
            ("miscKeywords", Arr("MiscKeyword")),
            ("names", Arr("Name")),
            ("nicknames", Arr("Nickname")),
            ("occupations", Arr("Occupation")),
            ("organizations", Arr("Organization")),
            ("phoneNumbers", Arr("PhoneNumber")),
            ("photos", Arr("Photo")),
            ("relations", Arr("Relation")),
            ("relationshipInterests", Arr("RelationshipInterest")),
            ("relationshipStatuses", Arr("RelationshipStatus")),
            ("residences", Arr("Residence")),
            ("resourceName", Str),
            ("sipAddresses", Arr("SipAddress")),
            ("skills", Arr("Skill")),
            ("taglines", Arr("Tagline")),
            ("urls", Arr("Url")),
            ("userDefined", Arr("UserDefined")),
        ],
    ),
    (
        "Address",
        &[
            ("city", Str),
            ("country", Str),
            ("countryCode", Str),
            ("extendedAddress", Str),
            ("formattedType", Str),
            ("formattedValue", Str),
            ("metadata", Obj("FieldMetadata")),
            ("poBox", Str),
            ("postalCode", Str),
            ("region", Str),
            ("streetAddress", Str),
            ("type", Str),
        ],
    ),
    (
        "FieldMetadata",
        &[
            ("primary", Bool),
            ("source", Obj("Source")),
            ("sourcePrimary", Bool),
            ("verified", Bool),
        ],
    ),
    (
        "Source",
        &[
            ("etag", Str),
            ("id", Str),
            ("profileMetadata", Obj("ProfileMetadata")),
            ("type", Str),
            ("updateTime", Str),
        ],
    ),
    (
        "ProfileMetadata",
        &[("objectType", Str), ("userTypes", ArrOf(&Str))],
    ),
    (
        "AgeRangeType",
        &[("ageRange", Str), ("metadata", Obj("FieldMetadata"))],
    ),
    (
        "Biography",
        &[
            ("contentType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("value", Str),
        ],
    ),
    (
        "Birthday",
        &[
            ("date", Obj("Date")),
            ("metadata", Obj("FieldMetadata")),
            ("text", Str),
        ],
    ),
    ("Date", &[("day", Int), ("month", Int), ("year", Int)]),
    (
        "BraggingRights",
        &[("metadata", Obj("FieldMetadata")), ("value", Str)],
    ),
    (
        "CalendarUrl",
        &[
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("url", Str),
        ],
    ),
    (
        "ClientData",
        &[
            ("key", Str),
            ("metadata", Obj("FieldMetadata")),
            ("value", Str),
        ],
    ),
    (
        "CoverPhoto",
        &[
            ("default", Bool),
            ("metadata", Obj("FieldMetadata")),
            ("url", Str),
        ],
    ),
    (
        "EmailAddress",
        &[
            ("displayName", Str),
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("value", Str),
        ],
    ),
    (
        "Event",
        &[
            ("date", Obj("Date")),
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
        ],
    ),
    (
        "ExternalId",
        &[
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("value", Str),
        ],
    ),
    (
        "FileAs",
        &[("metadata", Obj("FieldMetadata")), ("value", Str)],
    ),
    (
        "Gender",
        &[
            ("addressMeAs", Str),
            ("formattedValue", Str),
            ("metadata", Obj("FieldMetadata")),
            ("value", Str),
        ],
    ),
    (
        "ImClient",
        &[
            ("formattedProtocol", Str),
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("protocol", Str),
            ("type", Str),
            ("username", Str),
        ],
    ),
    (
        "Interest",
        &[("metadata", Obj("FieldMetadata")), ("value", Str)],
    ),
    (
        "Locale",
        &[("metadata", Obj("FieldMetadata")), ("value", Str)],
    ),
    (
        "Location",
        &[
            ("buildingId", Str),
            ("current", Bool),
            ("deskCode", Str),
            ("floor", Str),
            ("floorSection", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("value", Str),
        ],
    ),
    (
        "Membership",
        &[
            ("contactGroupMembership", Obj("ContactGroupMembership")),
            ("domainMembership", Obj("DomainMembership")),
            ("metadata", Obj("FieldMetadata")),
        ],
    ),
    (
        "ContactGroupMembership",
        &[("contactGroupId", Str), ("contactGroupResourceName", Str)],
    ),
    ("DomainMembership", &[("inViewerDomain", Bool)]),
    (
        "PersonMetadata",
        &[
            ("deleted", Bool),
            ("linkedPeopleResourceNames", ArrOf(&Str)),
            ("objectType", Str),
            ("previousResourceNames", ArrOf(&Str)),
            ("sources", Arr("Source")),
        ],
    ),
    (
        "MiscKeyword",
        &[
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("value", Str),
        ],
    ),
    (
        "Name",
        &[
            ("displayName", Str),
            ("displayNameLastFirst", Str),
            ("familyName", Str),
            ("givenName", Str),
            ("honorificPrefix", Str),
            ("honorificSuffix", Str),
            ("metadata", Obj("FieldMetadata")),
            ("middleName", Str),
            ("phoneticFamilyName", Str),
            ("phoneticFullName", Str),
            ("phoneticGivenName", Str),
            ("phoneticHonorificPrefix", Str),
            ("phoneticHonorificSuffix", Str),
            ("phoneticMiddleName", Str),
            ("unstructuredName", Str),
        ],
    ),
    (
        "Nickname",
        &[
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("value", Str),
        ],
    ),
    (
        "Occupation",
        &[("metadata", Obj("FieldMetadata")), ("value", Str)],
    ),
    (
        "Organization",
        &[
            ("costCenter", Str),
            ("current", Bool),
            ("department", Str),
            ("domain", Str),
            ("endDate", Obj("Date")),
            ("formattedType", Str),
            ("fullTimeEquivalentMillipercent", Int),
            ("jobDescription", Str),
            ("location", Str),
            ("metadata", Obj("FieldMetadata")),
            ("name", Str),
            ("phoneticName", Str),
            ("startDate", Obj("Date")),
            ("symbol", Str),
            ("title", Str),
            ("type", Str),
        ],
    ),
    (
        "PhoneNumber",
        &[
            ("canonicalForm", Str),
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("value", Str),
        ],
    ),
    (
        "Photo",
        &[
            ("default", Bool),
            ("metadata", Obj("FieldMetadata")),
            ("url", Str),
        ],
    ),
    (
        "Relation",
        &[
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("person", Str),
            ("type", Str),
        ],
    ),
    (
        "RelationshipInterest",
        &[
            ("formattedValue", Str),
            ("metadata", Obj("FieldMetadata")),
            ("value", Str),
        ],
    ),
    (
        "RelationshipStatus",
        &[
            ("formattedValue", Str),
            ("metadata", Obj("FieldMetadata")),
            ("value", Str),
        ],
    ),
    (
        "Residence",
        &[
            ("current", Bool),
            ("metadata", Obj("FieldMetadata")),
            ("value", Str),
        ],
    ),
    (
        "SipAddress",
        &[
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("value", Str),
        ],
    ),
    (
        "Skill",
        &[("metadata", Obj("FieldMetadata")), ("value", Str)],
    ),
    (
        "Tagline",
        &[("metadata", Obj("FieldMetadata")), ("value", Str)],
    ),
    (
        "Url",
        &[
            ("formattedType", Str),
            ("metadata", Obj("FieldMetadata")),
            ("type", Str),
            ("value", Str),
        ],
    ),
    (
        "UserDefined",
        &[
            ("key", Str),
            ("metadata", Obj("FieldMetadata")),
            ("value", Str),
        ],
    ),
    (
        "ContactGroup",
        &[
            ("clientData", Arr("GroupClientData")),
            ("etag", Str),
            ("formattedName", Str),
            ("groupType", Str),
            ("memberCount", Int),
            ("memberResourceNames", ArrOf(&Str)),
            ("metadata", Obj("ContactGroupMetadata")),
            ("name", Str),
            ("resourceName", Str),
        ],
    ),
    ("GroupClientData", &[("key", Str), ("value", Str)]),
    (
        "ContactGroupMetadata",
        &[("deleted", Bool), ("updateTime", Str)],
    ),
    (
        "BatchCreateContactsRequest",
        &[
            ("contacts", Arr("ContactToCreate")),
            ("readMask", Str),
            ("sources", ArrOf(&Str)),
        ],
    ),
    ("ContactToCreate", &[("contactPerson", Obj("Person"))]),
    (
        "BatchUpdateContactsRequest",
        &[
            ("contacts", Map("Person")),
            ("readMask", Str),
            ("sources", ArrOf(&Str)),
            ("updateMask", Str),
        ],
    ),
    (
        "BatchDeleteContactsRequest",
        &[("resourceNames", ArrOf(&Str))],
    ),
    (
        "UpdateContactPhotoRequest",
        &[
            ("personFields", Str),
            ("photoBytes", Str),
            ("sources", ArrOf(&Str)),
        ],
    ),
    (
        "CreateContactGroupRequest",
        &[
            ("contactGroup", Obj("ContactGroup")),
            ("readGroupFields", Str),
        ],
    ),
    (
        "UpdateContactGroupRequest",
        &[
            ("contactGroup", Obj("ContactGroup")),
            ("readGroupFields", Str),
            ("updateGroupFields", Str),
        ],
    ),
    (
        "ModifyContactGroupMembersRequest",
        &[
            ("resourceNamesToAdd", ArrOf(&Str)),
            ("resourceNamesToRemove", ArrOf(&Str)),
        ],
    ),
];
