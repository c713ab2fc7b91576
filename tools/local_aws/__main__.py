"""The pipeline on a local AWS, end to end, on the bundled sample (or any NDJSON files).

usage: python -m tools.local_aws [--binaries DIR] [--workdir DIR] [--keep] FILE...

Starts moto's server on 127.0.0.1, creates the pipeline's resources with `terraform apply`
(tests/terraform/local: the root module terraform/ with the provider pointed at the emulator),
runs `manifest-builder` and `converter-lambda` from DIR as the Lambda functions Terraform
created, uploads each FILE to the input bucket under `incoming/<date>/<name>` (the date taken
from the file name), waits until every version is converted or given up, then prints what happened,
downloads the Parquet and error objects into WORKDIR/output and runs `terraform destroy`.
`--keep` leaves the emulator (and the deployment) up until Ctrl-C (its endpoint is printed) to
explore with the AWS CLI. Terraform's own output is in WORKDIR/terraform/*.log, the emulator's
in WORKDIR/emulator.log.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time

from .deploy import Deployment, PipelineVariables, TerraformFailed, TerraformUnavailable
from .emulator import Emulator
from .pipeline import Binaries, LocalSettings, Pipeline, manifest_result, marker_given_up, marker_version

# The pipeline's name: its Terraform environment (names are ndjson-parquet-local-*).
NAME = "local"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="local-pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--binaries", default="target/release")
    parser.add_argument("--workdir", default="target/local-pipeline")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)

    binaries = Binaries(
        manifest_builder=os.path.abspath(os.path.join(args.binaries, "manifest-builder")),
        converter_lambda=os.path.abspath(os.path.join(args.binaries, "converter-lambda")),
    )
    for path in (binaries.manifest_builder, binaries.converter_lambda):
        if not os.access(path, os.X_OK):
            print(f"{path} is missing: build it with cargo build --release -p manifest-builder -p converter --features converter/aws", file=sys.stderr)
            return 2
    uploads = []
    for path in args.files:
        date = re.search(r"\d{4}-\d{2}-\d{2}", os.path.basename(path))
        if not date:
            print(f"{path}: no YYYY-MM-DD date in the file name", file=sys.stderr)
            return 2
        uploads.append((f"incoming/{date.group(0)}/{os.path.basename(path)}", path))

    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    started = time.monotonic()
    emulator = Emulator(log_path=os.path.join(args.workdir, "emulator.log"))
    print(f"local AWS (moto) at {emulator.endpoint}")
    pipeline = None
    try:
        deployment = Deployment(
            emulator.endpoint, os.path.join(args.workdir, "terraform"), {NAME: PipelineVariables()}
        )
    except TerraformUnavailable as e:
        emulator.stop()
        print(f"SKIPPED: {e}: the local pipeline is what terraform applies", file=sys.stderr)
        return 2
    try:
        print("terraform apply (tests/terraform/local) ...", flush=True)
        outputs, seconds = deployment.timed("apply")
        print(f"terraform apply: {deployment.resources} resources in {seconds:.0f}s")
        pipeline = Pipeline(emulator, outputs[NAME], binaries, args.workdir, LocalSettings())
        print(
            f"running: buckets {pipeline.input_bucket}, {pipeline.manifest_bucket}, {pipeline.output_bucket}; "
            f"table {pipeline.table}; functions {', '.join(pipeline.functions)}; "
            f"sweep {pipeline.sweep_rule.get('ScheduleExpression')} (locally every "
            f"{pipeline.settings.sweep_every_seconds:g}s)"
        )
        for key, path in uploads:
            with open(path, "rb") as f:
                pipeline.upload(key, f.read())
            print(f"uploaded s3://{pipeline.input_bucket}/{key}")
        last = [None]

        def progress(reasons):
            text = "; ".join(reasons) or "settling"
            if text != last[0]:
                print(f"  {time.monotonic() - started:5.1f}s  {text}", flush=True)
                last[0] = text

        pipeline.wait_until_settled(args.timeout, expected_files=len(uploads), progress=progress)
        print(report(pipeline, args.workdir))
        if args.keep:
            print(f"the local AWS stays up at {emulator.endpoint} (Ctrl-C to stop)")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if pipeline is not None:
            pipeline.close()
        try:
            _, seconds = deployment.timed("destroy")
            print(f"terraform destroy: {seconds:.0f}s")
        except TerraformFailed as e:
            print(f"terraform destroy FAILED: {e}", file=sys.stderr)
            return 1
        finally:
            emulator.stop()
    return 0


def report(pipeline: Pipeline, workdir: str) -> str:
    lines = []
    ledger = pipeline.ledger()
    converted = pipeline.converted(ledger)
    lines.append(f"\nversions ({len(ledger.markers)}):")
    for v in sorted(ledger.markers, key=lambda v: (v["pk"], v["sk"])):
        bucket, key, version = marker_version(v)
        if converted[(bucket, key, version)]:
            state = "converted"
        elif marker_given_up(v, pipeline.max_attempts):
            state = "superseded" if v.get("superseded") else "failed"
        else:
            state = "waiting"
        lines.append(f"  {state:<10} attempts={v.get('attempts', 0)}  s3://{bucket}/{key} ({v['sk']})")
    lines.append(f"manifests ({len(ledger.manifests)}), open entries: {len(ledger.open_entries)}:")
    for m_id, m in sorted(ledger.manifests.items()):
        result = manifest_result(m)
        lines.append(
            f"  {m['status']:<10} {m_id}  files={m['file_count']} "
            f"rows written={result.get('rows_written', '-')} rejected={result.get('rows_rejected', '-')}"
        )
    executions = pipeline.executions()
    lines.append(f"executions ({len(executions)}):")
    for e in executions:
        lines.append(f"  {e['status']:<10} {e['name']}")
    out = os.path.join(workdir, "output")
    lines.append(f"output objects (s3://{pipeline.output_bucket}, downloaded to {out}):")
    for obj in pipeline.list_keys(pipeline.output_bucket):
        path = os.path.join(out, obj["Key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        head = pipeline.download(pipeline.output_bucket, obj["Key"], path)
        sse = head.get("ServerSideEncryption", "none")
        rows = parquet_rows(path) if path.endswith(".parquet") else None
        lines.append(
            f"  {obj['Key']}  {obj['Size']} bytes  {sse}" + (f"  {rows} rows" if rows is not None else "")
        )
    lines.append(f"dead-letter queue: {pipeline.queue_depth(pipeline.dlq_url)} messages")
    metrics = ", ".join(f"{f}.{m}={v:g}" for (f, m), v in sorted(pipeline.metrics.items()))
    lines.append(f"metrics: {metrics}")
    lines.append(f"function logs: {os.path.join(workdir, 'logs')}")
    return "\n".join(lines)


def parquet_rows(path: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    return pq.ParquetFile(path).metadata.num_rows


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
