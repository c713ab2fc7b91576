//! Schema-directed decoding of NDJSON lines into Arrow record batches.
//!
//! The decoder parses each line once, straight into column builders (no JSON tree), so that
//! every problem is attributed to its line and field:
//!
//! * A line that is not a valid record (UTF-8, JSON syntax, not an object, duplicate key, too
//!   long, too deep) is rejected with its reason.
//! * A field outside the schema, or a value that does not fit its column, is handled by the
//!   [`DecodeMode`]: with a fixed schema the user's policies decide (reject the line, or drop
//!   the field / null the value, counted); with an optimistically sampled schema it is a
//!   [`Misfit`], the signal to widen the schema and start again.
//!
//! A line's values are appended as it is parsed; if the line is then rejected, every builder
//! is truncated back to the previous row, so a rejected line leaves no trace in the batch.
//!
//! [`RecordDecoder::decode`] takes `&self` and keeps no state between calls, so any number of
//! threads can decode chunks of one input at once.
//!
//! The work is split by concern: `plan` holds what a schema means for decoding (built once),
//! `columns` the Arrow builders a chunk is decoded into, `parser` the JSON parser that fills
//! them, and `issue` the per-line account of what did not fit and where. This module
//! drives them line by line and turns each line's outcome into a row, a reject or a misfit.

mod columns;
mod issue;
mod parser;
mod plan;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::de::IgnoredAny;

use crate::chunk::Chunk;
use crate::reject::{line_too_long, RejectKind, RejectedLine, RAW_PREFIX_BYTES};
use crate::schema::Schema;
use crate::validate::{json_error, validate_record, InvalidRecord};
use columns::StructColumn;
use issue::{join, Issue, LineCtx};
use parser::{Fail, Parser};
use plan::StructPlan;

/// What to do with a field that the schema does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownFieldPolicy {
    /// Reject the line (it goes to the error output with the field's name).
    #[default]
    Reject,
    /// Drop the field from the row and count it in the summary.
    Drop,
}

/// What to do with a value that does not fit its column (e.g. `"abc"` for an `int64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TypeMismatchPolicy {
    /// Reject the line (it goes to the error output with the field and both types).
    #[default]
    Reject,
    /// Write null instead and count it in the summary.
    Null,
}

/// How the decoder treats values that the schema does not describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeMode {
    /// The schema is final (given by the user, or inferred from a limited sample at the
    /// user's request): the policies apply.
    Fixed {
        /// Fields outside the schema.
        unknown_fields: UnknownFieldPolicy,
        /// Values that do not fit their column.
        type_mismatch: TypeMismatchPolicy,
    },
    /// The schema was inferred from a sample and may be too narrow: the first value it does
    /// not describe stops decoding with a [`Misfit`].
    Optimistic,
}

/// A valid record that the sampled schema does not describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    /// Index of the source in the conversion's input list.
    pub source: usize,
    /// 1-based line number.
    pub line: u64,
    /// What did not fit.
    pub reason: String,
}

/// Line accounting of a chunk (and, summed, of a conversion).
///
/// Invariant: `lines == rows + rejected + blank`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Lines seen (the last line of a source counts even without a newline).
    pub lines: u64,
    /// Lines written as rows.
    pub rows: u64,
    /// Lines not converted (invalid, too long, or refused by a policy), whatever the
    /// [`OnError`](crate::convert::OnError) policy then did with them.
    pub rejected: u64,
    /// Lines that were empty or whitespace only.
    pub blank: u64,
    /// Fields removed under [`UnknownFieldPolicy::Drop`].
    pub fields_dropped: u64,
    /// Values replaced by null under [`TypeMismatchPolicy::Null`].
    pub values_nulled: u64,
    /// Decompressed bytes of the lines (including newlines).
    pub bytes: u64,
}

impl std::ops::AddAssign for LineStats {
    fn add_assign(&mut self, other: Self) {
        self.lines += other.lines;
        self.rows += other.rows;
        self.rejected += other.rejected;
        self.blank += other.blank;
        self.fields_dropped += other.fields_dropped;
        self.values_nulled += other.values_nulled;
        self.bytes += other.bytes;
    }
}

/// The result of decoding one chunk.
#[derive(Debug)]
pub struct DecodedChunk {
    /// The rows, if any.
    pub batch: Option<RecordBatch>,
    /// Rejected lines, in line order.
    pub rejects: Vec<RejectedLine>,
    /// Line accounting of this chunk alone; `stats.rejected == rejects.len()`.
    pub stats: LineStats,
    /// Set in [`DecodeMode::Optimistic`] when a line did not fit; the rest of the chunk was
    /// not decoded and the other fields must be ignored.
    pub misfit: Option<Misfit>,
}

/// Decodes chunks of NDJSON against a schema. Cheap to share between threads.
#[derive(Debug, Clone)]
pub struct RecordDecoder {
    arrow_schema: SchemaRef,
    plan: Arc<StructPlan>,
    mode: DecodeMode,
    max_line_bytes: usize,
}

impl RecordDecoder {
    /// A decoder for `schema`.
    pub fn new(schema: &Schema, mode: DecodeMode, max_line_bytes: usize) -> Self {
        RecordDecoder {
            arrow_schema: Arc::new(schema.to_arrow()),
            plan: Arc::new(StructPlan::root(schema)),
            mode,
            max_line_bytes,
        }
    }

    /// The Arrow schema of the batches this decoder produces.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// Decodes every line of `chunk`.
    pub fn decode(&self, chunk: &Chunk) -> DecodedChunk {
        let mut root = StructColumn::new(&self.plan);
        let mut rejects = Vec::new();
        let mut stats = LineStats {
            bytes: chunk.data.len() as u64,
            ..LineStats::default()
        };
        let mut ctx = LineCtx::new(self.mode);
        let mut scratch = String::new();
        let mut stack = Vec::new();
        for (line_no, offset, line) in chunk.lines() {
            stats.lines += 1;
            let mut reject = |kind: RejectKind, reason: String, stats: &mut LineStats| {
                stats.rejected += 1;
                let truncated = line.len() > RAW_PREFIX_BYTES && kind == RejectKind::LineTooLong;
                rejects.push(RejectedLine {
                    source: chunk.source,
                    line: line_no,
                    offset,
                    kind,
                    reason,
                    raw: if truncated {
                        line[..RAW_PREFIX_BYTES].to_vec()
                    } else {
                        line.to_vec()
                    },
                    raw_truncated: truncated,
                    line_bytes: line.len() as u64,
                });
            };
            if line.len() > self.max_line_bytes {
                let reason = line_too_long(line.len() as u64, self.max_line_bytes);
                reject(RejectKind::LineTooLong, reason, &mut stats);
                continue;
            }
            if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                stats.blank += 1;
                continue;
            }
            // SIMD validation first (several times faster on long lines); the standard
            // library's only to say where an invalid line goes wrong.
            let text = match simdutf8::basic::from_utf8(line).or_else(|_| std::str::from_utf8(line))
            {
                Ok(text) => text,
                Err(e) => {
                    let reason =
                        format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1);
                    reject(RejectKind::InvalidUtf8, reason, &mut stats);
                    continue;
                }
            };
            let rows_before = root.len;
            ctx.start_line();
            let result = Parser::new(text, &mut scratch, &mut stack).row(&mut root, &mut ctx);
            match result {
                Ok(()) => {
                    stats.rows += 1;
                    stats.fields_dropped += ctx.dropped;
                    stats.values_nulled += ctx.nulled;
                    continue;
                }
                Err(Fail::Syntax) => {
                    root.truncate(rows_before);
                    let InvalidRecord { kind, reason } = syntax_error(text);
                    reject(kind, reason, &mut stats);
                    continue;
                }
                Err(Fail::Issue) => root.truncate(rows_before),
            }
            let Some(issue) = ctx.issue.take() else {
                unreachable!("invariant: Fail::Issue is returned only with an issue recorded")
            };
            let path = ctx.path();
            let (kind, reason) = match issue {
                Issue::NotAnObject { found } => (
                    RejectKind::NotAnObject,
                    format!("a record must be a JSON object, found {found}"),
                ),
                Issue::DuplicateKey { name } => match validate_record(text) {
                    // Names both spellings when they differ only in case.
                    Err(InvalidRecord { kind, reason })
                        if kind == RejectKind::DuplicateKey && reason.starts_with("keys `") =>
                    {
                        (kind, reason)
                    }
                    _ => (
                        RejectKind::DuplicateKey,
                        format!("key `{}` appears twice in one object", join(&path, &name)),
                    ),
                },
                schema_issue => {
                    // The line may be broken further on; then that is the real reason.
                    if let Err(InvalidRecord { kind, reason }) = validate_record(text) {
                        reject(kind, reason, &mut stats);
                        continue;
                    }
                    let (kind, reason) = schema_issue.describe(&path);
                    if self.mode == DecodeMode::Optimistic {
                        return DecodedChunk {
                            batch: None,
                            rejects: Vec::new(),
                            stats,
                            misfit: Some(Misfit {
                                source: chunk.source,
                                line: line_no,
                                reason,
                            }),
                        };
                    }
                    (kind, reason)
                }
            };
            reject(kind, reason, &mut stats);
        }
        let batch = (root.len > 0).then(|| root.finish_batch(&self.arrow_schema));
        DecodedChunk {
            batch,
            rejects,
            stats,
            misfit: None,
        }
    }
}

/// The reason a line the parser refused is not JSON, in serde_json's words (the parser accepts
/// what serde_json accepts, so serde_json finds the same problem).
fn syntax_error(text: &str) -> InvalidRecord {
    match serde_json::from_str::<IgnoredAny>(text) {
        Err(error) => json_error(&error, text),
        // Valid JSON that is not a valid record: nesting or a lone surrogate in a value the
        // schema decodes; the record validator names it.
        Ok(_) => validate_record(text)
            .err()
            .unwrap_or_else(|| InvalidRecord {
                kind: RejectKind::InvalidJson,
                reason: "invalid JSON".to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

    fn chunk(text: &[u8]) -> Chunk {
        Chunk {
            source: 0,
            data: text.to_vec(),
            first_line: 1,
            offset: 0,
            last: true,
        }
    }

    fn fixed(unknown: UnknownFieldPolicy, mismatch: TypeMismatchPolicy) -> DecodeMode {
        DecodeMode::Fixed {
            unknown_fields: unknown,
            type_mismatch: mismatch,
        }
    }

    fn strict() -> DecodeMode {
        fixed(UnknownFieldPolicy::Reject, TypeMismatchPolicy::Reject)
    }

    fn schema(json: &str) -> Schema {
        Schema::from_json(json).unwrap()
    }

    fn decode(schema_json: &str, mode: DecodeMode, text: impl AsRef<[u8]>) -> DecodedChunk {
        RecordDecoder::new(&schema(schema_json), mode, 1 << 20).decode(&chunk(text.as_ref()))
    }

    const USER: &str = r#"{"fields":[
        {"name":"id","type":"int64"},
        {"name":"user","type":"struct","fields":[{"name":"name","type":"string"},{"name":"age","type":"int64"}]},
        {"name":"tags","type":"list","items":{"type":"string"}},
        {"name":"at","type":"timestamp"}
    ]}"#;

    #[test]
    fn decodes_nested_values_and_fills_missing_fields_with_null() {
        let out = decode(
            USER,
            strict(),
            "{\"id\":1,\"user\":{\"name\":\"a\\\"b\",\"age\":30},\"tags\":[\"x\",\"y\"],\"at\":\"2024-01-01T00:00:00Z\"}\n\
             {\"tags\":null,\"user\":null}\n\
             {\"id\":3,\"user\":{},\"tags\":[]}\n",
        );
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        assert_eq!(out.stats.rows, 3);
        let batch = out.batch.unwrap();
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)]);
        let user = batch.column(1).as_struct();
        assert!(user.is_valid(0) && user.is_null(1) && user.is_valid(2));
        let names = user.column(0).as_string::<i32>();
        assert_eq!(names.value(0), "a\"b");
        assert!(names.is_null(2));
        let tags = batch.column(2).as_list::<i32>();
        assert_eq!(tags.value_length(0), 2);
        assert!(tags.is_null(1));
        assert!(tags.is_valid(2) && tags.value_length(2) == 0);
        let at = batch.column(3).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.value(0), 1_704_067_200_000_000);
    }

    #[test]
    fn string_columns_keep_other_values_as_json_text() {
        let out = decode(
            r#"{"fields":[{"name":"s","type":"string"}]}"#,
            strict(),
            "{\"s\":\"plain\"}\n{\"s\":12.50}\n{\"s\":{\"a\": [1, true]}}\n{\"s\":null}\n{\"s\":\"caf\\u00e9\"}\n",
        );
        let batch = out.batch.unwrap();
        let s = batch.column(0).as_string::<i32>();
        assert_eq!(s.value(0), "plain");
        assert_eq!(s.value(1), "12.50");
        assert_eq!(s.value(2), "{\"a\": [1, true]}");
        assert!(s.is_null(3));
        assert_eq!(s.value(4), "café");
    }

    #[test]
    fn rejected_lines_leave_no_partial_row() {
        let out = decode(
            USER,
            strict(),
            "{\"id\":1,\"tags\":[\"a\",\"b\"],\"user\":{\"name\":\"x\",\"age\":\"old\"}}\n{\"id\":2,\"tags\":[\"c\"]}\n",
        );
        assert_eq!(out.stats.rows, 1);
        assert_eq!(out.stats.rejected, 1);
        let r = &out.rejects[0];
        assert_eq!(r.kind, RejectKind::TypeMismatch);
        assert_eq!(r.line, 1);
        assert_eq!(
            r.reason,
            "field `user.age`: expected int64, found string \"old\""
        );
        let batch = out.batch.unwrap();
        assert_eq!(batch.num_rows(), 1);
        let tags = batch.column(2).as_list::<i32>();
        assert_eq!(
            tags.values().len(),
            1,
            "the rejected line's list items are gone"
        );
        assert_eq!(tags.value(0).as_string::<i32>().value(0), "c");
    }

    #[test]
    fn every_kind_of_bad_line_is_rejected_with_its_reason() {
        let text = "{\"id\":1}\n\
                    \n   \n\
                    not json\n\
                    [1,2]\n\
                    \"str\"\n\
                    {\"id\":1,\"id\":2}\n\
                    {\"id\":1,\"zzz\":2}\n\
                    {\"tags\":[\"a\",{\"b\":1}],\"id\":true}\n\
                    {\"at\":\"2024-01-01T00:00:00\"}\n\
                    {\"user\":{\"name\":\"@BAD@\"}}\n\
                    {\"id\":99999999999999999999}\n\
                    {\"id\":1,\"tags\":[\"a\"";
        let text = text.replace("@BAD@", "\u{1}").into_bytes();
        let text: Vec<u8> = text
            .into_iter()
            .map(|b| if b == 1 { 0xff } else { b })
            .collect();
        let out = decode(USER, strict(), text);
        let kinds: Vec<(u64, RejectKind)> = out.rejects.iter().map(|r| (r.line, r.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (4, RejectKind::InvalidJson),
                (5, RejectKind::NotAnObject),
                (6, RejectKind::NotAnObject),
                (7, RejectKind::DuplicateKey),
                (8, RejectKind::UnknownField),
                (9, RejectKind::TypeMismatch),
                (10, RejectKind::TypeMismatch),
                (11, RejectKind::InvalidUtf8),
                (12, RejectKind::TypeMismatch),
                (13, RejectKind::InvalidJson),
            ]
        );
        let reason = |line: u64| {
            out.rejects
                .iter()
                .find(|r| r.line == line)
                .unwrap()
                .reason
                .clone()
        };
        assert_eq!(reason(8), "field `zzz` is not in the schema");
        assert_eq!(reason(9), "field `id`: expected int64, found boolean true");
        assert!(
            reason(10).contains("not an RFC 3339 timestamp with a time zone (us)"),
            "{}",
            reason(10)
        );
        assert!(reason(11).contains("invalid UTF-8 at byte"));
        assert!(reason(13).contains("cut short"));
        assert_eq!(out.stats.blank, 2);
        assert_eq!(out.stats.rows, 1);
        assert_eq!(
            out.stats.lines,
            out.stats.rows + out.stats.rejected + out.stats.blank
        );
        assert_eq!(out.rejects[0].raw, b"not json");
    }

    #[test]
    fn policies_drop_and_null_are_counted() {
        let out = decode(
            USER,
            fixed(UnknownFieldPolicy::Drop, TypeMismatchPolicy::Null),
            "{\"id\":\"x\",\"extra\":{\"deep\":1},\"more\":2,\"user\":{\"age\":[1]}}\n",
        );
        assert!(out.rejects.is_empty());
        assert_eq!(out.stats.fields_dropped, 2);
        assert_eq!(out.stats.values_nulled, 2);
        let batch = out.batch.unwrap();
        assert!(batch.column(0).is_null(0));
        assert!(batch.column(1).as_struct().column(1).is_null(0));
    }

    #[test]
    fn optimistic_mode_reports_a_misfit_but_rejects_broken_lines() {
        let schema = r#"{"fields":[{"name":"a","type":"int64"}]}"#;
        let out = decode(
            schema,
            DecodeMode::Optimistic,
            "{\"a\":1}\n{\"a\":2.5,\"b\":1\n{\"a\":1.5}\n",
        );
        let misfit = out.misfit.unwrap();
        assert_eq!(misfit.line, 3);
        assert!(misfit.reason.contains("expected int64, found number 1.5"));
        let out = decode(schema, DecodeMode::Optimistic, "{\"a\":1,\"new\":true}\n");
        assert!(out
            .misfit
            .unwrap()
            .reason
            .contains("`new` is not in the schema"));
    }

    #[test]
    fn empty_structs_and_null_columns_become_strings() {
        let out = decode(
            r#"{"fields":[{"name":"e","type":"struct","fields":[]},{"name":"n","type":"null"}]}"#,
            strict(),
            "{\"e\":{}}\n{\"e\":null,\"n\":null}\n{}\n",
        );
        let batch = out.batch.unwrap();
        let e = batch.column(0).as_string::<i32>();
        assert_eq!(e.value(0), "{}");
        assert!(e.is_null(1) && e.is_null(2));
        assert_eq!(batch.column(1).null_count(), 3);
    }

    #[test]
    fn zero_field_schema_still_counts_rows() {
        let out = decode(r#"{"fields":[]}"#, strict(), "{}\n{}\n");
        assert_eq!(out.batch.unwrap().num_rows(), 2);
    }

    #[test]
    fn absent_fields_cost_nothing_until_the_batch_is_finished() {
        let fields: Vec<String> = (0..1000)
            .map(|i| format!(r#"{{"name":"k{i}","type":"int64"}}"#))
            .collect();
        let schema = schema(&format!(r#"{{"fields":[{}]}}"#, fields.join(",")));
        let plan = Arc::new(StructPlan::new(&schema.fields));
        let mut root = StructColumn::new(&plan);
        let mut ctx = LineCtx::new(strict());
        let (mut scratch, mut stack) = (String::new(), Vec::new());
        for line in [r#"{"k3":1}"#, r#"{"k999":2,"k3":3}"#, r#"{}"#] {
            ctx.start_line();
            Parser::new(line, &mut scratch, &mut stack)
                .row(&mut root, &mut ctx)
                .unwrap();
        }
        // Before, every row appended a null to each of the 1000 columns.
        let lengths: usize = root.children.iter().map(|c| c.len()).sum();
        assert_eq!(lengths, 2 + 2, "only the columns with values hold rows");
        let batch = root.finish_batch(&Arc::new(schema.to_arrow()));
        assert_eq!(batch.num_rows(), 3);
        let k3 = batch.column(3).as_primitive::<Int64Type>();
        assert_eq!(k3.iter().collect::<Vec<_>>(), [Some(1), Some(3), None]);
        let k999 = batch.column(999).as_primitive::<Int64Type>();
        assert_eq!(k999.iter().collect::<Vec<_>>(), [None, Some(2), None]);
        assert_eq!(batch.column(0).null_count(), 3);
    }

    #[test]
    fn keys_differing_only_in_case_decode_into_one_column() {
        let out = decode(
            r#"{"fields":[{"name":"id","type":"int64"},{"name":"d","type":"struct","fields":[{"name":"Platform","type":"string"}]}]}"#,
            strict(),
            "{\"Id\":1,\"d\":{\"platform\":\"a\"}}\n{\"ID\":2,\"d\":{\"PLATFORM\":\"b\"}}\n{\"id\":3,\"iD\":4}\n{\"d\":{\"Platform\":\"c\",\"platform\":\"d\"}}\n",
        );
        let batch = out.batch.unwrap();
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.iter().collect::<Vec<_>>(), [Some(1), Some(2)]);
        let platform = batch.column(1).as_struct().column(0).as_string::<i32>();
        assert_eq!(platform.iter().collect::<Vec<_>>(), [Some("a"), Some("b")]);
        let reasons: Vec<(RejectKind, &str)> = out
            .rejects
            .iter()
            .map(|r| (r.kind, r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 2);
        assert!(reasons.iter().all(|(k, _)| *k == RejectKind::DuplicateKey));
        assert!(
            reasons[0].1.contains("`id` and `iD` differ only in case"),
            "{reasons:?}"
        );
        assert!(
            reasons[1]
                .1
                .contains("`Platform` and `platform` differ only in case"),
            "{reasons:?}"
        );
    }

    const MAP: &str = r#"{"fields":[
        {"name":"id","type":"int64"},
        {"name":"m","type":"map","values":{"type":"struct","fields":[{"name":"n","type":"int64"}]}}
    ]}"#;

    /// Row `row` of map column `column` as (key, `n` of the value) pairs, in entry order.
    fn map_row(batch: &RecordBatch, column: usize, row: usize) -> Vec<(String, Option<i64>)> {
        let map = batch.column(column).as_map();
        let entries = map.value(row);
        let keys = entries.column(0).as_string::<i32>();
        let values = entries.column(1).as_struct();
        let n = values.column(0).as_primitive::<Int64Type>();
        (0..entries.len())
            .map(|i| (keys.value(i).to_string(), n.is_valid(i).then(|| n.value(i))))
            .collect()
    }

    #[test]
    fn map_columns_keep_keys_in_object_order_and_cut_rejected_lines() {
        let out = decode(
            MAP,
            strict(),
            "{\"id\":1,\"m\":{\"b\":{\"n\":2},\"a\":{\"n\":1},\"c\":{}}}\n\
             {\"id\":2,\"m\":{\"x\":{\"n\":1},\"y\":{\"n\":\"bad\"}}}\n\
             {\"id\":3}\n\
             {\"id\":4,\"m\":null}\n\
             {\"id\":5,\"m\":{}}\n\
             {\"id\":6,\"m\":{\"k\":null}}\n",
        );
        assert_eq!(out.stats.rows, 5);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(
            out.rejects[0].reason,
            "field `m.y.n`: expected int64, found string \"bad\""
        );
        let batch = out.batch.unwrap();
        assert_eq!(
            map_row(&batch, 1, 0),
            [
                ("b".into(), Some(2)),
                ("a".into(), Some(1)),
                ("c".into(), None)
            ]
        );
        let map = batch.column(1).as_map();
        // The rejected line's entries are gone.
        assert_eq!(map.entries().len(), 4);
        assert!(map.is_null(1) && map.is_null(2));
        assert!(map.is_valid(3) && map.value_length(3) == 0);
        assert!(map.value(4).column(1).as_struct().is_null(0));
        assert_eq!(
            batch.schema().field(1).data_type(),
            &crate::schema::Schema::from_json(MAP)
                .unwrap()
                .to_arrow()
                .field(1)
                .data_type()
                .clone()
        );
    }

    /// `id`, a column named `_overflow` (a key of the records), and the overflow column
    /// `_overflow_2` of structs `{n}`.
    const OVERFLOW: &str = r#"{"fields":[
        {"name":"id","type":"int64"},
        {"name":"_overflow","type":"string"},
        {"name":"_overflow_2","type":"map","values":{"type":"struct","fields":[{"name":"n","type":"int64"}]}}
    ],"overflow":"_overflow_2"}"#;

    #[test]
    fn keys_no_column_names_go_into_the_overflow_column_in_any_mode() {
        let lines = "{\"b\":{\"n\":2},\"id\":1,\"a\":{\"n\":1}}\n\
             {\"id\":2}\n\
             {\"x\":{\"n\":1},\"id\":3,\"y\":{\"n\":\"bad\"}}\n\
             {\"x\":{\"n\":1},\"X\":{\"n\":2}}\n\
             {\"ID\":5,\"_overflow\":\"own\",\"_overflow_2\":{\"n\":6},\"z\":{}}\n\
             {\"_overflow_2\":{\"n\":7},\"id\":6}\n";
        let drop = fixed(UnknownFieldPolicy::Drop, TypeMismatchPolicy::Reject);
        // A sampled schema's decoder takes new keys into the overflow column too; a value its
        // type does not hold is a misfit (the schema widens), not a reject.
        let optimistic = decode(
            OVERFLOW,
            DecodeMode::Optimistic,
            lines.replace("\"bad\"", "1"),
        );
        assert!(optimistic.misfit.is_none());
        assert_eq!((optimistic.stats.rows, optimistic.rejects.len()), (5, 1));
        let bad = decode(
            OVERFLOW,
            DecodeMode::Optimistic,
            "{\"new\":{\"n\":\"bad\"}}\n",
        );
        assert!(bad.misfit.is_some());
        for mode in [strict(), drop] {
            let out = decode(OVERFLOW, mode, lines);
            assert!(out.misfit.is_none(), "{mode:?}");
            let reasons: Vec<&str> = out.rejects.iter().map(|r| r.reason.as_str()).collect();
            assert_eq!(out.stats.rows, 4, "{mode:?}: {reasons:?}");
            assert_eq!(reasons.len(), 2, "{reasons:?}");
            assert_eq!(
                reasons[0],
                "field `_overflow_2.y.n`: expected int64, found string \"bad\""
            );
            assert!(reasons[1].contains("`X`"), "{reasons:?}");
            let batch = out.batch.unwrap();
            assert_eq!(
                map_row(&batch, 2, 0),
                [("b".into(), Some(2)), ("a".into(), Some(1))]
            );
            let map = batch.column(2).as_map();
            // A record without such keys holds no map; the rejected lines left no entry.
            assert!(map.is_null(1));
            assert_eq!(map.entries().len(), 5);
            // `ID` is the column `id`; `_overflow` the record's own column; the overflow
            // column's own name is an ordinary key.
            let ids = batch.column(0).as_primitive::<Int64Type>();
            assert_eq!(ids.value(2), 5);
            assert_eq!(batch.column(1).as_string::<i32>().value(2), "own");
            assert_eq!(
                map_row(&batch, 2, 2),
                [("_overflow_2".into(), Some(6)), ("z".into(), None)]
            );
            assert_eq!(map_row(&batch, 2, 3), [("_overflow_2".into(), Some(7))]);
        }
    }

    #[test]
    fn map_values_that_are_not_objects_and_repeated_keys_are_rejected_with_reasons() {
        let out = decode(
            MAP,
            strict(),
            "{\"id\":1,\"m\":[1]}\n\
             {\"id\":2,\"m\":\"text\"}\n\
             {\"id\":3,\"m\":{\"a\":{},\"a\":{}}}\n\
             {\"id\":4,\"m\":{\"Key\":{},\"key\":{}}}\n\
             {\"id\":5,\"m\":{\"ok\":{\"n\":5}}}\n",
        );
        let kinds: Vec<_> = out
            .rejects
            .iter()
            .map(|r| (r.kind, r.reason.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (RejectKind::TypeMismatch, "field `m`: expected map, found an array"),
                (RejectKind::TypeMismatch, "field `m`: expected map, found string \"text\""),
                (RejectKind::DuplicateKey, "key `m.a` appears twice in one object"),
                (RejectKind::DuplicateKey, "keys `Key` and `key` differ only in case and would be one column (names are compared case-insensitively, as Athena, Glue, Hive and Spark do)"),
            ]
        );
        assert_eq!(map_row(&out.batch.unwrap(), 1, 0), [("ok".into(), Some(5))]);
        // Under the null policy a non-object is a null map, counted.
        let out = decode(
            MAP,
            fixed(UnknownFieldPolicy::Reject, TypeMismatchPolicy::Null),
            "{\"id\":1,\"m\":7}\n",
        );
        assert_eq!((out.stats.rows, out.stats.values_nulled), (1, 1));
        assert!(out.batch.unwrap().column(1).is_null(0));
        // A key too long to be a name is refused as in any object (inference refuses it too).
        let long = format!("{{\"m\":{{\"{}\":{{}}}}}}\n", "k".repeat(300));
        assert_eq!(
            decode(MAP, strict(), long).rejects[0].kind,
            RejectKind::NameTooLong
        );
    }

    #[test]
    fn columns_absent_from_a_whole_batch_share_one_null_array_per_type() {
        let out = decode(
            r#"{"fields":[{"name":"a","type":"int64"},{"name":"b","type":"int64"},
                {"name":"c","type":"timestamp"},{"name":"d","type":"int64"}]}"#,
            strict(),
            "{\"d\":1}\n{\"d\":2}\n{}\n",
        );
        let batch = out.batch.unwrap();
        let (a, b, c) = (batch.column(0), batch.column(1), batch.column(2));
        assert!(Arc::ptr_eq(a, b), "absent int64 columns share their nulls");
        assert_eq!((a.len(), a.null_count()), (3, 3));
        assert_eq!(c.data_type(), batch.schema().field(2).data_type());
        assert_eq!(c.null_count(), 3);
        let d = batch.column(3).as_primitive::<Int64Type>();
        assert_eq!(d.iter().collect::<Vec<_>>(), [Some(1), Some(2), None]);
    }
}
