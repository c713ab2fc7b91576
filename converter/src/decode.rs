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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow::array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow::array::{
    new_null_array, ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch,
    RecordBatchOptions, StringArray, StructArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef};
use serde::de::IgnoredAny;

use crate::chunk::Chunk;
use crate::infer::{json_error, validate_record, InvalidRecord};
use crate::reject::{RejectKind, RejectedLine, RAW_PREFIX_BYTES};
use crate::schema::{Field, FieldType, Schema, TimestampUnit};
use crate::timestamp::parse_timestamp;

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
    /// Source index.
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
    /// Lines rejected.
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
    /// Counts.
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
            plan: Arc::new(StructPlan::new(&schema.fields)),
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
                let reason = format!(
                    "line is {} bytes long, more than the limit of {} (--max-line-bytes)",
                    line.len(),
                    self.max_line_bytes
                );
                reject(RejectKind::LineTooLong, reason, &mut stats);
                continue;
            }
            if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                stats.blank += 1;
                continue;
            }
            let text = match std::str::from_utf8(line) {
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
                Issue::DuplicateKey { name } => (
                    RejectKind::DuplicateKey,
                    format!("key `{}` appears twice in one object", join(&path, &name)),
                ),
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

fn join(path: &[Segment], last: &str) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if !last.is_empty() {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(last);
    }
    out
}

/// FxHash: field-name lookups are a hot path and need no DoS resistance.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

/// What a struct column needs to know about its fields, shared by all chunks.
#[derive(Debug)]
struct StructPlan {
    names: Vec<Box<str>>,
    index: HashMap<Box<str>, usize, FxBuild>,
    arrow_fields: Fields,
    children: Vec<ColumnPlan>,
}

#[derive(Debug)]
enum ColumnPlan {
    Null,
    Boolean,
    Int64,
    Float64,
    String,
    Timestamp(TimestampUnit, Arc<str>),
    Struct(Arc<StructPlan>),
    List(Box<ColumnPlan>, FieldRef),
}

impl StructPlan {
    fn new(fields: &[Field]) -> Self {
        let names: Vec<Box<str>> = fields.iter().map(|f| Box::from(f.name.as_str())).collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let schema = Schema::new(fields.to_vec()).to_arrow();
        StructPlan {
            names,
            index,
            arrow_fields: schema.fields().clone(),
            children: fields
                .iter()
                .map(|f| ColumnPlan::new(&f.field_type))
                .collect(),
        }
    }

    #[inline]
    fn lookup(&self, key: &str, hint: usize) -> Option<usize> {
        match self.names.get(hint) {
            Some(name) if same_key(name.as_bytes(), key.as_bytes()) => Some(hint),
            _ => self.index.get(key).copied(),
        }
    }
}

/// Key equality without a `memcmp` call for the short keys JSON records are made of (the
/// call was 7% of a conversion).
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        let word =
            |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
        return word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8);
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    a == b
}

impl ColumnPlan {
    fn new(field_type: &FieldType) -> Self {
        match field_type {
            FieldType::Null => ColumnPlan::Null,
            FieldType::Boolean => ColumnPlan::Boolean,
            FieldType::Int64 => ColumnPlan::Int64,
            FieldType::Float64 => ColumnPlan::Float64,
            FieldType::String => ColumnPlan::String,
            FieldType::Timestamp { unit, timezone } => {
                ColumnPlan::Timestamp(*unit, Arc::clone(timezone))
            }
            FieldType::Struct(fields) => ColumnPlan::Struct(Arc::new(StructPlan::new(fields))),
            FieldType::List(items) => {
                let DataType::List(field) = field_type_to_arrow(field_type) else {
                    unreachable!("invariant: a list maps to an Arrow list")
                };
                ColumnPlan::List(Box::new(ColumnPlan::new(items)), field)
            }
        }
    }
}

fn field_type_to_arrow(field_type: &FieldType) -> DataType {
    Schema::new(vec![Field::new("x", field_type.clone())])
        .to_arrow()
        .field(0)
        .data_type()
        .clone()
}

/// An in-progress column. Every variant can be truncated back to a row count, which is what
/// makes rejecting a half-parsed line exact.
enum Column {
    Null(usize),
    Boolean(BooleanBufferBuilder, NullBufferBuilder),
    Int64(Vec<i64>, NullBufferBuilder),
    Float64(Vec<f64>, NullBufferBuilder),
    Timestamp(Vec<i64>, NullBufferBuilder, TimestampUnit, Arc<str>),
    String {
        offsets: Vec<i32>,
        data: Vec<u8>,
        nulls: NullBufferBuilder,
    },
    Struct(StructColumn),
    List {
        offsets: Vec<i32>,
        child: Box<Column>,
        nulls: NullBufferBuilder,
        field: FieldRef,
    },
}

struct StructColumn {
    plan: Arc<StructPlan>,
    children: Vec<Column>,
    nulls: NullBufferBuilder,
    len: usize,
}

impl StructColumn {
    fn new(plan: &Arc<StructPlan>) -> Self {
        StructColumn {
            plan: Arc::clone(plan),
            children: plan.children.iter().map(Column::new).collect(),
            nulls: NullBufferBuilder::new(0),
            len: 0,
        }
    }

    fn append_null(&mut self) {
        for child in &mut self.children {
            child.append_null();
        }
        self.nulls.append_null();
        self.len += 1;
    }

    fn truncate(&mut self, len: usize) {
        for child in &mut self.children {
            child.truncate(len);
        }
        self.nulls.truncate(len);
        self.len = len;
    }

    fn finish_columns(&mut self) -> Vec<ArrayRef> {
        self.children.iter_mut().map(Column::finish).collect()
    }

    fn finish_batch(&mut self, schema: &SchemaRef) -> RecordBatch {
        let columns = self.finish_columns();
        let options = RecordBatchOptions::new().with_row_count(Some(self.len));
        RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
            .expect("invariant: decoded columns match the decoder's schema")
    }
}

impl Column {
    fn new(plan: &ColumnPlan) -> Self {
        let nulls = || NullBufferBuilder::new(0);
        match plan {
            ColumnPlan::Null => Column::Null(0),
            ColumnPlan::Boolean => Column::Boolean(BooleanBufferBuilder::new(0), nulls()),
            ColumnPlan::Int64 => Column::Int64(Vec::new(), nulls()),
            ColumnPlan::Float64 => Column::Float64(Vec::new(), nulls()),
            ColumnPlan::Timestamp(unit, tz) => {
                Column::Timestamp(Vec::new(), nulls(), *unit, Arc::clone(tz))
            }
            ColumnPlan::String => Column::String {
                offsets: vec![0],
                data: Vec::new(),
                nulls: nulls(),
            },
            ColumnPlan::Struct(plan) => Column::Struct(StructColumn::new(plan)),
            ColumnPlan::List(item, field) => Column::List {
                offsets: vec![0],
                child: Box::new(Column::new(item)),
                nulls: nulls(),
                field: Arc::clone(field),
            },
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Column::Null(_) => "null",
            Column::Boolean(..) => "boolean",
            Column::Int64(..) => "int64",
            Column::Float64(..) => "float64",
            Column::Timestamp(..) => "timestamp",
            Column::String { .. } => "string",
            Column::Struct(s) if s.children.is_empty() => "empty struct",
            Column::Struct(_) => "struct",
            Column::List { .. } => "list",
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Null(len) => *len,
            Column::Boolean(_, nulls) => nulls.len(),
            Column::Int64(values, _) => values.len(),
            Column::Float64(values, _) => values.len(),
            Column::Timestamp(values, ..) => values.len(),
            Column::String { offsets, .. } | Column::List { offsets, .. } => offsets.len() - 1,
            Column::Struct(s) => s.len,
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Null(len) => *len += 1,
            Column::Boolean(values, nulls) => {
                values.append(false);
                nulls.append_null();
            }
            Column::Int64(values, nulls) => {
                values.push(0);
                nulls.append_null();
            }
            Column::Float64(values, nulls) => {
                values.push(0.0);
                nulls.append_null();
            }
            Column::Timestamp(values, nulls, ..) => {
                values.push(0);
                nulls.append_null();
            }
            Column::String {
                offsets,
                data,
                nulls,
            } => {
                offsets.push(data.len() as i32);
                nulls.append_null();
            }
            Column::Struct(s) => s.append_null(),
            Column::List { offsets, nulls, .. } => {
                offsets.push(*offsets.last().expect("invariant: offsets start with 0"));
                nulls.append_null();
            }
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Column::Null(n) => *n = (*n).min(len),
            Column::Boolean(values, nulls) => {
                values.truncate(len.min(values.len()));
                nulls.truncate(len);
            }
            Column::Int64(values, nulls) | Column::Timestamp(values, nulls, ..) => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Float64(values, nulls) => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::String {
                offsets,
                data,
                nulls,
            } => {
                offsets.truncate(len + 1);
                data.truncate(*offsets.last().expect("invariant: offsets start with 0") as usize);
                nulls.truncate(len);
            }
            Column::Struct(s) => s.truncate(len),
            Column::List {
                offsets,
                child,
                nulls,
                ..
            } => {
                offsets.truncate(len + 1);
                child.truncate(*offsets.last().expect("invariant: offsets start with 0") as usize);
                nulls.truncate(len);
            }
        }
    }

    fn push_str(&mut self, s: &str) {
        if let Column::String {
            offsets,
            data,
            nulls,
        } = self
        {
            data.extend_from_slice(s.as_bytes());
            offsets.push(
                i32::try_from(data.len())
                    .expect("invariant: a chunk holds less than 2 GiB of text"),
            );
            nulls.append_non_null();
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Null(len) => new_null_array(&DataType::Utf8, std::mem::take(len)),
            Column::Boolean(values, nulls) => {
                Arc::new(BooleanArray::new(values.finish(), nulls.finish()))
            }
            Column::Int64(values, nulls) => Arc::new(Int64Array::new(
                ScalarBuffer::from(std::mem::take(values)),
                nulls.finish(),
            )),
            Column::Float64(values, nulls) => Arc::new(Float64Array::new(
                ScalarBuffer::from(std::mem::take(values)),
                nulls.finish(),
            )),
            Column::Timestamp(values, nulls, unit, tz) => {
                let values = ScalarBuffer::from(std::mem::take(values));
                let nulls = nulls.finish();
                let tz = Arc::clone(tz);
                match unit {
                    TimestampUnit::Millisecond => {
                        Arc::new(TimestampMillisecondArray::new(values, nulls).with_timezone(tz))
                    }
                    TimestampUnit::Microsecond => {
                        Arc::new(TimestampMicrosecondArray::new(values, nulls).with_timezone(tz))
                    }
                    TimestampUnit::Nanosecond => {
                        Arc::new(TimestampNanosecondArray::new(values, nulls).with_timezone(tz))
                    }
                }
            }
            Column::String {
                offsets,
                data,
                nulls,
            } => {
                let offsets = std::mem::replace(offsets, vec![0]);
                Arc::new(StringArray::new(
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    Buffer::from_vec(std::mem::take(data)),
                    nulls.finish(),
                ))
            }
            Column::Struct(s) if s.children.is_empty() => {
                // Parquet has no empty groups: an all-`{}` field is written as JSON text.
                let len = std::mem::take(&mut s.len);
                let nulls = s.nulls.finish();
                let texts =
                    (0..len).map(|i| nulls.as_ref().is_none_or(|n| n.is_valid(i)).then_some("{}"));
                Arc::new(texts.collect::<StringArray>())
            }
            Column::Struct(s) => {
                let columns = s.finish_columns();
                let nulls = s.nulls.finish();
                s.len = 0;
                Arc::new(StructArray::new(
                    s.plan.arrow_fields.clone(),
                    columns,
                    nulls,
                ))
            }
            Column::List {
                offsets,
                child,
                nulls,
                field,
            } => {
                let offsets = std::mem::replace(offsets, vec![0]);
                Arc::new(ListArray::new(
                    Arc::clone(field),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    child.finish(),
                    nulls.finish(),
                ))
            }
        }
    }
}

/// A problem found while decoding a line; the path to it is collected while unwinding.
enum Issue {
    NotAnObject {
        found: &'static str,
    },
    DuplicateKey {
        name: String,
    },
    UnknownField {
        name: String,
    },
    TypeMismatch {
        expected: &'static str,
        found: String,
        detail: Option<String>,
    },
}

impl Issue {
    fn describe(self, path: &[Segment]) -> (RejectKind, String) {
        match self {
            Issue::UnknownField { name } => (
                RejectKind::UnknownField,
                format!("field `{}` is not in the schema", join(path, &name)),
            ),
            Issue::TypeMismatch {
                expected,
                found,
                detail,
            } => {
                let mut reason = format!(
                    "field `{}`: expected {expected}, found {found}",
                    join(path, "")
                );
                if let Some(detail) = detail {
                    reason.push_str(": ");
                    reason.push_str(&detail);
                }
                (RejectKind::TypeMismatch, reason)
            }
            Issue::NotAnObject { .. } | Issue::DuplicateKey { .. } => {
                unreachable!("invariant: only schema issues are described here")
            }
        }
    }
}

enum Segment {
    Key(String),
    Index(usize),
}

struct LineCtx {
    mode: DecodeMode,
    issue: Option<Issue>,
    /// Path to the issue, innermost first.
    reversed_path: Vec<Segment>,
    dropped: u64,
    nulled: u64,
}

impl LineCtx {
    fn new(mode: DecodeMode) -> Self {
        LineCtx {
            mode,
            issue: None,
            reversed_path: Vec::new(),
            dropped: 0,
            nulled: 0,
        }
    }

    fn start_line(&mut self) {
        self.issue = None;
        self.reversed_path.clear();
        self.dropped = 0;
        self.nulled = 0;
    }

    fn path(&mut self) -> Vec<Segment> {
        let mut path = std::mem::take(&mut self.reversed_path);
        path.reverse();
        path
    }

    fn fail(&mut self, issue: Issue) -> Result<(), Fail> {
        self.issue = Some(issue);
        Err(Fail::Issue)
    }

    /// Applies the mismatch policy to `column`, which has been handed a value it cannot hold.
    fn mismatch(
        &mut self,
        column: &mut Column,
        found: String,
        detail: Option<String>,
    ) -> Result<(), Fail> {
        match self.mode {
            DecodeMode::Fixed {
                type_mismatch: TypeMismatchPolicy::Null,
                ..
            } => {
                column.append_null();
                self.nulled += 1;
                Ok(())
            }
            _ => self.fail(Issue::TypeMismatch {
                expected: column.type_name(),
                found,
                detail,
            }),
        }
    }
}

fn preview(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("string {s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("string {cut:?}…")
    }
}

/// Why parsing a line stopped.
#[derive(Debug)]
enum Fail {
    /// Not valid JSON; serde_json is asked for the reason (the parser accepts exactly what it
    /// accepts, which the differential test checks).
    Syntax,
    /// A problem recorded in the line context.
    Issue,
}

/// serde_json's nesting limit: the 128th nested container is an error.
const MAX_DEPTH: u32 = 128;

/// A hand-written JSON parser that appends values straight into the column builders.
///
/// serde_json drove the builders through `DeserializeSeed`s before; a parser that knows the
/// target columns does the same in one pass with less machinery (decoding is about half of a
/// conversion's work). It accepts exactly the JSON serde_json accepts (a differential test
/// checks this on mutated inputs), including serde_json's distinctions: values the schema
/// consumes are parsed strictly (nesting limit, lone surrogates refused), values that are only
/// skipped or kept as text are checked for syntax alone, as `serde::de::IgnoredAny` does.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: u32,
    scratch: &'a mut String,
    stack: &'a mut Vec<u8>,
}

/// Where a parsed string is: in the input, or unescaped in the scratch buffer.
enum Text {
    Input(usize, usize),
    Scratch,
}

enum Number {
    I64(i64),
    U64(u64),
    F64(f64),
}

impl Number {
    fn describe(&self) -> String {
        match self {
            Number::I64(v) => format!("integer {v}"),
            Number::U64(v) => format!("integer {v}"),
            Number::F64(v) => format!("number {v}"),
        }
    }
}

#[inline]
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20)
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, scratch: &'a mut String, stack: &'a mut Vec<u8>) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            scratch,
            stack,
        }
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Result<(), Fail> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Fail::Syntax)
        }
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Result<(), Fail> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Fail::Syntax)
        }
    }

    fn text_of(&self, text: &Text) -> &str {
        match *text {
            Text::Input(start, end) => &self.text[start..end],
            Text::Scratch => self.scratch.as_str(),
        }
    }

    /// A record: one object and nothing after it but whitespace.
    fn row(&mut self, root: &mut StructColumn, ctx: &mut LineCtx) -> Result<(), Fail> {
        self.skip_ws();
        let found = match self.peek() {
            Some(b'{') => {
                self.object(root, ctx)?;
                self.skip_ws();
                return if self.pos == self.bytes.len() {
                    Ok(())
                } else {
                    Err(Fail::Syntax)
                };
            }
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            _ => return Err(Fail::Syntax),
        };
        self.skip_value()?;
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(Fail::Syntax);
        }
        ctx.fail(Issue::NotAnObject { found })
    }

    fn enter(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(Fail::Syntax);
        }
        Ok(())
    }

    /// An object into a struct column (at `{`).
    fn object(&mut self, column: &mut StructColumn, ctx: &mut LineCtx) -> Result<(), Fail> {
        self.enter()?;
        self.pos += 1;
        let row = column.len;
        let mut hint = 0usize;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(Fail::Syntax);
                }
                let key = self.string()?;
                let index = column.plan.lookup(self.text_of(&key), hint);
                self.skip_ws();
                self.expect(b':')?;
                self.skip_ws();
                match index {
                    Some(index) => {
                        hint = index + 1;
                        let child = &mut column.children[index];
                        if child.len() > row {
                            let name = column.plan.names[index].to_string();
                            return ctx.fail(Issue::DuplicateKey { name });
                        }
                        if let Err(e) = self.value(child, ctx) {
                            if matches!(e, Fail::Issue) {
                                ctx.reversed_path
                                    .push(Segment::Key(column.plan.names[index].to_string()));
                            }
                            return Err(e);
                        }
                    }
                    None => match ctx.mode {
                        DecodeMode::Fixed {
                            unknown_fields: UnknownFieldPolicy::Drop,
                            ..
                        } => {
                            self.skip_value()?;
                            ctx.dropped += 1;
                        }
                        _ => {
                            let name = self.text_of(&key).to_string();
                            // The rest of the line may be broken: that is checked by the caller.
                            return ctx.fail(Issue::UnknownField { name });
                        }
                    },
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Fail::Syntax),
                }
            }
        }
        for child in &mut column.children {
            if child.len() == row {
                child.append_null();
            }
        }
        column.nulls.append_non_null();
        column.len += 1;
        self.depth -= 1;
        Ok(())
    }

    /// An array into a list column (at `[`).
    fn array(&mut self, child: &mut Column, ctx: &mut LineCtx) -> Result<(), Fail> {
        self.enter()?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            let mut index = 0usize;
            loop {
                self.skip_ws();
                if let Err(e) = self.value(child, ctx) {
                    if matches!(e, Fail::Issue) {
                        ctx.reversed_path.push(Segment::Index(index));
                    }
                    return Err(e);
                }
                index += 1;
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Fail::Syntax),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// One value into `column` (whitespace already skipped).
    fn value(&mut self, column: &mut Column, ctx: &mut LineCtx) -> Result<(), Fail> {
        let Some(first) = self.peek() else {
            return Err(Fail::Syntax);
        };
        if let Column::String { .. } = column {
            return match first {
                b'"' => {
                    let text = self.string()?;
                    let value = match &text {
                        Text::Input(start, end) => &self.text[*start..*end],
                        Text::Scratch => self.scratch.as_str(),
                    };
                    column.push_str(value);
                    Ok(())
                }
                b'n' => {
                    self.literal(b"null")?;
                    column.append_null();
                    Ok(())
                }
                _ => {
                    // Any other value is kept as its JSON text.
                    let start = self.pos;
                    self.skip_value()?;
                    column.push_str(&self.text[start..self.pos]);
                    Ok(())
                }
            };
        }
        match first {
            b'n' => {
                self.literal(b"null")?;
                column.append_null();
                Ok(())
            }
            b't' | b'f' => {
                let v = first == b't';
                self.literal(if v { b"true" } else { b"false" })?;
                match column {
                    Column::Boolean(values, nulls) => {
                        values.append(v);
                        nulls.append_non_null();
                        Ok(())
                    }
                    column => ctx.mismatch(column, format!("boolean {v}"), None),
                }
            }
            b'-' | b'0'..=b'9' => {
                let number = self.number()?;
                match (column, number) {
                    (Column::Int64(values, nulls), Number::I64(v)) => {
                        values.push(v);
                        nulls.append_non_null();
                        Ok(())
                    }
                    (Column::Int64(values, nulls), Number::U64(v)) if v <= i64::MAX as u64 => {
                        values.push(v as i64);
                        nulls.append_non_null();
                        Ok(())
                    }
                    (Column::Float64(values, nulls), number) => {
                        values.push(match number {
                            Number::I64(v) => v as f64,
                            Number::U64(v) => v as f64,
                            Number::F64(v) => v,
                        });
                        nulls.append_non_null();
                        Ok(())
                    }
                    (column, number) => {
                        let detail = (matches!(column, Column::Int64(..))
                            && matches!(number, Number::U64(_)))
                        .then(|| "outside the int64 range".to_string());
                        ctx.mismatch(column, number.describe(), detail)
                    }
                }
            }
            b'"' => {
                let text = self.string()?;
                let value = match &text {
                    Text::Input(start, end) => &self.text[*start..*end],
                    Text::Scratch => self.scratch.as_str(),
                };
                match column {
                    Column::Timestamp(values, nulls, unit, _) => {
                        match parse_timestamp(value, *unit) {
                            Ok(t) => {
                                values.push(t);
                                nulls.append_non_null();
                                Ok(())
                            }
                            Err(e) => {
                                let detail = format!("{e} ({})", unit.as_str());
                                let found = preview(value);
                                ctx.mismatch(column, found, Some(detail))
                            }
                        }
                    }
                    column => {
                        let found = preview(value);
                        ctx.mismatch(column, found, None)
                    }
                }
            }
            b'[' => match column {
                Column::List {
                    offsets,
                    child,
                    nulls,
                    ..
                } => {
                    self.array(child, ctx)?;
                    offsets.push(
                        i32::try_from(child.len())
                            .expect("invariant: a chunk holds less than 2^31 list items"),
                    );
                    nulls.append_non_null();
                    Ok(())
                }
                column => {
                    self.skip_value()?;
                    ctx.mismatch(column, "an array".to_string(), None)
                }
            },
            b'{' => match column {
                Column::Struct(s) => self.object(s, ctx),
                column => {
                    self.skip_value()?;
                    ctx.mismatch(column, "an object".to_string(), None)
                }
            },
            _ => Err(Fail::Syntax),
        }
    }

    /// A string (at `"`), unescaped strictly: a lone surrogate is refused, as serde_json does
    /// when it decodes a string.
    fn string(&mut self) -> Result<Text, Fail> {
        self.pos += 1;
        let start = self.pos;
        let rest = &self.bytes[start..];
        let i = memchr::memchr2(b'"', b'\\', rest).ok_or(Fail::Syntax)?;
        if has_control(&rest[..i]) {
            return Err(Fail::Syntax);
        }
        if rest[i] == b'"' {
            self.pos = start + i + 1;
            return Ok(Text::Input(start, start + i));
        }
        self.scratch.clear();
        self.scratch.push_str(&self.text[start..start + i]);
        self.pos = start + i;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Text::Scratch);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = self.peek().ok_or(Fail::Syntax)?;
                    self.pos += 1;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            if (0xDC00..0xE000).contains(&high) {
                                return Err(Fail::Syntax);
                            }
                            let code = if (0xD800..0xDC00).contains(&high) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err(Fail::Syntax);
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(Fail::Syntax);
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            char::from_u32(code).ok_or(Fail::Syntax)?
                        }
                        _ => return Err(Fail::Syntax),
                    };
                    self.scratch.push(c);
                }
                Some(_) => {
                    let rest = &self.bytes[self.pos..];
                    let i = memchr::memchr2(b'"', b'\\', rest).ok_or(Fail::Syntax)?;
                    if has_control(&rest[..i]) {
                        return Err(Fail::Syntax);
                    }
                    self.scratch.push_str(&self.text[self.pos..self.pos + i]);
                    self.pos += i;
                }
                None => return Err(Fail::Syntax),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Fail> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(Fail::Syntax)?;
        let mut value = 0u32;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(Fail::Syntax),
            };
            value = value * 16 + u32::from(v);
        }
        self.pos += 4;
        Ok(value)
    }

    /// Consumes a number's syntax; returns where its integer part ends and whether it has a
    /// fraction or exponent.
    fn number_syntax(&mut self) -> Result<(usize, bool), Fail> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(Fail::Syntax);
                }
            }
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(Fail::Syntax),
        }
        let int_end = self.pos;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Fail::Syntax);
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(Fail::Syntax);
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            float = true;
        }
        Ok((int_end, float))
    }

    /// A number, typed as serde_json types it: positive integers u64, negative ones i64,
    /// `-0`, anything with a fraction or exponent, and integers beyond 64 bits f64.
    fn number(&mut self) -> Result<Number, Fail> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        let (int_end, float) = self.number_syntax()?;
        let text = &self.text[start..self.pos];
        if !float {
            let digits = &self.bytes[start + usize::from(negative)..int_end];
            let mut value: u64 = 0;
            let mut overflow = false;
            for &d in digits {
                match value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                {
                    Some(v) => value = v,
                    None => {
                        overflow = true;
                        break;
                    }
                }
            }
            if !overflow {
                if !negative {
                    return Ok(Number::U64(value));
                }
                let negated = (value as i64).wrapping_neg();
                return Ok(if negated >= 0 {
                    Number::F64(-(value as f64))
                } else {
                    Number::I64(negated)
                });
            }
        }
        let value: f64 = text.parse().map_err(|_| Fail::Syntax)?;
        if !value.is_finite() {
            return Err(Fail::Syntax);
        }
        Ok(Number::F64(value))
    }

    /// Skips one value, checking its syntax only (no nesting limit, escapes not decoded), as
    /// serde_json does for values it ignores or keeps as raw text.
    fn skip_value(&mut self) -> Result<(), Fail> {
        self.stack.clear();
        'value: loop {
            self.skip_ws();
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        self.stack.push(b'{');
                        self.skip_key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        self.stack.push(b'[');
                        continue 'value;
                    }
                }
                Some(b'"') => self.skip_string()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number_syntax()?;
                }
                _ => return Err(Fail::Syntax),
            }
            // After a value: close containers, or go on with the next element.
            loop {
                let Some(&open) = self.stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match (open, self.peek()) {
                    (_, Some(b',')) => {
                        self.pos += 1;
                        if open == b'{' {
                            self.skip_ws();
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                    (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                        self.pos += 1;
                        self.stack.pop();
                    }
                    _ => return Err(Fail::Syntax),
                }
            }
        }
    }

    /// `"key"` and `:` inside a skipped object.
    fn skip_key(&mut self) -> Result<(), Fail> {
        if self.peek() != Some(b'"') {
            return Err(Fail::Syntax);
        }
        self.skip_string()?;
        self.skip_ws();
        self.expect(b':')
    }

    /// A string's syntax: escapes well formed (any `\\uXXXX` accepted), no control bytes.
    fn skip_string(&mut self) -> Result<(), Fail> {
        self.pos += 1;
        loop {
            let rest = &self.bytes[self.pos..];
            let i = memchr::memchr2(b'"', b'\\', rest).ok_or(Fail::Syntax)?;
            if has_control(&rest[..i]) {
                return Err(Fail::Syntax);
            }
            self.pos += i + 1;
            if rest[i] == b'"' {
                return Ok(());
            }
            match self.peek() {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                Some(b'u') => {
                    self.pos += 1;
                    self.hex4()?;
                }
                _ => return Err(Fail::Syntax),
            }
        }
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
    fn short_keys_compare_like_slices() {
        let keys = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(same_key(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            }
            let mut changed = a.as_bytes().to_vec();
            if let Some(last) = changed.last_mut() {
                *last ^= 1;
                assert!(!same_key(a.as_bytes(), &changed));
                changed[0] ^= 2;
                assert!(!same_key(a.as_bytes(), &changed));
            }
        }
    }

    mod differential {
        //! The parser must accept exactly what serde_json accepts. Random records are
        //! serialized, mutated byte by byte, and decoded: where values are kept as text the
        //! parser must agree with serde_json's syntax check exactly; where it decodes them it
        //! must refuse all that serde_json's syntax check refuses and accept all that
        //! serde_json decodes. (`\\u` escapes are left out of the exact check: the parser
        //! decodes keys strictly, serde_json's syntax check does not; a unit test covers
        //! surrogates.)
        use super::*;
        use crate::infer::Inference;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::Bool),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<u64>().prop_map(serde_json::Value::from),
                prop::num::f64::NORMAL.prop_map(serde_json::Value::from),
                "[a-z\\\"\n\t ü/]{0,8}".prop_map(serde_json::Value::String),
                Just(serde_json::Value::String("2024-01-01T00:00:00Z".into())),
            ];
            leaf.prop_recursive(3, 20, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                    prop::collection::btree_map("[a-c]", inner, 0..4)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn record() -> impl Strategy<Value = serde_json::Value> {
            prop::collection::btree_map("[a-e]", value(), 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
        }

        const INSERTS: &[u8] = b",:\"{}[]\\0-.eEntf+ 9";

        fn mutate(text: &str, edits: &[(usize, usize, u8)]) -> Vec<u8> {
            let mut bytes = text.as_bytes().to_vec();
            for &(position, op, byte) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = position % bytes.len();
                match op % 3 {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, INSERTS[byte as usize % INSERTS.len()]),
                    _ => bytes[at] = INSERTS[byte as usize % INSERTS.len()],
                }
            }
            bytes
        }

        fn syntax_error(schema: &Schema, line: &[u8]) -> Option<bool> {
            let text = std::str::from_utf8(line).ok()?;
            if text.contains("\\u") || text.trim().is_empty() {
                return None;
            }
            let decoder = RecordDecoder::new(
                schema,
                DecodeMode::Fixed {
                    unknown_fields: UnknownFieldPolicy::Drop,
                    type_mismatch: TypeMismatchPolicy::Null,
                },
                1 << 20,
            );
            let chunk = Chunk {
                source: 0,
                data: line.to_vec(),
                first_line: 1,
                offset: 0,
                last: true,
            };
            let out = decoder.decode(&chunk);
            // A duplicate key is reported where it is found, before the rest is read.
            if out
                .rejects
                .first()
                .is_some_and(|r| r.kind == RejectKind::DuplicateKey)
            {
                return None;
            }
            let syntax = out
                .rejects
                .first()
                .is_some_and(|r| matches!(r.kind, RejectKind::InvalidJson | RejectKind::TooDeep));
            Some(syntax)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn the_parser_accepts_exactly_what_serde_json_accepts(
                record in record(),
                edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 0..4),
            ) {
                let original = serde_json::to_string(&record).unwrap();
                let line = mutate(&original, &edits);
                let mut inference = Inference::new(crate::schema::TimestampUnit::Microsecond);
                inference.add_line(original.as_bytes());
                let typed = inference.into_schema();
                let strings = Schema::new(
                    typed.fields.iter().map(|f| crate::schema::Field::new(f.name.clone(), FieldType::String)).collect(),
                );
                let Ok(text) = std::str::from_utf8(&line) else { return Ok(()) };
                // What serde_json accepts when it only skips values (syntax alone) ...
                let lenient = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
                // ... and when it decodes every value (numbers must be finite, nesting limited).
                let strict = serde_json::from_str::<serde_json::Value>(text).is_ok();
                // Top-level values kept as text: exactly the lenient rule.
                if let Some(ours) = syntax_error(&strings, &line) {
                    prop_assert_eq!(ours, !lenient, "line {:?} with string columns", text);
                }
                // Typed columns decode what fits and skip what does not: between the two rules.
                if let Some(ours) = syntax_error(&typed, &line) {
                    if !lenient {
                        prop_assert!(ours, "line {:?} is not JSON but was accepted", text);
                    }
                    if strict {
                        prop_assert!(!ours, "line {:?} is JSON but was refused (schema {:?})", text, typed);
                    }
                }
            }
        }

        #[test]
        fn surrogates_decode_in_pairs_and_alone_are_refused_where_decoded() {
            let schema = Schema::from_json(
                r#"{"fields":[{"name":"s","type":"string"},{"name":"o","type":"string"}]}"#,
            )
            .unwrap();
            let decoder = RecordDecoder::new(&schema, DecodeMode::Optimistic, 1 << 20);
            let chunk = |text: &str| Chunk {
                source: 0,
                data: text.as_bytes().to_vec(),
                first_line: 1,
                offset: 0,
                last: true,
            };
            let out = decoder.decode(&chunk(
                "{\"s\":\"\\ud83d\\ude80 ok\"}\n{\"s\":\"\\ud800\"}\n{\"o\":{\"x\":\"\\ud800\"}}\n",
            ));
            let batch = out.batch.unwrap();
            use arrow::array::AsArray;
            assert_eq!(batch.column(0).as_string::<i32>().value(0), "🚀 ok");
            assert_eq!(out.rejects.len(), 1, "{:?}", out.rejects);
            assert_eq!(out.rejects[0].line, 2);
            assert_eq!(out.rejects[0].kind, RejectKind::InvalidJson);
            // Kept as JSON text, the nested value is not decoded, and keeps its escape.
            assert_eq!(
                batch.column(1).as_string::<i32>().value(1),
                "{\"x\":\"\\ud800\"}"
            );
        }
    }
}
