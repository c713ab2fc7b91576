"""The pipeline on a local AWS, running on what `terraform apply` created there.

`deploy.Deployment` applies tests/terraform/local (the repository's root module, terraform/)
to the emulator: KMS key, IAM roles, buckets and their notifications, arrivals queue and its
DLQ, tracking table, both Lambda functions with their event-source mapping, the sweep's
EventBridge rule, the state machine, alarms. Nothing here creates a resource. `Pipeline`
reads back what Terraform created and brings it to life where the emulator cannot:

* the two functions run as local processes behind the Runtime API (`lambda_runtime`): the
  binaries given, with the environment, timeout and memory of the functions' configuration
  (`lambda:GetFunctionConfiguration`), plus the emulator's endpoint and the test's overrides
  (`function_environment`, the one place a function's environment is built);
* the event-source mapping is polled by `event_sources.SqsEventSource` (batch size and
  response types from the mapping), as Lambda's poller does;
* the sweep rule's target is invoked with the input the rule sends (`Input`, else the
  scheduled-event shape) on a short local schedule (`Schedule`);
* the state machine is the one Terraform created (moto executes it).

What the root module does not expose and a local run must shorten is a test-only knob of
`LocalSettings`, each said to be one.
"""

from __future__ import annotations

import collections
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import iam_audit  # IAM audit
from .emulator import ACCOUNT, REGION, Emulator
from .event_sources import Schedule, SqsEventSource
from .lambda_runtime import LambdaFunction, clean_environment

BUILDER, CONVERTER = "manifest-builder", "converter"

# The ledger's items (tracking version 2, docs/TRACKING.md), told apart by the prefix of their
# partition key as shared::ledger::item formats it (shared/tests/table_layout.rs checks these
# constants and every attribute read below against the layout).
MARKER_PK = "V#"
BATCH_PK = "B#"
MANIFEST_PK = "M#"
OPEN_PK = "O#"
# Manifest states that need nothing more: converted, or released (outputs removed, versions
# handed to a retry batch that a later manifest converts).
MANIFEST_FINAL = {"completed", "released"}


@dataclass
class Ledger:
    """The table's items by kind: version markers, manifests (by id), open entries, batches."""

    markers: list[dict]
    manifests: dict[str, dict]
    open_entries: list[dict]
    batches: list[dict]

    @classmethod
    def of(cls, items: list[dict]) -> "Ledger":
        ledger = cls([], {}, [], [])
        for i in items:
            pk = i["pk"]
            if pk.startswith(MARKER_PK):
                ledger.markers.append(i)
            elif pk.startswith(MANIFEST_PK):
                ledger.manifests[pk[len(MANIFEST_PK):]] = i
            elif pk.startswith(OPEN_PK):
                ledger.open_entries.append(i)
            elif pk.startswith(BATCH_PK):
                ledger.batches.append(i)
        return ledger

    def completed(self) -> dict[str, dict]:
        return {m_id: m for m_id, m in self.manifests.items() if m["status"] == "completed"}


def marker_version(v: dict) -> tuple[str, str, str]:
    """A marker's version as a manifest's JSON names it: bucket, key, and the version id, or
    (in an unversioned bucket, where the version is a sequencer or the ETag) the ETag the
    converter pins its read to."""
    bucket, _, key = v["pk"][len(MARKER_PK):].partition("/")
    version = v["sk"]
    if version.startswith(("S#", "E#")):
        return bucket, key, "etag:" + v["etag"]
    return bucket, key, version


def manifest_file_version(file: dict) -> tuple[str, str, str]:
    """An entry of a manifest's JSON `files` as `marker_version` names versions."""
    version_id = file.get("version_id")
    return file["bucket"], file["key"], version_id if version_id else "etag:" + file["etag"]


def marker_given_up(v: dict, max_attempts: int) -> bool:
    """Whether the version will not be converted: superseded (deleted or overwritten before its
    manifest read it), or failed MAX_ATTEMPTS conversions."""
    return bool(v.get("superseded")) or int(v.get("attempts", 0)) >= max_attempts


def manifest_result(m: dict) -> dict:
    """A manifest item's conversion result (JSON in `result`; empty before completion)."""
    return json.loads(m["result"]) if m.get("result") else {}


@dataclass
class LocalSettings:
    """Test-only knobs: what a local run changes beyond the Terraform variables
    (`deploy.PipelineVariables`), because the root module does not expose it."""

    # The sweep rule's schedule is rate(1 minute) (the root module's sweep_schedule; EventBridge
    # has nothing shorter): locally the rule's target is invoked this often instead.
    sweep_every_seconds: float = 2.0
    # The queue's visibility timeout is 6 x the builder's timeout (360 s; no variable): the
    # local poller receives with this one instead, so a message that was not deleted comes
    # back in seconds. None: the queue's own.
    visibility_timeout_seconds: int | None = 20
    # Local pollers of the event-source mapping (the mapping's maximum concurrency is the
    # lambda module's sqs_maximum_concurrency, 10, not a root variable) and sandboxes of the
    # converter (unreserved on AWS): the limits of this machine, not of the deployment.
    sqs_concurrency: int = 2
    converter_concurrency: int = 4
    # At-least-once test knobs of the SQS event source (see `SqsEventSource`).
    duplicate_every_message: bool = False
    forget_deletes: int = 0
    # Extra environment for each function on top of its configuration (e.g. a fault plan).
    builder_environment: dict[str, str] = field(default_factory=dict)
    converter_environment: dict[str, str] = field(default_factory=dict)


@dataclass
class Binaries:
    manifest_builder: str
    converter_lambda: str


class _ReceiveWithVisibility:
    """An SQS client whose ReceiveMessage asks for `seconds` of visibility (test-only, see
    `LocalSettings.visibility_timeout_seconds`); every other call is the client's own."""

    def __init__(self, sqs, seconds: int):
        self._sqs = sqs
        self._seconds = seconds

    def receive_message(self, **kwargs):
        return self._sqs.receive_message(VisibilityTimeout=self._seconds, **kwargs)

    def __getattr__(self, name):
        return getattr(self._sqs, name)


class Pipeline:
    """One pipeline Terraform created on `emulator` (`outputs`: the root module's outputs),
    with its functions running from `binaries` and their triggers started."""

    def __init__(
        self,
        emulator: Emulator,
        outputs: dict,
        binaries: Binaries,
        workdir: str,
        settings: LocalSettings | None = None,
    ):
        self.aws = emulator
        self.outputs = outputs
        self.settings = settings or LocalSettings()
        self.binaries = binaries
        self.workdir = workdir
        os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
        self.metrics: dict[tuple[str, str], float] = {}
        self.s3 = emulator.client("s3")
        self.sqs = emulator.client("sqs")
        self.dynamodb = emulator.client("dynamodb")
        self.sfn = emulator.client("stepfunctions")
        self.cloudwatch = emulator.client("cloudwatch")
        self.lambda_ = emulator.client("lambda")
        self.events = emulator.client("events")
        self.input_bucket = outputs["input_bucket"]
        self.manifest_bucket = outputs["manifest_bucket"]
        self.output_bucket = outputs["output_bucket"]
        self.table = outputs["tracking_table"]
        self.state_machine_arn = outputs["state_machine_arn"]
        self.kms_key_arn = outputs["kms_key_arn"]
        self.queue_url = outputs["queue_url"]
        self.queue_arn = self._queue_arn(self.queue_url)
        self.dlq_url = self.sqs.get_queue_url(QueueName=outputs["dead_letter_queues"]["arrivals"])["QueueUrl"]
        self.sweep_dlq_url = self.sqs.get_queue_url(QueueName=outputs["dead_letter_queues"]["sweep"])["QueueUrl"]
        # Function names by role (manifest-builder, converter), and what Terraform configured.
        self.function_names: dict[str, str] = dict(outputs["function_names"])
        self.configurations: dict[str, dict] = {
            role: self.lambda_.get_function_configuration(FunctionName=name)
            for role, name in self.function_names.items()
        }
        # The execution role Terraform gave each function, by function name.
        self.role_arns: dict[str, str] = {
            self.function_names[role]: config["Role"] for role, config in self.configurations.items()
        }
        # The roles are Terraform's: the IAM audit of the functions' requests enforces them.
        self.roles_from_terraform = True
        # IAM audit: the functions, their SQS poller and the state machine act as those roles.
        state_machine_role = self.sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)["roleArn"]
        self.audit = iam_audit.Audit(emulator, {**{r: self.role_arns[n] for r, n in self.function_names.items()},
                                                "state-machine": state_machine_role})
        # Failed conversions before the builder gives a version up (its configuration's).
        builder_variables = self.configurations[BUILDER].get("Environment", {}).get("Variables", {})
        self.max_attempts = int(builder_variables.get("MAX_ATTEMPTS", "3"))
        # Manifest JSON by path: written once, before the manifest exists, never changed.
        self._manifest_versions: dict[str, list[tuple[str, str, str]]] = {}
        self.functions: dict[str, LambdaFunction] = {}
        self.event_source: SqsEventSource | None = None
        self.schedule: Schedule | None = None
        self.sweep_rule: dict = {}
        self.sweep_payload: dict = {}
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # What Terraform created ---------------------------------------------------------------

    def _queue_arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def _event_source_mapping(self, function_arn: str) -> dict:
        mappings = self.lambda_.list_event_source_mappings(FunctionName=function_arn)["EventSourceMappings"]
        for mapping in mappings:
            if mapping["EventSourceArn"] == self.queue_arn:
                return mapping
        raise RuntimeError(f"no event-source mapping from {self.queue_arn} to {function_arn}")

    def _sweep(self, function_arn: str) -> tuple[dict, dict]:
        """The scheduled rule targeting the builder, and the event its target receives."""
        for rule_name in self.events.list_rule_names_by_target(TargetArn=function_arn)["RuleNames"]:
            rule = self.events.describe_rule(Name=rule_name)
            if not rule.get("ScheduleExpression"):
                continue
            for target in self.events.list_targets_by_rule(Rule=rule_name)["Targets"]:
                if target["Arn"] != function_arn:
                    continue
                if "Input" in target:
                    return rule, json.loads(target["Input"])
                if target.get("InputPath") or target.get("InputTransformer"):
                    raise RuntimeError(f"rule {rule_name}: only a constant Input (or none) is run locally")
                return rule, _scheduled_event(rule)
        raise RuntimeError(f"no scheduled EventBridge rule targets {function_arn}")

    # The functions -----------------------------------------------------------------------

    def function_credentials(self, name: str) -> dict[str, str]:
        """The credentials function `name` runs with: STS credentials of the role Terraform
        gave it (`self.role_arns[name]`), as Lambda gives a function its execution role's."""
        return self.audit.credentials(self.role_arns[name], name)  # IAM audit: the role's STS keys

    def function_environment(self, name: str) -> dict[str, str]:
        """The process environment of function `name`, built in this one place: the
        environment Terraform configured, the emulator's endpoint and region, the function's
        credentials, and the test's overrides (`LocalSettings.*_environment`)."""
        role = next(r for r, n in self.function_names.items() if n == name)
        configured = self.configurations[role].get("Environment", {}).get("Variables", {})
        overrides = self.settings.builder_environment if role == BUILDER else self.settings.converter_environment
        return clean_environment(
            {
                **configured,
                "AWS_ENDPOINT_URL": self.aws.endpoint,
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                # The emulator serves every bucket under one host name.
                "S3_FORCE_PATH_STYLE": "true",
                **self.function_credentials(name),
                **overrides,
            }
        )

    def _start(self) -> None:
        s = self.settings
        binaries = {BUILDER: self.binaries.manifest_builder, CONVERTER: self.binaries.converter_lambda}
        concurrency = {BUILDER: s.sqs_concurrency + 1, CONVERTER: s.converter_concurrency}
        for role, name in self.function_names.items():
            config = self.configurations[role]
            function = LambdaFunction(
                name,
                [binaries[role]],
                self.function_environment(name),
                timeout_seconds=config["Timeout"],
                memory_mb=config["MemorySize"],
                max_concurrency=concurrency[role],
                log_path=os.path.join(self.workdir, "logs", f"{name}.log"),
                on_metrics=self._record_metrics,
                region=REGION,
                account=ACCOUNT,
            )
            self.functions[name] = function
            self.aws.route(function)
        self.builder = self.functions[self.function_names[BUILDER]]
        self.converter = self.functions[self.function_names[CONVERTER]]
        builder_arn = self.configurations[BUILDER]["FunctionArn"]
        mapping = self._event_source_mapping(builder_arn)
        self.event_source_mapping = mapping
        sqs = iam_audit.PollerClient(self.audit.client("sqs", self.role_arns[self.function_names[BUILDER]], "sqs-poller"), self.sqs)  # IAM audit
        if s.visibility_timeout_seconds is not None:
            sqs = _ReceiveWithVisibility(sqs, s.visibility_timeout_seconds)  # IAM audit: wraps the poller client
        self.event_source = SqsEventSource(
            sqs,
            self.queue_url,
            self.queue_arn,
            self.builder,
            batch_size=mapping["BatchSize"],
            batching_window_seconds=mapping.get("MaximumBatchingWindowInSeconds") or 0,
            concurrency=s.sqs_concurrency,
            report_batch_item_failures="ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []),
            region=REGION,
            duplicate_every_message=s.duplicate_every_message,
            forget_deletes=s.forget_deletes,
        )
        self.sweep_rule, self.sweep_payload = self._sweep(builder_arn)
        self.schedule = Schedule(self.builder, self.sweep_payload, s.sweep_every_seconds)

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

    def upload(self, key: str, body: bytes) -> str | None:
        """Puts `key`; returns the version S3 gave it (the input bucket is versioned)."""
        return self.s3.put_object(Bucket=self.input_bucket, Key=key, Body=body).get("VersionId")

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

    def ledger(self) -> Ledger:
        return Ledger.of(self.tracking_items())

    def manifest_versions(self, m: dict) -> list[tuple[str, str, str]]:
        """The versions a manifest holds, from its JSON (`marker_version`'s form)."""
        path = m["manifest_path"]
        if path not in self._manifest_versions:
            bucket, _, key = path.removeprefix("s3://").partition("/")
            document = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            self._manifest_versions[path] = [manifest_file_version(f) for f in document["files"]]
        return self._manifest_versions[path]

    def converted(self, ledger: Ledger) -> collections.Counter:
        """How many completed manifests hold each version."""
        counts: collections.Counter = collections.Counter()
        for m in ledger.completed().values():
            counts.update(self.manifest_versions(m))
        return counts

    def in_flight(self) -> list[str]:
        """What is visibly still moving: notifications queued, executions running."""
        reasons = []
        depth = self.queue_depth(self.queue_url)
        if depth:
            reasons.append(f"{depth} notifications queued")
        running = sum(1 for e in self.executions() if e["status"] == "RUNNING")
        if running:
            reasons.append(f"{running} executions running")
        return reasons

    def unsettled(self, expected_files: int | None = None) -> list[str]:
        """Why the pipeline is still at work (empty once every version reached an end: no open
        entry, every manifest final, every marker converted by a completed manifest,
        superseded, or given up at MAX_ATTEMPTS)."""
        return self.in_flight() + self._unfinished(expected_files)

    def _unfinished(self, expected_files: int | None) -> list[str]:
        """The whole-table part of `unsettled`."""
        reasons = []
        ledger = self.ledger()
        if ledger.open_entries:
            reasons.append(f"{len(ledger.open_entries)} open-manifest entries")
        open_manifests = sum(1 for m in ledger.manifests.values() if m["status"] not in MANIFEST_FINAL)
        if open_manifests:
            reasons.append(f"{open_manifests} manifests not final")
        converted = self.converted(ledger)
        waiting = sum(
            1 for v in ledger.markers
            if not converted[marker_version(v)] and not marker_given_up(v, self.max_attempts)
        )
        if waiting:
            reasons.append(f"{waiting} versions neither converted, superseded nor given up")
        if expected_files is not None and len(ledger.markers) < expected_files:
            reasons.append(f"{len(ledger.markers)} of {expected_files} versions tracked")
        return reasons

    def wait_until_settled(self, timeout: float, expected_files: int | None = None, progress=None) -> None:
        """Returns once `unsettled` finds nothing twice in a row, a sweep apart.

        While anything is unsettled it looks once a sweep interval, and at the whole table
        only when nothing is in flight. The emulator is one Python process: moto serves a scan
        by copying every item under the lock every DynamoDB request waits for, and counts a
        queue's messages by visiting each. Polled twice a second through a run of 2,000 files,
        those two were most of what the functions waited on."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while True:
            reasons = self.in_flight() or self._unfinished(expected_files)
            if not reasons:
                # Settled twice in a row, a sweep apart: nothing was in flight in between.
                if quiet_since is not None and time.monotonic() - quiet_since > self.settings.sweep_every_seconds:
                    return
                quiet_since = quiet_since or time.monotonic()
            else:
                quiet_since = None
            if time.monotonic() > deadline:
                raise TimeoutError("the pipeline did not settle: " + "; ".join(self.unsettled(expected_files) or ["?"]))
            if progress:
                progress(reasons)
            time.sleep(self.settings.sweep_every_seconds if reasons else 0.5)

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


def _scheduled_event(rule: dict) -> dict:
    """The event EventBridge sends a target of a scheduled rule that has no Input."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule["Arn"]],
        "detail": {},
    }


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
    if kind == "B":
        # Binary attributes (a batch's deflated refs) as their size: nothing here decodes them.
        return len(inner)
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    return inner
