"""Tests of the IAM audit: requests recorded per assumed role, mapped to what AWS authorizes,
and evaluated by the IAM simulator against identity and resource policies.

Needs the evaluator installed: `(cd tests/iam && npm ci)`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import unittest

from tools.local_aws import iam_audit
from tools.local_aws.emulator import ACCOUNT, REGION, Emulator
from tools.local_aws.iam_audit import RECORDER, Audit, Authorization, Resources, authorizations

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class FakeResources(Resources):
    """One SSE-KMS bucket default and one encrypted queue, for the mapping alone."""

    KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k-1"

    def bucket_kms_key(self, bucket):
        return self.KEY, True

    def object_kms_key(self, bucket, key, version):
        return self.KEY

    def queue_kms_key(self, name):
        return self.KEY if name == "encrypted" else None

    def state_machine_kms_key(self, arn):
        return self.KEY


def mapped(service, operation, **params) -> list[Authorization]:
    return authorizations(service, operation, params, FakeResources(ACCOUNT, REGION))


def pairs(auths) -> list[tuple[str, str]]:
    return [(a.action, a.resource) for a in auths]


class MappingTest(unittest.TestCase):
    def test_head_bucket_is_list_bucket_without_a_prefix(self):
        (auth,) = mapped("s3", "HeadBucket", Bucket="out")
        self.assertEqual((auth.action, auth.resource), ("s3:ListBucket", "arn:aws:s3:::out"))
        self.assertNotIn("s3:prefix", auth.context_dict())
        self.assertEqual(auth.policy_holder, "arn:aws:s3:::out")

    def test_list_objects_carries_prefix_and_max_keys(self):
        (auth,) = mapped("s3", "ListObjectsV2", Bucket="out", Prefix="parquet/", MaxKeys=1000)
        self.assertEqual(auth.context_dict()["s3:prefix"], "parquet/")
        self.assertEqual(auth.context_dict()["s3:max-keys"], "1000")

    def test_reads_and_writes_of_sse_kms_objects_use_the_key(self):
        get = mapped("s3", "GetObject", Bucket="in", Key="a/b.json")
        self.assertEqual(pairs(get), [("s3:GetObject", "arn:aws:s3:::in/a/b.json"), ("kms:Decrypt", FakeResources.KEY)])
        self.assertEqual(get[1].context_dict()["kms:ViaService"], f"s3.{REGION}.amazonaws.com")
        self.assertEqual(get[1].context_dict()["kms:EncryptionContext:aws:s3:arn"], "arn:aws:s3:::in")
        self.assertEqual(pairs(mapped("s3", "HeadObject", Bucket="in", Key="k")), [("s3:GetObject", "arn:aws:s3:::in/k")])
        self.assertEqual(mapped("s3", "GetObject", Bucket="in", Key="k", VersionId="v1")[0].action, "s3:GetObjectVersion")
        put = mapped("s3", "PutObject", Bucket="out", Key="p/x", ServerSideEncryption="aws:kms", SSEKMSKeyId=FakeResources.KEY)
        self.assertEqual(pairs(put), [("s3:PutObject", "arn:aws:s3:::out/p/x"), ("kms:GenerateDataKey", FakeResources.KEY)])
        self.assertEqual(put[0].context_dict()["s3:x-amz-server-side-encryption"], "aws:kms")
        self.assertEqual(put[0].context_dict()["s3:x-amz-server-side-encryption-aws-kms-key-id"], FakeResources.KEY)
        self.assertEqual([a.action for a in mapped("s3", "UploadPart", Bucket="out", Key="p/x", UploadId="u")],
                         ["s3:PutObject", "kms:Decrypt"])
        self.assertEqual(pairs(mapped("s3", "AbortMultipartUpload", Bucket="out", Key="p/x", UploadId="u")),
                         [("s3:AbortMultipartUpload", "arn:aws:s3:::out/p/x")])

    def test_delete_objects_is_one_delete_per_key(self):
        auths = mapped("s3", "DeleteObjects", Bucket="out", Delete={"Objects": [{"Key": "a"}, {"Key": "b", "VersionId": "2"}]})
        self.assertEqual(pairs(auths), [("s3:DeleteObject", "arn:aws:s3:::out/a"), ("s3:DeleteObjectVersion", "arn:aws:s3:::out/b")])

    def test_dynamodb_index_queries_and_transactions(self):
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t"
        self.assertEqual(pairs(mapped("dynamodb", "Query", TableName="t", IndexName="pending-index")),
                         [("dynamodb:Query", f"{table}/index/pending-index")])
        self.assertEqual(pairs(mapped("dynamodb", "UpdateItem", TableName="t")), [("dynamodb:UpdateItem", table)])
        auths = mapped("dynamodb", "TransactWriteItems", TransactItems=[
            {"Put": {"TableName": "t"}}, {"Update": {"TableName": "u"}}, {"ConditionCheck": {"TableName": "t"}}])
        self.assertEqual([a.action for a in auths], ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"])
        self.assertTrue(auths[1].resource.endswith(":table/u"))

    def test_queues_step_functions_and_lambda(self):
        url = f"http://127.0.0.1:1/{ACCOUNT}/encrypted"
        queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:encrypted"
        self.assertEqual(pairs(mapped("sqs", "ReceiveMessage", QueueUrl=url)), [("sqs:ReceiveMessage", queue), ("kms:Decrypt", FakeResources.KEY)])
        self.assertEqual(pairs(mapped("sqs", "DeleteMessageBatch", QueueUrl=url, Entries=[])), [("sqs:DeleteMessage", queue)])
        self.assertEqual([a.action for a in mapped("sqs", "SendMessage", QueueUrl=url, MessageBody="x")],
                         ["sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt"])
        machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:m"
        execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:m:run-1"
        self.assertEqual(pairs(mapped("stepfunctions", "StartExecution", stateMachineArn=machine)),
                         [("states:StartExecution", machine), ("kms:GenerateDataKey", FakeResources.KEY)])
        self.assertEqual(pairs(mapped("stepfunctions", "DescribeExecution", executionArn=execution)),
                         [("states:DescribeExecution", execution), ("kms:Decrypt", FakeResources.KEY)])
        function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:conv"
        self.assertEqual(pairs(mapped("lambda", "Invoke", FunctionName="conv")), [("lambda:InvokeFunction", function)])
        self.assertEqual(pairs(mapped("lambda", "Invoke", FunctionName=function, Qualifier="live")),
                         [("lambda:InvokeFunction", function + ":live")])

    def test_an_unknown_operation_is_not_silently_allowed(self):
        with self.assertRaises(iam_audit.Unmapped):
            mapped("s3", "PutBucketPolicy", Bucket="out")


class AuditTest(unittest.TestCase):
    """Real requests through the emulator, signed with assumed roles' keys, evaluated by the simulator."""

    @classmethod
    def setUpClass(cls):
        iam_audit.install()
        cls.aws = Emulator()
        cls.iam = cls.aws.client("iam")
        cls.s3 = cls.aws.client("s3")
        cls.key = cls.aws.client("kms").create_key(Description="data")["KeyMetadata"]["Arn"]
        cls.bucket = "audit-output"
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.s3.put_bucket_encryption(
            Bucket=cls.bucket,
            ServerSideEncryptionConfiguration={"Rules": [{
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": cls.key},
                "BucketKeyEnabled": True,
            }]},
        )
        bucket = f"arn:aws:s3:::{cls.bucket}"
        cls.s3.put_bucket_policy(Bucket=cls.bucket, Policy=policy(
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [bucket, f"{bucket}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "NobodyReadsSecrets", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
             "Resource": f"{bucket}/secret/*"},
        ))
        cls.s3.put_object(Bucket=cls.bucket, Key="secret/x", Body=b"s")
        cls.s3.put_object(Bucket=cls.bucket, Key="parquet/seen", Body=b"p")

    @classmethod
    def tearDownClass(cls):
        cls.aws.stop()

    def setUp(self):
        RECORDER.clear()
        self.audit = Audit(self.aws)
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def role(self, name: str, *statements) -> str:
        arn = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        self.iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=policy(*statements))
        self.audit.register(name, arn)
        return arn

    def evaluate(self):
        report = self.audit.evaluate(self.tmp.name, platform=False)
        if any("not installed" in p or "no `node`" in p for p in report.problems):
            self.fail("\n".join(report.problems))
        return report

    def verdicts(self, report, role: str) -> dict[tuple[str, str], iam_audit.Verdict]:
        return {(v.action, v.resource): v for v in report.verdicts if v.role == role}

    def converter_like(self, name: str, kms: bool = True) -> str:
        bucket = f"arn:aws:s3:::{self.bucket}"
        statements = [
            {"Sid": "ListOwnParts", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket,
             "Condition": {"StringLike": {"s3:prefix": ["parquet/*", "errors/*"]}}},
            {"Sid": "WriteOutput", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
             "Resource": [f"{bucket}/parquet/*", f"{bucket}/secret/*"]},
        ]
        if kms:
            statements.append({"Sid": "Key", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": self.key})
        return self.role(name, *statements)

    def test_head_bucket_is_denied_where_a_prefix_condition_guards_list_bucket(self):
        self.converter_like("conv-list")
        s3 = self.audit.client("s3", self.audit.roles["conv-list"], "conv-list")
        s3.head_bucket(Bucket=self.bucket)  # moto lets it through; IAM would not
        s3.list_objects_v2(Bucket=self.bucket, Prefix="parquet/")
        report = self.evaluate()
        bucket = f"arn:aws:s3:::{self.bucket}"
        listed = [v for v in report.verdicts if v.role == "conv-list" and v.action == "s3:ListBucket"]
        self.assertEqual(len(listed), 2, report.output)
        head = next(v for v in listed if "s3.HeadBucket" in v.operations)
        lister = next(v for v in listed if v is not head)
        self.assertEqual(head.verdict, "ImplicitlyDenied", report.output)
        self.assertIn("s3:prefix", head.reason)
        self.assertIn("absent", head.reason)
        self.assertEqual(lister.verdict, "Allowed", report.output)
        self.assertEqual(lister.context["s3:prefix"], "parquet/")
        self.assertEqual(lister.resource, bucket)
        self.assertFalse(report.ok)
        self.assertIn("ListOwnParts", lister.reason)

    def test_an_sse_kms_put_is_allowed_only_with_the_key_grant(self):
        self.converter_like("conv-kms")
        self.converter_like("conv-nokms", kms=False)
        for name in ("conv-kms", "conv-nokms"):
            s3 = self.audit.client("s3", self.audit.roles[name], name)
            s3.put_object(Bucket=self.bucket, Key=f"parquet/{name}.parquet", Body=b"x",
                          ServerSideEncryption="aws:kms", SSEKMSKeyId=self.key, BucketKeyEnabled=True)
        report = self.evaluate()
        for name, kms_verdict in (("conv-kms", "Allowed"), ("conv-nokms", "ImplicitlyDenied")):
            v = self.verdicts(report, name)
            put = v[("s3:PutObject", f"arn:aws:s3:::{self.bucket}/parquet/{name}.parquet")]
            self.assertEqual(put.verdict, "Allowed", report.output)
            self.assertEqual(put.context["s3:x-amz-server-side-encryption"], "aws:kms")
            key = v[("kms:GenerateDataKey", self.key)]
            self.assertEqual(key.verdict, kms_verdict, report.output)
            self.assertEqual(key.context["kms:ViaService"], f"s3.{REGION}.amazonaws.com")
        self.assertEqual([d.role for d in report.denied], ["conv-nokms"])

    def test_an_explicit_deny_in_the_bucket_policy_wins_over_an_identity_allow(self):
        self.converter_like("conv-deny")
        s3 = self.audit.client("s3", self.audit.roles["conv-deny"], "conv-deny")
        s3.get_object(Bucket=self.bucket, Key="secret/x")  # moto serves it; the audit must not
        s3.get_object(Bucket=self.bucket, Key="parquet/seen")["Body"].read()
        report = self.evaluate()
        v = self.verdicts(report, "conv-deny")
        secret = v[("s3:GetObject", f"arn:aws:s3:::{self.bucket}/secret/x")]
        self.assertEqual(secret.verdict, "ExplicitlyDenied", report.output)
        self.assertIn("NobodyReadsSecrets", secret.reason)
        self.assertEqual(v[("s3:GetObject", f"arn:aws:s3:::{self.bucket}/parquet/seen")].verdict, "Allowed")
        self.assertNotIn(("s3:ListBucket", f"arn:aws:s3:::{self.bucket}"), v, "no 404-or-403 check for objects that exist")
        # The object was written without SSE headers: S3 encrypted it under the bucket default.
        self.assertEqual(v[("kms:Decrypt", self.key)].verdict, "Allowed", report.output)

    def test_a_missing_object_is_404_only_with_list_bucket(self):
        self.converter_like("conv-missing")
        s3 = self.audit.client("s3", self.audit.roles["conv-missing"], "conv-missing")
        with self.assertRaises(Exception):
            s3.get_object(Bucket=self.bucket, Key="parquet/never-written")
        report = self.evaluate()
        v = self.verdicts(report, "conv-missing")
        self.assertEqual(v[("s3:GetObject", f"arn:aws:s3:::{self.bucket}/parquet/never-written")].verdict, "Allowed")
        # ListOwnParts only lists under a prefix: without one, S3 would answer 403, not 404.
        missing = v[("s3:ListBucket", f"arn:aws:s3:::{self.bucket}")]
        self.assertEqual(missing.verdict, "ImplicitlyDenied", report.output)
        self.assertEqual(missing.operations, {"s3.GetObject": 1})

    def test_only_assumed_roles_requests_are_recorded_and_unused_grants_are_listed(self):
        self.converter_like("conv-quiet")
        self.s3.list_objects_v2(Bucket=self.bucket)  # the harness's own keys: not audited
        s3 = self.audit.client("s3", self.audit.roles["conv-quiet"], "conv-quiet")
        s3.list_objects_v2(Bucket=self.bucket, Prefix="errors/")
        s3.list_objects_v2(Bucket=self.bucket, Prefix="parquet/")
        # Every request once, by role and operation (the cost census), the harness's not at all.
        self.assertEqual({k: n for k, n in RECORDER.calls.items() if k[0].endswith("/conv-quiet")},
                         {(self.audit.roles["conv-quiet"], "s3.ListObjectsV2"): 2})
        report = self.evaluate()
        self.assertTrue(report.ok, report.output + "\n".join(report.problems))
        self.assertEqual({(v.role, v.action) for v in report.verdicts}, {("conv-quiet", "s3:ListBucket")})
        unused = {(g["sid"], g["action"], g["resource"].split(":::")[-1]) for g in report.unused}
        self.assertIn(("WriteOutput", "s3:DeleteObject", f"{self.bucket}/parquet/*"), unused)
        self.assertIn(("Key", "kms:GenerateDataKey", self.key.split(":::")[-1]), unused)
        self.assertNotIn(("ListOwnParts", "s3:ListBucket", self.bucket), unused)
        self.assertIn("conv-quiet", report.markdown())
        self.assertIn("DeleteObject", report.unused_markdown())

    def test_a_key_policy_that_names_nobody_denies_whatever_iam_allows(self):
        kms = self.aws.client("kms")
        locked = kms.create_key(Policy=policy({
            "Sid": "OnlySomeoneElse", "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/someone-else"}, "Action": "kms:*", "Resource": "*"}),
            BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["Arn"]
        arn = self.role("key-user", {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": [self.key, locked]})
        client = self.audit.client("kms", arn, "key-user")
        client.describe_key(KeyId=self.key)
        client.describe_key(KeyId=locked)
        report = self.evaluate()
        v = self.verdicts(report, "key-user")
        self.assertEqual(v[("kms:DescribeKey", self.key)].verdict, "Allowed", report.output)
        self.assertEqual(v[("kms:DescribeKey", locked)].verdict, "ImplicitlyDenied", report.output)

    def test_the_state_machines_calls_are_its_roles(self):
        ddb = self.aws.client("dynamodb")
        ddb.create_table(TableName="audit-table", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/audit-table"
        arn = self.iam.create_role(RoleName="audit-sfn", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        self.iam.put_role_policy(RoleName="audit-sfn", PolicyName="p", PolicyDocument=policy(
            {"Sid": "MarkFailed", "Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": table}))
        self.audit.register("state-machine", arn)
        definition = {"StartAt": "Mark", "States": {"Mark": {
            "Type": "Task", "Resource": "arn:aws:states:::dynamodb:updateItem", "End": True,
            "Parameters": {"TableName": "audit-table", "Key": {"pk": {"S": "m-1"}},
                           "UpdateExpression": "SET #s = :s", "ExpressionAttributeNames": {"#s": "status"},
                           "ExpressionAttributeValues": {":s": {"S": "failed"}}}}}}
        sfn = self.aws.client("stepfunctions")
        machines = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
        for m in machines:  # one state machine: its role is the interpreter's
            sfn.delete_state_machine(stateMachineArn=m)
        machine = sfn.create_state_machine(name="audit-sm", definition=json.dumps(definition), roleArn=arn)["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine)["executionArn"]
        for _ in range(100):
            if sfn.describe_execution(executionArn=execution)["status"] != "RUNNING":
                break
            time.sleep(0.1)
        self.assertEqual(sfn.describe_execution(executionArn=execution)["status"], "SUCCEEDED")
        report = self.evaluate()
        v = self.verdicts(report, "state-machine")
        self.assertEqual(v[("dynamodb:UpdateItem", table)].verdict, "Allowed", report.output)
        self.assertTrue(report.ok, report.output + "\n".join(report.problems))


class TlsOnlyTest(unittest.TestCase):
    """The buckets' TLS-only Deny, as Terraform renders it, evaluated directly."""

    def test_the_tls_only_deny_spares_requests_over_tls_and_stops_the_others(self):
        bucket = "arn:aws:s3:::b"
        role = f"arn:aws:iam::{ACCOUNT}:role/r"
        document = {
            "roles": [{"roleArn": role, "principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/r/s", "identityPolicies": [
                {"name": "inline:r", "policy": json.loads(policy({"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject",
                                                                   "Resource": f"{bucket}/*"}))}]}],
            "resourcePolicies": {bucket: json.loads(policy({
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [bucket, f"{bucket}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}))},
            "requests": [
                {"id": n, "roleArn": role, "action": "s3:GetObject", "resource": f"{bucket}/k", "resourceAccount": ACCOUNT,
                 "context": {"aws:SecureTransport": tls}, "resourcePolicy": bucket}
                for n, tls in enumerate(("true", "false"))
            ],
        }
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "in.json")
            with open(source, "w") as f:
                json.dump(document, f)
            out, text = iam_audit.run_evaluator(source, os.path.join(tmp, "out.json"))
        verdicts = [r["verdict"] for r in out["results"]]
        self.assertEqual(verdicts, ["Allowed", "ExplicitlyDenied"], text)
        self.assertIn("DenyInsecureTransport", out["results"][1]["reason"])


class SummaryTest(unittest.TestCase):
    def report(self, env: str, unused_sids: list[str]) -> iam_audit.Report:
        role = f"arn:aws:iam::{ACCOUNT}:role/ndjson-parquet-{env}-converter"
        key = "arn:aws:kms:us-east-1:123456789012:key/609e6977-e9f3-413b-ac97-9b45eed3325e"
        verdict = iam_audit.Verdict(
            role="converter", role_arn=role, action="s3:PutObject",
            resource=f"arn:aws:s3:::ndjson-parquet-{env}-output/parquet/a.parquet",
            context={"s3:x-amz-server-side-encryption-aws-kms-key-id": key}, operations={"s3.PutObject": 2}, count=2,
            verdict="Allowed", reason=f"allowed by inline:ndjson-parquet-{env}-converter:WriteOutput")
        unused = [{"roleArn": role, "policy": "p", "statement": 1, "sid": sid, "action": "s3:DeleteObject",
                   "resource": f"arn:aws:s3:::ndjson-parquet-{env}-output/parquet/*"} for sid in unused_sids]
        return iam_audit.Report(verdicts=[verdict], unused=unused, labels={role: "converter"})

    def test_scenarios_pipelines_compare_and_only_grants_no_scenario_used_are_listed(self):
        text = iam_audit.summary_markdown({
            "a": self.report("happy", ["WriteOutput", "Other"]),
            "b": self.report("poison", ["WriteOutput"]),
            "c": None,
        })
        rows = [line for line in text.splitlines() if line.startswith("| converter |")]
        self.assertEqual(len(rows), 2, text)  # one merged verdict row, one unused grant
        self.assertIn("`arn:aws:s3:::{name}-output/parquet/a.parquet`", rows[0])
        self.assertIn("{name}-converter:WriteOutput", rows[0])
        self.assertIn("key/{key}", rows[0])
        self.assertIn("| converter | WriteOutput | `s3:DeleteObject` | `arn:aws:s3:::{name}-output/parquet/*` |", rows[1])
        self.assertNotIn("Other", text)


class ResetTest(unittest.TestCase):
    def test_the_record_is_emptied_when_moto_is_reset(self):
        iam_audit.install()
        first = Emulator()
        try:
            audit = Audit(first)
            arn = first.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
            audit.client("sts", arn, "r-session").get_caller_identity()
            first.client("s3").create_bucket(Bucket="reset-bucket")
            audit.client("s3", arn, "r-session").head_bucket(Bucket="reset-bucket")
            self.assertEqual([a.action for (_, a) in RECORDER.requests], ["s3:ListBucket"])
            self.assertEqual(list(RECORDER.no_permission), [(arn, "sts.GetCallerIdentity")])
        finally:
            first.stop()
        second = Emulator()  # starts from nothing, moto's state and the record alike
        second.stop()
        self.assertEqual(RECORDER.requests, {})


if __name__ == "__main__":
    unittest.main()
