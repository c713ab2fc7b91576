"""The end-to-end suite: the deployed pipeline on a local AWS, with faults; nothing lost.

usage: python tests/e2e/run.py --binaries DIR [--only NAME ...] [--summary tests/RELIABILITY.md]

The pipelines are what `terraform apply` creates: the suite starts moto in-process
(`tools.local_aws`), applies tests/terraform/local to it -- the repository's root module,
terraform/, once per scenario (each scenario's Terraform variables; one apply for all of them,
as an apply takes about two minutes whatever its size) -- runs each scenario on its own
pipeline, and `terraform destroy`s everything at the end. It needs terraform and a filesystem
mirror of the hashicorp/aws provider (`tools/local_aws/deploy.py` finds it); without them it
prints one `SKIPPED: ...` line and fails: there is no pipeline to test but the one Terraform
creates.

Each scenario runs the binaries in DIR (built with the `fault-injection` feature) as the
Lambda functions Terraform created (their configuration's environment, plus the scenario's
test-only knobs), uploads generated NDJSON whose every line is identifiable, waits until the
pipeline settles, then checks the outcome against the inputs with independent readers
(pyarrow for each Parquet object, DuckDB over all of them):

* every valid input line is in the Parquet output exactly once, and nothing else is;
* every bad line is in the error output exactly once, with its file and line number;
* the completed manifests' results reconcile with both (rows written, rows rejected);
* every input is one tracked version, converted by exactly one completed manifest (its JSON
  lists it), or given up (superseded, or failed MAX_ATTEMPTS times: poison input only); a
  released manifest's other versions are in a later completed manifest; every manifest is final
  (`completed` or `released`) and no open entry is left; every output object is SSE-KMS;
* the dead-letter queue holds nothing, and the pipeline's metrics say what happened.

Fault scenarios inject one fault at a time per rule (an error response, or a process crash
right after a successful call) at every AWS call the two functions make; each rule must
actually fire. Another hangs converters past their timeout (a `stall` rule) while an operator
aborts one execution. The concurrency scenario runs with deliveries and manifests as deployed
and counts every billable request per version (docs/COST.md). The summary goes to stdout and
to `--summary`; Terraform's output goes to WORKDIR/terraform/*.log and the emulator's own
logging to WORKDIR/emulator.log.

Scenarios run two at a time (`--lanes`), each on its own pipeline (its own buckets, queues,
table and functions): most of a scenario is waiting (visibility timeouts, the converter's
timeout before a failed manifest is released), not work. A scenario that measures load
(`alone`) runs by itself after the others.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools import simulation_report  # noqa: E402  the deterministic simulation's figures
from tools.local_aws import dynamodb_meter, iam_audit  # noqa: E402  IAM audit, DynamoDB cost
from tools.local_aws.deploy import (  # noqa: E402
    Deployment,
    PipelineVariables,
    TerraformFailed,
    TerraformUnavailable,
)
from tools.local_aws.emulator import Emulator  # noqa: E402
from tools.local_aws.pipeline import (  # noqa: E402
    MANIFEST_FINAL,
    Binaries,
    LocalSettings,
    Pipeline,
    manifest_result,
    marker_given_up,
    marker_version,
)

# --- Inputs -----------------------------------------------------------------------------------


@dataclass
class InputFile:
    key: str
    body: bytes
    # Ids of the valid lines, in order.
    ids: list[str]
    # (line number, raw text) of each line that must be rejected.
    bad: list[tuple[int, str]]
    # "processed" for every normal file; "failed" for a file that cannot be read at all.
    outcome: str = "processed"
    # Deleted after its notification went out: "object" (a plain delete: in the versioned
    # input bucket a delete marker, the version stays and is converted) or "version" (the
    # version itself, for good: it is superseded).
    delete_after_upload: str = ""
    # The version S3 gave this upload (set by `upload`; None in an unversioned bucket). Several
    # inputs may share a key: each is one version of it, uploaded in the order listed.
    version: str | None = None


def ndjson_file(key: str, rows: int, bad_every: int = 0, seed: int = 0, gzip_it: bool = False,
                tag: str = "") -> InputFile:
    """Clickstream-like records: nested objects, lists, timestamps, an id per line (`tag` tells
    apart the ids of two versions of one key)."""
    rng = random.Random(f"{key}/{seed}")
    lines, ids, bad = [], [], []
    for n in range(1, rows + 1):
        if bad_every and n % bad_every == 0:
            raw = '{"id": "bad-%s-%d", "user": {"name": "unterminated' % (rng.randrange(1 << 30), n)
            lines.append(raw)
            bad.append((n, raw))
            continue
        record_id = f"{key}#{tag}{n}"
        ids.append(record_id)
        lines.append(
            json.dumps(
                {
                    "id": record_id,
                    "ts": f"2026-11-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
                    "user": {"uid": rng.randrange(10**6), "name": rng.choice(["ana", "bo", "chloé", "dž"])},
                    "tags": [rng.choice(["a", "b", "c"]) for _ in range(rng.randrange(3))],
                    "amount": round(rng.random() * 100, 3),
                },
                ensure_ascii=False,
            )
        )
    body = ("\n".join(lines) + "\n").encode()
    if gzip_it:
        body = gzip.compress(body, mtime=0)
    return InputFile(key, body, ids, bad)


# --- Checks -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    files: int = 0
    rows_expected: int = 0
    rows_written: int = 0
    rejects_expected: int = 0
    rejects_written: int = 0
    rows_lost: int = 0
    duplicate_rows: int = 0
    manifests: int = 0
    executions: int = 0
    faults_planned: int = 0
    faults_injected: int = 0
    duplicates_delivered: int = 0
    redeliveries: int = 0
    failed_files: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Error records that are no input line (a whole object rejected, e.g. a 0-byte one).
    whole_object_rejects: list[dict] = field(default_factory=list)
    iam: object = None  # IAM audit: the scenario's verdicts (iam_audit.Report)
    # DynamoDB consumption by party (dynamodb_meter.Usage), and the versions tracked.
    dynamodb: dict = field(default_factory=dict)
    versions: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check(pipeline: Pipeline, inputs: list[InputFile], outcome: Outcome, workdir: str) -> None:
    import duckdb
    import pyarrow.parquet as pq

    problems = outcome.problems
    ledger = pipeline.ledger()
    outcome.files = len(inputs)
    outcome.manifests = len(ledger.manifests)
    outcome.executions = len(pipeline.executions())

    # Versions: every upload tracked as exactly one version, none else.
    markers: dict[str, list[dict]] = collections.defaultdict(list)
    for v in ledger.markers:
        bucket, key, _ = marker_version(v)
        markers[key if bucket == pipeline.input_bucket else f"s3://{bucket}/{key}"].append(v)
    uploads = collections.Counter(f.key for f in inputs)
    for key, count in uploads.items():
        if key not in markers:
            problems.append(f"{key}: never tracked")
        elif len(markers[key]) != count:
            problems.append(f"{key}: {len(markers[key])} versions tracked for {count} uploads")
    extra = set(markers) - set(uploads)
    if extra:
        problems.append(f"tracked objects that were never uploaded: {sorted(extra)[:5]}")

    # Manifests: all final, no open entry left.
    not_final = [m["status"] for m in ledger.manifests.values() if m["status"] not in MANIFEST_FINAL]
    if not_final:
        problems.append(f"{len(not_final)} manifests not final: {not_final}")
    if ledger.open_entries:
        problems.append(f"{len(ledger.open_entries)} open-manifest entries left")

    # Each version converted by exactly one completed manifest (its JSON lists it), or given up:
    # superseded, or failed MAX_ATTEMPTS times -- and then by no completed manifest.
    completed = ledger.completed()
    converted = pipeline.converted(ledger)
    doubled = [version for version, count in converted.items() if count > 1]
    if doubled:
        problems.append(f"{len(doubled)} versions in more than one completed manifest, e.g. {doubled[:3]}")
    for f in inputs:
        # This upload's own marker where S3 gave it a version id; else each of the key's.
        mine = markers.get(f.key, [])
        if f.version is not None:
            mine = [v for v in mine if marker_version(v)[2] == f.version]
            if not mine and f.key in markers:
                problems.append(f"{f.key}: version {f.version} never tracked")
        for v in mine:
            version = marker_version(v)
            given_up = marker_given_up(v, pipeline.max_attempts)
            if f.outcome == "processed" and not converted[version]:
                why = v.get("superseded") or v.get("last_error") or "no completed manifest holds it"
                problems.append(f"{f.key}: not converted ({why})")
            elif f.outcome == "failed" and not given_up:
                problems.append(f"{f.key}: expected to be given up, but is {'converted' if converted[version] else 'live'}")
            elif given_up and converted[version] and not (v.get("superseded") and converted[version] == 1):
                # A superseded version is listed by the one manifest that found it gone (and
                # recorded it in its error output, checked below); any other listing converted it.
                problems.append(f"{f.key}: given up and converted too")
    outcome.failed_files = sum(1 for v in ledger.markers if marker_given_up(v, pipeline.max_attempts))

    # A released manifest's versions that were not given up are in a later completed manifest.
    for m_id, m in ledger.manifests.items():
        if m["status"] != "released":
            continue
        for version in pipeline.manifest_versions(m):
            v = next((v for v in ledger.markers if marker_version(v) == version), None)
            if v is not None and not marker_given_up(v, pipeline.max_attempts) and not converted[version]:
                problems.append(f"released manifest {m_id}: {version[1]} converted by no later manifest")

    # The output: every object SSE-KMS; Parquet rows by id (pyarrow per object, DuckDB over all).
    out_dir = os.path.join(workdir, "output")
    parquet_paths, error_paths = [], []
    for obj in pipeline.list_keys(pipeline.output_bucket):
        path = os.path.join(out_dir, obj["Key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        head = pipeline.download(pipeline.output_bucket, obj["Key"], path)
        if head.get("ServerSideEncryption") != "aws:kms" or head.get("SSEKMSKeyId") not in (
            pipeline.kms_key_arn,
            pipeline.kms_key_arn.split("/")[-1],
        ):
            problems.append(
                f"{obj['Key']}: encryption {head.get('ServerSideEncryption')} / {head.get('SSEKMSKeyId')}"
            )
        if obj["Key"].endswith(".parquet"):
            parquet_paths.append(path)
        elif obj["Key"].endswith(".errors.ndjson.gz"):
            error_paths.append(path)
        else:
            problems.append(f"unexpected output object {obj['Key']}")
    expected_ids = collections.Counter(i for f in inputs for i in f.ids)
    seen_ids: collections.Counter = collections.Counter()
    for path in parquet_paths:
        seen_ids.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    outcome.rows_expected = sum(expected_ids.values())
    outcome.rows_written = sum(seen_ids.values())
    outcome.rows_lost = sum(1 for i in expected_ids if i not in seen_ids)
    outcome.duplicate_rows = sum(n - 1 for n in seen_ids.values() if n > 1)
    unexpected = [i for i in seen_ids if i not in expected_ids]
    if outcome.rows_lost:
        problems.append(f"{outcome.rows_lost} rows lost, e.g. {[i for i in expected_ids if i not in seen_ids][:3]}")
    if outcome.duplicate_rows:
        problems.append(f"{outcome.duplicate_rows} duplicate rows, e.g. {[i for i, n in seen_ids.items() if n > 1][:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} rows that no input holds, e.g. {unexpected[:3]}")
    if parquet_paths:
        with duckdb.connect() as db:
            total, distinct = db.execute(
                "SELECT count(*), count(DISTINCT id) FROM read_parquet(?, union_by_name = true)",
                [parquet_paths],
            ).fetchone()
        if (total, distinct) != (outcome.rows_written, len(seen_ids)):
            problems.append(f"DuckDB reads {total} rows / {distinct} ids, pyarrow {outcome.rows_written} / {len(seen_ids)}")
    elif expected_ids:
        problems.append("no Parquet output at all")

    # The error output: each bad line once, naming its file and line.
    expected_bad = collections.Counter(
        (f"s3://{pipeline.input_bucket}/{f.key}", n, raw) for f in inputs for n, raw in f.bad
    )
    seen_bad: collections.Counter = collections.Counter()
    other_rejects = []
    for path in error_paths:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                key = (record.get("source"), record.get("line"), record.get("raw"))
                if key in expected_bad:
                    seen_bad[key] += 1
                else:
                    other_rejects.append(record)
    outcome.rejects_expected = sum(expected_bad.values())
    # A version superseded inside a completed manifest has its `superseded` record there.
    superseded_records = collections.Counter(
        r.get("source") for r in other_rejects if r.get("kind") == "superseded"
    )
    for v in ledger.markers:
        bucket, key, _ = marker_version(v)
        if v.get("superseded") and converted[marker_version(v)]:
            if superseded_records[f"s3://{bucket}/{key}"] < 1:
                problems.append(f"{key}: superseded in a completed manifest, but not in its error output")
    outcome.rejects_written = sum(seen_bad.values()) + len(other_rejects)
    missing_bad = [k for k in expected_bad if k not in seen_bad]
    if missing_bad:
        problems.append(f"{len(missing_bad)} bad lines missing from the error output, e.g. {missing_bad[:2]}")
    doubled_bad = [k for k, n in seen_bad.items() if n > 1]
    if doubled_bad:
        problems.append(f"{len(doubled_bad)} bad lines in the error output more than once")
    outcome.whole_object_rejects = other_rejects
    outcome.notes.extend(
        f"rejected whole: {r.get('source')} ({r.get('kind')}: {r.get('reason')})" for r in other_rejects[:5]
    )

    # The completed manifests' results reconcile with what is in the bucket.
    results = [manifest_result(m) for m in completed.values()]
    written = sum(int(r.get("rows_written", 0)) for r in results)
    rejected = sum(int(r.get("rows_rejected", 0)) for r in results)
    if written != outcome.rows_written:
        problems.append(f"completed manifests say {written} rows written, Parquet holds {outcome.rows_written}")
    if rejected != outcome.rejects_written:
        problems.append(f"completed manifests say {rejected} rows rejected, the error output holds {outcome.rejects_written}")
    listed = {k for r in results for k in r.get("output_keys", [])}
    actual = {os.path.relpath(p, out_dir) for p in parquet_paths}
    if listed != actual:
        problems.append(f"manifest output_keys and the bucket differ: {sorted(listed ^ actual)[:4]}")

    dlq = pipeline.queue_depth(pipeline.dlq_url)
    if dlq:
        problems.append(f"{dlq} messages in the dead-letter queue")


# --- Scenarios --------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    # Its pipeline's Terraform environment (resource names are ndjson-parquet-<env>-...).
    env: str
    description: str
    inputs: list[InputFile]
    # Terraform variables of its pipeline (tests/terraform/local).
    variables: PipelineVariables = field(default_factory=PipelineVariables)
    # Test-only knobs the root module does not expose (see `LocalSettings`).
    local: LocalSettings = field(default_factory=LocalSettings)
    builder_faults: list[dict] = field(default_factory=list)
    converter_faults: list[dict] = field(default_factory=list)
    timeout: float = 300
    # Checks beyond `check`, given the pipeline after it settled.
    extra_checks: list = field(default_factory=list)
    # Uploads in this many threads (the concurrency scenario).
    upload_threads: int = 1
    # Uploaded once the pipeline settled with `inputs` (every version of them converted or
    # given up): new versions of keys already converted, and new keys. Checked with `inputs`.
    later: list[InputFile] = field(default_factory=list)
    # Runs with no other scenario at once: it measures the pipeline under load.
    alone: bool = False
    # What an operator does while the pipeline runs: called in a thread of its own once the
    # uploads are done, with the pipeline, the outcome, the converter's fault state directory
    # and an event set when the pipeline settled.
    operator: Callable[[Pipeline, "Outcome", str, threading.Event], None] | None = None


def mixed_inputs(tag: str, prefixes=("2026-11-20", "2026-11-21", "2026-11-22"), files_per_prefix=3, rows=200) -> list[InputFile]:
    inputs = []
    for p_index, prefix in enumerate(prefixes):
        for n in range(files_per_prefix):
            layout = [f"incoming/{prefix}/{tag} part {n}.ndjson", f"dt={prefix}/{tag}-ünïcødé+plus {n}.json",
                      f"{prefix}/{tag}/events-{n}.jsonl.gz"][(p_index + n) % 3]
            inputs.append(
                ndjson_file(layout, rows + 17 * n, bad_every=37 if n % 2 == 0 else 0, seed=n,
                            gzip_it=layout.endswith(".gz"))
            )
    return inputs


def happy_path() -> Scenario:
    return Scenario(
        "happy-path",
        "happy",
        "3 date prefixes, 9 files (plain, gzip; keys with spaces, unicode and '+'), bad lines in 5 of them",
        mixed_inputs("happy"),
    )


def at_least_once() -> Scenario:
    local = LocalSettings(duplicate_every_message=True, forget_deletes=3, visibility_timeout_seconds=4)
    return Scenario(
        "at-least-once",
        "dup",
        "every S3 notification delivered twice; the deletes of 3 successful batches lost, so they are redelivered after the visibility timeout",
        mixed_inputs("dup"),
        local=local,
        extra_checks=[_check_duplicates_delivered],
    )


def _check_duplicates_delivered(pipeline: Pipeline, outcome: Outcome) -> None:
    source = pipeline.event_source
    outcome.duplicates_delivered = source.duplicates_sent
    outcome.redeliveries = source.deletes_forgotten
    if source.duplicates_sent < outcome.files:
        outcome.problems.append(f"only {source.duplicates_sent} duplicate notifications sent for {outcome.files} files")
    if source.deletes_forgotten == 0:
        outcome.problems.append("no redelivery happened")
    dup_metric = sum(v for (f, m), v in pipeline.metrics.items() if m == "DuplicateDeliveries")
    outcome.notes.append(f"repeat deliveries the builder recognised (DuplicateDeliveries): {dup_metric:g}")
    if dup_metric < outcome.files:
        outcome.problems.append(f"the builder counted {dup_metric:g} repeat deliveries for {outcome.files} files")


def concurrency(files: int) -> Scenario:
    inputs = []
    prefixes = ["2026-10-01", "2026-10-02", "2026-10-03"]
    for n in range(files):
        prefix = prefixes[n % 3]
        inputs.append(ndjson_file(f"incoming/{prefix}/small-{n:05d}.ndjson", 3 + n % 5, seed=n))
    # The builder's deployed timeout (60 s): four debug builds tracking and cutting at once on
    # a small machine, against an emulator that serializes DynamoDB, take longer than the 15 s
    # the other scenarios use to keep their settle time short.
    # The event-source mapping and the manifests as deployed (deliveries of up to 100
    # notifications gathered for up to 10 s, manifests of up to 500 files), so that the write
    # units per version are what a deployment pays (issue: at most 1.1). One shard a date: the
    # deployed 16 are sized for thousands of files a second on one date, and this run's 17 a
    # second over 3 dates would leave every shard's manifest partial. All four builders then
    # contend for each date's one cursor. A partial manifest is cut only once its oldest batch
    # waited longer than the settle time (70 s), so that the arrivals of the run fill whole
    # manifests rather than whatever settled since the last delivery.
    variables = PipelineVariables(sqs_batch_size=100, sqs_batching_window_seconds=10, max_files_per_manifest=500,
                                  builder_timeout_seconds=60, shards=1, max_wait_seconds=120)
    # The queue's own visibility timeout (6 x the builder's), as deployed: the 20 s the other
    # scenarios use to see redeliveries quickly is shorter than a debug builder takes over a
    # delivery of 100 here, and each early redelivery bills its markers' writes again (178
    # repeat deliveries, 0.09 write units per version, in a run with the 20 s).
    local = LocalSettings(sqs_concurrency=4, converter_concurrency=4, visibility_timeout_seconds=None)
    return Scenario(
        "concurrency",
        "conc",
        f"{files} small files over 3 prefixes, uploaded by 8 threads, 4 builders at once plus the sweep, deliveries and manifests as deployed",
        inputs,
        variables=variables,
        local=local,
        timeout=900,
        upload_threads=8,
        alone=True,
        extra_checks=[_check_manifests_fill, _check_write_units, _census],
    )


# Fewest files a manifest of the concurrency scenario may average: each date's one shard cuts
# full manifests (500) and partials at most every 50 s (120 s wait - 70 s settle) while arrivals
# trickle in. Cutting whatever settled since the last delivery averaged 6 (311 manifests).
MIN_FILES_PER_MANIFEST = 100
# Most DynamoDB write units per version tracked the concurrency scenario may bill (the
# cost-per-file issue's target): markers take one each, the rest is shared by many versions.
MAX_WRITE_UNITS_PER_VERSION = 1.1


def _check_manifests_fill(pipeline: Pipeline, outcome: Outcome) -> None:
    if not outcome.manifests:
        return
    mean = outcome.files / outcome.manifests
    outcome.notes.append(f"{outcome.manifests} manifests of {mean:.1f} files on average")
    if mean < MIN_FILES_PER_MANIFEST:
        outcome.problems.append(
            f"manifests fragment: {outcome.manifests} for {outcome.files} files ({mean:.1f} each, fewer than {MIN_FILES_PER_MANIFEST})"
        )


def _census(pipeline: Pipeline, outcome: Outcome) -> None:
    """Every billable request of the run per version tracked, as the cost census counts them
    (docs/COST.md): each request the functions, the SQS poller (as the builder's role) and the
    state machine's tasks signed, by operation; Lambda invocations; Step Functions state
    transitions (states entered, from each execution's history). S3's notification to SQS (one
    per object) is S3's own and not a request any role makes."""
    if not outcome.versions:
        return
    prefix = pipeline.table.removesuffix("-tracking") + "-"
    calls: collections.Counter = collections.Counter()
    for (role_arn, operation), n in list(iam_audit.RECORDER.calls.items()):
        if role_arn.split("/")[-1].startswith(prefix):
            calls[operation] += n
    for name, function in pipeline.functions.items():
        calls[f"lambda invocations of {name.removeprefix(prefix)}"] += function.invocations
    transitions = 0
    for execution in pipeline.executions():
        kwargs = {"executionArn": execution["executionArn"], "maxResults": 1000}
        while True:
            page = pipeline.sfn.get_execution_history(**kwargs)
            transitions += sum(1 for e in page["events"] if e["type"].endswith("StateEntered"))
            if "nextToken" not in page:
                break
            kwargs["nextToken"] = page["nextToken"]
    calls["states.transitions"] += transitions
    per_version = ", ".join(f"{op} {n / outcome.versions:.4f}" for op, n in sorted(calls.items()) if n)
    outcome.notes.append(f"requests per version tracked: {per_version}")


def _check_write_units(pipeline: Pipeline, outcome: Outcome) -> None:
    per_version = write_units_per_version(outcome)
    if per_version is None:
        outcome.problems.append("no version tracked")
    elif per_version > MAX_WRITE_UNITS_PER_VERSION:
        outcome.problems.append(
            f"{per_version:.2f} DynamoDB write units per version tracked, more than {MAX_WRITE_UNITS_PER_VERSION}"
        )


# Inputs of the aborted and timed-out scenario: the first conversion of each date stalls (its
# first read of an input hangs longer than the converter's timeout); one date's execution is
# left to the timeout, the other's an operator aborts.
TIMED_OUT_DATE, ABORTED_DATE = "2026-08-01", "2026-08-02"


def aborted_and_timed_out() -> Scenario:
    inputs = [
        ndjson_file(f"incoming/{date}/part-{n}.ndjson", 80 + 13 * n, bad_every=29 if n == 0 else 0, seed=n)
        for date in (TIMED_OUT_DATE, ABORTED_DATE)
        for n in range(2)
    ]
    # Longer than the converter's timeout (60 s): Lambda ends the invocation (Sandbox.Timedout).
    stall = [
        {"op": "S3.GetObject", "nth": 1, "mode": "stall", "seconds": 90, "uri_contains": f"/{{input_bucket}}/incoming/{date}/",
         "what": f"a read of an input of {date} hangs"}
        for date in (TIMED_OUT_DATE, ABORTED_DATE)
    ]
    return Scenario(
        "aborted-and-timed-out",
        "abort",
        f"two dates whose first conversion hangs past the converter's timeout: {TIMED_OUT_DATE}'s execution fails "
        f"(Sandbox.Timedout, MarkFailed), {ABORTED_DATE}'s is aborted by an operator while its converter hangs "
        "(no MarkFailed: the sweep finds it by DescribeExecution)",
        inputs,
        # One manifest a date (one shard); the sweep asks about the aborted execution after the
        # shortest time the module allows (60 s).
        # One delivery for all four (one poller gathering for 5 s), so that each date's files
        # settle together and make one manifest whatever else runs at the same time.
        variables=PipelineVariables(converter_timeout_seconds=60, shards=1, reconcile_after_seconds=60,
                                    sqs_batching_window_seconds=5),
        local=LocalSettings(sqs_concurrency=1),
        converter_faults=stall,
        operator=_abort_while_stalled,
        extra_checks=[_check_aborted_and_timed_out],
        timeout=900,
    )


def _abort_while_stalled(pipeline: Pipeline, outcome: Outcome, converter_state: str, settled: threading.Event) -> None:
    """Aborts the execution of ABORTED_DATE's manifest once its converter hangs (the stall rule
    fired), as an operator's StopExecution would."""
    rule = os.path.join(converter_state, "rule-1.fired")
    while not settled.is_set():
        if os.path.exists(rule):
            for execution in pipeline.executions():
                if execution["name"].startswith(ABORTED_DATE) and execution["status"] == "RUNNING":
                    pipeline.sfn.stop_execution(executionArn=execution["executionArn"], error="Operator",
                                                cause="stopped by the end-to-end suite")
                    outcome.notes.append(f"aborted execution {execution['name']} while its converter hung")
                    return
        settled.wait(0.5)


def _check_aborted_and_timed_out(pipeline: Pipeline, outcome: Outcome) -> None:
    by_date: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for execution in pipeline.executions():
        by_date[execution["name"][:10]][execution["status"]] += 1
    outcome.notes.append("executions: " + "; ".join(f"{d}: {dict(c)}" for d, c in sorted(by_date.items())))
    expected = {TIMED_OUT_DATE: "FAILED", ABORTED_DATE: "ABORTED"}
    for date, status in expected.items():
        if by_date[date][status] != 1 or by_date[date]["SUCCEEDED"] < 1 or sum(by_date[date].values()) != 1 + by_date[date]["SUCCEEDED"]:
            outcome.problems.append(f"{date}: expected one {status} and then one SUCCEEDED execution, found {dict(by_date[date])}")
    ledger = pipeline.ledger()
    released = collections.Counter(m_id[:10] for m_id, m in ledger.manifests.items() if m["status"] == "released")
    for date in expected:
        if released[date] != 1:
            outcome.problems.append(f"{date}: {released[date]} manifests released, expected the one whose execution ended")
    reconciled = sum(v for (f, m), v in pipeline.metrics.items() if m == "ManifestsReconciled")
    if reconciled < 1:
        outcome.problems.append("the sweep reconciled no manifest with its execution (the aborted one has no MarkFailed)")
    timeouts = pipeline.converter.failures.get("Sandbox.Timedout", 0)
    if timeouts < 2:
        outcome.problems.append(f"{timeouts} converter invocations timed out, expected both hung ones")


def poison() -> Scenario:
    inputs = mixed_inputs("neighbour", prefixes=("2026-09-01",), files_per_prefix=3, rows=100)
    prefix = "incoming/2026-09-01"
    deleted = ndjson_file(f"{prefix}/deleted-before-conversion.ndjson", 10)
    deleted.ids, deleted.outcome, deleted.delete_after_upload = [], "failed", "version"
    # Every version that arrived is converted: a delete marker does not remove it.
    marked = ndjson_file(f"{prefix}/delete-marker-before-conversion.ndjson", 10, seed=1)
    marked.delete_after_upload = "object"
    not_json = InputFile(f"{prefix}/not-json.ndjson", b"hello world\nthis is not JSON at all\n", [],
                         [(1, "hello world"), (2, "this is not JSON at all")])
    empty = InputFile(f"{prefix}/empty.ndjson", b"", [], [])
    broken = InputFile(f"{prefix}/broken.ndjson.gz", b"\x1f\x8b\x08\x00" + bytes(range(200)) * 3, [], [], outcome="failed")
    return Scenario(
        "poison-input",
        "poison",
        "a version deleted before conversion (superseded), an object deleted by a delete marker (its version converted), a non-JSON file, a 0-byte file and a broken gzip beside 3 good files",
        inputs + [deleted, marked, not_json, empty, broken],
        # Each failure of the broken file is released after the converter's timeout + 60 s: the
        # shortest timeout the module allows (the files are tiny) keeps each wait at two minutes.
        variables=PipelineVariables(max_attempts=2, converter_timeout_seconds=60),
        extra_checks=[_check_poison],
        timeout=900,
    )


def _check_poison(pipeline: Pipeline, outcome: Outcome) -> None:
    failed_metric = sum(v for (f, m), v in pipeline.metrics.items() if m == "ManifestsFailed")
    rejected_metric = sum(v for (f, m), v in pipeline.metrics.items() if m == "RowsRejected")
    if failed_metric < 1:
        outcome.problems.append("the ManifestsFailed alarm metric was never raised")
    if rejected_metric < 1:
        outcome.problems.append("the RowsRejected alarm metric was never raised")
    ledger = pipeline.ledger()
    # A failed manifest keeps its reason when it is released.
    failed = {m_id: m for m_id, m in ledger.manifests.items() if m.get("error")}
    for m_id, m in ledger.manifests.items():
        if m["status"] == "released" and m_id not in failed:
            outcome.problems.append(f"released manifest {m_id} has no reason")
    if not failed:
        outcome.problems.append("no manifest failed")
    outcome.notes.extend(f"failure reason: {m['error'][:160]}" for m in list(failed.values())[:4])
    given_up = [v for v in ledger.markers if marker_given_up(v, pipeline.max_attempts)]
    outcome.notes.extend(f"given up: {marker_version(v)[1]} ({v.get('superseded') or v.get('last_error')})" for v in given_up[:4])
    empty_rejected = any(
        r.get("source", "").endswith("/empty.ndjson") and r.get("kind") == "empty_object"
        for r in outcome.whole_object_rejects
    )
    if not empty_rejected:
        outcome.problems.append("the 0-byte file is not in the error output")


OVERWRITE_PREFIX = "incoming/2026-10-05"


def overwrites() -> Scenario:
    prefix = OVERWRITE_PREFIX
    before, after = f"{prefix}/overwritten-before-conversion.ndjson", f"{prefix}/overwritten-after-conversion.ndjson"
    first = [
        ndjson_file(before, 120, bad_every=31, seed=0, tag="v1-"),
        # The same key again before any conversion: both versions are tracked and converted.
        ndjson_file(before, 70, seed=1, tag="v2-"),
        ndjson_file(after, 100, bad_every=23, seed=2, tag="v1-"),
        ndjson_file(f"{prefix}/untouched.ndjson", 60, seed=3),
    ]
    later = [
        # New versions of keys whose earlier versions were converted: converted again, as new
        # versions, by a later manifest; the earlier output stays.
        ndjson_file(after, 80, seed=4, tag="v2-"),
        ndjson_file(before, 50, bad_every=17, seed=5, tag="v3-"),
        ndjson_file(f"{prefix}/new-after-conversion.ndjson", 40, seed=6),
    ]
    return Scenario(
        "overwrites",
        "overwrite",
        "a key written twice before conversion (both versions converted), then, once everything was converted, "
        "two keys written again and a new one (each new version converted once by a later manifest)",
        first,
        later=later,
        extra_checks=[_check_overwrites],
    )


def _check_overwrites(pipeline: Pipeline, outcome: Outcome) -> None:
    """Every version of an overwritten key is converted (`check` holds each to exactly one
    completed manifest); a version written after its key's earlier one was converted is so by
    another manifest, since the earlier one's had completed before it arrived."""
    holders: dict[tuple, set[str]] = collections.defaultdict(set)
    for m_id, m in pipeline.ledger().completed().items():
        for version in pipeline.manifest_versions(m):
            holders[version].add(m_id)
    for name, versions_wanted in (("overwritten-before-conversion.ndjson", 3), ("overwritten-after-conversion.ndjson", 2)):
        key = f"{OVERWRITE_PREFIX}/{name}"
        versions = [v for v in holders if v[1] == key]
        manifests = set().union(*(holders[v] for v in versions)) if versions else set()
        outcome.notes.append(f"{name}: {len(versions)} versions converted, by {len(manifests)} manifests")
        if len(versions) != versions_wanted:
            outcome.problems.append(f"{key}: {len(versions)} versions converted, expected {versions_wanted}")
        if len(manifests) < 2:
            outcome.problems.append(f"{key}: a version written after conversion shares its manifest with an earlier one")
    superseded = [marker_version(v)[1] for v in pipeline.ledger().markers if v.get("superseded")]
    if superseded:
        outcome.problems.append(f"versions superseded in a versioned bucket that keeps them: {superseded}")


# Every AWS call the two functions make, with what tells the calls of one operation apart:
# (operation, body_contains, uri_contains, what). Each fault scenario checks each one fired.
# `{manifest_bucket}` and `{input_bucket}` are the pipeline's buckets (Terraform names them).
BUILDER_CALLS = [
    # Track: the shard's registry entry (once per process), the batch, a marker per version.
    ("DynamoDB.PutItem", '"pk":{"S":"D"}', None, "register a shard"),
    ("DynamoDB.PutItem", '"pk":{"S":"B#', None, "write a batch"),
    ("DynamoDB.PutItem", '"pk":{"S":"V#', None, "write a marker"),
    # Cut: the cursor, the settled batches, their markers; the JSON, the open entry, the
    # transaction (cursor and manifest); then the start.
    ("DynamoDB.GetItem", '"pk":{"S":"C#', None, "read a shard's cursor"),
    ("DynamoDB.PutItem", '"pk":{"S":"L#', None, "take a shard's cut lease"),
    ("DynamoDB.Query", '"S":"B#', None, "read a shard's batches"),
    ("DynamoDB.BatchGetItem", None, None, "read markers"),
    ("S3.PutObject", None, None, "manifest JSON"),
    ("DynamoDB.PutItem", '"pk":{"S":"O#', None, "list the manifest open"),
    ("DynamoDB.TransactWriteItems", '"S":"starting"', None, "cut: cursor and manifest"),
    ("SFN.StartExecution", None, None, "start the execution"),
    ("DynamoDB.UpdateItem", '"S":"running"', None, "manifest to running"),
    # Sweep: the open entries, the shard registry.
    ("DynamoDB.Query", '"S":"O#', None, "sweep: list open entries"),
    ("DynamoDB.Query", '":pk":{"S":"D"}', None, "sweep: list shards"),
]
CONVERTER_CALLS = [
    ("KMS.DescribeKey", None, None, "preflight: the key"),
    # The start-up check lists one key under the output prefix (`max-keys=1`); the listing of
    # an earlier attempt's parts names a manifest's own prefix (`parquet/dt=<date>/<id>-`).
    ("S3.ListObjectsV2", None, "max-keys=1", "preflight: list the output prefix"),
    ("DynamoDB.GetItem", None, None, "read the manifest item"),
    ("S3.GetObject", None, "/{manifest_bucket}/", "read the manifest JSON"),
    ("S3.GetObject", None, "/{input_bucket}/", "read an input file"),
    ("S3.PutObject", None, "/parquet/", "a small Parquet part"),
    ("S3.CreateMultipartUpload", None, None, "start a large part"),
    ("S3.UploadPart", None, None, "upload a chunk of a large part"),
    ("S3.CompleteMultipartUpload", None, None, "commit a large part"),
    ("S3.PutObject", None, "/errors/", "the error object"),
    ("S3.ListObjectsV2", None, "prefix=parquet%2Fdt%3D2", "list parts of earlier attempts"),
    ("DynamoDB.UpdateItem", '"S":"completed"', None, "the manifest to completed"),
    ("DynamoDB.DeleteItem", '"pk":{"S":"O#', None, "close the manifest's open entry"),
]


def fault_rules(calls, mode: str) -> list[dict]:
    rules = []
    for op, body, uri, what in calls:
        rule = {"op": op, "nth": 1, "mode": mode, "what": what}
        if body:
            rule["body_contains"] = body
        if uri:
            rule["uri_contains"] = uri
        rules.append(rule)
    return rules


def large_file(key: str, megabytes: int) -> InputFile:
    """Incompressible text, so that its Parquet part is large enough for a multipart upload."""
    rng = random.Random(key)
    lines, ids = [], []
    n = 0
    size = 0
    while size < megabytes << 20:
        n += 1
        record_id = f"{key}#{n}"
        ids.append(record_id)
        line = json.dumps({"id": record_id, "blob": rng.randbytes(256).hex()})
        lines.append(line)
        size += len(line) + 1
    return InputFile(key, ("\n".join(lines) + "\n").encode(), ids, [])


def faults(side: str, mode: str) -> Scenario:
    calls = BUILDER_CALLS if side == "builder" else CONVERTER_CALLS
    rules = fault_rules(calls, mode)
    inputs = mixed_inputs(f"f{side[0]}{mode[0]}", files_per_prefix=2, rows=120)
    if side == "converter":
        inputs.append(large_file("incoming/2026-11-23/large.ndjson", 14))
    return Scenario(
        f"faults-{side}-{mode}",
        f"f{side[0]}{mode[0]}",
        f"{'an error response from' if mode == 'error' else 'a crash right after'} each of {len(rules)} AWS calls of the {side}",
        inputs,
        # Under a 1 GiB memory budget the converter uploads in 5 MiB parts, so the large file's
        # Parquet part (~7 MB) goes up as a multipart upload, whose calls the rules cover.
        variables=PipelineVariables(converter_memory_mb=1024) if side == "converter" else PipelineVariables(),
        builder_faults=rules if side == "builder" else [],
        converter_faults=rules if side == "converter" else [],
        timeout=900,
    )


# --- Running ----------------------------------------------------------------------------------


def plan_environment(rules: list[dict], state_dir: str, names: dict[str, str]) -> dict[str, str]:
    """The fault plan, as the functions' test-only environment; `names` fills the rules'
    placeholders ({manifest_bucket}, {input_bucket})."""
    if not rules:
        return {}
    plan = {
        "state_dir": state_dir,
        "rules": [
            {k: v.format(**names) if k == "uri_contains" else v for k, v in r.items() if k != "what"}
            for r in rules
        ],
    }
    return {"NDJSON_PARQUET_FAULTS": json.dumps(plan)}


def fired(rules: list[dict], state_dir: str) -> list[bool]:
    return [os.path.exists(os.path.join(state_dir, f"rule-{i}.fired")) for i in range(len(rules))]


def run(scenario: Scenario, aws: Emulator, outputs: dict, binaries: Binaries, workdir: str) -> Outcome:
    """Runs `scenario` on the pipeline Terraform created for it (`outputs`)."""
    outcome = Outcome(scenario.name)
    started = time.monotonic()
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    builder_state = os.path.join(workdir, "faults-builder")
    converter_state = os.path.join(workdir, "faults-converter")
    names = {"manifest_bucket": outputs["manifest_bucket"], "input_bucket": outputs["input_bucket"]}
    local = scenario.local
    local.builder_environment = plan_environment(scenario.builder_faults, builder_state, names)
    local.converter_environment = plan_environment(scenario.converter_faults, converter_state, names)
    pipeline = None
    try:
        pipeline = Pipeline(aws, outputs, binaries, workdir, local)
        upload(pipeline, scenario.inputs, scenario.upload_threads)
        uploaded = time.monotonic()
        wave_started = started
        settled = threading.Event()
        operator = None
        if scenario.operator:
            operator = threading.Thread(target=scenario.operator, args=(pipeline, outcome, converter_state, settled),
                                        name=f"operator-{scenario.name}", daemon=True)
            operator.start()
        try:
            pipeline.wait_until_settled(scenario.timeout, expected_files=len(scenario.inputs))
            if scenario.later:
                outcome.notes.append(f"the first {len(scenario.inputs)} uploads took {uploaded - started:.0f} s and settled "
                                     f"{time.monotonic() - uploaded:.0f} s after the last; then {len(scenario.later)} more")
                wave_started = time.monotonic()
                upload(pipeline, scenario.later, scenario.upload_threads)
                uploaded = time.monotonic()
                pipeline.wait_until_settled(scenario.timeout, expected_files=len(scenario.inputs) + len(scenario.later))
        except TimeoutError as e:
            outcome.problems.append(str(e))
        finally:
            settled.set()
            if operator is not None:
                operator.join(timeout=30)
        outcome.notes.append(f"uploads took {uploaded - wave_started:.0f} s; the pipeline settled {time.monotonic() - uploaded:.0f} s after the last")
        # This pipeline's table only: other scenarios may be running at the same time. Read
        # before the checks, which may judge it.
        outcome.dynamodb = dynamodb_meter.METER.snapshot({pipeline.table})
        outcome.versions = len(pipeline.ledger().markers)
        check(pipeline, scenario.inputs + scenario.later, outcome, workdir)
        for extra in scenario.extra_checks:
            extra(pipeline, outcome)
        for rules, state in ((scenario.builder_faults, builder_state), (scenario.converter_faults, converter_state)):
            outcome.faults_planned += len(rules)
            for rule, did in zip(rules, fired(rules, state)):
                if did:
                    outcome.faults_injected += 1
                else:
                    outcome.problems.append(f"fault never injected: {rule['mode']} at {rule['op']} ({rule['what']})")
        if pipeline.event_source and not outcome.duplicates_delivered:
            outcome.redeliveries = pipeline.event_source.deletes_forgotten
        interesting = ("DuplicateDeliveries", "RefsDropped", "CutsLost", "ManifestsReconciled", "ManifestsReleased",
                       "UnreadableItems", "SweepErrors", "CutErrors", "ManifestsFailed", "MessagesFailed")
        counted = {m: v for (f, m), v in sorted(pipeline.metrics.items()) if m in interesting and v}
        if counted:
            outcome.notes.append("metrics: " + ", ".join(f"{m}={v:g}" for m, v in counted.items()))
        outcome.notes.append(dynamodb_note(outcome))
        failures = {n: dict(f.failures) for n, f in pipeline.functions.items() if f.failures}
        if failures:
            outcome.notes.append(f"function failures: {failures}")
        # IAM audit: every request the functions made, against their roles; a denial fails the
        # scenario once the roles are Terraform's (until then the verdicts are notes).
        outcome.iam = iam_audit.audit_scenario(getattr(pipeline, "audit", None), os.path.join(workdir, "iam"), outcome.problems,
                                               outcome.notes, enforce=getattr(pipeline, "roles_from_terraform", False))
    except Exception:
        outcome.problems.append(traceback.format_exc())
    finally:
        if pipeline is not None:
            pipeline.close()
    outcome.seconds = time.monotonic() - started
    return outcome


def run_all(chosen: list[Scenario], aws: Emulator, outputs: dict, binaries: Binaries, workdir: str,
            lanes: int) -> list[Outcome]:
    """Runs `chosen` (`lanes` at a time, then each `alone` one by itself) and prints each
    scenario's result as it ends; the outcomes come back in `chosen`'s order."""
    from concurrent.futures import ThreadPoolExecutor

    printing = threading.Lock()

    def one(scenario: Scenario) -> Outcome:
        outcome = run(scenario, aws, outputs[scenario.env], binaries, os.path.join(workdir, scenario.name))
        with printing:
            print(f"== {scenario.name}: {scenario.description}", flush=True)
            print(
                f"   {'pass' if outcome.ok else 'FAIL'} in {outcome.seconds:.0f}s: {outcome.files} files, "
                f"{outcome.rows_written}/{outcome.rows_expected} rows, {outcome.rejects_written} rejects, "
                f"{outcome.faults_injected}/{outcome.faults_planned} faults, lost {outcome.rows_lost}, "
                f"duplicates {outcome.duplicate_rows}",
                flush=True,
            )
            for p in outcome.problems:
                print(f"   PROBLEM: {p}", flush=True)
            for n in outcome.notes:
                print(f"   note: {n}", flush=True)
        return outcome

    # The long ones (poison input and faults wait out timeouts) first, so the lanes end together.
    together = sorted((s for s in chosen if not s.alone), key=lambda s: -s.timeout)
    outcomes: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, lanes)) as pool:
        for outcome in pool.map(one, together):
            outcomes[outcome.name] = outcome
    for scenario in (s for s in chosen if s.alone):
        outcomes[scenario.name] = one(scenario)
    return [outcomes[s.name] for s in chosen]


def dynamodb_note(outcome: Outcome) -> str:
    """The scenario's DynamoDB consumption (tools/local_aws/dynamodb_meter.py: billed as DynamoDB
    would from the requests, updates at an upper bound, queries at one read unit each)."""
    parts = []
    by_kind: collections.Counter = collections.Counter()
    for party, usage in sorted(outcome.dynamodb.items()):
        by_kind.update(usage.writes_by_kind)
        requests = sum(usage.requests.values())
        parts.append(f"{party} {usage.write_units} write / {usage.read_units} read units in {requests} requests")
    per_version = ""
    writes = write_units_per_version(outcome)
    if writes is not None:
        shares = ", ".join(
            f"{ITEM_KINDS.get(kind, kind)} {units / outcome.versions:.3f}" for kind, units in by_kind.most_common()
        )
        per_version = f", {writes:.2f} write units per version tracked ({shares})"
    return "DynamoDB: " + ("; ".join(parts) or "no request") + per_version


def write_units_per_version(outcome: Outcome) -> float | None:
    """The scenario's DynamoDB write units (every party's) per version tracked."""
    if not outcome.versions:
        return None
    return sum(usage.write_units for usage in outcome.dynamodb.values()) / outcome.versions


# Ledger item kinds by their partition key's prefix (shared/src/ledger/item.rs).
ITEM_KINDS = {"V": "markers", "B": "batches", "C": "cursors", "L": "leases", "M": "manifests",
              "O": "open entries", "D": "shard registry"}


def upload(pipeline: Pipeline, inputs: list[InputFile], threads: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def put(f: InputFile):
        version = f.version = pipeline.upload(f.key, f.body)
        if f.delete_after_upload == "object":
            pipeline.s3.delete_object(Bucket=pipeline.input_bucket, Key=f.key)
        elif f.delete_after_upload == "version":
            pipeline.s3.delete_object(Bucket=pipeline.input_bucket, Key=f.key, VersionId=version)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, inputs))


def summary(
    outcomes: list[Outcome], scenarios: dict[str, Scenario], terraform: str = "", simulation: list[str] | None = None
) -> str:
    lines = [
        "# Reliability: the pipeline end to end, with faults",
        "",
        "Written by `tests/e2e/run.py` (part of the test suite, `scripts/test.sh`). Every scenario runs",
        "the whole pipeline on a local AWS: moto in-process, with every resource created by `terraform",
        "apply` of the repository's root module (`tests/terraform/local`, one pipeline per scenario;",
        "AWS Batch switched off), the real `manifest-builder` and `converter-lambda` binaries run as the",
        "Lambda functions Terraform created; it checks the output against the inputs with pyarrow and",
        "DuckDB, then `terraform destroy`s everything.",
        "",
        *([terraform, ""] if terraform else []),
        "| scenario | files | rows expected | rows written | rows lost | duplicate rows | rejects (expected / written) | manifests | executions | faults (planned / injected) | duplicate notifications | redeliveries | failed files | seconds | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.name} | {o.files} | {o.rows_expected} | {o.rows_written} | {o.rows_lost} | {o.duplicate_rows} | "
            f"{o.rejects_expected} / {o.rejects_written} | {o.manifests} | {o.executions} | {o.faults_planned} / {o.faults_injected} | "
            f"{o.duplicates_delivered} | {o.redeliveries} | {o.failed_files} | {o.seconds:.0f} | {'pass' if o.ok else 'FAIL'} |"
        )
    total = lambda attr: sum(getattr(o, attr) for o in outcomes)  # noqa: E731
    lines += [
        "",
        f"Totals: {len(outcomes)} scenarios, {total('files')} files, {total('rows_written')} rows written, "
        f"{total('rejects_written')} rejects, {total('faults_injected')} faults injected, "
        f"{total('duplicates_delivered')} duplicate notifications, rows lost = {total('rows_lost')}, "
        f"duplicate rows = {total('duplicate_rows')}.",
        "",
        "## Scenarios",
        "",
    ]
    for o in outcomes:
        s = scenarios[o.name]
        lines.append(f"- **{o.name}**: {s.description}.")
        for rules, side in ((s.builder_faults, "manifest-builder"), (s.converter_faults, "converter")):
            for r in rules:
                lines.append(f"  - {r['mode']} at `{r['op']}` ({side}: {r['what']})")
        for note in o.notes:
            lines.append(f"  - {note}")
        for problem in o.problems:
            lines.append(f"  - PROBLEM: {problem}")
    if simulation:
        lines += ["", *simulation]
    lines += ["", *iam_audit.summary_markdown({o.name: o.iam for o in outcomes}).splitlines()]  # IAM audit
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binaries", required=True)
    parser.add_argument("--workdir", default=os.path.join(ROOT, "target", "e2e"))
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--summary")
    parser.add_argument("--concurrency-files", type=int, default=2000)
    parser.add_argument("--lanes", type=int, default=2, help="scenarios run at once (those not `alone`)")
    args = parser.parse_args(argv)
    binaries = Binaries(
        manifest_builder=os.path.abspath(os.path.join(args.binaries, "manifest-builder")),
        converter_lambda=os.path.abspath(os.path.join(args.binaries, "converter-lambda")),
    )
    all_scenarios = [
        happy_path(),
        at_least_once(),
        poison(),
        overwrites(),
        faults("builder", "error"),
        faults("builder", "crash"),
        faults("converter", "error"),
        faults("converter", "crash"),
        aborted_and_timed_out(),
        concurrency(args.concurrency_files),
    ]
    chosen = [s for s in all_scenarios if not args.only or s.name in args.only]
    unknown = set(args.only or ()) - {s.name for s in all_scenarios}
    if unknown:
        print(f"unknown scenarios: {sorted(unknown)}", file=sys.stderr)
        return 2
    os.makedirs(args.workdir, exist_ok=True)
    aws = Emulator(log_path=os.path.join(args.workdir, "emulator.log"))
    try:
        deployment = Deployment(
            aws.endpoint, os.path.join(args.workdir, "terraform"), {s.env: s.variables for s in chosen}
        )
    except TerraformUnavailable as e:
        aws.stop()
        print(f"SKIPPED: {e}; the scenarios run on what terraform applies: none ran (failing)", flush=True)
        return 2
    outcomes = []
    # Terraform's own failures (an apply or destroy that failed): the run fails on them.
    terraform_problems: list[str] = []
    applied = destroyed = None
    try:
        print(f"== terraform apply: tests/terraform/local, {len(chosen)} pipelines", flush=True)
        try:
            outputs, applied = deployment.timed("apply")
            print(f"   {deployment.resources} resources in {applied:.0f}s", flush=True)
        except TerraformFailed as e:
            terraform_problems.append(f"terraform apply: {e}")
            print(f"   FAILED: {e}", flush=True)
            outputs = None
        if outputs is not None:
            outcomes = run_all(chosen, aws, outputs, binaries, args.workdir, args.lanes)
    finally:
        aws.log_to(os.path.join(args.workdir, "emulator.log"))
        print("== terraform destroy", flush=True)
        try:
            _, destroyed = deployment.timed("destroy")
            print(f"   {destroyed:.0f}s", flush=True)
        except TerraformFailed as e:
            terraform_problems.append(f"terraform destroy: {e}")
            print(f"   FAILED: {e}", flush=True)
        finally:
            aws.stop()
    terraform_line = f"Terraform: {deployment.resources} resources ({len(chosen)} pipelines)"
    terraform_line += f" applied in {applied:.0f} s" if applied is not None else " not applied"
    terraform_line += f", destroyed in {destroyed:.0f} s." if destroyed is not None else ", not destroyed."
    terraform_line += "".join(f" PROBLEM: {p}" for p in terraform_problems)
    # The suite's `cargo test` ran the simulation just before (scripts/test.sh): its totals are
    # in the target directory the binaries came from.
    simulation = simulation_report.section(
        os.path.join(os.path.dirname(os.path.abspath(args.binaries)), "tmp", "simulation-summary.json"),
        os.path.join(ROOT, "tests", "simulation-long.log"),
    )
    text = summary(outcomes, {s.name: s for s in chosen}, terraform_line, simulation)
    print(text)
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as f:
            f.write(text)
    if terraform_problems:
        return 1
    return 0 if outcomes and len(outcomes) == len(chosen) and all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
