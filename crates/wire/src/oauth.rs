//! OAuth 2.0: service-account key files, client-secret files, token responses and errors.

use serde::{Deserialize, Serialize};

/// A service-account key file as Google issues it
/// (<https://cloud.google.com/iam/docs/keys-create-delete>).
///
/// `Debug` never prints the private key.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceAccountKey {
    #[serde(rename = "type")]
    pub key_type: String,
    #[serde(default)]
    pub project_id: String,
    #[serde(default)]
    pub private_key_id: String,
    pub private_key: String,
    pub client_email: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub auth_uri: String,
    pub token_uri: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_provider_x509_cert_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_x509_cert_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub universe_domain: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("client_id", &self.client_id)
            .field("private_key_id", &self.private_key_id)
            .field("private_key", &"<redacted>")
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

/// A "Desktop app" OAuth client file: `{"installed": {...}}`
/// (<https://developers.google.com/identity/protocols/oauth2/native-app>).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientSecretFile {
    #[serde(alias = "web")]
    pub installed: InstalledClient,
}

/// `Debug` never prints the client secret.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct InstalledClient {
    pub client_id: String,
    #[serde(default)]
    pub project_id: String,
    pub auth_uri: String,
    pub token_uri: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_provider_x509_cert_url: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Not part of Google's file: where to revoke tokens. Defaults to Google's endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_uri: Option<String>,
}

impl std::fmt::Debug for InstalledClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstalledClient")
            .field("client_id", &self.client_id)
            .field("auth_uri", &self.auth_uri)
            .field("token_uri", &self.token_uri)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for ClientSecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.installed.fmt(f)
    }
}

/// Successful token response.
///
/// `Debug` never prints the tokens.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenResponse {
    pub access_token: String,
    /// Google sends a number; google-auth also accepts a string, so we read both.
    #[serde(
        default,
        with = "crate::int64::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_in: Option<i64>,
    #[serde(default = "bearer")]
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

fn bearer() -> String {
    "Bearer".into()
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Token endpoint error: `{"error": "...", "error_description": "..."}`
/// (<https://developers.google.com/identity/protocols/oauth2/service-account>).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl TokenError {
    pub fn new(error: &str, description: &str) -> Self {
        TokenError {
            error: error.into(),
            error_description: Some(description.into()),
        }
    }
}

/// The exact `error_description` strings Google uses: the JWT-grant ones are in the error
/// table of <https://developers.google.com/identity/protocols/oauth2/service-account>; the
/// refresh-token and authorization-code ones are what Google's token endpoint answers.
pub mod messages {
    pub const UNAUTHORIZED_CLIENT: &str = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.";
    pub const INVALID_EMAIL: &str = "Invalid email or User ID";
    pub const BAD_TIME: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your 'iat' and 'exp' values and use a clock with skew to account for clock differences between systems.";
    pub const BAD_SIGNATURE: &str = "Invalid JWT Signature.";
    pub const INVALID_SCOPE: &str = "Invalid OAuth scope or ID token audience provided.";
    pub const EXPIRED_OR_REVOKED: &str = "Token has been expired or revoked.";
    pub const BAD_CODE: &str = "Malformed auth code.";
}

/// Claims of the JWT-bearer assertion a service account signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JwtBearerClaims {
    pub iss: String,
    #[serde(default)]
    pub scope: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let key = ServiceAccountKey {
            key_type: "service_account".into(),
            project_id: "p".into(),
            private_key_id: "abc".into(),
            private_key: "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n"
                .into(),
            client_email: "sa@p.iam.gserviceaccount.com".into(),
            client_id: "123".into(),
            auth_uri: String::new(),
            token_uri: "http://127.0.0.1/token".into(),
            auth_provider_x509_cert_url: String::new(),
            client_x509_cert_url: String::new(),
            universe_domain: String::new(),
        };
        assert!(!format!("{key:?}").contains("SECRETSECRET"));
        let token: TokenResponse = serde_json::from_str(
            r#"{"access_token":"ya29.SECRET","expires_in":"3599","refresh_token":"1//SECRET2"}"#,
        )
        .unwrap();
        assert_eq!(token.expires_in, Some(3599));
        assert_eq!(token.token_type, "Bearer");
        let dbg = format!("{token:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
    }
}
