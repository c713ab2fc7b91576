"""Tests of the local-AWS bridge: the Runtime API sandboxes, moto's routed Lambda invocations,
Step Functions calling a routed function, the SQS event source, the moto patches Terraform
needs, and where the emulator logs.

Run with `python -m unittest discover -s tools/local_aws/tests -t .` from the repository root.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import threading
import time
import unittest
import zipfile

from tools.local_aws import deploy
from tools.local_aws.emulator import Emulator, log_to
from tools.local_aws.event_sources import SqsEventSource
from tools.local_aws.lambda_runtime import LambdaFunction, clean_environment
from tools.local_aws.pipeline import _ReceiveWithVisibility

FUNCTION = [sys.executable, os.path.join(os.path.dirname(__file__), "function.py")]


def function(name="f", env=None, **kwargs) -> LambdaFunction:
    kwargs.setdefault("timeout_seconds", 20)
    return LambdaFunction(name, FUNCTION, clean_environment(env or {}), **kwargs)


class RuntimeApiTest(unittest.TestCase):
    def test_a_response_comes_back_and_the_sandbox_is_reused(self):
        f = function()
        try:
            first = f.invoke({"do": "echo", "n": 1})
            second = f.invoke({"do": "echo", "n": 2})
        finally:
            f.close()
        self.assertTrue(first.ok and second.ok)
        a, b = json.loads(first.payload), json.loads(second.payload)
        self.assertEqual(a["event"], {"do": "echo", "n": 1})
        self.assertEqual(b["event"]["n"], 2)
        self.assertEqual(a["pid"], b["pid"], "an idle sandbox is reused")
        self.assertEqual(b["served"], 2)
        self.assertTrue(a["deadline_in_future"])
        self.assertEqual(a["function_name"], "f")

    def test_a_function_error_is_unhandled_with_its_type(self):
        f = function()
        try:
            result = f.invoke({"do": "error", "type": "ConverterRetryable"})
        finally:
            f.close()
        self.assertFalse(result.ok)
        self.assertEqual(result.function_error, "Unhandled")
        self.assertEqual(result.error_type, "ConverterRetryable")
        self.assertEqual(json.loads(result.payload)["errorType"], "ConverterRetryable")
        self.assertEqual(f.failures, {"ConverterRetryable": 1})

    def test_a_crash_is_an_exit_error_and_the_next_invocation_gets_a_new_sandbox(self):
        f = function()
        try:
            before = json.loads(f.invoke({"do": "echo"}).payload)["pid"]
            crashed = f.invoke({"do": "crash"})
            after = json.loads(f.invoke({"do": "echo"}).payload)["pid"]
        finally:
            f.close()
        self.assertEqual(crashed.error_type, "Runtime.ExitError")
        self.assertIn("exit status 3", json.loads(crashed.payload)["errorMessage"])
        self.assertNotEqual(before, after)

    def test_a_slow_invocation_times_out_and_its_process_is_killed(self):
        f = function(timeout_seconds=1)
        try:
            result = f.invoke({"do": "sleep", "seconds": 30})
            self.assertEqual(result.error_type, "Sandbox.Timedout")
            self.assertLess(result.seconds, 10)
            self.assertTrue(f.invoke({"do": "echo"}).ok)
        finally:
            f.close()

    def test_an_init_error_is_reported(self):
        f = function(env={"INIT_FAIL": "1"})
        try:
            result = f.invoke({"do": "echo"})
        finally:
            f.close()
        self.assertEqual(result.error_type, "Runtime.InitError")
        self.assertEqual(json.loads(result.payload)["errorType"], "Config")

    def test_concurrency_is_capped_by_the_pool(self):
        f = function(max_concurrency=2)
        results = []
        try:
            threads = [
                threading.Thread(target=lambda: results.append(f.invoke({"do": "sleep", "seconds": 0.5})))
                for _ in range(5)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            pids = {json.loads(r.payload)["pid"] for r in results}
        finally:
            f.close()
        self.assertEqual(len(results), 5)
        self.assertTrue(all(r.ok for r in results))
        self.assertLessEqual(len(pids), 2)

    def test_embedded_metric_lines_reach_the_metrics_hook_and_the_log(self):
        seen = []
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "f.log")
            f = function(log_path=log, on_metrics=lambda name, doc: seen.append((name, doc["Things"])))
            try:
                f.invoke({"do": "metric", "value": 7})
            finally:
                f.close()
            with open(log, "rb") as handle:
                self.assertIn(b'"Things": 7', handle.read())
        self.assertEqual(seen, [("f", 7)])


class EmulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.aws = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.aws.stop()

    def create_function(self, name: str, timeout_seconds: int = 20) -> LambdaFunction:
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as z:
            z.writestr("bootstrap", "")
        role = self.aws.client("iam").create_role(
            RoleName=f"{name}-role", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        self.aws.client("lambda").create_function(
            FunctionName=name, Runtime="provided.al2023", Role=role, Handler="bootstrap",
            Code={"ZipFile": package.getvalue()},
        )
        f = function(name, timeout_seconds=timeout_seconds)
        self.aws.route(f)
        self.addCleanup(f.close)
        self.addCleanup(self.aws.unroute, name)
        return f

    def test_lambda_invoke_through_moto_reaches_the_process(self):
        self.create_function("routed")
        client = self.aws.client("lambda")
        ok = client.invoke(FunctionName="routed", Payload=json.dumps({"do": "echo", "x": 1}))
        self.assertNotIn("FunctionError", ok)
        self.assertEqual(json.loads(ok["Payload"].read())["event"]["x"], 1)
        failed = client.invoke(FunctionName="routed", Payload=json.dumps({"do": "error", "type": "Boom"}))
        self.assertEqual(failed["FunctionError"], "Unhandled")
        self.assertEqual(json.loads(failed["Payload"].read())["errorType"], "Boom")

    def test_a_state_machine_task_invokes_the_routed_function(self):
        f = self.create_function("from-sfn")
        sfn = self.aws.client("stepfunctions")
        definition = {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": f.arn, "Payload.$": "$"},
                    "OutputPath": "$.Payload",
                    "End": True,
                }
            },
        }
        arn = sfn.create_state_machine(
            name="bridge-test", definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        execution = sfn.start_execution(
            stateMachineArn=arn, name="run-1", input=json.dumps({"do": "echo", "y": 2})
        )["executionArn"]
        for _ in range(200):
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                break
            time.sleep(0.1)
        self.assertEqual(described["status"], "SUCCEEDED")
        self.assertEqual(json.loads(described["output"])["event"]["y"], 2)
        self.assertEqual(f.invocations, 1)

    def test_a_stopped_execution_is_aborted_at_once_and_stays_aborted(self):
        # StopExecution while a task runs: in AWS the execution is ABORTED from that moment,
        # whatever the task then returns (here: the function times out).
        f = self.create_function("stopped", timeout_seconds=3)
        sfn = self.aws.client("stepfunctions")
        definition = {
            "StartAt": "Call",
            "States": {
                "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                         "Parameters": {"FunctionName": f.arn, "Payload.$": "$"}, "End": True}
            },
        }
        arn = sfn.create_state_machine(
            name="stopped-test", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        execution = sfn.start_execution(
            stateMachineArn=arn, name="run-1", input=json.dumps({"do": "sleep", "seconds": 10})
        )["executionArn"]
        for _ in range(100):  # until the task is under way
            events = sfn.get_execution_history(executionArn=execution)["events"]
            if any(e["type"] == "TaskScheduled" for e in events):
                break
            time.sleep(0.1)
        sfn.stop_execution(executionArn=execution, error="Operator", cause="stopped by the test")
        self.assertEqual(sfn.describe_execution(executionArn=execution)["status"], "ABORTED")
        for _ in range(100):  # the task's timeout ends the worker
            if f.failures:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        self.assertEqual(f.failures, {"Sandbox.Timedout": 1})
        self.assertEqual(sfn.describe_execution(executionArn=execution)["status"], "ABORTED")

    def test_the_sqs_event_source_deletes_successes_and_redrives_failures(self):
        f = self.create_function("consumer")
        sqs = self.aws.client("sqs")
        dlq = sqs.create_queue(QueueName="bridge-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName="bridge-main",
            Attributes={
                "VisibilityTimeout": "1",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
            },
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # moto would invoke a mapping inline, once; the patched queue leaves that to the poller.
        self.aws.client("lambda").create_event_source_mapping(
            EventSourceArn=arn, FunctionName="consumer", FunctionResponseTypes=["ReportBatchItemFailures"]
        )
        for body in ("ok-1", "fail", "ok-2"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        time.sleep(0.5)
        self.assertEqual(f.invocations, 0, "moto must not deliver inline")

        def depth(queue):
            a = sqs.get_queue_attributes(
                QueueUrl=queue,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])

        original_event = SqsEventSource._event

        def batch_event(source, messages):
            event = original_event(source, messages)
            event["do"] = "batch"
            return event

        SqsEventSource._event = batch_event
        self.addCleanup(setattr, SqsEventSource, "_event", original_event)
        source = SqsEventSource(sqs, url, arn, f, batch_size=10, concurrency=1)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (depth(url) or not depth(dlq)):
                time.sleep(0.2)
        finally:
            source.stop()
        self.assertEqual(depth(url), 0)
        moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
        self.assertEqual([m["Body"] for m in moved], ["fail"])
        self.assertEqual(source.deleted, 2)
        self.assertGreaterEqual(source.kept, 2, "the failure was received twice before the redrive")

    def test_a_batching_window_gathers_more_than_one_receive_into_one_invocation(self):
        f = self.create_function("gatherer")
        sqs = self.aws.client("sqs")
        url = sqs.create_queue(QueueName="bridge-window")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.aws.client("lambda").create_event_source_mapping(
            EventSourceArn=arn, FunctionName="gatherer", BatchSize=40, MaximumBatchingWindowInSeconds=2
        )
        for n in range(33):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        sizes = []
        original_event = SqsEventSource._event

        def echo_event(source, messages):
            sizes.append(len(messages))
            return {"do": "echo"}

        SqsEventSource._event = echo_event
        self.addCleanup(setattr, SqsEventSource, "_event", original_event)
        # 33 messages, fewer than the batch size: one invocation once the window has passed,
        # not four of at most 10 (what one ReceiveMessage returns).
        source = SqsEventSource(sqs, url, arn, f, batch_size=40, batching_window_seconds=2, concurrency=1)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and source.deleted < 33:
                time.sleep(0.2)
        finally:
            source.stop()
        self.assertEqual(sizes, [33])
        self.assertEqual((f.invocations, source.deleted), (1, 33))

class TerraformGapsTest(unittest.TestCase):
    """What the Terraform AWS provider reads back, and moto 5.2.5 alone does not answer."""

    @classmethod
    def setUpClass(cls):
        cls.aws = Emulator()

    @classmethod
    def tearDownClass(cls):
        cls.aws.stop()

    def test_validate_state_machine_definition_runs_the_asl_parser(self):
        sfn = self.aws.client("stepfunctions")
        ok = sfn.validate_state_machine_definition(
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
        )
        self.assertEqual((ok["result"], ok["diagnostics"]), ("OK", []))
        bad = sfn.validate_state_machine_definition(
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Bogus"}}})
        )
        self.assertEqual(bad["result"], "FAIL")
        self.assertEqual(bad["diagnostics"][0]["code"], "SCHEMA_VALIDATION_FAILED")
        self.assertIn("Bogus", bad["diagnostics"][0]["message"])

    def test_state_machine_versions_are_listed(self):
        sfn = self.aws.client("stepfunctions")
        definition = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
        role = "arn:aws:iam::123456789012:role/sfn"
        plain = sfn.create_state_machine(name="unversioned", definition=definition, roleArn=role)
        self.assertEqual(sfn.list_state_machine_versions(stateMachineArn=plain["stateMachineArn"])["stateMachineVersions"], [])
        published = sfn.create_state_machine(name="versioned", definition=definition, roleArn=role, publish=True)
        versions = sfn.list_state_machine_versions(stateMachineArn=published["stateMachineArn"])["stateMachineVersions"]
        self.assertEqual([v["stateMachineVersionArn"] for v in versions], [published["stateMachineArn"] + ":1"])

    def test_a_redrive_allow_policy_is_read_back(self):
        sqs = self.aws.client("sqs")
        dlq = sqs.create_queue(QueueName="allow-dlq")["QueueUrl"]
        other = sqs.create_queue(QueueName="allow-other")["QueueUrl"]
        policy = json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": ["arn:aws:sqs:us-east-1:123456789012:src"]})
        sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": policy})
        named = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["RedriveAllowPolicy"])["Attributes"]
        self.assertEqual(named, {"RedriveAllowPolicy": policy})
        everything = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
        self.assertEqual(everything["RedriveAllowPolicy"], policy)
        self.assertNotIn("RedriveAllowPolicy", sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["All"])["Attributes"])

    def test_a_message_past_its_retention_is_not_received(self):
        from moto.sqs.models import sqs_backends

        sqs = self.aws.client("sqs")
        backend = sqs_backends["123456789012"]["us-east-1"]
        for name, age in (("retained", 59), ("expired", 61)):
            url = sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=name)
            (message,) = backend.get_queue(name)._messages
            message.sent_timestamp -= age * 1000
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            self.assertEqual([m["Body"] for m in received], [name] if name == "retained" else [])

    def test_concurrent_deletes_and_sends_lose_nothing(self):
        # Four pollers deleting what they received while notifications keep arriving: in SQS
        # every delete takes and every sent message stays until deleted.
        from concurrent.futures import ThreadPoolExecutor

        sqs = self.aws.client("sqs")
        url = sqs.create_queue(QueueName="busy", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
        for start in range(0, 500, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)])
        received = []
        while len(received) < 500:
            received += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        chunks = [received[i : i + 10] for i in range(0, len(received), 10)]

        def delete(chunk):
            result = self.aws.client("sqs").delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            )
            return len(result.get("Failed", []))

        def send(n):
            self.aws.client("sqs").send_message(QueueUrl=url, MessageBody=f"late{n}")
            return 0

        with ThreadPoolExecutor(max_workers=8) as pool:
            work = [pool.submit(delete, chunk) for chunk in chunks]
            work += [pool.submit(send, n) for n in range(200)]
            failed = sum(w.result() for w in work)
        self.assertEqual(failed, 0)
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        self.assertEqual((attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]), ("200", "0"))

    def test_a_bucket_with_delete_markers_empties_after_versioning_is_suspended(self):
        # What terraform destroy does to a force_destroy bucket: versioning off, then empty it.
        s3 = self.aws.client("s3")
        s3.create_bucket(Bucket="emptied")
        s3.put_bucket_versioning(Bucket="emptied", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="emptied", Key="gone.json", Body=b"1")
        s3.delete_object(Bucket="emptied", Key="gone.json")
        s3.put_bucket_versioning(Bucket="emptied", VersioningConfiguration={"Status": "Suspended"})
        listed = s3.list_object_versions(Bucket="emptied")
        versions = listed.get("Versions", []) + listed.get("DeleteMarkers", [])
        result = s3.delete_objects(
            Bucket="emptied",
            Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]},
        )
        self.assertNotIn("Errors", result)
        s3.delete_bucket(Bucket="emptied")

    def test_listed_versions_are_url_encoded_when_asked(self):
        s3 = self.aws.client("s3")
        s3.create_bucket(Bucket="encoded")
        s3.put_bucket_versioning(Bucket="encoded", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="encoded", Key="dt=2026-11-20/a+b ü.json", Body=b"1")
        s3.delete_object(Bucket="encoded", Key="dt=2026-11-20/a+b ü.json")
        # Asked explicitly, botocore leaves the keys as the server sent them.
        listed = s3.list_object_versions(Bucket="encoded", EncodingType="url")
        encoded = "dt%3D2026-11-20/a%2Bb%20%C3%BC.json"
        self.assertEqual(listed.get("EncodingType"), "url")
        self.assertEqual([v["Key"] for v in listed["Versions"]], [encoded])
        self.assertEqual([m["Key"] for m in listed["DeleteMarkers"]], [encoded])
        plain = s3.list_object_versions(Bucket="encoded")
        self.assertEqual([v["Key"] for v in plain["Versions"]], ["dt=2026-11-20/a+b ü.json"])

    def test_a_receive_can_ask_for_a_shorter_visibility(self):
        sqs = self.aws.client("sqs")
        url = sqs.create_queue(QueueName="visibility", Attributes={"VisibilityTimeout": "360"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        short = _ReceiveWithVisibility(sqs, 1)
        self.assertEqual(len(short.receive_message(QueueUrl=url)["Messages"]), 1)
        time.sleep(1.5)
        self.assertEqual(len(short.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]), 1)


class EmulatorLoggingTest(unittest.TestCase):
    def test_moto_logging_and_moto_thread_exceptions_go_to_the_log_file(self):
        import logging

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "emulator.log")
            aws = Emulator(log_path=path)
            try:
                logging.getLogger("moto.stepfunctions.test").error("an error of moto's own")
                # A thread that dies inside moto's code, as an interpreter thread does.
                from moto.core.utils import underscores_to_camelcase

                thread = threading.Thread(target=underscores_to_camelcase, args=(None,), name="moto-like")
                stderr, sys.stderr = sys.stderr, io.StringIO()
                try:
                    thread.start()
                    thread.join()
                    printed = sys.stderr.getvalue()
                finally:
                    sys.stderr = stderr
            finally:
                aws.stop()
                log_to(None)
            with open(path) as f:
                logged = f.read()
        self.assertIn("an error of moto's own", logged)
        self.assertIn("exception in thread moto-like", logged)
        self.assertEqual(printed, "")


class ProviderMirrorTest(unittest.TestCase):
    def test_an_explicit_mirror_must_hold_the_provider(self):
        with tempfile.TemporaryDirectory() as tmp:
            old = os.environ.get(deploy.MIRROR_ENV)
            os.environ[deploy.MIRROR_ENV] = tmp
            try:
                self.assertIsNone(deploy.find_provider_mirror())
                import platform

                arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
                directory = os.path.join(tmp, deploy.PROVIDER_PATH, "5.100.0", f"linux_{arch}")
                os.makedirs(directory)
                open(os.path.join(directory, "terraform-provider-aws_v5.100.0_x5"), "w").close()
                self.assertEqual(deploy.find_provider_mirror(), tmp)
            finally:
                if old is None:
                    os.environ.pop(deploy.MIRROR_ENV)
                else:
                    os.environ[deploy.MIRROR_ENV] = old


if __name__ == "__main__":
    unittest.main()
