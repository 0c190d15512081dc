"""ObjectMeta, labels, annotations and label selectors.

Follows apimachinery `pkg/api/validation/objectmeta.go` and `pkg/apis/meta/v1/validation`
(1.32). The string formats and name rules live in `names`; the names used by the kind
validators are re-exported here so each kind module needs only this one import.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.validation import errs
from pocketkube.api.validation.access import items, li, m, n, s, smap
from pocketkube.api.validation.errs import Cause
from pocketkube.api.validation.names import (
    NameFn,
    dns1123_label,
    dns1123_subdomain,
    is_config_map_key,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_relaxed_env_var_name,
    is_valid_label_value,
    is_valid_percent,
    is_valid_port_name,
    is_valid_port_num,
    name_is_dns1035_label,
    name_is_dns_label,
    name_is_dns_subdomain,
    path_segment_name,
    qualified_name,
    range_error,
)

# --- labels, annotations, ObjectMeta ------------------------------------------------------------

ANNOTATIONS_LIMIT = 256 * 1024


def validate_labels(labels: dict[str, str], path: str) -> list[Cause]:
    out: list[Cause] = []
    for k in sorted(labels):
        out += [errs.invalid(path, k, msg) for msg in is_qualified_name(k)]
        out += [errs.invalid(path, labels[k], msg) for msg in is_valid_label_value(labels[k])]
    return out


def validate_annotations(annotations: dict[str, str], path: str) -> list[Cause]:
    out: list[Cause] = []
    for k in sorted(annotations):
        out += [errs.invalid(path, k, msg) for msg in is_qualified_name(k.lower())]
    size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if size > ANNOTATIONS_LIMIT:
        out.append(errs.too_long(path, ANNOTATIONS_LIMIT))
    return out


def _owner_references(meta: dict[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    first_controller = ""
    refs = items(meta, "ownerReferences")
    for ref in refs:
        api_version, kind = s(ref, "apiVersion"), s(ref, "kind")
        version = api_version.rsplit("/", 1)[-1] if api_version.count("/") <= 1 else ""
        if not version:
            out.append(errs.invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        if not kind:
            out.append(errs.invalid(f"{path}.kind", kind, "kind must not be empty"))
        if not s(ref, "name"):
            out.append(errs.invalid(f"{path}.name", "", "name must not be empty"))
        if not s(ref, "uid"):
            out.append(errs.invalid(f"{path}.uid", "", "uid must not be empty"))
        if ref.get("controller") is True:
            current = f"{kind}/{s(ref, 'name')}"
            if first_controller:
                out.append(errs.invalid(
                    path, errs.GoRepr(f"[]v1.OwnerReference{{...{len(refs)} items}}"),
                    'Only one reference can have Controller set to true. Found "true" in '
                    f"references for {first_controller} and {current}"))
            else:
                first_controller = current
    return out


def _finalizers(finalizers: list[Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    names = [f for f in finalizers if isinstance(f, str)]
    for f in names:
        out += qualified_name(f, path)
    if "orphan" in names and "foregroundDeletion" in names:
        out.append(errs.invalid(path, errs.go_slice("string", names),
                                "finalizer orphan and foregroundDeletion cannot be both set"))
    return out


def validate_object_meta(meta: dict[str, Any], name_fn: NameFn, path: str = "metadata") -> list[Cause]:
    """`ValidateObjectMetaAccessor` (namespace presence is checked by the request handler)."""
    out: list[Cause] = []
    gen_name, name = s(meta, "generateName"), s(meta, "name")
    if gen_name:
        out += [errs.invalid(f"{path}.generateName", gen_name, msg) for msg in name_fn(gen_name, True)]
    if not name:
        out.append(errs.required(f"{path}.name", "name or generateName is required"))
    else:
        out += [errs.invalid(f"{path}.name", name, msg) for msg in name_fn(name, False)]
    namespace = s(meta, "namespace")
    if namespace:
        out += [errs.invalid(f"{path}.namespace", namespace, msg)
                for msg in name_is_dns_label(namespace, False)]
    out += errs.nonnegative(f"{path}.generation", n(meta, "generation"))
    out += validate_labels(smap(meta, "labels"), f"{path}.labels")
    out += validate_annotations(smap(meta, "annotations"), f"{path}.annotations")
    out += _owner_references(meta, f"{path}.ownerReferences")
    out += _finalizers(li(meta, "finalizers"), f"{path}.finalizers")
    return out


def validate_object_meta_update(new: dict[str, Any], old: dict[str, Any],
                                path: str = "metadata") -> list[Cause]:
    """`ValidateObjectMetaAccessorUpdate` (resourceVersion preconditions belong to the store)."""
    out: list[Cause] = []
    if old.get("deletionTimestamp"):
        extra = sorted(set(li(new, "finalizers")) - set(li(old, "finalizers")), key=str)
        if extra:
            out.append(errs.forbidden(
                f"{path}.finalizers",
                "no new finalizers can be added if the object is being deleted, found new "
                f"finalizers {errs.go_slice('string', extra)}"))
    gen_new, gen_old = n(new, "generation"), n(old, "generation")
    if gen_new is not None and gen_old is not None and gen_new < gen_old:
        out.append(errs.invalid(f"{path}.generation", gen_new, "must not be decremented"))
    for key in ("name", "namespace", "uid"):
        out += errs.immutable(f"{path}.{key}", s(new, key), s(old, key))
    out += validate_labels(smap(new, "labels"), f"{path}.labels")
    out += validate_annotations(smap(new, "annotations"), f"{path}.annotations")
    out += _owner_references(new, f"{path}.ownerReferences")
    return out


# --- label selectors ----------------------------------------------------------------------------


def validate_label_selector(sel: dict[str, Any] | None, path: str) -> list[Cause]:
    if sel is None:
        return []
    out = validate_labels(smap(sel, "matchLabels"), f"{path}.matchLabels")
    for i, req in enumerate(items(sel, "matchExpressions")):
        rp = f"{path}.matchExpressions[{i}]"
        op, values = s(req, "operator"), li(req, "values")
        if op in ("In", "NotIn"):
            if not values:
                out.append(errs.required(f"{rp}.values",
                                         "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                out.append(errs.forbidden(
                    f"{rp}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            out.append(errs.invalid(f"{rp}.operator", op, "not a valid selector operator"))
        out += [errs.invalid(f"{rp}.key", s(req, "key"), msg)
                for msg in is_qualified_name(s(req, "key"))]
        for j, v in enumerate(values):
            if isinstance(v, str):
                out += [errs.invalid(f"{rp}.values[{j}]", v, msg) for msg in is_valid_label_value(v)]
    return out


def selector_is_empty(sel: dict[str, Any] | None) -> bool:
    return not smap(sel, "matchLabels") and not li(sel, "matchExpressions")


def selector_convertible(sel: dict[str, Any] | None) -> bool:
    """Whether `LabelSelectorAsSelector` would accept the selector."""
    for req in items(sel, "matchExpressions"):
        op = s(req, "operator")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
        if op in ("In", "NotIn") and not li(req, "values"):
            return False
        if op in ("Exists", "DoesNotExist") and li(req, "values"):
            return False
    return True


def selector_matches(sel: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    for k, v in smap(sel, "matchLabels").items():
        if labels.get(k) != v:
            return False
    for req in items(sel, "matchExpressions"):
        key, op, values = s(req, "key"), s(req, "operator"), li(req, "values")
        if op == "In" and (key not in labels or labels[key] not in values):
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return m(obj, "metadata")


__all__ = [
    "NameFn", "dns1123_label", "dns1123_subdomain", "is_config_map_key", "is_dns1123_label",
    "is_dns1123_subdomain", "is_qualified_name", "is_relaxed_env_var_name", "is_valid_label_value",
    "is_valid_percent", "is_valid_port_name", "is_valid_port_num", "metadata",
    "name_is_dns1035_label", "name_is_dns_label", "name_is_dns_subdomain", "path_segment_name",
    "qualified_name", "range_error", "selector_convertible", "selector_is_empty",
    "selector_matches", "validate_annotations", "validate_label_selector", "validate_labels",
    "validate_object_meta", "validate_object_meta_update",
]
