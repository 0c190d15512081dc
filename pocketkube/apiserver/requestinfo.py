"""What a request is about: kube's `RequestInfoFactory` (apiserver `pkg/endpoints/request`).

`/api/v1/namespaces/ns/pods/p/log` → group "", version v1, namespace ns, resource pods, name p,
subresource log, verb get. Namespaces' own `status`/`finalize` are subresources, not nested
resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass
class RequestInfo:
    is_resource: bool = False
    verb: str = ""
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""
    parts: list[str] = field(default_factory=list)  # path parts after the subresource (proxy)


def parse(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    parts = [p for p in path.strip("/").split("/") if p]
    info = RequestInfo()
    if not parts or parts[0] not in ("api", "apis"):
        info.verb = method.lower()
        return info
    if parts[0] == "api":
        if len(parts) < 2:
            return info
        info.version, rest = parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return info
        info.group, info.version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return info
    info.is_resource = True
    if rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
        else:
            # /namespaces/{name}[/status|/finalize]: the namespace itself.
            info.namespace = ""
            rest = ["namespaces", *rest[1:]]
    info.resource = rest[0]
    if len(rest) > 1:
        info.name = rest[1]
    if len(rest) > 2:
        info.subresource = rest[2]
        info.parts = rest[3:]
    info.verb = _verb(method, bool(info.name), query)
    return info


def _verb(method: str, named: bool, query: dict[str, str]) -> str:
    m = method.upper()
    if m in ("GET", "HEAD"):
        if query.get("watch") in ("true", "1"):
            return "watch"
        return "get" if named else "list"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
    }.get(m, m.lower())
