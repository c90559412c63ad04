//! Credentials the emulator hands out: a service-account key (RSA-2048, PKCS#8 PEM, the
//! same JSON shape Google issues, <https://cloud.google.com/iam/docs/keys-create-delete>)
//! and a "Desktop app" OAuth client.
//!
//! Keys are generated with aws-lc-rs, the one crypto provider of the workspace (the
//! `rsa` crate has an unfixed advisory). The private key is kept so the key file can be
//! rewritten with the *current* base URL on every start, and the public key verifies the
//! JWT assertions the token endpoint receives. [`sign_rs256`] mints such assertions, so
//! tests anywhere in the workspace can drive the real JWT-bearer grant.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use orgsync_wire::oauth::{ClientSecretFile, InstalledClient, ServiceAccountKey};
use serde::{Deserialize, Serialize};

/// The project every generated credential belongs to.
pub const PROJECT_ID: &str = "orgsync-emulator";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("RSA key generation failed")]
    Generate,
    #[error("not a PKCS#8 RSA private key in PEM form")]
    BadPem,
    #[error("signing failed")]
    Sign,
}

/// A service account the emulator generated. `Debug` never prints the private key.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub client_email: String,
    /// Numeric, ~21 digits: what an admin enters for domain-wide delegation.
    pub client_id: String,
    /// 40 hex digits; the JWT `kid`.
    pub private_key_id: String,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key_pem: String,
    /// RFC 8017 `RSAPublicKey` DER, base64 (what aws-lc-rs verifies against).
    pub public_key_der_b64: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("client_id", &self.client_id)
            .field("private_key_id", &self.private_key_id)
            .field("private_key_pem", &"<redacted>")
            .finish()
    }
}

impl ServiceAccount {
    /// Generate a new RSA-2048 service account `{name}@orgsync-emulator.iam.gserviceaccount.com`.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| KeyError::Generate)?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(ServiceAccount {
            client_email: format!("{name}@{PROJECT_ID}.iam.gserviceaccount.com"),
            client_id: random_digits(21),
            private_key_id: hex::encode(random_bytes(20)),
            private_key_pem: pem_encode("PRIVATE KEY", pkcs8.as_ref()),
            public_key_der_b64: STANDARD.encode(public),
        })
    }

    /// The key file, with `token_uri`/`auth_uri` pointing at `base_url`.
    pub fn key_file(&self, base_url: &str) -> ServiceAccountKey {
        ServiceAccountKey {
            key_type: "service_account".into(),
            project_id: PROJECT_ID.into(),
            private_key_id: self.private_key_id.clone(),
            private_key: self.private_key_pem.clone(),
            client_email: self.client_email.clone(),
            client_id: self.client_id.clone(),
            auth_uri: format!("{base_url}/o/oauth2/auth"),
            token_uri: format!("{base_url}/token"),
            auth_provider_x509_cert_url: format!("{base_url}/oauth2/v1/certs"),
            client_x509_cert_url: format!(
                "{base_url}/robot/v1/metadata/x509/{}",
                self.client_email.replace('@', "%40")
            ),
            universe_domain: "googleapis.com".into(),
        }
    }

    /// Check an RS256 signature over `message` with this account's public key.
    pub fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(der) = STANDARD.decode(&self.public_key_der_b64) else {
            return false;
        };
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
            .verify(message, signature)
            .is_ok()
    }
}

/// A "Desktop app" OAuth client. `Debug` never prints the secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct DesktopClient {
    /// `{digits}-{random}.apps.googleusercontent.com`.
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for DesktopClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesktopClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

impl DesktopClient {
    pub fn generate() -> Self {
        DesktopClient {
            client_id: format!(
                "{}-{}.apps.googleusercontent.com",
                random_digits(12),
                random_lower_alnum(32)
            ),
            client_secret: format!("GOCSPX-{}", random_token(28)),
        }
    }

    /// The `client_secret.json` content, pointing at `base_url`.
    pub fn client_secret_file(&self, base_url: &str) -> ClientSecretFile {
        ClientSecretFile {
            installed: InstalledClient {
                client_id: self.client_id.clone(),
                project_id: PROJECT_ID.into(),
                auth_uri: format!("{base_url}/o/oauth2/auth"),
                token_uri: format!("{base_url}/token"),
                auth_provider_x509_cert_url: format!("{base_url}/oauth2/v1/certs"),
                client_secret: self.client_secret.clone(),
                redirect_uris: vec!["http://localhost".into()],
                revoke_uri: Some(format!("{base_url}/revoke")),
            },
        }
    }
}

/// Sign `claims` as a compact RS256 JWT with header `{"alg":"RS256","typ":"JWT","kid":kid}`,
/// as google-auth does. `private_key_pem` is the key file's `private_key` (PKCS#8).
pub fn sign_rs256(
    private_key_pem: &str,
    kid: Option<&str>,
    claims: &serde_json::Value,
) -> Result<String, KeyError> {
    let der = pem_decode(private_key_pem).ok_or(KeyError::BadPem)?;
    let pair = RsaKeyPair::from_pkcs8(&der).map_err(|_| KeyError::BadPem)?;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| KeyError::Sign)?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body).ok()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // SystemRandom only fails if the OS has no entropy source; fall back to rand then.
    if aws_lc_rs::rand::SystemRandom::new().fill(&mut buf).is_err() {
        rand::fill(&mut buf[..]);
    }
    buf
}

/// `n` decimal digits, the first non-zero.
pub(crate) fn random_digits(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut s = String::with_capacity(n);
    s.push(char::from(b'1' + rng.random_range(0..9u8)));
    for _ in 1..n {
        s.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    s
}

fn random_lower_alnum(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// A URL-safe random token of `n` characters (codes, refresh tokens, secrets).
pub(crate) fn random_token(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_verifies_and_has_googles_shape() {
        let sa = ServiceAccount::generate("orgsync").unwrap();
        assert_eq!(
            sa.client_email,
            "orgsync@orgsync-emulator.iam.gserviceaccount.com"
        );
        assert_eq!(sa.private_key_id.len(), 40);
        assert!(sa.private_key_id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(sa.client_id.len(), 21);
        assert!(sa.client_id.chars().all(|c| c.is_ascii_digit()));
        assert!(
            sa.private_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );

        let jwt = sign_rs256(
            &sa.private_key_pem,
            Some(&sa.private_key_id),
            &serde_json::json!({"iss": "x"}),
        )
        .unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert!(sa.verify_rs256(input.as_bytes(), &sig));
        assert!(!sa.verify_rs256(b"tampered", &sig));
        let other = ServiceAccount::generate("orgsync").unwrap();
        assert!(!other.verify_rs256(input.as_bytes(), &sig));

        let file = sa.key_file("http://127.0.0.1:9");
        assert_eq!(file.token_uri, "http://127.0.0.1:9/token");
        assert_eq!(file.auth_uri, "http://127.0.0.1:9/o/oauth2/auth");
        assert!(!format!("{sa:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn desktop_client_file_points_at_emulator() {
        let c = DesktopClient::generate();
        assert!(c.client_id.ends_with(".apps.googleusercontent.com"));
        let f = c.client_secret_file("http://127.0.0.1:9");
        assert_eq!(f.installed.redirect_uris, ["http://localhost"]);
        assert_eq!(
            f.installed.revoke_uri.as_deref(),
            Some("http://127.0.0.1:9/revoke")
        );
        assert!(!format!("{c:?}").contains(&c.client_secret));
    }
}
