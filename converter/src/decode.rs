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

use std::borrow::Cow;
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
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

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
            let mut de = serde_json::Deserializer::from_str(text);
            let result = RowSeed {
                root: &mut root,
                ctx: &mut ctx,
            }
            .deserialize(&mut de)
            .and_then(|()| de.end());
            let error = match result {
                Ok(()) => {
                    stats.rows += 1;
                    stats.fields_dropped += ctx.dropped;
                    stats.values_nulled += ctx.nulled;
                    continue;
                }
                Err(error) => error,
            };
            root.truncate(rows_before);
            let Some(issue) = ctx.issue.take() else {
                let InvalidRecord { kind, reason } = json_error(&error, text);
                reject(kind, reason, &mut stats);
                continue;
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
            Some(name) if &**name == key => Some(hint),
            _ => self.index.get(key).copied(),
        }
    }
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

    /// Appends one raw JSON value to a string column: strings as they are, anything else as
    /// its JSON text.
    fn push_raw(&mut self, raw: &str) {
        let bytes = raw.as_bytes();
        if raw == "null" {
            self.append_null();
        } else if bytes.first() == Some(&b'"') {
            let inner = &raw[1..raw.len() - 1];
            if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
                self.push_str(inner);
            } else {
                let unescaped: String =
                    serde_json::from_str(raw).expect("invariant: a raw JSON string unescapes");
                self.push_str(&unescaped);
            }
        } else {
            self.push_str(raw);
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

    fn fail<E: de::Error>(&mut self, issue: Issue) -> Result<(), E> {
        self.issue = Some(issue);
        Err(E::custom("record rejected"))
    }

    /// Applies the mismatch policy to `column`, which has been handed a value it cannot hold.
    fn mismatch<E: de::Error>(
        &mut self,
        column: &mut Column,
        found: String,
        detail: Option<String>,
    ) -> Result<(), E> {
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

struct RowSeed<'a> {
    root: &'a mut StructColumn,
    ctx: &'a mut LineCtx,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.ctx.fail(Issue::NotAnObject { found: "null" })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.ctx.fail(Issue::NotAnObject { found: "a boolean" })
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.ctx.fail(Issue::NotAnObject { found: "a number" })
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.ctx.fail(Issue::NotAnObject { found: "a number" })
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.ctx.fail(Issue::NotAnObject { found: "a number" })
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.ctx.fail(Issue::NotAnObject { found: "a string" })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.ctx.fail(Issue::NotAnObject { found: "an array" })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        decode_object(self.root, map, self.ctx)
    }
}

fn decode_object<'de, A: MapAccess<'de>>(
    column: &mut StructColumn,
    mut map: A,
    ctx: &mut LineCtx,
) -> Result<(), A::Error> {
    let row = column.len;
    let mut hint = 0usize;
    while let Some(key) = map.next_key_seed(KeySeed {
        plan: &column.plan,
        hint,
    })? {
        match key {
            Key::Known(index) => {
                hint = index + 1;
                let child = &mut column.children[index];
                if child.len() > row {
                    let name = column.plan.names[index].to_string();
                    return ctx.fail(Issue::DuplicateKey { name });
                }
                if let Err(e) = map.next_value_seed(ValueSeed {
                    column: child,
                    ctx: &mut *ctx,
                }) {
                    ctx.reversed_path
                        .push(Segment::Key(column.plan.names[index].to_string()));
                    return Err(e);
                }
            }
            Key::Unknown(name) => match ctx.mode {
                DecodeMode::Fixed {
                    unknown_fields: UnknownFieldPolicy::Drop,
                    ..
                } => {
                    map.next_value::<IgnoredAny>()?;
                    ctx.dropped += 1;
                }
                _ => {
                    return ctx.fail(Issue::UnknownField {
                        name: name.into_owned(),
                    })
                }
            },
        }
    }
    for child in &mut column.children {
        if child.len() == row {
            child.append_null();
        }
    }
    column.nulls.append_non_null();
    column.len += 1;
    Ok(())
}

enum Key<'de> {
    Known(usize),
    Unknown(Cow<'de, str>),
}

struct KeySeed<'a> {
    plan: &'a StructPlan,
    hint: usize,
}

impl<'de, 'a> DeserializeSeed<'de> for KeySeed<'a> {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for KeySeed<'a> {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(match self.plan.lookup(key, self.hint) {
            Some(index) => Key::Known(index),
            None => Key::Unknown(Cow::Borrowed(key)),
        })
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(match self.plan.lookup(key, self.hint) {
            Some(index) => Key::Known(index),
            None => Key::Unknown(Cow::Owned(key.to_owned())),
        })
    }
}

struct ValueSeed<'a> {
    column: &'a mut Column,
    ctx: &'a mut LineCtx,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if let Column::String { .. } = self.column {
            let raw = <&'de RawValue>::deserialize(deserializer)?;
            self.column.push_raw(raw.get());
            return Ok(());
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.column.append_null();
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        match self.column {
            Column::Boolean(values, nulls) => {
                values.append(v);
                nulls.append_non_null();
                Ok(())
            }
            column => self.ctx.mismatch(column, format!("boolean {v}"), None),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self.column {
            Column::Int64(values, nulls) => {
                values.push(v);
                nulls.append_non_null();
                Ok(())
            }
            Column::Float64(values, nulls) => {
                values.push(v as f64);
                nulls.append_non_null();
                Ok(())
            }
            column => self.ctx.mismatch(column, format!("integer {v}"), None),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if let Ok(v) = i64::try_from(v) {
            return self.visit_i64(v);
        }
        match self.column {
            Column::Float64(values, nulls) => {
                values.push(v as f64);
                nulls.append_non_null();
                Ok(())
            }
            column => {
                let detail = matches!(column, Column::Int64(..))
                    .then(|| "outside the int64 range".to_string());
                self.ctx.mismatch(column, format!("integer {v}"), detail)
            }
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match self.column {
            Column::Float64(values, nulls) => {
                values.push(v);
                nulls.append_non_null();
                Ok(())
            }
            column => self.ctx.mismatch(column, format!("number {v}"), None),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.column {
            Column::Timestamp(values, nulls, unit, _) => match parse_timestamp(v, *unit) {
                Ok(t) => {
                    values.push(t);
                    nulls.append_non_null();
                    Ok(())
                }
                Err(e) => {
                    let detail = format!("{e} ({})", unit.as_str());
                    self.ctx.mismatch(self.column, preview(v), Some(detail))
                }
            },
            column => self.ctx.mismatch(column, preview(v), None),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Column::List {
            offsets,
            child,
            nulls,
            ..
        } = self.column
        else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return self.ctx.mismatch(self.column, "an array".to_string(), None);
        };
        let mut index = 0usize;
        loop {
            match seq.next_element_seed(ValueSeed {
                column: child,
                ctx: &mut *self.ctx,
            }) {
                Ok(Some(())) => index += 1,
                Ok(None) => break,
                Err(e) => {
                    self.ctx.reversed_path.push(Segment::Index(index));
                    return Err(e);
                }
            }
        }
        offsets.push(
            i32::try_from(child.len()).expect("invariant: a chunk holds less than 2^31 list items"),
        );
        nulls.append_non_null();
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.column {
            Column::Struct(column) => decode_object(column, map, self.ctx),
            column => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                self.ctx.mismatch(column, "an object".to_string(), None)
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
}
