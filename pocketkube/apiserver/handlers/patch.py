"""PATCH: strategic merge, JSON merge, JSON patch and server-side apply
(apiserver `pkg/endpoints/handlers/patch.go`). The patch is applied to the current object inside
the store's guaranteed update, so a concurrent write makes it re-apply to the newer object; then
the normal update pipeline (defaults, validation, admission) runs on the result."""

from __future__ import annotations

from typing import Any

import orjson

from pocketkube.api import errors
from pocketkube.api.patch import apply as ssa
from pocketkube.api.patch.jsonpatch import json_patch
from pocketkube.api.patch.merge import merge_patch
from pocketkube.api.patch.strategic import strategic_merge
from pocketkube.apiserver import negotiate
from pocketkube.apiserver.handlers.common import Scope, check_object, respond
from pocketkube.registry import fields

Obj = dict[str, Any]

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "unsupported",
}

UNSUPPORTED = ("the body of the request was in an unknown format - accepted media types "
               "include: application/json-patch+json, application/merge-patch+json, "
               "application/apply-patch+yaml, application/strategic-merge-patch+json")


def patch_type(scope: Scope) -> str:
    media = (scope.request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    kind = PATCH_TYPES.get(media)
    if kind is None or kind == "unsupported":
        raise errors.StatusError(415, "UnsupportedMediaType", UNSUPPORTED)
    return kind


def parse_patch(kind: str, data: bytes) -> Any:
    if kind == "apply":
        doc = negotiate.load_yaml(data, "Patch")
        if not isinstance(doc, dict):
            raise errors.bad_request("error decoding YAML: the apply configuration must be an "
                                     "object")
        return doc
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise errors.bad_request(f"error decoding patch: {e}") from None
    if kind == "json" and not isinstance(doc, list):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type "
                                 "jsonpatch.Patch")
    if kind != "json" and not isinstance(doc, dict):
        raise errors.bad_request("error decoding patch: the patch must be a JSON object")
    return doc


def _apply_patch(scope: Scope, kind: str, doc: Any, cur: Obj) -> Obj:
    if kind == "json":
        return json_patch(cur, doc)
    if kind == "merge":
        return merge_patch(cur, doc)
    return strategic_merge(cur, doc, fields.kind_schema(scope.resource))


async def patch(scope: Scope) -> Any:
    kind = patch_type(scope)
    doc = parse_patch(kind, await scope.body())
    sub = scope.info.subresource
    if sub and sub != "status":
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource")
    store = scope.store
    name = scope.info.name
    force = scope.query.get("force") == "true"
    if kind == "apply":
        if not scope.ctx.field_manager:
            raise errors.bad_request("PATCH requests with apply content type require a "
                                     "fieldManager")
        check_object(scope, doc)
    elif force:
        raise errors.bad_request("force flag is not allowed for non-apply patches")

    async def try_update(cur: Obj | None) -> Obj | None:
        if kind == "apply":
            new = ssa.server_side_apply(
                cur, doc, scope.ctx.field_manager, schema=fields.kind_schema(scope.resource),
                force=force, api_version=scope.resource.api_version,
                now=scope.ctx.now or _now(), subresource=sub or "",
                kind=scope.resource.kind)
            scope.ctx.applied = True
            if cur is None:
                return new
        else:
            assert cur is not None
            new = _apply_patch(scope, kind, doc, cur)
            if not isinstance(new, dict):
                raise errors.bad_request("the patch did not produce an object")
        meta = new.get("metadata") or {}
        cmeta = cur["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != cmeta["resourceVersion"]:
            raise store.conflict(name)
        for f in ("name", "namespace"):
            if meta.get(f, cmeta.get(f)) != cmeta.get(f) and meta.get(f):
                raise errors.bad_request(f"the {f} of the object ({meta.get(f)}) does not match "
                                         f"the {f} on the URL ({cmeta.get(f)})")
        new.setdefault("metadata", {})["resourceVersion"] = cmeta["resourceVersion"]
        new["kind"], new["apiVersion"] = scope.resource.kind, scope.resource.group_version
        return await store.prepare_update(cur, new, scope.ctx, sub)

    obj, created = await store.guaranteed_update(scope.ns, name, try_update, scope.ctx,
                                                 create_missing=(kind == "apply" and not sub))
    return respond(scope, obj, 201 if created else 200)


def _now() -> str:
    from pocketkube.registry.codec import now_rfc3339

    return now_rfc3339()
