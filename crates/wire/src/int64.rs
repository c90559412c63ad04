//! Google's int64 fields: strings on the wire, sometimes numbers in examples.

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    String(String),
    Number(i64),
}

/// `#[serde(with = "orgsync_wire::int64::option")]` for `Option<i64>` fields.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<StringOrNumber>::deserialize(d)? {
            None => Ok(None),
            Some(StringOrNumber::Number(n)) => Ok(Some(n)),
            Some(StringOrNumber::String(s)) if s.is_empty() => Ok(None),
            Some(StringOrNumber::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("expected an int64, got {s:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(
            with = "super::option",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        v: Option<i64>,
    }

    #[test]
    fn reads_strings_and_numbers_writes_strings() {
        let a: T = serde_json::from_str(r#"{"v":"1384823632000"}"#).unwrap();
        let b: T = serde_json::from_str(r#"{"v":1384823632000}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"v":"1384823632000"}"#
        );
        let none: T = serde_json::from_str("{}").unwrap();
        assert_eq!(none.v, None);
        assert!(serde_json::from_str::<T>(r#"{"v":"soon"}"#).is_err());
    }
}
