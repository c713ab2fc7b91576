//! S3 event notifications as they arrive in SQS message bodies: direct, wrapped in an SNS
//! notification, or the `s3:TestEvent` S3 sends when notifications are configured.
//!
//! Parsing is lenient on purpose: AWS and emulators differ in which fields they send (moto
//! omits `userIdentity`, `requestParameters`, `responseElements` and `sequencer`), so only the
//! fields this pipeline needs are read, and each record is judged on its own.

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::types::{DatePrefix, ObjectRef, Timestamp};

/// What one message body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The test event S3 sends when notifications are set up: acknowledge and ignore.
    TestEvent,
    /// S3 event records (each parsed on its own).
    Records(Vec<Result<S3Record, RecordError>>),
}

/// One S3 event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Record {
    /// E.g. `ObjectCreated:Put` (an `s3:` prefix is removed).
    pub event_name: String,
    /// When S3 says the event happened.
    pub event_time: Option<Timestamp>,
    /// The object, with its key decoded.
    pub object: ObjectRef,
    /// `s3.object.versionId`: present when the bucket is versioned.
    pub version_id: Option<String>,
    /// `s3.object.sequencer`: orders the events of one key; S3 always sends it, some emulators
    /// do not.
    pub sequencer: Option<String>,
}

impl S3Record {
    /// Which version of the object the event is about: its version id in a versioned bucket,
    /// else the event's sequencer, else (only from senders that give neither) its ETag, under
    /// which the same content uploaded twice counts once.
    pub fn version(&self) -> crate::ledger::Version {
        crate::ledger::Version::choose(
            self.version_id.as_deref(),
            self.sequencer.as_deref(),
            &self.object.etag,
        )
    }

    /// Whether this is an `ObjectCreated:*` event.
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
    }
}

/// Why a message body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON.
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but neither an S3 event, an SNS notification of one, nor a test event.
    #[error("message body is not an S3 event notification (no `Records`, no SNS `Message`, no `s3:TestEvent`)")]
    UnknownShape,
}

/// Why one record of an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A field the pipeline needs is absent or of the wrong type.
    #[error("event record lacks `{0}`")]
    Missing(&'static str),
    /// The object key does not decode to UTF-8.
    #[error("object key is not valid percent-encoded UTF-8")]
    BadKey,
}

/// Parses one SQS message body.
pub fn parse_body(body: &str) -> Result<Body, BodyError> {
    let value: Value = serde_json::from_str(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    parse_value(&value, true)
}

fn parse_value(value: &Value, allow_sns: bool) -> Result<Body, BodyError> {
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Body::TestEvent);
    }
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        return Ok(Body::Records(records.iter().map(parse_record).collect()));
    }
    if allow_sns && value.get("Type").and_then(Value::as_str) == Some("Notification") {
        if let Some(message) = value.get("Message").and_then(Value::as_str) {
            let inner: Value = serde_json::from_str(message)
                .map_err(|e| BodyError::NotJson(format!("SNS Message: {e}")))?;
            return parse_value(&inner, false);
        }
    }
    Err(BodyError::UnknownShape)
}

fn parse_record(record: &Value) -> Result<S3Record, RecordError> {
    let event_name = record
        .get("eventName")
        .and_then(Value::as_str)
        .ok_or(RecordError::Missing("eventName"))?;
    let event_name = event_name
        .strip_prefix("s3:")
        .unwrap_or(event_name)
        .to_string();
    let s3 = record.get("s3").ok_or(RecordError::Missing("s3"))?;
    let bucket = s3
        .pointer("/bucket/name")
        .and_then(Value::as_str)
        .ok_or(RecordError::Missing("s3.bucket.name"))?;
    let object = s3.get("object").ok_or(RecordError::Missing("s3.object"))?;
    let raw_key = object
        .get("key")
        .and_then(Value::as_str)
        .ok_or(RecordError::Missing("s3.object.key"))?;
    // Sizes arrive as numbers from S3 and occasionally as strings from other senders.
    let size = match object.get("size") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        None => Some(0),
        _ => None,
    }
    .ok_or(RecordError::Missing("s3.object.size"))?;
    let etag = object
        .get("eTag")
        .or_else(|| object.get("etag"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    Ok(S3Record {
        event_name,
        event_time: record
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(Timestamp::parse_rfc3339),
        object: ObjectRef {
            bucket: bucket.to_string(),
            key: decode_key(raw_key).ok_or(RecordError::BadKey)?,
            size,
            etag,
        },
        version_id: text_field(object, "versionId"),
        sequencer: text_field(object, "sequencer"),
    })
}

/// A non-empty string field (an absent or empty one is `None`).
fn text_field(object: &Value, name: &str) -> Option<String> {
    object
        .get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// Decodes an S3 event key: form-URL-encoded, so `+` is a space, then percent-decoding.
pub fn decode_key(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// A user-supplied way to find the date in an object key: a regular expression with either a
/// `date` group (`YYYY-MM-DD`) or `year`, `month` and `day` groups.
#[derive(Debug, Clone)]
pub struct DatePattern {
    regex: regex::Regex,
}

impl DatePattern {
    /// Compiles and checks the pattern.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = regex::Regex::new(pattern).map_err(|e| e.to_string())?;
        let names: Vec<&str> = regex.capture_names().flatten().collect();
        let has = |n: &str| names.contains(&n);
        let complete = has("date") || (has("year") && has("month") && has("day"));
        if !complete {
            return Err("needs a `date` group, or `year`, `month` and `day` groups".to_string());
        }
        Ok(DatePattern { regex })
    }

    fn find(&self, key: &str) -> Option<DatePrefix> {
        let captures = self.regex.captures(key)?;
        if let Some(date) = captures.name("date") {
            return DatePrefix::parse(date.as_str());
        }
        let part = |n: &str| captures.name(n).map(|m| m.as_str().to_string());
        DatePrefix::parse(&format!(
            "{}-{:0>2}-{:0>2}",
            part("year")?,
            part("month")?,
            part("day")?
        ))
    }
}

/// The date an object belongs to: from a configured pattern, else from the first path
/// segment of the key that is `YYYY-MM-DD` or `dt=YYYY-MM-DD`, else the event's UTC date.
pub fn date_prefix_for(
    key: &str,
    event_time: Timestamp,
    pattern: Option<&DatePattern>,
) -> DatePrefix {
    if let Some(date) = pattern.and_then(|p| p.find(key)) {
        return date;
    }
    let mut segments = key.split('/');
    // The last segment is the file name, not a folder.
    segments.next_back();
    for segment in segments {
        let candidate = segment.strip_prefix("dt=").unwrap_or(segment);
        if let Some(date) = DatePrefix::parse(candidate) {
            return date;
        }
    }
    event_time.date_prefix()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape AWS sends (trimmed of fields we ignore, but with the ones moto lacks).
    const AWS_EVENT: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1",
        "eventTime":"2026-11-25T10:00:00.123Z","eventName":"ObjectCreated:Put",
        "userIdentity":{"principalId":"AWS:X"},"requestParameters":{"sourceIPAddress":"1.2.3.4"},
        "responseElements":{"x-amz-request-id":"R"},
        "s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"in","arn":"arn:aws:s3:::in"},
        "object":{"key":"2026-11-24/my+file%C3%BC%2B1.ndjson.gz","size":1234,"eTag":"\"abc\"","sequencer":"00"}}}]}"#;

    use crate::ledger::Version;

    #[test]
    fn parses_a_real_shaped_event_and_decodes_keys() {
        let Body::Records(records) = parse_body(AWS_EVENT).unwrap() else {
            panic!("records")
        };
        let record = records[0].clone().unwrap();
        assert!(record.is_object_created());
        assert_eq!(record.object.bucket, "in");
        assert_eq!(record.object.key, "2026-11-24/my fileü+1.ndjson.gz");
        assert_eq!(record.object.size, 1234);
        assert_eq!(record.object.etag, "abc");
        assert_eq!(
            record.event_time,
            Timestamp::parse_rfc3339("2026-11-25T10:00:00.123Z")
        );
        assert_eq!(record.version(), Version::Sequencer("00".into()));
    }

    #[test]
    fn the_version_is_the_version_id_else_the_sequencer_else_the_etag() {
        let versioned = AWS_EVENT.replace(
            r#""sequencer":"00""#,
            r#""sequencer":"00","versionId":"3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY""#,
        );
        let unsequenced = AWS_EVENT.replace(r#","sequencer":"00""#, "");
        let version = |body: &str| {
            let Body::Records(records) = parse_body(body).unwrap() else {
                panic!("records")
            };
            records[0].clone().unwrap().version()
        };
        assert_eq!(
            version(&versioned),
            Version::Id("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into())
        );
        assert_eq!(version(&unsequenced), Version::Etag("abc".into()));
    }

    #[test]
    fn parses_the_emulator_shape_with_encoded_slashes() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2026-11-25T10:00:00.000Z","eventName":"ObjectCreated:Put",
            "s3":{"s3SchemaVersion":"1.0","configurationId":"x","bucket":{"name":"b","arn":"arn:aws:s3:::b"},
            "object":{"key":"dt%3D2026-11-25%2Fa%20b.json","size":5,"eTag":"e"}}}]}"#;
        let Body::Records(records) = parse_body(body).unwrap() else {
            panic!("records")
        };
        assert_eq!(
            records[0].as_ref().unwrap().object.key,
            "dt=2026-11-25/a b.json"
        );
    }

    #[test]
    fn unwraps_sns_and_recognises_test_events() {
        let sns =
            serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": AWS_EVENT})
                .to_string();
        assert!(matches!(parse_body(&sns).unwrap(), Body::Records(r) if r.len() == 1));
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-25T10:00:00Z","Bucket":"in"}"#;
        assert_eq!(parse_body(test).unwrap(), Body::TestEvent);
        let sns_test = serde_json::json!({"Type": "Notification", "Message": test}).to_string();
        assert_eq!(parse_body(&sns_test).unwrap(), Body::TestEvent);
    }

    #[test]
    fn malformed_bodies_and_records_are_errors_not_panics() {
        assert!(matches!(parse_body("not json"), Err(BodyError::NotJson(_))));
        assert_eq!(parse_body(r#"{"hello":1}"#), Err(BodyError::UnknownShape));
        assert_eq!(parse_body(r#"[1,2]"#), Err(BodyError::UnknownShape));
        let nested_sns = serde_json::json!({"Type": "Notification", "Message": serde_json::json!({"Type": "Notification", "Message": AWS_EVENT}).to_string()}).to_string();
        assert_eq!(parse_body(&nested_sns), Err(BodyError::UnknownShape));
        let Body::Records(records) = parse_body(r#"{"Records":[{"eventName":"ObjectCreated:Put"},{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%FF"}}}]}"#).unwrap() else {
            panic!("records")
        };
        assert_eq!(records[0], Err(RecordError::Missing("s3")));
        assert_eq!(records[1], Err(RecordError::BadKey));
    }

    #[test]
    fn non_created_events_are_recognised() {
        let body = AWS_EVENT.replace("ObjectCreated:Put", "s3:ObjectRemoved:Delete");
        let Body::Records(records) = parse_body(&body).unwrap() else {
            panic!("records")
        };
        let record = records[0].as_ref().unwrap();
        assert_eq!(record.event_name, "ObjectRemoved:Delete");
        assert!(!record.is_object_created());
    }

    #[test]
    fn date_prefixes_come_from_the_key_then_the_event_time() {
        let at = Timestamp::parse_rfc3339("2026-11-25T23:59:59Z").unwrap();
        let date = |key: &str, pattern: Option<&DatePattern>| {
            date_prefix_for(key, at, pattern).to_string()
        };
        assert_eq!(date("2026-11-20/x.ndjson", None), "2026-11-20");
        assert_eq!(date("raw/dt=2026-11-21/part/x.ndjson", None), "2026-11-21");
        assert_eq!(
            date("raw/2026-13-01/x.ndjson", None),
            "2026-11-25",
            "not a date"
        );
        assert_eq!(
            date("2026-11-22.ndjson", None),
            "2026-11-25",
            "a file name is not a folder"
        );
        assert_eq!(date("x.ndjson", None), "2026-11-25");
        let pattern = DatePattern::new(
            r"year=(?P<year>\d{4})/month=(?P<month>\d{1,2})/day=(?P<day>\d{1,2})/",
        )
        .unwrap();
        assert_eq!(
            date("logs/year=2026/month=3/day=7/x.json", Some(&pattern)),
            "2026-03-07"
        );
        assert_eq!(
            date("2026-11-20/x.json", Some(&pattern)),
            "2026-11-20",
            "falls back to folders"
        );
        let pattern = DatePattern::new(r"^(?P<date>\d{4}-\d{2}-\d{2})T").unwrap();
        assert_eq!(
            date("2026-11-19T10-00.ndjson", Some(&pattern)),
            "2026-11-19"
        );
        assert!(DatePattern::new(r"(\d+)").is_err());
        assert!(DatePattern::new(r"(?P<date>").is_err());
    }
}
