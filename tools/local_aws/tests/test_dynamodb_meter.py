"""Tests of the DynamoDB meter: item sizes as shared/src/ledger/item.rs::size bills them, and
real requests signed with an assumed role's keys metered as DynamoDB would bill them."""

from __future__ import annotations

import json
import unittest

from tools.local_aws import dynamodb_meter, iam_audit
from tools.local_aws.dynamodb_meter import METER, item_size
from tools.local_aws.emulator import Emulator
from tools.local_aws.iam_audit import RECORDER, Audit

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


class SizeTest(unittest.TestCase):
    def test_sizes_follow_the_ledgers_billing(self):
        # As item.rs's `size`: names plus values; numbers by significant digits.
        self.assertEqual(item_size({"pk": {"S": "V#b/k"}}), 2 + 5)
        self.assertEqual(item_size({"n": {"N": "12500"}}), 1 + 3)
        self.assertEqual(item_size({"n": {"N": "-0.5"}}), 1 + 2)
        self.assertEqual(item_size({"b": {"B": b"\x00\x01\x02"}}), 1 + 3)
        self.assertEqual(item_size({"l": {"L": [{"S": "ab"}, {"N": "7"}]}}), 1 + 3 + (1 + 2) + (1 + 2))
        self.assertEqual(dynamodb_meter.write_units(1024), 1)
        self.assertEqual(dynamodb_meter.write_units(1025), 2)
        self.assertEqual(dynamodb_meter.read_units(4097), 2)


class MeterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        iam_audit.install()
        dynamodb_meter.install()
        cls.aws = Emulator()
        cls.table = "metered"
        cls.aws.client("dynamodb").create_table(
            TableName=cls.table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        iam = cls.aws.client("iam")
        cls.role = iam.create_role(RoleName="metered-builder", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]

    @classmethod
    def tearDownClass(cls):
        cls.aws.stop()

    def test_role_requests_are_billed_and_the_harness_is_not(self):
        RECORDER.clear()
        METER.clear()
        audit = Audit(self.aws)
        ddb = audit.client("dynamodb", self.role, "metered-builder")
        big = "x" * 1500
        key = {"pk": {"S": "M#m"}, "sk": {"S": "M"}}
        ddb.put_item(TableName=self.table, Item={**key, "status": {"S": "running"}, "blob": {"S": big}})
        ddb.update_item(TableName=self.table, Key=key, UpdateExpression="SET #s = :s",
                        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "failed"}})
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": {"pk": {"S": "O#01"}, "sk": {"S": "a"}}}},
            {"Update": {"TableName": self.table, "Key": key, "UpdateExpression": "SET #s = :s",
                        "ConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "failed"}}}},
        ])
        ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        ddb.delete_item(TableName=self.table, Key={"pk": {"S": "O#01"}, "sk": {"S": "a"}})
        # The harness's own reads are not the pipeline's cost.
        self.aws.client("dynamodb").scan(TableName=self.table)
        usage = METER.snapshot()
        self.assertEqual(list(usage), ["metered-builder"])
        builder = usage["metered-builder"]
        # put 2 (1.5 KB), update 2 (the item stays above 1 KB), transaction 2 x (1 + 2), delete 1.
        self.assertEqual(builder.write_units, 2 + 2 + 6 + 1)
        self.assertEqual(builder.read_units, 1)
        self.assertEqual(sum(builder.requests.values()), 5)
        # By the kind of item: the transaction's put of the open entry and its update of the
        # manifest each billed twice, the delete to the open entry.
        self.assertEqual(builder.writes_by_kind, {"M": 2 + 2 + 4, "O": 2 + 1})
        # Billed by table too: another pipeline's tables see none of it.
        self.assertEqual(METER.snapshot({self.table}).keys(), usage.keys())
        self.assertEqual(METER.snapshot({self.table})["metered-builder"].write_units, builder.write_units)
        self.assertEqual(METER.snapshot({"another-pipeline"}), {})


if __name__ == "__main__":
    unittest.main()
