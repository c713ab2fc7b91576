"""moto's server, run in this process, with its Lambda invocations routed to local processes.

moto can execute Step Functions state machines (`execute_state_machine`) including their
`lambda:invoke` and DynamoDB tasks, and delivers S3 notifications to SQS. What it cannot do
here is run a Lambda function: its Docker backend needs Docker, and its Docker-free backend
only echoes. Running moto in-process lets three small patches close that gap:

* the Docker-free backend's `invoke` hands invocations of registered functions to
  `lambda_runtime.LambdaFunction` (real processes behind the Runtime API); other functions
  keep moto's behaviour;
* moto's DynamoDB handles one request at a time. It is not thread-safe: under concurrent
  requests a conditional write could pass its condition on a value another request was
  changing (two builders both claiming one file, which DynamoDB never allows), and a query
  could trip over an item an update was rewriting. DynamoDB makes every single-item write
  atomic; the lock gives moto the same property;
* moto's SQS queues no longer invoke event-source mappings inline (it does so inside the
  `SendMessage` call, once, with no redelivery after a failure); `event_sources.SqsEventSource`
  polls the queue instead, as Lambda's poller does: batches, partial-batch responses,
  redelivery after the visibility timeout, and the queue's redrive policy.

Everything else is moto as its server runs it: the pipeline's binaries reach it over HTTP
through the AWS SDK (`AWS_ENDPOINT_URL`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import urllib.request

from .lambda_runtime import LambdaFunction

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

_routes: dict[str, LambdaFunction] = {}
_patched = False
_patch_lock = threading.Lock()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _patch_moto() -> None:
    """Installs the three patches (once per process)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.dynamodb.responses import DynamoHandler
        from moto.sqs.models import Queue

        dynamodb_call = DynamoHandler.call_action
        dynamodb_lock = threading.Lock()

        def call_action(self):
            with dynamodb_lock:
                return dynamodb_call(self)

        DynamoHandler.call_action = call_action

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

        class PolledByEventSource(dict):
            """Event-source mappings of a queue; moto's inline delivery sees none of them."""

            def items(self):  # moto's Queue.add_message iterates these to invoke inline
                return iter(())

        queue_init = Queue.__init__

        def init(self, *args, **kwargs):
            queue_init(self, *args, **kwargs)
            self.lambda_event_source_mappings = PolledByEventSource(self.lambda_event_source_mappings)

        Queue.__init__ = init
        _patched = True


class Emulator:
    """moto's server on 127.0.0.1, in this process."""

    def __init__(self, port: int = 0):
        _patch_moto()
        from moto.server import ThreadedMotoServer

        self.port = port or free_port()
        # moto's Step Functions interpreter calls services back through this port.
        os.environ["MOTO_PORT"] = str(self.port)
        # One access-log line per request drowns everything else.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # moto's state is per process, not per server: start from nothing.
        self._post("/moto-api/reset", {})
        self._post(
            "/moto-api/config",
            {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
        )

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
        """What a process needs to reach this emulator with the AWS SDK."""
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
