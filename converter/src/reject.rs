//! Rejected lines: why a line was not converted, and the NDJSON error-record format they are
//! written in (`--errors PATH`, and the pipeline's error objects).
//!
//! One record per rejected line:
//!
//! ```json
//! {"source":"in.ndjson","line":7,"offset":512,"kind":"type_mismatch",
//!  "reason":"field `user.age`: expected int64, found string \"abc\"","raw":"{\"user\":{\"age\":\"abc\"}}"}
//! ```
//!
//! * `line` is 1-based; `offset` is the byte offset of the line's first byte in the
//!   (decompressed) source.
//! * `raw` is the line as read, without its newline. Bytes that are not UTF-8 are replaced by
//!   U+FFFD in `raw` and the exact bytes are given in `raw_base64`.
//! * A line longer than `--max-line-bytes` is never held in memory whole: `raw` holds its first
//!   [`RAW_PREFIX_BYTES`] bytes, `raw_truncated` is `true` and `line_bytes` gives its length.

use std::io::{self, Write};

use serde::Serialize;

/// How much of an over-long line is kept for the error record.
pub const RAW_PREFIX_BYTES: usize = 4096;

/// The reason of a [`RejectKind::LineTooLong`] line, worded once for the two places that find
/// such lines (the chunker, for lines too long to hold; the decoder, for lines inside a chunk).
/// It names the limit, not the option or flag that sets it: front ends name their own.
pub(crate) fn line_too_long(line_bytes: u64, limit: usize) -> String {
    format!("line is {line_bytes} bytes long, more than the limit of {limit} bytes per line")
}

/// What kind of problem made a line unconvertible. Its `as_str` is the `kind` of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is not valid JSON (includes a truncated last line).
    InvalidJson,
    /// The JSON nests deeper than the parser's limit.
    TooDeep,
    /// The line is valid JSON but not an object (an array or a scalar).
    NotAnObject,
    /// The line is longer than `--max-line-bytes`.
    LineTooLong,
    /// An object has a key the schema does not have (policy `--unknown-fields reject`).
    UnknownField,
    /// A value does not fit its column (policy `--type-mismatch reject`).
    TypeMismatch,
    /// An object has the same key twice.
    DuplicateKey,
    /// A whole input object is empty (pipeline only: recorded with line 0).
    EmptyObject,
    /// A key is longer than a column name may be (255 bytes, Glue/Athena's limit).
    NameTooLong,
    /// A whole input object version was deleted or overwritten before its manifest read it
    /// (pipeline only: recorded with line 0; the newer version, if any, is converted by its own
    /// manifest).
    Superseded,
}

impl RejectKind {
    /// The snake_case name used in error records and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::InvalidUtf8 => "invalid_utf8",
            RejectKind::InvalidJson => "invalid_json",
            RejectKind::TooDeep => "too_deep",
            RejectKind::NotAnObject => "not_an_object",
            RejectKind::LineTooLong => "line_too_long",
            RejectKind::UnknownField => "unknown_field",
            RejectKind::TypeMismatch => "type_mismatch",
            RejectKind::DuplicateKey => "duplicate_key",
            RejectKind::EmptyObject => "empty_object",
            RejectKind::NameTooLong => "name_too_long",
            RejectKind::Superseded => "superseded",
        }
    }
}

/// A line that was not converted, with everything needed to find and replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// Index of the source in the conversion's input list.
    pub source: usize,
    /// 1-based line number within the source.
    pub line: u64,
    /// Byte offset of the line within the decompressed source.
    pub offset: u64,
    /// Category of the problem.
    pub kind: RejectKind,
    /// Human-readable cause, naming the field where there is one.
    pub reason: String,
    /// The line's bytes (only the first [`RAW_PREFIX_BYTES`] when `raw_truncated`).
    pub raw: Vec<u8>,
    /// Whether `raw` is only a prefix of the line.
    pub raw_truncated: bool,
    /// Length of the whole line in bytes (without the newline).
    pub line_bytes: u64,
}

#[derive(Serialize)]
struct RecordDoc<'a> {
    source: &'a str,
    line: u64,
    offset: u64,
    kind: RejectKind,
    reason: &'a str,
    raw: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_bytes: Option<u64>,
}

impl RejectedLine {
    /// Writes this line's error record (one JSON object and a newline) to `out`.
    pub fn write_record(&self, source_name: &str, out: &mut impl Write) -> io::Result<()> {
        let lossy = String::from_utf8_lossy(&self.raw);
        let exact = matches!(lossy, std::borrow::Cow::Borrowed(_));
        let doc = RecordDoc {
            source: source_name,
            line: self.line,
            offset: self.offset,
            kind: self.kind,
            reason: &self.reason,
            raw: &lossy,
            raw_base64: (!exact).then(|| base64(&self.raw)),
            raw_truncated: self.raw_truncated,
            line_bytes: self.raw_truncated.then_some(self.line_bytes),
        };
        serde_json::to_writer(&mut *out, &doc).map_err(io::Error::from)?;
        out.write_all(b"\n")
    }
}

/// Standard base64 with padding; the error records are the only user and do not justify a
/// dependency.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(raw: &[u8], truncated: bool) -> RejectedLine {
        RejectedLine {
            source: 0,
            line: 3,
            offset: 40,
            kind: RejectKind::InvalidUtf8,
            reason: "bad".into(),
            raw: raw.to_vec(),
            raw_truncated: truncated,
            line_bytes: 99,
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn record_carries_exact_bytes_when_not_utf8() {
        let mut out = Vec::new();
        reject(b"{\"a\":\"\xff\"}", false)
            .write_record("in.ndjson", &mut out)
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["source"], "in.ndjson");
        assert_eq!(doc["line"], 3);
        assert_eq!(doc["offset"], 40);
        assert_eq!(doc["kind"], "invalid_utf8");
        assert_eq!(doc["raw"], "{\"a\":\"\u{fffd}\"}");
        assert_eq!(doc["raw_base64"], base64(b"{\"a\":\"\xff\"}"));
        assert!(doc.get("raw_truncated").is_none());
        assert!(out.ends_with(b"\n"));
    }

    #[test]
    fn truncated_record_says_so() {
        let mut out = Vec::new();
        reject(b"{\"a\":", true)
            .write_record("x", &mut out)
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["raw_truncated"], true);
        assert_eq!(doc["line_bytes"], 99);
        assert!(doc.get("raw_base64").is_none());
    }
}
