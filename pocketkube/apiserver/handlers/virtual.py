"""Resources that are computed, not stored: componentstatuses (the live health of each
component) and the authentication/authorization reviews (`kubectl auth can-i`, `auth whoami`,
TokenReview). Until RBAC exists every authenticated user is allowed everything (kube's
AlwaysAllow), and the reviews say so."""

from __future__ import annotations

from typing import Any

from pocketkube.api import errors
from pocketkube.apiserver import auth
from pocketkube.apiserver.handlers.common import Scope, respond
from pocketkube.apiserver.handlers.crud import list_response

Obj = dict[str, Any]

CS_WARNING = "v1 ComponentStatus is deprecated in v1.19+"


async def _component(name: str, check: Any) -> Obj:
    try:
        ok, message = await check()
    except Exception as e:  # a failing check is an unhealthy component, not a failed request
        ok, message = False, str(e)
    cond: Obj = {"type": "Healthy", "status": "True" if ok else "False"}
    if ok:
        cond["message"] = message or "ok"
    else:
        cond["error"] = message or "unhealthy"
    return {"kind": "ComponentStatus", "apiVersion": "v1",
            "metadata": {"name": name}, "conditions": [cond]}


async def componentstatuses(scope: Scope) -> Any:
    scope.ctx.warnings.append(CS_WARNING)
    checks = scope.request.app["health"].components()
    if scope.info.verb == "get":
        check = checks.get(scope.info.name)
        if check is None:
            raise errors.not_found("componentstatuses", scope.info.name)
        return respond(scope, await _component(scope.info.name, check))
    if scope.info.verb != "list":
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource")
    items = [await _component(n, c) for n, c in sorted(checks.items())]
    return list_response(scope, items, "", "")


def _user_info(scope: Scope) -> Obj:
    info: Obj = {"username": scope.ctx.user, "groups": scope.ctx.groups}
    if scope.ctx.uid:
        info["uid"] = scope.ctx.uid
    return info


async def review(scope: Scope) -> Any:
    if scope.info.verb != "create":
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource")
    body = await scope.object()
    plural = scope.resource.plural
    body.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    if plural == "selfsubjectreviews":
        body["status"] = {"userInfo": _user_info(scope)}
    elif plural == "selfsubjectrulesreviews":
        body["status"] = {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        }
    elif plural == "tokenreviews":
        spec = body.get("spec") or {}
        claims = scope.request.app["tokens"].verify(spec.get("token") or "")
        if claims is None:
            body["status"] = {"authenticated": False, "error": "invalid bearer token"}
        else:
            u = auth.user_from_claims(claims)
            aud = claims.get("aud")
            body["status"] = {"authenticated": True,
                              "user": {"username": u.name, "uid": u.uid, "groups": u.groups},
                              "audiences": aud if isinstance(aud, list) else [aud]}
    else:  # the access reviews
        body["status"] = {"allowed": True, "reason": "no authorization restrictions are "
                                                     "enforced by this cluster"}
    return respond(scope, body, 201)
