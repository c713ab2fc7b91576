"""A Lambda function for the bridge's own tests: a Runtime API client in plain Python.

The event says what to do: {"do": "echo" | "error" | "crash" | "sleep" | "metric" | "batch",
...}. With INIT_FAIL=1 in its environment it reports an init error and exits, as a function
whose configuration is invalid does.
"""

import json
import os
import sys
import time
import urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"


def post(path, document):
    request = urllib.request.Request(
        API + path, data=json.dumps(document).encode(), method="POST"
    )
    urllib.request.urlopen(request).read()


if os.environ.get("INIT_FAIL"):
    post("/init/error", {"errorType": "Config", "errorMessage": "bad configuration"})
    sys.exit(1)

served = 0
while True:
    with urllib.request.urlopen(API + "/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        deadline = int(response.headers["Lambda-Runtime-Deadline-Ms"])
        event = json.loads(response.read())
    served += 1
    do = event.get("do")
    if do == "crash":
        os._exit(3)
    if do == "sleep":
        time.sleep(event["seconds"])
    if do == "metric":
        print(json.dumps({
            "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [
                {"Namespace": "Test", "Dimensions": [["Function"]],
                 "Metrics": [{"Name": "Things", "Unit": "Count"}]}]},
            "Function": "f", "Things": event["value"],
        }), flush=True)
    if do == "error":
        post(f"/invocation/{request_id}/error", {"errorType": event["type"], "errorMessage": "asked to fail"})
        continue
    if do == "batch":
        # An SQS batch: fail the records whose body is "fail".
        failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "fail"]
        post(f"/invocation/{request_id}/response", {"batchItemFailures": failures})
        continue
    post(f"/invocation/{request_id}/response", {
        "event": event, "pid": os.getpid(), "served": served,
        "deadline_in_future": deadline > time.time() * 1000,
        "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
    })
