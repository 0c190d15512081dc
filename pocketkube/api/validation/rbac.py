"""Validation of rbac.authorization.k8s.io/v1: Roles, ClusterRoles and their bindings.

Follows kubernetes `pkg/apis/rbac/validation/validation.go` (1.32). RBAC object names only
have to be usable as URL path segments.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.validation import errs, meta
from pocketkube.api.validation.access import items, li, m, s
from pocketkube.api.validation.errs import Cause

RBAC_GROUP = "rbac.authorization.k8s.io"


def _meta(obj: dict[str, Any], old: dict[str, Any] | None, name_fn: meta.NameFn) -> list[Cause]:
    if old is None:
        return meta.validate_object_meta(m(obj, "metadata"), name_fn)
    return meta.validate_object_meta_update(m(obj, "metadata"), m(old, "metadata"))


def _rules(obj: dict[str, Any], namespaced: bool) -> list[Cause]:
    out: list[Cause] = []
    for i, r in enumerate(items(obj, "rules")):
        rp = f"rules[{i}]"
        if not li(r, "verbs"):
            out.append(errs.required(f"{rp}.verbs", "verbs must contain at least one value"))
        urls = li(r, "nonResourceURLs")
        if urls:
            rendered = errs.go_slice("string", urls)
            if namespaced:
                out.append(errs.invalid(f"{rp}.nonResourceURLs", rendered,
                                        "namespaced rules cannot apply to non-resource URLs"))
            if li(r, "apiGroups") or li(r, "resources") or li(r, "resourceNames"):
                out.append(errs.invalid(f"{rp}.nonResourceURLs", rendered, "rules cannot apply to "
                                        "both regular resources and non-resource URLs"))
            continue
        if not li(r, "apiGroups"):
            out.append(errs.required(f"{rp}.apiGroups", "resource rules must supply at least one api group"))
        if not li(r, "resources"):
            out.append(errs.required(f"{rp}.resources", "resource rules must supply at least one resource"))
    return out


def validate_role(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    return _meta(obj, old, meta.path_segment_name) + _rules(obj, namespaced=True)


def validate_cluster_role(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    return _meta(obj, old, meta.path_segment_name) + _rules(obj, namespaced=False)


def _subject(sub: dict[str, Any], namespaced: bool, path: str) -> list[Cause]:
    out: list[Cause] = []
    name, kind, group = s(sub, "name"), s(sub, "kind"), s(sub, "apiGroup")
    if not name:
        out.append(errs.required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            out += [errs.invalid(f"{path}.name", name, msg)
                    for msg in meta.name_is_dns_subdomain(name, False)]
        if group:
            out.append(errs.not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not s(sub, "namespace"):
            out.append(errs.required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            out.append(errs.not_supported(f"{path}.apiGroup", group, [RBAC_GROUP]))
    else:
        out.append(errs.not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return out


def _binding(obj: dict[str, Any], old: dict[str, Any] | None, namespaced: bool) -> list[Cause]:
    out = _meta(obj, old, meta.path_segment_name)
    ref = m(obj, "roleRef")
    if s(ref, "apiGroup") != RBAC_GROUP:
        out.append(errs.not_supported("roleRef.apiGroup", s(ref, "apiGroup"), [RBAC_GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if s(ref, "kind") not in kinds:
        out.append(errs.not_supported("roleRef.kind", s(ref, "kind"), kinds))
    if not s(ref, "name"):
        out.append(errs.required("roleRef.name"))
    else:
        out += [errs.invalid("roleRef.name", s(ref, "name"), msg)
                for msg in meta.path_segment_name(s(ref, "name"), False)]
    for i, sub in enumerate(items(obj, "subjects")):
        out += _subject(sub, namespaced, f"subjects[{i}]")
    if old is not None:
        old_ref = m(old, "roleRef")
        if any(s(ref, k) != s(old_ref, k) for k in ("apiGroup", "kind", "name")):
            out.append(errs.invalid("roleRef", errs.GoRepr(
                f"rbac.RoleRef{{APIGroup:{errs.go_quote(s(ref, 'apiGroup'))}, "
                f"Kind:{errs.go_quote(s(ref, 'kind'))}, Name:{errs.go_quote(s(ref, 'name'))}}}"),
                "cannot change roleRef"))
    return out


def validate_role_binding(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    return _binding(obj, old, namespaced=True)


def validate_cluster_role_binding(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    return _binding(obj, old, namespaced=False)
