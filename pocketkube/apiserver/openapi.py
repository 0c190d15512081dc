"""The `/openapi/v3` index and its per-group-version documents.

kubectl reads these for `explain`, for `apply`/`create`/`replace` validation (which it leaves to
the server when the kind's PATCH operation declares `fieldValidation`) and for client-side
apply's strategic merge patches. Each document is an OpenAPI 3.0 file shaped like
kube-apiserver's: `components.schemas` holds every definition reachable from the group-version's
kinds (converted by `openapi_schemas`), `paths` every operation (`openapi_paths`). Documents are
built lazily, one group-version at a time, and kept as encoded bytes with the hash the index
advertises (the uppercase hex SHA-512 of those bytes, as kube does; clients cache by it).
`/openapi/v2` (Swagger 2.0 as JSON or gnostic protobuf) is served by openapi_v2.py from the same schemas.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from typing import Any

import orjson

from pocketkube.api.resources import TABLE, Resource, ResourceTable
from pocketkube.apiserver.openapi_paths import gv_paths, gv_prefix
from pocketkube.apiserver.openapi_schemas import META, closure, definition_for

log = logging.getLogger("pocketkube.apiserver.openapi")

SERVER_VERSION = "v1.32.4"

# Meta types every group-version document carries (kube's documents include them through the
# operations that use them; listing them keeps Patch and friends present for any table).
META_ROOTS = ("APIResourceList", "DeleteOptions", "Patch", "Status", "WatchEvent")


def _roots(resources: list[Resource]) -> list[str]:
    roots = [META + n for n in META_ROOTS]
    for r in resources:
        for kind in (r.kind, r.kind + "List"):
            name = definition_for(r.group, r.version, kind)
            if name:
                roots.append(name)
        for sub in r.subresources:
            name = definition_for(sub.group if sub.group is not None else r.group,
                                  sub.version or r.version, sub.kind)
            if name:
                roots.append(name)
    return roots


def index_key(group: str, version: str) -> str:
    """`api/v1`, `apis/apps/v1`: the index key (no leading slash)."""
    return gv_prefix(group, version).lstrip("/")


class OpenAPIv3:
    """The OpenAPI v3 documents of one resource table, built on first use."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table
        self._docs: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._index: bytes | None = None

    def document(self, group: str, version: str) -> dict[str, Any] | None:
        resources = self.table.in_group_version(group, version)
        if not resources:
            return None
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": SERVER_VERSION},
            "paths": gv_paths(group, version, resources),
            "components": {"schemas": closure(_roots(resources))},
        }

    def _entry(self, group: str, version: str) -> tuple[bytes, str] | None:
        entry = self._docs.get((group, version))
        if entry is None:
            doc = self.document(group, version)
            if doc is None:
                return None
            data = orjson.dumps(doc)
            entry = self._docs[(group, version)] = (data, hashlib.sha512(data).hexdigest().upper())
            log.debug("built openapi v3 document %s (%d bytes)", index_key(group, version),
                      len(data))
        return entry

    def document_bytes(self, group: str, version: str) -> bytes | None:
        entry = self._entry(group, version)
        return entry[0] if entry else None

    def document_hash(self, group: str, version: str) -> str | None:
        entry = self._entry(group, version)
        return entry[1] if entry else None

    def index(self) -> dict[str, Any]:
        paths = {}
        for group, version in self.table.group_versions():
            key = index_key(group, version)
            paths[key] = {
                "serverRelativeURL": f"/openapi/v3/{key}?hash={self.document_hash(group, version)}"
            }
        return {"paths": paths}

    def index_bytes(self) -> bytes:
        if self._index is None:
            self._index = orjson.dumps(self.index())
        return self._index

    def lookup(self, path: str) -> tuple[str, str] | None:
        """(group, version) for an index key such as `apis/apps/v1`, or None."""
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "api":
            gv = ("", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            gv = (parts[1], parts[2])
        else:
            return None
        return gv if self.table.in_group_version(*gv) else None


@functools.cache
def default() -> OpenAPIv3:
    return OpenAPIv3(TABLE)


def v3_index() -> dict[str, Any]:
    """GET /openapi/v3: {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=…"}}}."""
    return default().index()


def v3_index_bytes() -> bytes:
    return default().index_bytes()


def v3_document(group: str, version: str) -> bytes | None:
    """GET /openapi/v3/api/v1 or /openapi/v3/apis/<g>/<v>: the encoded document, or None."""
    return default().document_bytes(group, version)


def v3_hash(group: str, version: str) -> str | None:
    """The hash the index advertises for a group-version (usable as an ETag)."""
    return default().document_hash(group, version)


def v3_lookup(path: str) -> tuple[str, str] | None:
    """Map the part of the URL after `/openapi/v3/` to (group, version), or None."""
    return default().lookup(path)
