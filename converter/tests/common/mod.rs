//! Helpers shared by the converter's integration tests: what a record should look like after
//! conversion (by the widening rules), what a Parquet file actually holds (read back with the
//! parquet crate, or with pyarrow and DuckDB), in one canonical JSON form.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use converter::schema::{FieldType, Schema, TimestampUnit};
use converter::timestamp::parse_timestamp;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

/// A conversion's destination in memory: its Parquet parts and its error output as bytes.
pub struct InMemory;

impl converter::convert::Destination for InMemory {
    type Parquet = Vec<u8>;
    type Rejects = Vec<u8>;

    fn parquet(&mut self, _part: usize) -> std::io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn rejects(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        Ok(Some(Vec::new()))
    }
}

/// How timestamps appear in canonical rows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timestamps {
    /// In the column's own unit.
    Native,
    /// Always microseconds (what the Python readers report).
    Micros,
}

fn float(v: f64) -> Value {
    Value::from(v)
}

fn to_micros(value: i64, unit: TimestampUnit) -> i64 {
    match unit {
        TimestampUnit::Millisecond => value * 1000,
        TimestampUnit::Microsecond => value,
        TimestampUnit::Nanosecond => value.div_euclid(1000),
    }
}

/// A JSON number's text as a `decimal(precision, scale)` reads back (Arrow's rendering).
pub fn decimal_value(text: &str, precision: u8, scale: u8) -> Value {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (
            &text[..at],
            text[at + 1..].parse::<i64>().expect("an exponent"),
        ),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let shift = exponent - frac.len() as i64 + i64::from(scale);
    let digits = if shift >= 0 {
        format!("{digits}{}", "0".repeat(shift as usize))
    } else {
        let cut = digits.len() - (-shift) as usize;
        assert!(
            digits[cut..].bytes().all(|b| b == b'0'),
            "{text} fits scale {scale}"
        );
        digits[..cut].to_string()
    };
    let unscaled: i128 = digits.parse().expect("fits in 128 bits");
    let unscaled = if negative { -unscaled } else { unscaled };
    let array = arrow::array::Decimal128Array::from(vec![unscaled])
        .with_precision_and_scale(precision, scale as i8)
        .expect("a valid decimal type");
    Value::String(array.value_as_string(0))
}

/// Marks a number's exact JSON text inside a [`Value`] read by [`exact_json`].
const NUMBER_TEXT: &str = "\u{0}number:";

/// Reads a JSON text keeping every number's exact text (`serde_json` alone would round
/// integers beyond 64 bits and long fractions to `f64`): each number becomes a string marked
/// with [`NUMBER_TEXT`], which [`expected_value`] reads by the column's type.
pub fn exact_json(text: &[u8]) -> serde_json::Result<Value> {
    let mut marked = Vec::with_capacity(text.len() + 16);
    let (mut i, mut in_string) = (0, false);
    while i < text.len() {
        let b = text[i];
        if in_string {
            marked.push(b);
            if b == b'\\' && i + 1 < text.len() {
                marked.push(text[i + 1]);
                i += 1;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            marked.push(b);
        } else if b == b'-' || b.is_ascii_digit() {
            let end = text[i..]
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .map_or(text.len(), |n| i + n);
            marked.push(b'"');
            marked.extend_from_slice(NUMBER_TEXT.replace('\u{0}', "\\u0000").as_bytes());
            marked.extend_from_slice(&text[i..end]);
            marked.push(b'"');
            i = end;
            continue;
        } else {
            marked.push(b);
        }
        i += 1;
    }
    // Validate the original as JSON too: marking must not make an invalid text valid.
    serde_json::from_slice::<&serde_json::value::RawValue>(text)?;
    serde_json::from_slice(&marked)
}

/// `value` as compact JSON text, numbers read by [`exact_json`] in their exact text.
fn unmarked_text(value: &Value) -> String {
    let text = serde_json::to_string(value).expect("serializable");
    let marker = format!("\"{}", NUMBER_TEXT.replace('\u{0}', "\\u0000"));
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&marker) {
        out.push_str(&rest[..at]);
        let number = &rest[at + marker.len()..];
        let end = number.find('"').expect("a marked number ends with a quote");
        out.push_str(&number[..end]);
        rest = &number[end + 1..];
    }
    out.push_str(rest);
    out
}

/// What a number with exact text `text` reads back as in a column of `field_type`.
fn expected_number(text: &str, field_type: &FieldType) -> Value {
    match field_type {
        FieldType::Int64 => Value::from(
            text.parse::<i64>()
                .expect("an int64 column holds int64 text"),
        ),
        FieldType::Float64 => float(text.parse::<f64>().expect("a number")),
        FieldType::Decimal { precision, scale } => decimal_value(text, *precision, *scale),
        FieldType::String => Value::String(text.to_string()),
        other => panic!("the number {text} in a {other:?} column"),
    }
}

/// The value `input` must read back as, in a column of type `field_type`.
pub fn expected_value(input: &Value, field_type: &FieldType, ts: Timestamps) -> Value {
    if input.is_null() {
        return Value::Null;
    }
    if let Some(text) = input.as_str().and_then(|s| s.strip_prefix(NUMBER_TEXT)) {
        return expected_number(text, field_type);
    }
    match field_type {
        FieldType::Null => panic!("a non-null value {input} in a null column"),
        FieldType::Boolean | FieldType::Int64 => input.clone(),
        FieldType::Float64 => float(input.as_f64().expect("a number in a float column")),
        FieldType::Decimal { precision, scale } => {
            decimal_value(&input.to_string(), *precision, *scale)
        }
        FieldType::Number(_) => panic!("inference resolves number facts before a schema leaves it"),
        FieldType::String => match input {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(unmarked_text(other)),
        },
        FieldType::Timestamp { unit, .. } => {
            let text = input.as_str().expect("a string in a timestamp column");
            let value = parse_timestamp(text, *unit).expect("a valid timestamp");
            Value::from(if ts == Timestamps::Micros {
                to_micros(value, *unit)
            } else {
                value
            })
        }
        FieldType::Struct(fields) if fields.is_empty() => Value::String("{}".into()),
        FieldType::Struct(fields) => {
            let object = input.as_object().expect("an object in a struct column");
            let mut out = Map::new();
            for field in fields {
                // Names are one column case-insensitively: the record may spell it otherwise.
                let folded = converter::schema::fold_case(&field.name);
                let value = object
                    .get(&field.name)
                    .or_else(|| {
                        object
                            .iter()
                            .find(|(k, _)| converter::schema::fold_case(k) == folded)
                            .map(|(_, v)| v)
                    })
                    .unwrap_or(&Value::Null);
                out.insert(
                    field.name.clone(),
                    expected_value(value, &field.field_type, ts),
                );
            }
            Value::Object(out)
        }
        FieldType::Map(values) => Value::Object(
            input
                .as_object()
                .expect("an object in a map column")
                .iter()
                .map(|(k, v)| (k.clone(), expected_value(v, values, ts)))
                .collect(),
        ),
        FieldType::List(items) => Value::Array(
            input
                .as_array()
                .expect("an array in a list column")
                .iter()
                .map(|v| expected_value(v, items, ts))
                .collect(),
        ),
    }
}

/// The row a record must read back as.
pub fn expected_row(record: &Value, schema: &Schema, ts: Timestamps) -> Value {
    let Some(at) = schema.overflow_index() else {
        return expected_value(record, &FieldType::Struct(schema.fields.clone()), ts);
    };
    // The overflow column holds the keys no other column names (in any letter case), or is
    // null when there are none.
    let mut columns = schema.fields.clone();
    let overflow = columns.remove(at);
    let mut row = if columns.is_empty() {
        Value::Object(Map::new())
    } else {
        expected_value(record, &FieldType::Struct(columns.clone()), ts)
    };
    let named: Vec<_> = columns
        .iter()
        .map(|f| converter::schema::fold_case(&f.name).into_owned())
        .collect();
    let rest: Map<String, Value> = record
        .as_object()
        .expect("a record is an object")
        .iter()
        .filter(|(k, _)| !named.contains(&converter::schema::fold_case(k).into_owned()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let value = if rest.is_empty() {
        Value::Null
    } else {
        expected_value(&Value::Object(rest), &overflow.field_type, ts)
    };
    row.as_object_mut()
        .expect("a row is an object")
        .insert(overflow.name, value);
    row
}

/// Canonical value of row `i` of an Arrow array.
pub fn arrow_value(array: &ArrayRef, i: usize, ts: Timestamps) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(..) => Value::String(
            array
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .value_as_string(i),
        ),
        DataType::Timestamp(unit, _) => {
            let raw = match unit {
                TimeUnit::Millisecond => array
                    .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .value(i),
                TimeUnit::Microsecond => array
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .value(i),
                TimeUnit::Nanosecond => array
                    .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                    .value(i),
                TimeUnit::Second => panic!("no second timestamps are written"),
            };
            let ours = match unit {
                TimeUnit::Millisecond => TimestampUnit::Millisecond,
                TimeUnit::Microsecond => TimestampUnit::Microsecond,
                _ => TimestampUnit::Nanosecond,
            };
            Value::from(if ts == Timestamps::Micros {
                to_micros(raw, ours)
            } else {
                raw
            })
        }
        DataType::Struct(fields) => {
            let array = array.as_struct();
            let mut out = Map::new();
            for (index, field) in fields.iter().enumerate() {
                out.insert(
                    field.name().clone(),
                    arrow_value(array.column(index), i, ts),
                );
            }
            Value::Object(out)
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(i);
            Value::Array((0..list.len()).map(|j| arrow_value(&list, j, ts)).collect())
        }
        // Keys are unique in a map (repeated keys are rejected), so an object loses nothing.
        DataType::Map(_, _) => {
            let entries = array.as_map().value(i);
            let keys = entries.column(0).as_string::<i32>();
            Value::Object(
                (0..entries.len())
                    .map(|j| {
                        (
                            keys.value(j).to_string(),
                            arrow_value(entries.column(1), j, ts),
                        )
                    })
                    .collect(),
            )
        }
        other => panic!("unexpected Arrow type {other}"),
    }
}

/// Canonical rows of record batches.
pub fn batch_rows(batches: &[RecordBatch], ts: Timestamps) -> Vec<Value> {
    let mut rows = Vec::new();
    for batch in batches {
        for i in 0..batch.num_rows() {
            let mut row = Map::new();
            for (index, field) in batch.schema().fields().iter().enumerate() {
                row.insert(
                    field.name().clone(),
                    arrow_value(batch.column(index), i, ts),
                );
            }
            rows.push(Value::Object(row));
        }
    }
    rows
}

/// Reads a Parquet file (bytes) back with the parquet crate.
pub fn read_parquet_bytes(bytes: Vec<u8>) -> Vec<RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .expect("a readable Parquet file")
        .build()
        .expect("a reader");
    reader
        .collect::<Result<Vec<_>, _>>()
        .expect("readable batches")
}

/// Reads a Parquet file back with the parquet crate.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    read_parquet_bytes(std::fs::read(path).expect("the Parquet file exists"))
}

/// The Python interpreter with pyarrow and duckdb (set up by scripts/test.sh).
pub fn python() -> String {
    std::env::var("NDJSON_PARQUET_PYTHON").unwrap_or_else(|_| {
        panic!(
            "NDJSON_PARQUET_PYTHON is not set: run the suite with ./scripts/test.sh, which installs \
             pyarrow and duckdb into .venv and points this variable at its python"
        )
    })
}

/// What pyarrow and DuckDB read from a Parquet file.
pub struct IndependentRead {
    /// Rows according to pyarrow (timestamps in microseconds).
    pub pyarrow: Vec<Value>,
    /// Rows according to DuckDB (timestamps in microseconds).
    pub duckdb: Vec<Value>,
    /// pyarrow's rendering of the schema.
    pub pyarrow_schema: String,
    /// Row groups in the footer.
    pub num_row_groups: u64,
    /// Rows in the footer.
    pub num_rows: u64,
}

/// Runs the suite's Python with `args` (a reader script and its arguments) and parses the
/// JSON it prints; a failing script fails the test with its stderr.
pub fn python_json<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Value {
    let output = Command::new(python())
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "the Python readers failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the readers print JSON")
}

/// Reads `path` with pyarrow and DuckDB.
pub fn read_independently(path: &Path) -> IndependentRead {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_parquet.py");
    let doc = python_json(&[script.as_os_str(), path.as_os_str()]);
    let rows = |key: &str| doc[key].as_array().expect("rows").clone();
    IndependentRead {
        pyarrow: rows("pyarrow"),
        duckdb: rows("duckdb"),
        pyarrow_schema: doc["pyarrow_schema"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        num_row_groups: doc["num_row_groups"].as_u64().expect("row groups"),
        num_rows: doc["num_rows"].as_u64().expect("rows"),
    }
}

/// Asserts two row lists are equal, reporting the first difference readably.
pub fn assert_rows_eq(actual: &[Value], expected: &[Value], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: row count");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(
            a, e,
            "{what}: row {i} differs\n actual:   {a}\n expected: {e}"
        );
    }
}
