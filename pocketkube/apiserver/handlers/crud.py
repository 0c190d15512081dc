"""GET, LIST, POST, PUT, DELETE and DELETE-collection of stored resources (apiserver
`pkg/endpoints/handlers/get.go`, `create.go`, `update.go`, `delete.go`)."""

from __future__ import annotations

from typing import Any

import orjson

from pocketkube.api import errors
from pocketkube.api.selectors import parse_field_selector, parse_label_selector
from pocketkube.apiserver import negotiate, tables
from pocketkube.apiserver.handlers.common import Scope, respond, response, status_success

Obj = dict[str, Any]


def _int(value: str | None, name: str) -> int:
    if value in (None, ""):
        return 0
    try:
        return int(value)  # type: ignore[arg-type]
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{value}"') from None


def selectors(scope: Scope) -> tuple[Any, Any]:
    q = scope.query
    return (parse_label_selector(q.get("labelSelector")),
            parse_field_selector(q.get("fieldSelector"), scope.resource.kind))


async def get(scope: Scope) -> Any:
    obj = await scope.store.get(scope.ns, scope.info.name, scope.query.get("resourceVersion", ""))
    return respond(scope, obj)


async def list_(scope: Scope) -> Any:
    q = scope.query
    labels, fields = selectors(scope)
    rv_match = q.get("resourceVersionMatch", "")
    if rv_match not in ("", "Exact", "NotOlderThan"):
        raise errors.bad_request(f'invalid resourceVersionMatch "{rv_match}"')
    items, rv, cont = await scope.store.list(
        scope.ns, labels, fields, rv=q.get("resourceVersion", ""), rv_match=rv_match,
        limit=_int(q.get("limit"), "limit"), cont=q.get("continue", ""))
    return list_response(scope, items, rv, cont)


def list_response(scope: Scope, items: list[Obj], rv: str, cont: str) -> Any:
    r, out = scope.resource, scope.out
    if out.form == "table":
        doc = tables.table(r, items, rv, cont, scope.query.get("includeObject", "Metadata"))
    elif out.form == "partial":
        doc = tables.partial_list(items, rv, cont)
    else:
        meta: Obj = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
        if out.form == "json":
            # Splice pre-encoded items: lists of thousands of objects are the hot path.
            head = orjson.dumps({"kind": f"{r.kind}List", "apiVersion": r.group_version,
                                 "metadata": meta})
            body = head[:-1] + b',"items":[' + b",".join(orjson.dumps(o) for o in items) + b"]}"
            return response(body, "application/json", 200, scope.ctx.warnings)
        doc = {"kind": f"{r.kind}List", "apiVersion": r.group_version, "metadata": meta,
               "items": items}
    body, ctype = negotiate.dump(doc, out)
    return response(body, ctype, 200, scope.ctx.warnings)


async def create(scope: Scope) -> Any:
    obj = await scope.object()
    meta = obj["metadata"]
    if not meta.get("name") and not meta.get("generateName"):
        raise errors.invalid(scope.resource.kind, "", [errors.field_error(
            "FieldValueRequired", "metadata.name", "Required value: name or generateName is "
                                                   "required")], scope.resource.group)
    created = await scope.store.create(scope.ns, obj, scope.ctx)
    return respond(scope, created, 201)


async def update(scope: Scope) -> Any:
    obj = await scope.object()
    obj["metadata"].setdefault("name", scope.info.name)
    sub = scope.info.subresource
    if sub and sub != "status":
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource")
    new, created = await scope.store.update(scope.ns, scope.info.name, obj, scope.ctx, sub)
    return respond(scope, new, 201 if created else 200)


async def delete_options(scope: Scope) -> Obj:
    data = await scope.body()
    opts: Obj = {}
    if data.strip():
        try:
            opts = orjson.loads(data)
        except orjson.JSONDecodeError:
            opts = negotiate.load_yaml(data, "DeleteOptions")
        if not isinstance(opts, dict):
            raise errors.bad_request("the body of a delete request must be a DeleteOptions")
    q = scope.query
    if "gracePeriodSeconds" in q:
        opts["gracePeriodSeconds"] = _int(q["gracePeriodSeconds"], "gracePeriodSeconds")
    if "propagationPolicy" in q:
        opts["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        opts["orphanDependents"] = q["orphanDependents"] == "true"
    dry = opts.get("dryRun")
    if dry:
        # kubectl sends dryRun in the DeleteOptions body, not the query.
        if not isinstance(dry, list) or any(d != "All" for d in dry):
            raise errors.bad_request(f'Invalid dryRun value "{dry}"; valid values are "All"')
        scope.ctx.dry_run = True
    grace = opts.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or grace < 0):
        if isinstance(grace, int):
            opts["gracePeriodSeconds"] = 0 if grace < 0 else grace
        else:
            raise errors.bad_request("gracePeriodSeconds must be an integer")
    return opts


async def delete(scope: Scope) -> Any:
    opts = await delete_options(scope)
    obj, deleted = await scope.store.delete(scope.ns, scope.info.name, opts, scope.ctx)
    if not deleted:
        return respond(scope, obj, 200 if scope.ctx.dry_run else 202)
    if scope.resource.plural == "pods":
        return respond(scope, obj)  # the pod registry returns the deleted object
    return respond(scope, status_success(scope, obj))


async def delete_collection(scope: Scope) -> Any:
    opts = await delete_options(scope)
    labels, fields = selectors(scope)
    items, _, _ = await scope.store.list(scope.ns, labels, fields)
    done = []
    for o in items:
        meta = o["metadata"]
        try:
            obj, _ = await scope.store.delete(meta.get("namespace"), meta["name"], opts,
                                              scope.ctx)
            done.append(obj)
        except errors.StatusError as e:
            if e.code != 404:
                raise
    return list_response(scope, done, str(scope.registry.cache.revision), "")
