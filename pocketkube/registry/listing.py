"""Listing helpers: continue tokens for paginated lists (kube's format: base64 JSON of the
list's revision and the next key), resourceVersion parsing and selector matching."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

from pocketkube.api import errors
from pocketkube.api.selectors import FieldSelector, LabelSelector

Obj = dict[str, Any]


def continue_token(rv: int, last_key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": last_key + "\x00"})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_continue(token: str) -> tuple[int, str]:
    try:
        pad = "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(token + pad))
        return int(data["rv"]), str(data["start"])
    except Exception:
        raise errors.bad_request("continue key is not valid: illegal base64 data") from None


EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)


def parse_rv(rv: str) -> int:
    try:
        n = int(rv)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{rv}"') from None


def matcher(labels: LabelSelector, fields_: FieldSelector) -> Callable[[Obj], bool] | None:
    """A predicate over objects for the selectors, or None when nothing is selected out."""
    if labels.empty() and fields_.empty():
        return None
    if fields_.empty():
        return lambda o: labels.matches((o.get("metadata") or {}).get("labels"))
    if labels.empty():
        return fields_.matches
    return lambda o: labels.matches((o.get("metadata") or {}).get("labels")) and \
        fields_.matches(o)

