"""Runs Lambda functions as local processes behind the Lambda Runtime API.

A function here is what Lambda runs for a `provided.al2023` function: an executable that polls
the Runtime API (`AWS_LAMBDA_RUNTIME_API`) for events and posts back a response or an error.
Like Lambda, each concurrent invocation gets a sandbox of its own (a process and its own
Runtime API endpoint); an idle sandbox is reused; a sandbox whose process exits or outlives
the function's timeout is thrown away, and the invocation fails the way Lambda reports it
(`Runtime.ExitError`, `Sandbox.Timedout`, `Runtime.InitError` with `FunctionError: Unhandled`).

Processes are not frozen between invocations (Lambda freezes them); nothing in this project
relies on either behaviour.

Everything a process prints goes to the function's log file; lines that are CloudWatch
embedded-metric-format documents are also handed to `on_metrics`, as CloudWatch Logs would
extract them.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

API_PREFIX = "/2018-06-01/runtime"


@dataclass
class Invocation:
    """The outcome of one invocation, as Lambda's Invoke API reports it."""

    request_id: str
    payload: bytes
    # None on success; else Lambda's FunctionError ("Unhandled").
    function_error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.function_error is None


@dataclass
class _Job:
    request_id: str
    payload: bytes
    deadline_ms: int
    done: threading.Event = field(default_factory=threading.Event)
    result: tuple[str, bytes] | None = None  # ("response" | "error", body)


class _Sandbox:
    """One process and the Runtime API endpoint it polls."""

    def __init__(self, function: "LambdaFunction", number: int):
        self.function = function
        self.jobs: "queue.Queue[_Job]" = queue.Queue()
        self.current: _Job | None = None
        self.init_error: bytes | None = None
        self.closed = threading.Event()
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - the base class's name
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    # The process went away (killed on timeout or at shutdown).
                    self.close_connection = True

            def do_GET(self):  # noqa: N802 - the base class's name
                if self.path != f"{API_PREFIX}/invocation/next":
                    return self._reply(404)
                while not sandbox.closed.is_set():
                    try:
                        job = sandbox.jobs.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    sandbox.current = job
                    return self._reply(
                        200,
                        job.payload,
                        {
                            "Lambda-Runtime-Aws-Request-Id": job.request_id,
                            "Lambda-Runtime-Deadline-Ms": str(job.deadline_ms),
                            "Lambda-Runtime-Invoked-Function-Arn": sandbox.function.arn,
                            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                        },
                    )
                self.close_connection = True
                return self._reply(410)

            def do_POST(self):  # noqa: N802 - the base class's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path == f"{API_PREFIX}/init/error":
                    sandbox.init_error = body or b"{}"
                    return self._reply(202, b'{"status":"OK"}')
                prefix = f"{API_PREFIX}/invocation/"
                if not self.path.startswith(prefix):
                    return self._reply(404)
                request_id, _, kind = self.path[len(prefix):].partition("/")
                job = sandbox.current
                if job is None or job.request_id != request_id or kind not in ("response", "error"):
                    return self._reply(400, b'{"errorType":"InvalidRequestID"}')
                job.result = (kind, body)
                sandbox.current = None
                job.done.set()
                return self._reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        address = f"127.0.0.1:{self.server.server_address[1]}"
        env = dict(function.environment)
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": address,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"sandbox-{number}",
            }
        )
        self.process = subprocess.Popen(
            function.command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.reader = threading.Thread(target=self._read_output, daemon=True)
        self.reader.start()

    def _read_output(self):
        for raw in self.process.stdout:
            self.function._log_line(raw)

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, job: _Job, timeout: float) -> Invocation:
        started = time.monotonic()
        self.jobs.put(job)
        while not job.done.wait(0.02):
            if not self.alive():
                # The process may have answered just before it exited.
                if job.done.wait(0.05):
                    break
                if self.init_error is not None:
                    return self.function._failure(job, started, self.init_error, "Runtime.InitError")
                code = self.process.returncode
                return self.function._failure(
                    job,
                    started,
                    json.dumps(
                        {
                            "errorType": "Runtime.ExitError",
                            "errorMessage": f"RequestId: {job.request_id} Error: Runtime exited "
                            f"with error: exit status {code}",
                        }
                    ).encode(),
                    "Runtime.ExitError",
                )
            if time.monotonic() - started > timeout:
                self.close()
                return self.function._failure(
                    job,
                    started,
                    json.dumps(
                        {
                            "errorType": "Sandbox.Timedout",
                            "errorMessage": f"RequestId: {job.request_id} Error: Task timed out "
                            f"after {timeout:.2f} seconds",
                        }
                    ).encode(),
                    "Sandbox.Timedout",
                )
        kind, body = job.result
        seconds = time.monotonic() - started
        if kind == "response":
            return Invocation(job.request_id, body, seconds=seconds)
        try:
            error_type = json.loads(body).get("errorType") or "Unhandled"
        except (ValueError, AttributeError):
            error_type = "Unhandled"
        return Invocation(job.request_id, body, "Unhandled", error_type, seconds)

    def close(self):
        self.closed.set()
        if self.alive():
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(timeout=5)
        if not self.reader.is_alive():
            self.process.stdout.close()
        self.server.shutdown()
        self.server.server_close()


class LambdaFunction:
    """A function: its command, environment and limits, and its pool of sandboxes."""

    def __init__(
        self,
        name: str,
        command: list[str],
        environment: dict[str, str],
        *,
        timeout_seconds: float = 60,
        memory_mb: int = 512,
        max_concurrency: int = 4,
        log_path: str | None = None,
        on_metrics: Callable[[str, dict], None] | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
    ):
        self.name = name
        self.command = command
        self.environment = environment
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.max_concurrency = max_concurrency
        self.arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        self.on_metrics = on_metrics
        self._log = open(log_path, "ab") if log_path else None
        self._log_lock = threading.Lock()
        self._idle: list[_Sandbox] = []
        self._busy = 0
        self._started = 0
        self._lock = threading.Condition()
        self._closed = False
        self.invocations = 0
        self.failures: dict[str, int] = {}

    def _log_line(self, raw: bytes):
        if self._log is not None:
            with self._log_lock:
                self._log.write(raw)
                self._log.flush()
        if self.on_metrics is not None and raw.startswith(b"{") and b'"_aws"' in raw:
            try:
                document = json.loads(raw)
            except ValueError:
                return
            if isinstance(document, dict) and "_aws" in document:
                self.on_metrics(self.name, document)

    def _failure(self, job: _Job, started: float, body: bytes, error_type: str) -> Invocation:
        return Invocation(job.request_id, body, "Unhandled", error_type, time.monotonic() - started)

    def _acquire(self) -> _Sandbox:
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError(f"function {self.name} is closed")
                while self._idle:
                    sandbox = self._idle.pop()
                    if sandbox.alive():
                        self._busy += 1
                        return sandbox
                    sandbox.close()
                if self._busy < self.max_concurrency:
                    self._busy += 1
                    self._started += 1
                    number = self._started
                    break
                self._lock.wait()
        try:
            return _Sandbox(self, number)
        except BaseException:
            with self._lock:
                self._busy -= 1
                self._lock.notify()
            raise

    def _release(self, sandbox: _Sandbox):
        with self._lock:
            self._busy -= 1
            if sandbox.alive() and not sandbox.closed.is_set() and not self._closed:
                self._idle.append(sandbox)
            else:
                sandbox.close()
            self._lock.notify()

    def invoke(self, payload: bytes | str | dict) -> Invocation:
        """Invokes synchronously (RequestResponse) and returns the outcome."""
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        request_id = str(uuid.uuid4())
        deadline_ms = int((time.time() + self.timeout_seconds) * 1000)
        job = _Job(request_id, payload, deadline_ms)
        sandbox = self._acquire()
        try:
            result = sandbox.run(job, self.timeout_seconds)
        finally:
            self._release(sandbox)
        with self._lock:
            self.invocations += 1
            if not result.ok:
                self.failures[result.error_type] = self.failures.get(result.error_type, 0) + 1
        return result

    def invoke_async(self, payload: bytes | str | dict) -> threading.Thread:
        """Invokes as an `Event` invocation (in the background, outcome only logged)."""
        thread = threading.Thread(target=self.invoke, args=(payload,), daemon=True)
        thread.start()
        return thread

    def sandboxes(self) -> int:
        with self._lock:
            return self._busy + len(self._idle)

    def close(self):
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._lock.notify_all()
        for sandbox in idle:
            sandbox.close()
        if self._log is not None:
            with self._log_lock:
                self._log.close()
                self._log = None


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """A process environment with only what Lambda would set plus `extra` (and PATH/HOME)."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "TMPDIR") if key in os.environ}
    env.update(extra)
    return env
