//! The manifest-builder against real AWS APIs on the local emulator (moto's server, started
//! by `scripts/test.sh`): the DynamoDB ledger's contract, the handler fed with the S3
//! notifications S3 really sends to SQS, and the real binary behind a Lambda Runtime API.
//! Every test uses its own table, buckets, queue and state machine.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use manifest_builder::batching::{self, Batching};
use manifest_builder::config::BuilderConfig;
use manifest_builder::handler::{Builder, Context};
use serde_json::{json, Value};
use shared::aws::ledger::{from_attributes, to_attributes};
use shared::aws::DynamoLedger;
use shared::aws::S3Blobs;
use shared::aws::StepFunctions;
use shared::ledger::item::{Item, Key};
use shared::ledger::{
    Batch, BatchContents, BatchKey, Cut, Ledger, Manifest, ManifestChanges, ManifestState, Marker,
    MarkerOutcome, MemoryLedger, OpenManifest, Poison, Ref, Shard, StoreError, Version, VersionRef,
};
use shared::manifest::{parse_s3_url, ManifestDocument};
use shared::testing::{lambda_environment, sdk_config, unique, InvocationResult, RuntimeApi};
use shared::types::{ConversionResult, DatePrefix, ManifestId, Timestamp};

/// The builder's settle time and longest wait in these tests.
const SETTLE: i64 = 70;
const MAX_WAIT: i64 = 300;

/// An invocation's context at `now`, with all the time it needs.
fn at(request_id: &str, now: Timestamp) -> Context<'_> {
    Context::unhurried(request_id, now)
}

struct Resources {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    sfn: aws_sdk_sfn::Client,
    input_bucket: String,
    manifest_bucket: String,
    queue_url: String,
    table: String,
    state_machine_arn: String,
}

impl Resources {
    async fn create() -> Self {
        let config = sdk_config().await;
        let s3 = shared::aws::s3_client(&config, true);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let sfn = aws_sdk_sfn::Client::new(&config);
        let input_bucket = unique("input");
        let manifest_bucket = unique("manifests");
        let table = unique("tracking");
        for bucket in [&input_bucket, &manifest_bucket] {
            s3.create_bucket()
                .bucket(bucket)
                .send()
                .await
                .expect("bucket");
        }
        let queue_url = sqs
            .create_queue()
            .queue_name(unique("arrivals"))
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("queue url");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue arn");
        let notification = aws_sdk_s3::types::NotificationConfiguration::builder()
            .queue_configurations(
                aws_sdk_s3::types::QueueConfiguration::builder()
                    .queue_arn(queue_arn)
                    .events(aws_sdk_s3::types::Event::from("s3:ObjectCreated:*"))
                    .build()
                    .expect("queue configuration"),
            )
            .build();
        s3.put_bucket_notification_configuration()
            .bucket(&input_bucket)
            .notification_configuration(notification)
            .send()
            .await
            .expect("notifications");
        shared::aws::ledger::create_table(&dynamodb, &table)
            .await
            .expect("table");
        let definition =
            json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}});
        let state_machine_arn = sfn
            .create_state_machine()
            .name(unique("convert"))
            .definition(definition.to_string())
            .role_arn("arn:aws:iam::123456789012:role/state-machine")
            .send()
            .await
            .expect("state machine")
            .state_machine_arn;
        Resources {
            s3,
            sqs,
            dynamodb,
            sfn,
            input_bucket,
            manifest_bucket,
            queue_url,
            table,
            state_machine_arn,
        }
    }

    fn environment(&self, max_files: usize) -> Vec<(String, String)> {
        [
            ("TRACKING_TABLE", self.table.clone()),
            ("MANIFEST_BUCKET", self.manifest_bucket.clone()),
            ("MANIFEST_PREFIX", "manifests".to_string()),
            ("STEP_FUNCTION_ARN", self.state_machine_arn.clone()),
            ("SETTLE_SECONDS", SETTLE.to_string()),
            ("MAX_FILES_PER_MANIFEST", max_files.to_string()),
            ("MAX_BYTES_PER_MANIFEST", "1048576".to_string()),
            ("MAX_WAIT_SECONDS", MAX_WAIT.to_string()),
            ("RELEASE_AFTER_SECONDS", "960".to_string()),
            ("OUTPUT_BUCKET", "output".to_string()),
            ("S3_FORCE_PATH_STYLE", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn config(&self, max_files: usize) -> BuilderConfig {
        let env = self.environment(max_files);
        BuilderConfig::from_env(&|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("config")
    }

    fn ledger(&self) -> DynamoLedger {
        DynamoLedger::new(self.dynamodb.clone(), self.table.clone())
    }

    async fn builder(&self, max_files: usize) -> Builder<DynamoLedger, S3Blobs, StepFunctions> {
        let sdk = sdk_config().await;
        let config = self.config(max_files);
        Builder {
            batching: Batching::new(
                self.ledger(),
                S3Blobs::new(self.s3.clone(), None),
                StepFunctions::new(
                    aws_sdk_sfn::Client::new(&sdk),
                    self.state_machine_arn.clone(),
                ),
                config.batching,
            ),
            records: config.records,
        }
    }

    /// The marker of `key` in the input bucket, whichever version it is.
    async fn marker(&self, key: &str) -> Option<Marker> {
        let page = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!(
                    "V#{}/{key}",
                    self.input_bucket
                )),
            )
            .send()
            .await
            .expect("query markers");
        let items = page.items();
        assert!(items.len() <= 1, "{key}: one version: {items:?}");
        let attributes = items.first()?;
        let sk = attributes["sk"].as_s().expect("sk");
        let version = VersionRef {
            bucket: self.input_bucket.clone(),
            key: key.to_string(),
            version: Version::decode(sk).expect("a version"),
        };
        let mut markers = self.ledger().markers(&[version]).await.expect("markers");
        markers.pop().expect("one answer")
    }

    async fn put(&self, key: &str, body: &str) {
        self.s3
            .put_object()
            .bucket(&self.input_bucket)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .expect("put object");
    }

    /// Receives (and deletes) messages until `count` arrived, as one SQS Lambda event.
    async fn receive(&self, count: usize) -> Value {
        let mut records = Vec::new();
        for _ in 0..40 {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            for message in output.messages() {
                records.push(json!({
                    "messageId": message.message_id().unwrap_or_default(),
                    "receiptHandle": message.receipt_handle().unwrap_or_default(),
                    "body": message.body().unwrap_or_default(),
                    "eventSource": "aws:sqs",
                    "awsRegion": "us-east-1"
                }));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
            if records.len() >= count {
                break;
            }
        }
        assert_eq!(records.len(), count, "notifications arrived");
        json!({ "Records": records })
    }

    async fn executions(&self) -> Vec<(String, Value)> {
        let list = self
            .sfn
            .list_executions()
            .state_machine_arn(&self.state_machine_arn)
            .send()
            .await
            .expect("list executions");
        let mut out = Vec::new();
        for execution in list.executions() {
            let described = self
                .sfn
                .describe_execution()
                .execution_arn(execution.execution_arn())
                .send()
                .await
                .expect("describe");
            let input: Value =
                serde_json::from_str(described.input().unwrap_or("{}")).expect("json input");
            out.push((execution.name().to_string(), input));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    async fn manifest(&self, path: &str) -> ManifestDocument {
        let (bucket, key) = parse_s3_url(path).expect("s3 path");
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("manifest object");
        let bytes = object.body.collect().await.expect("body").into_bytes();
        ManifestDocument::from_json(&bytes).expect("valid manifest")
    }
}

/// A ledger on a fresh table of its own, with the client that made it.
async fn dynamo_ledger() -> (aws_sdk_dynamodb::Client, DynamoLedger) {
    let config = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("ledger");
    shared::aws::ledger::create_table(&client, &table)
        .await
        .expect("table");
    (client.clone(), DynamoLedger::new(client, table))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_ledger_meets_the_contract() {
    let (client, ledger) = dynamo_ledger().await;
    let table = ledger.table().to_string();
    // The contract plants items synchronously; the put runs on this multi-thread runtime,
    // with the worker handed over to blocking meanwhile.
    let plant = |item: Item| {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                client
                    .put_item()
                    .table_name(&table)
                    .set_item(Some(to_attributes(&item)))
                    .send()
                    .await
                    .expect("plant a raw item");
            });
        });
    };
    shared::ledger::contract::run_all(&ledger, 1, plant).await;
}

/// Every kind of write the ledger makes, with fixed keys and times, so that two ledgers given
/// it end with the same items.
async fn every_kind_of_write<L: Ledger>(ledger: &L) {
    let (shard, batch, versions) = track(ledger).await;
    manifests_through_every_state(ledger, &shard, &batch, &versions).await;
}

/// A batch of three versions, their markers, and the shard's registry entry.
async fn track<L: Ledger>(ledger: &L) -> (Shard, Batch, Vec<VersionRef>) {
    let shard = Shard {
        date: DatePrefix::parse("2026-11-30").expect("date"),
        number: 3,
    };
    let batch = Batch {
        shard: shard.clone(),
        key: BatchKey::with_random(Timestamp(1_000), 7),
        contents: BatchContents::Arrivals {
            bucket: "in".into(),
            refs: ["a", "b", "c"]
                .iter()
                .map(|key| Ref {
                    key: format!("logs/{key}.ndjson"),
                    version: Version::Sequencer("00AB".into()),
                })
                .collect(),
            bytes: 3_000,
        },
        ttl: 4_000_000_000,
    };
    assert!(ledger.put_batch(&batch).await.expect("put_batch"));
    assert!(!ledger.put_batch(&batch).await.expect("put_batch"));
    let versions: Vec<VersionRef> = ["a", "b", "c"]
        .iter()
        .map(|key| VersionRef {
            bucket: "in".into(),
            key: format!("logs/{key}.ndjson"),
            version: Version::Sequencer("00AB".into()),
        })
        .collect();
    for version in &versions {
        let marker = Marker {
            version: version.clone(),
            batch: batch.key.clone(),
            date: shard.date.clone(),
            size: 1_234,
            etag: "e".into(),
            attempts: 0,
            last_error: None,
            superseded: None,
            ttl: 4_000_000_000,
        };
        assert_eq!(
            ledger.put_marker(&marker).await.expect("put_marker"),
            MarkerOutcome::Tracked
        );
    }
    ledger
        .register_shard(&shard, 4_000_000_000)
        .await
        .expect("register");
    (shard, batch, versions)
}

/// One manifest cut, started and completed; one cut, failed and released; then a supersede
/// and a skip.
async fn manifests_through_every_state<L: Ledger>(
    ledger: &L,
    shard: &Shard,
    batch: &Batch,
    versions: &[VersionRef],
) {
    let manifest = |name: &str, after: Option<&BatchKey>, last: &BatchKey| Manifest {
        id: ManifestId::parse(name).expect("id"),
        shard: shard.clone(),
        state: ManifestState::Starting,
        after: after.cloned(),
        last: last.clone(),
        manifest_path: format!("s3://manifests/{name}.json"),
        file_count: 3,
        total_bytes: 3_702,
        execution_arn: None,
        result: None,
        error: None,
        created_at: Timestamp(2_000),
        updated_at: Timestamp(2_000),
        ttl: 4_000_000_000,
    };
    let first = manifest("m-1", None, &batch.key);
    let open = |m: &Manifest| OpenManifest {
        id: m.id.clone(),
        created_at: m.created_at,
    };
    ledger.open(&open(&first)).await.expect("open");
    assert!(ledger
        .cut(&Cut {
            manifest: first.clone()
        })
        .await
        .expect("cut"));
    let running = [ManifestState::Starting, ManifestState::Running];
    let changes = ManifestChanges {
        execution_arn: Some("arn:aws:states:us-east-1:1:execution:c:m-1".into()),
    };
    let now = Timestamp(3_000);
    assert!(ledger
        .advance(
            &first.id,
            &running[..1],
            ManifestState::Running,
            &changes,
            now
        )
        .await
        .expect("advance"));
    let result = ConversionResult {
        rows_written: 3,
        output_keys: vec!["out/part-0.parquet".into()],
        schema: Some("{}".into()),
        ..ConversionResult::default()
    };
    assert!(ledger
        .complete(&first.id, &running, &result, now)
        .await
        .expect("complete"));
    ledger.close(&open(&first)).await.expect("close");

    let retry_at = BatchKey::with_random(Timestamp(4_000), 9);
    let second = manifest("m-2", Some(&batch.key), &retry_at);
    ledger.open(&open(&second)).await.expect("open");
    assert!(ledger
        .cut(&Cut {
            manifest: second.clone()
        })
        .await
        .expect("cut"));
    let poison = |version: &VersionRef, reason: &str| Poison {
        version: version.clone(),
        reason: reason.into(),
    };
    let twice = [
        poison(&versions[0], "first reason"),
        poison(&versions[1], "bad gzip"),
        poison(&versions[0], "last reason"),
    ];
    let untracked = VersionRef {
        key: "logs/never.ndjson".into(),
        ..versions[0].clone()
    };
    let refused = ledger
        .fail(
            &second.id,
            &running,
            "poison",
            &[poison(&untracked, "x")],
            now,
        )
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Malformed { detail, .. })
            if detail.contains("logs/never.ndjson")),
        "only the marker's condition failed: the version is named, {refused:?}"
    );
    assert!(ledger
        .fail(&second.id, &running, "poison", &twice, now)
        .await
        .expect("fail"));
    let retry = Batch {
        shard: shard.clone(),
        key: BatchKey::retry(Timestamp(5_000), &second.id),
        contents: BatchContents::Retry {
            manifest: second.id.clone(),
        },
        ttl: 4_000_000_000,
    };
    assert!(ledger
        .release(&second.id, &retry, now)
        .await
        .expect("release"));
    assert!(ledger
        .supersede(&versions[2], "gone")
        .await
        .expect("supersede"));
    assert!(ledger
        .skip(shard, Some(&retry_at), &retry.key)
        .await
        .expect("skip"));
}

/// Every item of `table`, read back through the neutral layout.
async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> BTreeMap<Key, Item> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let output = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for attributes in output.items() {
            let item = from_attributes(attributes).expect("a neutral item");
            let part = |name: &str| match item.get(name) {
                Some(shared::ledger::item::Value::S(text)) => text.clone(),
                _ => panic!("{name} is not a string"),
            };
            items.insert((part("pk"), part("sk")), item);
        }
        match output.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return items,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_ledger_leaves_the_items_the_memory_ledger_leaves() {
    let (client, dynamo) = dynamo_ledger().await;
    let memory = MemoryLedger::new();
    every_kind_of_write(&memory).await;
    every_kind_of_write(&dynamo).await;
    let stored = scan(&client, dynamo.table()).await;
    let expected = memory.items();
    // Three markers, the batch and the retry batch, the cursor, two manifests, the second's
    // open entry (the first was closed), the shard's registry entry.
    assert_eq!(expected.len(), 10, "{:?}", expected.keys());
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (key, item) in &expected {
        assert_eq!(&stored[key], item, "{key:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_s3_notifications_become_markers_manifests_and_executions() {
    let r = Resources::create().await;
    let test_event = r.receive(1).await;
    let builder = r.builder(3).await;
    let now = Timestamp::now();
    let (response, metrics) = builder.handle(&test_event, &at("r0", now)).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": []}),
        "the s3:TestEvent is acknowledged"
    );
    assert_eq!(metrics.get("RecordsSkipped"), 1.0);

    let keys = [
        "2026-11-25/a b.ndjson",
        "2026-11-25/ünï cødé+plus.ndjson.gz",
        "2026-11-25/c.jsonl",
        "dt=2026-11-24/d.json",
        "2026-11-25/e.ndjson",
        "2026-11-25/notes.txt",
    ];
    for key in keys {
        r.put(key, "{\"a\":1}\n").await;
    }
    // The same object again, same content: S3 notifies again; moto sends neither a version
    // id nor a sequencer, so the ETag stands for the version and this is a repeat.
    r.put("2026-11-25/a b.ndjson", "{\"a\":1}\n").await;
    let mut event = r.receive(keys.len() + 1).await;
    event["Records"]
        .as_array_mut()
        .unwrap()
        .push(json!({"messageId": "broken", "body": "not json", "eventSource": "aws:sqs"}));

    let (response, metrics) = builder.handle(&event, &at("r1", now)).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "broken"}]})
    );
    assert_eq!(metrics.get(batching::metric::VERSIONS_TRACKED), 5.0);
    assert_eq!(metrics.get(batching::metric::DUPLICATES), 1.0);
    assert_eq!(metrics.get("RecordsSkipped"), 1.0, "notes.txt");
    assert_eq!(
        metrics.get(batching::metric::MANIFESTS_CUT),
        0.0,
        "nothing settled yet"
    );

    let d = r.marker("dt=2026-11-24/d.json").await.expect("d tracked");
    assert_eq!(d.date.as_str(), "2026-11-24");
    let unicode = r
        .marker("2026-11-25/ünï cødé+plus.ndjson.gz")
        .await
        .expect("decoded key");
    assert_eq!((unicode.size, unicode.date.as_str()), (8, "2026-11-25"));
    assert!(r.marker("2026-11-25/notes.txt").await.is_none());

    // A redelivery of the whole batch tracks nothing again.
    let (response, metrics) = builder.handle(&event, &at("r2", now)).await.unwrap();
    assert_eq!(response["batchItemFailures"].as_array().unwrap().len(), 1);
    assert_eq!(metrics.get(batching::metric::VERSIONS_TRACKED), 0.0);
    assert_eq!(metrics.get(batching::metric::DUPLICATES), 6.0);

    // Once settled, the sweep cuts 2026-11-25's four files (one batch: taken whole, so above
    // MAX_FILES_PER_MANIFEST); 2026-11-24's one file waits for MAX_WAIT_SECONDS.
    let settled = now.plus_seconds(SETTLE + 1);
    let sweep = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
    let (report, metrics) = builder.handle(&sweep, &at("s1", settled)).await.unwrap();
    assert_eq!(report["cut"], 1, "{report}");
    assert_eq!(metrics.get(batching::metric::MANIFESTS_STARTED), 1.0);
    assert_eq!(metrics.get(batching::metric::FILES_MANIFESTED), 4.0);
    let executions = r.executions().await;
    assert_eq!(executions.len(), 1);
    let (name, input) = &executions[0];
    assert!(name.starts_with("2026-11-25_"), "{name}");
    assert_eq!(input["date_prefix"], "2026-11-25");
    assert_eq!(input["file_count"], 4);
    assert_eq!(input["manifest_id"], name.as_str());
    assert_eq!(input["total_bytes"], 32);
    let manifest = r.manifest(input["manifest_path"].as_str().unwrap()).await;
    assert_eq!(manifest.manifest_id.as_str(), name);
    let mut listed: Vec<&str> = manifest.files.iter().map(|f| f.key.as_str()).collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "2026-11-25/a b.ndjson",
            "2026-11-25/c.jsonl",
            "2026-11-25/e.ndjson",
            "2026-11-25/ünï cødé+plus.ndjson.gz"
        ]
    );
    let id = ManifestId::parse(name).unwrap();
    let stored = r
        .ledger()
        .manifest(&id)
        .await
        .unwrap()
        .expect("manifest item");
    assert_eq!(stored.state, ManifestState::Running);
    assert_eq!(stored.file_count, 4);

    // After MAX_WAIT_SECONDS the other date is cut too; the redelivery's batches hold no
    // live version and are passed.
    let waited = now.plus_seconds(MAX_WAIT + 1);
    let (report, _) = builder.handle(&sweep, &at("s2", waited)).await.unwrap();
    assert_eq!(report["cut"], 1, "{report}");
    let executions = r.executions().await;
    assert_eq!(executions.len(), 2);
    let files: u64 = executions
        .iter()
        .map(|(_, i)| i["file_count"].as_u64().unwrap())
        .sum();
    assert_eq!(files, 5, "every version in one manifest");
    let (report, _) = builder
        .handle(&sweep, &at("s3", waited.plus_seconds(1)))
        .await
        .unwrap();
    assert_eq!(report["cut"], 0, "{report}");
}

/// A running binary, killed when dropped.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_binary(api: &RuntimeApi, env: &[(String, String)], log_level: &str) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_manifest-builder"));
    command
        .env_clear()
        .envs(lambda_environment(api, "manifest-builder"))
        .envs(env.iter().cloned())
        .env("LOG_LEVEL", log_level)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Running(Some(command.spawn().expect("the binary starts")))
}

/// Stops the binary and returns what it printed.
fn output_of(mut running: Running) -> String {
    let mut child = running.0.take().expect("running");
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn s3_event(bucket: &str, key: &str, marker: &str) -> Value {
    // `marker` sits in fields the builder must never log (an event dump would reveal it).
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-25T10:00:00.000Z",
        "userIdentity": {"principalId": marker},
        "requestParameters": {"sourceIPAddress": marker},
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10, "eTag": "e", "sequencer": marker}}
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_behind_the_runtime_api_and_logs_no_keys_at_info() {
    let r = Resources::create().await;
    let mut outputs = Vec::new();
    for (level, key) in [
        ("INFO", "2026-11-25/secret-name-info.ndjson"),
        ("DEBUG", "2026-11-25/secret-name-debug.ndjson"),
    ] {
        let api = RuntimeApi::start();
        let running = spawn_binary(&api, &r.environment(2), level);
        let marker = format!("MARKER-{level}-should-never-be-logged");
        let encoded = key.replace(' ', "+").replace('/', "%2F");
        let event = json!({"Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": s3_event(&r.input_bucket, &encoded, &marker).to_string()},
            {"messageId": "m2", "eventSource": "aws:sqs", "body": "{\"Event\":\"s3:TestEvent\"}"},
            {"messageId": "m3", "eventSource": "aws:sqs", "body": "garbage"}
        ]});
        let id = api.invoke(&event);
        let result = api.wait(&id, Duration::from_secs(60)).unwrap();
        let InvocationResult::Response(body) = result else {
            panic!("the invocation failed: {result:?}")
        };
        let response: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            response,
            json!({"batchItemFailures": [{"itemIdentifier": "m3"}]})
        );
        assert!(r.marker(key).await.is_some(), "tracked by the binary");
        outputs.push((level, key, marker, output_of(running)));
    }
    for (level, key, marker, output) in &outputs {
        if std::env::var("SHOW_LOGS").is_ok() {
            eprintln!("--- {level} ---\n{output}");
        }
        let lines: Vec<Value> = output
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|_| panic!("{level}: not a JSON line: {l}"))
            })
            .collect();
        assert!(
            !output.contains(marker.as_str()),
            "{level}: no event content is logged:\n{output}"
        );
        let emf = lines
            .iter()
            .find(|l| l.get("_aws").is_some())
            .expect("an EMF line");
        assert_eq!(emf[batching::metric::VERSIONS_TRACKED], 1.0);
        assert!(
            lines.iter().any(|l| l["message"] == "batch processed"),
            "{output}"
        );
        match *level {
            "INFO" => assert!(
                !output.contains("secret-name"),
                "INFO logs no object key:\n{output}"
            ),
            _ => assert!(output.contains(*key), "DEBUG may log keys:\n{output}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_stops_the_binary_naming_every_variable() {
    let api = RuntimeApi::start();
    let env = vec![
        ("MAX_FILES_PER_MANIFEST".to_string(), "0".to_string()),
        ("LOG_LEVEL".to_string(), "LOUD".to_string()),
    ];
    let mut command = Command::new(env!("CARGO_BIN_EXE_manifest-builder"));
    let output = command
        .env_clear()
        .envs(lambda_environment(&api, "manifest-builder"))
        .envs(env)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "TRACKING_TABLE",
        "MANIFEST_BUCKET",
        "STEP_FUNCTION_ARN",
        "SETTLE_SECONDS",
        "MAX_FILES_PER_MANIFEST",
        "MAX_BYTES_PER_MANIFEST",
        "MAX_WAIT_SECONDS",
        "RELEASE_AFTER_SECONDS",
        "LOG_LEVEL",
        "OUTPUT_BUCKET",
    ] {
        assert!(stdout.contains(variable), "{variable} named in: {stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_notifies_twice_and_is_tracked_once() {
    let r = Resources::create().await;
    r.receive(1).await; // the test event
    let key = "2026-11-25/big upload.ndjson";
    let upload =
        r.s3.create_multipart_upload()
            .bucket(&r.input_bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (number, body) in [(1, vec![b'x'; 5 * 1024 * 1024]), (2, b"{}\n".to_vec())] {
        let part =
            r.s3.upload_part()
                .bucket(&r.input_bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    r.s3.complete_multipart_upload()
        .bucket(&r.input_bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let event = r.receive(2).await;
    let builder = r.builder(10).await;
    let (response, metrics) = builder
        .handle(&event, &at("r1", Timestamp::now()))
        .await
        .unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(
        (
            metrics.get(batching::metric::VERSIONS_TRACKED),
            metrics.get(batching::metric::DUPLICATES)
        ),
        (1.0, 1.0)
    );
    let marker = r.marker(key).await.expect("tracked");
    assert_eq!(marker.size, 5 * 1024 * 1024 + 3);
}
