//! Lenient readers for fields that a discovery document types as `any`.
//!
//! Directory's `User.phones`, `emails`, `organizations`, `externalIds`, ... are arrays
//! in practice, but discovery promises nothing. A single odd item must not make a whole
//! `users.list` page unreadable, so these readers keep the items that parse and drop the
//! rest (and treat a non-array as absent).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// `#[serde(deserialize_with = "orgsync_wire::lenient::vec", default)]`
pub fn vec<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match value {
        Some(serde_json::Value::Array(items)) => Some(
            items
                .into_iter()
                .filter_map(|item| serde_json::from_value(item).ok())
                .collect(),
        ),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Item {
        value: String,
    }

    #[derive(Deserialize, Debug)]
    struct Holder {
        #[serde(deserialize_with = "super::vec", default)]
        items: Option<Vec<Item>>,
    }

    #[test]
    fn keeps_good_items_and_drops_odd_ones() {
        let h: Holder =
            serde_json::from_str(r#"{"items":[{"value":"a"},{"value":3},"x",{"value":"b"}]}"#)
                .unwrap();
        let values: Vec<_> = h.items.unwrap().into_iter().map(|i| i.value).collect();
        assert_eq!(values, ["a", "b"]);
    }

    #[test]
    fn non_array_is_absent() {
        let h: Holder = serde_json::from_str(r#"{"items":{"value":"a"}}"#).unwrap();
        assert!(h.items.is_none());
        let h: Holder = serde_json::from_str(r#"{}"#).unwrap();
        assert!(h.items.is_none());
    }
}
