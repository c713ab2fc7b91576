"""Tests of tools/simulation_report.py: the long run's log is summed and checked, not trusted.

Run with `python -m unittest discover -s tools/tests -t .` from the repository root.
"""

from __future__ import annotations

import json
import os
import tempfile
import unittest

from tools.simulation_report import parse_log, section


def chunk(first: int, last: int, commit: str = "abc1234", versions: int = 10, faults: int = 3) -> str:
    return (
        f"pass {first}-{last} 22s {commit} simulation: {last - first + 1} seeds, Outcome {{ versions: {versions}, "
        f"converted: 7, superseded: 2, failed: 1, manifests: 4, released: 2, faults: {faults}, calls: 99, "
        "write_units: 0, write_units_by_kind: {}, read_units: 0, census: {}, virtual_seconds: 0, "
        'peak_write: (0, ""), peak_read: (0, "") }'
    )


class ParseLog(unittest.TestCase):
    def test_sums_chunks_and_merges_adjacent_ranges(self):
        run = parse_log(
            ["# earlier seeds: see docs", chunk(0, 1999), chunk(2000, 3999, "def5678", versions=5), chunk(8000, 8999), ""]
        )
        self.assertEqual(run.ranges, [(0, 3999), (8000, 8999)])
        self.assertEqual(run.seeds, 5000)
        self.assertEqual(run.totals["versions"], 25)
        self.assertEqual(run.totals["faults"], 9)
        self.assertEqual(run.totals["calls"], 297)
        self.assertEqual(run.seconds, 66)
        self.assertEqual(run.commits, ["abc1234", "def5678"])
        self.assertEqual(run.notes, ["earlier seeds: see docs"])
        self.assertEqual((run.failures, run.malformed), ([], []))

    def test_a_failure_keeps_its_seed_and_command(self):
        run = parse_log(
            [chunk(0, 1999), "FAIL 2000-3999 abc1234", "seed 2417: v#1 arrived and ended nowhere", "reproduce with: SIMULATION_SEED=2417 cargo test"]
        )
        self.assertEqual(run.ranges, [(0, 1999)])
        self.assertEqual(len(run.failures), 3)
        self.assertIn("SIMULATION_SEED=2417", run.failures[2])

    def test_what_does_not_add_up_is_reported(self):
        wrong_count = chunk(0, 1999).replace("2000 seeds", "1999 seeds")
        run = parse_log([wrong_count, chunk(2000, 3999), chunk(3000, 4999), "garbage"])
        self.assertEqual(len(run.malformed), 3, run.malformed)
        self.assertTrue(any("overlap" in m for m in run.malformed))
        self.assertEqual(run.ranges, [(2000, 4999)])


def write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class Section(unittest.TestCase):
    def test_reports_the_suite_and_the_long_run(self):
        totals = {"first_seed": 0, "seeds": 1500, "versions": 250729, "converted": 201634, "superseded": 43556,
                  "failed": 5539, "manifests": 75364, "released": 52052, "faults": 446033, "calls": 12400000}
        with tempfile.TemporaryDirectory() as d:
            suite = write(d, "simulation-summary.json", json.dumps(totals))
            text = "\n".join(section(suite, write(d, "long.log", chunk(1500, 3499) + "\n")))
        self.assertIn("| this suite's `cargo test` | 1,500 (0–1,499) | 250,729 | 201,634 |", text)
        self.assertIn("| long run (`tests/simulation-long.log`) | 2,000 (1,500–3,499) | 10 |", text)
        self.assertIn("0 / 0 / 0", text)

    def test_a_failed_long_run_says_so(self):
        with tempfile.TemporaryDirectory() as d:
            log = write(d, "long.log", chunk(0, 1999) + "\nFAIL 2000-3999 abc1234\nseed 2417: lost\n")
            text = "\n".join(section(None, log))
        self.assertIn("FAILED (below)", text)
        self.assertIn("- FAILED: seed 2417: lost", text)
        self.assertNotIn("this suite", text)

    def test_nothing_to_report(self):
        self.assertEqual(section(None, None), [])
        self.assertEqual(section("/nonexistent/summary.json", "/nonexistent/log"), [])


if __name__ == "__main__":
    unittest.main()
