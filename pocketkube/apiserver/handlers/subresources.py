"""Subresources with behaviour of their own: `scale` (autoscaling/v1 Scale over a workload's
replicas), `pods/binding`, `pods/eviction`, `serviceaccounts/token` and `namespaces/finalize`."""

from __future__ import annotations

from typing import Any

from pocketkube.api import errors, schema
from pocketkube.api.patch.jsonpatch import json_patch
from pocketkube.api.patch.merge import merge_patch
from pocketkube.api.patch.strategic import strategic_merge
from pocketkube.apiserver.handlers.common import Scope, respond
from pocketkube.apiserver.handlers.patch import parse_patch, patch_type
from pocketkube.registry.codec import now_rfc3339
from pocketkube.registry.eviction import evict

Obj = dict[str, Any]


def selector_string(sel: Any) -> str:
    """A label selector in its string form, as Scale.status.selector carries it."""
    if not isinstance(sel, dict):
        return ""
    if "matchLabels" not in sel and "matchExpressions" not in sel:
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))  # RC: a plain map
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), sorted(e.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(vals)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(vals)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(sorted(parts))


def to_scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0),
                   "selector": selector_string(spec.get("selector"))},
    }


async def scale(scope: Scope) -> Any:
    store, name, verb = scope.store, scope.info.name, scope.info.verb
    if verb == "get":
        return respond(scope, to_scale(await store.get(scope.ns, name)))
    if verb == "update":
        body = await scope.object()
        kind, doc = None, None
    elif verb == "patch":
        kind = patch_type(scope)
        doc = parse_patch(kind, await scope.body())
        body = None
    else:
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource")

    async def try_update(cur: Obj | None) -> Obj | None:
        assert cur is not None
        current = to_scale(cur)
        if body is not None:
            new_scale = body
        elif kind == "json":
            new_scale = json_patch(current, doc)
        elif kind == "merge":
            new_scale = merge_patch(current, doc)
        else:
            new_scale = strategic_merge(current, doc, schema.for_kind("autoscaling", "v1",
                                                                      "Scale"))
        want_rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
            raise store.conflict(name)
        replicas = (new_scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("Scale", name, [errors.field_error(
                "FieldValueInvalid", "spec.replicas",
                f"Invalid value: {replicas}: must be greater than or equal to 0")],
                "autoscaling")
        new = store.strategy.copy(cur)
        new.setdefault("spec", {})["replicas"] = replicas
        return await store.prepare_update(cur, new, scope.ctx, "")

    obj, _ = await store.guaranteed_update(scope.ns, name, try_update, scope.ctx)
    return respond(scope, to_scale(obj))


async def bind(scope: Scope, pod_name: str, binding: Obj) -> Any:
    """Assign a pod to a node (`pods/binding`), as the scheduler does."""
    target = binding.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.invalid("Binding", pod_name, [errors.field_error(
            "FieldValueRequired", "target.name", "Required value")])
    pods = scope.registry.store("", "pods")

    async def try_update(cur: Obj | None) -> Obj | None:
        assert cur is not None
        spec = cur.get("spec") or {}
        if cur["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods/binding", pod_name, "",
                                  f"pod {pod_name} is being deleted, cannot be assigned to a "
                                  f"host")
        if spec.get("nodeName"):
            raise errors.conflict("pods/binding", pod_name, "",
                                  f'pod {pod_name} is already assigned to node '
                                  f'"{spec["nodeName"]}"')
        # `cur` was just decoded for this attempt: copy only what changes, not the whole pod.
        status = dict(cur.get("status") or {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now_rfc3339()})
        status["conditions"] = conds
        return {**cur, "spec": {**spec, "nodeName": node}, "status": status}

    await pods.guaranteed_update(scope.info.namespace, pod_name, try_update, scope.ctx)
    return respond(scope, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Success", "code": 201}, 201)


async def binding(scope: Scope) -> Any:
    body = await scope.object()
    name = scope.info.name or (body.get("metadata") or {}).get("name", "")
    return await bind(scope, name, body)


async def eviction(scope: Scope) -> Any:
    body = await scope.object()
    await evict(scope.registry, scope.info.namespace, scope.info.name, body, scope.ctx)
    return respond(scope, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Success", "code": 201}, 201)


async def token(scope: Scope) -> Any:
    body = await scope.object()
    sa = await scope.store.get(scope.ns, scope.info.name)
    spec = body.get("spec") or {}
    exp = spec.get("expirationSeconds") or 3600
    if not isinstance(exp, int) or exp < 600:
        raise errors.invalid("TokenRequest", scope.info.name, [errors.field_error(
            "FieldValueInvalid", "spec.expirationSeconds",
            f"Invalid value: {exp}: may not specify a duration less than 10 minutes")],
            "authentication.k8s.io")
    authority = scope.request.app["tokens"]
    tok, exp_at = authority.issue(scope.info.namespace, scope.info.name,
                                  sa["metadata"].get("uid", ""), spec.get("audiences") or [],
                                  exp, spec.get("boundObjectRef"))
    from datetime import UTC, datetime

    out = {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": scope.info.name, "namespace": scope.info.namespace,
                     "creationTimestamp": now_rfc3339()},
        "spec": {"audiences": spec.get("audiences") or
                 ["https://kubernetes.default.svc.cluster.local"],
                 "expirationSeconds": exp, "boundObjectRef": spec.get("boundObjectRef")},
        "status": {"token": tok, "expirationTimestamp": datetime.fromtimestamp(
            exp_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    return respond(scope, out, 201)


async def finalize(scope: Scope) -> Any:
    body = await scope.object()
    store = scope.store
    strat = store.strategy

    async def try_update(cur: Obj | None) -> Obj | None:
        assert cur is not None
        return strat.prepare_finalize(body, cur)  # type: ignore[attr-defined]

    obj, _ = await store.guaranteed_update(None, scope.info.name, try_update, scope.ctx)
    return respond(scope, obj)
