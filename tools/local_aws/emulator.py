"""moto's server, run in this process, with its Lambda invocations routed to local processes.

moto can execute Step Functions state machines (`execute_state_machine`) including their
`lambda:invoke` and DynamoDB tasks, and delivers S3 notifications to SQS. What it cannot do
here is run a Lambda function: its Docker backend needs Docker, and its Docker-free backend
only echoes. The pipeline's resources are created by `terraform apply` (tests/terraform/local)
against this server. Running moto in-process lets a few small patches close the gaps, each
as narrow as it can be:

* the Docker-free backend's `invoke` hands invocations of registered functions to
  `lambda_runtime.LambdaFunction` (real processes behind the Runtime API); other functions
  keep moto's behaviour;
* moto's DynamoDB handles one request at a time. It is not thread-safe: under concurrent
  requests a conditional write could pass its condition on a value another request was
  changing (two cutters both moving one shard's cursor, which DynamoDB never allows), and a query
  could trip over an item an update was rewriting. DynamoDB makes every single-item write
  atomic; the lock gives moto the same property;
* moto's SQS queues no longer invoke event-source mappings inline (it does so inside the
  `SendMessage` call, once, with no redelivery after a failure); `event_sources.SqsEventSource`
  polls the queue instead, as Lambda's poller does: batches, partial-batch responses,
  redelivery after the visibility timeout, and the queue's redrive policy;
* moto's S3 event notifications carry neither `versionId` nor `sequencer`; S3 sends both
  (`versionId` when the bucket is versioned, `sequencer` always, increasing per key). The
  patch adds them, so the pipeline identifies versions and reads them (`GetObject
  versionId=…`) as it does on AWS;
* moto's S3 bucket-policy check is neutral: moto fails every policy condition it has no value
  for, so the buckets' TLS-only Deny would refuse every object request. Bucket policies are
  evaluated, conditions included, by the IAM audit (`iam_audit.py`).

Five more let the Terraform AWS provider (5.x) apply and destroy the pipeline; without each,
`terraform apply` or `terraform destroy` stalls or fails:

* Step Functions `ValidateStateMachineDefinition`: moto 5.2.5 does not implement it, and the
  provider calls it before it creates a state machine (an unknown action is a 500, which the
  provider retries until its timeout). The patch answers it as AWS does (`result` OK or FAIL
  with diagnostics), running the definition through moto's own ASL parser -- the parser moto
  uses for `CreateStateMachine` when it executes state machines -- so a definition moto could
  not run fails here as it would on AWS, and a valid one passes;
* Step Functions `ListStateMachineVersions`: not implemented either (a 500 the provider
  retries until its timeout); it reads the versions back after creating a state machine. The
  patch lists the versions moto keeps (`publish`), newest first, as AWS does;
* SQS `RedriveAllowPolicy`: moto stores the attribute on `SetQueueAttributes` but never
  returns it from `GetQueueAttributes` (it is missing from the queue's attribute list), so
  `aws_sqs_queue_redrive_allow_policy`, which reads the attribute back until it matches what
  it set, waits until its timeout. The patch lists the attribute and returns it when set;
* S3 delete markers get the `dispose()` moto's versioned key store calls on every version of a
  key it drops: without it, deleting a key that has a delete marker from a bucket whose
  versioning was suspended (what `terraform destroy` does: it removes the bucket's versioning
  configuration, then empties the bucket, `force_destroy`) fails with a 500, and the
  provider retries until its timeout. A delete marker holds no data: there is nothing to free;
* S3 `ListObjectVersions` with `encoding-type=url`: moto ignores the parameter and returns keys
  as they are. The provider lists a bucket's versions that way to empty it (`force_destroy`)
  and URL-decodes each key, so `a+b.json` becomes `a b.json`: the delete misses the object and
  the destroy loops until its timeout. The patch encodes the keys (and prefixes and markers)
  as S3 does, and as moto already does for `ListObjects(V2)`.

One makes moto fast enough for a queue of thousands of messages:

* SQS receives: moto checks each message's retention by computing all of the queue's
  attributes, whose approximate counts visit every message; the patch reads the one attribute.

One makes StopExecution what it is in AWS:

* moto's stopped execution stays RUNNING until its task in progress returns, then ends FAILED
  if the task failed; the patch makes it ABORTED at once, and keeps it so.

One makes moto's SQS as safe under concurrent pollers as SQS:

* SQS deletes: moto rebuilds the queue's message list outside the lock its sends take, so two
  deletes at once undo one of them (the message comes back after its visibility timeout) and a
  message sent meanwhile can vanish; the patch deletes under the queue's lock.

(`aws_s3_bucket_lifecycle_configuration` needs no patch: moto returns the rules as they were
put; the provider's create reads them back until they are steady (measured: ten reads 5 s
apart), so each lifecycle configuration takes ~55 s to create, in parallel with the rest of the
apply. SQS queues likewise take ~25 s: the provider reads their attributes back six times.)

The emulator's own logging (moto's loggers, werkzeug's, and exceptions that end threads of
moto's Step Functions interpreter, such as the `FailureEventException` of every execution a
test expects to fail) goes to a log file (`log_to`), not to the terminal.

Everything else is moto as its server runs it: the pipeline's binaries reach it over HTTP
through the AWS SDK (`AWS_ENDPOINT_URL`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import traceback
import urllib.request

from .lambda_runtime import LambdaFunction

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# The loggers of the emulator itself (not of the suite).
EMULATOR_LOGGERS = ("moto", "werkzeug")

_routes: dict[str, LambdaFunction] = {}
_patched = False
_patch_lock = threading.Lock()
# Where the emulator logs (one file at a time, process-wide as moto's loggers are).
_log_handler: logging.Handler | None = None
_log_lock = threading.Lock()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _patch_moto() -> None:
    """Installs the patches (once per process)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        _patch_lambda_invoke()
        _patch_dynamodb_lock()
        _patch_sqs_inline_delivery()
        _patch_sfn_validate_definition()
        _patch_sfn_list_versions()
        _patch_sqs_redrive_allow_policy()
        _patch_sqs_retention_check()
        _patch_sqs_delete_race()
        _patch_sfn_stop_execution()
        _patch_s3_delete_marker_dispose()
        _patch_s3_list_object_versions_encoding()
        _patch_thread_exceptions()
        _patch_s3_bucket_policy_conditions()
        _patch_s3_event_versions()
        from .iam_audit import install as record_for_iam_audit  # IAM audit: who signed each request

        record_for_iam_audit()
        from .dynamodb_meter import install as meter_dynamodb  # after the audit: reads its attributions

        meter_dynamodb()
        _patched = True


def _patch_s3_event_versions() -> None:
    """S3's notifications name the version they are about: `versionId` in a versioned bucket
    (absent otherwise) and a `sequencer`, hexadecimal, increasing for the events of one key.
    moto's name neither; these are added as S3 writes them."""
    import itertools

    from moto.s3 import notifications

    moto_event = notifications._get_s3_event
    counter = itertools.count(1)
    lock = threading.Lock()

    def event_as_s3_sends_it(event_name, bucket, key, notification_id):
        event = moto_event(event_name, bucket, key, notification_id)
        with lock:
            sequencer = f"{next(counter):018X}"
        for record in event.get("Records", []):
            obj = record["s3"]["object"]
            version = getattr(key, "version_id", None)
            if getattr(bucket, "is_versioned", False) and version and version != "null":
                obj["versionId"] = version
            obj["sequencer"] = sequencer
        return event

    notifications._get_s3_event = event_as_s3_sends_it


def _patch_s3_bucket_policy_conditions() -> None:
    """moto applies bucket policies to object requests, but fails every statement whose
    condition keys it has no value for: under the buckets' TLS-only Deny (`aws:SecureTransport`
    false) it refuses every GetObject and PutObject. moto serves the requests; bucket policies
    are evaluated, conditions included, by the IAM audit (`iam_audit.py`)."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    FakeBucket.get_permission = lambda self, action, resource: PermissionResult.NEUTRAL


def _patch_lambda_invoke() -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    moto_invoke = LambdaSimpleBackend.invoke

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        function = self.get_function(function_name, qualifier)
        local = _routes.get(function.function_name)
        if local is None:
            return moto_invoke(self, function_name, qualifier, body, headers, response_headers)
        payload = body if body else b"{}"
        if (headers or {}).get("X-Amz-Invocation-Type") == "Event":
            local.invoke_async(payload)
            return b""
        result = local.invoke(payload)
        if not result.ok:
            response_headers["x-amz-function-error"] = result.function_error
        return result.payload

    LambdaSimpleBackend.invoke = invoke


def _patch_dynamodb_lock() -> None:
    from moto.dynamodb.responses import DynamoHandler

    from .dynamodb_meter import DYNAMODB_LOCK

    dynamodb_call = DynamoHandler.call_action

    def call_action(self):
        with DYNAMODB_LOCK:
            return dynamodb_call(self)

    DynamoHandler.call_action = call_action


def _patch_sqs_inline_delivery() -> None:
    from moto.sqs.models import Queue

    class PolledByEventSource(dict):
        """Event-source mappings of a queue; moto's inline delivery sees none of them."""

        def items(self):  # moto's Queue.add_message iterates these to invoke inline
            return iter(())

    queue_init = Queue.__init__

    def init(self, *args, **kwargs):
        queue_init(self, *args, **kwargs)
        self.lambda_event_source_mappings = PolledByEventSource(self.lambda_event_source_mappings)

    Queue.__init__ = init


def _patch_sfn_validate_definition() -> None:
    from moto.core.responses import ActionResult
    from moto.stepfunctions.parser.asl.static_analyser.express_static_analyser import (
        ExpressStaticAnalyser,
    )
    from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser
    from moto.stepfunctions.responses import StepFunctionResponse

    def validate_state_machine_definition(self) -> ActionResult:
        definition = self._get_param("definition")
        analyser = ExpressStaticAnalyser() if self._get_param("type") == "EXPRESS" else StaticAnalyser()
        try:
            analyser.analyse(definition)
        except Exception as error:  # the parser's diagnostics, as AWS reports a schema error
            return ActionResult(
                {
                    "result": "FAIL",
                    "diagnostics": [
                        {
                            "severity": "ERROR",
                            "code": "SCHEMA_VALIDATION_FAILED",
                            "message": f"{type(error).__name__}: {error}"[:1000],
                        }
                    ],
                    "truncated": False,
                }
            )
        return ActionResult({"result": "OK", "diagnostics": [], "truncated": False})

    StepFunctionResponse.validate_state_machine_definition = validate_state_machine_definition


def _patch_sfn_list_versions() -> None:
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def list_state_machine_versions(self) -> ActionResult:
        machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
        versions = sorted(getattr(machine, "versions", {}).values(), key=lambda v: v.version, reverse=True)
        return ActionResult(
            {
                "stateMachineVersions": [
                    {"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for v in versions
                ]
            }
        )

    StepFunctionResponse.list_state_machine_versions = list_state_machine_versions


def _patch_sfn_stop_execution() -> None:
    """moto's StopExecution only asks the execution's worker to stop: the execution stays
    RUNNING until the task in progress returns, and then ends FAILED if that task failed (a
    converter timing out). In AWS it is ABORTED from the moment it is stopped, and stays so.
    The sweep tells an aborted execution (no MarkFailed ran) from a failed one by that status."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

    stop = Execution.stop

    def stop_now(self, stop_date, error, cause):
        stop(self, stop_date=stop_date, error=error, cause=cause)
        if self.exec_status == ExecutionStatus.RUNNING:
            self.exec_status = ExecutionStatus.ABORTED
            self.stop_date = stop_date
            self.error, self.cause = error, cause

    reflect = BaseExecutionWorkerCommunication._reflect_execution_status

    def reflect_unless_aborted(self):
        if self.execution.exec_status == ExecutionStatus.ABORTED:
            return
        reflect(self)

    Execution.stop = stop_now
    BaseExecutionWorkerCommunication._reflect_execution_status = reflect_unless_aborted


def _patch_sqs_delete_race() -> None:
    """moto deletes a message by building a new list of the queue's other messages and
    assigning it, outside the lock its sends take: two deletes at once (four pollers deleting
    what they took) each drop only their own message, and the one assigned last brings the
    other's back, still in flight, for redelivery after the visibility timeout; a message sent
    meanwhile can vanish. SQS does neither. The delete, under the queue's lock (a re-entrant
    condition, which its long polls release while they wait)."""
    from moto.sqs.models import Queue

    delete_message = Queue.delete_message

    def locked_delete_message(self, receipt_handle: str) -> None:
        with self._messages_lock:
            delete_message(self, receipt_handle)

    Queue.delete_message = locked_delete_message


def _patch_sqs_retention_check() -> None:
    """moto checks the retention of each message a receive takes by computing every attribute
    of its queue, approximate counts included, which visit every message: a receive from a
    queue of n messages cost O(n) per message taken. With 2,000 notifications queued that was
    half of the emulator's time. The same check, reading the one attribute it needs."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    def is_message_valid_based_on_retention_period(self, queue_name, message) -> bool:
        retention = self.get_queue(queue_name).message_retention_period
        return retention + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period


def _patch_sqs_redrive_allow_policy() -> None:
    from moto.sqs.models import Queue

    # `_set_attributes` already stores it as `redrive_allow_policy` (the JSON string given).
    Queue.redrive_allow_policy = None
    Queue.BASE_ATTRIBUTES = [*Queue.BASE_ATTRIBUTES, "RedriveAllowPolicy"]
    moto_attributes = Queue.attributes.fget

    def attributes(self):
        result = moto_attributes(self)
        if not self.redrive_allow_policy:
            result.pop("RedriveAllowPolicy", None)
        return result

    Queue.attributes = property(attributes)


def _patch_s3_delete_marker_dispose() -> None:
    from moto.s3.models import FakeDeleteMarker

    if not hasattr(FakeDeleteMarker, "dispose"):
        FakeDeleteMarker.dispose = lambda self, garbage=False: None


def _patch_s3_list_object_versions_encoding() -> None:
    import urllib.parse

    from moto.s3.responses import S3Response

    moto_list = S3Response.list_object_versions

    def list_object_versions(self):
        if self.querystring.get("encoding-type", [None])[0] != "url":
            return moto_list(self)
        serialize = self.serialized

        def serialized(action_result):
            result = action_result.result
            quote = urllib.parse.quote  # what moto's ListObjects(V2) uses (FakeKey.safe_name)
            for item in [*result.get("Versions", []), *result.get("DeleteMarkers", [])]:
                item["Key"] = quote(item["Key"])
            for prefix in result.get("CommonPrefixes", []):
                prefix["Prefix"] = quote(prefix["Prefix"])
            for name in ("Prefix", "Delimiter", "KeyMarker", "NextKeyMarker"):
                if result.get(name):
                    result[name] = quote(result[name])
            result["EncodingType"] = "url"
            return serialize(action_result)

        self.serialized = serialized
        try:
            return moto_list(self)
        finally:
            del self.serialized

    S3Response.list_object_versions = list_object_versions


def _patch_thread_exceptions() -> None:
    """Exceptions that end one of moto's threads go to the emulator's log, not the terminal."""
    import moto

    moto_dir = os.path.dirname(os.path.abspath(moto.__file__)) + os.sep
    default_hook = threading.excepthook

    def hook(args):
        frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
        from_moto = any(os.path.abspath(f.filename).startswith(moto_dir) for f in frames)
        handler = _log_handler
        if not from_moto or handler is None:
            return default_hook(args)
        name = args.thread.name if args.thread else "?"
        logging.getLogger("moto.threads").error(
            "exception in thread %s",
            name,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    threading.excepthook = hook


def log_to(path: str | None) -> None:
    """Sends the emulator's logging (moto, werkzeug, moto's threads) to `path` from now on;
    None: back to Python's defaults (werkzeug's access log off)."""
    global _log_handler
    handler = None
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    with _log_lock:
        old, _log_handler = _log_handler, handler
        for name in EMULATOR_LOGGERS:
            logger = logging.getLogger(name)
            if old is not None:
                logger.removeHandler(old)
            if handler is not None:
                logger.addHandler(handler)
                # Not to the root logger (nor logging's last resort, which prints to stderr).
                logger.propagate = False
                # werkzeug's INFO is an access-log line per request: only its errors.
                logger.setLevel(logging.WARNING if name == "werkzeug" else logging.INFO)
            else:
                logger.propagate = True
                logger.setLevel(logging.ERROR if name == "werkzeug" else logging.NOTSET)
    if old is not None:
        old.close()


class Emulator:
    """moto's server on 127.0.0.1, in this process."""

    def __init__(self, port: int = 0, log_path: str | None = None):
        _patch_moto()
        # Without a log file, werkzeug's access log (a line per request) is off.
        log_to(log_path)
        from moto.server import ThreadedMotoServer

        self.port = port or free_port()
        # moto's Step Functions interpreter calls services back through this port.
        os.environ["MOTO_PORT"] = str(self.port)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # moto's state is per process, not per server: start from nothing.
        self._post("/moto-api/reset", {})
        self._post(
            "/moto-api/config",
            {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
        )

    def log_to(self, path: str | None) -> None:
        """Sends the emulator's own logging to `path` (e.g. the current scenario's workdir)."""
        log_to(path)

    def _post(self, path: str, document: dict) -> None:
        request = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(document).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def client(self, service: str):
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=900),
        )

    def sdk_environment(self) -> dict[str, str]:
        """What a process needs to reach this emulator with the AWS SDK (the test credentials;
        `Pipeline.function_environment` is where a function's own credentials would go)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **CREDENTIALS,
        }

    def route(self, function: LambdaFunction) -> None:
        """Sends moto's invocations of the Lambda function named `function.name` to it."""
        _routes[function.name] = function

    def unroute(self, name: str) -> None:
        _routes.pop(name, None)

    def stop(self) -> None:
        self.server.stop()
