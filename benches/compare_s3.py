"""ndjson-parquet reading from a realistic S3: the same objects converted from local files and
through `s3://` URLs served by a shaped local endpoint (tools/slow_s3: first-byte latency per
request, bandwidth cap per connection), alternating, with the endpoint's raw ceiling (curl
downloading the same objects through it) beside them.

Datasets (clickstream, from gen-ndjson, split on line boundaries; made once under DATA/s3):
  A: 4 objects of 256 MiB (bench-data/clickstream-1g.ndjson, the file compare.sh converts)
  B: 1,000 objects of about 100 KB (100 MB of clickstream)

Each conversion is a whole process (`convert ... -o out.parquet --compression zstd:3`); CPU
time comes from wait4(2), peak RSS from /usr/bin/time, the endpoint's CPU from /proc. Every output's
row count is checked against the input's lines, and the last S3 output against the last local
one (same rows, same content). Writes RESULTS-S3.md and RESULTS-S3.json beside --out.

usage: compare_s3.py [--binary target/release/ndjson-parquet] [--gen target/release/gen-ndjson]
                     [--data bench-data] [--out benches/RESULTS-S3.md] [--runs 3]
                     [--latency-ms 30] [--mbps 80] [--only A|B] [--report-only]

Each run first waits for two idle seconds, and the report shows (and flags) the CPU other
processes used during the runs: on a shared 2-core machine a build elsewhere skews everything.
--report-only rewrites the report from RESULTS-S3.json without measuring.

The binary must be built with S3 support:
  cargo build --release --locked -p converter --features aws --bin ndjson-parquet
It is copied before the first run, so a rebuild during the runs does not change what is measured.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow.parquet as pq

from compare import run  # noqa: E402 (benches/ is on the path: this script runs from there)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "ndjson-bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# name, objects, bytes of NDJSON to generate (or the shared 1 GiB file), S3 ÷ local target,
# and how the raw ceiling is measured: (connections, bytes per ranged GET or None for whole
# objects). One connection with whole objects is what a reader with one stream at a time sees;
# one connection per object what a reader streaming all objects at once sees; ranged GETs on
# more connections what a reader splitting objects into ranges could reach.
DATASETS = {
    "A": {"title": "4 × 256 MiB", "objects": 4, "source": "clickstream-1g.ndjson", "bytes": "1G", "target": 0.90, "ceiling": [(1, None), (4, None), (16, 8 << 20)]},
    "B": {"title": "1,000 × 100 KB", "objects": 1000, "source": "clickstream-100m.ndjson", "bytes": "100000000", "target": 0.50, "ceiling": [(1, None), (16, None), (64, None)]},
}


def count_lines(path):
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))


def split_lines(src, parts, out_dir):
    """Splits `src` into `parts` files of about equal size, each cut after a newline."""
    size = os.path.getsize(src)
    names = []
    with open(src, "rb") as f:
        start = 0
        for i in range(parts):
            if i == parts - 1:
                end = size
            else:
                f.seek(max(start, size * (i + 1) // parts))
                f.readline()  # to the end of the line the cut point falls in
                end = f.tell()
            name = f"part-{i:04d}.ndjson"
            with open(os.path.join(out_dir, name), "wb") as out:
                f.seek(start)
                remaining = end - start
                while remaining:
                    data = f.read(min(remaining, 1 << 24))
                    out.write(data)
                    remaining -= len(data)
            names.append(name)
            start = end
    return names


def prepare(dataset, spec, data, gen):
    """The dataset's object names, (re)made under DATA/s3/BUCKET/<dataset> unless complete."""
    prefix = f"{dataset.lower()}-{spec['objects']}"
    directory = os.path.join(data, "s3", BUCKET, prefix)
    marker = os.path.join(directory, ".complete")
    if os.path.exists(marker):
        with open(marker) as f:
            names = json.load(f)
        if len(names) == spec["objects"] and all(os.path.exists(os.path.join(directory, n)) for n in names):
            return prefix, names
    source = os.path.join(data, spec["source"])
    if not os.path.exists(source) or os.path.getsize(source) == 0:
        print(f"generating {source}", flush=True)
        with open(source + ".tmp", "wb") as out:
            subprocess.run([gen, "clickstream", spec["bytes"]], stdout=out, check=True)
        os.replace(source + ".tmp", source)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    print(f"splitting {source} into {spec['objects']} objects", flush=True)
    names = split_lines(source, spec["objects"], directory)
    with open(marker, "w") as f:
        json.dump(names, f)
    return prefix, names


class Endpoint:
    """tools/slow_s3 serving DATA/s3 on a free port; its CPU and counters on demand."""

    def __init__(self, root, latency_ms, mbps, workdir):
        self.log = open(os.path.join(workdir, "slow_s3.log"), "w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.slow_s3", "--root", root, "--listen", "127.0.0.1:0",
             "--latency-ms", str(latency_ms), "--mbps", str(mbps)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def counters(self):
        """The endpoint's counters so far (it prints them on SIGUSR1)."""
        self.process.send_signal(signal.SIGUSR1)
        for _ in range(100):
            time.sleep(0.02)
            self.log.seek(0)
            lines = [l for l in self.log.read().splitlines() if l.startswith("slow_s3:")]
            if lines and len(lines) > getattr(self, "_seen", 0):
                self._seen = len(lines)
                return dict(kv.split("=") for kv in lines[-1].split()[1:])
        raise RuntimeError("the endpoint did not report its counters")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def busy_cpu():
    """CPU seconds the whole machine has spent busy (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # less idle and iowait


def wait_idle(limit_cores=0.25, patience_s=900):
    """Waits (at most patience_s) until the machine has been idle for two seconds (others use
    at most limit_cores), so that a build or test run elsewhere does not skew a measurement."""
    waited = 0.0
    while waited < patience_s:
        before = busy_cpu()
        time.sleep(2)
        if (busy_cpu() - before) / 2 <= limit_cores:
            return
        if waited == 0:
            print("  (waiting for other processes to leave the cores idle)", flush=True)
        waited += 2
    print(f"  (still busy after {patience_s} s: measuring anyway)", flush=True)


def s3_env(endpoint):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint.url, S3_FORCE_PATH_STYLE="true", AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def measure(binary, endpoint, files, urls, runs, workdir, lines, total_bytes):
    outputs = {"local": os.path.join(workdir, "local.parquet"), "s3": os.path.join(workdir, "s3.parquet")}
    samples = {"local": [], "s3": []}
    for _ in range(runs):
        for mode in ("local", "s3"):
            dst = outputs[mode]
            if os.path.exists(dst):
                os.remove(dst)
            inputs = files if mode == "local" else urls
            argv = [binary, "convert", *inputs, "-o", dst, "--compression", "zstd:3", "-q"]
            wait_idle()
            before_cpu, before = endpoint.cpu(), endpoint.counters()
            before_busy = busy_cpu()
            wall, cpu, rss = run(argv, s3_env(endpoint) if mode == "s3" else None, workdir)
            endpoint_cpu = endpoint.cpu() - before_cpu
            # What else ran on the machine meanwhile (another build, say) skews the figures.
            other_cpu = max(0.0, busy_cpu() - before_busy - cpu - endpoint_cpu)
            after = endpoint.counters()
            rows = pq.ParquetFile(dst).metadata.num_rows
            if rows != lines:
                raise RuntimeError(f"{mode} output has {rows} rows, the input {lines} lines")
            sample = {
                "wall_s": wall, "cpu_s": cpu, "rss_mb": rss / 1e6, "endpoint_cpu_s": endpoint_cpu, "other_cpu_s": other_cpu,
                "requests": int(after["requests"]) - int(before["requests"]),
                "connections": int(after["connections"]) - int(before["connections"]),
            }
            samples[mode].append(sample)
            print(f"  {mode:5s} {total_bytes / 1e6 / wall:8.1f} MB/s  {wall:7.2f} s  {cpu:6.1f} CPU s  "
                  f"{rss / 1e6:6.0f} MB RSS  endpoint {endpoint_cpu:5.2f} CPU s, {sample['requests']} requests, "
                  f"{sample['connections']} connections; others {other_cpu:.2f} CPU s", flush=True)
    # Read back in a child process, so that this one stays small (see run()).
    same = subprocess.run(
        [sys.executable, "-c", "import pyarrow.parquet as pq, sys; "
         "sys.exit(0 if pq.read_table(sys.argv[1]).equals(pq.read_table(sys.argv[2])) else 1)",
         outputs["local"], outputs["s3"]],
    )
    if same.returncode != 0:
        raise RuntimeError("the S3 output differs from the local one")
    summary = {}
    for mode, runs_ in samples.items():
        median = lambda key: statistics.median(s[key] for s in runs_)
        summary[mode] = {key: median(key) for key in runs_[0]}
        summary[mode]["mb_s"] = total_bytes / 1e6 / summary[mode]["wall_s"]
    summary["rows"] = lines
    return summary


def ceiling(endpoint, urls, sizes, connections, range_bytes, total_bytes, workdir):
    """curl downloading every object through the endpoint, `connections` at a time, whole or
    in GETs of `range_bytes`."""
    config = os.path.join(workdir, "curl.config")
    with open(config, "w") as f:
        for url, size in zip(urls, sizes):
            if range_bytes is None:
                f.write(f'url = "{url}"\noutput = "/dev/null"\n')
                continue
            for start in range(0, size, range_bytes):
                end = min(size, start + range_bytes) - 1
                f.write(f'url = "{url}"\noutput = "/dev/null"\nrange = "{start}-{end}"\n')
    argv = ["curl", "--silent", "--show-error", "--fail", "--config", config]
    if connections > 1:
        argv += ["--parallel", "--parallel-immediate", "--parallel-max", str(connections)]
    wait_idle()
    before = endpoint.cpu()
    wall, cpu, _ = run(argv, workdir=workdir)
    result = {"connections": connections, "range_bytes": range_bytes, "wall_s": wall,
              "mb_s": total_bytes / 1e6 / wall, "client_cpu_s": cpu, "endpoint_cpu_s": endpoint.cpu() - before}
    print(f"  ceiling, {connections:3d} connection(s), {gets_label(range_bytes)}: {result['mb_s']:8.1f} MB/s  {wall:6.2f} s  "
          f"curl {cpu:5.2f} CPU s  endpoint {result['endpoint_cpu_s']:5.2f} CPU s", flush=True)
    return result


def gets_label(range_bytes):
    return "whole objects" if range_bytes is None else f"ranges of {range_bytes >> 20} MiB"


def main():
    parser = argparse.ArgumentParser()
    release = os.path.join(REPO, os.environ.get("CARGO_TARGET_DIR", "target"), "release")
    parser.add_argument("--binary", default=os.path.join(release, "ndjson-parquet"))
    parser.add_argument("--gen", default=os.path.join(release, "gen-ndjson"))
    parser.add_argument("--data", default=os.path.join(REPO, "bench-data"))
    parser.add_argument("--out", default=os.path.join(REPO, "benches/RESULTS-S3.md"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=30)
    parser.add_argument("--mbps", type=float, default=80)
    parser.add_argument("--rss-headroom-mb", type=float, default=128,
                        help="memory check: S3 peak RSS at most the local one plus this")
    parser.add_argument("--only", choices=sorted(DATASETS), action="append")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from the JSON beside --out, measuring nothing")
    args = parser.parse_args()
    args.data = os.path.abspath(args.data)
    if args.report_only:
        with open(os.path.splitext(args.out)[0] + ".json") as f:
            saved = json.load(f)
        args.runs, args.latency_ms, args.mbps = saved["runs"], saved["latency_ms"], saved["mbps"]
        write_report(args, saved["results"], all(r["ceiling"] for r in saved["results"].values()))
        return

    workdir = tempfile.mkdtemp(prefix="compare-s3-", dir=args.data if os.path.isdir(args.data) else None)
    binary = os.path.join(workdir, "ndjson-parquet")
    shutil.copy2(args.binary, binary)
    has_curl = shutil.which("curl") is not None
    results = {}
    endpoint = None
    try:
        prepared = {}
        os.makedirs(os.path.join(args.data, "s3", BUCKET), exist_ok=True)
        for dataset in args.only or sorted(DATASETS):
            prepared[dataset] = prepare(dataset, DATASETS[dataset], args.data, args.gen)
        endpoint = Endpoint(os.path.join(args.data, "s3"), args.latency_ms, args.mbps, workdir)
        for dataset, (prefix, names) in prepared.items():
            spec = DATASETS[dataset]
            directory = os.path.join(args.data, "s3", BUCKET, prefix)
            files = [os.path.join(directory, n) for n in names]
            urls = [f"s3://{BUCKET}/{prefix}/{n}" for n in names]
            total = sum(os.path.getsize(f) for f in files)
            lines = sum(count_lines(f) for f in files)
            print(f"{dataset}: {spec['title']} ({total / 1e6:.0f} MB, {lines} lines)", flush=True)
            summary = measure(binary, endpoint, files, urls, args.runs, workdir, lines, total)
            summary["ceiling"] = []
            if has_curl:
                http_urls = [f"{endpoint.url}/{BUCKET}/{prefix}/{n}" for n in names]
                sizes = [os.path.getsize(f) for f in files]
                summary["ceiling"] = [ceiling(endpoint, http_urls, sizes, c, r, total, workdir) for c, r in spec["ceiling"]]
            summary.update(title=spec["title"], objects=len(names), mb=total / 1e6, target=spec["target"])
            results[dataset] = summary
    finally:
        if endpoint:
            endpoint.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    write_report(args, results, has_curl)


def write_report(args, results, has_curl):
    def check(ok, text):
        return f"- [{'x' if ok else ' '}] {text}"

    lines = [
        "# S3 reads through a shaped endpoint",
        "",
        f"Generated by `benches/compare_s3.py` (which `benches/compare.sh` runs) on {datetime.date.today().isoformat()}: "
        f"{os.cpu_count()} cores ({platform.machine()}), {args.runs} alternating runs of each conversion, medians. "
        f"The same clickstream objects are converted from local files and from `s3://` URLs (zstd level 3, all threads). "
        f"The S3 endpoint is `tools/slow_s3` serving the same files, on the same machine, with "
        f"{args.latency_ms:g} ms first-byte latency per request and {args.mbps:g} MB/s per connection; its CPU "
        f"time is part of what the machine spends (it shares the {os.cpu_count()} cores with the converter). "
        "Throughput is MB of NDJSON per wall second. The last column is the CPU time the rest of the machine "
        "spent during the runs (medians): near zero means nothing else competed for the cores (each run waits for "
        "two idle seconds first).",
        "",
        "| dataset | MB | local MB/s | S3 MB/s | S3 ÷ local | target | local CPU s | S3 CPU s | endpoint CPU s | "
        "requests | local peak RSS MB | S3 peak RSS MB | other processes' CPU s (local, S3) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    targets = []
    for dataset, r in results.items():
        local, s3 = r["local"], r["s3"]
        ratio = s3["mb_s"] / local["mb_s"]
        lines.append(
            f"| {dataset}: {r['title']} | {r['mb']:.0f} | {local['mb_s']:.1f} | {s3['mb_s']:.1f} | {ratio:.3f} | "
            f"≥ {r['target']:.2f} | {local['cpu_s']:.1f} | {s3['cpu_s']:.1f} | {s3['endpoint_cpu_s']:.2f} | "
            f"{s3['requests']} | {local['rss_mb']:.0f} | {s3['rss_mb']:.0f} | {local['other_cpu_s']:.2f}, {s3['other_cpu_s']:.2f} |"
        )
        targets.append(check(ratio >= r["target"], f"{dataset} ({r['title']}): S3 at {ratio:.3f}x the local throughput (target {r['target']:.2f}x)"))
        budget = local["rss_mb"] + args.rss_headroom_mb
        targets.append(check(s3["rss_mb"] <= budget, f"{dataset}: S3 peak RSS {s3['rss_mb']:.0f} MB (budget: the local run's {local['rss_mb']:.0f} MB + {args.rss_headroom_mb:g} MB)"))
    lines += ["", "Every output has one row per input line, and the S3 output equals the local one (read back with pyarrow).", ""]
    # The endpoint runs on the same cores: where the local conversion keeps them busy, every
    # CPU second the S3 path adds (endpoint, SDK, copies) comes out of the ratio.
    cores = os.cpu_count()
    for dataset, r in results.items():
        local, s3 = r["local"], r["s3"]
        allowed = cores * local["wall_s"] / r["target"]
        used = s3["cpu_s"] + s3["endpoint_cpu_s"]
        lines.append(
            f"CPU headroom, {dataset}: the local run keeps {local['cpu_s'] / local['wall_s']:.2f} of {cores} cores busy; "
            f"at the target ({local['wall_s'] / r['target']:.2f} s) the S3 run and the endpoint together can use at most "
            f"{allowed:.1f} CPU s ({allowed - local['cpu_s']:.1f} more than the local run); today they use {used:.1f} "
            f"({s3['cpu_s']:.1f} + {s3['endpoint_cpu_s']:.2f})."
        )
        lines.append("")
    # Others skew a run when they took a share of the cores while the run could have used
    # them all (a run waiting on the network is not slowed by them).
    noisy = [d for d, r in results.items() for m in ("local", "s3")
             if r[m]["other_cpu_s"] > 0.1 * r[m]["wall_s"]
             and r[m]["other_cpu_s"] + r[m]["cpu_s"] + r[m]["endpoint_cpu_s"] > 0.8 * cores * r[m]["wall_s"]]
    if noisy:
        lines += [f"**Other processes competed for the cores during {', '.join(sorted(set(noisy)))}** (last column): "
                  "those figures are skewed; rerun on a quiet machine.", ""]
    lines += [
        "## The endpoint's raw ceiling",
        "",
        "The same objects downloaded through the same endpoint by curl (to /dev/null), with no conversion: "
        "one connection fetching the objects one after another, then several in parallel (whole objects, "
        "or ranged GETs). A converter cannot read faster than the ceiling at the concurrency it uses; "
        "the endpoint's and curl's CPU show what the endpoint costs the machine at that rate.",
        "",
    ]
    if has_curl:
        lines += ["| dataset | connections | GETs | MB/s | wall s | curl CPU s | endpoint CPU s |", "|---|---|---|---|---|---|---|"]
        for dataset, r in results.items():
            for c in r["ceiling"]:
                lines.append(f"| {dataset}: {r['title']} | {c['connections']} | {gets_label(c['range_bytes'])} | {c['mb_s']:.1f} | {c['wall_s']:.2f} | {c['client_cpu_s']:.2f} | {c['endpoint_cpu_s']:.2f} |")
    else:
        lines.append("Not measured: curl is not installed.")
    lines += ["", "## Targets", ""] + targets + [""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"latency_ms": args.latency_ms, "mbps": args.mbps, "runs": args.runs, "results": results}, f, indent=1)
    print("\n".join(targets))


if __name__ == "__main__":
    main()
