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

/// Every value of every column as pyarrow and DuckDB see it: `{column: [type, [values as text]]}`
/// (Decimal, int and float values as Python's `str`, so nothing is rounded on the way).
fn read_exact(path: &Path) -> Value {
    let script = r#"
import json, sys
import duckdb
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
py = {n: [str(t.schema.field(n).type), [None if v is None else str(v) for v in t.column(n).to_pylist()]] for n in t.column_names}
cur = duckdb.connect().execute("SELECT * FROM read_parquet(?)", [sys.argv[1]])
names = [d[0] for d in cur.description]
rows = cur.fetchall()
dd = {n: [None if r[i] is None else str(r[i]) for r in rows] for i, n in enumerate(names)}
json.dump({"pyarrow": py, "duckdb": dd}, sys.stdout)
"#;
    common::python_json(&[
        std::ffi::OsStr::new("-c"),
        script.as_ref(),
        path.as_os_str(),
    ])
}

fn convert_text(dir: &Path, text: &str, extra: &[&str]) -> std::path::PathBuf {
    std::fs::write(dir.join("in.ndjson"), text).unwrap();
    let output = dir.join("out.parquet");
    let result = Command::cargo_bin("ndjson-parquet")
        .unwrap()
        .current_dir(dir)
        .args(["convert", "in.ndjson", "-o"])
        .arg(&output)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    output
}

#[test]
fn numbers_are_written_exactly_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let text = concat!(
        r#"{"big":123456789012345678,"near":9007199254740993,"neg0":-0,"f":1,"huge":1,"mixed":1,"toolong":1}"#,
        "\n",
        r#"{"big":1,"near":1,"neg0":5,"f":1.5,"huge":123456789012345678901234567890,"mixed":9007199254740993,"toolong":1234567890123456789012345678901234567890}"#,
        "\n",
        r#"{"mixed":0.25,"toolong":0.5}"#,
        "\n",
    );
    let output = convert_text(dir.path(), text, &[]);
    let read = read_exact(&output);
    let col = |name: &str| read["pyarrow"][name].clone();
    assert_eq!(
        col("big"),
        json!(["int64", ["123456789012345678", "1", null]])
    );
    assert_eq!(
        col("near"),
        json!(["int64", ["9007199254740993", "1", null]])
    );
    assert_eq!(col("neg0"), json!(["int64", ["0", "5", null]]));
    assert_eq!(col("f"), json!(["double", ["1.0", "1.5", null]]));
    assert_eq!(
        col("huge"),
        json!([
            "decimal128(38, 0)",
            ["1", "123456789012345678901234567890", null]
        ])
    );
    assert_eq!(
        col("mixed"),
        json!(["decimal128(38, 2)", ["1.00", "9007199254740993.00", "0.25"]])
    );
    assert_eq!(
        col("toolong"),
        json!([
            "string",
            ["1", "1234567890123456789012345678901234567890", "0.5"]
        ])
    );
    let duck = &read["duckdb"];
    assert_eq!(duck["big"], json!(["123456789012345678", "1", null]));
    assert_eq!(duck["near"], json!(["9007199254740993", "1", null]));
    assert_eq!(
        duck["huge"],
        json!(["1", "123456789012345678901234567890", null])
    );
    assert_eq!(
        duck["mixed"],
        json!(["1.00", "9007199254740993.00", "0.25"])
    );
}

#[test]
fn too_deep_and_too_long_names_are_rejected_per_line_and_the_rest_opens() {
    let dir = tempfile::tempdir().unwrap();
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100));
    let deep_lists = format!("{{\"l\":{}1{}}}", "[".repeat(50), "]".repeat(50));
    let ok_objects = format!("{}1{}", "{\"b\":".repeat(99), "}".repeat(99));
    let ok_lists = format!("{{\"m\":{}1{}}}", "[".repeat(49), "]".repeat(49));
    let long = format!("{{\"{}\":1}}", "k".repeat(256));
    let text = format!(
        "{{\"id\":1}}\n{deep_objects}\n{deep_lists}\n{long}\n{ok_objects}\n{ok_lists}\n{{\"id\":2}}\n"
    );
    let output = convert_text(
        dir.path(),
        &text,
        &["--on-error", "quarantine", "--errors", "errors.ndjson"],
    );
    let read = read_exact(&output);
    assert_eq!(read["pyarrow"]["id"][1], json!(["1", null, null, "2"]));
    let errors = std::fs::read_to_string(dir.path().join("errors.ndjson")).unwrap();
    let kinds: Vec<(u64, String)> = errors
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (2, "too_deep".to_string()),
            (3, "too_deep".to_string()),
            (4, "name_too_long".to_string())
        ]
    );
}

#[test]
fn keys_differing_only_in_case_are_one_column_for_case_insensitive_readers() {
    let dir = tempfile::tempdir().unwrap();
    // Before: `id`, `Id` and `ID` were three columns and `Platform`/`platform` two fields of
    // one struct, which Athena, Glue, Hive and Spark cannot query. The first spelling owns
    // the column; the others widen it; one object holding two spellings is a duplicate key.
    let text = concat!(
        r#"{"id":1,"device":{"Platform":"ios"}}"#,
        "\n",
        r#"{"Id":2,"device":{"platform":"android"}}"#,
        "\n",
        r#"{"ID":2.5,"device":{"PLATFORM":"web"}}"#,
        "\n",
        r#"{"id":4,"ID":5}"#,
        "\n",
    );
    // Several threads and tiny chunks: the first spelling is the first in input order.
    let output = convert_text(
        dir.path(),
        text,
        &[
            "--threads",
            "3",
            "--on-error",
            "quarantine",
            "--errors",
            "errors.ndjson",
        ],
    );
    let read = read_exact(&output);
    let py = read["pyarrow"].as_object().unwrap();
    assert_eq!(py.len(), 2, "{}", read["pyarrow"]);
    assert_eq!(py["id"], json!(["double", ["1.0", "2.0", "2.5"]]));
    assert_eq!(py["device"][0], json!("struct<Platform: string>"));
    assert_eq!(
        py["device"][1],
        json!([
            "{'Platform': 'ios'}",
            "{'Platform': 'android'}",
            "{'Platform': 'web'}"
        ])
    );
    let duck = read["duckdb"].as_object().unwrap();
    assert_eq!(duck.len(), 2, "{}", read["duckdb"]);
    assert_eq!(duck["id"], json!(["1.0", "2.0", "2.5"]));
    assert_eq!(
        duck["device"],
        json!([
            "{'Platform': 'ios'}",
            "{'Platform': 'android'}",
            "{'Platform': 'web'}"
        ])
    );
    let errors = std::fs::read_to_string(dir.path().join("errors.ndjson")).unwrap();
    let error: Value = serde_json::from_str(errors.lines().next().unwrap()).unwrap();
    assert_eq!(error["line"], 4);
    assert_eq!(error["kind"], "duplicate_key");
    let reason = error["reason"].as_str().unwrap();
    assert!(
        reason.contains("`id`") && reason.contains("`ID`"),
        "{reason}"
    );
}
