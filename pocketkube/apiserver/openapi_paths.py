"""The `paths` section of a group-version's OpenAPI v3 document.

One set of operations per resource, as kube-apiserver's route installer declares them: the
collection (list, create, deletecollection), the item (read, replace, patch, delete), the
all-namespaces list, the deprecated watch paths and each subresource. Every operation carries
`x-kubernetes-action` and `x-kubernetes-group-version-kind`: `kubectl explain` finds a resource's
kind through them, and `kubectl apply` looks for the kind's PATCH operation and its
`fieldValidation` parameter to decide that the server validates fields itself.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.resources import Resource, Subresource
from pocketkube.apiserver import openapi_params as P
from pocketkube.apiserver.openapi_schemas import META, definition_for, ref

Op = dict[str, Any]

_HTTP = {"get": "get", "create": "post", "update": "put", "patch": "patch", "delete": "delete"}


def gv_camel(group: str, version: str) -> str:
    """`CoreV1`, `AppsV1`, `RbacAuthorizationV1`: the group-version part of operation ids."""
    name = group.removesuffix(".k8s.io") if group else "core"
    return "".join(p[:1].upper() + p[1:] for p in name.split(".")) + version.capitalize()


def gv_tag(group: str, version: str) -> str:
    """`core_v1`, `apps_v1`, `rbacAuthorization_v1`."""
    camel = gv_camel(group, version).removesuffix(version.capitalize())
    return f"{camel[:1].lower()}{camel[1:]}_{version}"


def gv_prefix(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def _article(kind: str) -> str:
    if kind.endswith("s") and not kind.endswith("ss"):
        return ""
    return "an " if kind[:1].lower() in "aeiou" else "a "


def _content(types: tuple[str, ...], schema: dict[str, Any]) -> dict[str, Any]:
    return {t: {"schema": schema} for t in types}


def _responses(codes: dict[str, str], schema: dict[str, Any],
               types: tuple[str, ...] = P.RESPONSE_TYPES) -> dict[str, Any]:
    out: dict[str, Any] = {
        code: {"content": _content(types, schema), "description": text}
        for code, text in codes.items()
    }
    out["401"] = {"description": "Unauthorized"}
    return out


def _op(action: str, op_id: str, description: str, gvk: dict[str, str], tag: str,
        responses: dict[str, Any], params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None) -> Op:
    op: Op = {"description": description, "operationId": op_id}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    op["responses"] = responses
    op["tags"] = [tag]
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = gvk
    return op


def _body(schema: dict[str, Any], types: tuple[str, ...] = ("*/*",)) -> dict[str, Any]:
    return {"content": _content(types, schema), "required": True}


def _schema_of(group: str, version: str, kind: str) -> dict[str, Any]:
    name = definition_for(group, version, kind)
    return ref(name) if name else {"type": "object"}


class _Builder:
    """Adds one resource's paths to `paths`."""

    def __init__(self, r: Resource, paths: dict[str, Any]) -> None:
        self.r, self.paths = r, paths
        self.gv = gv_camel(r.group, r.version)
        self.tag = gv_tag(r.group, r.version)
        self.ns = "Namespaced" if r.namespaced else ""
        self.gvk = {"group": r.group, "kind": r.kind, "version": r.version}
        self.obj = _schema_of(r.group, r.version, r.kind)
        self.list = _schema_of(r.group, r.version, r.kind + "List")
        prefix = gv_prefix(r.group, r.version)
        self.prefix = prefix
        self.base = f"{prefix}/namespaces/{{namespace}}" if r.namespaced else prefix
        self.scope = [P.NAMESPACE] if r.namespaced else []
        self.name_param = P.path_param("name", f"name of the {r.kind}")

    def _path(self, path: str, params: list[dict[str, Any]], ops: dict[str, Op]) -> None:
        if ops:
            self.paths[path] = {**ops, "parameters": params}

    def build(self) -> None:
        r, verbs = self.r, set(self.r.verbs)
        k, a = r.kind, _article(r.kind)
        status = ref(META + "Status")
        coll: dict[str, Op] = {}
        if "list" in verbs:
            coll["get"] = self._list_op(f"list{self.gv}{self.ns}{k}", P.query(*P.LIST))
        if "create" in verbs:
            coll["post"] = _op(
                "post", f"create{self.gv}{self.ns}{k}", f"create {a}{k}", self.gvk, self.tag,
                _responses({"200": "OK", "201": "Created", "202": "Accepted"}, self.obj),
                P.query(*P.WRITE), _body(self.obj))
        if "deletecollection" in verbs:
            coll["delete"] = _op(
                "deletecollection", f"delete{self.gv}Collection{self.ns}{k}",
                f"delete collection of {k}", self.gvk, self.tag,
                _responses({"200": "OK"}, status), P.query(*P.DELETE_COLLECTION),
                {"content": _content(("*/*",), ref(META + "DeleteOptions"))})
        collection = f"{self.base}/{r.plural}"
        self._path(collection, [*self.scope, *P.query("pretty")], coll)

        item: dict[str, Op] = {}
        if "get" in verbs:
            item["get"] = _op("get", f"read{self.gv}{self.ns}{k}", f"read the specified {k}",
                              self.gvk, self.tag, _responses({"200": "OK"}, self.obj))
        if "update" in verbs:
            item["put"] = _op(
                "put", f"replace{self.gv}{self.ns}{k}", f"replace the specified {k}", self.gvk,
                self.tag, _responses({"200": "OK", "201": "Created"}, self.obj),
                P.query(*P.WRITE), _body(self.obj))
        if "patch" in verbs:
            item["patch"] = self._patch_op(f"patch{self.gv}{self.ns}{k}",
                                           f"partially update the specified {k}", self.gvk,
                                           self.obj)
        if "delete" in verbs:
            item["delete"] = _op(
                "delete", f"delete{self.gv}{self.ns}{k}", f"delete {a}{k}", self.gvk, self.tag,
                _responses({"200": "OK", "202": "Accepted"}, status), P.query(*P.DELETE),
                {"content": _content(("*/*",), ref(META + "DeleteOptions"))})
        item_path = f"{collection}/{{name}}"
        self._path(item_path, [self.name_param, *self.scope, *P.query("pretty")], item)

        watch_params = P.query(*sorted((*P.LIST, "pretty")))
        if r.namespaced and "list" in verbs:
            self._path(f"{self.prefix}/{r.plural}", watch_params,
                       {"get": self._list_op(f"list{self.gv}{k}ForAllNamespaces", None)})
        if "watch" in verbs:
            event = ref(META + "WatchEvent")
            desc = "deprecated: use the 'watch' parameter with a list operation instead"
            watched = f"{self.prefix}/watch" + ("/namespaces/{namespace}" if r.namespaced else "")
            self._path(f"{watched}/{r.plural}", [*self.scope, *watch_params], {
                "get": self._watch_op("watchlist", f"watch{self.gv}{self.ns}{k}List",
                                      f"watch individual changes to a list of {k}. {desc}.",
                                      event)})
            self._path(f"{watched}/{r.plural}/{{name}}",
                       [self.name_param, *self.scope, *watch_params], {
                "get": self._watch_op("watch", f"watch{self.gv}{self.ns}{k}",
                                      f"watch changes to an object of kind {k}. {desc}, "
                                      "filtered to a single item with the 'fieldSelector' "
                                      "parameter.", event)})
            if r.namespaced:
                self._path(f"{self.prefix}/watch/{r.plural}", watch_params, {
                    "get": self._watch_op("watchlist", f"watch{self.gv}{k}ListForAllNamespaces",
                                          f"watch individual changes to a list of {k}. {desc}.",
                                          event)})
        for sub in sorted(r.subresources, key=lambda s: s.name):
            self._subresource(sub, item_path)

    def _list_op(self, op_id: str, params: list[dict[str, Any]] | None) -> Op:
        return _op("list", op_id, f"list or watch objects of kind {self.r.kind}", self.gvk,
                   self.tag, _responses({"200": "OK"}, self.list, P.WATCH_TYPES), params)

    def _watch_op(self, action: str, op_id: str, description: str, event: dict[str, Any]) -> Op:
        return _op(action, op_id, description, self.gvk, self.tag,
                   _responses({"200": "OK"}, event, P.WATCH_TYPES))

    def _patch_op(self, op_id: str, description: str, gvk: dict[str, str],
                  schema: dict[str, Any]) -> Op:
        return _op("patch", op_id, description, gvk, self.tag,
                   _responses({"200": "OK", "201": "Created"}, schema), P.query(*P.PATCH),
                   _body(ref(META + "Patch"), P.PATCH_TYPES))

    def _subresource(self, sub: Subresource, item_path: str) -> None:
        r = self.r
        group = sub.group if sub.group is not None else r.group
        version = sub.version or r.version
        gvk = {"group": group, "kind": sub.kind, "version": version}
        name = sub.name[:1].upper() + sub.name[1:]
        suffix = f"{self.ns}{r.kind}{name}"
        path = f"{item_path}/{sub.name}"
        params = [self.name_param, *self.scope]
        if sub.kind.endswith("Options"):
            self._connect(sub, gvk, suffix, path, params)
            return
        schema = _schema_of(group, version, sub.kind)
        ops: dict[str, Op] = {}
        if sub.name == "log":
            ops["get"] = _op("get", f"read{self.gv}{suffix}",
                             f"read log of the specified {r.kind}", gvk, self.tag,
                             _responses({"200": "OK"}, {"type": "string"}, P.LOG_TYPES),
                             P.query(*P.LOG))
            self._path(path, [*params, *P.query("pretty")], ops)
            return
        what = f"{sub.name} of"
        if "get" in sub.verbs:
            ops["get"] = _op("get", f"read{self.gv}{suffix}",
                             f"read {what} the specified {r.kind}", gvk, self.tag,
                             _responses({"200": "OK"}, schema))
        if "create" in sub.verbs:
            ops["post"] = _op("post", f"create{self.gv}{suffix}",
                              f"create {what} {_article(r.kind)}{r.kind}", gvk, self.tag,
                              _responses({"200": "OK", "201": "Created", "202": "Accepted"},
                                         schema), P.query(*P.WRITE), _body(schema))
        if "update" in sub.verbs:
            ops["put"] = _op("put", f"replace{self.gv}{suffix}",
                             f"replace {what} the specified {r.kind}", gvk, self.tag,
                             _responses({"200": "OK", "201": "Created"}, schema),
                             P.query(*P.WRITE), _body(schema))
        if "patch" in sub.verbs:
            ops["patch"] = self._patch_op(f"patch{self.gv}{suffix}",
                                          f"partially update {what} the specified {r.kind}",
                                          gvk, schema)
        self._path(path, [*params, *P.query("pretty")], ops)

    def _connect(self, sub: Subresource, gvk: dict[str, str], suffix: str, path: str,
                 params: list[dict[str, Any]]) -> None:
        methods = sorted(_HTTP[v] for v in sub.verbs if v in _HTTP)
        if sub.name == "proxy":
            methods = sorted({*methods, "head", "options"})
        query = P.query(*P.CONNECT.get(sub.name, ()))
        response = {"200": {"content": {"*/*": {"schema": {"type": "string"}}},
                            "description": "OK"},
                    "401": {"description": "Unauthorized"}}

        def ops(with_path: str) -> dict[str, Op]:
            out = {}
            for m in methods:
                out[m] = _op("connect", f"connect{self.gv}{m.capitalize()}{suffix}{with_path}",
                             f"connect {m.upper()} requests to {sub.name} of {self.r.kind}",
                             gvk, self.tag, response)
            return out

        if sub.name == "proxy":
            # The query parameter `path` and the `{path}` variant both exist in kube.
            self._path(path, [*params, *query], ops(""))
            self._path(f"{path}/{{path}}",
                       [self.name_param, P.path_param("path", "path to the resource"),
                        *self.scope, *query], ops("WithPath"))
        else:
            self._path(path, [*params, *query], ops(""))


def gv_paths(group: str, version: str, resources: list[Resource]) -> dict[str, Any]:
    """All paths of one group-version, including its `…/` resource-list root."""
    tag = gv_tag(group, version)
    paths: dict[str, Any] = {
        f"{gv_prefix(group, version)}/": {
            "get": {
                "description": "get available resources",
                "operationId": f"get{gv_camel(group, version)}APIResources",
                "responses": _responses({"200": "OK"}, ref(META + "APIResourceList")),
                "tags": [tag],
            }
        }
    }
    for r in resources:
        _Builder(r, paths).build()
    return dict(sorted(paths.items()))
