"""What the pipeline's DynamoDB requests cost, as DynamoDB would bill them, from the requests
the emulator serves (no ReturnConsumedCapacity: moto does not report it).

Every DynamoDB request signed with a key STS issued for a role (a function's; the IAM audit
finds whose) or by moto's Step Functions interpreter (the state machine) is metered before moto applies it, against the table as it is then:

* writes: one unit per started KB of the larger of the item before and after (`PutItem`: the
  new item; `DeleteItem`: the old one; `UpdateItem`: the old item plus the values its update
  sets, an upper bound); a transaction twice; a write refused by its condition is billed too
  (DynamoDB does), so every request counts whatever its outcome;
* reads (strongly consistent, as the ledger reads): one unit per started 4 KB of each item
  `GetItem` and `BatchGetItem` find; a `Query` is counted as requests only (its items are not
  recomputed here), at least one unit each.

Item sizes follow `shared/src/ledger/item.rs::size`: per attribute, the name's UTF-8 bytes plus
the value's (a string's UTF-8 bytes, a number's one byte per two significant digits plus one,
bytes as they are, a list three bytes plus one per element plus the elements).
"""

from __future__ import annotations

import base64
import collections
import math
import threading
from dataclasses import dataclass, field

from . import iam_audit


def value_size(value: dict) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "")
        significant = len(digits.lstrip("0").rstrip("0"))
        return math.ceil(max(significant, 1) / 2) + 1
    if kind == "B":
        if isinstance(inner, (bytes, bytearray)):
            return len(inner)
        return len(base64.b64decode(inner))
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    if kind == "BOOL" or kind == "NULL":
        return 1
    return len(str(inner))


def item_size(item: dict | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int) -> int:
    return max(1, math.ceil(size / 4096))


@dataclass
class Usage:
    """One party's DynamoDB consumption."""

    write_units: int = 0
    read_units: int = 0
    requests: collections.Counter = field(default_factory=collections.Counter)
    # Write units by the kind of item written: its partition key's prefix (`V` marker, `B`
    # batch, `C` cursor, `L` lease, `M` manifest, `O` open entry, `D` shard registry; see
    # `shared/src/ledger/item.rs`), a transaction's units split over its items.
    writes_by_kind: collections.Counter = field(default_factory=collections.Counter)

    def add(self, operation: str, writes: list[tuple[str, int]], read: int = 0) -> None:
        for kind, units in writes:
            self.write_units += units
            self.writes_by_kind[kind] += units
        self.read_units += read
        self.requests[operation] += 1

    def merge(self, other: "Usage") -> None:
        self.write_units += other.write_units
        self.read_units += other.read_units
        self.requests.update(other.requests)
        self.writes_by_kind.update(other.writes_by_kind)


class Meter:
    """Consumption by party (a function's role name, or `state-machine`) and table, so that
    pipelines running at once (each with its own tables) are billed apart."""

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.usage: dict[tuple[str, str], Usage] = collections.defaultdict(Usage)

    def snapshot(self, tables: set[str] | None = None) -> dict[str, Usage]:
        """Usage by party, of the requests on `tables` (every table when None)."""
        with self._lock:
            by_party: dict[str, Usage] = collections.defaultdict(Usage)
            for (party, table), usage in self.usage.items():
                if tables is not None and table not in tables:
                    continue
                by_party[party].merge(usage)
            return dict(by_party)

    def observe(self, response, request) -> None:
        if getattr(response, "boto3_service_name", "") != "dynamodb":
            return
        access_key = iam_audit._access_key(request)
        account = getattr(response, "current_account", "") or ""
        region = getattr(response, "region", "") or "us-east-1"
        if not access_key:
            return
        if access_key == iam_audit.STEP_FUNCTIONS_KEY:
            party = "state-machine"
        else:
            # The role STS issued the key for (as the IAM audit finds it).
            principal = iam_audit.RECORDER._principal(access_key, account, region)
            if principal is None:
                return  # the harness's own requests (its settle checks scan the table)
            party = principal[0].split("/")[-1]
        try:
            operation, params = iam_audit.parse_request("dynamodb", request)
            writes, read = self._units(operation, params, _Table(account, region))
        except Exception:  # never break moto's answer; an unreadable request is not metered
            return
        with self._lock:
            self.usage[(party, _table_name(params))].add(operation, writes, read)

    def _units(self, operation: str, p: dict, table: "_Table") -> tuple[list[tuple[str, int]], int]:
        """The write units by item kind, and the read units, of one request."""
        if operation == "PutItem":
            old = table.item(p["TableName"], p["Item"])
            return [(item_kind(p["Item"]), write_units(max(item_size(p["Item"]), item_size(old))))], 0
        if operation == "UpdateItem":
            return [(item_kind(p["Key"]), write_units(_updated_size(table.item(p["TableName"], p["Key"]), p)))], 0
        if operation == "DeleteItem":
            return [(item_kind(p["Key"]), write_units(item_size(table.item(p["TableName"], p["Key"]))))], 0
        if operation == "TransactWriteItems":
            writes = []
            for entry in p.get("TransactItems") or []:
                for kind, body in entry.items():
                    name = body["TableName"]
                    if kind == "Put":
                        key = body["Item"]
                        size = max(item_size(key), item_size(table.item(name, key)))
                    elif kind == "Update":
                        key = body["Key"]
                        size = _updated_size(table.item(name, key), body)
                    else:  # Delete, ConditionCheck
                        key = body["Key"]
                        size = item_size(table.item(name, key))
                    writes.append((item_kind(key), 2 * write_units(size)))
            return writes, 0
        if operation == "GetItem":
            found = table.item(p["TableName"], p["Key"])
            return [], read_units(item_size(found)) if found else 1
        if operation == "BatchGetItem":
            units = 0
            for name, request in (p.get("RequestItems") or {}).items():
                for key in request.get("Keys") or []:
                    found = table.item(name, key)
                    units += read_units(item_size(found)) if found else 0
            return [], max(units, 1)
        if operation in ("Query", "Scan"):
            return [], 1
        return [], 0


def item_kind(item_or_key: dict) -> str:
    """The kind of a ledger item: its partition key up to the first `#` (`V`, `B`, `C`, `L`,
    `M`, `O`, `D`), or `?` for a key of another layout."""
    pk = (item_or_key.get("pk") or {}).get("S")
    return pk.split("#", 1)[0] if pk else "?"


def _table_name(p: dict) -> str:
    """The table a request works on (a transaction's or batch's first)."""
    if "TableName" in p:
        return p["TableName"]
    for entry in p.get("TransactItems") or []:
        for body in entry.values():
            return body.get("TableName", "")
    for name in p.get("RequestItems") or {}:
        return name
    return ""


def _updated_size(old: dict | None, p: dict) -> int:
    """An update's item after it, at most: the old item plus every value it binds."""
    values = p.get("ExpressionAttributeValues") or {}
    names = p.get("ExpressionAttributeNames") or {}
    added = sum(value_size(v) for v in values.values()) + sum(len(n.encode()) for n in names.values())
    return max(item_size(old), item_size(old) + added)


class _Table:
    """Items as moto holds them, read in the server's thread before the request applies."""

    def __init__(self, account: str, region: str):
        from moto.dynamodb.models import dynamodb_backends

        self.backend = dynamodb_backends[account][region]

    def item(self, table: str, item_or_key: dict) -> dict | None:
        keys = self.backend.get_table_keys_name(table, list(item_or_key))
        key = {k: item_or_key[k] for k in keys if k and k in item_or_key}
        found = self.backend.get_item(table, key)
        return found.to_json()["Attributes"] if found else None


METER = Meter()
# moto's DynamoDB is not thread-safe: every request runs under this lock (`emulator`), and so
# does the meter's look at an item before a request applies. Unlocked, that look (moto's
# `get_item` on a key not there inserts an empty entry) raced a transaction deep-copying the
# table: "dictionary changed size during iteration", a 500 for the transaction.
DYNAMODB_LOCK = threading.RLock()
_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Hooks the meter into moto (once per process), after the IAM audit's hook (whose
    attributions it reads); `emulator._patch_moto` calls it."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.core.responses import BaseResponse
        from moto.moto_api._internal.models import MotoAPIBackend

        setup_class = BaseResponse.setup_class

        from moto.dynamodb.responses import DynamoHandler

        def metered_setup_class(self, request, *args, **kwargs):
            setup_class(self, request, *args, **kwargs)
            if isinstance(self, DynamoHandler):
                with DYNAMODB_LOCK:
                    METER.observe(self, request)
            else:
                METER.observe(self, request)

        BaseResponse.setup_class = metered_setup_class
        reset = MotoAPIBackend.reset

        def reset_and_clear(self):
            reset(self)
            METER.clear()

        MotoAPIBackend.reset = reset_and_clear
        _installed = True
