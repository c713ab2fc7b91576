//! Record validation: is a line one JSON object, with no duplicate keys at any depth (keys that
//! differ only in case are duplicates: they would be one column), no key
//! longer than a column name may be, and no deeper than Parquet readers open?
//!
//! Both inference and decoding need the same answer, with the same wording, for a line that
//! may not become a row: inference must not let an invalid line widen the schema, and the
//! decoder asks for the real reason when a line that did not fit its schema may also be
//! broken further on. It lives apart from both so that neither imports it from the other.

use std::collections::HashMap;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::reject::RejectKind;
use crate::schema::{fold_case, MAX_NAME_BYTES, MAX_PARQUET_DEPTH};

/// Why a line is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRecord {
    /// One of `InvalidJson`, `TooDeep`, `NotAnObject`, `DuplicateKey` or `NameTooLong`: the kinds a line
    /// can earn on its own, without a schema.
    pub kind: RejectKind,
    /// Explanation, naming the field where there is one.
    pub reason: String,
}

/// Checks that `text` is one JSON object with no duplicate keys at any depth.
pub fn validate_record(text: &str) -> Result<(), InvalidRecord> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut issue = None;
    let result = ValidateSeed {
        top_level: true,
        depth: 0,
        issue: &mut issue,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(issue.unwrap_or_else(|| json_error(&e, text))),
    }
}

/// Describes a serde_json syntax error without its misleading "line 1" (each record is one
/// line; the column is what locates the problem).
pub(crate) fn json_error(error: &serde_json::Error, text: &str) -> InvalidRecord {
    let full = error.to_string();
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(message, _)| message);
    if message.contains("recursion limit exceeded") {
        return InvalidRecord {
            kind: RejectKind::TooDeep,
            reason: "JSON nests deeper than 128 levels".to_string(),
        };
    }
    let mut reason = format!("invalid JSON at column {}: {message}", error.column());
    if error.is_eof() && !text.trim_end().is_empty() {
        reason.push_str(" (the record is cut short)");
    }
    InvalidRecord {
        kind: RejectKind::InvalidJson,
        reason,
    }
}

/// Full validation of a record: syntax, object at the top, no duplicate keys anywhere.
struct ValidateSeed<'a> {
    top_level: bool,
    /// Parquet schema depth of the values inside the open containers: an object adds one
    /// level (its group), an array two (the list group and its repeated group).
    depth: u32,
    issue: &'a mut Option<InvalidRecord>,
}

impl ValidateSeed<'_> {
    fn child(&mut self) -> ValidateSeed<'_> {
        ValidateSeed {
            top_level: false,
            depth: self.depth,
            issue: &mut *self.issue,
        }
    }

    /// Enters a container of `levels` Parquet levels; refuses it beyond what readers open.
    fn enter<E: de::Error>(&mut self, levels: u32) -> Result<(), E> {
        self.depth += levels;
        if self.depth > MAX_PARQUET_DEPTH {
            *self.issue = Some(InvalidRecord {
                kind: RejectKind::TooDeep,
                reason: format!(
                    "the record nests deeper than Parquet readers open: its columns would be {} levels deep, more than {MAX_PARQUET_DEPTH} (an object counts one level, an array two)",
                    self.depth
                ),
            });
            return Err(E::custom("too deep"));
        }
        Ok(())
    }

    fn not_an_object<E: de::Error>(self, found: &str) -> Result<(), E> {
        if self.top_level {
            *self.issue = Some(InvalidRecord {
                kind: RejectKind::NotAnObject,
                reason: format!("a record must be a JSON object, found {found}"),
            });
            return Err(E::custom("not an object"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for ValidateSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValidateSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_an_object("null")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_an_object("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_an_object("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_an_object("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_an_object("a number")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_an_object("a string")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.top_level {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return self.not_an_object("an array");
        }
        self.enter(2)?;
        while seq.next_element_seed(self.child())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.enter(1)?;
        // Keys by their case-folded name, to the spelling seen first.
        let mut keys: HashMap<String, std::borrow::Cow<'de, str>> = HashMap::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key.len() > MAX_NAME_BYTES {
                *self.issue = Some(InvalidRecord {
                    kind: RejectKind::NameTooLong,
                    reason: format!(
                        "key `{}…` is {} bytes long, more than the {MAX_NAME_BYTES} bytes a column name may have",
                        key.chars().take(40).collect::<String>(),
                        key.len()
                    ),
                });
                return Err(de::Error::custom("name too long"));
            }
            let folded = fold_case(&key).into_owned();
            if let Some(first) = keys.get(&folded) {
                let reason = if *first == key {
                    format!("key `{key}` appears twice in one object")
                } else {
                    format!(
                        "keys `{first}` and `{key}` differ only in case and would be one column (names are compared case-insensitively, as Athena, Glue, Hive and Spark do)"
                    )
                };
                *self.issue = Some(InvalidRecord {
                    kind: RejectKind::DuplicateKey,
                    reason,
                });
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(self.child())?;
            keys.insert(folded, key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let check = |t: &str| validate_record(t).unwrap_err();
        assert_eq!(check("[1]").kind, RejectKind::NotAnObject);
        assert!(check("42").reason.contains("found a number"));
        assert_eq!(
            check(r#"{"a":{"b":1,"b":2}}"#).kind,
            RejectKind::DuplicateKey
        );
        let truncated = check(r#"{"a":{"b":1"#);
        assert_eq!(truncated.kind, RejectKind::InvalidJson);
        assert!(
            truncated.reason.contains("cut short"),
            "{}",
            truncated.reason
        );
        assert!(!truncated.reason.contains("line 1"));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(check(&deep).kind, RejectKind::TooDeep);
        assert!(validate_record(r#"{"a":[{"b":1},{"b":2}]}"#).is_ok());
    }

    #[test]
    fn records_deeper_than_parquet_readers_open_are_too_deep() {
        // pyarrow opens 99 nested objects or 49 nested lists, not 100 or 50.
        let objects = |d: usize| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d));
        let lists = |d: usize| format!("{{\"a\":{}1{}}}", "[".repeat(d), "]".repeat(d));
        assert!(validate_record(&objects(99)).is_ok());
        assert!(validate_record(&lists(49)).is_ok());
        for deep in [
            objects(100),
            lists(50),
            format!("{{\"a\":{}{}}}", "[".repeat(50), "]".repeat(50)),
        ] {
            let issue = validate_record(&deep).unwrap_err();
            assert_eq!(issue.kind, RejectKind::TooDeep);
            assert!(issue.reason.contains("99"), "{}", issue.reason);
        }
    }

    #[test]
    fn key_names_longer_than_255_bytes_are_refused() {
        let ok = format!("{{\"a\":{{\"{}\":1}}}}", "k".repeat(255));
        assert!(validate_record(&ok).is_ok());
        let long = format!("{{\"a\":{{\"{}\":1}}}}", "é".repeat(128));
        let issue = validate_record(&long).unwrap_err();
        assert_eq!(issue.kind, RejectKind::NameTooLong);
        assert!(
            issue.reason.contains("256 bytes") && issue.reason.contains("255"),
            "{}",
            issue.reason
        );
    }
}
