"""API discovery documents: `/api`, `/apis`, `/apis/<group>`, `/api/v1`, `/apis/<g>/<v>`.

kubectl builds its REST mapping (names, short names, scope, the `all` category) from these
documents, in either of two shapes: the legacy one (APIVersions / APIGroupList / APIResourceList,
one request per group-version) or aggregated discovery (one APIGroupDiscoveryList for `/api` and
one for `/apis`), chosen by the Accept header. Both are pure functions of the resource table and
never change while a server runs, so each document is built once and its JSON bytes are cached.
They are written by hand because they are small projections of `pocketkube.api.resources`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any

import orjson

from pocketkube.api.resources import TABLE, Resource, ResourceTable

# kube-apiserver lists groups by a fixed priority, not alphabetically; groups it does not
# know (none today) follow in table order.
GROUP_PRIORITY = (
    "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io",
    "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
    "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
    "discovery.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io",
)

AGGREGATED_GROUP = "apidiscovery.k8s.io"
AGGREGATED_KIND = "APIGroupDiscoveryList"
AGGREGATED_VERSIONS = ("v2", "v2beta1")


def aggregated_content_type(version: str) -> str:
    return f"application/json;g={AGGREGATED_GROUP};v={version};as={AGGREGATED_KIND}"


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """kube's opaque storage version hash: base64 of the first 8 bytes of sha256("g/v/k")."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _gv(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}" if group else version, "version": version}


class Discovery:
    """All discovery documents of one resource table, memoized."""

    def __init__(self, table: ResourceTable) -> None:
        self.table = table
        order = {g: i for i, g in enumerate(GROUP_PRIORITY)}
        groups: list[str] = []
        for group, _ in table.group_versions():
            if group and group not in groups:
                groups.append(group)
        # sorted() is stable, so unknown groups keep their table order after the known ones.
        self.groups = sorted(groups, key=lambda g: order.get(g, len(order)))
        self._bytes: dict[tuple[Any, ...], bytes] = {}

    def versions_of(self, group: str) -> list[str]:
        """The group's versions, preferred first (table order)."""
        out: list[str] = []
        for g, v in self.table.group_versions():
            if g == group and v not in out:
                out.append(v)
        return out

    # -- legacy documents ------------------------------------------------------------------

    def api_versions(self, server_address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": self.versions_of(""),
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.versions_of(group) if group else []
        if not versions:
            return None
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            **self._group_body(group, versions),
        }

    def _group_body(self, group: str, versions: list[str]) -> dict[str, Any]:
        return {
            "name": group,
            "versions": [_gv(group, v) for v in versions],
            "preferredVersion": _gv(group, versions[0]),
        }

    def api_group_list(self) -> dict[str, Any]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [self._group_body(g, self.versions_of(g)) for g in self.groups],
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        resources = self.table.in_group_version(group, version)
        if not resources:
            return None
        items: list[dict[str, Any]] = []
        for r in resources:
            items.append(_api_resource(r))
            for sub in sorted(r.subresources, key=lambda s: s.name):
                entry: dict[str, Any] = {
                    "name": f"{r.plural}/{sub.name}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                }
                if sub.group is not None:
                    entry["group"] = sub.group
                    entry["version"] = sub.version
                entry["kind"] = sub.kind
                entry["verbs"] = list(sub.verbs)
                items.append(entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": items,
        }

    # -- aggregated discovery --------------------------------------------------------------

    def aggregated(self, core: bool, version: str = "v2") -> dict[str, Any]:
        if version not in AGGREGATED_VERSIONS:
            raise ValueError(f"unknown aggregated discovery version {version!r}")
        groups = [""] if core else self.groups
        items = []
        for group in groups:
            versions = [
                {
                    "version": v,
                    "resources": [
                        _aggregated_resource(r) for r in self.table.in_group_version(group, v)
                    ],
                    "freshness": "Current",
                }
                for v in self.versions_of(group)
            ]
            items.append({"metadata": {"name": group} if group else {}, "versions": versions})
        return {
            "kind": AGGREGATED_KIND,
            "apiVersion": f"{AGGREGATED_GROUP}/{version}",
            "metadata": {},
            "items": items,
        }

    # -- encoded, cached -------------------------------------------------------------------

    def encoded(self, name: str, *args: Any) -> bytes | None:
        """JSON bytes of document `name` (a method of this class) for `args`, built once.

        None where the document does not exist (unknown group or group-version)."""
        key = (name, *args)
        cached = self._bytes.get(key)
        if cached is None:
            doc = getattr(self, name)(*args)
            if doc is None:
                return None
            cached = self._bytes[key] = orjson.dumps(doc)
        return cached


def _api_resource(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if r.stored:
        entry["storageVersionHash"] = storage_version_hash(r.group, r.version, r.kind)
    return entry


def _aggregated_resource(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if r.subresources:
        entry["subresources"] = [
            {
                "subresource": s.name,
                "responseKind": {
                    "group": s.group if s.group is not None else r.group,
                    "version": s.version or r.version,
                    "kind": s.kind,
                },
                "verbs": list(s.verbs),
            }
            for s in sorted(r.subresources, key=lambda s: s.name)
        ]
    return entry


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str], float]]:
    """Parse an Accept header into (type, params, q), highest q first, ties in header order."""
    out = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        mime = fields[0].lower()
        if not mime:
            continue
        params: dict[str, str] = {}
        for f in fields[1:]:
            k, _, v = f.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            out.append((mime, params, q))
    return sorted(out, key=lambda m: -m[2])


def negotiate_aggregated(accept_header: str | None) -> str | None:
    """The aggregated-discovery content type to answer `/api` or `/apis` with, or None for legacy.

    Like kube's content negotiation, the first acceptable media range wins: a client that lists
    plain `application/json` before the aggregated types gets the legacy document."""
    for mime, params, _ in _media_ranges(accept_header or ""):
        if (
            mime == "application/json"
            and params.get("g") == AGGREGATED_GROUP
            and params.get("as") == AGGREGATED_KIND
        ):
            if params.get("v") in AGGREGATED_VERSIONS:
                return aggregated_content_type(params["v"])
            continue
        if mime in ("application/json", "application/*", "*/*", "application/yaml",
                    "application/vnd.kubernetes.protobuf") and not params.get("as"):
            return None
    return None


@functools.cache
def default() -> Discovery:
    return Discovery(TABLE)


def api_versions(server_address: str) -> dict[str, Any]:
    """GET /api (APIVersions)."""
    return default().api_versions(server_address)


def api_group_list() -> dict[str, Any]:
    """GET /apis (APIGroupList)."""
    return default().api_group_list()


def api_group(group: str) -> dict[str, Any] | None:
    """GET /apis/<group> (APIGroup); None for a group the server does not serve."""
    return default().api_group(group)


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """GET /api/v1 or /apis/<group>/<version> (APIResourceList); None if not served."""
    return default().resource_list(group, version)


def aggregated(core: bool, version: str = "v2") -> dict[str, Any]:
    """APIGroupDiscoveryList for `/api` (core=True) or `/apis` (core=False)."""
    return default().aggregated(core, version)


def encoded(name: str, *args: Any) -> bytes | None:
    """Cached JSON bytes of a document: `encoded("resource_list", "apps", "v1")`,
    `encoded("aggregated", True, "v2")`, `encoded("api_versions", "10.0.0.1:6443")`."""
    return default().encoded(name, *args)
