"""The whole pipeline on a local AWS, resource for resource as `terraform/` deploys it.

Input bucket (notifications to the arrivals queue) → arrivals queue (redrive to its DLQ) →
`manifest-builder` (SQS event-source mapping, plus the sweep on a schedule) → tracking table
(with its two indexes) and manifest JSON → Step Functions (the definition Terraform renders,
Batch off) → `converter` Lambda → Parquet and error objects in the output bucket under SSE-KMS.

The two Lambda functions are the release (or test) binaries, run as processes behind the
Runtime API (`lambda_runtime`), with the environment the Terraform `lambda` module gives them.
Timings are shortened for a local run (`Settings`); everything else is as deployed.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from dataclasses import dataclass, field

from .emulator import ACCOUNT, REGION, Emulator
from .event_sources import Schedule, SqsEventSource
from .lambda_runtime import LambdaFunction, clean_environment
from .terraform_template import state_machine

FILE_TERMINAL = {"processed", "failed"}
MANIFEST_OPEN = {"claiming", "starting", "running"}


@dataclass
class Settings:
    """The Terraform variables that matter locally, with timings shortened."""

    name: str = "ndjson-parquet-local"
    compression_type: str = "zstd"
    max_files_per_manifest: int = 100
    max_bytes_per_manifest: int = 1 << 30
    # A smaller manifest is cut once the oldest pending file waited this long (sweep).
    max_wait_seconds: int = 2
    sweep_every_seconds: float = 2.0
    builder_timeout_seconds: int = 60
    converter_timeout_seconds: int = 300
    # Terraform: 6 × the builder's timeout. Short here so that redelivery is quick.
    visibility_timeout_seconds: int = 20
    max_receive_count: int = 5
    max_attempts: int = 3
    # Retries of the converter task in the state machine.
    retry_attempts: int = 3
    # The sweep repairs half-done manifests this long after they were last touched. As in
    # terraform: the builder's timeout + 60, so a slow builder is never overtaken (60 with a
    # 60 s timeout let the sweep abandon a claim a live builder then used: a duplicate).
    repair_after_seconds: int = 120
    target_file_bytes: int = 128 << 20
    timestamp_unit: str = "us"
    sqs_batch_size: int = 10
    sqs_concurrency: int = 2
    converter_concurrency: int = 4
    notification_suffixes: tuple[str, ...] = (".ndjson", ".jsonl", ".json", ".gz", ".zst")
    log_level: str = "info"
    # At-least-once test knobs of the SQS event source (see `SqsEventSource`).
    duplicate_every_message: bool = False
    forget_deletes: int = 0
    # Extra environment for each function (e.g. a fault plan in tests).
    builder_environment: dict[str, str] = field(default_factory=dict)
    converter_environment: dict[str, str] = field(default_factory=dict)


@dataclass
class Binaries:
    manifest_builder: str
    converter_lambda: str


class Pipeline:
    """Creates the resources on `emulator`, starts the functions and their triggers."""

    def __init__(self, emulator: Emulator, settings: Settings, binaries: Binaries, workdir: str):
        self.aws = emulator
        self.settings = settings
        self.binaries = binaries
        self.workdir = workdir
        os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
        self.metrics: dict[tuple[str, str], float] = {}
        self.s3 = emulator.client("s3")
        self.sqs = emulator.client("sqs")
        self.dynamodb = emulator.client("dynamodb")
        self.sfn = emulator.client("stepfunctions")
        self.kms = emulator.client("kms")
        self.cloudwatch = emulator.client("cloudwatch")
        n = settings.name
        self.input_bucket = f"{n}-input"
        self.manifest_bucket = f"{n}-manifests"
        self.output_bucket = f"{n}-output"
        self.table = f"{n}-tracking"
        self.functions: dict[str, LambdaFunction] = {}
        self.event_source: SqsEventSource | None = None
        self.schedule: Schedule | None = None
        self._create()

    # Resources ---------------------------------------------------------------------------

    def _create(self) -> None:
        s = self.settings
        n = s.name
        self.kms_key_arn = self.kms.create_key(Description=f"{n} data key")["KeyMetadata"]["Arn"]
        for bucket in (self.input_bucket, self.manifest_bucket, self.output_bucket):
            self.s3.create_bucket(Bucket=bucket)
            self.s3.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": self.kms_key_arn,
                            },
                            "BucketKeyEnabled": True,
                        }
                    ]
                },
            )
        dlq_url = self.sqs.create_queue(
            QueueName=f"{n}-arrivals-dlq",
            Attributes={"KmsMasterKeyId": self.kms_key_arn, "MessageRetentionPeriod": "1209600"},
        )["QueueUrl"]
        self.dlq_url = dlq_url
        dlq_arn = self._queue_arn(dlq_url)
        self.queue_url = self.sqs.create_queue(
            QueueName=f"{n}-arrivals",
            Attributes={
                "KmsMasterKeyId": self.kms_key_arn,
                "VisibilityTimeout": str(s.visibility_timeout_seconds),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": s.max_receive_count}
                ),
            },
        )["QueueUrl"]
        self.queue_arn = self._queue_arn(self.queue_url)
        self.s3.put_bucket_notification_configuration(
            Bucket=self.input_bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": f"ndjson-arrivals{suffix.replace('.', '-')}",
                        "QueueArn": self.queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}},
                    }
                    for suffix in s.notification_suffixes
                ]
            },
        )
        self.dynamodb.create_table(
            TableName=self.table,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "date_prefix", "KeyType": "HASH"},
                {"AttributeName": "file_key", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("date_prefix", "file_key", "pending_prefix", "open_shard", "created_at")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index,
                    "KeySchema": [
                        {"AttributeName": hash_key, "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index, hash_key in (
                    ("pending-index", "pending_prefix"),
                    ("open-manifests-index", "open_shard"),
                )
            ],
            SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": self.kms_key_arn},
        )
        iam = self.aws.client("iam")
        role_arn = iam.create_role(
            RoleName=f"{n}-lambda",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        converter_name = f"{n}-converter"
        builder_name = f"{n}-manifest-builder"
        converter_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{converter_name}"
        definition = state_machine(
            {
                "batch_enabled": False,
                "lambda_max_bytes": 10 << 30,
                "converter_function_arn": converter_arn,
                "job_queue_arn": "",
                "job_definition_arn": "",
                "batch_timeout_seconds": 0,
                "retry_attempts": s.retry_attempts,
                "table_name": self.table,
            }
        )
        self.state_machine_arn = self.sfn.create_state_machine(
            name=f"{n}-convert",
            definition=definition,
            roleArn=role_arn,
        )["stateMachineArn"]

        sdk = self.aws.sdk_environment()
        builder_env = {
            "TRACKING_TABLE": self.table,
            "MANIFEST_BUCKET": self.manifest_bucket,
            "MANIFEST_PREFIX": "manifests",
            "STEP_FUNCTION_ARN": self.state_machine_arn,
            "MAX_FILES_PER_MANIFEST": str(s.max_files_per_manifest),
            "MAX_BYTES_PER_MANIFEST": str(s.max_bytes_per_manifest),
            "MAX_WAIT_SECONDS": str(s.max_wait_seconds),
            "TTL_DAYS": "30",
            "LOG_LEVEL": s.log_level,
            "MAX_ATTEMPTS": str(s.max_attempts),
            "KMS_KEY_ARN": self.kms_key_arn,
            "REPAIR_AFTER_SECONDS": str(s.repair_after_seconds),
            "OUTPUT_BUCKET": self.output_bucket,
            "OUTPUT_PREFIX": "parquet",
            "ERROR_BUCKET": self.output_bucket,
            "ERROR_PREFIX": "errors",
            "S3_FORCE_PATH_STYLE": "true",
            **s.builder_environment,
        }
        converter_env = {
            "TRACKING_TABLE": self.table,
            "OUTPUT_BUCKET": self.output_bucket,
            "OUTPUT_PREFIX": "parquet",
            "ERROR_BUCKET": self.output_bucket,
            "ERROR_PREFIX": "errors",
            "KMS_KEY_ARN": self.kms_key_arn,
            "COMPRESSION_TYPE": s.compression_type,
            "MAX_ATTEMPTS": str(s.max_attempts),
            "TARGET_FILE_BYTES": str(s.target_file_bytes),
            "TIMESTAMP_UNIT": s.timestamp_unit,
            "LOG_LEVEL": s.log_level,
            "S3_FORCE_PATH_STYLE": "true",
            **s.converter_environment,
        }
        lambda_client = self.aws.client("lambda")
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\n# runs locally as a process, see tools/local_aws\n")
        for name, binary, env, timeout, concurrency in (
            (builder_name, self.binaries.manifest_builder, builder_env, s.builder_timeout_seconds, s.sqs_concurrency + 1),
            (converter_name, self.binaries.converter_lambda, converter_env, s.converter_timeout_seconds, s.converter_concurrency),
        ):
            lambda_client.create_function(
                FunctionName=name,
                Runtime="provided.al2023",
                Role=role_arn,
                Handler="bootstrap",
                Code={"ZipFile": package.getvalue()},
                Timeout=timeout,
                MemorySize=1024,
                Environment={"Variables": env},
            )
            function = LambdaFunction(
                name,
                [binary],
                clean_environment({**sdk, **env}),
                timeout_seconds=timeout,
                memory_mb=1024,
                max_concurrency=concurrency,
                log_path=os.path.join(self.workdir, "logs", f"{name}.log"),
                on_metrics=self._record_metrics,
            )
            self.functions[name] = function
            self.aws.route(function)
        self.builder = self.functions[builder_name]
        self.converter = self.functions[converter_name]
        lambda_client.create_event_source_mapping(
            EventSourceArn=self.queue_arn,
            FunctionName=builder_name,
            BatchSize=s.sqs_batch_size,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )
        self.event_source = SqsEventSource(
            self.sqs,
            self.queue_url,
            self.queue_arn,
            self.builder,
            batch_size=s.sqs_batch_size,
            concurrency=s.sqs_concurrency,
            duplicate_every_message=s.duplicate_every_message,
            forget_deletes=s.forget_deletes,
        )
        self.schedule = Schedule(self.builder, {"action": "sweep"}, s.sweep_every_seconds)

    def _queue_arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def _record_metrics(self, function: str, document: dict) -> None:
        """Extracts an EMF document into CloudWatch, as CloudWatch Logs does."""
        aws = document.get("_aws", {})
        for directive in aws.get("CloudWatchMetrics", []):
            namespace = directive.get("Namespace", "")
            dimensions = [
                {"Name": d, "Value": str(document.get(d, ""))}
                for group in directive.get("Dimensions", [])
                for d in group
            ]
            data = []
            for metric in directive.get("Metrics", []):
                value = document.get(metric["Name"])
                if not isinstance(value, (int, float)):
                    continue
                key = (str(document.get("Function", function)), metric["Name"])
                self.metrics[key] = self.metrics.get(key, 0) + value
                data.append(
                    {
                        "MetricName": metric["Name"],
                        "Dimensions": dimensions,
                        "Value": float(value),
                        "Unit": metric.get("Unit", "Count"),
                    }
                )
            for start in range(0, len(data), 20):
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 20])

    # Running -----------------------------------------------------------------------------

    def upload(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.input_bucket, Key=key, Body=body)

    def tracking_items(self) -> list[dict]:
        items = []
        kwargs = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**kwargs)
            for raw in page["Items"]:
                items.append({k: _plain(v) for k, v in raw.items()})
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def queue_depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def executions(self) -> list[dict]:
        executions = []
        kwargs = {"stateMachineArn": self.state_machine_arn}
        while True:
            page = self.sfn.list_executions(**kwargs)
            executions.extend(page["executions"])
            if "nextToken" not in page:
                return executions
            kwargs["nextToken"] = page["nextToken"]

    def unsettled(self, expected_files: int | None = None) -> list[str]:
        """Why the pipeline is still at work (empty once every file reached an end)."""
        reasons = []
        depth = self.queue_depth(self.queue_url)
        if depth:
            reasons.append(f"{depth} notifications queued")
        running = sum(1 for e in self.executions() if e["status"] == "RUNNING")
        if running:
            reasons.append(f"{running} executions running")
        items = self.tracking_items()
        files = [i for i in items if i.get("item_type") == "file"]
        waiting = sum(1 for f in files if f["status"] not in FILE_TERMINAL)
        if waiting:
            reasons.append(f"{waiting} files not processed")
        open_manifests = sum(
            1 for i in items if i.get("item_type") == "manifest" and i["status"] in MANIFEST_OPEN
        )
        if open_manifests:
            reasons.append(f"{open_manifests} manifests open")
        if expected_files is not None and len(files) < expected_files:
            reasons.append(f"{len(files)} of {expected_files} files tracked")
        return reasons

    def wait_until_settled(self, timeout: float, expected_files: int | None = None, progress=None) -> None:
        deadline = time.monotonic() + timeout
        quiet_since = None
        while True:
            reasons = self.unsettled(expected_files)
            if not reasons:
                # Settled twice in a row, a sweep apart: nothing was in flight in between.
                if quiet_since is not None and time.monotonic() - quiet_since > self.settings.sweep_every_seconds:
                    return
                quiet_since = quiet_since or time.monotonic()
            else:
                quiet_since = None
            if time.monotonic() > deadline:
                raise TimeoutError("the pipeline did not settle: " + "; ".join(reasons or ["?"]))
            if progress:
                progress(reasons)
            time.sleep(0.5)

    def list_keys(self, bucket: str, prefix: str = "") -> list[dict]:
        objects = []
        kwargs = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = self.s3.list_objects_v2(**kwargs)
            objects.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return objects
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def download(self, bucket: str, key: str, path: str) -> dict:
        """Fetches an object to `path`; returns its HEAD (for the encryption check)."""
        head = self.s3.head_object(Bucket=bucket, Key=key)
        self.s3.download_file(bucket, key, path)
        return head

    def close(self) -> None:
        if self.schedule:
            self.schedule.stop()
        if self.event_source:
            self.event_source.stop()
        for name, function in self.functions.items():
            self.aws.unroute(name)
            function.close()


def _plain(value: dict):
    """A DynamoDB attribute value as plain Python."""
    (kind, inner), = value.items()
    if kind == "S":
        return inner
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "BOOL":
        return inner
    if kind == "NULL":
        return None
    if kind == "L":
        return [_plain(v) for v in inner]
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    return inner
