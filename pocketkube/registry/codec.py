"""How objects are stored and compared: JSON bytes without the resourceVersion (the store's
mod revision is the resourceVersion), timestamps, and the "did anything change" test that lets
no-op writes keep their resourceVersion, as kube does."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson

from pocketkube.storage.interface import KeyValue

Obj = dict[str, Any]

_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current time at second precision, as object timestamps carry it (formatted once a
    second: every write asks for it)."""
    global _stamp
    now = int(time.time())
    if _stamp[0] != now:
        _stamp = (now, datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp[1]


def encode(obj: Obj) -> bytes:
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return orjson.dumps(obj)


def decode(kv: KeyValue) -> Obj:
    obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def deleted_by_update(obj: Obj) -> bool:
    """An update that clears the last finalizer of an object being deleted (with no grace period
    left) deletes it, as kube's store does."""
    meta = obj.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers") and not (
        meta.get("deletionGracePeriodSeconds") or 0)


def managed_fields_ignoring_time(meta: Obj) -> list[Obj]:
    return [{k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []
            if isinstance(e, dict)]


def unchanged(new: Obj, cur: Obj) -> bool:
    """Equal as documents (key order aside), ignoring resourceVersion and managedFields
    timestamps: kube skips such writes."""
    if {k: v for k, v in new.items() if k != "metadata"} != \
            {k: v for k, v in cur.items() if k != "metadata"}:
        return False
    nm, cm = new.get("metadata") or {}, cur.get("metadata") or {}
    skip = ("resourceVersion", "managedFields")
    if {k: v for k, v in nm.items() if k not in skip} != \
            {k: v for k, v in cm.items() if k not in skip}:
        return False
    return managed_fields_ignoring_time(nm) == managed_fields_ignoring_time(cm)
