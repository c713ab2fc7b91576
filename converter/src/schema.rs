//! The logical schema of an NDJSON input, its JSON file format, the widening rules that merge
//! two schemas, and its mapping to Arrow.
//!
//! A schema is a list of named, always-nullable fields. JSON has no types beyond null, bool,
//! number, string, array and object, so the logical types mirror those, plus `int64` vs
//! `float64` for numbers and `timestamp` for RFC 3339 strings.
//!
//! # File format (`--schema FILE`, printed by `ndjson-parquet schema`)
//!
//! ```json
//! {
//!   "format": "ndjson-parquet.schema",
//!   "version": 1,
//!   "fields": [
//!     {"name": "id", "type": "int64"},
//!     {"name": "at", "type": "timestamp", "unit": "us", "timezone": "UTC"},
//!     {"name": "user", "type": "struct", "fields": [{"name": "name", "type": "string"}]},
//!     {"name": "tags", "type": "list", "items": {"type": "string"}},
//!     {"name": "counts", "type": "map", "values": {"type": "int64"}}
//!   ]
//! }
//! ```
//!
//! `type` is one of `null`, `boolean`, `int64`, `float64`, `string`, `timestamp` (with `unit`
//! `ms`, `us` or `ns`, default `us`, and `timezone`, default `UTC`), `struct` (with `fields`)
//! `list` (with `items`, a type description without a name) and `map` (string keys, with
//! `values`, a type description without a name). `format` and `version` are
//! optional when reading; unknown keys are refused so that a typo is never ignored.
//!
//! # Widening rules (how the types of two values merge)
//!
//! * `null` widens to anything: a field seen only as null stays `null` until a value shows up.
//! * `int64` with `float64` is `float64`. Integers outside the int64 range count as floats.
//! * Two structs merge field by field (union, in order of first appearance); two lists merge
//!   their item types; two maps merge their value types. A map and a struct merge into a map
//!   whose value type also holds every field of the struct: inference turns an object whose
//!   keys are data into a map (see [`MAP_KEY_THRESHOLD`]), and parts of the input that saw
//!   fewer of its keys still inferred a struct.
//! * Any other conflict (boolean with number, timestamp with another string, object or list
//!   with a scalar, object with list) is `string`: the column holds strings as they are and any
//!   other value as its JSON text, so nothing is lost.
//!
//! # How types are written to Parquet
//!
//! A `null` field (only nulls seen) and an empty `struct` (only `{}` seen) have no Parquet
//! representation that every reader accepts (Parquet has no empty groups, and Spark rejects
//! the `UNKNOWN` logical type), so both are written as nullable UTF-8 columns: nulls stay null
//! and `{}` is written as the text `{}`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit};
use serde::{Deserialize, Serialize};

/// Marker written into schema files so that a file of another format is recognised early.
pub const SCHEMA_FORMAT: &str = "ndjson-parquet.schema";
/// Version of the schema file format this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Resolution of a timestamp column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimestampUnit {
    /// Milliseconds since the Unix epoch.
    #[serde(rename = "ms")]
    Millisecond,
    /// Microseconds since the Unix epoch (the default).
    #[serde(rename = "us")]
    Microsecond,
    /// Nanoseconds since the Unix epoch (years 1677 to 2262 only).
    #[serde(rename = "ns")]
    Nanosecond,
}

impl TimestampUnit {
    /// Number of fractional-second digits this unit keeps.
    pub fn fraction_digits(self) -> u32 {
        match self {
            TimestampUnit::Millisecond => 3,
            TimestampUnit::Microsecond => 6,
            TimestampUnit::Nanosecond => 9,
        }
    }

    /// The name used on the command line and in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampUnit::Millisecond => "ms",
            TimestampUnit::Microsecond => "us",
            TimestampUnit::Nanosecond => "ns",
        }
    }

    fn to_arrow(self) -> TimeUnit {
        match self {
            TimestampUnit::Millisecond => TimeUnit::Millisecond,
            TimestampUnit::Microsecond => TimeUnit::Microsecond,
            TimestampUnit::Nanosecond => TimeUnit::Nanosecond,
        }
    }
}

impl std::str::FromStr for TimestampUnit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ms" => Ok(TimestampUnit::Millisecond),
            "us" => Ok(TimestampUnit::Microsecond),
            "ns" => Ok(TimestampUnit::Nanosecond),
            other => Err(format!(
                "unknown timestamp unit `{other}` (expected ms, us or ns)"
            )),
        }
    }
}

/// The logical type of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// Only nulls seen so far; written as a nullable string column.
    Null,
    /// `true` / `false`.
    Boolean,
    /// Integers that fit in a signed 64-bit integer.
    Int64,
    /// JSON numbers, as IEEE 754 doubles.
    Float64,
    /// Exact decimal numbers: `precision` digits in all, `scale` of them after the point
    /// (Arrow `Decimal128`, Parquet `DECIMAL`). Inference uses precision 38.
    Decimal {
        /// Total number of digits, 1 to 38.
        precision: u8,
        /// Digits after the decimal point, at most `precision`.
        scale: u8,
    },
    /// What inference has seen of a numeric column so far; resolved (by
    /// [`NumberFacts::resolve`]) to `int64`, `float64`, `decimal` or `string` before a schema
    /// leaves inference, so it never appears in a schema a caller gets.
    #[doc(hidden)]
    Number(NumberFacts),
    /// Strings as they are; any other JSON value as its JSON text.
    String,
    /// RFC 3339 strings with a time zone offset, stored as an instant.
    Timestamp {
        /// Stored resolution; a value with finer precision does not fit.
        unit: TimestampUnit,
        /// Time zone recorded in the Arrow/Parquet schema (values are instants regardless).
        timezone: Arc<str>,
    },
    /// An object with these fields (none: written as the JSON text `{}`).
    Struct(Vec<Field>),
    /// An array whose items all have this type.
    List(Box<FieldType>),
    /// An object whose keys are data rather than names: Parquet `MAP<string, V>`, where V
    /// (this type) holds every value of every key. Inference chooses it for an object with
    /// more than [`MAP_KEY_THRESHOLD`] distinct keys, so that such objects do not become
    /// thousands of columns.
    Map(Box<FieldType>),
}

/// A named field of a struct or of the top-level record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The JSON key.
    pub name: String,
    /// The column's logical type; the column is always nullable, so a missing key is null.
    pub field_type: FieldType,
}

impl Field {
    /// A field of the given name and type.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Field {
            name: name.into(),
            field_type,
        }
    }
}

/// The schema of one NDJSON record: the fields of its top-level object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// Top-level fields in column order.
    pub fields: Vec<Field>,
    /// The top-level `MAP<string, V>` field (one of `fields`) that holds every top-level key
    /// the other fields do not name: inference makes one when the records have more distinct
    /// keys than `--map-keys` and most of them are rare, so that a sparse record costs what it
    /// holds instead of a slot in thousands of columns (see [`OVERFLOW_NAME`]).
    pub overflow: Option<String>,
}

/// The overflow column's name; `_overflow_2`, `_overflow_3`, ... when a field of the record
/// is already called that (letter case ignored).
pub const OVERFLOW_NAME: &str = "_overflow";

/// Keys present in fewer than one record in this many go into the overflow column (when the
/// record has more distinct keys than `--map-keys`).
pub const OVERFLOW_RARITY: u64 = 100;

/// A schema file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The text is not valid JSON or does not have the documented shape.
    #[error("not a valid schema file: {0}")]
    Syntax(#[source] serde_json::Error),
    /// The JSON is well formed but describes something invalid.
    #[error("invalid schema at `{path}`: {message}")]
    Invalid {
        /// Dotted path of the offending field (`$` for the top level).
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl FieldType {
    /// The UTC timestamp type of the given unit, as inference produces it.
    pub fn utc_timestamp(unit: TimestampUnit) -> Self {
        FieldType::Timestamp {
            unit,
            timezone: Arc::from("UTC"),
        }
    }

    /// Short name used in messages (`int64`, `struct`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Null => "null",
            FieldType::Boolean => "boolean",
            FieldType::Int64 => "int64",
            FieldType::Float64 => "float64",
            FieldType::Decimal { .. } => "decimal",
            FieldType::Number(facts) => facts.resolve().name(),
            FieldType::String => "string",
            FieldType::Timestamp { .. } => "timestamp",
            FieldType::Struct(_) => "struct",
            FieldType::List(_) => "list",
            FieldType::Map(_) => "map",
        }
    }

    /// Widens `self` so that it also holds every value of `other` (see the module docs).
    pub fn merge(&mut self, other: &FieldType) {
        use FieldType::*;
        match (&mut *self, other) {
            (_, Null) => {}
            (Null, _) => *self = other.clone(),
            (Struct(mine), Struct(theirs)) => merge_fields(mine, theirs),
            (List(mine), List(theirs)) => mine.merge(theirs),
            (Map(mine), Map(theirs)) => mine.merge(theirs),
            (Map(mine), Struct(theirs)) => {
                for field in theirs {
                    mine.merge(&field.field_type);
                }
            }
            (Struct(mine), Map(theirs)) => {
                let mut values = (**theirs).clone();
                for field in mine.iter() {
                    values.merge(&field.field_type);
                }
                *self = Map(Box::new(values));
            }
            (Number(mine), theirs) if theirs.is_numeric() => mine.merge(&NumberFacts::of(theirs)),
            (mine, Number(theirs)) if mine.is_numeric() => {
                let mut facts = NumberFacts::of(mine);
                facts.merge(theirs);
                *self = Number(facts);
            }
            (a, b) if *a == *b => {}
            (a, b) if a.is_numeric() && b.is_numeric() => {
                let mut facts = NumberFacts::of(a);
                facts.merge(&NumberFacts::of(b));
                *self = facts.resolve();
            }
            _ => *self = String,
        }
    }

    /// Whether this is one of the number types (`int64`, `float64`, `decimal`).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            FieldType::Int64
                | FieldType::Float64
                | FieldType::Decimal { .. }
                | FieldType::Number(_)
        )
    }

    /// The type with every inference-internal [`FieldType::Number`] resolved.
    pub fn resolved(&self) -> FieldType {
        match self {
            FieldType::Number(facts) => facts.resolve(),
            FieldType::Struct(fields) => FieldType::Struct(
                fields
                    .iter()
                    .map(|f| Field::new(f.name.clone(), f.field_type.resolved()))
                    .collect(),
            ),
            FieldType::List(items) => FieldType::List(Box::new(items.resolved())),
            FieldType::Map(values) => FieldType::Map(Box::new(values.resolved())),
            other => other.clone(),
        }
    }

    fn to_arrow(&self) -> DataType {
        match self {
            FieldType::Null | FieldType::String => DataType::Utf8,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float64 => DataType::Float64,
            FieldType::Decimal { precision, scale } => {
                DataType::Decimal128(*precision, *scale as i8)
            }
            FieldType::Number(facts) => facts.resolve().to_arrow(),
            FieldType::Timestamp { unit, timezone } => {
                DataType::Timestamp(unit.to_arrow(), Some(Arc::clone(timezone)))
            }
            FieldType::Struct(fields) if fields.is_empty() => DataType::Utf8,
            FieldType::Struct(fields) => DataType::Struct(arrow_fields(fields)),
            FieldType::List(items) => {
                DataType::List(Arc::new(ArrowField::new_list_field(items.to_arrow(), true)))
            }
            FieldType::Map(values) => DataType::Map(map_entries_field(values.to_arrow()), false),
        }
    }
}

/// The Arrow entries field of a map whose values are `values`: Parquet's canonical names
/// (`key_value` { `key`, `value` }, from the Parquet format's logical type docs), keys
/// non-null UTF-8, values nullable. The parquet crate writes these names into the file, and
/// pyarrow, DuckDB, Spark and Athena read such a group annotated `MAP` back as a map.
pub(crate) fn map_entries_field(values: DataType) -> Arc<ArrowField> {
    Arc::new(ArrowField::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            ArrowField::new("key", DataType::Utf8, false),
            ArrowField::new("value", values, true),
        ])),
        false,
    ))
}

/// Most distinct keys an object (below the top-level record) may have and still be inferred
/// as a struct; one more and it is inferred as a [`FieldType::Map`]. Keys beyond this many
/// are data (ids, dates, counters) rather than names: as columns they would explode the
/// schema (one column per key, and a slot in every row for each). The top-level record is
/// never a map (a Parquet file's root is a group of columns); it is bounded by
/// [`MAX_LEAF_COLUMNS`] instead.
pub const MAP_KEY_THRESHOLD: usize = 1_000;

/// Deepest Parquet schema level (the root is 0; a struct adds one level, a list two) at which
/// pyarrow still opens a file: 99 nested objects or 49 nested lists open, 100 or 50 do not
/// ("Parquet schema too deeply nested"). Records deeper than this are rejected as `too_deep`.
pub const MAX_PARQUET_DEPTH: u32 = 99;
/// Longest key, in bytes, that may become a column name (Glue and Athena's limit).
pub const MAX_NAME_BYTES: usize = 255;

/// Most leaf columns a schema may have. Every row of a Parquet file (and of each Arrow batch
/// written to it) has a slot in every leaf column, so memory and time grow with rows ×
/// columns: 10,000 distinct keys over 10,000 lines took 1.3 GB, 30,000 took 9.9 GB. Beyond
/// this many columns, keys are data rather than names: give a `--schema` with the fields
/// wanted (and `--unknown-fields drop`), or restructure the input.
pub const MAX_LEAF_COLUMNS: usize = 10_000;

/// A column name as readers that ignore case compare it (Athena, Glue, Hive, Spark): lower
/// case. Names that fold to the same text are one column (see the README, "Schema inference
/// and widening").
pub fn fold_case(name: &str) -> std::borrow::Cow<'_, str> {
    if name
        .bytes()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        std::borrow::Cow::Owned(name.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Largest magnitude up to which every integer is exactly a `float64` (2^53).
pub const F64_EXACT_INT: u128 = 1 << 53;
/// Most digits a `decimal` holds (Arrow `Decimal128`).
pub const MAX_DECIMAL_DIGITS: u32 = 38;

/// What inference has seen of the numbers of one column: enough to pick, once all of them are
/// known, the narrowest type that holds every one exactly (see the module docs). Merging is a
/// union (flags or-ed, digit counts maxed), so it is associative and commutative: the result
/// does not depend on how the input was split between threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NumberFacts {
    /// Some number had a fraction or an exponent (`1.5`, `1.0`, `1e3`).
    pub fraction: bool,
    /// Some integer was beyond ±2^53, so not exactly a `float64`.
    pub big: bool,
    /// Some integer was outside the int64 range.
    pub huge: bool,
    /// Most digits before the decimal point of any value (exactly, exponent applied).
    pub int_digits: u32,
    /// Most digits after the decimal point of any value (trailing zeros dropped).
    pub scale: u32,
}

/// A JSON number's exact decimal shape: `negative`, significant digits, and the power of ten
/// they are multiplied by.
pub(crate) struct DecimalText<'a> {
    negative: bool,
    integer: &'a [u8],
    fraction: &'a [u8],
    exponent: i64,
    is_integer: bool,
}

impl<'a> DecimalText<'a> {
    /// Splits a number that is valid JSON number syntax.
    pub(crate) fn parse(text: &'a str) -> DecimalText<'a> {
        let mut bytes = text.as_bytes();
        let negative = bytes.first() == Some(&b'-');
        if negative {
            bytes = &bytes[1..];
        }
        let int_end = bytes
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(bytes.len());
        let integer = &bytes[..int_end];
        let mut rest = &bytes[int_end..];
        let mut fraction: &[u8] = &[];
        if rest.first() == Some(&b'.') {
            let end = rest[1..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(rest.len(), |p| p + 1);
            fraction = &rest[1..end];
            rest = &rest[end..];
        }
        let mut exponent = 0i64;
        if matches!(rest.first(), Some(b'e' | b'E')) {
            let (sign, digits) = match rest.get(1) {
                Some(b'-') => (-1, &rest[2..]),
                Some(b'+') => (1, &rest[2..]),
                _ => (1, &rest[1..]),
            };
            for &d in digits {
                // Saturates far beyond any decimal: such a number is kept as text anyway.
                exponent = (exponent * 10 + i64::from(d - b'0')).min(1_000_000);
            }
            exponent *= sign;
        }
        DecimalText {
            negative,
            integer,
            fraction,
            is_integer: fraction.is_empty() && !matches!(rest.first(), Some(b'e' | b'E')),
            exponent,
        }
    }

    /// The significant digits (no leading or trailing zeros) and the power of ten that scales
    /// them; no digits for zero.
    fn significant(&self) -> (Vec<u8>, i64) {
        let mut digits: Vec<u8> = self.integer.iter().chain(self.fraction).copied().collect();
        let mut power = self.exponent - self.fraction.len() as i64;
        let lead = digits.iter().take_while(|&&d| d == b'0').count();
        digits.drain(..lead);
        while digits.last() == Some(&b'0') {
            digits.pop();
            power += 1;
        }
        (digits, power)
    }

    /// The facts this one number contributes.
    pub(crate) fn facts(&self) -> NumberFacts {
        if self.is_integer {
            let magnitude = self.integer.iter().try_fold(0u128, |v, d| {
                v.checked_mul(10)?.checked_add(u128::from(d - b'0'))
            });
            let limit = if self.negative {
                1u128 << 63
            } else {
                (1u128 << 63) - 1
            };
            return NumberFacts {
                fraction: false,
                big: magnitude.is_none_or(|m| m > F64_EXACT_INT),
                huge: magnitude.is_none_or(|m| m > limit),
                int_digits: self.integer.len() as u32,
                scale: 0,
            };
        }
        let (digits, power) = self.significant();
        let n = digits.len() as i64;
        NumberFacts {
            fraction: true,
            big: false,
            huge: false,
            int_digits: (n + power).clamp(0, 1_000_000) as u32,
            scale: (-power).clamp(0, 1_000_000) as u32,
        }
    }

    /// The value as a `Decimal128(precision, scale)` integer, if it fits exactly.
    pub(crate) fn decimal(&self, precision: u8, scale: u8) -> Option<i128> {
        let (digits, power) = self.significant();
        let shift = power + i64::from(scale);
        if shift < 0 || digits.len() as i64 + shift > i64::from(precision) {
            return if digits.is_empty() { Some(0) } else { None };
        }
        let mut value: i128 = 0;
        for d in digits {
            value = value * 10 + i128::from(d - b'0');
        }
        value *= 10i128.pow(shift as u32);
        Some(if self.negative { -value } else { value })
    }
}

impl NumberFacts {
    /// The facts of one JSON number (its exact text).
    pub fn of_text(text: &str) -> NumberFacts {
        DecimalText::parse(text).facts()
    }

    /// The least facts a column of type `field_type` implies (for widening a schema given
    /// without its facts).
    pub fn of(field_type: &FieldType) -> NumberFacts {
        match field_type {
            FieldType::Number(facts) => *facts,
            FieldType::Float64 => NumberFacts {
                fraction: true,
                ..NumberFacts::default()
            },
            FieldType::Decimal { scale, .. } => NumberFacts {
                fraction: *scale > 0,
                big: true,
                huge: *scale == 0,
                int_digits: 0,
                scale: u32::from(*scale),
            },
            _ => NumberFacts::default(),
        }
    }

    /// Adds what `other` has seen.
    pub fn merge(&mut self, other: &NumberFacts) {
        self.fraction |= other.fraction;
        self.big |= other.big;
        self.huge |= other.huge;
        self.int_digits = self.int_digits.max(other.int_digits);
        self.scale = self.scale.max(other.scale);
    }

    /// Whether `other` adds nothing to these facts.
    pub fn covers(&self, other: &NumberFacts) -> bool {
        let mut merged = *self;
        merged.merge(other);
        merged == *self
    }

    /// The narrowest type that holds every number seen exactly (see the module docs).
    pub fn resolve(&self) -> FieldType {
        let decimal = |scale: u32| {
            if self.int_digits + scale <= MAX_DECIMAL_DIGITS {
                FieldType::Decimal {
                    precision: MAX_DECIMAL_DIGITS as u8,
                    scale: scale as u8,
                }
            } else {
                FieldType::String
            }
        };
        match (self.fraction, self.big, self.huge) {
            (false, _, false) => FieldType::Int64,
            (false, _, true) => decimal(0),
            (true, false, _) => FieldType::Float64,
            (true, true, _) => decimal(self.scale),
        }
    }
}

/// Merges `theirs` into `mine`: common fields widen, new fields are appended in order.
pub(crate) fn merge_fields(mine: &mut Vec<Field>, theirs: &[Field]) {
    // Small structs are the norm; a linear scan beats hashing for them.
    if mine.len() * theirs.len() <= 256 {
        for field in theirs {
            match mine.iter_mut().find(|f| f.name == field.name) {
                Some(existing) => existing.field_type.merge(&field.field_type),
                None => mine.push(field.clone()),
            }
        }
        return;
    }
    let mut index: HashMap<String, usize> = mine
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.clone(), i))
        .collect();
    for field in theirs {
        match index.get(&field.name) {
            Some(&i) => mine[i].field_type.merge(&field.field_type),
            None => {
                index.insert(field.name.clone(), mine.len());
                mine.push(field.clone());
            }
        }
    }
}

fn arrow_fields(fields: &[Field]) -> Fields {
    fields
        .iter()
        .map(|f| ArrowField::new(f.name.clone(), f.field_type.to_arrow(), true))
        .collect()
}

impl Schema {
    /// A schema of the given top-level fields.
    pub fn new(fields: Vec<Field>) -> Self {
        Schema {
            fields,
            overflow: None,
        }
    }

    /// A schema whose last field, `name`, is the overflow map of the keys `fields` do not
    /// name, with values of type `values`.
    pub fn with_overflow(mut fields: Vec<Field>, name: String, values: FieldType) -> Self {
        fields.push(Field::new(name.clone(), FieldType::Map(Box::new(values))));
        Schema {
            fields,
            overflow: Some(name),
        }
    }

    /// The index of the overflow field in `fields`.
    pub fn overflow_index(&self) -> Option<usize> {
        let name = self.overflow.as_deref()?;
        self.fields.iter().position(|f| f.name == name)
    }

    /// A name for the overflow field that no field of `fields` has (letter case ignored).
    pub fn overflow_name(fields: &[Field]) -> String {
        let taken = |name: &str| {
            let folded = fold_case(name);
            fields.iter().any(|f| fold_case(&f.name) == folded)
        };
        let mut name = OVERFLOW_NAME.to_string();
        let mut n = 1;
        while taken(&name) {
            n += 1;
            name = format!("{OVERFLOW_NAME}_{n}");
        }
        name
    }

    /// Widens `self` to hold every record of `other` too.
    pub fn merge(&mut self, other: &Schema) {
        merge_fields(&mut self.fields, &other.fields);
        if self.overflow.is_none() {
            self.overflow.clone_from(&other.overflow);
        }
    }

    /// Number of leaf (Parquet) columns: scalars, and the leaves inside structs and lists.
    pub fn leaf_columns(&self) -> usize {
        fn leaves(t: &FieldType) -> usize {
            match t {
                FieldType::Struct(fields) if !fields.is_empty() => {
                    fields.iter().map(|f| leaves(&f.field_type)).sum()
                }
                FieldType::List(items) => leaves(items),
                // The key column and the value's leaves.
                FieldType::Map(values) => 1 + leaves(values),
                _ => 1,
            }
        }
        self.fields.iter().map(|f| leaves(&f.field_type)).sum()
    }

    /// The dotted paths of the map columns, at any depth (`attrs`, `user.counts`, `events[]`
    /// for maps that are list items, `m{}` for maps that are map values), for the summary;
    /// the overflow column is not one of them.
    pub fn map_columns(&self) -> Vec<String> {
        fn walk(t: &FieldType, path: String, out: &mut Vec<String>) {
            match t {
                FieldType::Struct(fields) => {
                    for f in fields {
                        walk(&f.field_type, format!("{path}.{}", f.name), out);
                    }
                }
                FieldType::List(items) => walk(items, format!("{path}[]"), out),
                FieldType::Map(values) => {
                    walk(values, format!("{path}{{}}"), out);
                    out.push(path);
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for f in &self.fields {
            match &f.field_type {
                // The overflow column is reported on its own; maps among its values are not.
                FieldType::Map(values) if self.overflow.as_ref() == Some(&f.name) => {
                    walk(values, format!("{}{{}}", f.name), &mut out);
                }
                field_type => walk(field_type, f.name.clone(), &mut out),
            }
        }
        out.sort();
        out
    }

    /// Refuses a schema of more than [`MAX_LEAF_COLUMNS`] leaf columns, saying how many and
    /// what to do. To be called before decoding with an inferred or given schema.
    pub fn check_width(&self) -> Result<(), SchemaError> {
        let count = self.leaf_columns();
        if count <= MAX_LEAF_COLUMNS {
            return Ok(());
        }
        Err(invalid(
            "$",
            format!(
                "{count} columns, more than the {MAX_LEAF_COLUMNS} this tool writes (every row takes a slot in every column, so memory grows with rows × columns); keys this many are data rather than names: give a --schema with the fields wanted (with --unknown-fields drop), or turn such objects into arrays of key/value records"
            ),
        ))
    }

    /// The Arrow schema of the record batches this schema decodes into.
    pub fn to_arrow(&self) -> ArrowSchema {
        ArrowSchema::new(arrow_fields(&self.fields))
    }

    /// Renders the schema in its file format (pretty-printed JSON, trailing newline).
    pub fn to_json(&self) -> String {
        let file = SchemaFile {
            format: Some(SCHEMA_FORMAT.to_string()),
            version: Some(SCHEMA_VERSION),
            fields: self.fields.iter().map(FieldDoc::from_field).collect(),
            overflow: self.overflow.clone(),
        };
        let mut text =
            serde_json::to_string_pretty(&file).expect("invariant: schema documents serialize");
        text.push('\n');
        text
    }

    /// Renders the schema as compact one-line JSON (for Parquet key-value metadata).
    pub fn to_compact_json(&self) -> String {
        let file = SchemaFile {
            format: Some(SCHEMA_FORMAT.to_string()),
            version: Some(SCHEMA_VERSION),
            fields: self.fields.iter().map(FieldDoc::from_field).collect(),
            overflow: self.overflow.clone(),
        };
        serde_json::to_string(&file).expect("invariant: schema documents serialize")
    }

    /// Reads a schema from its file format.
    pub fn from_json(text: &str) -> Result<Schema, SchemaError> {
        let file: SchemaFile = serde_json::from_str(text).map_err(SchemaError::Syntax)?;
        if let Some(format) = &file.format {
            if format != SCHEMA_FORMAT {
                return Err(invalid(
                    "$",
                    format!("`format` is `{format}`, expected `{SCHEMA_FORMAT}`"),
                ));
            }
        }
        if let Some(version) = file.version {
            if version != SCHEMA_VERSION {
                return Err(invalid(
                    "$",
                    format!("version {version} is not supported (this build reads version {SCHEMA_VERSION})"),
                ));
            }
        }
        let schema = Schema {
            fields: fields_from_docs(&file.fields, "")?,
            overflow: file.overflow,
        };
        if let Some(name) = &schema.overflow {
            match schema.overflow_index().map(|i| &schema.fields[i].field_type) {
                Some(FieldType::Map(_)) => {}
                Some(other) => {
                    return Err(invalid(
                        "$.overflow",
                        format!("names `{name}`, a {} field: the overflow field must be a map", other.name()),
                    ))
                }
                None => {
                    return Err(invalid(
                        "$.overflow",
                        format!("names `{name}`, which is not a top-level field: name one of type map, or remove `overflow`"),
                    ))
                }
            }
        }
        Ok(schema)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

fn invalid(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        path: if path.is_empty() {
            "$".into()
        } else {
            path.into()
        },
        message: message.into(),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    fields: Vec<FieldDoc>,
    /// The top-level map field holding the keys no other field names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overflow: Option<String>,
}

/// One field (with `name`) or one list item type (without) in the file format.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<TimestampUnit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    precision: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scale: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<FieldDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    items: Option<Box<FieldDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Box<FieldDoc>>,
}

impl FieldDoc {
    fn from_field(field: &Field) -> FieldDoc {
        let mut doc = FieldDoc::from_type(&field.field_type);
        doc.name = Some(field.name.clone());
        doc
    }

    fn from_type(field_type: &FieldType) -> FieldDoc {
        if let FieldType::Number(facts) = field_type {
            return FieldDoc::from_type(&facts.resolve());
        }
        let mut doc = FieldDoc {
            name: None,
            type_name: field_type.name().to_string(),
            unit: None,
            timezone: None,
            precision: None,
            scale: None,
            fields: None,
            items: None,
            values: None,
        };
        match field_type {
            FieldType::Timestamp { unit, timezone } => {
                doc.unit = Some(*unit);
                doc.timezone = Some(timezone.to_string());
            }
            FieldType::Decimal { precision, scale } => {
                doc.precision = Some(*precision);
                doc.scale = Some(*scale);
            }
            FieldType::Struct(fields) => {
                doc.fields = Some(fields.iter().map(FieldDoc::from_field).collect())
            }
            FieldType::List(items) => doc.items = Some(Box::new(FieldDoc::from_type(items))),
            FieldType::Map(values) => doc.values = Some(Box::new(FieldDoc::from_type(values))),
            _ => {}
        }
        doc
    }

    fn to_type(&self, path: &str) -> Result<FieldType, SchemaError> {
        let only = |allowed: &[&str]| -> Result<(), SchemaError> {
            let present = [
                ("unit", self.unit.is_some()),
                ("timezone", self.timezone.is_some()),
                ("precision", self.precision.is_some()),
                ("scale", self.scale.is_some()),
                ("fields", self.fields.is_some()),
                ("items", self.items.is_some()),
                ("values", self.values.is_some()),
            ];
            for (key, is_present) in present {
                if is_present && !allowed.contains(&key) {
                    return Err(invalid(
                        path,
                        format!("`{key}` does not apply to type `{}`", self.type_name),
                    ));
                }
            }
            Ok(())
        };
        let field_type = match self.type_name.as_str() {
            "null" => FieldType::Null,
            "boolean" => FieldType::Boolean,
            "int64" => FieldType::Int64,
            "float64" => FieldType::Float64,
            "string" => FieldType::String,
            "decimal" => {
                only(&["precision", "scale"])?;
                let precision = self.precision.unwrap_or(MAX_DECIMAL_DIGITS as u8);
                let scale = self.scale.unwrap_or(0);
                if !(1..=MAX_DECIMAL_DIGITS as u8).contains(&precision) || scale > precision {
                    return Err(invalid(
                        path,
                        format!("decimal({precision}, {scale}) is not valid: precision must be 1 to 38 and scale at most the precision"),
                    ));
                }
                FieldType::Decimal { precision, scale }
            }
            "timestamp" => {
                only(&["unit", "timezone"])?;
                let timezone = self.timezone.clone().unwrap_or_else(|| "UTC".to_string());
                if timezone.trim().is_empty() {
                    return Err(invalid(path, "`timezone` must not be empty"));
                }
                if !valid_timezone(&timezone) {
                    return Err(invalid(
                        path,
                        format!("`timezone` `{timezone}` is not a time zone readers know: use `UTC`, `Z`, an offset `+HH:MM`, or an IANA name such as `Europe/Zurich`"),
                    ));
                }
                FieldType::Timestamp {
                    unit: self.unit.unwrap_or(TimestampUnit::Microsecond),
                    timezone: Arc::from(timezone),
                }
            }
            "struct" => {
                only(&["fields"])?;
                let docs = self
                    .fields
                    .as_ref()
                    .ok_or_else(|| invalid(path, "a `struct` needs `fields`"))?;
                FieldType::Struct(fields_from_docs(docs, path)?)
            }
            "list" => {
                only(&["items"])?;
                let items = self
                    .items
                    .as_ref()
                    .ok_or_else(|| invalid(path, "a `list` needs `items`"))?;
                if items.name.is_some() {
                    return Err(invalid(path, "list `items` has no `name`"));
                }
                FieldType::List(Box::new(items.to_type(&format!("{path}[]"))?))
            }
            "map" => {
                only(&["values"])?;
                let values = self
                    .values
                    .as_ref()
                    .ok_or_else(|| invalid(path, "a `map` needs `values`"))?;
                if values.name.is_some() {
                    return Err(invalid(path, "map `values` has no `name`"));
                }
                FieldType::Map(Box::new(values.to_type(&format!("{path}{{}}"))?))
            }
            other => {
                return Err(invalid(
                    path,
                    format!(
                        "unknown type `{other}` (expected null, boolean, int64, float64, decimal, string, timestamp, struct, list or map)"
                    ),
                ))
            }
        };
        if !matches!(
            field_type,
            FieldType::Timestamp { .. }
                | FieldType::Struct(_)
                | FieldType::List(_)
                | FieldType::Map(_)
                | FieldType::Decimal { .. }
        ) {
            only(&[])?;
        }
        Ok(field_type)
    }
}

/// The IANA time zone areas (the first part of every `Area/Location` name in the tz database).
const TZ_AREAS: &[&str] = &[
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Etc",
    "Indian",
    "Pacific",
];

/// Whether readers can resolve `tz`: `UTC`, `Z`, `±HH:MM`, or an IANA `Area/Location` name.
///
/// No tz database is in the dependency tree, so IANA names are checked by shape: a known area,
/// then one or two parts that start with an upper-case letter and hold letters, digits, `_`,
/// `-` and `+` (`America/Argentina/Buenos_Aires`, `Etc/GMT+5`). That refuses typos of the
/// area (`Mars/Olympus`), lower-case names and free text, not every unknown city.
pub(crate) fn valid_timezone(tz: &str) -> bool {
    if tz == "UTC" || tz == "Z" {
        return true;
    }
    let b = tz.as_bytes();
    if b.len() == 6 && matches!(b[0], b'+' | b'-') && b[3] == b':' {
        let two = |i: usize| -> Option<u32> {
            let s = std::str::from_utf8(&b[i..i + 2]).ok()?;
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        return matches!((two(1), two(4)), (Some(h), Some(m)) if h <= 23 && m <= 59);
    }
    let mut parts = tz.split('/');
    let area = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    TZ_AREAS.contains(&area)
        && (1..=2).contains(&rest.len())
        && rest.iter().all(|p| {
            p.starts_with(|c: char| c.is_ascii_uppercase())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}

fn fields_from_docs(docs: &[FieldDoc], parent: &str) -> Result<Vec<Field>, SchemaError> {
    let mut fields: Vec<Field> = Vec::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        let name = doc
            .name
            .as_ref()
            .ok_or_else(|| invalid(parent, format!("field #{} has no `name`", i + 1)))?;
        let path = if parent.is_empty() {
            name.clone()
        } else {
            format!("{parent}.{name}")
        };
        if fields.iter().any(|f| &f.name == name) {
            return Err(invalid(&path, "duplicate field name"));
        }
        if let Some(other) = fields
            .iter()
            .find(|f| fold_case(&f.name) == fold_case(name))
        {
            return Err(invalid(
                &path,
                format!(
                    "field names `{}` and `{name}` differ only in case; Athena, Glue, Hive and Spark compare column names case-insensitively, so they cannot be two columns",
                    other.name
                ),
            ));
        }
        fields.push(Field::new(name.clone(), doc.to_type(&path)?));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> FieldType {
        FieldType::utc_timestamp(TimestampUnit::Microsecond)
    }

    #[test]
    fn null_widens_to_anything() {
        for other in [
            FieldType::Boolean,
            FieldType::Int64,
            ts(),
            FieldType::Struct(vec![]),
        ] {
            let mut t = FieldType::Null;
            t.merge(&other);
            assert_eq!(t, other);
            let mut t = other.clone();
            t.merge(&FieldType::Null);
            assert_eq!(t, other);
        }
    }

    #[test]
    fn int_with_float_is_float_either_way() {
        let mut t = FieldType::Int64;
        t.merge(&FieldType::Float64);
        assert_eq!(t, FieldType::Float64);
        let mut t = FieldType::Float64;
        t.merge(&FieldType::Int64);
        assert_eq!(t, FieldType::Float64);
    }

    #[test]
    fn other_conflicts_become_string() {
        let cases = [
            (FieldType::Boolean, FieldType::Int64),
            (ts(), FieldType::String),
            (ts(), FieldType::Int64),
            (FieldType::Struct(vec![]), FieldType::Int64),
            (
                FieldType::List(Box::new(FieldType::Int64)),
                FieldType::Boolean,
            ),
            (
                FieldType::Struct(vec![]),
                FieldType::List(Box::new(FieldType::Null)),
            ),
            (ts(), FieldType::utc_timestamp(TimestampUnit::Millisecond)),
        ];
        for (a, b) in cases {
            let mut t = a.clone();
            t.merge(&b);
            assert_eq!(t, FieldType::String, "{a:?} + {b:?}");
            let mut t = b.clone();
            t.merge(&a);
            assert_eq!(t, FieldType::String, "{b:?} + {a:?}");
        }
    }

    #[test]
    fn structs_merge_field_by_field_in_first_seen_order() {
        let mut a = FieldType::Struct(vec![
            Field::new("x", FieldType::Int64),
            Field::new("y", FieldType::Null),
        ]);
        a.merge(&FieldType::Struct(vec![
            Field::new("z", FieldType::Boolean),
            Field::new("x", FieldType::Float64),
            Field::new("y", FieldType::String),
        ]));
        assert_eq!(
            a,
            FieldType::Struct(vec![
                Field::new("x", FieldType::Float64),
                Field::new("y", FieldType::String),
                Field::new("z", FieldType::Boolean),
            ])
        );
    }

    #[test]
    fn many_fields_merge_through_the_hashed_path() {
        let mine: Vec<Field> = (0..40)
            .map(|i| Field::new(format!("f{i}"), FieldType::Int64))
            .collect();
        let theirs: Vec<Field> = (20..60)
            .map(|i| Field::new(format!("f{i}"), FieldType::Float64))
            .collect();
        let mut merged = mine.clone();
        merge_fields(&mut merged, &theirs);
        assert_eq!(merged.len(), 60);
        assert_eq!(merged[0].field_type, FieldType::Int64);
        assert_eq!(merged[20].field_type, FieldType::Float64);
        assert_eq!(merged[59].name, "f59");
    }

    fn sample_schema() -> Schema {
        Schema::new(vec![
            Field::new("id", FieldType::Int64),
            Field::new("score", FieldType::Float64),
            Field::new("ok", FieldType::Boolean),
            Field::new("nothing", FieldType::Null),
            Field::new(
                "at",
                FieldType::Timestamp {
                    unit: TimestampUnit::Millisecond,
                    timezone: Arc::from("+02:00"),
                },
            ),
            Field::new(
                "user",
                FieldType::Struct(vec![
                    Field::new("name", FieldType::String),
                    Field::new("empty", FieldType::Struct(vec![])),
                ]),
            ),
            Field::new(
                "events",
                FieldType::List(Box::new(FieldType::Struct(vec![Field::new(
                    "kind",
                    FieldType::String,
                )]))),
            ),
        ])
    }

    #[test]
    fn file_format_round_trips() {
        let schema = sample_schema();
        let text = schema.to_json();
        assert_eq!(Schema::from_json(&text).unwrap(), schema);
        assert_eq!(
            Schema::from_json(&schema.to_compact_json()).unwrap(),
            schema
        );
    }

    #[test]
    fn schema_files_with_names_differing_only_in_case_are_refused() {
        let error = Schema::from_json(
            r#"{"fields":[{"name":"s","type":"struct","fields":[{"name":"Platform","type":"string"},{"name":"platform","type":"string"}]}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("`s.platform`") && error.contains("`Platform` and `platform`"),
            "{error}"
        );
        assert!(Schema::from_json(
            r#"{"fields":[{"name":"Id","type":"int64"},{"name":"d","type":"int64"}]}"#
        )
        .is_ok());
    }

    #[test]
    fn schemas_wider_than_the_column_cap_are_refused_with_the_count() {
        let wide = |n: usize| {
            Schema::new(vec![
                Field::new(
                    "s",
                    FieldType::Struct(
                        (0..n)
                            .map(|i| Field::new(format!("k{i}"), FieldType::Int64))
                            .collect(),
                    ),
                ),
                Field::new("l", FieldType::List(Box::new(FieldType::String))),
            ])
        };
        assert_eq!(wide(3).leaf_columns(), 4);
        assert!(wide(MAX_LEAF_COLUMNS - 1).check_width().is_ok());
        let error = wide(MAX_LEAF_COLUMNS)
            .check_width()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("10001 columns") && error.contains("--schema"),
            "{error}"
        );
    }

    #[test]
    fn file_format_defaults_and_errors() {
        let schema = Schema::from_json(r#"{"fields":[{"name":"t","type":"timestamp"}]}"#).unwrap();
        assert_eq!(schema.fields[0].field_type, ts());

        let err = |text: &str| Schema::from_json(text).unwrap_err().to_string();
        assert!(err(r#"{"fields":[{"name":"a","type":"int32"}]}"#).contains("unknown type `int32`"));
        assert!(err(r#"{"fields":[{"name":"a","type":"list"}]}"#).contains("needs `items`"));
        assert!(
            err(r#"{"fields":[{"name":"a","type":"int64","unit":"ms"}]}"#)
                .contains("`unit` does not apply")
        );
        assert!(
            err(r#"{"fields":[{"name":"a","type":"int64"},{"name":"a","type":"int64"}]}"#)
                .contains("duplicate")
        );
        assert!(err(r#"{"fields":[{"type":"int64"}]}"#).contains("no `name`"));
        assert!(err(r#"{"fields":[],"colour":1}"#).contains("unknown field"));
        assert!(err(r#"{"version":2,"fields":[]}"#).contains("version 2"));
        assert!(err(r#"{"fields":[{"name":"s","type":"struct","fields":[{"name":"t","type":"timestamp","unit":"s"}]}]}"#).contains("unknown variant"));
        assert!(err(r#"{"fields":[{"name":"s","type":"struct","fields":[{"name":"x","type":"list","items":{"type":"bogus"}}]}]}"#).contains("`s.x[]`"));
    }

    #[test]
    fn time_zones_are_validated_naming_the_field_and_the_value() {
        let schema = |tz: &str| {
            Schema::from_json(&format!(
                r#"{{"fields":[{{"name":"s","type":"struct","fields":[{{"name":"at","type":"timestamp","timezone":"{tz}"}}]}}]}}"#
            ))
        };
        for good in [
            "UTC",
            "Z",
            "+02:00",
            "-05:30",
            "Europe/Zurich",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "America/Port-au-Prince",
        ] {
            assert!(schema(good).is_ok(), "{good}");
        }
        for bad in [
            "Mars/Olympus",
            "utc",
            "+25:00",
            "+0200",
            "Europe/",
            "Europe/zurich",
            "Europe/Zu rich",
            "Local",
        ] {
            let message = schema(bad).unwrap_err().to_string();
            assert!(
                message.contains("`s.at`") && message.contains(&format!("`{bad}`")),
                "{message}"
            );
        }
    }

    #[test]
    fn arrow_mapping_writes_null_and_empty_struct_as_strings() {
        let arrow = sample_schema().to_arrow();
        assert_eq!(arrow.field(3).data_type(), &DataType::Utf8);
        let DataType::Struct(user) = arrow.field(5).data_type() else {
            panic!("user is a struct")
        };
        assert_eq!(user[1].data_type(), &DataType::Utf8);
        assert_eq!(
            arrow.field(4).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("+02:00")))
        );
        assert!(arrow.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn maps_round_trip_through_the_file_format_and_count_their_leaves() {
        let schema = Schema::new(vec![Field::new(
            "m",
            FieldType::Map(Box::new(FieldType::Struct(vec![
                Field::new("n", FieldType::Int64),
                Field::new("tags", FieldType::List(Box::new(FieldType::String))),
            ]))),
        )]);
        let text = schema.to_json();
        assert!(
            text.contains(r#""type": "map""#) && text.contains(r#""values": {"#),
            "{text}"
        );
        assert_eq!(Schema::from_json(&text).unwrap(), schema);
        assert_eq!(schema.leaf_columns(), 3);
        let DataType::Map(entries, sorted) = schema.to_arrow().field(0).data_type().clone() else {
            panic!("a map")
        };
        assert!(!sorted);
        let DataType::Struct(kv) = entries.data_type() else {
            panic!("entries are a struct")
        };
        assert_eq!(entries.name(), "key_value");
        assert_eq!((kv[0].name().as_str(), kv[0].is_nullable()), ("key", false));
        assert_eq!(
            (kv[1].name().as_str(), kv[1].is_nullable()),
            ("value", true)
        );

        let err = |text: &str| Schema::from_json(text).unwrap_err().to_string();
        assert!(err(r#"{"fields":[{"name":"m","type":"map"}]}"#).contains("needs `values`"));
        assert!(err(
            r#"{"fields":[{"name":"m","type":"map","values":{"name":"v","type":"int64"}}]}"#
        )
        .contains("no `name`"));
        assert!(
            err(r#"{"fields":[{"name":"m","type":"map","items":{"type":"int64"}}]}"#)
                .contains("`items` does not apply")
        );
        assert!(err(r#"{"fields":[{"name":"l","type":"list","items":{"type":"int64","values":{"type":"int64"}}}]}"#).contains("`values` does not apply"));
        assert!(
            err(r#"{"fields":[{"name":"m","type":"map","values":{"type":"bogus"}}]}"#)
                .contains("`m{}`")
        );
    }

    #[test]
    fn the_overflow_column_round_trips_and_must_name_a_top_level_map() {
        let fields = vec![
            Field::new("id", FieldType::Int64),
            Field::new("_OVERFLOW", FieldType::String),
        ];
        let name = Schema::overflow_name(&fields);
        assert_eq!(name, "_overflow_2");
        let schema = Schema::with_overflow(fields, name, FieldType::Int64);
        let text = schema.to_json();
        assert!(text.contains(r#""overflow": "_overflow_2""#), "{text}");
        assert_eq!(Schema::from_json(&text).unwrap(), schema);
        assert_eq!(
            Schema::from_json(&schema.to_compact_json()).unwrap(),
            schema
        );
        assert_eq!(schema.overflow_index(), Some(2));
        // Not a map column of its own kind in the summary.
        assert!(schema.map_columns().is_empty());
        assert_eq!(Schema::overflow_name(&[]), "_overflow");

        let err = |text: &str| Schema::from_json(text).unwrap_err().to_string();
        let e = err(r#"{"fields":[{"name":"id","type":"int64"}],"overflow":"rest"}"#);
        assert!(
            e.contains("`$.overflow`") && e.contains("not a top-level field"),
            "{e}"
        );
        let e = err(r#"{"fields":[{"name":"id","type":"int64"}],"overflow":"id"}"#);
        assert!(e.contains("must be a map"), "{e}");
    }

    #[test]
    fn a_map_absorbs_a_struct_either_way_and_conflicts_with_scalars() {
        let map = FieldType::Map(Box::new(FieldType::Int64));
        let fields = FieldType::Struct(vec![
            Field::new("a", FieldType::Float64),
            Field::new("b", FieldType::Null),
        ]);
        for (first, second) in [(&map, &fields), (&fields, &map)] {
            let mut t = first.clone();
            t.merge(second);
            assert_eq!(t.resolved(), FieldType::Map(Box::new(FieldType::Float64)));
        }
        let mut t = map.clone();
        t.merge(&FieldType::List(Box::new(FieldType::Int64)));
        assert_eq!(t, FieldType::String);
        let mut t = map.clone();
        t.merge(&FieldType::Map(Box::new(FieldType::Boolean)));
        assert_eq!(t, FieldType::Map(Box::new(FieldType::String)));
    }
}
