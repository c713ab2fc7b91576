//! Column builders: an in-progress Arrow column per schema field, filled as a chunk is parsed.
//!
//! Every builder can be truncated back to a row count: a line's values are appended while it
//! is parsed, and if the line is then rejected its partial row is cut off again. That is what
//! lets the parser write straight into the columns (no per-line JSON tree) and still leave no
//! trace of a rejected line.
//!
//! Absent values are filled lazily: a struct's child may be shorter than the struct, its
//! missing rows being nulls. They are appended in bulk when the child next gets a value
//! ([`Column::pad_to`]) or when the struct is finished, so a record costs what it holds, not
//! one slot per column of the schema (a file with thousands of optional keys would otherwise
//! take rows × columns of memory and time).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow::array::{
    new_null_array, ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int64Array, ListArray,
    MapArray, RecordBatch, RecordBatchOptions, StringArray, StructArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, SchemaRef};

use super::plan::{ColumnPlan, FxBuild, StructPlan};
use crate::schema::TimestampUnit;

/// An in-progress column. Every variant can be truncated back to a row count, which is what
/// makes rejecting a half-parsed line exact.
pub(super) enum Column {
    Null(usize),
    Boolean(BooleanBufferBuilder, NullBufferBuilder),
    Int64(Vec<i64>, NullBufferBuilder),
    Float64(Vec<f64>, NullBufferBuilder),
    /// Unscaled values, precision, scale.
    Decimal(Vec<i128>, NullBufferBuilder, u8, u8),
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
    Map(MapColumn),
}

/// A `MAP<string, V>` column: per row, a run of entries (a key and a value each).
pub(super) struct MapColumn {
    /// Entry offsets per row (`offsets[i]..offsets[i + 1]` are row `i`'s entries).
    pub(super) offsets: Vec<i32>,
    /// A string column, never null.
    pub(super) keys: Box<Column>,
    pub(super) values: Box<Column>,
    pub(super) nulls: NullBufferBuilder,
    /// The entries field (`key_value` { `key`, `value` }).
    pub(super) entries: FieldRef,
    /// Scratch: the case-folded keys of the object being parsed, to refuse a repeated key
    /// (as record validation does for every object) without a quadratic scan of big maps.
    pub(super) seen: HashSet<Box<str>, FxBuild>,
}

impl MapColumn {
    /// Entries so far (the length the key and value columns must have).
    pub(super) fn entries(&self) -> usize {
        *self
            .offsets
            .last()
            .expect("invariant: offsets start with 0") as usize
    }
}
pub(super) struct StructColumn {
    pub(super) plan: Arc<StructPlan>,
    pub(super) children: Vec<Column>,
    pub(super) nulls: NullBufferBuilder,
    pub(super) len: usize,
}

impl StructColumn {
    pub(super) fn new(plan: &Arc<StructPlan>) -> Self {
        StructColumn {
            plan: Arc::clone(plan),
            children: plan.children.iter().map(Column::new).collect(),
            nulls: NullBufferBuilder::new(0),
            len: 0,
        }
    }

    /// A null struct: its children are left short (null) until they are padded.
    pub(super) fn append_null(&mut self) {
        self.pad_to(self.len + 1);
    }

    /// Appends nulls up to `len` rows (no-op when already that long); children untouched.
    fn pad_to(&mut self, len: usize) {
        if len > self.len {
            self.nulls.append_n_nulls(len - self.len);
            self.len = len;
        }
    }

    /// Cuts the column back to `len` rows; children may be longer than the struct itself
    /// while a row is being parsed, and are cut too.
    pub(super) fn truncate(&mut self, len: usize) {
        for child in &mut self.children {
            child.truncate(len);
        }
        self.nulls.truncate(len);
        self.len = self.len.min(len);
    }

    fn finish_columns(&mut self) -> Vec<ArrayRef> {
        let len = self.len;
        // Columns that got no value in this batch (most of them when records are sparse: 6
        // keys of 5,000 leave half the columns empty in a batch of 500 rows) share one
        // all-null array per type instead of allocating and filling one each.
        let mut absent: Vec<(&DataType, ArrayRef)> = Vec::new();
        let fields = self.plan.arrow_fields.iter();
        self.children
            .iter_mut()
            .zip(fields)
            .map(|(child, field)| {
                if child.len() == 0 && len > 0 && child.is_scalar() {
                    let data_type = field.data_type();
                    if let Some((_, array)) = absent.iter().find(|(t, _)| *t == data_type) {
                        return Arc::clone(array);
                    }
                    let array = new_null_array(data_type, len);
                    absent.push((data_type, Arc::clone(&array)));
                    return array;
                }
                child.pad_to(len);
                child.finish()
            })
            .collect()
    }

    pub(super) fn finish_batch(&mut self, schema: &SchemaRef) -> RecordBatch {
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
            ColumnPlan::Decimal(precision, scale) => {
                Column::Decimal(Vec::new(), nulls(), *precision, *scale)
            }
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
            ColumnPlan::Map(values, entries) => Column::Map(MapColumn {
                offsets: vec![0],
                keys: Box::new(Column::new(&ColumnPlan::String)),
                values: Box::new(Column::new(values)),
                nulls: nulls(),
                entries: Arc::clone(entries),
                seen: HashSet::default(),
            }),
        }
    }

    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Column::Null(_) => "null",
            Column::Boolean(..) => "boolean",
            Column::Int64(..) => "int64",
            Column::Float64(..) => "float64",
            Column::Decimal(..) => "decimal",
            Column::Timestamp(..) => "timestamp",
            Column::String { .. } => "string",
            Column::Struct(s) if s.children.is_empty() => "empty struct",
            Column::Struct(_) => "struct",
            Column::List { .. } => "list",
            Column::Map(_) => "map",
        }
    }

    /// Whether this is a column without children (its all-null array is one buffer of nulls
    /// and zeros, whatever its length).
    fn is_scalar(&self) -> bool {
        !matches!(
            self,
            Column::Struct(_) | Column::List { .. } | Column::Map(_)
        )
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Column::Null(len) => *len,
            Column::Boolean(_, nulls) => nulls.len(),
            Column::Int64(values, _) => values.len(),
            Column::Float64(values, _) => values.len(),
            Column::Decimal(values, ..) => values.len(),
            Column::Timestamp(values, ..) => values.len(),
            Column::String { offsets, .. }
            | Column::List { offsets, .. }
            | Column::Map(MapColumn { offsets, .. }) => offsets.len() - 1,
            Column::Struct(s) => s.len,
        }
    }

    /// Appends nulls until the column is `len` rows long (the rows a struct's child was
    /// absent from), in bulk.
    pub(super) fn pad_to(&mut self, len: usize) {
        let missing = len.saturating_sub(self.len());
        if missing == 0 {
            return;
        }
        match self {
            Column::Null(n) => *n = len,
            Column::Boolean(values, nulls) => {
                values.append_n(missing, false);
                nulls.append_n_nulls(missing);
            }
            Column::Int64(values, nulls) | Column::Timestamp(values, nulls, ..) => {
                values.resize(len, 0);
                nulls.append_n_nulls(missing);
            }
            Column::Float64(values, nulls) => {
                values.resize(len, 0.0);
                nulls.append_n_nulls(missing);
            }
            Column::Decimal(values, nulls, ..) => {
                values.resize(len, 0);
                nulls.append_n_nulls(missing);
            }
            Column::String { offsets, nulls, .. }
            | Column::List { offsets, nulls, .. }
            | Column::Map(MapColumn { offsets, nulls, .. }) => {
                let last = *offsets.last().expect("invariant: offsets start with 0");
                offsets.resize(len + 1, last);
                nulls.append_n_nulls(missing);
            }
            Column::Struct(s) => s.pad_to(len),
        }
    }

    pub(super) fn append_null(&mut self) {
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
            Column::Decimal(values, nulls, ..) => {
                values.push(0);
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
            Column::List { offsets, nulls, .. } | Column::Map(MapColumn { offsets, nulls, .. }) => {
                offsets.push(*offsets.last().expect("invariant: offsets start with 0"));
                nulls.append_null();
            }
        }
    }

    pub(super) fn truncate(&mut self, len: usize) {
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
            Column::Decimal(values, nulls, ..) => {
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
            Column::Map(map) => {
                map.offsets.truncate(len + 1);
                let entries = map.entries();
                map.keys.truncate(entries);
                map.values.truncate(entries);
                map.nulls.truncate(len);
            }
        }
    }

    pub(super) fn push_str(&mut self, s: &str) {
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

    /// Row `row` of a string column (empty for any other column).
    pub(super) fn string_at(&self, row: usize) -> &str {
        match self {
            Column::String { offsets, data, .. } => {
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                std::str::from_utf8(&data[start..end]).unwrap_or_default()
            }
            _ => "",
        }
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
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
            Column::Decimal(values, nulls, precision, scale) => Arc::new(
                Decimal128Array::new(ScalarBuffer::from(std::mem::take(values)), nulls.finish())
                    .with_precision_and_scale(*precision, *scale as i8)
                    .expect("invariant: a schema's decimal precision and scale are valid"),
            ),
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
            Column::Map(map) => {
                let offsets = std::mem::replace(&mut map.offsets, vec![0]);
                let DataType::Struct(fields) = map.entries.data_type() else {
                    unreachable!("invariant: map entries are a struct")
                };
                let entries = StructArray::new(
                    fields.clone(),
                    vec![map.keys.finish(), map.values.finish()],
                    None,
                );
                Arc::new(MapArray::new(
                    Arc::clone(&map.entries),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    entries,
                    map.nulls.finish(),
                    false,
                ))
            }
        }
    }
}
