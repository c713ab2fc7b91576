//! The converter on real AWS APIs (the local emulator started by `scripts/test.sh`): a
//! manifest of S3 objects becomes SSE-KMS Parquet parts and an error object, read back by
//! pyarrow and DuckDB; retries leave every row once; failures are named and leave statuses
//! as documented; the real `converter-lambda` binary runs behind a Lambda Runtime API.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use converter::aws::{preflight, S3Objects};
use converter::manifest_run::{ConverterConfig, LedgerTracking, RunError, RunResult, Runner};
use serde_json::{json, Value};
use shared::aws::ledger::{create_table, DynamoLedger};
use shared::aws::S3Blobs;
use shared::blobs::BlobStore;
use shared::ledger::{
    item, settle, Ledger, Manifest, ManifestChanges as LedgerChanges, ManifestState, Marker, Shard,
    VersionRef, OPEN_PARTITIONS,
};
use shared::manifest::{
    manifest_key, ExecutionInput, ManifestDocument, ManifestFile, MANIFEST_FORMAT, MANIFEST_VERSION,
};
use shared::metrics::Metrics;
use shared::testing::{lambda_environment, sdk_config, unique, InvocationResult, RuntimeApi};
use shared::types::{DatePrefix, ManifestId, Timestamp};

struct World {
    s3: aws_sdk_s3::Client,
    kms: aws_sdk_kms::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    ledger: DynamoLedger,
    input: String,
    output: String,
    table: String,
    key_arn: String,
    prefix: DatePrefix,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// `count` records with ids from `first`, each about 150 bytes.
fn records(first: u64, count: u64) -> String {
    (first..first + count)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"at\":\"2026-11-25T10:{:02}:{:02}Z\",\"user\":{{\"name\":\"user {i} ü\",\"tags\":[\"t{}\"]}},\"amount\":{}.5}}\n",
                i / 60 % 60,
                i % 60,
                i % 7,
                i % 1000
            )
        })
        .collect()
}

impl World {
    async fn new() -> World {
        let config = sdk_config().await;
        let s3 = shared::aws::s3_client(&config, true);
        let kms = aws_sdk_kms::Client::new(&config);
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let (input, output, table) = (unique("in"), unique("out"), unique("tracking"));
        for bucket in [&input, &output] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        // As Terraform creates it: versioned, so every upload is a version of its own.
        let enabled = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .build();
        s3.put_bucket_versioning()
            .bucket(&input)
            .versioning_configuration(enabled)
            .send()
            .await
            .unwrap();
        create_table(&dynamodb, &table).await.unwrap();
        let key_arn = kms
            .create_key()
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .arn
            .unwrap();
        World {
            ledger: DynamoLedger::new(dynamodb.clone(), table.clone()),
            dynamodb,
            s3,
            kms,
            input,
            output,
            table,
            key_arn,
            prefix: DatePrefix::parse("2026-11-25").unwrap(),
        }
    }

    fn environment(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars: BTreeMap<String, String> = [
            ("TRACKING_TABLE", self.table.as_str()),
            ("OUTPUT_BUCKET", self.output.as_str()),
            ("OUTPUT_PREFIX", "parquet"),
            ("ERROR_PREFIX", "errors"),
            ("KMS_KEY_ARN", self.key_arn.as_str()),
            ("COMPRESSION_TYPE", "zstd"),
            ("S3_FORCE_PATH_STYLE", "true"),
            ("THREADS", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        vars.into_iter().collect()
    }

    fn config(
        &self,
        extra: &[(&str, &str)],
    ) -> Result<ConverterConfig, shared::config::ConfigError> {
        let env = self.environment(extra);
        ConverterConfig::from_env(&|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn runner(&self, extra: &[(&str, &str)]) -> Runner<LedgerTracking<DynamoLedger>, S3Objects> {
        let config = self.config(extra).expect("valid configuration");
        Runner {
            tracking: LedgerTracking {
                ledger: self.ledger.clone(),
            },
            objects: Arc::new(S3Objects::new(
                self.s3.clone(),
                tokio::runtime::Handle::current(),
                Some(config.kms_key_arn.clone()),
            )),
            config,
        }
    }

    /// Uploads `key`: the version a notification would announce.
    async fn put(&self, key: &str, body: Vec<u8>) -> ManifestFile {
        let output = self
            .s3
            .put_object()
            .bucket(&self.input)
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        ManifestFile {
            bucket: self.input.clone(),
            key: key.to_string(),
            size: body.len() as u64,
            etag: output
                .e_tag
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
            version_id: Some(output.version_id.expect("a versioned bucket")),
            sequencer: None,
        }
    }

    /// What the manifest-builder leaves for the converter: the versions tracked in a batch, a
    /// `running` manifest cut from it, and the manifest JSON.
    async fn manifest(&self, files: &[ManifestFile]) -> ExecutionInput {
        let now = Timestamp::now();
        let id = ManifestId::generate(&self.prefix, now);
        let total_bytes = files.iter().map(|f| f.size).sum();
        let document = ManifestDocument {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            manifest_id: id.clone(),
            date_prefix: self.prefix.clone(),
            created_at: now.to_rfc3339(),
            file_count: files.len() as u64,
            total_bytes,
            files: files.to_vec(),
        };
        let key = manifest_key("manifests", &self.prefix, &id);
        S3Blobs::new(self.s3.clone(), None)
            .put(&self.output, &key, document.to_json(), "application/json")
            .await
            .unwrap();
        let path = format!("s3://{}/{key}", self.output);
        let shard = Shard {
            date: self.prefix.clone(),
            number: 0,
        };
        settle::seed(&self.ledger, &id, &shard, files, &path, now)
            .await
            .unwrap();
        let changes = LedgerChanges {
            execution_arn: Some(format!("arn:aws:states:us-east-1:1:execution:sm:{id}")),
        };
        let started = self.ledger.advance(
            &id,
            &[ManifestState::Starting],
            ManifestState::Running,
            &changes,
            now,
        );
        assert!(started.await.unwrap());
        ExecutionInput {
            manifest_path: path,
            date_prefix: self.prefix.clone(),
            file_count: files.len() as u64,
            manifest_id: id,
            total_bytes,
        }
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let listing = self
            .s3
            .list_objects_v2()
            .bucket(&self.output)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = listing
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let object = self
            .s3
            .get_object()
            .bucket(&self.output)
            .key(key)
            .send()
            .await
            .unwrap();
        object.body.collect().await.unwrap().into_bytes().to_vec()
    }

    async fn assert_kms(&self, key: &str) {
        let head = self
            .s3
            .head_object()
            .bucket(&self.output)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption().map(|e| e.as_str()),
            Some("aws:kms"),
            "{key}"
        );
        assert_eq!(head.ssekms_key_id(), Some(self.key_arn.as_str()), "{key}");
    }

    /// Every row of every part, as pyarrow and DuckDB read them (checked to agree).
    async fn rows(&self, keys: &[String]) -> Vec<Value> {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let path = dir.path().join(format!("part-{i}.parquet"));
            std::fs::write(&path, self.get(key).await).unwrap();
            let read = common::read_independently(&path);
            common::assert_rows_eq(&read.duckdb, &read.pyarrow, "duckdb vs pyarrow");
            rows.extend(read.pyarrow);
        }
        rows
    }

    async fn manifest_record(&self, input: &ExecutionInput) -> Manifest {
        let id = &input.manifest_id;
        self.ledger.manifest(id).await.unwrap().unwrap()
    }

    async fn marker(&self, file: &ManifestFile) -> Marker {
        let markers = self.ledger.markers(&[VersionRef::of_file(file)]).await;
        markers.unwrap().remove(0).expect("tracked")
    }

    /// Puts the manifest back to `running`, as if the workflow retried a run whose success was
    /// never recorded.
    async fn rewind(&self, input: &ExecutionInput) {
        let (pk, sk) = item::manifest_key(&input.manifest_id);
        let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_string());
        self.dynamodb
            .update_item()
            .table_name(&self.table)
            .key(item::attr::PK, s(&pk))
            .key(item::attr::SK, s(&sk))
            .update_expression("SET #s = :s REMOVE #r")
            .expression_attribute_names("#s", item::attr::STATUS)
            .expression_attribute_names("#r", item::attr::RESULT)
            .expression_attribute_values(":s", s(ManifestState::Running.as_str()))
            .send()
            .await
            .unwrap();
    }
}

fn ids(rows: &[Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort();
    ids
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_becomes_encrypted_parquet_parts_and_an_error_object() {
    let w = World::new().await;
    let mut bad = records(3000, 100);
    bad.push_str("{\"id\": 3100, \"broken\n");
    bad.push_str("[\"not\", \"an object\"]\n");
    bad.push('\n');
    bad.push_str(&records(3101, 99));
    let objects = vec![
        w.put(
            "2026-11-25/plain one.ndjson",
            records(0, 40_000).into_bytes(),
        )
        .await,
        w.put(
            "2026-11-25/zipped.ndjson.gz",
            gzip(records(40_000, 40_000).as_bytes()),
        )
        .await,
        w.put(
            "2026-11-25/frames.ndjson.zst",
            zstd::encode_all(records(80_000, 40_000).as_bytes(), 3).unwrap(),
        )
        .await,
        w.put("2026-11-25/bad lines.ndjson", bad.into_bytes()).await,
    ];
    let input = w.manifest(&objects).await;
    let runner = w.runner(&[("TARGET_FILE_BYTES", "262144")]);
    let mut metrics = Metrics::new("test");
    let result = runner
        .run_execution(&input, None, &mut metrics)
        .await
        .unwrap();

    assert_eq!(result.status, "completed");
    assert_eq!(result.result.rows_written, 120_199);
    assert_eq!(result.result.rows_rejected, 2);
    assert_eq!(result.result.blank_lines, 1);
    assert_eq!(
        result.result.lines_read,
        result.result.rows_written + result.result.rows_rejected + result.result.blank_lines
    );
    assert!(
        result.result.output_keys.len() > 1,
        "rolled into parts: {:?}",
        result.result.output_keys
    );
    let listed = w.keys("parquet/dt=2026-11-25/").await;
    assert_eq!(listed, result.result.output_keys);
    for key in &listed {
        assert!(key.starts_with(&format!(
            "parquet/dt=2026-11-25/{}-",
            input.manifest_id.as_str()
        )));
        w.assert_kms(key).await;
    }
    let rows = w.rows(&result.result.output_keys).await;
    let mut expected: Vec<u64> = (0..120_000).chain(3000..3100).chain(3101..3200).collect();
    expected.sort();
    assert_eq!(ids(&rows), expected, "every valid row exactly once");
    assert_eq!(
        rows.iter().find(|r| r["id"] == 5).unwrap()["user"]["name"],
        "user 5 ü"
    );

    let error_key = result.result.error_key.clone().expect("an error object");
    w.assert_kms(&error_key).await;
    let errors: Vec<Value> = gunzip(&w.get(&error_key).await)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0]["source"],
        format!("s3://{}/2026-11-25/bad lines.ndjson", w.input)
    );
    assert_eq!(errors[0]["line"], 101);
    assert_eq!(errors[0]["kind"], "invalid_json");
    assert_eq!(errors[1]["kind"], "not_an_object");

    let record = w.manifest_record(&input).await;
    assert_eq!(record.state, ManifestState::Completed);
    let stored = record.result.unwrap();
    assert_eq!((stored.rows_written, stored.rows_rejected), (120_199, 2));
    assert!(
        stored.schema.is_none(),
        "the schema is in each part's footer, not billed on every write of the manifest item"
    );
    for object in &objects {
        let marker = w.marker(object).await;
        assert_eq!(
            (marker.attempts, marker.superseded),
            (0, None),
            "completed by the manifest"
        );
    }
    assert_eq!(metrics.get("RowsWritten"), 120_199.0);

    // Running it again is a no-op: the manifest is completed.
    let again = runner
        .run_execution(&input, None, &mut Metrics::new("test"))
        .await
        .unwrap();
    assert_eq!(
        (again.status.as_str(), again.result.rows_written),
        ("already_completed", 120_199)
    );
    assert_eq!(w.keys("parquet/").await, listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_overwrite_and_remove_what_earlier_attempts_left() {
    let w = World::new().await;
    let objects = vec![
        w.put("2026-11-25/a.ndjson", records(0, 30_000).into_bytes())
            .await,
        w.put(
            "2026-11-25/b.ndjson",
            format!("{}not json\n", records(30_000, 30_000)).into_bytes(),
        )
        .await,
    ];
    let input = w.manifest(&objects).await;
    let id = input.manifest_id.as_str().to_string();

    // Leftovers of an attempt that died after writing some parts: a part number this run will
    // not produce, and an error object.
    let stale_part = format!("parquet/dt=2026-11-25/{id}-00042.parquet");
    let stale_errors = format!("errors/dt=2026-11-25/{id}.errors.ndjson.gz");
    for key in [&stale_part, &stale_errors] {
        w.s3.put_object()
            .bucket(&w.output)
            .key(key)
            .body(ByteStream::from_static(b"junk"))
            .send()
            .await
            .unwrap();
    }
    // An attempt that runs out of time mid-conversion: nothing of it becomes visible.
    let hurried = w.runner(&[
        ("TARGET_FILE_BYTES", "262144"),
        ("LAMBDA_MIN_MBPS", "100000"),
    ]);
    let error = hurried
        .run_execution(
            &input,
            Some(Instant::now() + Duration::from_secs(20)),
            &mut Metrics::new("t"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.name(), "ConverterTimeout");
    assert!(error.retryable());
    assert_eq!(w.keys("parquet/").await, vec![stale_part.clone()]);
    let uploads =
        w.s3.list_multipart_uploads()
            .bucket(&w.output)
            .send()
            .await
            .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "aborted uploads: {:?}",
        uploads.uploads()
    );
    assert_eq!(
        w.manifest_record(&input).await.state,
        ManifestState::Running,
        "a retryable error changes no state"
    );

    let first = w
        .runner(&[("TARGET_FILE_BYTES", "65536")])
        .run_execution(&input, None, &mut Metrics::new("t"))
        .await
        .unwrap();
    assert!(first.result.output_keys.len() >= 2);
    assert_eq!(
        w.keys("parquet/").await,
        first.result.output_keys,
        "the stale part is gone"
    );
    assert!(first.result.error_key.is_some());

    // The workflow retries although the first run finished: fewer, larger parts this time.
    w.rewind(&input).await;
    let second: RunResult = w
        .runner(&[("TARGET_FILE_BYTES", "67108864")])
        .run_execution(&input, None, &mut Metrics::new("t"))
        .await
        .unwrap();
    assert_eq!(second.result.output_keys.len(), 1);
    assert_eq!(
        w.keys("parquet/").await,
        second.result.output_keys,
        "parts of the first run are gone"
    );
    let rows = w.rows(&second.result.output_keys).await;
    assert_eq!(
        ids(&rows),
        (0..60_000).collect::<Vec<_>>(),
        "each row once after any number of runs"
    );
    assert_eq!(second.result.rows_rejected, 1);
    assert_eq!(w.keys("errors/").await, vec![stale_errors]);
}

/// A corrupt object fails the manifest, and only its version counts an attempt; a version
/// deleted before conversion is superseded instead (not the object's fault, not retried) and the
/// others convert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_fails_the_manifest_and_a_deleted_one_is_superseded() {
    let w = World::new().await;
    let good = w
        .put("2026-11-25/good.ndjson", records(0, 100).into_bytes())
        .await;
    let full = gzip(records(0, 5000).as_bytes());
    let bad = w
        .put("2026-11-25/cut.ndjson.gz", full[..full.len() / 2].to_vec())
        .await;
    let input = w.manifest(&[good.clone(), bad.clone()]).await;
    let error = w
        .runner(&[])
        .run_execution(&input, None, &mut Metrics::new("t"))
        .await
        .unwrap_err();
    assert_eq!(error.name(), "ManifestFailed", "{error}");
    assert!(!error.retryable());
    let RunError::FileFailed { file, .. } = &error else {
        panic!("{error}")
    };
    assert_eq!(file, &format!("s3://{}/{}", w.input, bad.key));
    let record = w.manifest_record(&input).await;
    assert_eq!(record.state, ManifestState::Failed);
    assert!(record.error.unwrap().contains(&bad.key));
    assert_eq!(w.marker(&good).await.attempts, 0);
    assert_eq!(w.marker(&bad).await.attempts, 1);
    assert!(
        w.keys("parquet/").await.is_empty(),
        "nothing half-written is visible"
    );
    let uploads =
        w.s3.list_multipart_uploads()
            .bucket(&w.output)
            .send()
            .await
            .unwrap();
    assert!(uploads.uploads().is_empty());

    // Deleted (the key, not only the version: reads of the version then say NoSuchKey or
    // NoSuchVersion, depending on the store) before conversion.
    let kept = w
        .put("2026-11-25/kept.ndjson", records(0, 10).into_bytes())
        .await;
    let gone = w
        .put("2026-11-25/gone.ndjson", records(100, 10).into_bytes())
        .await;
    w.s3.delete_object()
        .bucket(&w.input)
        .key(&gone.key)
        .version_id(gone.version_id.clone().unwrap())
        .send()
        .await
        .unwrap();
    let input = w.manifest(&[kept.clone(), gone.clone()]).await;
    let run = w
        .runner(&[])
        .run_execution(&input, None, &mut Metrics::new("t"))
        .await
        .unwrap();
    assert_eq!((run.result.rows_written, run.result.rows_rejected), (10, 1));
    let marker = w.marker(&gone).await;
    assert_eq!(marker.attempts, 0);
    assert!(marker.superseded.unwrap().contains(&gone.key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_manifest_is_named_and_changes_nothing() {
    let w = World::new().await;
    let object = w
        .put("2026-11-25/x.ndjson", records(0, 10).into_bytes())
        .await;
    let mut input = w.manifest(std::slice::from_ref(&object)).await;
    let (bucket, key) = shared::manifest::parse_s3_url(&input.manifest_path).unwrap();
    w.s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"{\"not\": \"a manifest\"}"))
        .send()
        .await
        .unwrap();
    let error = w
        .runner(&[])
        .run_execution(&input, None, &mut Metrics::new("t"))
        .await
        .unwrap_err();
    assert_eq!(error.name(), "ManifestUnreadable", "{error}");
    assert_eq!(
        w.manifest_record(&input).await.state,
        ManifestState::Running
    );
    assert_eq!(w.marker(&object).await.attempts, 0);
    input.manifest_path = format!("s3://{}/manifests/none.json", w.output);
    let error = w
        .runner(&[])
        .run_execution(&input, None, &mut Metrics::new("t"))
        .await
        .unwrap_err();
    assert_eq!(error.name(), "ManifestUnreadable");
    assert!(error.to_string().contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_kms_key_or_lzo_is_refused_before_any_work() {
    let w = World::new().await;
    let lzo = w
        .config(&[("COMPRESSION_TYPE", "lzo")])
        .unwrap_err()
        .to_string();
    assert!(
        lzo.contains("COMPRESSION_TYPE") && lzo.contains("`lzo` is not supported"),
        "{lzo}"
    );
    let malformed = w
        .config(&[("KMS_KEY_ARN", "not a key")])
        .unwrap_err()
        .to_string();
    assert!(malformed.contains("KMS_KEY_ARN"), "{malformed}");
    let config = w
        .config(&[(
            "KMS_KEY_ARN",
            "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
        )])
        .unwrap();
    let problem = preflight(&w.kms, &w.s3, &config).await.unwrap_err();
    assert!(
        problem.contains("KMS_KEY_ARN") && problem.contains("NotFoundException"),
        "{problem}"
    );
    let missing_bucket = w
        .config(&[("OUTPUT_BUCKET", &unique("no-such-bucket"))])
        .unwrap();
    let problem = preflight(&w.kms, &w.s3, &missing_bucket).await.unwrap_err();
    assert!(
        problem.contains("OUTPUT_BUCKET") && problem.contains("NoSuchBucket"),
        "{problem}"
    );
    preflight(&w.kms, &w.s3, &w.config(&[]).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_converts_a_manifest_behind_the_runtime_api() {
    let w = World::new().await;
    let object = w
        .put(
            "2026-11-25/lambda.ndjson.gz",
            gzip(records(0, 500).as_bytes()),
        )
        .await;
    let input = w.manifest(&[object]).await;
    let api = RuntimeApi::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_converter-lambda"))
        .env_clear()
        .envs(lambda_environment(&api, "converter"))
        .envs(w.environment(&[("LOG_LEVEL", "INFO")]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ok = api.invoke(&serde_json::to_value(&input).unwrap());
    let bad = api.invoke(&json!({"manifest_path": "s3://nowhere/x.json", "date_prefix": "2026-11-25", "file_count": 1, "file_key": "MANIFEST#m", "total_bytes": 1}));
    let answers = (
        api.wait(&ok, Duration::from_secs(120)),
        api.wait(&bad, Duration::from_secs(60)),
    );
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stdout);
    let InvocationResult::Response(body) = answers.0.unwrap() else {
        panic!("failed; logs:\n{logs}")
    };
    let result: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(result["status"], "completed");
    assert_eq!(result["rows_written"], 500);
    assert_eq!(result["output_keys"].as_array().unwrap().len(), 1);
    let InvocationResult::Error(error) = answers.1.unwrap() else {
        panic!("expected an error")
    };
    let error: Value = serde_json::from_str(&error).unwrap();
    assert_eq!(error["errorType"], "ManifestUnreadable", "{error}");
    assert!(
        logs.lines().any(|l| l.contains("\"RowsWritten\":500")),
        "an EMF line:\n{logs}"
    );
    assert!(!logs.contains("user 1 ü"), "no record content in the logs");
}

/// The Batch entry point (`ndjson-parquet run-manifest`): a file that cannot be converted fails
/// the manifest with exit status 1 (not 75, which Batch retries), and the EMF line on stderr
/// counts `ManifestsFailed` for the `converter-batch` function, as the Lambda's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_entry_point_fails_a_corrupt_file_for_good_and_counts_it() {
    let w = World::new().await;
    let full = gzip(records(0, 5000).as_bytes());
    let corrupt = w
        .put(
            "2026-11-25/batch-cut.ndjson.gz",
            full[..full.len() / 2].to_vec(),
        )
        .await;
    let input = w.manifest(&[corrupt]).await;
    let output = Command::new(env!("CARGO_BIN_EXE_ndjson-parquet"))
        .args(["run-manifest", &input.manifest_path])
        .envs(w.environment(&[("LOG_LEVEL", "INFO")]))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let emf = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("_aws").is_some())
        .unwrap_or_else(|| panic!("no EMF line:\n{stderr}"));
    assert_eq!(emf["Function"], "converter-batch", "{emf}");
    assert_eq!(emf["ManifestsFailed"], 1.0, "{emf}");
    assert_eq!(w.manifest_record(&input).await.state, ManifestState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_multipart_encrypted_and_aborted_unless_committed() {
    use converter::aws::s3::{Encryption, S3Upload};
    use converter::objects::MIN_PART_SIZE;
    let w = World::new().await;
    let data: Vec<u8> = (0..(2 * MIN_PART_SIZE + 12_345) as u64)
        .map(|i| ((i * 2_654_435_761) >> 13) as u8)
        .collect();
    let (s3, bucket, key_arn) = (w.s3.clone(), w.output.clone(), w.key_arn.clone());
    let handle = tokio::runtime::Handle::current();
    let expected = data.clone();
    tokio::task::spawn_blocking(move || {
        let encryption = Encryption {
            kms_key_id: Some(key_arn),
        };
        let mut upload = S3Upload::new(
            s3.clone(),
            handle.clone(),
            &bucket,
            "big.bin",
            "application/octet-stream",
            encryption.clone(),
            MIN_PART_SIZE,
        );
        upload.write_all(&data).unwrap();
        assert_eq!(upload.commit().unwrap(), data.len() as u64);
        // An upload that shipped a part and is then dropped leaves nothing behind.
        let mut abandoned = S3Upload::new(
            s3,
            handle,
            &bucket,
            "abandoned.bin",
            "application/octet-stream",
            encryption,
            MIN_PART_SIZE,
        );
        abandoned.write_all(&data[..MIN_PART_SIZE + 1]).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(w.get("big.bin").await, expected);
    w.assert_kms("big.bin").await;
    assert!(w
        .s3
        .head_object()
        .bucket(&w.output)
        .key("abandoned.bin")
        .send()
        .await
        .is_err());
    let mut uploads = Vec::new();
    for _ in 0..50 {
        uploads =
            w.s3.list_multipart_uploads()
                .bucket(&w.output)
                .send()
                .await
                .unwrap()
                .uploads()
                .to_vec();
        if uploads.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        uploads.is_empty(),
        "the abandoned multipart upload was aborted: {uploads:?}"
    );
}

/// Over the ledger, the runner reads exactly the versions the manifest names in a versioned
/// bucket: an overwrite after arrival changes nothing; the manifest completes by its state alone
/// and its open entry is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_tracked_versions_are_read() {
    let w = World::new().await;
    let kept = w
        .put("2026-11-25/kept.ndjson", records(0, 100).into_bytes())
        .await;
    // Overwritten after it arrived: the manifest still names the first version.
    w.put("2026-11-25/kept.ndjson", records(1000, 7).into_bytes())
        .await;
    let input = w.manifest(std::slice::from_ref(&kept)).await;
    let run = w
        .runner(&[])
        .run_execution(&input, None, &mut Metrics::new("t"))
        .await
        .unwrap();
    assert_eq!(run.status, "completed");
    assert_eq!(
        (run.result.rows_written, run.result.rows_rejected),
        (100, 0)
    );
    let rows = w.rows(&run.result.output_keys).await;
    assert_eq!(
        ids(&rows),
        (0..100).collect::<Vec<_>>(),
        "the first version"
    );
    let manifest = w.manifest_record(&input).await;
    assert_eq!(manifest.state, ManifestState::Completed);
    assert_eq!(manifest.result.unwrap(), run.result);
    for partition in 0..OPEN_PARTITIONS {
        let open = w.ledger.open_manifests(partition, None, 10).await.unwrap();
        assert!(open.items.is_empty(), "closed after completion");
    }
}

/// What the fetcher reads for a tracked file: exactly its version, pinned by id and ETag.
fn read_target(file: &ManifestFile) -> converter::aws::fetch::Target {
    converter::aws::fetch::Target {
        bucket: file.bucket.clone(),
        key: file.key.clone(),
        version_id: file.version_id.clone(),
        etag: Some(file.etag.clone()),
        size: Some(file.size),
        name: format!("s3://{}/{}", file.bucket, file.key),
    }
}

/// A TCP relay in front of the emulator that closes a connection once it has carried `limit`
/// response bytes, `times` times in all: dropped connections in the middle of bodies, as on a
/// real network, few enough that every read must still succeed ([`PART_RETRIES`] per part).
///
/// [`PART_RETRIES`]: converter::aws::fetch::PART_RETRIES
async fn dropping_relay(
    upstream: String,
    limit: usize,
    times: usize,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let drops = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&drops);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let drops = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let requests = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut carried = 0;
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let dropping = drops.load(Ordering::SeqCst) < times;
                    let n = if dropping {
                        n.min(limit.saturating_sub(carried))
                    } else {
                        n
                    };
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    carried += n;
                    if dropping && carried >= limit && drops.fetch_add(1, Ordering::SeqCst) < times
                    {
                        break;
                    }
                }
                requests.abort();
            });
        }
    });
    (address, drops)
}

/// The read-ahead on the emulator, through connections that drop in the middle of bodies:
/// every byte of the pinned version arrives, in order, whatever is dropped, and a later
/// overwrite of the object changes nothing that is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_survives_dropped_connections_and_reads_the_pinned_version() {
    use converter::aws::fetch::{ReadAhead, Target};
    use converter::aws::s3::S3Ranges;
    let w = World::new().await;
    let big = records(0, 40_000).into_bytes();
    let small: Vec<Vec<u8>> = (0..20).map(|i| records(i * 10, 10).into_bytes()).collect();
    let mut files = vec![w.put("2026-11-25/big.ndjson", big.clone()).await];
    for (i, body) in small.iter().enumerate() {
        files.push(
            w.put(&format!("2026-11-25/small-{i}.ndjson"), body.clone())
                .await,
        );
    }
    // Overwritten after it was tracked: the version read is still the tracked one.
    w.put("2026-11-25/big.ndjson", records(7, 3).into_bytes())
        .await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the emulator's endpoint");
    let (relay, drops) = dropping_relay(
        endpoint.trim_start_matches("http://").to_string(),
        200 * 1024,
        3,
    )
    .await;
    let config = sdk_config().await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .endpoint_url(relay)
            .force_path_style(true)
            .build(),
    );
    let targets: Vec<Target> = files.iter().map(read_target).collect();
    let settings = ReadAhead {
        budget_bytes: 2 << 20,
        part_bytes: 256 << 10,
        head_bytes: 64 << 10,
        max_requests: 8,
    };
    let handle = tokio::runtime::Handle::current();
    let read = tokio::task::spawn_blocking(move || {
        S3Ranges::sources(client, handle, settings, targets)
            .iter()
            .map(|source| {
                let mut bytes = Vec::new();
                source.open().unwrap().read_to_end(&mut bytes).unwrap();
                bytes
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(
        big.len() > 4 * (256 << 10),
        "the big object spans many parts"
    );
    assert!(
        read[0] == big,
        "the tracked version of the big object, byte for byte"
    );
    assert_eq!(read[1..], small[..]);
    assert!(
        drops.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "a connection was dropped mid-body"
    );
}

/// The Parquet a conversion writes does not depend on how its S3 inputs are read: any read-ahead
/// budget, part size, head size and number of requests in flight (and any thread count) gives
/// the bytes that the same inputs give from memory under the same names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_byte_identical_for_any_read_ahead() {
    use common::InMemory;
    use converter::aws::fetch::ReadAhead;
    use converter::aws::s3::S3Ranges;
    use converter::convert::{convert, ConvertOptions, NoProgress};
    use converter::input::{MemorySource, Source};

    let w = World::new().await;
    // One object of many parts at every setting below, a gzipped one, small ones, an empty one,
    // and a bad line, so that chunk boundaries, decompression and rejects are all exercised.
    let mut bodies = vec![
        ("big.ndjson", records(0, 30_000).into_bytes()),
        ("packed.ndjson.gz", gzip(records(50_000, 5_000).as_bytes())),
        ("empty.ndjson", Vec::new()),
    ];
    for i in 0..12u64 {
        let mut body = records(100_000 + i * 40, 40);
        if i == 5 {
            body.push_str("{\"id\": oops}\n");
        }
        bodies.push((
            [
                "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "sa", "sb",
            ][i as usize],
            body.into_bytes(),
        ));
    }
    let mut targets = Vec::new();
    for (name, body) in &bodies {
        let file = w.put(&format!("2026-11-25/{name}"), body.clone()).await;
        targets.push(read_target(&file));
    }
    let client = w.s3.clone();
    let options = |threads: usize| ConvertOptions {
        threads,
        chunk_bytes: 64 << 10,
        on_error: converter::convert::OnError::Skip,
        ..ConvertOptions::default()
    };
    let handle = tokio::runtime::Handle::current();
    let (memory, settings) = (
        targets
            .iter()
            .zip(&bodies)
            .map(|(t, (_, body))| {
                Arc::new(MemorySource::new(t.name.clone(), body.clone())) as Arc<dyn Source>
            })
            .collect::<Vec<_>>(),
        [
            // (budget, part, head, requests in flight, threads)
            (256u64 << 10, 64u64 << 10, 16u64 << 10, 1usize, 1usize),
            (1 << 20, 128 << 10, 4 << 10, 3, 2),
            (2 << 20, 256 << 10, 64 << 10, 8, 3),
            (64 << 20, 8 << 20, 256 << 10, 64, 2),
        ],
    );
    let outputs = tokio::task::spawn_blocking(move || {
        let expected = convert(&memory, &options(2), &mut InMemory, &NoProgress).unwrap();
        let mut outputs = vec![("memory".to_string(), expected.parts, expected.rejects)];
        for (budget_bytes, part_bytes, head_bytes, max_requests, threads) in settings {
            let read = ReadAhead {
                budget_bytes,
                part_bytes,
                head_bytes,
                max_requests,
            };
            let sources = S3Ranges::sources(client.clone(), handle.clone(), read, targets.clone());
            let done = convert(&sources, &options(threads), &mut InMemory, &NoProgress).unwrap();
            outputs.push((
                format!("{read:?}, {threads} threads"),
                done.parts,
                done.rejects,
            ));
        }
        outputs
    })
    .await
    .unwrap();
    let (_, parts, rejects) = &outputs[0];
    assert_eq!(parts.len(), 1);
    assert!(
        String::from_utf8_lossy(rejects.as_ref().unwrap()).contains("oops"),
        "the bad line is in the error output"
    );
    for (how, other_parts, other_rejects) in &outputs[1..] {
        assert!(other_parts == parts, "Parquet differs when read with {how}");
        assert!(
            other_rejects == rejects,
            "error output differs when read with {how}"
        );
    }
}
