//! Domain types: timestamps, date prefixes, manifest ids, object references, and a conversion's
//! result. The tracking table's items and states are the ledger's (`crate::ledger`).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Seconds since the epoch (for DynamoDB TTL).
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This time plus `seconds`.
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0 + seconds * 1000)
    }

    /// Whole seconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn seconds_since(self, earlier: Timestamp) -> i64 {
        (self.0 - earlier.0).div_euclid(1000)
    }

    /// Fixed-width RFC 3339 with milliseconds (`2026-11-25T10:00:00.123Z`): sorts as text in
    /// time order, which the pending index relies on.
    pub fn to_rfc3339(self) -> String {
        let datetime = self.datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            datetime.year(),
            u8::from(datetime.month()),
            datetime.day(),
            datetime.hour(),
            datetime.minute(),
            datetime.second(),
            datetime.millisecond()
        )
    }

    /// Parses an RFC 3339 timestamp (any offset, any fraction).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let datetime = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        Some(Timestamp(
            (datetime.unix_timestamp_nanos() / 1_000_000) as i64,
        ))
    }

    /// The UTC date of this time.
    pub fn date_prefix(self) -> DatePrefix {
        let d = self.datetime().date();
        DatePrefix(format!(
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        ))
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A calendar date `YYYY-MM-DD`: the partition key of the tracking table and the `dt=`
/// partition of the output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatePrefix(String);

impl DatePrefix {
    /// Validates `YYYY-MM-DD` as a real calendar date.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = &text[range];
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
        time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
            .ok()?;
        Some(DatePrefix(text.to_string()))
    }

    /// The date as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DatePrefix {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        DatePrefix::parse(&value).ok_or_else(|| format!("`{value}` is not a YYYY-MM-DD date"))
    }
}

impl From<DatePrefix> for String {
    fn from(value: DatePrefix) -> Self {
        value.0
    }
}

impl fmt::Display for DatePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 64 random bits from the OS, for ids and keys. The OS source only fails on exotic platforms;
/// the times in ids and keys then still separate them, so a failure yields zeros, not a panic.
pub fn os_random() -> u64 {
    let mut bits = [0u8; 8];
    let _ = getrandom::fill(&mut bits);
    u64::from_be_bytes(bits)
}

/// Identifies a manifest; also its Step Functions execution name, so a repeated start can
/// never create a second execution. At most 80 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ManifestId(String);

impl ManifestId {
    /// A new id: the date, the creation time and 64 random bits, e.g.
    /// `2026-11-25_20261125T101502123Z_9f1c2a7b3e4d5f60`. Time-ordered for people, random for
    /// uniqueness across concurrent builders.
    pub fn generate(prefix: &DatePrefix, now: Timestamp) -> Self {
        Self::with_random(prefix, now, os_random())
    }

    /// An id with the given random bits (a simulation draws them from its seed).
    pub fn with_random(prefix: &DatePrefix, now: Timestamp, random: u64) -> Self {
        let stamp: String = now
            .to_rfc3339()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        ManifestId(format!("{prefix}_{stamp}_{random:016x}"))
    }

    /// Validates an existing id.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = !text.is_empty()
            && text.len() <= 80
            && text
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        valid.then(|| ManifestId(text.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ManifestId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        ManifestId::parse(&value).ok_or_else(|| format!("`{value}` is not a manifest id"))
    }
}

impl From<ManifestId> for String {
    fn from(value: ManifestId) -> Self {
        value.0
    }
}

impl fmt::Display for ManifestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An S3 object as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Bucket name only, without `s3://` or a trailing `/`.
    pub bucket: String,
    /// Object key (decoded).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag as S3 reported it (without quotes), empty when unknown.
    pub etag: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// The counts and outputs of a completed conversion, kept on the manifest item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionResult {
    /// Lines read (`rows_written + rows_rejected + blank_lines`).
    pub lines_read: u64,
    /// Rows written to Parquet.
    pub rows_written: u64,
    /// Lines written to the error output.
    pub rows_rejected: u64,
    /// Empty or whitespace-only lines.
    pub blank_lines: u64,
    /// Raw input bytes read.
    pub bytes_in: u64,
    /// Parquet bytes written.
    pub bytes_out: u64,
    /// Keys of the Parquet parts.
    pub output_keys: Vec<String>,
    /// Key of the error output, if any line was rejected.
    pub error_key: Option<String>,
    /// The schema used (in the converter's schema file format).
    pub schema: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_fixed_width_and_parse_back() {
        let t = Timestamp(1_764_065_102_123);
        assert_eq!(t.to_rfc3339(), "2025-11-25T10:05:02.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2025-11-25T11:05:02.123+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(t.date_prefix().as_str(), "2025-11-25");
        assert!(Timestamp(5).to_rfc3339() < Timestamp(1_000).to_rfc3339());
    }

    #[test]
    fn date_prefixes_are_real_dates() {
        assert!(DatePrefix::parse("2024-02-29").is_some());
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "20240101",
            "2024-01-0x",
            "",
        ] {
            assert!(DatePrefix::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn manifest_ids_are_valid_execution_names_and_unique() {
        let prefix = DatePrefix::parse("2026-11-25").unwrap();
        let a = ManifestId::generate(&prefix, Timestamp(1_764_065_102_123));
        let b = ManifestId::generate(&prefix, Timestamp(1_764_065_102_123));
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("2026-11-25_20251125T100502123Z_"));
        assert_eq!(ManifestId::parse(a.as_str()), Some(a.clone()));
        assert!(a.as_str().len() <= 80);
        assert!(ManifestId::parse("has space").is_none());
    }
}
