"""What invokes the functions: an SQS event-source mapping and an EventBridge-style schedule.

`SqsEventSource` does what Lambda's SQS poller does for a mapping: `concurrency` pollers
receive up to `batch_size` messages (SQS hands out at most 10 per `ReceiveMessage`; above 10,
a poller keeps receiving until it has `batch_size` or the mapping's batching window has passed
since its first message, as Lambda does), invoke the function synchronously with an `aws:sqs`
event, and delete what succeeded. With `ReportBatchItemFailures` the function's
`batchItemFailures` stay on the queue; a function error keeps the whole batch. Kept messages
come back after the queue's visibility timeout, and the queue's redrive policy moves them to
the dead-letter queue after `maxReceiveCount` receives (moto implements that on receive).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time

from .lambda_runtime import LambdaFunction


class SqsEventSource:
    def __init__(
        self,
        sqs,
        queue_url: str,
        queue_arn: str,
        function: LambdaFunction,
        *,
        batch_size: int = 10,
        batching_window_seconds: float = 0,
        concurrency: int = 2,
        report_batch_item_failures: bool = True,
        region: str = "us-east-1",
        duplicate_every_message: bool = False,
        forget_deletes: int = 0,
    ):
        """`duplicate_every_message` and `forget_deletes` are test knobs for at-least-once
        delivery: the first sends a second copy of every original message back to the queue
        (a notification delivered twice); the second skips the delete of the first N batches
        that succeeded, so they come back after the visibility timeout."""
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function = function
        self.batch_size = batch_size
        self.batching_window_seconds = batching_window_seconds
        self.report_batch_item_failures = report_batch_item_failures
        self.region = region
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.batches = 0
        self.deleted = 0
        self.kept = 0
        self.duplicate_every_message = duplicate_every_message
        self.forget_deletes = forget_deletes
        self.duplicates_sent = 0
        self.deletes_forgotten = 0
        self.threads = [
            threading.Thread(target=self._poll, name=f"sqs-poller-{function.name}-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for thread in self.threads:
            thread.start()

    def _event(self, messages: list[dict]) -> dict:
        records = []
        for m in messages:
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                }
            )
        return {"Records": records}

    def _poll(self) -> None:
        while not self.stopped.is_set():
            try:
                with self.lock:
                    self.in_flight += 1
                try:
                    self._poll_once()
                finally:
                    with self.lock:
                        self.in_flight -= 1
            except Exception as e:  # keep polling, as Lambda does, whatever one batch did
                if not self.stopped.is_set():
                    print(f"sqs poller of {self.function.name}: {e!r}", flush=True)
                    time.sleep(0.5)

    def _receive(self, count: int) -> list[dict]:
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(count, 10),
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return received.get("Messages", [])

    def _gather(self) -> list[dict]:
        """One batch: what one receive returns, or, with a batching window, what arrives
        until `batch_size` messages are in hand or the window has passed since the first."""
        messages = self._receive(self.batch_size)
        if not messages or self.batching_window_seconds <= 0:
            return messages
        deadline = time.monotonic() + self.batching_window_seconds
        while len(messages) < self.batch_size and time.monotonic() < deadline and not self.stopped.is_set():
            messages += self._receive(self.batch_size - len(messages))
        return messages

    def _poll_once(self) -> None:
        messages = self._gather()
        if not messages:
            return
        if self.duplicate_every_message:
            originals = [m for m in messages if "e2e-copy" not in m.get("MessageAttributes", {})]
            for m in originals:
                self.sqs.send_message(
                    QueueUrl=self.queue_url,
                    MessageBody=m["Body"],
                    MessageAttributes={"e2e-copy": {"DataType": "String", "StringValue": "1"}},
                )
            with self.lock:
                self.duplicates_sent += len(originals)
        result = self.function.invoke(self._event(messages))
        keep: set[str] = set()
        if not result.ok:
            keep = {m["MessageId"] for m in messages}
        elif self.report_batch_item_failures:
            try:
                response = json.loads(result.payload or b"null")
                failures = (response or {}).get("batchItemFailures") or []
                keep = {f["itemIdentifier"] for f in failures}
            except (ValueError, AttributeError, KeyError, TypeError):
                # An unreadable response fails the whole batch, as Lambda does.
                keep = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in keep]
        with self.lock:
            forget = bool(done) and self.deletes_forgotten < self.forget_deletes
            if forget:
                self.deletes_forgotten += 1
        if forget:
            with self.lock:
                self.batches += 1
                self.kept += len(messages)
            return
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        with self.lock:
            self.batches += 1
            self.deleted += len(done)
            self.kept += len(messages) - len(done)

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=30)


class Schedule:
    """Invokes `function` with `payload` every `seconds`, one invocation at a time."""

    def __init__(self, function: LambdaFunction, payload: dict, seconds: float):
        self.function = function
        self.payload = payload
        self.seconds = seconds
        self.stopped = threading.Event()
        self.runs = 0
        self.thread = threading.Thread(target=self._run, name=f"schedule-{function.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.seconds):
            try:
                self.function.invoke(self.payload)
            except RuntimeError:
                return
            self.runs += 1

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=120)
