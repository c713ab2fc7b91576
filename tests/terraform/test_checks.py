"""Unit tests of the checkers themselves: each must fail on the mistake it exists for.

Run from the repository root: `python -m unittest discover -s tests/terraform -p 'test_*.py'`.
The provider schema tests use the cached schemas (check_providers.py builds them); without a
provider mirror or npm they are skipped with a loud line, like check_providers.py.
"""

import os
import shutil
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deployable  # noqa: E402
import provider_schema  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.path.join(os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")), "provider-schemas")

# A provider schema in the compact form, small enough to read.
TOY = {
    "provider": "toy",
    "kinds_known": True,
    "resource": {"aws_thing": "thing"},
    "data": {"aws_lookup": "lookup"},
    "blocks": {
        "thing": {"args": {"name": True, "tags": False}, "blocks": {"rule": ["thing.rule", False], "network": ["thing.network", True]}},
        "thing.rule": {"args": {"id": True}, "blocks": {"filter": ["thing.rule.filter", False]}},
        "thing.rule.filter": {"args": {"prefix": False}, "blocks": {}},
        "thing.network": {"args": {"subnets": False}, "blocks": {}},
        "lookup": {"args": {"id": False}, "blocks": {}},
    },
}


def check(config, schemas):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "main.tf")
        with open(path, "w") as f:
            f.write(textwrap.dedent(config))
        # "<path>: <type>.<name>[.<block>]: <problem>" without the location
        return [p.split(": ", 2)[2] for p in provider_schema.check_file(path, schemas)]


class ArgumentChecker(unittest.TestCase):
    def test_accepts_arguments_blocks_meta_arguments_and_dynamic_blocks(self):
        problems = check(
            """
            resource "aws_thing" "this" {
              for_each   = toset(["a"])
              provider   = aws.other
              depends_on = [terraform_data.x]
              name       = each.key
              network {
                subnets = []
              }
              dynamic "rule" {
                for_each = [1]
                content {
                  id = "r"
                  filter {}
                }
              }
              lifecycle {
                create_before_destroy = true
                precondition {
                  condition     = true
                  error_message = "never"
                }
              }
            }
            resource "terraform_data" "x" {}
            data "aws_lookup" "this" {
              count = 1
            }
            """,
            [TOY],
        )
        self.assertEqual(problems, [])

    def test_finds_unknown_arguments_blocks_and_types(self):
        problems = check(
            """
            resource "aws_thing" "this" {
              name     = "x"
              colour   = "red"
              network {}
              dynamic "rules" {
                for_each = [1]
                content {}
              }
              rule {
                id   = "r"
                size = 1
              }
            }
            resource "aws_gadget" "this" {}
            """,
            [TOY],
        )
        self.assertEqual(
            sorted(problems),
            sorted([
                "provider toy has no argument colour",
                "provider toy has no dynamic block rules",
                "provider toy has no argument size",
                "provider toy has no resource aws_gadget",
            ]),
        )

    def test_finds_missing_required_and_wrong_kinds(self):
        problems = check(
            """
            resource "aws_thing" "this" {
              tags = {}
              rule = [{ id = "r" }]
              network {
                subnets {}
              }
            }
            """,
            [TOY],
        )
        self.assertEqual(
            sorted(problems),
            sorted([
                "provider toy: rule is a block (`rule { ... }`), not an argument",
                "provider toy: subnets is an argument (`subnets = ...`), not a block",
                "provider toy requires argument name",
            ]),
        )

    def test_either_kind_when_the_schema_does_not_tell(self):
        loose = dict(TOY, kinds_known=False)
        self.assertEqual(check('resource "aws_thing" "x" {\n name = "x"\n rule = [{ id = "r" }]\n network {}\n}\n', [loose]), [])


def schema_or_skip(test, major):
    if major == 5:
        mirror = provider_schema.find_mirror()
        if not mirror:
            print("SKIPPED: no provider mirror: the provider 5 schema test does not run", file=sys.stderr)
            test.skipTest("no provider mirror")
        return provider_schema.provider5_schema(CACHE, mirror)
    if shutil.which("npm") is None:
        print("SKIPPED: no npm: the provider 6 schema test does not run", file=sys.stderr)
        test.skipTest("no npm")
    return provider_schema.provider6_schema(CACHE)


COMPUTE_ENVIRONMENT = """
resource "aws_batch_compute_environment" "this" {
  %s
  type = "MANAGED"
  compute_resources {
    type               = "FARGATE"
    max_vcpus          = 4
    subnets            = ["subnet-1"]
    security_group_ids = ["sg-1"]
  }
}
"""


class RealSchemas(unittest.TestCase):
    """The checker with the real schemas bites on the argument provider 6 renamed."""

    def test_name_is_refused_by_provider_5(self):
        problems = check(COMPUTE_ENVIRONMENT % 'name = "converter"', [schema_or_skip(self, 5)])
        self.assertEqual(problems, ["provider 5.100.0 has no argument name"])

    def test_compute_environment_name_is_refused_by_provider_6(self):
        schema = schema_or_skip(self, 6)
        problems = check(COMPUTE_ENVIRONMENT % 'compute_environment_name = "converter"', [schema])
        self.assertEqual(problems, [f"provider {schema['provider']} has no argument compute_environment_name"])

    def test_neither_is_accepted_by_both(self):
        self.assertEqual(check(COMPUTE_ENVIRONMENT % "", [schema_or_skip(self, 5), schema_or_skip(self, 6)]), [])


class MetricFilterPatterns(unittest.TestCase):
    def test_subset(self):
        line = {"_aws": {"CloudWatchMetrics": [{"Namespace": "N"}]}, "Function": "f", "RowsRejected": 0.0}
        self.assertTrue(deployable.filter_matches('{ ($._aws.CloudWatchMetrics[0].Namespace = "N") && ($.RowsRejected >= 0) }', line))
        self.assertFalse(deployable.filter_matches('{ ($._aws.CloudWatchMetrics[0].Namespace = "M") && ($.RowsRejected >= 0) }', line))
        self.assertFalse(deployable.filter_matches("{ $.ManifestsFailed >= 0 }", line))
        self.assertFalse(deployable.filter_matches("{ $._aws.CloudWatchMetrics[1].Namespace = \"N\" }", line))
        self.assertTrue(deployable.filter_matches('{ $.Function != "g" }', line))
        with self.assertRaises(ValueError):
            deployable.filter_matches("[ip, user]", line)


class MarkFailedRetry(unittest.TestCase):
    def test_the_old_retry_is_refused(self):
        states = {"MarkFailed": {"Retry": [{"ErrorEquals": [
            "DynamoDB.ProvisionedThroughputExceededException", "DynamoDB.InternalServerErrorException", "DynamoDB.ThrottlingException",
        ], "MaxAttempts": 6}]}}
        problems = deployable.check_mark_failed_retry(states)
        self.assertTrue(any("InternalServerErrorException" in p for p in problems), problems)
        self.assertTrue(any("States.ALL" in p for p in problems), problems)

    def test_retrying_a_failed_condition_is_refused(self):
        states = {"MarkFailed": {"Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 6}]}}
        self.assertTrue(any("ConditionalCheckFailed" in p for p in deployable.check_mark_failed_retry(states)))

    def test_everything_but_a_failed_condition_is_accepted(self):
        states = {"MarkFailed": {"Retry": [
            {"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "MaxAttempts": 0},
            {"ErrorEquals": ["States.ALL"], "MaxAttempts": 6},
        ]}}
        self.assertEqual(deployable.check_mark_failed_retry(states), [])


if __name__ == "__main__":
    unittest.main()
