"""Every AWS request the functions make, checked against the IAM policies Terraform gives them.

moto enforces no IAM, so a run on the local AWS proves nothing about permissions by itself.
This module closes that gap in three steps:

1. Recording. `install()` wraps moto's `BaseResponse.setup_class`, which every request to the
   services the pipeline uses goes through once, after moto has read the signing access key.
   Requests signed with a key that STS issued for an assumed role (each function process runs
   with its role's credentials, `Audit.environment`) are parsed with moto's own botocore
   parsers and turned into what AWS authorizes for them (`authorizations`): IAM action(s),
   resource ARN(s), request context keys, and the resource whose policy also applies (bucket,
   KMS key, queue, function). Keys that STS did not issue - the test harness's, moto's own -
   are ignored, except moto's Step Functions interpreter's, which stands for the state
   machine's role. A reset of moto's state (`/moto-api/reset`) empties the record. moto's own,
   partial, enforcement of bucket policies is switched off: the audit evaluates them.
2. Evaluation. `Audit.evaluate` reads each recorded role's inline and attached policies from
   the emulator's IAM and each resource's policy (bucket policy, key policy, queue policy,
   function policy), writes them with the distinct requests to a JSON file, and has
   `tests/iam/evaluate.mjs` (`@cloud-copilot/iam-simulate`) evaluate every request, conditions
   included. A request that is not allowed, or that could not be mapped, fails the audit.
3. Least privilege the other way: identity-policy grants (statement, action, resource) that
   no recorded request used are listed, to be justified in Terraform or removed.

Context keys that describe the caller and not the request are set as AWS would for a Lambda
function or state machine in the deployed account: the caller's role, `aws:SecureTransport`
true (the SDK reaches AWS endpoints over TLS; the local emulator's plain HTTP is a test
artefact), `aws:RequestedRegion`.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote, urlparse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EVALUATOR = os.path.join(ROOT, "tests", "iam", "evaluate.mjs")

# moto's Step Functions interpreter signs the service calls of its Task states with this key
# (moto/stepfunctions/parser/asl/utils/boto_client.py); in AWS they are the state machine's role's.
STEP_FUNCTIONS_KEY = "ak"

# --- What AWS authorizes for each operation -----------------------------------------------------


@dataclass(frozen=True)
class Authorization:
    """One authorization AWS makes for a request: `action` on `resource`, with `context`.

    `policy_holder` is the ARN of the resource whose own policy also applies (a bucket for its
    objects, a KMS key, a queue, a function), or None."""

    action: str
    resource: str
    context: tuple[tuple[str, Any], ...] = ()
    policy_holder: str | None = None
    account: str = ""

    def context_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.context}


class Unmapped(Exception):
    """An operation this module does not know how AWS authorizes: the audit fails on it."""


class Resources:
    """What the mapping needs to know about resources besides the request (their encryption).

    This base answers "unencrypted" for everything; `_MotoResources` reads moto's state."""

    def __init__(self, account: str, region: str):
        self.account = account
        self.region = region

    def key_arn(self, key_id: str) -> str:
        if key_id.startswith("arn:"):
            return key_id
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"

    def bucket_kms_key(self, bucket: str) -> tuple[str | None, bool]:
        """The KMS key (ARN) of the bucket's default encryption, and whether S3 Bucket Keys are on."""
        return None, False

    def object_kms_key(self, bucket: str, key: str, version: str | None) -> str | None:
        """The KMS key of an existing object (None: it is not SSE-KMS, or does not exist)."""
        return None

    def object_exists(self, bucket: str, key: str, version: str | None) -> bool:
        return True

    def queue_kms_key(self, name: str) -> str | None:
        return None

    def state_machine_kms_key(self, arn: str) -> str | None:
        return None

    def upload_kms_key(self, upload_id: str | None, bucket: str) -> tuple[str | None, bool]:
        """The KMS key of a multipart upload in progress (and whether Bucket Keys are on)."""
        return self.bucket_kms_key(bucket)


def _context(pairs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in pairs.items() if v is not None))


_MAPPERS: dict[tuple[str, str], Callable[[dict, Resources], list[Authorization]]] = {}


def _maps(service: str, *operations: str):
    def register(fn):
        for op in operations:
            _MAPPERS[(service, op)] = fn
        return fn

    return register


def authorizations(service: str, operation: str, params: dict, where: Resources) -> list[Authorization]:
    """What AWS authorizes for `operation` of `service` (boto3 names) called with `params`."""
    mapper = _MAPPERS.get((service, operation))
    if mapper is None:
        raise Unmapped(f"{service}.{operation}: no mapping to IAM actions")
    auths = mapper({**params, "__operation__": operation}, where)
    region = _context({"aws:RequestedRegion": where.region})
    return [
        Authorization(a.action, a.resource, tuple(sorted(a.context + region)), a.policy_holder, a.account or where.account)
        for a in auths
    ]


def mapped_operations() -> list[tuple[str, str]]:
    return sorted(_MAPPERS)


# S3 -----------------------------------------------------------------------------------------

def _bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def _object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _s3(action: str, bucket: str, key: str | None = None, context=()) -> Authorization:
    resource = _bucket_arn(bucket) if key is None else _object_arn(bucket, key)
    return Authorization(action, resource, tuple(context), _bucket_arn(bucket))


def _kms_via(action: str, key_arn: str, service: str, where: Resources, encryption_context: dict | None = None) -> Authorization:
    """A KMS call a service (S3, SQS, Step Functions) makes with the caller's permissions."""
    pairs = {
        "kms:ViaService": f"{service}.{where.region}.amazonaws.com",
        "kms:CallerAccount": where.account,
        "aws:ViaAWSService": "true",
    }
    for k, v in (encryption_context or {}).items():
        pairs[f"kms:EncryptionContext:{k}"] = v
    if encryption_context:
        pairs["kms:EncryptionContextKeys"] = sorted(encryption_context)
    return Authorization(action, key_arn, _context(pairs), key_arn)


def _s3_kms_context(bucket: str, key: str, bucket_key: bool) -> dict:
    # With S3 Bucket Keys the encryption context is the bucket's ARN, else the object's.
    return {"aws:s3:arn": _bucket_arn(bucket) if bucket_key else _object_arn(bucket, key)}


def _write_key(params: dict, where: Resources) -> tuple[str | None, bool]:
    """The KMS key a write encrypts with: the request's SSE-KMS headers, else the bucket default."""
    bucket = params["Bucket"]
    default_key, default_bucket_key = where.bucket_kms_key(bucket)
    sse = params.get("ServerSideEncryption")
    if sse in ("aws:kms", "aws:kms:dsse"):
        key = params.get("SSEKMSKeyId") or default_key
        bucket_key = params.get("BucketKeyEnabled", default_bucket_key)
        return (where.key_arn(key) if key else None), bool(bucket_key)
    if sse:  # AES256: no KMS
        return None, False
    return default_key, default_bucket_key


def _sse_context(params: dict) -> list:
    pairs = {}
    if params.get("ServerSideEncryption"):
        pairs["s3:x-amz-server-side-encryption"] = params["ServerSideEncryption"]
    if params.get("SSEKMSKeyId"):
        pairs["s3:x-amz-server-side-encryption-aws-kms-key-id"] = params["SSEKMSKeyId"]
    return list(_context(pairs))


@_maps("s3", "HeadBucket")
def _head_bucket(p, where):
    # HeadBucket is authorized as s3:ListBucket, and sends no prefix.
    return [_s3("s3:ListBucket", p["Bucket"])]


@_maps("s3", "ListObjectsV2", "ListObjects", "ListObjectVersions")
def _list_objects(p, where):
    pairs = {
        "s3:prefix": p.get("Prefix"),
        "s3:delimiter": p.get("Delimiter"),
        "s3:max-keys": str(p["MaxKeys"]) if p.get("MaxKeys") is not None else None,
    }
    action = "s3:ListBucketVersions" if "Versions" in p.get("__operation__", "") else "s3:ListBucket"
    return [_s3(action, p["Bucket"], context=_context(pairs))]


@_maps("s3", "ListMultipartUploads")
def _list_uploads(p, where):
    pairs = {"s3:prefix": p.get("Prefix"), "s3:delimiter": p.get("Delimiter")}
    return [_s3("s3:ListBucketMultipartUploads", p["Bucket"], context=_context(pairs))]


@_maps("s3", "GetBucketLocation")
def _bucket_location(p, where):
    return [_s3("s3:GetBucketLocation", p["Bucket"])]


@_maps("s3", "GetObject", "HeadObject")
def _get_object(p, where):
    bucket, key, version = p["Bucket"], p["Key"], p.get("VersionId")
    auths = [_s3("s3:GetObjectVersion" if version else "s3:GetObject", bucket, key)]
    if not where.object_exists(bucket, key, version):
        # "If the object you request doesn't exist, the error Amazon S3 returns depends on
        # whether you also have the s3:ListBucket permission": 404 with it, 403 without (S3 API
        # reference). The request names no prefix.
        auths.append(_s3("s3:ListBucket", bucket))
    # Reading an SSE-KMS object decrypts its data key with the caller's permissions; a HEAD
    # only when it asks for the object's checksum.
    if p.get("__operation__") == "GetObject" or p.get("ChecksumMode") == "ENABLED":
        kms_key = where.object_kms_key(bucket, key, version)
        if kms_key:
            _, bucket_key = where.bucket_kms_key(bucket)
            auths.append(_kms_via("kms:Decrypt", kms_key, "s3", where, _s3_kms_context(bucket, key, bucket_key)))
    return auths


@_maps("s3", "GetObjectTagging")
def _get_tagging(p, where):
    return [_s3("s3:GetObjectVersionTagging" if p.get("VersionId") else "s3:GetObjectTagging", p["Bucket"], p["Key"])]


@_maps("s3", "PutObject", "CreateMultipartUpload")
def _put_object(p, where):
    bucket, key = p["Bucket"], p["Key"]
    auths = [_s3("s3:PutObject", bucket, key, _sse_context(p))]
    if p.get("Tagging"):
        auths.append(_s3("s3:PutObjectTagging", bucket, key))
    if p.get("ACL") or any(p.get(g) for g in ("GrantRead", "GrantReadACP", "GrantWriteACP", "GrantFullControl")):
        auths.append(_s3("s3:PutObjectAcl", bucket, key))
    kms_key, bucket_key = _write_key(p, where)
    if kms_key:
        # PutObject and CreateMultipartUpload generate the data key (S3 API reference).
        auths.append(_kms_via("kms:GenerateDataKey", kms_key, "s3", where, _s3_kms_context(bucket, key, bucket_key)))
    return auths


@_maps("s3", "UploadPart", "CompleteMultipartUpload")
def _upload_part(p, where):
    bucket, key = p["Bucket"], p["Key"]
    auths = [_s3("s3:PutObject", bucket, key)]
    # "the requester needs permissions for the kms:Decrypt action on the UploadPart and
    # UploadPartCopy APIs", and CompleteMultipartUpload decrypts the parts to check their
    # checksums (S3 API reference, CreateMultipartUpload / CompleteMultipartUpload).
    kms_key, bucket_key = where.upload_kms_key(p.get("UploadId"), bucket)
    if kms_key:
        auths.append(_kms_via("kms:Decrypt", kms_key, "s3", where, _s3_kms_context(bucket, key, bucket_key)))
    return auths


@_maps("s3", "AbortMultipartUpload")
def _abort_upload(p, where):
    return [_s3("s3:AbortMultipartUpload", p["Bucket"], p["Key"])]


@_maps("s3", "ListParts")
def _list_parts(p, where):
    return [_s3("s3:ListMultipartUploadParts", p["Bucket"], p["Key"])]


@_maps("s3", "DeleteObject")
def _delete_object(p, where):
    return [_s3("s3:DeleteObjectVersion" if p.get("VersionId") else "s3:DeleteObject", p["Bucket"], p["Key"])]


@_maps("s3", "DeleteObjects")
def _delete_objects(p, where):
    # Authorized per key, as if each were a DeleteObject.
    return [
        _s3("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject", p["Bucket"], o["Key"])
        for o in (p.get("Delete") or {}).get("Objects", [])
    ]


@_maps("s3", "CopyObject")
def _copy_object(p, where):
    source = unquote(p["CopySource"].split("?versionId=")[0]).lstrip("/")
    source_bucket, _, source_key = source.partition("/")
    auths = _put_object({**p, "__operation__": "PutObject"}, where)
    auths.append(_s3("s3:GetObject", source_bucket, source_key))
    kms_key = where.object_kms_key(source_bucket, source_key, None)
    if kms_key:
        _, bucket_key = where.bucket_kms_key(source_bucket)
        auths.append(_kms_via("kms:Decrypt", kms_key, "s3", where, _s3_kms_context(source_bucket, source_key, bucket_key)))
    return auths


# DynamoDB -----------------------------------------------------------------------------------

def _table_arn(name: str, where: Resources, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{where.region}:{where.account}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


@_maps("dynamodb", "GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable")
def _dynamodb_item(p, where):
    return [Authorization(f"dynamodb:{p['__operation__']}", _table_arn(p["TableName"], where))]


@_maps("dynamodb", "Query", "Scan")
def _dynamodb_read(p, where):
    # An index query is authorized on the index's ARN.
    return [Authorization(f"dynamodb:{p['__operation__']}", _table_arn(p["TableName"], where, p.get("IndexName")))]


@_maps("dynamodb", "BatchGetItem", "BatchWriteItem")
def _dynamodb_batch(p, where):
    return [Authorization(f"dynamodb:{p['__operation__']}", _table_arn(t, where)) for t in (p.get("RequestItems") or {})]


@_maps("dynamodb", "TransactWriteItems", "TransactGetItems")
def _dynamodb_transaction(p, where):
    # Each item is authorized as its own single-item action, on its own table.
    actions = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
    auths = []
    for item in p.get("TransactItems") or []:
        for kind, body in item.items():
            auths.append(Authorization(f"dynamodb:{actions[kind]}", _table_arn(body["TableName"], where)))
    return auths


# Step Functions -----------------------------------------------------------------------------

def _machine_of_execution(execution_arn: str) -> str:
    # arn:aws:states:R:A:execution:MACHINE:NAME -> arn:aws:states:R:A:stateMachine:MACHINE
    head, _, _name = execution_arn.rpartition(":")
    return head.replace(":execution:", ":stateMachine:")


@_maps("stepfunctions", "StartExecution", "StartSyncExecution")
def _start_execution(p, where):
    machine = p["stateMachineArn"]
    auths = [Authorization(f"states:{p['__operation__']}", machine)]
    # A state machine under a customer managed key encrypts the execution's input with a data
    # key generated with the caller's permissions (Step Functions, data at rest encryption).
    kms_key = where.state_machine_kms_key(machine)
    if kms_key:
        auths.append(_kms_via("kms:GenerateDataKey", kms_key, "states", where, {"aws:states:stateMachineArn": machine}))
    return auths


@_maps("stepfunctions", "DescribeExecution", "GetExecutionHistory", "StopExecution", "DescribeStateMachineForExecution")
def _execution(p, where):
    execution = p["executionArn"]
    auths = [Authorization(f"states:{p['__operation__']}", execution)]
    # "If your state machine definition is encrypted with a KMS key, callers must have
    # kms:Decrypt permission" (DescribeExecution API reference), unless only metadata is asked.
    if p["__operation__"] != "StopExecution" and p.get("includedData") != "METADATA_ONLY":
        machine = _machine_of_execution(execution)
        kms_key = where.state_machine_kms_key(machine)
        if kms_key:
            auths.append(_kms_via("kms:Decrypt", kms_key, "states", where, {"aws:states:stateMachineArn": machine}))
    return auths


@_maps("stepfunctions", "ListExecutions", "DescribeStateMachine")
def _state_machine(p, where):
    return [Authorization(f"states:{p['__operation__']}", p["stateMachineArn"])]


# SQS ----------------------------------------------------------------------------------------

def _queue(p: dict, where: Resources) -> tuple[str, str]:
    if p.get("QueueUrl"):
        parts = urlparse(p["QueueUrl"]).path.strip("/").split("/")
        account, name = (parts[-2], parts[-1]) if len(parts) >= 2 else (where.account, parts[-1])
    else:
        account, name = p.get("QueueOwnerAWSAccountId") or where.account, p["QueueName"]
    return f"arn:aws:sqs:{where.region}:{account}:{name}", name


SQS_ACTIONS = {
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "GetQueueUrl": "sqs:GetQueueUrl",
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "PurgeQueue": "sqs:PurgeQueue",
}


@_maps("sqs", *SQS_ACTIONS)
def _sqs(p, where):
    arn, name = _queue(p, where)
    op = p["__operation__"]
    auths = [Authorization(SQS_ACTIONS[op], arn, (), arn)]
    # An SSE-KMS queue: consumers need kms:Decrypt; producers kms:GenerateDataKey and
    # kms:Decrypt (SQS developer guide, key management).
    kms_key = where.queue_kms_key(name)
    if kms_key and op == "ReceiveMessage":
        auths.append(_kms_via("kms:Decrypt", kms_key, "sqs", where, {"aws:sqs:arn": arn}))
    if kms_key and op.startswith("SendMessage"):
        auths.append(_kms_via("kms:GenerateDataKey", kms_key, "sqs", where, {"aws:sqs:arn": arn}))
        auths.append(_kms_via("kms:Decrypt", kms_key, "sqs", where, {"aws:sqs:arn": arn}))
    return auths


# KMS, Lambda, CloudWatch, STS ----------------------------------------------------------------

@_maps("kms", "DescribeKey", "Encrypt", "Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GetKeyPolicy", "GetKeyRotationStatus", "ReEncrypt")
def _kms(p, where):
    key_id = p.get("KeyId") or (p.get("SourceKeyId") if p["__operation__"] == "ReEncrypt" else None)
    if not key_id:
        raise Unmapped(f"kms.{p['__operation__']} without a KeyId: the key comes from the ciphertext")
    arn = where.key_arn(key_id)
    pairs = {"kms:CallerAccount": where.account}
    if key_id.startswith("alias/") or ":alias/" in key_id:
        pairs["kms:RequestAlias"] = "alias/" + key_id.split("alias/", 1)[1]
    for k, v in (p.get("EncryptionContext") or {}).items():
        pairs[f"kms:EncryptionContext:{k}"] = v
    if p.get("EncryptionContext"):
        pairs["kms:EncryptionContextKeys"] = sorted(p["EncryptionContext"])
    if p["__operation__"] == "ReEncrypt":
        auths = [Authorization("kms:ReEncryptFrom", arn, _context(pairs), arn)]
        to = where.key_arn(p["DestinationKeyId"])
        return auths + [Authorization("kms:ReEncryptTo", to, _context(pairs), to)]
    return [Authorization(f"kms:{p['__operation__']}", arn, _context(pairs), arn)]


@_maps("lambda", "Invoke")
def _invoke(p, where):
    name = p["FunctionName"]
    if name.startswith("arn:"):
        arn = name
    elif ":" in name:  # NAME:QUALIFIER or ACCOUNT:function:NAME
        arn = f"arn:aws:lambda:{where.region}:{where.account}:function:{name.split(':')[-1] if ':function:' in name else name}"
    else:
        arn = f"arn:aws:lambda:{where.region}:{where.account}:function:{name}"
    if p.get("Qualifier") and arn.count(":") == 6:
        arn = f"{arn}:{p['Qualifier']}"
    unqualified = ":".join(arn.split(":")[:7])
    return [Authorization("lambda:InvokeFunction", arn, (), unqualified)]


@_maps("cloudwatch", "PutMetricData")
def _put_metric_data(p, where):
    return [Authorization("cloudwatch:PutMetricData", "*", _context({"cloudwatch:namespace": p.get("Namespace")}))]


@_maps("sts", "GetCallerIdentity")
def _caller_identity(p, where):
    return []  # needs no permission


# --- Recording ----------------------------------------------------------------------------------


@dataclass
class Recorded:
    count: int = 0
    operations: collections.Counter = field(default_factory=collections.Counter)
    session: str = ""
    source: str = "request"


class _MotoResources(Resources):
    """Resource encryption as moto holds it, read in the server's thread."""

    def key_arn(self, key_id: str) -> str:
        try:
            from moto.kms.models import kms_backends

            return kms_backends[self.account][self.region].describe_key(key_id).arn
        except Exception:  # an unknown key: name it as given
            return super().key_arn(key_id)

    def _bucket(self, bucket: str):
        from moto.s3.models import s3_backends

        try:
            return s3_backends[self.account]["aws"].get_bucket(bucket)
        except Exception:
            return None

    def bucket_kms_key(self, bucket: str) -> tuple[str | None, bool]:
        b = self._bucket(bucket)
        rules = (getattr(b, "encryption", None) or {}).get("Rule") if b else None
        for rule in rules if isinstance(rules, list) else [rules] if rules else []:
            default = rule.get("ApplyServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
                key = default.get("KMSMasterKeyID")
                # No key named: the AWS managed key aws/s3, which the account's principals
                # may use through S3 without any grant.
                bucket_key = str(rule.get("BucketKeyEnabled", "false")).lower() == "true"
                return (self.key_arn(key) if key else None), bucket_key
        return None, False

    def _object(self, bucket: str, key: str, version: str | None):
        b = self._bucket(bucket)
        if b is None:
            return None
        try:
            if version is None:
                return b.keys[key] if key in b.keys else None
            return next((o for o in b.keys.getlist(key, default=[]) if str(o.version_id) == str(version)), None)
        except Exception:
            return None

    def object_exists(self, bucket: str, key: str, version: str | None) -> bool:
        obj = self._object(bucket, key, version)
        # A delete marker (no `encryption` attribute) is no object.
        return obj is not None and hasattr(obj, "encryption")

    def object_kms_key(self, bucket: str, key: str, version: str | None) -> str | None:
        obj = self._object(bucket, key, version)
        if obj is None or not hasattr(obj, "encryption"):
            return None  # no such object: S3 answers before any KMS call
        if obj.encryption in ("aws:kms", "aws:kms:dsse"):
            return self.key_arn(obj.kms_key_id) if obj.kms_key_id else self.bucket_kms_key(bucket)[0]
        if obj.encryption is None:
            # moto does not apply the bucket's default encryption to objects written without
            # SSE headers; S3 does, so such an object is encrypted under the bucket default.
            return self.bucket_kms_key(bucket)[0]
        return None

    def upload_kms_key(self, upload_id: str | None, bucket: str) -> tuple[str | None, bool]:
        b = self._bucket(bucket)
        multipart = (getattr(b, "multiparts", None) or {}).get(upload_id) if b and upload_id else None
        kms_key = getattr(multipart, "kms_key_id", None)
        sse = getattr(multipart, "sse_encryption", None)
        if multipart is not None and sse in ("aws:kms", "aws:kms:dsse"):
            default_key, default_bucket_key = self.bucket_kms_key(bucket)
            key = self.key_arn(kms_key) if kms_key else default_key
            return key, bool(getattr(multipart, "bucket_key_enabled", None) or default_bucket_key)
        return self.bucket_kms_key(bucket)

    def queue_kms_key(self, name: str) -> str | None:
        try:
            from moto.sqs.models import sqs_backends

            key = sqs_backends[self.account][self.region].get_queue(name).kms_master_key_id
        except Exception:
            return None
        if not key or key.startswith("alias/aws/"):
            return None  # AWS managed keys need no grant
        return self.key_arn(key)

    def state_machine_kms_key(self, arn: str) -> str | None:
        try:
            from moto.stepfunctions.responses import get_backend  # the interpreter's, when it runs

            machine = get_backend(self.account, self.region).describe_state_machine(arn)
        except Exception:
            return None
        config = getattr(machine, "encryptionConfiguration", None) or {}
        if config.get("type") == "CUSTOMER_MANAGED_KMS_KEY" and config.get("kmsKeyId"):
            return self.key_arn(config["kmsKeyId"])
        return None


def parse_request(service: str, request) -> tuple[str, dict]:
    """The operation and parameters of a moto `Request`, as botocore's model reads them."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import determine_request_protocol
    from moto.core.routing import get_service_router
    from moto.core.utils import get_service_model

    model = get_service_model(service)
    uri_params: dict = {}
    operation = None
    if model.protocol in ("query", "json") or service != "s3":
        operation = request.values.get("Action")
        target = request.headers.get("X-Amz-Target")
        if not operation and target:
            operation = target.split(".")[-1]
    if not operation:
        op_model, uri_params = get_service_router(service).match(request)
        operation = op_model.name
    op_model = model.operation_model(operation)
    protocol = determine_request_protocol(model, request.content_type)
    parser = PROTOCOL_PARSERS[protocol](op_model)
    parsed = parser.parse(
        {
            "method": request.method,
            "values": request.values,
            "headers": request.headers,
            "body": request.data,
            "url_path": request.path,
            "url_params": uri_params,
        }
    )
    return operation, {k: v for k, v in dict(parsed).items() if k not in ("Body",)}


class Recorder:
    """The authorizations of every request signed with an assumed role's keys."""

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.requests: dict[tuple[str, Authorization], Recorded] = {}
            # (role ARN, "service.Operation", why) of requests that could not be mapped.
            self.unmapped: collections.Counter = collections.Counter()
            self.attributions: dict[str, tuple[str, str]] = {}
            self._principals: dict[tuple[str, str], tuple[str, str]] = {}
            # (role ARN, "service.Operation") of requests that need no permission at all.
            self.no_permission: collections.Counter = collections.Counter()
            # (role ARN, "service.Operation"): every request, once (the cost census counts them).
            self.calls: collections.Counter = collections.Counter()

    def attribute(self, access_key: str, role_arn: str, session_arn: str | None = None) -> None:
        """Counts requests signed with `access_key` as `role_arn`'s."""
        name = role_arn.split("/")[-1]
        account = role_arn.split(":")[4]
        with self._lock:
            self.attributions[access_key] = (role_arn, session_arn or f"arn:aws:sts::{account}:assumed-role/{name}/{access_key}")

    def add(self, role_arn: str, session: str, operation: str, auth: Authorization, source: str = "request", count: int = 1) -> None:
        with self._lock:
            entry = self.requests.get((role_arn, auth))
            if entry is None:
                entry = self.requests[(role_arn, auth)] = Recorded(session=session, source=source)
            entry.count += count
            entry.operations[operation] += count

    def _principal(self, access_key: str, account: str, region: str) -> tuple[str, str] | None:
        if access_key in self.attributions:
            return self.attributions[access_key]
        cached = self._principals.get((account, access_key))
        if cached:
            return cached
        principal = None
        try:
            from moto.iam.models import iam_backends

            key = iam_backends[account]["aws"].access_keys.get(access_key)
            role_arn = getattr(key, "role_arn", None)
        except Exception:
            role_arn = None
        if role_arn:
            session = f"arn:aws:sts::{account}:assumed-role/{role_arn.split('/')[-1]}/{access_key}"
            try:
                from moto.sts.models import sts_backends

                assumed = sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key)
                session = assumed.arn if assumed else session
            except Exception:
                pass
            principal = (role_arn, session)
        if principal:
            self._principals[(account, access_key)] = principal
        return principal

    def _state_machine_principal(self, account: str, region: str, auths: list[Authorization]) -> tuple[str, str] | None:
        """The role of the state machine whose Task made a call of moto's interpreter.

        The interpreter signs every Task's call with one key. With one state machine (or one
        role among them) the call is its role's; with several, it is the role of the one state
        machine whose definition names the resource (function, table); else nobody's."""
        try:
            from moto.stepfunctions.responses import get_backend  # the interpreter's, when it runs

            machines = list(get_backend(account, region).state_machines)
        except Exception:
            return None
        roles = {m.roleArn for m in machines}
        if len(roles) > 1:
            names = set()
            for a in auths:
                names.add(a.resource)
                if ":table/" in a.resource:
                    names.add(a.resource.split(":table/")[1].split("/")[0])
                if ":function:" in a.resource:
                    names.add(a.resource.split(":function:")[1].split(":")[0])
            roles = {m.roleArn for m in machines if any(n in (m.definition or "") for n in names)}
        if len(roles) != 1:
            return None
        role_arn = roles.pop()
        return role_arn, f"arn:aws:sts::{account}:assumed-role/{role_arn.split('/')[-1]}/states-execution"

    def observe(self, response, request) -> None:
        """Called by the hook for each request moto serves."""
        if getattr(response, "_iam_audit_seen", False):
            return
        response._iam_audit_seen = True
        access_key = _access_key(request)
        if not access_key:
            return
        account = getattr(response, "current_account", "") or ""
        region = getattr(response, "region", "") or "us-east-1"
        principal = self._principal(access_key, account, region)
        interpreter = principal is None and access_key == STEP_FUNCTIONS_KEY
        if principal is None and not interpreter:
            return
        role_arn = principal[0] if principal else "(a state machine)"
        service = response.boto3_service_name
        operation = "?"
        try:
            operation, params = parse_request(service, request)
            auths = authorizations(service, operation, params, _MotoResources(account, region))
        except Unmapped as e:
            with self._lock:
                self.unmapped[(role_arn, f"{service}.{operation}", str(e))] += 1
            return
        except Exception as e:  # never break moto's answer; the audit fails on it instead
            with self._lock:
                self.unmapped[(role_arn, f"{service}.{operation}", f"could not read the request: {e!r}")] += 1
            return
        if interpreter:
            principal = self._state_machine_principal(account, region, auths)
            if principal is None:
                with self._lock:
                    self.unmapped[(role_arn, f"{service}.{operation}", "a Step Functions task call no single state machine's role can be credited with")] += 1
                return
        role_arn, session = principal
        with self._lock:
            self.calls[(role_arn, f"{service}.{operation}")] += 1
        for auth in auths:
            self.add(role_arn, session, f"{service}.{operation}", auth)
        if not auths:
            with self._lock:
                self.no_permission[(role_arn, f"{service}.{operation}")] += 1


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def _access_key(request) -> str | None:
    """The access key id that signed the request (moto's own reading only knows 20-character ids)."""
    match = _CREDENTIAL.search(request.headers.get("Authorization") or "")
    if match:
        return match.group(1)
    return request.values.get("X-Amz-Credential", "").split("/")[0] or None


RECORDER = Recorder()
_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Hooks the recorder into moto (once per process); `emulator._patch_moto` calls it."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.core.responses import BaseResponse
        from moto.moto_api._internal.models import MotoAPIBackend

        setup_class = BaseResponse.setup_class

        def recording_setup_class(self, request, *args, **kwargs):
            setup_class(self, request, *args, **kwargs)
            RECORDER.observe(self, request)

        BaseResponse.setup_class = recording_setup_class

        reset = MotoAPIBackend.reset

        def reset_and_forget(self):
            # moto's state starts anew: so does the record of who did what in it.
            reset(self)
            RECORDER.clear()

        MotoAPIBackend.reset = reset_and_forget
        _installed = True


# --- Evaluation ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    role: str  # label
    role_arn: str
    action: str
    resource: str
    context: dict
    operations: dict
    count: int
    verdict: str
    reason: str
    source: str = "request"

    @property
    def allowed(self) -> bool:
        return self.verdict == "Allowed"


@dataclass
class Report:
    verdicts: list[Verdict] = field(default_factory=list)
    unused: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    output: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems and all(v.allowed for v in self.verdicts)

    @property
    def denied(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.allowed]

    def rows(self) -> list[dict]:
        """Verdicts grouped by role, action, verdict and reason (object keys are many)."""
        groups: dict[tuple, dict] = {}
        for v in self.verdicts:
            key = (v.role, v.action, v.verdict, v.reason, v.source)
            g = groups.setdefault(key, {"role": v.role, "action": v.action, "verdict": v.verdict, "reason": v.reason,
                                        "source": v.source, "requests": 0, "resources": [], "operations": collections.Counter(),
                                        "context": collections.defaultdict(set)})
            g["requests"] += v.count
            g["resources"].append(v.resource)
            g["operations"].update(v.operations)
            for k, value in v.context.items():
                if not k.startswith("aws:"):
                    g["context"][k].add(json.dumps(value) if not isinstance(value, str) else value)
        return sorted(groups.values(), key=lambda g: (g["verdict"] == "Allowed", g["role"], g["action"]))

    def markdown(self) -> str:
        lines = [
            "| role | operations | IAM action | requests | resources | context | verdict | by |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for g in self.rows():
            resources = sorted(set(g["resources"]))
            shown = resources[0] if len(resources) == 1 else f"{len(resources)}, e.g. {resources[0]}"
            context = "; ".join(
                f"{k}: {', '.join(sorted(v)[:4])}{' …' if len(v) > 4 else ''}" for k, v in sorted(g["context"].items())
                if k not in ("kms:CallerAccount",)
            )
            operations = ", ".join(op for op, _ in g["operations"].most_common())
            if g["source"] != "request":
                operations = f"({g['source']}) {operations}"
            by = g["reason"].removeprefix("allowed by ")
            count = g["requests"] if g["source"] == "request" else "–"
            lines.append(
                f"| {g['role']} | {operations} | `{g['action']}` | {count} | `{shown}` | {_md(context)} | "
                f"{g['verdict']} | {_md(by)} |"
            )
        return "\n".join(lines) + "\n"

    def unused_markdown(self) -> str:
        if not self.unused:
            return "Every granted action and resource was used.\n"
        lines = ["| role | statement | action | resource |", "|---|---|---|---|"]
        for g in self.unused:
            lines.append(f"| {self.labels.get(g['roleArn'], g['roleArn'])} | {g['sid'] or '#' + str(g['statement'])} | "
                         f"`{g['action']}` | `{g['resource']}` |")
        return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class Audit:
    """The IAM audit of one emulator: credentials for the roles, then the verdicts."""

    def __init__(self, emulator, roles: dict[str, str] | None = None, recorder: Recorder = RECORDER):
        """`roles`: label → role ARN of the principals to audit; only their requests are
        evaluated (all recorded requests when none are given), and a role with no recorded
        request still gets its unused grants listed."""
        install()
        self.aws = emulator
        self.recorder = recorder
        self.roles: dict[str, str] = dict(roles or {})

    def register(self, label: str, role_arn: str) -> None:
        self.roles[label] = role_arn

    def label(self, role_arn: str) -> str:
        for label, arn in self.roles.items():
            if arn == role_arn:
                return label
        return role_arn.split("/")[-1]

    def credentials(self, role_arn: str, session_name: str) -> dict[str, str]:
        """STS credentials of `role_arn`, as Lambda gives a function of that execution role."""
        c = self.aws.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])["Credentials"]
        return {
            "AWS_ACCESS_KEY_ID": c["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
            "AWS_SESSION_TOKEN": c["SessionToken"],
        }

    def environment(self, role_arn: str, session_name: str) -> dict[str, str]:
        """The SDK environment of a process running as `role_arn` (emulator endpoint, region, keys)."""
        return {**self.aws.sdk_environment(), **self.credentials(role_arn, session_name)}

    def client(self, service: str, role_arn: str, session_name: str):
        """A boto3 client signing with `role_arn`'s credentials (what Lambda's poller uses)."""
        import boto3
        from botocore.config import Config

        c = self.credentials(role_arn, session_name)
        return boto3.client(
            service,
            endpoint_url=self.aws.endpoint,
            region_name=self.aws.sdk_environment()["AWS_REGION"],
            aws_access_key_id=c["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=c["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=c["AWS_SESSION_TOKEN"],
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=900),
        )

    # Platform calls: what Lambda and Step Functions do with the role themselves.

    def _platform_requests(self) -> None:
        audited = set(self.roles.values()) or {role for role, _ in self.recorder.requests}
        lam = self.aws.client("lambda")
        try:
            functions = lam.list_functions().get("Functions", [])
        except Exception:
            functions = []
        for f in functions:
            role = f.get("Role")
            if role not in audited:
                continue
            region, account = f["FunctionArn"].split(":")[3:5]
            session = f"arn:aws:sts::{account}:assumed-role/{role.split('/')[-1]}/{f['FunctionName']}"
            where = Resources(account, region)
            group = ((f.get("LoggingConfig") or {}).get("LogGroup")) or f"/aws/lambda/{f['FunctionName']}"
            stream = f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:2026/01/01/[$LATEST]0"
            for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
                self.recorder.add(role, session, "Lambda: function logs", Authorization(action, stream, (), None, account), "lambda", 0)
            if (f.get("TracingConfig") or {}).get("Mode") == "Active":
                for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
                    self.recorder.add(role, session, "Lambda: active tracing", Authorization(action, "*", (), None, account), "lambda", 0)
            dlq = (f.get("DeadLetterConfig") or {}).get("TargetArn")
            if dlq and ":sqs:" in dlq:
                name = dlq.split(":")[-1]
                kms = _MotoResources(account, region).queue_kms_key(name)
                where = Resources(account, region)
                self.recorder.add(role, session, "Lambda: dead-letter queue", Authorization("sqs:SendMessage", dlq, (), dlq, account), "lambda", 0)
                if kms:
                    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                        self.recorder.add(role, session, "Lambda: dead-letter queue",
                                          _kms_via(action, kms, "sqs", where, {"aws:sqs:arn": dlq}), "lambda", 0)
        sfn = self.aws.client("stepfunctions")
        try:
            machines = sfn.list_state_machines().get("stateMachines", [])
        except Exception:
            machines = []
        for m in machines:
            d = sfn.describe_state_machine(stateMachineArn=m["stateMachineArn"])
            role = d.get("roleArn")
            if role not in audited:
                continue
            region, account = m["stateMachineArn"].split(":")[3:5]
            where = Resources(account, region)
            session = f"arn:aws:sts::{account}:assumed-role/{role.split('/')[-1]}/states-execution"
            encryption = d.get("encryptionConfiguration") or {}
            if encryption.get("type") == "CUSTOMER_MANAGED_KMS_KEY":
                key = _MotoResources(account, region).key_arn(encryption["kmsKeyId"])
                # The execution role encrypts and decrypts the execution's data.
                for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                    self.recorder.add(role, session, "Step Functions: execution data",
                                      _kms_via(action, key, "states", where, {"aws:states:stateMachineArn": m["stateMachineArn"]}), "states", 0)
            if (d.get("tracingConfiguration") or {}).get("enabled"):
                for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"):
                    self.recorder.add(role, session, "Step Functions: tracing", Authorization(action, "*", (), None, account), "states", 0)

    # Policies as the emulator holds them.

    def _identity_policies(self, role_arn: str) -> list[dict]:
        iam = self.aws.client("iam")
        name = role_arn.split("/")[-1]
        iam.get_role(RoleName=name)
        policies = []
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
            for policy_name in page["PolicyNames"]:
                document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
                policies.append({"name": f"inline:{policy_name}", "policy": _document(document)})
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
            for attached in page["AttachedPolicies"]:
                arn = attached["PolicyArn"]
                version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
                document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
                policies.append({"name": f"managed:{attached['PolicyName']}", "policy": _document(document)})
        return policies

    def _resource_policy(self, arn: str) -> dict | None:
        from botocore.exceptions import ClientError

        service = arn.split(":")[2]
        try:
            if service == "s3":
                text = self.aws.client("s3").get_bucket_policy(Bucket=arn.split(":::")[1])["Policy"]
            elif service == "kms":
                text = self.aws.client("kms").get_key_policy(KeyId=arn, PolicyName="default")["Policy"]
            elif service == "sqs":
                _, _, _, region, account, name = arn.split(":")
                sqs = self.aws.client("sqs")
                url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
                text = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")
            elif service == "lambda":
                text = self.aws.client("lambda").get_policy(FunctionName=arn)["Policy"]
            else:
                return None
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucketPolicy", "ResourceNotFoundException", "NoSuchEntity"):
                return None
            raise
        return _document(text) if text else None

    def evaluate(self, workdir: str, platform: bool = True) -> Report:
        """Evaluates every recorded request; writes `iam-audit.json` and `iam-verdicts.json`."""
        report = Report()
        if platform:
            try:
                self._platform_requests()
            except Exception as e:
                report.problems.append(f"could not derive the platform's calls: {e!r}")
        with self.recorder._lock:
            recorded = dict(self.recorder.requests)
            unmapped = dict(self.recorder.unmapped)
        if self.roles:
            # Only this audit's principals: one emulator may serve several pipelines in turn.
            mine = set(self.roles.values())
            recorded = {k: v for k, v in recorded.items() if k[0] in mine}
            unmapped = {k: v for k, v in unmapped.items() if k[0] in mine or not k[0].startswith("arn:")}
        for (role_arn, operation, why), count in sorted(unmapped.items()):
            report.problems.append(f"{self.label(role_arn)}: {count} × {operation} not audited: {why}")
        role_arns = sorted(set(self.roles.values()) | {role for role, _ in recorded})
        report.labels = {arn: self.label(arn) for arn in role_arns}
        iam = self.aws.client("iam")
        roles = []
        for arn in role_arns:
            try:
                role = iam.get_role(RoleName=arn.split("/")[-1])["Role"]
                policies = self._identity_policies(arn)
            except Exception as e:
                report.problems.append(f"{self.label(arn)}: cannot read the role's policies: {e!r}")
                continue
            sessions = [r.session for (role_arn, _), r in recorded.items() if role_arn == arn]
            principal = sessions[0] if sessions else f"arn:aws:sts::{arn.split(':')[4]}:assumed-role/{arn.split('/')[-1]}/audit"
            roles.append({"roleArn": arn, "principal": principal, "identityPolicies": policies, "roleId": role.get("RoleId", "")})
        known = {r["roleArn"]: r for r in roles}
        holders = sorted({auth.policy_holder for (_, auth) in recorded if auth.policy_holder})
        resource_policies = {}
        for holder in holders:
            try:
                policy = self._resource_policy(holder)
            except Exception as e:
                report.problems.append(f"cannot read the policy of {holder}: {e!r}")
                continue
            if policy is not None:
                resource_policies[holder] = policy
        requests = []
        index: list[tuple[str, Authorization, Recorded]] = []
        for (role_arn, auth), entry in sorted(recorded.items(), key=lambda kv: (kv[0][0], kv[0][1].action, kv[0][1].resource)):
            if role_arn not in known:
                continue
            role = known[role_arn]
            account = role_arn.split(":")[4]
            context = {
                "aws:SecureTransport": "true",
                "aws:PrincipalArn": role_arn,
                "aws:PrincipalAccount": account,
                "aws:PrincipalType": "AssumedRole",
                "aws:userid": f"{role['roleId']}:{entry.session.split('/')[-1]}",
                **auth.context_dict(),
            }
            requests.append({
                "id": len(index),
                "roleArn": role_arn,
                "action": auth.action,
                "resource": auth.resource,
                "resourceAccount": auth.account or account,
                "context": context,
                "resourcePolicy": auth.policy_holder if auth.policy_holder in resource_policies else None,
                # For the reader of the file; the evaluator ignores them.
                "operations": dict(entry.operations),
                "source": entry.source,
            })
            index.append((role_arn, auth, entry))
        for r in roles:
            r.pop("roleId", None)
        os.makedirs(workdir, exist_ok=True)
        source = os.path.join(workdir, "iam-audit.json")
        verdicts_path = os.path.join(workdir, "iam-verdicts.json")
        with open(source, "w", encoding="utf-8") as f:
            json.dump({"roles": roles, "resourcePolicies": resource_policies, "requests": requests}, f, indent=1)
        try:
            out, report.output = run_evaluator(source, verdicts_path)
        except EvaluatorError as e:
            report.problems.append(str(e))
            return report
        with open(os.path.join(workdir, "iam-verdicts.txt"), "w", encoding="utf-8") as f:
            f.write(report.output)
        for result in out["results"]:
            role_arn, auth, entry = index[result["id"]]
            report.verdicts.append(Verdict(
                role=self.label(role_arn), role_arn=role_arn, action=auth.action, resource=auth.resource,
                context=auth.context_dict(), operations=dict(entry.operations), count=entry.count,
                verdict=result["verdict"], reason=result["reason"], source=entry.source,
            ))
        report.unused = out.get("unusedGrants", [])
        return report


class EvaluatorError(Exception):
    pass


def run_evaluator(source: str, verdicts_path: str) -> tuple[dict, str]:
    """Runs `tests/iam/evaluate.mjs` on the JSON file `source`; returns its verdicts and output."""
    node = shutil.which("node")
    if node is None:
        raise EvaluatorError("no `node` on PATH: the IAM evaluator cannot run")
    if not os.path.isdir(os.path.join(os.path.dirname(EVALUATOR), "node_modules", "@cloud-copilot", "iam-simulate")):
        raise EvaluatorError("the IAM evaluator is not installed: run `(cd tests/iam && npm ci)`")
    if os.path.exists(verdicts_path):
        os.remove(verdicts_path)
    run = subprocess.run([node, EVALUATOR, source, "--json", verdicts_path], capture_output=True, text=True, timeout=1800)
    output = run.stdout + run.stderr
    if run.returncode not in (0, 1) or not os.path.exists(verdicts_path):
        raise EvaluatorError(f"the IAM evaluator failed (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
    with open(verdicts_path, encoding="utf-8") as f:
        return json.load(f), output


def _document(policy: Any) -> dict:
    if isinstance(policy, str):
        return json.loads(policy)
    return policy


# --- Wiring into the local pipeline and the end-to-end suite -------------------------------------


class PollerClient:
    """The SQS client of an event source: the calls Lambda's poller makes for a mapping go with
    the function's role (in AWS the mapping polls with the function's execution role); anything
    else (the suite's at-least-once knob re-sending a notification, which stands for S3) keeps
    the harness's own credentials."""

    POLLER_CALLS = frozenset({
        "receive_message", "delete_message", "delete_message_batch",
        "change_message_visibility", "change_message_visibility_batch", "get_queue_attributes",
    })

    def __init__(self, role_client, harness_client):
        self.role_client = role_client
        self.harness_client = harness_client

    def __getattr__(self, name):
        return getattr(self.role_client if name in self.POLLER_CALLS else self.harness_client, name)


def audit_scenario(audit: Audit | None, workdir: str, problems: list[str], notes: list[str], enforce: bool = True) -> Report | None:
    """Evaluates a scenario's requests: each group of requests that is not allowed, and each
    call that could not be audited, becomes a problem (when `enforce`d; else only counted in a
    note). Returns the report."""
    if audit is None:
        notes.append("IAM audit: not run (the pipeline gave its functions no roles to audit)")
        return None
    report = audit.evaluate(workdir)
    found = list(report.problems)
    for g in report.rows():
        if g["verdict"] != "Allowed":
            resources = sorted(set(g["resources"]))
            found.append(
                f"IAM: {g['role']} {g['verdict']} {g['action']} on {resources[0]}"
                f"{f' (+{len(resources) - 1} more)' if len(resources) > 1 else ''} "
                f"[{', '.join(g['operations'])}]: {g['reason']}"
            )
    allowed = sum(1 for v in report.verdicts if v.allowed)
    notes.append(f"IAM audit{'' if enforce else ' (not enforced)'}: {allowed} of {len(report.verdicts)} distinct "
                 f"requests allowed, {len(found)} findings; {len(report.unused)} granted action/resource pairs unused")
    if enforce:
        problems.extend(found)
    return report


def summary_markdown(reports: dict[str, Report | None]) -> str:
    """The reliability summary's IAM section, over every scenario's report."""
    done = {name: r for name, r in reports.items() if r is not None}
    lines = [
        "## IAM: every request the functions made, against the roles Terraform gives them",
        "",
        "moto enforces no IAM. Each function process runs with STS credentials of its own role; every",
        "request signed with them (and every call of the state machine's tasks, and of the SQS poller,",
        "as the role that makes it in AWS) is recorded with the IAM actions, resources and condition",
        "keys AWS authorizes it with (`tools/local_aws/iam_audit.py`), then evaluated by",
        "`@cloud-copilot/iam-simulate` (`tests/iam/`) against the role's policies and the resource's",
        "own policy (bucket, key, queue, function), conditions included. Rows marked (lambda) or",
        "(states) are what those services do with the role themselves (logs, traces, keys).",
        "",
    ]
    if not done:
        return "\n".join(lines + ["Not run.", ""]) + "\n"
    merged = Report()
    unused_sets = []
    for name, r in done.items():
        plain = _generic_names(r)
        for v in r.verdicts:
            merged.verdicts.append(Verdict(**{**v.__dict__, "resource": plain(v.resource), "reason": plain(v.reason),
                                              "context": {k: plain(x) if isinstance(x, str) else x for k, x in v.context.items()}}))
        merged.problems.extend(f"{name}: {plain(p)}" for p in r.problems)
        # A grant is unused when no scenario used it.
        unused_sets.append({(r.labels.get(g["roleArn"], g["roleArn"]), g["sid"] or f"#{g['statement']}", g["action"], plain(g["resource"]))
                            for g in r.unused})
    lines.append(f"Scenarios audited: {', '.join(done)}. Distinct requests: {len(merged.verdicts)}, "
                 f"not allowed: {len(merged.denied)}, not audited: {len(merged.problems)}. Names are shown "
                 "with the pipeline's name prefix as `{name}` and its key as `{key}`.")
    lines.append("")
    lines.append(merged.markdown().rstrip("\n"))
    never = sorted(set.intersection(*unused_sets)) if unused_sets else []
    lines += ["", "### Grants no request used", ""]
    if never:
        lines += ["Each needs a reason in Terraform (a comment), or should go.", "",
                  "| role | statement | action | resource |", "|---|---|---|---|"]
        lines += [f"| {role} | {sid} | `{action}` | `{resource}` |" for role, sid, action, resource in never]
    else:
        lines.append("Every granted action and resource was used.")
    if merged.problems:
        lines += ["", "### Not audited", ""] + [f"- {p}" for p in merged.problems]
    return "\n".join(lines) + "\n"


def _generic_names(report: Report):
    """Replaces a pipeline's own names in ARNs and reasons (its roles' common name prefix, its
    KMS key's id) with `{name}` and `{key}`, so that scenarios' pipelines compare."""
    prefixes = set()
    for arn, label in report.labels.items():
        role = arn.split("/")[-1]
        if label != role and role.endswith(label):
            prefixes.add(role[: -len(label)])
    key = re.compile(r"key/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

    def plain(text: str) -> str:
        for prefix in sorted(prefixes, key=len, reverse=True):
            text = text.replace(prefix, "{name}-")
        return key.sub("key/{key}", text)

    return plain
