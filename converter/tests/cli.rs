//! The `ndjson-parquet` CLI, run as a process: every option, every kind of bad input, exit
//! statuses, messages, error records, and that `rows + rejected + blank = lines read`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{batch_rows, expected_row, read_parquet, Timestamps};
use converter::convert::{METADATA_SCHEMA, METADATA_SOURCES};
use converter::schema::Schema;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

fn bin() -> Command {
    Command::cargo_bin("ndjson-parquet").expect("the binary is built")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    run_with_stdin(dir, args, b"")
}

fn run_with_stdin(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let output = bin()
        .current_dir(dir)
        .args(args)
        .write_stdin(stdin.to_vec())
        .output()
        .expect("the binary runs");
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// (rows, rejected, blank, lines) from the summary line.
fn counts(stderr: &str) -> (u64, u64, u64, u64) {
    let number_before = |marker: &str| -> u64 {
        let end = stderr
            .find(marker)
            .unwrap_or_else(|| panic!("no `{marker}` in:\n{stderr}"));
        let start = stderr[..end]
            .rfind(|c: char| !c.is_ascii_digit())
            .map_or(0, |i| i + 1);
        stderr[start..end].parse().unwrap()
    };
    let lines_at = stderr.find("lines read ").expect("lines read") + "lines read ".len();
    let lines_end = stderr[lines_at..].find(' ').unwrap() + lines_at;
    (
        number_before(" rows written"),
        number_before(" rejected"),
        number_before(" blank lines"),
        stderr[lines_at..lines_end].parse().unwrap(),
    )
}

fn assert_reconciles(stderr: &str, expected_lines: u64) -> (u64, u64, u64) {
    let (rows, rejected, blank, lines) = counts(stderr);
    assert_eq!(lines, expected_lines, "lines read:\n{stderr}");
    assert_eq!(
        rows + rejected + blank,
        lines,
        "counts reconcile:\n{stderr}"
    );
    (rows, rejected, blank)
}

fn error_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with(".parquet"))
        .collect()
}

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.contains(".ndjson"))
        .collect();
    files.sort();
    files
}

fn lines_of(paths: &[String]) -> Vec<Value> {
    let mut records = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).unwrap();
        let text = if path.ends_with(".gz") {
            let mut out = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
                &mut out,
            )
            .unwrap();
            out
        } else {
            String::from_utf8(bytes).unwrap()
        };
        records.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    records
}

fn footer(path: &Path) -> std::collections::HashMap<String, String> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn converts_the_bundled_examples_and_readers_agree_with_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = examples();
    assert!(inputs.len() >= 2 && inputs.iter().any(|p| p.ends_with(".gz")));
    let mut args = vec!["convert"];
    args.extend(inputs.iter().map(String::as_str));
    args.extend(["-o", "sample.parquet"]);
    let out = run(dir.path(), &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = lines_of(&inputs);
    assert_reconciles(&out.stderr, records.len() as u64);

    let output = dir.path().join("sample.parquet");
    let meta = footer(&output);
    let schema = Schema::from_json(&meta[METADATA_SCHEMA]).unwrap();
    let sources: Vec<String> = serde_json::from_str(&meta[METADATA_SOURCES]).unwrap();
    assert_eq!(sources, inputs);

    let expected: Vec<Value> = records
        .iter()
        .map(|r| expected_row(r, &schema, Timestamps::Micros))
        .collect();
    common::assert_rows_eq(
        &batch_rows(&read_parquet(&output), Timestamps::Micros),
        &expected,
        "parquet crate",
    );
    let independent = common::read_independently(&output);
    common::assert_rows_eq(&independent.pyarrow, &expected, "pyarrow");
    common::assert_rows_eq(&independent.duckdb, &expected, "duckdb");
}

#[test]
fn schema_output_round_trips_through_convert() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = examples();
    let mut args = vec!["schema"];
    args.extend(inputs.iter().map(String::as_str));
    let printed = run(dir.path(), &args);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    let schema = Schema::from_json(&printed.stdout).unwrap();
    assert_eq!(schema.to_json(), printed.stdout, "printing is stable");
    assert!(
        printed.stderr.contains("schema of 120 records"),
        "{}",
        printed.stderr
    );
    write(dir.path(), "schema.json", printed.stdout.as_bytes());

    let mut args = vec!["convert", "--schema", "schema.json", "-o", "out.parquet"];
    args.extend(inputs.iter().map(String::as_str));
    let out = run(dir.path(), &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written =
        Schema::from_json(&footer(&dir.path().join("out.parquet"))[METADATA_SCHEMA]).unwrap();
    assert_eq!(written, schema);

    // Inferring during convert gives the same schema as `schema` printed.
    let mut args = vec!["convert", "-o", "inferred.parquet"];
    args.extend(inputs.iter().map(String::as_str));
    assert_eq!(run(dir.path(), &args).code, 0);
    let inferred =
        Schema::from_json(&footer(&dir.path().join("inferred.parquet"))[METADATA_SCHEMA]).unwrap();
    assert_eq!(inferred, schema);
}

const MIXED: &[u8] = b"{\"id\":1,\"name\":\"a\"}\n\
\n\
{\"id\":2,\"name\":\"b\"}\n\
{\"id\":3,\"name\":\"c\"\n\
[1,2,3]\n\
   \n\
42\n\
{\"id\":4,\"name\":\"\xff\xfe\"}\n\
{\"id\":5,\"name\":\"e\"}\n\
{\"id\":6,\"name\":\"f\"";

#[test]
fn fail_is_the_default_and_names_file_line_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", MIXED);
    let out = run(dir.path(), &["convert", "in.ndjson", "-o", "out.parquet"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(
            "error: in.ndjson: line 4: invalid JSON at column 18: EOF while parsing an object"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: --on-error skip"));
    assert!(
        leftovers(dir.path()).is_empty(),
        "no output, no temporary file: {:?}",
        leftovers(dir.path())
    );
}

#[test]
fn quarantine_writes_one_record_per_bad_line_and_counts_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", MIXED);
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "out.parquet",
            "--on-error",
            "quarantine",
            "--errors",
            "bad.ndjson",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (rows, rejected, blank) = assert_reconciles(&out.stderr, 10);
    assert_eq!((rows, rejected, blank), (3, 5, 2));
    assert!(
        out.stderr
            .contains("(invalid_json 2, invalid_utf8 1, not_an_object 2)"),
        "{}",
        out.stderr
    );

    let records = error_records(&dir.path().join("bad.ndjson"));
    let summary: Vec<(u64, &str)> = records
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (4, "invalid_json"),
            (5, "not_an_object"),
            (7, "not_an_object"),
            (8, "invalid_utf8"),
            (10, "invalid_json")
        ]
    );
    for r in &records {
        assert_eq!(r["source"], "in.ndjson");
        assert!(r["reason"].as_str().unwrap().len() > 10);
    }
    // Offsets point at the line in the input.
    for r in &records {
        let offset = r["offset"].as_u64().unwrap() as usize;
        let raw_len = r["raw"].as_str().unwrap().len().min(3);
        if r["kind"] != "invalid_utf8" {
            assert_eq!(
                &MIXED[offset..offset + raw_len],
                &r["raw"].as_str().unwrap().as_bytes()[..raw_len]
            );
        }
    }
    assert_eq!(records[1]["raw"], "[1,2,3]");
    assert!(
        records[4]["reason"].as_str().unwrap().contains("cut short"),
        "truncated last line"
    );
    let utf8 = &records[3];
    assert!(utf8["raw_base64"].is_string(), "exact bytes kept: {utf8}");
    assert!(utf8["reason"]
        .as_str()
        .unwrap()
        .contains("invalid UTF-8 at byte 17 of the line"));

    let rows = batch_rows(
        &read_parquet(&dir.path().join("out.parquet")),
        Timestamps::Native,
    );
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 5]);
}

#[test]
fn skip_counts_bad_lines_and_writes_errors_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", MIXED);
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "out.parquet",
            "--on-error",
            "skip",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(assert_reconciles(&out.stderr, 10), (3, 5, 2));
    assert_eq!(leftovers(dir.path()), vec!["out.parquet".to_string()]);

    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "out.parquet",
            "--on-error",
            "skip",
            "--errors",
            "e.ndjson",
        ],
    );
    assert_eq!(out.code, 0);
    assert_eq!(error_records(&dir.path().join("e.ndjson")).len(), 5);
}

#[test]
fn quarantine_without_errors_path_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{\"a\":1}\n");
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "o.parquet",
            "--on-error",
            "quarantine",
        ],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("--on-error quarantine needs --errors PATH"),
        "{}",
        out.stderr
    );
}

#[test]
fn long_lines_deep_nesting_and_empty_objects() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = Vec::new();
    input.extend(b"{\"a\":1,\"e\":{}}\n");
    input.extend(b"{\"a\":\"");
    input.extend(vec![b'x'; 10_000]);
    input.extend(b"\"}\n");
    input.extend(format!("{{\"a\":{}1{}}}\n", "[".repeat(200), "]".repeat(200)).as_bytes());
    input.extend(format!("{{\"a\":{}{}}}\n", "[".repeat(200_000), "]".repeat(200_000)).as_bytes());
    input.extend(b"{}\n");
    input.extend(b"{\"a\":2,\"e\":null}\n");
    write(dir.path(), "in.ndjson", &input);
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "out.parquet",
            "--max-line-bytes",
            "1KiB",
            "--on-error",
            "quarantine",
            "--errors",
            "bad.ndjson",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(assert_reconciles(&out.stderr, 6), (3, 3, 0));
    let records = error_records(&dir.path().join("bad.ndjson"));
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["line_too_long", "too_deep", "line_too_long"]);
    assert_eq!(records[0]["line_bytes"], 10_008);
    assert_eq!(records[0]["raw_truncated"], true);
    assert!(records[0]["reason"]
        .as_str()
        .unwrap()
        .contains("more than the limit of 1024"));
    assert!(records[0]["raw"].as_str().unwrap().len() <= 4096);

    let rows = batch_rows(
        &read_parquet(&dir.path().join("out.parquet")),
        Timestamps::Native,
    );
    assert_eq!(rows[0]["e"], "{}", "an empty object is kept as `{{}}`");
    assert_eq!(
        rows[1],
        serde_json::json!({"a": null, "e": null}),
        "a top-level {{}} is a row of nulls"
    );
    assert_eq!(rows[2]["e"], Value::Null);
}

#[test]
fn broken_and_truncated_gzip_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let full = gzip(&b"{\"a\":1}\n".repeat(20_000));
    write(dir.path(), "cut.ndjson.gz", &full[..full.len() / 2]);
    let mut corrupt = full.clone();
    for b in &mut corrupt[30..60] {
        *b ^= 0xa5;
    }
    write(dir.path(), "corrupt.json.gz", &corrupt);
    for name in ["cut.ndjson.gz", "corrupt.json.gz"] {
        for on_error in ["fail", "skip"] {
            let out = run(
                dir.path(),
                &["convert", name, "-o", "out.parquet", "--on-error", on_error],
            );
            assert_eq!(out.code, 1, "{name}: {}", out.stderr);
            assert!(
                out.stderr
                    .contains(&format!("error: cannot read {name} past byte")),
                "{}",
                out.stderr
            );
            assert!(out.stderr.contains("caused by:"), "{}", out.stderr);
            assert!(leftovers(dir.path()).is_empty());
        }
    }
}

#[test]
fn compression_is_detected_from_content_not_name() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gz-named-plain.json",
        &gzip(b"{\"a\":1}\n{\"a\":2}\n"),
    );
    write(dir.path(), "plain-named.gz", b"{\"a\":3}\n");
    write(
        dir.path(),
        "z.ndjson.zst",
        &zstd::encode_all(&b"{\"a\":4}\n"[..], 3).unwrap(),
    );
    let out = run(
        dir.path(),
        &[
            "convert",
            "gz-named-plain.json",
            "plain-named.gz",
            "z.ndjson.zst",
            "-o",
            "out.parquet",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = batch_rows(
        &read_parquet(&dir.path().join("out.parquet")),
        Timestamps::Native,
    );
    let values: Vec<i64> = rows.iter().map(|r| r["a"].as_i64().unwrap()).collect();
    assert_eq!(values, vec![1, 2, 3, 4]);
}

#[test]
fn empty_input_needs_a_schema_and_then_writes_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "empty.ndjson", b"");
    write(dir.path(), "blank.ndjson", b"\n\n");
    let out = run(
        dir.path(),
        &[
            "convert",
            "empty.ndjson",
            "blank.ndjson",
            "-o",
            "out.parquet",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no valid records (2 lines read)"),
        "{}",
        out.stderr
    );
    assert!(leftovers(dir.path()).is_empty());

    write(
        dir.path(),
        "s.json",
        br#"{"fields":[{"name":"a","type":"int64"}]}"#,
    );
    let out = run(
        dir.path(),
        &[
            "convert",
            "empty.ndjson",
            "blank.ndjson",
            "--schema",
            "s.json",
            "-o",
            "out.parquet",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(assert_reconciles(&out.stderr, 2), (0, 0, 2));
    let read = common::read_independently(&dir.path().join("out.parquet"));
    assert_eq!(read.num_rows, 0);
    assert!(read.pyarrow_schema.contains("a: int64"));

    // An empty file among others is simply empty.
    write(dir.path(), "one.ndjson", b"{\"a\":1}\n");
    let out = run(
        dir.path(),
        &["convert", "empty.ndjson", "one.ndjson", "-o", "out.parquet"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn only_empty_objects_are_refused_rather_than_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{}\n{}\n");
    let out = run(dir.path(), &["convert", "in.ndjson", "-o", "out.parquet"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("the 2 records hold no fields"),
        "{}",
        out.stderr
    );
}

#[test]
fn standard_input_is_spooled_or_sampled_or_read_with_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    let input = b"{\"a\":1,\"t\":\"2026-01-01T00:00:00Z\"}\n{\"a\":2,\"t\":\"2026-01-02T00:00:00Z\"}\n{\"a\":\"x\"}\n";
    // Without --schema or --infer-rows, standard input is spooled to a temporary file and its
    // schema inferred from all of it, as for a file.
    let out = run_with_stdin(dir.path(), &["convert", "-", "-o", "out.parquet"], input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(assert_reconciles(&out.stderr, 3), (3, 0, 0));

    let out = run_with_stdin(
        dir.path(),
        &[
            "convert",
            "-",
            "-o",
            "out.parquet",
            "--infer-rows",
            "2",
            "--on-error",
            "skip",
        ],
        input,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        assert_reconciles(&out.stderr, 3),
        (2, 1, 0),
        "the third record does not fit the sample"
    );

    write(
        dir.path(),
        "s.json",
        br#"{"fields":[{"name":"a","type":"string"},{"name":"t","type":"timestamp"}]}"#,
    );
    let out = run_with_stdin(
        dir.path(),
        &["convert", "-", "-o", "out.parquet", "--schema", "s.json"],
        &gzip(input),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(assert_reconciles(&out.stderr, 3), (3, 0, 0));

    let out = run_with_stdin(dir.path(), &["schema", "-"], input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("\"string\""),
        "a and \"x\" widen to string: {}",
        out.stdout
    );
}

#[test]
fn named_pipes_are_read_once_and_never_half_converted() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("events.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    // The writer waits for a reader with non-blocking opens (ENXIO until one is there) rather
    // than a blocking open, whose pairing with a reader that opens and closes the FIFO around
    // it is timing-dependent; then it writes with blocking semantics.
    let feed = |fifo: PathBuf| {
        std::thread::spawn(move || {
            use std::os::unix::fs::OpenOptionsExt;
            const O_NONBLOCK: i32 = 0o4000;
            let started = std::time::Instant::now();
            let pipe = loop {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(O_NONBLOCK)
                    .open(&fifo)
                {
                    Ok(pipe) => break pipe,
                    Err(_) if started.elapsed() < std::time::Duration::from_secs(60) => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    Err(e) => panic!("no reader opened the FIFO: {e}"),
                }
            };
            let mut pipe = std::io::BufWriter::new(NonBlocking(pipe));
            for i in 0..5000 {
                // A broken pipe just means the reader gave up, as it must without a schema.
                if writeln!(pipe, "{{\"i\":{i}}}").is_err() {
                    return;
                }
            }
            let _ = pipe.flush();
        })
    };

    // Without a schema the pipe is refused up front (before it is opened: no writer needed)
    // rather than sampled and re-opened.
    let out = run(dir.path(), &["convert", "events.fifo", "-o", "out.parquet"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("events.fifo is a stream that can be read only once"),
        "{}",
        out.stderr
    );

    let writer = feed(fifo.clone());
    let out = run(
        dir.path(),
        &[
            "convert",
            "events.fifo",
            "-o",
            "out.parquet",
            "--infer-rows",
            "10",
        ],
    );
    writer.join().unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(assert_reconciles(&out.stderr, 5000), (5000, 0, 0));
    let rows = batch_rows(
        &read_parquet(&dir.path().join("out.parquet")),
        Timestamps::Native,
    );
    assert_eq!(rows.len(), 5000);
    assert_eq!(rows[0]["i"], 0);
    assert_eq!(rows[4999]["i"], 4999);
}

#[test]
fn a_late_record_widens_the_schema_and_the_conversion_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::new();
    for i in 0..3000 {
        input.push_str(&format!("{{\"n\":{i}}}\n"));
    }
    input.push_str("{\"n\":\"late\",\"extra\":true}\n");
    write(dir.path(), "in.ndjson", input.as_bytes());
    let out = run(dir.path(), &["convert", "in.ndjson", "-o", "out.parquet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("widened and restarted 1 time"),
        "{}",
        out.stderr
    );
    let rows = batch_rows(
        &read_parquet(&dir.path().join("out.parquet")),
        Timestamps::Native,
    );
    assert_eq!(rows.len(), 3001);
    assert_eq!(rows[0], serde_json::json!({"n": "0", "extra": null}));
    assert_eq!(rows[3000], serde_json::json!({"n": "late", "extra": true}));

    // With --infer-rows the sample is final: the late record follows the policy instead.
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "out.parquet",
            "--infer-rows",
            "100",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("line 3001: field `n`: expected int64, found string \"late\""),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_field_and_type_mismatch_policies() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "s.json", br#"{"fields":[{"name":"id","type":"int64"},{"name":"user","type":"struct","fields":[{"name":"age","type":"int64"}]}]}"#);
    write(dir.path(), "in.ndjson", b"{\"id\":1,\"user\":{\"age\":30,\"nick\":\"z\"}}\n{\"id\":\"two\",\"user\":{\"age\":31}}\n");

    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "--schema",
            "s.json",
            "-o",
            "o.parquet",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("line 1: field `user.nick` is not in the schema"),
        "{}",
        out.stderr
    );

    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "--schema",
            "s.json",
            "-o",
            "o.parquet",
            "--unknown-fields",
            "drop",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("line 2: field `id`: expected int64, found string \"two\""),
        "{}",
        out.stderr
    );

    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "--schema",
            "s.json",
            "-o",
            "o.parquet",
            "--unknown-fields",
            "drop",
            "--type-mismatch",
            "null",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("1 unknown fields dropped, 1 mismatched values written as null"),
        "{}",
        out.stderr
    );
    let rows = batch_rows(
        &read_parquet(&dir.path().join("o.parquet")),
        Timestamps::Native,
    );
    assert_eq!(rows[0], serde_json::json!({"id": 1, "user": {"age": 30}}));
    assert_eq!(
        rows[1],
        serde_json::json!({"id": null, "user": {"age": 31}})
    );

    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "--schema",
            "s.json",
            "-o",
            "o.parquet",
            "--on-error",
            "quarantine",
            "--errors",
            "e.ndjson",
        ],
    );
    assert_eq!(out.code, 0);
    let kinds: Vec<String> = error_records(&dir.path().join("e.ndjson"))
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["unknown_field", "type_mismatch"]);
}

#[test]
fn bad_schema_files_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{\"a\":1}\n");
    write(
        dir.path(),
        "s.json",
        br#"{"fields":[{"name":"a","type":"integer"}]}"#,
    );
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "--schema",
            "s.json",
            "-o",
            "o.parquet",
        ],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("s.json") && out.stderr.contains("unknown type `integer`"),
        "{}",
        out.stderr
    );
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "--schema",
            "s.json",
            "--infer-rows",
            "3",
            "-o",
            "o.parquet",
        ],
    );
    assert_eq!(out.code, 2);
}

#[test]
fn every_codec_is_written_and_lzo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.ndjson",
        &b"{\"a\":1,\"s\":\"hello hello hello\"}\n".repeat(100),
    );
    for (codec, expected) in [
        ("snappy", "SNAPPY"),
        ("gzip", "GZIP"),
        ("gzip:9", "GZIP"),
        ("brotli:4", "BROTLI"),
        ("lz4", "LZ4_RAW"),
        ("zstd", "ZSTD"),
        ("zstd:19", "ZSTD"),
        ("none", "UNCOMPRESSED"),
    ] {
        let out = run(
            dir.path(),
            &[
                "convert",
                "in.ndjson",
                "-o",
                "o.parquet",
                "--compression",
                codec,
            ],
        );
        assert_eq!(out.code, 0, "{codec}: {}", out.stderr);
        let reader =
            SerializedFileReader::new(std::fs::File::open(dir.path().join("o.parquet")).unwrap())
                .unwrap();
        let column = reader.metadata().row_group(0).column(0).compression();
        assert!(
            format!("{column:?}").starts_with(expected),
            "{codec}: {column:?}"
        );
    }
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "o.parquet",
            "--compression",
            "lzo",
        ],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("`lzo` is not supported"),
        "{}",
        out.stderr
    );
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "o.parquet",
            "--compression",
            "zstd:40",
        ],
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("out of range"), "{}", out.stderr);
}

#[test]
fn row_groups_dictionary_statistics_and_timestamp_unit() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::new();
    for i in 0..3500 {
        input.push_str(&format!(
            "{{\"i\":{i},\"t\":\"2026-01-01T{:02}:{:02}:{:02}.5Z\",\"k\":\"v{}\"}}\n",
            i / 3600,
            i / 60 % 60,
            i % 60,
            i % 3
        ));
    }
    write(dir.path(), "in.ndjson", input.as_bytes());
    let out = run(
        dir.path(),
        &[
            "convert",
            "in.ndjson",
            "-o",
            "o.parquet",
            "--row-group-size",
            "1024",
            "--no-dictionary",
            "--statistics",
            "none",
            "--timestamp-unit",
            "ms",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("4 row groups"), "{}", out.stderr);
    let reader =
        SerializedFileReader::new(std::fs::File::open(dir.path().join("o.parquet")).unwrap())
            .unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 4);
    let column = reader.metadata().row_group(0).column(0);
    assert!(column.dictionary_page_offset().is_none());
    assert!(column.statistics().is_none());
    let t = reader.metadata().file_metadata().schema_descr().column(1);
    assert!(
        format!("{:?}", t.logical_type_ref()).contains("MILLIS"),
        "{:?}",
        t.logical_type_ref()
    );
    let read = common::read_independently(&dir.path().join("o.parquet"));
    assert_eq!(read.num_row_groups, 4);
    assert!(
        read.pyarrow_schema.contains("t: timestamp[ms, tz=UTC]"),
        "{}",
        read.pyarrow_schema
    );
    assert_eq!(read.duckdb[3]["t"], 1_767_225_603_500_000i64);

    let out = run(dir.path(), &["convert", "in.ndjson", "-o", "d.parquet"]);
    assert_eq!(out.code, 0);
    let reader =
        SerializedFileReader::new(std::fs::File::open(dir.path().join("d.parquet")).unwrap())
            .unwrap();
    // `k` (three values): a column of unique values is not dictionary-encoded in any case.
    let column = reader.metadata().row_group(0).column(2);
    assert!(column.dictionary_page_offset().is_some());
    assert!(column.statistics().is_some());
}

#[test]
fn thread_count_does_not_change_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = Vec::new();
    ndjson_parquet_like_data(&mut input);
    write(dir.path(), "in.ndjson", &input);
    for threads in ["1", "2", "5"] {
        let out = run(
            dir.path(),
            &[
                "convert",
                "in.ndjson",
                "-o",
                &format!("t{threads}.parquet"),
                "--threads",
                threads,
                "--on-error",
                "skip",
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let one = std::fs::read(dir.path().join("t1.parquet")).unwrap();
    assert_eq!(one, std::fs::read(dir.path().join("t2.parquet")).unwrap());
    assert_eq!(one, std::fs::read(dir.path().join("t5.parquet")).unwrap());
}

/// Several MiB of varied records with a few bad lines, so that many chunks are in flight.
fn ndjson_parquet_like_data(out: &mut Vec<u8>) {
    for i in 0..60_000u64 {
        if i % 9_973 == 0 {
            out.extend(b"{broken\n");
        }
        let line = format!(
            "{{\"i\":{i},\"s\":\"row {i} {}\",\"f\":{}.25,\"l\":[{},{}],\"o\":{{\"k\":\"v{}\"}}}}\n",
            "x".repeat((i % 50) as usize),
            i % 1000,
            i,
            i * 2,
            i % 7
        );
        out.extend(line.as_bytes());
    }
}

#[test]
fn usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{\"a\":1}\n");
    for args in [
        vec!["convert", "in.ndjson"],
        vec!["convert", "-o", "o.parquet"],
        vec!["convert", "in.ndjson", "-o", "o.parquet", "--bogus"],
        vec!["convert", "in.ndjson", "-o", "o.parquet", "--threads", "0"],
        vec![
            "convert",
            "in.ndjson",
            "-o",
            "o.parquet",
            "--max-line-bytes",
            "lots",
        ],
        vec!["convert", "in.ndjson", "-o", "in.ndjson"],
        vec!["convert", "in.ndjson", "-o", "-"],
        vec!["convert", "-", "-", "-o", "o.parquet", "--infer-rows", "1"],
        vec!["frobnicate"],
    ] {
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("error"), "{args:?}: {}", out.stderr);
    }
    for args in [vec!["--help"], vec!["--version"], vec!["convert", "--help"]] {
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 0, "{args:?}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("in.ndjson")).unwrap(),
        b"{\"a\":1}\n"
    );
}

#[test]
fn missing_input_or_output_directory_is_a_conversion_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{\"a\":1}\n");
    let out = run(dir.path(), &["convert", "nope.ndjson", "-o", "o.parquet"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("cannot open nope.ndjson"),
        "{}",
        out.stderr
    );
    let out = run(
        dir.path(),
        &["convert", "in.ndjson", "-o", "no/such/dir/o.parquet"],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no/such/dir/o.parquet"),
        "{}",
        out.stderr
    );
}

#[test]
fn quiet_prints_nothing_and_no_progress_bar_when_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{\"a\":1}\n");
    let out = run(
        dir.path(),
        &["convert", "in.ndjson", "-o", "o.parquet", "-q"],
    );
    assert_eq!(out.code, 0);
    assert_eq!(out.stderr, "");
    let out = run(dir.path(), &["convert", "in.ndjson", "-o", "o.parquet"]);
    assert!(
        !out.stderr.contains('\r') && !out.stderr.contains('\u{1b}'),
        "{:?}",
        out.stderr
    );
    assert!(out.stderr.contains("MB/s"));
}

/// A non-blocking FIFO writer that waits while the pipe is full.
struct NonBlocking(std::fs::File);

impl Write for NonBlocking {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

// ---- Hostile input: what a careless or unlucky invocation must never do. ----

/// Every file in `dir` (not recursing), sorted, with its content.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn outputs_never_overwrite_an_input_or_the_schema_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.ndjson", b"{\"a\":1}\n{broken\n");
    write(
        dir.path(),
        "s.json",
        br#"{"fields":[{"name":"a","type":"int64"}]}"#,
    );
    std::os::unix::fs::symlink("a.ndjson", dir.path().join("link.ndjson")).unwrap();
    std::fs::hard_link(dir.path().join("a.ndjson"), dir.path().join("hard.ndjson")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let before = snapshot(dir.path());
    for (args, first, second) in [
        (
            vec!["--on-error", "quarantine", "--errors", "a.ndjson"],
            "--errors a.ndjson",
            "input a.ndjson",
        ),
        (
            vec!["--on-error", "skip", "--errors", "a.ndjson"],
            "--errors a.ndjson",
            "input a.ndjson",
        ),
        (
            vec!["--on-error", "skip", "--errors", "./a.ndjson"],
            "--errors ./a.ndjson",
            "input a.ndjson",
        ),
        (
            vec!["--on-error", "skip", "--errors", "link.ndjson"],
            "--errors link.ndjson",
            "input a.ndjson",
        ),
        (
            vec!["--on-error", "skip", "--errors", "hard.ndjson"],
            "--errors hard.ndjson",
            "input a.ndjson",
        ),
        (
            vec!["--schema", "s.json", "--errors", "s.json"],
            "--errors s.json",
            "--schema s.json",
        ),
    ] {
        let mut full = vec!["convert", "a.ndjson", "-o", "out.parquet"];
        full.extend(args);
        let out = run(dir.path(), &full);
        assert_eq!(out.code, 2, "{full:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(first) && out.stderr.contains(second),
            "{full:?} names both arguments: {}",
            out.stderr
        );
        assert_eq!(snapshot(dir.path()), before, "{full:?} wrote nothing");
    }
    for (args, first, second) in [
        (
            vec!["a.ndjson", "-o", "s.json", "--schema", "s.json"],
            "-o s.json",
            "--schema s.json",
        ),
        (
            vec!["a.ndjson", "-o", "link.ndjson"],
            "-o link.ndjson",
            "input a.ndjson",
        ),
        (
            vec!["link.ndjson", "-o", "hard.ndjson"],
            "-o hard.ndjson",
            "input link.ndjson",
        ),
        (
            vec![
                "a.ndjson",
                "-o",
                "x.parquet",
                "--on-error",
                "skip",
                "--errors",
                "./x.parquet",
            ],
            "-o x.parquet",
            "--errors ./x.parquet",
        ),
        (
            vec![
                "a.ndjson",
                "-o",
                "sub/../x.parquet",
                "--on-error",
                "skip",
                "--errors",
                "x.parquet",
            ],
            "-o sub/../x.parquet",
            "--errors x.parquet",
        ),
    ] {
        let mut full = vec!["convert"];
        full.extend(args);
        let out = run(dir.path(), &full);
        assert_eq!(out.code, 2, "{full:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(first) && out.stderr.contains(second),
            "{full:?} names both arguments: {}",
            out.stderr
        );
        assert_eq!(snapshot(dir.path()), before, "{full:?} wrote nothing");
        assert!(!dir.path().join("x.parquet").exists());
    }
}

#[test]
fn an_output_naming_a_directory_is_a_usage_error_that_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{\"a\":1}\n{bad\n");
    std::fs::create_dir(dir.path().join("outdir")).unwrap();
    for args in [
        vec!["convert", "in.ndjson", "-o", "outdir"],
        vec!["convert", "in.ndjson", "-o", "outdir/"],
        vec![
            "convert",
            "in.ndjson",
            "-o",
            "o.parquet",
            "--on-error",
            "quarantine",
            "--errors",
            "outdir",
        ],
    ] {
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("outdir") && out.stderr.contains("is a directory"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(temporaries(dir.path()).is_empty(), "{args:?}");
        assert!(!dir.path().join("o.parquet").exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("outdir"))
                .unwrap()
                .count(),
            0
        );
    }
}

/// Spawns the CLI in `dir` with a piped standard input and `TMPDIR` set to `tmp`.
fn spawn_piped(dir: &Path, tmp: &Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("ndjson-parquet"))
        .current_dir(dir)
        .env("TMPDIR", tmp)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

/// Feeds records to `child`'s standard input from a thread, without ever closing it.
fn feed_forever(child: &mut std::process::Child) -> std::thread::JoinHandle<()> {
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let block: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"a\":{i},\"s\":\"some text {i}\"}}\n").into_bytes())
            .collect();
        // Stops when the child is gone (broken pipe).
        while stdin.write_all(&block).is_ok() {}
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn sigint_and_sigterm_remove_temporary_files_and_exit_128_plus_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    write(
        dir.path(),
        "s.json",
        br#"{"fields":[{"name":"a","type":"int64"},{"name":"s","type":"string"}]}"#,
    );
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        // Converting: the Parquet output and the error output are being written.
        let mut child = spawn_piped(
            dir.path(),
            &tmp,
            &[
                "convert",
                "-",
                "--schema",
                "s.json",
                "-o",
                "out.parquet",
                "--on-error",
                "quarantine",
                "--errors",
                "errors.ndjson",
                "--row-group-size",
                "1024",
            ],
        );
        let feeder = feed_forever(&mut child);
        wait_until("both temporary outputs exist", || {
            let found = temporaries(dir.path());
            found.iter().any(|n| n.starts_with(".out.parquet.tmp-"))
                && found.iter().any(|n| n.starts_with(".errors.ndjson.tmp-"))
        });
        send(&child, signal);
        let status = child.wait().unwrap();
        feeder.join().unwrap();
        assert_eq!(status.code(), Some(code), "{status:?}");
        assert!(temporaries(dir.path()).is_empty(), "signal {signal}");
        assert!(!dir.path().join("out.parquet").exists());
        assert!(!dir.path().join("errors.ndjson").exists());

        // Spooling standard input (no --schema): the spool goes too.
        let mut child = spawn_piped(dir.path(), &tmp, &["convert", "-", "-o", "out.parquet"]);
        let feeder = feed_forever(&mut child);
        let mut stderr = child.stderr.take().unwrap();
        let mut said = Vec::new();
        wait_until("the spool is announced", || {
            let mut byte = [0u8; 1];
            if std::io::Read::read(&mut stderr, &mut byte).unwrap_or(0) == 1 {
                said.push(byte[0]);
            }
            said.ends_with(b"\n")
        });
        let said = String::from_utf8_lossy(&said).into_owned();
        assert!(said.contains("temporary file"), "{said}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        send(&child, signal);
        let status = child.wait().unwrap();
        feeder.join().unwrap();
        assert_eq!(status.code(), Some(code), "{status:?}");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "spool removed");
        assert!(temporaries(dir.path()).is_empty());
    }
}

#[test]
fn input_without_a_valid_line_still_writes_its_errors_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "junk.ndjson",
        b"junk\nmore junk\n{\"a\":\n[1]\n\n[2]\n",
    );
    let out = run(
        dir.path(),
        &[
            "convert",
            "junk.ndjson",
            "-o",
            "out.parquet",
            "--on-error",
            "quarantine",
            "--errors",
            "errors.ndjson",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    for said in [
        "6 lines",
        "5 rejected",
        "1 blank",
        "invalid_json 3",
        "not_an_object 2",
    ] {
        assert!(out.stderr.contains(said), "`{said}` in: {}", out.stderr);
    }
    let records = error_records(&dir.path().join("errors.ndjson"));
    assert_eq!(records.len(), 5);
    assert_eq!(records[0]["raw"], "junk");
    assert!(!dir.path().join("out.parquet").exists());
    assert!(temporaries(dir.path()).is_empty());

    let out = run(
        dir.path(),
        &[
            "convert",
            "junk.ndjson",
            "-o",
            "out.parquet",
            "--on-error",
            "skip",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("5 rejected") && out.stderr.contains("invalid_json 3"),
        "{}",
        out.stderr
    );

    let out = run(dir.path(), &["schema", "junk.ndjson"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("no valid records") && out.stderr.contains("6 lines"),
        "{}",
        out.stderr
    );
}

/// Waits for `child`, watching its peak resident set (`VmHWM` in /proc, which only grows) until
/// it exits; returns its exit code and the last peak seen, in KiB.
fn wait_with_peak_rss(mut child: std::process::Child) -> (i32, u64) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code().expect("exited normally"), peak);
        }
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                peak = peak.max(kib);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Sends `signal` (`TERM`, `INT`) to `child` with kill(1).
fn send(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_piped_input_with_a_schema_is_streamed_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.json",
        br#"{"fields":[{"name":"a","type":"int64"},{"name":"s","type":"string"}]}"#,
    );
    let mut child = spawn_piped(
        dir.path(),
        dir.path(),
        &[
            "convert",
            "-",
            "--schema",
            "s.json",
            "-o",
            "out.parquet",
            "--row-group-bytes",
            "8MiB",
            "--threads",
            "2",
        ],
    );
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let block: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("{{\"a\":{i},\"s\":\"text {}\"}}\n", i * 7919).into_bytes())
            .collect();
        let mut written = 0;
        while written < 160 << 20 {
            stdin.write_all(&block).unwrap();
            written += block.len();
        }
        written
    });
    let (code, peak_kib) = wait_with_peak_rss(child);
    let written = feeder.join().unwrap();
    assert_eq!(code, 0);
    assert!(peak_kib > 0, "the peak was seen");
    assert!(
        peak_kib < 100 * 1024,
        "peak RSS {peak_kib} KiB for {} MiB of input",
        written >> 20
    );
}

#[test]
fn standard_input_without_a_schema_is_spooled_and_inferred_whole() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut input: Vec<u8> = (0..3000)
        .flat_map(|i| format!("{{\"a\":{i}}}\n").into_bytes())
        .collect();
    input.extend(b"{\"a\":\"late\",\"b\":true}\n");
    let output = bin()
        .current_dir(dir.path())
        .env("TMPDIR", &tmp)
        .args(["convert", "-", "-o", "out.parquet"])
        .write_stdin(input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("temporary file").count(),
        1,
        "said once: {stderr}"
    );
    assert_eq!(assert_reconciles(&stderr, 3001), (3001, 0, 0));
    let schema =
        Schema::from_json(&footer(&dir.path().join("out.parquet"))[METADATA_SCHEMA]).unwrap();
    assert_eq!(
        schema.to_compact_json(),
        r#"{"format":"ndjson-parquet.schema","version":1,"fields":[{"name":"a","type":"string"},{"name":"b","type":"boolean"}]}"#
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "spool removed");
}

/// A zstd skippable frame (what pzstd writes first): magic, little-endian length, payload.
fn skippable_frame(magic_low: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x50 | magic_low, 0x2a, 0x4d, 0x18];
    frame.extend((payload.len() as u32).to_le_bytes());
    frame.extend(payload);
    frame
}

#[test]
fn compressed_inputs_are_read_as_the_tools_that_wrote_them_do() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"{\"a\":1}\n{\"a\":2}\n".repeat(50);
    let mut pzstd = skippable_frame(0, &[0x10, 0, 0, 0]);
    pzstd.extend(zstd::encode_all(&text[..], 3).unwrap());
    pzstd.extend(skippable_frame(0xf, b"more metadata"));
    pzstd.extend(zstd::encode_all(&text[..], 3).unwrap());
    write(dir.path(), "pzstd.ndjson.zst", &pzstd);
    let mut padded = gzip(&text);
    padded.extend(gzip(&text));
    padded.extend(vec![0u8; 1000]);
    write(dir.path(), "padded.ndjson.gz", &padded);
    for name in ["pzstd.ndjson.zst", "padded.ndjson.gz"] {
        let out = run(dir.path(), &["convert", name, "-o", "out.parquet"]);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        assert_eq!(assert_reconciles(&out.stderr, 200), (200, 0, 0), "{name}");
    }
    let mut garbage = gzip(&text);
    garbage.extend(b"\0\0trailing garbage");
    write(dir.path(), "garbage.ndjson.gz", &garbage);
    let out = run(
        dir.path(),
        &["convert", "garbage.ndjson.gz", "-o", "out.parquet"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);

    let mut xz = vec![0xfd, b'7', b'z', b'X', b'Z', 0x00, 0x00, 0x04];
    xz.extend([0u8; 32]);
    write(dir.path(), "in.ndjson.xz", &xz);
    let mut bz = b"BZh9".to_vec();
    bz.extend([0x31, 0x41, 0x59, 0x26, 0x53, 0x59]);
    bz.extend([0u8; 32]);
    write(dir.path(), "in.ndjson.bz2", &bz);
    for (name, format, command) in [
        ("in.ndjson.xz", "xz", "xz -d"),
        ("in.ndjson.bz2", "bzip2", "bzip2 -d"),
    ] {
        let out = run(dir.path(), &["convert", name, "-o", "out.parquet"]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains(name)
                && out.stderr.contains(&format!("{format}-compressed"))
                && out.stderr.contains(command),
            "{name}: {}",
            out.stderr
        );
        let out = run(dir.path(), &["schema", name]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
    }
    assert!(temporaries(dir.path()).is_empty());
}

#[test]
fn a_directory_as_input_is_called_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    for args in [
        vec!["convert", "logs", "-o", "o.parquet"],
        vec!["schema", "logs"],
    ] {
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("logs is a directory") && !out.stderr.contains("stream"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn schema_file_problems_are_usage_errors_that_say_what_is_wrong_once() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{\"a\":1}\n");
    write(dir.path(), "syntax.json", b"{\"fields\": [");
    write(dir.path(), "nofields.json", br#"{"fields":[]}"#);
    write(dir.path(), "garbage.json", b"not json");
    let convert_with = |schema: &str| {
        run(
            dir.path(),
            &[
                "convert",
                "in.ndjson",
                "--schema",
                schema,
                "-o",
                "o.parquet",
            ],
        )
    };
    let out = convert_with("missing.json");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("missing.json"), "{}", out.stderr);
    let out = convert_with("nofields.json");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("nofields.json has no fields") && !out.stderr.contains("pass --schema"),
        "{}",
        out.stderr
    );
    for name in ["syntax.json", "garbage.json"] {
        let out = convert_with(name);
        assert_eq!(out.code, 2, "{}", out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            for later in &lines[i + 1..] {
                assert!(!later.contains(line.trim_start_matches("  caused by: ")));
            }
        }
        let cause = if name == "syntax.json" {
            "EOF while parsing"
        } else {
            "expected"
        };
        assert_eq!(
            out.stderr.matches(cause).count(),
            1,
            "the cause once: {}",
            out.stderr
        );
    }
    write(
        dir.path(),
        "bom.json",
        b"\xEF\xBB\xBF{\"fields\":[{\"name\":\"a\",\"type\":\"int64\"}]}",
    );
    let out = convert_with("bom.json");
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_json_document_gets_a_hint_to_make_it_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pretty.json",
        b"{\n  \"a\": 1,\n  \"b\": [1, 2]\n}\n",
    );
    write(
        dir.path(),
        "array.json",
        b"[\n  {\"a\": 1},\n  {\"a\": 2}\n]\n",
    );
    write(dir.path(), "inline.json", b"  [{\"a\": 1}, {\"a\": 2}]\n");
    write(dir.path(), "split.json", b"[{\"a\": 1},\n{\"a\": 2}]\n");
    for name in ["pretty.json", "array.json", "inline.json", "split.json"] {
        for extra in [&[][..], &["--on-error", "skip"][..]] {
            let mut args = vec!["convert", name, "-o", "o.parquet"];
            args.extend(extra);
            let out = run(dir.path(), &args);
            // Skipping its bad lines may leave some that are valid objects (array.json's
            // last element): converted, with the hint all the same.
            let expected = if extra.is_empty() { 1 } else { out.code.min(1) };
            assert_eq!(out.code, expected, "{name} {extra:?}: {}", out.stderr);
            assert!(
                out.stderr.contains("looks like one JSON document") && out.stderr.contains("jq -c"),
                "{name} {extra:?}: {}",
                out.stderr
            );
        }
    }
    write(dir.path(), "ndjson.json", b"{\"a\":1}\n{\"a\":\n");
    let out = run(dir.path(), &["convert", "ndjson.json", "-o", "o.parquet"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!out.stderr.contains("jq"), "{}", out.stderr);
}

#[test]
fn a_byte_order_mark_before_the_first_line_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bom.ndjson",
        b"\xEF\xBB\xBF{\"a\":1}\n{\"a\":2}\n",
    );
    let out = run(dir.path(), &["convert", "bom.ndjson", "-o", "o.parquet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(assert_reconciles(&out.stderr, 2), (2, 0, 0));
}

#[test]
fn row_groups_below_the_floor_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in.ndjson", b"{\"a\":1}\n");
    for rows in ["1", "1023"] {
        let out = run(
            dir.path(),
            &[
                "convert",
                "in.ndjson",
                "-o",
                "o.parquet",
                "--row-group-size",
                rows,
            ],
        );
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains("1024"), "{}", out.stderr);
        assert!(!dir.path().join("o.parquet").exists());
    }
}

#[test]
fn the_summary_counts_widened_numbers_and_case_variants() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in.ndjson",
        b"{\"id\":1,\"big\":1}\n{\"Id\":2,\"big\":123456789012345678901}\n{\"ID\":3,\"big\":2}\n",
    );
    let out = run(dir.path(), &["convert", "in.ndjson", "-o", "out.parquet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("1 number column widened to keep every value exact: 1 to decimal, 0 to text"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("2 keys mapped onto a column spelled with other letter case"),
        "{}",
        out.stderr
    );
}

/// An input whose `counts` objects have 1,200 distinct keys in all (more than the map
/// threshold of 1,000), 40 per line, with struct values; one null and one empty map.
fn many_key_lines() -> (Vec<u8>, Vec<Value>) {
    let mut text = Vec::new();
    let mut records = Vec::new();
    for row in 0..30 {
        let counts: serde_json::Map<String, Value> = (0..40)
            .map(|i| {
                let key = row * 40 + i;
                let value = if i % 2 == 0 {
                    serde_json::json!({"n": key, "w": 0.5})
                } else {
                    serde_json::json!({"n": key})
                };
                (key.to_string(), value)
            })
            .collect();
        records.push(serde_json::json!({"id": row, "counts": counts}));
    }
    records.push(serde_json::json!({"id": 30, "counts": null}));
    records.push(serde_json::json!({"id": 31, "counts": {}}));
    for record in &records {
        serde_json::to_writer(&mut text, record).unwrap();
        text.push(b'\n');
    }
    (text, records)
}

/// What pyarrow and DuckDB read of map column `column` (`tests/python/read_map.py`).
fn read_map(parquet: &Path, column: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_map.py");
    common::python_json(&[script.as_os_str(), parquet.as_os_str(), column.as_ref()])
}

/// The parquet crate's reading of `parquet`, against what `records` must read back as.
fn assert_reads_back(parquet: &Path, records: &[Value], schema: &Schema) {
    let rows = batch_rows(&read_parquet(parquet), Timestamps::Native);
    let want: Vec<Value> = records
        .iter()
        .map(|r| expected_row(r, schema, Timestamps::Native))
        .collect();
    assert_eq!(rows, want);
}

#[test]
fn objects_with_keys_as_data_are_written_as_maps_that_pyarrow_and_duckdb_read() {
    let dir = tempfile::tempdir().unwrap();
    let (text, records) = many_key_lines();
    write(dir.path(), "in.ndjson", &text);
    let out = run(dir.path(), &["convert", "in.ndjson", "-o", "out.parquet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("1 object column written as MAP<string, V>")
            && out.stderr.contains("counts"),
        "{}",
        out.stderr
    );
    let schema =
        Schema::from_json(&footer(&dir.path().join("out.parquet"))[METADATA_SCHEMA]).unwrap();
    assert_eq!(
        schema.leaf_columns(),
        4,
        "id, the key, and n and w of the value"
    );

    // What every reader must see: the entries in input order, absent fields null.
    let expected: Vec<Value> = records
        .iter()
        .map(|r| match r["counts"].as_object() {
            None => Value::Null,
            Some(map) => Value::Array(
                map.iter()
                    .map(|(k, v)| serde_json::json!([k, {"n": v["n"], "w": v.get("w")}]))
                    .collect(),
            ),
        })
        .collect();
    let read = read_map(&dir.path().join("out.parquet"), "counts");
    assert_eq!(read["pyarrow_is_map"], true, "{read}");
    assert!(
        read["pyarrow_type"]
            .as_str()
            .unwrap()
            .starts_with("map<string, struct<n: int64, w: double>"),
        "{}",
        read["pyarrow_type"]
    );
    assert_eq!(
        read["duckdb_type"],
        "MAP(VARCHAR, STRUCT(n BIGINT, w DOUBLE))"
    );
    assert_eq!(read["pyarrow"], Value::Array(expected.clone()));
    assert_eq!(read["duckdb"], Value::Array(expected));
    // And the parquet crate reads back every record.
    assert_reads_back(&dir.path().join("out.parquet"), &records, &schema);
}

/// 3,000 records: `id` in every one, `level` in every third, and four of 3,000 keys `k*`
/// each (a key in about four records: data, not names).
fn sparse_root_lines() -> (Vec<u8>, Vec<Value>) {
    let mut text = Vec::new();
    let mut records = Vec::new();
    for row in 0..3000u64 {
        let mut record = serde_json::Map::new();
        record.insert("id".into(), row.into());
        for j in 0..4 {
            let key = (row * 7919 + j * 1031) % 3000;
            record.insert(format!("k{key}"), (row * 10 + j).into());
        }
        if row % 3 == 0 {
            record.insert("level".into(), "info".into());
        }
        records.push(Value::Object(record));
    }
    for record in &records {
        serde_json::to_writer(&mut text, record).unwrap();
        text.push(b'\n');
    }
    (text, records)
}

#[test]
fn rare_top_level_keys_share_one_overflow_map_that_pyarrow_and_duckdb_read() {
    let dir = tempfile::tempdir().unwrap();
    let (text, records) = sparse_root_lines();
    write(dir.path(), "in.ndjson", &text);
    let out = run(dir.path(), &["convert", "in.ndjson", "-o", "out.parquet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("MAP<string, V> column `_overflow`"),
        "{}",
        out.stderr
    );
    let schema =
        Schema::from_json(&footer(&dir.path().join("out.parquet"))[METADATA_SCHEMA]).unwrap();
    let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["id", "level", "_overflow"]);
    assert_eq!(schema.overflow.as_deref(), Some("_overflow"));

    // Every `k*` key of a record, in input order, in its overflow map.
    let expected: Vec<Value> = records
        .iter()
        .map(|r| {
            Value::Array(
                r.as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| k.starts_with('k'))
                    .map(|(k, v)| serde_json::json!([k, v]))
                    .collect(),
            )
        })
        .collect();
    let read = read_map(&dir.path().join("out.parquet"), "_overflow");
    assert_eq!(read["pyarrow_is_map"], true, "{read}");
    assert_eq!(read["duckdb_type"], "MAP(VARCHAR, BIGINT)");
    assert_eq!(read["pyarrow"], Value::Array(expected.clone()));
    assert_eq!(read["duckdb"], Value::Array(expected));
    assert_reads_back(&dir.path().join("out.parquet"), &records, &schema);

    // The printed schema names its overflow column, and a conversion with it as `--schema`
    // (where unknown keys are otherwise rejected) writes the same rows, new keys included.
    let printed = run(dir.path(), &["schema", "in.ndjson"]);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert_eq!(Schema::from_json(&printed.stdout).unwrap(), schema);
    write(dir.path(), "schema.json", printed.stdout.as_bytes());
    let mut more = text.clone();
    more.extend_from_slice(b"{\"id\":9000,\"never seen\":1}\n");
    write(dir.path(), "more.ndjson", &more);
    let fixed = run(
        dir.path(),
        &[
            "convert",
            "more.ndjson",
            "--schema",
            "schema.json",
            "-o",
            "fixed.parquet",
        ],
    );
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let mut all = records.clone();
    all.push(serde_json::json!({"id": 9000, "never seen": 1}));
    assert_reads_back(&dir.path().join("fixed.parquet"), &all, &schema);
}

#[test]
fn map_schemas_round_trip_and_non_objects_are_rejected_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = many_key_lines();
    write(dir.path(), "in.ndjson", &text);
    let printed = run(dir.path(), &["schema", "in.ndjson"]);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    let schema = Schema::from_json(&printed.stdout).unwrap();
    assert!(
        printed.stdout.contains("\"type\": \"map\""),
        "{}",
        printed.stdout
    );
    write(dir.path(), "schema.json", printed.stdout.as_bytes());
    let mut bad = text.clone();
    bad.extend_from_slice(b"{\"id\":40,\"counts\":[1,2]}\n{\"id\":41,\"counts\":{\"7\":{\"n\":\"x\"}}}\n{\"id\":42,\"counts\":{\"7\":{},\"7\":{}}}\n{\"id\":43,\"counts\":{\"new key\":{\"n\":1}}}\n");
    write(dir.path(), "bad.ndjson", &bad);
    let out = run(
        dir.path(),
        &[
            "convert",
            "bad.ndjson",
            "--schema",
            "schema.json",
            "--on-error",
            "quarantine",
            "--errors",
            "errors.ndjson",
            "-o",
            "out.parquet",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_reconciles(&out.stderr, 36);
    let written =
        Schema::from_json(&footer(&dir.path().join("out.parquet"))[METADATA_SCHEMA]).unwrap();
    assert_eq!(written, schema);
    let reasons: Vec<(String, String)> = error_records(&dir.path().join("errors.ndjson"))
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "type_mismatch".to_string(),
                "field `counts`: expected map, found an array".to_string()
            ),
            (
                "type_mismatch".to_string(),
                "field `counts.7.n`: expected int64, found string \"x\"".to_string()
            ),
            (
                "duplicate_key".to_string(),
                "key `counts.7` appears twice in one object".to_string()
            ),
        ]
    );
}
