//! OAuth scope URLs used by orgsync (all under `https://www.googleapis.com/auth/`).

pub const DIRECTORY_USER: &str = "https://www.googleapis.com/auth/admin.directory.user";
pub const DIRECTORY_USER_READONLY: &str =
    "https://www.googleapis.com/auth/admin.directory.user.readonly";
pub const DIRECTORY_GROUP: &str = "https://www.googleapis.com/auth/admin.directory.group";
pub const DIRECTORY_GROUP_READONLY: &str =
    "https://www.googleapis.com/auth/admin.directory.group.readonly";
pub const DIRECTORY_GROUP_MEMBER_READONLY: &str =
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly";
pub const DIRECTORY_RESOURCE_CALENDAR: &str =
    "https://www.googleapis.com/auth/admin.directory.resource.calendar";
pub const DIRECTORY_RESOURCE_CALENDAR_READONLY: &str =
    "https://www.googleapis.com/auth/admin.directory.resource.calendar.readonly";
pub const DIRECTORY_USERSCHEMA: &str = "https://www.googleapis.com/auth/admin.directory.userschema";
pub const DIRECTORY_USERSCHEMA_READONLY: &str =
    "https://www.googleapis.com/auth/admin.directory.userschema.readonly";
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const CONTACTS: &str = "https://www.googleapis.com/auth/contacts";
pub const CONTACTS_READONLY: &str = "https://www.googleapis.com/auth/contacts.readonly";
pub const GMAIL_SEND: &str = "https://www.googleapis.com/auth/gmail.send";
pub const GMAIL_COMPOSE: &str = "https://www.googleapis.com/auth/gmail.compose";
pub const GMAIL_MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";
pub const GMAIL_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
pub const MAIL_GOOGLE_COM: &str = "https://mail.google.com/";
pub const CALENDAR: &str = "https://www.googleapis.com/auth/calendar";
pub const CALENDAR_READONLY: &str = "https://www.googleapis.com/auth/calendar.readonly";
pub const CALENDAR_EVENTS: &str = "https://www.googleapis.com/auth/calendar.events";
pub const CALENDAR_EVENTS_READONLY: &str =
    "https://www.googleapis.com/auth/calendar.events.readonly";
pub const OPENID: &str = "openid";
pub const USERINFO_EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";

/// Google's fixed token audience, which google-auth always puts in `aud`.
pub const GOOGLE_TOKEN_AUDIENCE: &str = "https://oauth2.googleapis.com/token";
/// Older audiences Google still accepts.
pub const LEGACY_TOKEN_AUDIENCES: [&str; 2] = [
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
];
/// The JWT-bearer grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
