//! The conversion's invariants, checked on arbitrary input with options derived from it: the
//! fuzz targets (`fuzz/`) and the replay of their corpus in `cargo test` (`tests/fuzz_corpus.rs`)
//! share this module.
//!
//! * nothing panics;
//! * the counts reconcile: `lines = rows + rejected + blank`, and the error output holds one
//!   record per rejected line, each with a kind and a reason;
//! * the Parquet output holds exactly `rows` rows, and (when no policy changes values) every
//!   accepted line reads back as `serde_json` reads it, by the widening rules.
#![allow(dead_code)]

use std::sync::Arc;

use converter::convert::{convert, ConvertError, ConvertOptions, Destination, NoProgress};
use converter::convert::{OnError, SchemaChoice};
use converter::decode::{TypeMismatchPolicy, UnknownFieldPolicy};
use converter::input::{MemorySource, Source};
use converter::parquet_options::{Codec, ParquetOptions};
use serde_json::Value;

use crate::common::{batch_rows, exact_json, expected_row, read_parquet_bytes, Timestamps};

/// Options for one run, drawn from the first bytes of the input (the rest is the input), so the
/// fuzzer explores option combinations as it explores data.
#[derive(Debug, Clone)]
pub struct Case<'a> {
    /// What the conversion is asked to do.
    pub options: ConvertOptions,
    /// The NDJSON bytes.
    pub input: &'a [u8],
}

impl<'a> Case<'a> {
    /// Splits `data` into options (first two bytes) and input.
    pub fn from_bytes(data: &'a [u8]) -> Case<'a> {
        let (a, b, input) = match data {
            [a, b, rest @ ..] => (*a, *b, rest),
            _ => (0, 0, data),
        };
        let options = ConvertOptions {
            schema: match a % 4 {
                0 | 1 => SchemaChoice::Infer,
                n => SchemaChoice::InferFirst(u64::from(n - 1) + u64::from(b % 3)),
            },
            on_error: match (a / 4) % 3 {
                0 => OnError::Quarantine,
                1 => OnError::Skip,
                _ => OnError::Fail,
            },
            unknown_fields: if (a / 12) % 2 == 0 {
                UnknownFieldPolicy::Reject
            } else {
                UnknownFieldPolicy::Drop
            },
            type_mismatch: if (a / 24) % 2 == 0 {
                TypeMismatchPolicy::Reject
            } else {
                TypeMismatchPolicy::Null
            },
            threads: 1 + usize::from(b % 3),
            // Small chunks put chunk boundaries inside lines, escapes and multi-byte characters.
            chunk_bytes: [64, 300, 4096, 1 << 20][usize::from((b / 3) % 4)],
            max_line_bytes: if (a / 48) % 2 == 0 { 1 << 20 } else { 200 },
            parquet: ParquetOptions {
                codec: [Codec::Snappy, Codec::None, Codec::Zstd(Some(1))]
                    [usize::from((b / 12) % 3)],
                row_group_rows: [1 << 20, 3, 50][usize::from((b / 36) % 3)],
                ..ParquetOptions::default()
            },
            max_file_bytes: ((b / 108) % 2 == 1).then_some(1),
            // Two keys make maps of small objects, and an overflow column of a record's rare
            // top-level keys, on inputs of a few lines.
            map_key_threshold: if (a / 96) % 2 == 0 { 1000 } else { 2 },
            empty_output_ok: true,
            ..ConvertOptions::default()
        };
        Case { options, input }
    }

    /// Whether every accepted value must read back unchanged (no policy rewrites values, and
    /// the input is plain text, whose lines this check can split itself).
    fn values_are_kept(&self) -> bool {
        self.options.unknown_fields == UnknownFieldPolicy::Reject
            && self.options.type_mismatch == TypeMismatchPolicy::Reject
            && converter::input::InputCompression::detect(self.input)
                == converter::input::InputCompression::None
    }
}

/// In-memory outputs; an error output only under quarantine, as the CLI gives one.
struct Memory {
    parts: usize,
    quarantine: bool,
}

impl Destination for Memory {
    type Parquet = Vec<u8>;
    type Rejects = Vec<u8>;

    fn parquet(&mut self, _part: usize) -> std::io::Result<Vec<u8>> {
        self.parts += 1;
        Ok(Vec::new())
    }

    fn rejects(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.quarantine.then(Vec::new))
    }
}

/// Runs `case` and checks every invariant; panics (with what broke) if one does not hold.
pub fn check(case: &Case<'_>) {
    let source: Arc<dyn Source> = Arc::new(MemorySource::new("fuzz", case.input.to_vec()));
    let mut destination = Memory {
        parts: 0,
        quarantine: case.options.on_error == OnError::Quarantine,
    };
    let converted = match convert(&[source], &case.options, &mut destination, &NoProgress) {
        Ok(converted) => converted,
        Err(error) => return check_error(case, &error),
    };
    let stats = converted.summary.stats;
    assert_eq!(
        stats.lines,
        stats.rows + stats.rejected + stats.blank,
        "counts do not reconcile: {stats:?}"
    );
    let rejects = converted.rejects.unwrap_or_default();
    let records: Vec<Value> = rejects
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("an error record is JSON"))
        .collect();
    match case.options.on_error {
        OnError::Quarantine => assert_eq!(
            records.len() as u64,
            stats.rejected,
            "one record per reject"
        ),
        OnError::Skip => assert!(records.is_empty(), "skip writes no error records"),
        OnError::Fail => assert_eq!(
            stats.rejected, 0,
            "fail converts only when nothing is rejected"
        ),
    }
    for record in &records {
        let reason = record["reason"].as_str().unwrap_or_default();
        assert!(
            !reason.trim().is_empty(),
            "a reject without a reason: {record}"
        );
        assert!(
            record["kind"].is_string(),
            "a reject without a kind: {record}"
        );
        assert!(
            record["line"].as_u64().is_some_and(|l| l >= 1),
            "no line number: {record}"
        );
    }
    let rows: Vec<Value> = converted
        .parts
        .into_iter()
        .flat_map(|part| batch_rows(&read_parquet_bytes(part), Timestamps::Native))
        .collect();
    assert_eq!(
        rows.len() as u64,
        stats.rows,
        "the Parquet output holds every row"
    );
    if case.values_are_kept() && case.options.on_error == OnError::Quarantine {
        let rejected: std::collections::BTreeSet<u64> =
            records.iter().filter_map(|r| r["line"].as_u64()).collect();
        let expected: Vec<Value> = accepted_lines(case.input, &rejected)
            .iter()
            .map(|line| {
                let value = exact_json(line).unwrap_or_else(|e| {
                    panic!("an accepted line serde_json refuses ({e}): {line:?}")
                });
                expected_row(&value, &converted.summary.schema, Timestamps::Native)
            })
            .collect();
        assert_eq!(rows.len(), expected.len(), "accepted lines and rows");
        for (i, (row, want)) in rows.iter().zip(&expected).enumerate() {
            assert!(
            same_value(row, want),
            "row {i} differs from serde_json's reading:\n  read back: {row}\n  expected:  {want}"
        );
        }
    }
}

/// The lines the conversion accepted: not blank, not rejected (1-based numbers).
fn accepted_lines<'a>(
    input: &'a [u8],
    rejected: &std::collections::BTreeSet<u64>,
) -> Vec<&'a [u8]> {
    // The chunker drops a UTF-8 byte order mark, the one change it makes to input bytes.
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut lines: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    if input.ends_with(b"\n") {
        lines.pop();
    }
    lines
        .into_iter()
        .enumerate()
        .filter(|(i, line)| {
            !rejected.contains(&(*i as u64 + 1)) && !line.iter().all(u8::is_ascii_whitespace)
        })
        .map(|(_, line)| line)
        .collect()
}

/// An error is an answer, not a crash: it must say something, and a bad line under `fail` must
/// name its line.
fn check_error(case: &Case<'_>, error: &ConvertError) {
    let text = error.to_string();
    assert!(
        !text.trim().is_empty(),
        "an error without a message: {error:?}"
    );
    if let ConvertError::BadLine { .. } = error {
        assert_eq!(
            case.options.on_error,
            OnError::Fail,
            "a bad line stopped {:?}",
            case.options.on_error
        );
    }
}

/// The decoder alone against inference and `serde_json`, on the schema inferred from the same
/// bytes: a line inference takes as a record is decoded as a row (and one it refuses is
/// rejected, with a reason); every row reads as `serde_json` reads its line; per chunk, the
/// counts reconcile. Small chunks put chunk boundaries everywhere.
pub fn check_decoder(data: &[u8]) {
    use converter::chunk::{Chunker, Piece};
    use converter::decode::{DecodeMode, RecordDecoder};
    use converter::infer::{Inference, LineInference};
    use converter::schema::TimestampUnit;

    let lines: Vec<&[u8]> = data
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(data)
        .split(|b| *b == b'\n')
        .collect();
    let mut inference = Inference::new(TimestampUnit::Microsecond);
    let valid: Vec<bool> = lines
        .iter()
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            !line.iter().all(u8::is_ascii_whitespace)
                && !matches!(inference.add_line(line), LineInference::Invalid)
        })
        .collect();
    if inference.records() == 0 {
        return;
    }
    let schema = inference.into_schema();
    if schema.fields.is_empty() {
        // Only `{}` records: no column to decode into (the conversion refuses it, NoColumns).
        return;
    }
    let mode = DecodeMode::Fixed {
        unknown_fields: UnknownFieldPolicy::Reject,
        type_mismatch: TypeMismatchPolicy::Reject,
    };
    let decoder = RecordDecoder::new(&schema, mode, 1 << 20);
    let mut rows = Vec::new();
    let mut rejected = std::collections::BTreeSet::new();
    for piece in Chunker::new(data, 0, 64, 1 << 20) {
        let chunk = match piece.expect("in-memory reads do not fail") {
            Piece::Lines(chunk) => chunk,
            Piece::TooLong(_) => unreachable!("no line of a fuzz input reaches 1 MiB"),
        };
        let decoded = decoder.decode(&chunk);
        let stats = decoded.stats;
        assert_eq!(
            stats.lines,
            stats.rows + stats.rejected + stats.blank,
            "{stats:?}"
        );
        assert_eq!(decoded.rejects.len() as u64, stats.rejected);
        for reject in &decoded.rejects {
            assert!(
                !reject.reason.trim().is_empty(),
                "a reject without a reason"
            );
            rejected.insert(reject.line);
        }
        if let Some(batch) = decoded.batch {
            rows.extend(batch_rows(&[batch], Timestamps::Native));
        }
    }
    let mut expected = Vec::new();
    for (i, (line, valid)) in lines.iter().zip(&valid).enumerate() {
        let number = i as u64 + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if rejected.contains(&number) {
            assert!(
                !valid,
                "line {number} inferred as a record, rejected by the decoder: {line:?}"
            );
            continue;
        }
        // Decoded. A line that is not even JSON syntax never is; one that is may be refused by
        // inference for its value alone (`1e400` is beyond f64) and still be decoded as raw
        // text once its column became text: found by fuzzing, a known difference of order.
        assert!(
            *valid || syntactically_an_object(line),
            "line {number} refused by inference, decoded anyway: {line:?}"
        );
        let value = exact_json(line).unwrap_or_else(|e| {
            panic!("line {number} decoded, refused by serde_json ({e}): {line:?}")
        });
        assert!(
            value.is_object(),
            "line {number} decoded but is not an object"
        );
        expected.push(expected_row(&value, &schema, Timestamps::Native));
    }
    assert_eq!(rows.len(), expected.len(), "rows and accepted lines");
    for (i, (row, want)) in rows.iter().zip(&expected).enumerate() {
        assert!(
            same_value(row, want),
            "row {i} differs from serde_json's reading:\n  read back: {row}\n  expected:  {want}"
        );
    }
}

/// Whether `line` is a JSON object by syntax alone (values not converted, escapes not
/// decoded), as `serde_json` checks values it keeps as raw text.
fn syntactically_an_object(line: &[u8]) -> bool {
    serde_json::from_slice::<&serde_json::value::RawValue>(line)
        .is_ok_and(|raw| raw.get().trim_start().starts_with('{'))
}

/// Whether a value read back equals the expected one. A text column keeps a non-string value
/// as its JSON text exactly as written (key order, spacing, number spelling), which the
/// expected side rebuilds from a parsed value: texts compare as the JSON they hold.
fn same_value(row: &Value, want: &Value) -> bool {
    match (row, want) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_value(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| same_value(v, w))
        }
        (Value::String(a), Value::String(b)) if a != b => {
            match (exact_json(a.as_bytes()), exact_json(b.as_bytes())) {
                (Ok(x), Ok(y)) => (x.is_object() || x.is_array()) && same_value(&x, &y),
                _ => false,
            }
        }
        _ => row == want,
    }
}
