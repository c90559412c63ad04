//! Query-string parameters, as Google clients send them: repeated keys
//! (`resourceNames=a&resourceNames=b`), percent-encoding, and standard parameters
//! (`alt`, `prettyPrint`, `quotaUser`, `key`, `$.xgafv`) that are accepted and ignored;
//! `fields` is applied to the answer by [`crate::partial`]. Bad values answer 400 in the
//! API's envelope.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::{Api, ApiError};

#[derive(Debug, Clone, Default)]
pub struct Params {
    pub api: Option<Api>,
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(api: Api, query: Option<&str>) -> Self {
        let pairs = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Params {
            api: Some(api),
            pairs,
        }
    }

    fn api(&self) -> Api {
        self.api.unwrap_or(Api::OAuth)
    }

    /// The last value given for `name` (Google takes the last of repeated scalars).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Every value for a repeated parameter, also splitting comma lists.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get_nonempty(name)
            .ok_or_else(|| ApiError::required(self.api(), name).with_location("parameter", name))
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn int_in(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        match self.get_nonempty(name) {
            None => Ok(default),
            Some(v) => {
                let n: i64 = v.parse().map_err(|_| {
                    ApiError::bad_request(
                        self.api(),
                        format!("Invalid value '{v}'. Values must match the following regular expression: '-?\\d+'"),
                    )
                    .with_location("parameter", name)
                })?;
                if n < min || n > max {
                    return Err(ApiError::bad_request(
                        self.api(),
                        format!("Invalid value '{v}' for {name}: must be between {min} and {max}."),
                    )
                    .with_location("parameter", name));
                }
                Ok(n)
            }
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get_nonempty(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::bad_request(
                self.api(),
                format!("Invalid value '{v}'. Values must be 'true' or 'false'."),
            )
            .with_location("parameter", name)),
        }
    }

    /// One of `allowed` (case-insensitive), returned as given in `allowed`.
    pub fn one_of(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        match self.get_nonempty(name) {
            None => Ok(None),
            Some(v) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(v))
                .copied()
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(self.api(), format!("Invalid value for {name}: {v}"))
                        .with_location("parameter", name)
                }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(
            Api::from_path(parts.uri.path()),
            parts.uri.query(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_encoded_parameters() {
        let p = Params::parse(
            Api::People,
            Some(
                "resourceNames=people%2Fc1&resourceNames=people%2Fc2&personFields=names%2CclientData&alt=json",
            ),
        );
        assert_eq!(p.all("resourceNames"), ["people/c1", "people/c2"]);
        assert_eq!(p.all("personFields"), ["names", "clientData"]);
        assert_eq!(p.get("alt"), Some("json"));
    }

    #[test]
    fn bad_integers_and_ranges_are_400() {
        let p = Params::parse(Api::Directory, Some("maxResults=abc&n=900"));
        assert_eq!(
            p.int_in("maxResults", 100, 1, 500)
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(p.int_in("n", 100, 1, 500).unwrap_err().status.as_u16(), 400);
        assert_eq!(p.int_in("absent", 100, 1, 500).unwrap(), 100);
        assert!(p.required("customer").is_err());
    }
}
