//! Independent readers: pyarrow and DuckDB read our Parquet, under every codec, and must see
//! exactly the values of the input (by the widening rules) for every kind of JSON value.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::{
    assert_rows_eq, batch_rows, expected_row, read_independently, read_parquet, Timestamps,
};
use converter::convert::METADATA_SCHEMA;
use converter::schema::Schema;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{json, Value};

fn fixture() -> Vec<Value> {
    vec![
        json!({
            "id": 9_223_372_036_854_775_807i64,
            "small": -9_223_372_036_854_775_807i64 - 1,
            "score": 3.25,
            "ratio": 1,
            "ok": true,
            "name": "plain ascii",
            "at": "2026-11-25T10:00:00.123Z",
            "precise_at": "2026-11-25T10:00:00.123456Z",
            "user": {"id": 1, "name": "Zoë", "address": {"city": "Zürich", "zip": "8001"}},
            "events": [{"kind": "view", "at": "2026-11-25T10:00:01+01:00", "props": {"x": 1}}, {"kind": "click"}],
            "tags": ["a", "b"],
            "matrix": [[1, 2], [], [3]],
            "empty": {},
            "nothing": null,
            "mixed": 5,
            "emoji 🚀": "東京 — \"quoted\" \\ back\nslash",
        }),
        json!({
            "id": -1,
            "score": -0.0,
            "ratio": 2.5e-300,
            "ok": false,
            "name": "",
            "at": "1969-12-31T23:59:59.999Z",
            "user": null,
            "events": [],
            "tags": null,
            "matrix": [[]],
            "empty": null,
            "mixed": {"nested": [1, "two", null]},
        }),
        json!({
            "score": 1.7976931348623157e308,
            "at": "2262-04-11T23:47:16.854Z",
            "precise_at": "2026-11-25T10:00:00-05:00",
            "user": {"address": null},
            "events": [{"props": null}],
            "tags": [null, "c"],
            "matrix": null,
            "empty": {},
            "mixed": "text",
            "emoji 🚀": null,
        }),
        json!({}),
    ]
}

fn write_fixture(dir: &Path) {
    let mut text = String::new();
    for record in fixture() {
        text.push_str(&serde_json::to_string(&record).unwrap());
        text.push('\n');
    }
    std::fs::write(dir.join("types.ndjson"), text).unwrap();
}

#[test]
fn pyarrow_and_duckdb_read_every_type_under_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    for codec in ["snappy", "gzip", "brotli", "lz4", "zstd", "none"] {
        for unit in ["us", "ms"] {
            let output = dir.path().join(format!("types-{codec}-{unit}.parquet"));
            let result = Command::cargo_bin("ndjson-parquet")
                .unwrap()
                .current_dir(dir.path())
                .args([
                    "convert",
                    "types.ndjson",
                    "--compression",
                    codec,
                    "--timestamp-unit",
                    unit,
                    "-o",
                ])
                .arg(&output)
                .output()
                .unwrap();
            assert!(
                result.status.success(),
                "{}",
                String::from_utf8_lossy(&result.stderr)
            );

            let reader = SerializedFileReader::new(std::fs::File::open(&output).unwrap()).unwrap();
            let footer = reader
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .unwrap();
            let schema_json = footer
                .iter()
                .find(|kv| kv.key == METADATA_SCHEMA)
                .unwrap()
                .value
                .clone()
                .unwrap();
            let schema = Schema::from_json(&schema_json).unwrap();
            let at = schema.fields.iter().find(|f| f.name == "at").unwrap();
            assert_eq!(
                at.field_type.name(),
                "timestamp",
                "{codec}/{unit}: RFC 3339 strings are timestamps"
            );
            let precise = schema
                .fields
                .iter()
                .find(|f| f.name == "precise_at")
                .unwrap();
            let expected_type = if unit == "us" { "timestamp" } else { "string" };
            assert_eq!(
                precise.field_type.name(),
                expected_type,
                "{codec}/{unit}: never truncated to the unit"
            );

            let expected: Vec<Value> = fixture()
                .iter()
                .map(|r| expected_row(r, &schema, Timestamps::Micros))
                .collect();
            let what = format!("{codec}/{unit}");
            assert_rows_eq(
                &batch_rows(&read_parquet(&output), Timestamps::Micros),
                &expected,
                &format!("{what} parquet crate"),
            );
            let read = read_independently(&output);
            assert_rows_eq(&read.pyarrow, &expected, &format!("{what} pyarrow"));
            assert_rows_eq(&read.duckdb, &expected, &format!("{what} duckdb"));
            assert!(
                read.pyarrow_schema
                    .contains(&format!("at: timestamp[{unit}, tz=UTC]")),
                "{}",
                read.pyarrow_schema
            );
            assert!(
                read.pyarrow_schema.contains("id: int64"),
                "{}",
                read.pyarrow_schema
            );
            assert!(
                read.pyarrow_schema.contains("empty: string"),
                "{}",
                read.pyarrow_schema
            );
            assert!(
                read.pyarrow_schema.contains("nothing: string"),
                "{}",
                read.pyarrow_schema
            );
        }
    }
}
