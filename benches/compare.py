"""Side-by-side comparison of ndjson-parquet with the tools a user would pick instead
(DuckDB, Polars, pyarrow), as whole processes on the same files with the same codec.

Runs are alternated (tool A, B, C, D, then again) so that a noisy machine hurts every tool
alike; each figure is the median of the runs. CPU time comes from wait4(2) of the child
process, peak RSS from /usr/bin/time (see `run`). Our output is read back (row count) to prove
it is complete.

usage: compare.py --binary PATH --data DIR --out benches/RESULTS.md [--runs 3]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow.parquet as pq

PYTHON = sys.executable

PEERS = {
    "duckdb": (
        "import duckdb, sys\n"
        "src, dst, codec = sys.argv[1:4]\n"
        "level = ', COMPRESSION_LEVEL 3' if codec == 'zstd' else ''\n"
        "duckdb.sql(f\"COPY (SELECT * FROM read_json('{src}', format='newline_delimited')) "
        "TO '{dst}' (FORMAT parquet, COMPRESSION {codec}{level})\")\n"
    ),
    "polars": (
        "import polars as pl, sys\n"
        "src, dst, codec = sys.argv[1:4]\n"
        "kw = {'compression_level': 3} if codec == 'zstd' else {}\n"
        "pl.scan_ndjson(src, infer_schema_length=10000).sink_parquet(dst, compression=codec, **kw)\n"
    ),
    "pyarrow": (
        "import pyarrow.json as pj, pyarrow.parquet as pq, sys\n"
        "src, dst, codec = sys.argv[1:4]\n"
        "kw = {'compression_level': 3} if codec == 'zstd' else {}\n"
        "pq.write_table(pj.read_json(src), dst, compression=codec, **kw)\n"
    ),
    # What the Glue job runs: Spark reading JSON (schema inferred) and writing Parquet, here
    # in local mode on the machine's cores. Its JVM is not a waited-for child of this
    # process, so its CPU time and memory are not measured; Glue bills allocated time anyway.
    "spark": (
        "import os, sys\n"
        "from pyspark.sql import SparkSession\n"
        "src, dst, codec = sys.argv[1:4]\n"
        "spark = (SparkSession.builder.master(f'local[{os.cpu_count()}]').appName('compare')\n"
        "         .config('spark.ui.enabled', 'false').config('spark.driver.memory', '4g')\n"
        "         .config('spark.sql.parquet.compression.codec', codec).getOrCreate())\n"
        "spark.sparkContext.setLogLevel('ERROR')\n"
        "spark.read.json(src).write.mode('overwrite').parquet(dst)\n"
        "spark.stop()\n"
    ),
}

# Prices used for the cost per TB (us-east-1, public price lists, as of 2026-12-01).
LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334
LAMBDA_MB_PER_VCPU = 1769
GLUE_PER_DPU_HOUR = 0.44
GLUE_VCPU_PER_DPU = 4
# Tools whose CPU time and peak memory wait4(2) cannot see.
UNMEASURED = {"spark"}
# A fixed yardstick measured beside the conversions: the zstd command-line tool compressing the
# same input at level 3 on one thread. Its CPU time moves only with the machine (the same
# codec our writer spends much of its time in), so a run on a slow or busy machine shows as a
# slow yardstick, and "our CPU ÷ the yardstick's" compares runs across machines and days.
REFERENCE = "zstd -3 (yardstick)"
# Measured when the zstd command is installed (Debian: `apt install zstd`); without it the
# reports leave its column empty.
YARDSTICK = [REFERENCE] if shutil.which("zstd") else []


TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run(argv, env=None, workdir=None):
    """Runs a command; returns (wall seconds, cpu seconds, peak RSS bytes).

    The peak RSS comes from /usr/bin/time, not from wait4(2): Linux charges a child the
    high-water RSS of the process it was forked from (this one, 60 MB with pyarrow loaded and
    far more after reading a table back) when it execs, so wait4's figure cannot go below ours.
    """
    name, rss_file = argv[0], None
    if TIME:
        rss_file = tempfile.NamedTemporaryFile("r", prefix="rss-", dir=workdir)
        argv = [TIME, "-f", "%M", "-o", rss_file.name, *argv]
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{name} failed ({code}): {stderr[-2000:]}")
    rss = usage.ru_maxrss * 1024
    if rss_file:
        rss = int(rss_file.read().split()[-1]) * 1024
        rss_file.close()
    return wall, usage.ru_utime + usage.ru_stime, rss


def command(tool, binary, src, dst, codec, threads=None):
    if tool == "ndjson-parquet":
        argv = [binary, "convert", src, "-o", dst, "--compression", f"{codec}:3" if codec == "zstd" else codec, "-q"]
        if threads:
            argv += ["--threads", str(threads)]
        return argv
    if tool == REFERENCE:
        return ["zstd", "-3", "-T1", "-q", "-f", src, "-o", dst]
    return [PYTHON, "-c", PEERS[tool], src, dst, codec]


def output_size(path):
    """Bytes of a Parquet output: a file, or a directory of part files (Spark)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files if f.endswith(".parquet"))
    return os.path.getsize(path)


def count_lines(path):
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))


def measure(tools, binary, src, codec, runs, workdir, lines):
    results = {tool: [] for tool in tools}
    failures = {}
    for _ in range(runs):
        for tool in tools:
            suffix = ".zst" if tool == REFERENCE else ".parquet"
            dst = os.path.join(workdir, "".join(c if c.isalnum() else "_" for c in tool) + suffix)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            elif os.path.exists(dst):
                os.remove(dst)
            threads = 1 if tool == "ndjson-parquet 1 thread" else None
            name = "ndjson-parquet" if tool.startswith("ndjson-parquet") else tool
            if tool in failures:
                continue
            try:
                wall, cpu, rss = run(command(name, binary, src, dst, codec, threads))
            except RuntimeError as e:
                if name == "ndjson-parquet":
                    raise
                # A peer that cannot convert this input is a result too: say why.
                message = str(e).strip().splitlines()[-1]
                failures[tool] = message[:200]
                print(f"  {tool:28s} failed: {failures[tool]}", flush=True)
                continue
            size = output_size(dst)
            if name == "ndjson-parquet":
                rows = pq.ParquetFile(dst).metadata.num_rows
                if rows != lines:
                    raise RuntimeError(f"our output has {rows} rows, the input {lines} lines")
            results[tool].append((wall, cpu, rss, size))
            print(f"  {tool:28s} {os.path.getsize(src) / 1e6 / wall:8.1f} MB/s  {cpu:6.2f} CPU s  {rss / 1e6:8.1f} MB RSS", flush=True)
    summary = {}
    for tool, samples in results.items():
        if tool in failures:
            summary[tool] = {"failed": failures[tool]}
            continue
        summary[tool] = {
            "mb": os.path.getsize(src) / 1e6,
            "wall_s": statistics.median(s[0] for s in samples),
            "mb_s": os.path.getsize(src) / 1e6 / statistics.median(s[0] for s in samples),
            "cpu_s": None if tool in UNMEASURED else statistics.median(s[1] for s in samples),
            "rss_mb": None if tool in UNMEASURED else statistics.median(s[2] for s in samples) / 1e6,
            "out_mb": statistics.median(s[3] for s in samples) / 1e6,
        }
    return summary


def chart(all_results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(all_results)
    tools = [t for t in next(iter(all_results.values())) if t != REFERENCE]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / len(tools)
    for t, tool in enumerate(tools):
        xs = [i + t * width for i in range(len(cases))]
        # A tool that failed on a case gets no bar there (the report says why).
        axes[0].bar(xs, [all_results[c][tool].get("mb_s", 0) for c in cases], width, label=tool)
        axes[1].bar(xs, [all_results[c][tool].get("rss_mb") or 0 for c in cases], width, label=tool)
    for ax, title in zip(axes, ["Throughput (MB/s of NDJSON, higher is better)", "Peak RSS (MB, lower is better)"]):
        ax.set_title(title)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
        ax.set_xticklabels(cases, rotation=15)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# MB of JSON per CPU-second at --threads 1 wanted per dataset, and the --threads 2 speedup.
CPU_TARGETS = {"clickstream": 300, "logs": 250, "wide": 250}
SPEEDUP_TARGET = 1.9


def cpu_section(all_results):
    """CPU per byte of ours at one thread, the speedup of all threads, and what a TB costs on
    Lambda arm64 (from the measured CPU seconds) and on Spark priced as AWS Glue (from its wall
    time on this machine's cores: Glue bills the vCPUs allocated, not those used)."""
    lines = [
        "## CPU per byte and cost per TB",
        "",
        f"Lambda arm64: the measured CPU seconds at `--threads 1`, each billed as {LAMBDA_MB_PER_VCPU} MB "
        f"(one vCPU) at ${LAMBDA_ARM64_PER_GB_SECOND} per GB-second. Spark: `spark.read.json(...).write.parquet(...)` "
        f"in local mode on {os.cpu_count()} cores, its wall time times those vCPUs at AWS Glue's "
        f"${GLUE_PER_DPU_HOUR} per DPU-hour ({GLUE_VCPU_PER_DPU} vCPU per DPU), ignoring Glue's 2-DPU and "
        "1-minute minimums (which only add to it). Prices: us-east-1, 2026-12-01.",
        "",
        f"The yardstick column is our CPU time at one thread over that of `{REFERENCE.split(' (')[0]} -T1` compressing "
        "the same file, measured in the same runs: it moves far less with the machine's speed than the "
        "MB per CPU-second do, so it is what compares this report with one made on another machine or day.",
        "",
        "| case | MB per CPU s, 1 thread | target | CPU ÷ yardstick's | all threads ÷ 1 thread | Lambda $/TB | Spark as Glue $/TB | Glue ÷ Lambda |",
        "|---|---|---|---|---|---|---|---|",
    ]
    checks = []
    for case, results in all_results.items():
        one, every = results.get("ndjson-parquet 1 thread"), results.get("ndjson-parquet")
        if not one or not every or one.get("cpu_s") is None:
            continue
        dataset = case.split()[0]
        per_cpu = one["mb"] / one["cpu_s"]
        speedup = one["wall_s"] / every["wall_s"]
        lambda_tb = 1e6 / per_cpu * LAMBDA_MB_PER_VCPU / 1024 * LAMBDA_ARM64_PER_GB_SECOND
        spark = results.get("spark")
        glue_tb = None
        if spark and "wall_s" in spark:
            vcpu_seconds = 1e6 / spark["mb"] * spark["wall_s"] * os.cpu_count()
            glue_tb = vcpu_seconds * GLUE_PER_DPU_HOUR / 3600 / GLUE_VCPU_PER_DPU
        target = CPU_TARGETS.get(dataset)
        yardstick = results.get(REFERENCE, {}).get("cpu_s")
        relative = f"{one['cpu_s'] / yardstick:.2f}" if yardstick else "–"
        lines.append(
            f"| {case} | {per_cpu:.0f} | {target or '–'} | {relative} | {speedup:.2f} | {lambda_tb:.3f} | "
            + ("–" if glue_tb is None else f"{glue_tb:.2f}")
            + " | "
            + ("–" if glue_tb is None else f"{glue_tb / lambda_tb:.0f}x")
            + " |"
        )
        if target:
            mark = "x" if per_cpu >= target else " "
            checks.append(f"- [{mark}] {case}: {per_cpu:.0f} MB of JSON per CPU-second at 1 thread (target {target})")
        mark = "x" if speedup >= SPEEDUP_TARGET else " "
        checks.append(f"- [{mark}] {case}: all threads {speedup:.2f}x 1 thread (target {SPEEDUP_TARGET}x)")
    return lines + [""], checks


def cpu_only(args):
    """Only what goal 3 needs: ours at 1 and all threads, and Spark, on the three shapes."""
    tools = ["ndjson-parquet", "ndjson-parquet 1 thread", "spark", *YARDSTICK]
    all_results = {}
    workdir = os.path.join(args.data, "out")
    os.makedirs(workdir, exist_ok=True)
    for dataset in ("clickstream", "logs", "wide"):
        src = os.path.join(args.data, f"{dataset}-{args.size_tag}.ndjson")
        print(f"{dataset} / zstd", flush=True)
        all_results[f"{dataset} zstd"] = measure(tools, args.binary, src, "zstd", args.runs, workdir, count_lines(src))
    table, checks = cpu_section(all_results)
    lines = [
        "# CPU per byte and cost per TB",
        "",
        f"Generated by `CPU_ONLY=1 benches/compare.sh` on {datetime.date.today().isoformat()}: "
        f"{os.cpu_count()} cores ({platform.machine()}), {args.runs} alternating runs per tool, medians; "
        f"inputs from `gen-ndjson` ({args.size_tag} each), zstd level 3.",
        "",
        "| case | tool | MB/s | CPU s | output MB |",
        "|---|---|---|---|---|",
    ]
    for case, results in all_results.items():
        for tool, r in results.items():
            if "failed" in r:
                lines.append(f"| {case} | {tool} | failed: {r['failed']} | | |")
                continue
            cpu = "–" if r["cpu_s"] is None else f"{r['cpu_s']:.2f}"
            lines.append(f"| {case} | {tool} | {r['mb_s']:.1f} | {cpu} | {r['out_mb']:.1f} |")
    lines += [""] + table + ["## Targets", ""] + checks + [""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(checks))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU-per-byte and cost comparison")
    parser.add_argument("--size-tag", default="1g", help="inputs are DATASET-TAG.ndjson")
    args = parser.parse_args()
    if args.cpu_only:
        cpu_only(args)
        return

    tools = ["ndjson-parquet", "ndjson-parquet 1 thread", "duckdb", "polars", "pyarrow", "spark", *YARDSTICK]
    cases = [
        ("clickstream", "zstd"),
        ("clickstream", "snappy"),
        ("logs", "zstd"),
        ("wide", "zstd"),
    ]
    all_results = {}
    workdir = os.path.join(args.data, "out")
    os.makedirs(workdir, exist_ok=True)
    for dataset, codec in cases:
        src = os.path.join(args.data, f"{dataset}-{args.size_tag}.ndjson")
        print(f"{dataset} / {codec}", flush=True)
        all_results[f"{dataset} {codec}"] = measure(tools, args.binary, src, codec, args.runs, workdir, count_lines(src))

    # Memory must not grow with the input: the same conversion on 4 GB.
    big = os.path.join(args.data, "clickstream-4g.ndjson")
    print("clickstream 4 GB / zstd (ours only)", flush=True)
    scale = measure(["ndjson-parquet"], args.binary, big, "zstd", 1, workdir, count_lines(big))["ndjson-parquet"]

    png = os.path.splitext(args.out)[0].replace("RESULTS", "results") + ".png"
    chart(all_results, png)
    write_report(args, all_results, scale, png)


def write_report(args, all_results, scale, png):
    ours = lambda case: all_results[case]["ndjson-parquet"]
    lines = [
        "# Comparison results",
        "",
        f"Generated by `benches/compare.sh` on {datetime.date.today().isoformat()}: "
        f"{os.cpu_count()} cores ({platform.machine()}), {args.runs} alternating runs per tool, medians. "
        "Inputs come from the deterministic generator (`gen-ndjson`, 1 GiB each). Every tool runs as a whole "
        "process reading the same file and writing Parquet with the same codec (zstd level 3, or snappy).",
        "",
        f"![throughput and memory]({os.path.basename(png)})",
        "",
        "Reading from S3 (a local endpoint with S3's first-byte latency and per-connection bandwidth): "
        "[RESULTS-S3.md](RESULTS-S3.md), written by `benches/compare_s3.py`. CPU per byte at one thread "
        "and cost per TB against Spark priced as Glue, on smaller inputs: [RESULTS-CPU.md](RESULTS-CPU.md) "
        "(`CPU_ONLY=1 benches/compare.sh`).",
        "",
    ]
    for case, results in all_results.items():
        lines += [f"## {case}", "", "| tool | MB/s | CPU s | peak RSS MB | output MB | our throughput ÷ theirs |", "|---|---|---|---|---|---|"]
        for tool, r in results.items():
            if "failed" in r:
                lines.append(f"| {tool} | failed: {r['failed']} | | | | |")
                continue
            ratio = ours(case)["mb_s"] / r["mb_s"]
            cpu = "–" if r["cpu_s"] is None else f"{r['cpu_s']:.1f}"
            rss = "–" if r["rss_mb"] is None else f"{r['rss_mb']:.0f}"
            lines.append(f"| {tool} | {r['mb_s']:.1f} | {cpu} | {rss} | {r['out_mb']:.1f} | {ratio:.2f} |")
        lines.append("")

    def check(ok, text):
        return f"- [{'x' if ok else ' '}] {text}"

    click_z, click_s = "clickstream zstd", "clickstream snappy"
    best = lambda case: max(v["mb_s"] for k, v in all_results[case].items() if not k.startswith("ndjson-parquet") and "mb_s" in v and k not in ("spark", REFERENCE))
    targets = []
    for case in (click_z, click_s):
        r = ours(case)["mb_s"] / all_results[case]["duckdb"]["mb_s"]
        targets.append(check(r >= 1.5, f"{case}: {r:.2f}x DuckDB's throughput (target 1.5x)"))
    for case in (click_z, "logs zstd", "wide zstd"):
        r = ours(case)["mb_s"] / best(case)
        targets.append(check(r >= 1.5, f"{case}: {r:.2f}x the best peer's throughput, both cores (target 1.5x)"))
    rss = ours(click_z)["rss_mb"] / all_results[click_z]["duckdb"]["rss_mb"]
    targets.append(check(rss <= 1 / 3, f"peak RSS {rss:.2f}x DuckDB's on clickstream zstd (target at most 0.33x)"))
    growth = scale["rss_mb"] / ours(click_z)["rss_mb"]
    targets.append(check(abs(growth - 1) <= 0.10, f"peak RSS on 4 GB is {growth:.2f}x that on 1 GB ({scale['rss_mb']:.0f} vs {ours(click_z)['rss_mb']:.0f} MB; target within 10%)"))
    speedup = ours(click_z)["mb_s"] / all_results[click_z]["ndjson-parquet 1 thread"]["mb_s"]
    targets.append(check(speedup >= 1.8, f"all threads vs 1 thread: {speedup:.2f}x (target 1.8x)"))
    for case in (click_z, click_s):
        size = ours(case)["out_mb"] / all_results[case]["duckdb"]["out_mb"]
        targets.append(check(size <= 1.05, f"{case}: output {size:.3f}x DuckDB's size (target at most 1.05x)"))
    cpu_table, cpu_checks = cpu_section(all_results)
    lines += cpu_table + ["## Targets", ""] + targets + cpu_checks + [""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"results": all_results, "scale_4g": scale}, f, indent=1)
    print("\n".join(targets))


if __name__ == "__main__":
    main()
