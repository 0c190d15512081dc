"""Table printer for Events, served alike for core/v1 and events.k8s.io/v1 (printers.go `printEvent`).

kube converts both versions to one internal Event before printing, so the events.k8s.io field
names (`regarding`, `note`, `deprecatedCount`, ...) are mapped onto the core ones here. LAST SEEN
falls back to the first timestamp, then to `eventTime`, and an event series reports its own
last observation and count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pocketkube.api.printers.common import NAME_DESC, Col, Obj, since

_EV = "core.v1.Event"

EVENT_COLUMNS = (
    Col("Last Seen", desc=(_EV, "lastTimestamp")),
    Col("Type", desc=(_EV, "type")),
    Col("Reason", desc=(_EV, "reason")),
    Col("Object", desc=(_EV, "involvedObject")),
    Col("Subobject", desc=("core.v1.ObjectReference", "fieldPath"), priority=1),
    Col("Source", desc=(_EV, "source"), priority=1),
    Col("Message", desc=(_EV, "message")),
    Col("First Seen", desc=(_EV, "firstTimestamp"), priority=1),
    Col("Count", desc=(_EV, "count"), priority=1),
    Col("Name", desc=NAME_DESC, priority=1, format="name"),
)


def _row(
    obj: Obj,
    now: datetime,
    involved: Obj,
    source: Obj,
    first: Any,
    last: Any,
    count: int,
    message: str,
    controller: str,
) -> list[Any]:
    first_seen = since(first, now) if first else since(obj.get("eventTime"), now)
    last_seen = since(last, now) if last else first_seen
    series = obj.get("series")
    if series is not None:
        last_seen = since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif not count:
        count = 1  # singleton events carry no count in the events.k8s.io API
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    component = source.get("component") or controller
    host = source.get("host") or obj.get("reportingInstance") or ""
    return [
        last_seen,
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {host}" if host else component,
        message.strip(),
        first_seen,
        count,
        (obj.get("metadata") or {}).get("name", ""),
    ]


def event_row(obj: Obj, now: datetime) -> list[Any]:
    return _row(
        obj,
        now,
        obj.get("involvedObject") or {},
        obj.get("source") or {},
        obj.get("firstTimestamp"),
        obj.get("lastTimestamp"),
        obj.get("count") or 0,
        obj.get("message") or "",
        obj.get("reportingComponent") or "",
    )


def events_k8s_io_row(obj: Obj, now: datetime) -> list[Any]:
    return _row(
        obj,
        now,
        obj.get("regarding") or {},
        obj.get("deprecatedSource") or {},
        obj.get("deprecatedFirstTimestamp"),
        obj.get("deprecatedLastTimestamp"),
        obj.get("deprecatedCount") or 0,
        obj.get("note") or "",
        obj.get("reportingController") or "",
    )


PRINTERS = {
    ("", "Event"): (EVENT_COLUMNS, event_row),
    ("events.k8s.io", "Event"): (EVENT_COLUMNS, events_k8s_io_row),
}
