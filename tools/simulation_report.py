"""The deterministic simulation's figures for tests/RELIABILITY.md.

Two sources:

* the test suite's own run of `manifest-builder/tests/simulation.rs`, which writes its totals
  to `<target>/tmp/simulation-summary.json` once every seed has passed;
* the long run's log, `tests/simulation-long.log` (`scripts/simulate-long.sh`): one line per
  chunk of seeds, `pass FIRST-LAST SECONDSs COMMIT simulation: N seeds, Outcome { ... }`, or
  `FAIL FIRST-LAST COMMIT` followed by the failing seed; lines starting with `#` are notes.

usage: python -m tools.simulation_report [tests/simulation-long.log]   # the long run's totals
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field

# The Outcome fields a chunk line carries that the report sums, in the report's order.
FIELDS = ("versions", "converted", "superseded", "failed", "manifests", "released", "faults", "calls")

_PASS = re.compile(r"^pass (\d+)-(\d+) (\d+)s (\S+) simulation: (\d+) seeds, Outcome \{(.*)\}\s*$")
_FAIL = re.compile(r"^FAIL (\d+)-(\d+) (\S+)")


@dataclass
class LongRun:
    """What a long run's log says: the seed ranges that passed, their totals, any failure."""

    ranges: list[tuple[int, int]] = field(default_factory=list)  # merged, inclusive
    totals: dict[str, int] = field(default_factory=lambda: {f: 0 for f in FIELDS})
    seeds: int = 0
    seconds: int = 0
    commits: list[str] = field(default_factory=list)  # in order of first appearance
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)


def parse_log(lines) -> LongRun:
    run = LongRun()
    spans: list[tuple[int, int]] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith("#"):
            run.notes.append(line.lstrip("# ").strip())
            continue
        if m := _PASS.match(line):
            first, last, seconds, commit, count = (int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5]))
            if count != last - first + 1:
                run.malformed.append(f"line {number}: {count} seeds for the range {first}-{last}")
                continue
            values = dict(re.findall(r"(\w+): (\d+)", m[6]))
            missing = [f for f in FIELDS if f not in values]
            if missing:
                run.malformed.append(f"line {number}: no {', '.join(missing)}")
                continue
            for f in FIELDS:
                run.totals[f] += int(values[f])
            spans.append((first, last))
            run.seeds += count
            run.seconds += seconds
            if commit not in run.commits:
                run.commits.append(commit)
            continue
        if m := _FAIL.match(line):
            run.failures.append(line)
            continue
        if run.failures:
            run.failures.append(line)  # the failing seed and its reproduce command
            continue
        run.malformed.append(f"line {number}: {line[:80]}")
    for first, last in sorted(spans):
        if run.ranges and first <= run.ranges[-1][1] + 1:
            if first <= run.ranges[-1][1]:
                run.malformed.append(f"seeds {first}-{last} overlap an earlier chunk")
            run.ranges[-1] = (run.ranges[-1][0], max(run.ranges[-1][1], last))
        else:
            run.ranges.append((first, last))
    return run


def _n(value: int) -> str:
    return f"{value:,}"


def _ranges(ranges: list[tuple[int, int]]) -> str:
    return ", ".join(f"{_n(a)}–{_n(b)}" for a, b in ranges) or "none"


def section(suite_summary: str | None, long_log: str | None) -> list[str]:
    """The report's markdown lines (none if neither source exists)."""
    suite = None
    if suite_summary and os.path.exists(suite_summary):
        with open(suite_summary, encoding="utf-8") as f:
            suite = json.load(f)
    run = None
    if long_log and os.path.exists(long_log):
        with open(long_log, encoding="utf-8") as f:
            run = parse_log(f)
    if suite is None and run is None:
        return []
    lines = [
        "## Deterministic simulation",
        "",
        "`manifest-builder/tests/simulation.rs` runs the builder's, the sweep's and the converter's",
        "manifest code over in-memory S3 (versions, overwrites, deletes), DynamoDB (conditional",
        "writes, per-partition throttling, lagging reads, TTL deletes), Step Functions as deployed",
        "(its Retry and Catch lists, Lambda timeouts, aborts) and SQS (at-least-once, visibility",
        "timeouts, a dead-letter queue and redrives), on a virtual clock. One seed is one",
        "interleaving of concurrent builders, sweeps and converters, with an error, a lost response",
        "or a crash drawn at every store call. After each run settles it checks that every version",
        "that arrived is in exactly one completed manifest's output or recorded superseded or failed",
        "with its reason (none lost), that none is in the output twice (no duplicate), that no part",
        "of a released manifest remains, and that no manifest is left open (none stuck); a seed that",
        "breaks one fails the run. See docs/TRACKING.md.",
        "",
        "| run | seeds | versions | converted | superseded | failed | manifests completed | released | faults injected | store calls | lost / duplicated / stuck |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if suite is not None:
        first, count = suite.get("first_seed") or 0, suite["seeds"]
        cells = " | ".join(_n(suite[f]) for f in FIELDS)
        lines.append(f"| this suite's `cargo test` | {_n(count)} ({_ranges([(first, first + count - 1)])}) | {cells} | 0 / 0 / 0 |")
    if run is not None:
        cells = " | ".join(_n(run.totals[f]) for f in FIELDS)
        verdict = "FAILED (below)" if run.failures else "0 / 0 / 0"
        lines.append(f"| long run (`tests/simulation-long.log`) | {_n(run.seeds)} ({_ranges(run.ranges)}) | {cells} | {verdict} |")
        lines += [
            "",
            f"Long run: {len(run.commits)} build(s) ({', '.join(run.commits) or 'none'}), "
            f"{run.seconds / 3600:.1f} hours of chunks (`scripts/simulate-long.sh`, optimised build).",
        ]
        lines += [f"- {note}" for note in run.notes]
        lines += [f"- FAILED: {line}" for line in run.failures]
        lines += [f"- PROBLEM in the log: {m}" for m in run.malformed]
    return lines


def main(argv: list[str]) -> int:
    path = argv[0] if argv else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "simulation-long.log")
    with open(path, encoding="utf-8") as f:
        run = parse_log(f)
    print(f"seeds {_ranges(run.ranges)}: {_n(run.seeds)} seeds in {run.seconds} s of chunks, commits {', '.join(run.commits)}")
    print(", ".join(f"{k} {_n(v)}" for k, v in run.totals.items()))
    for line in run.failures + run.malformed:
        print(line)
    return 1 if run.failures or run.malformed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
