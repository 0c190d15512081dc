"""downwardAPI volumes (kube's `pkg/volume/downwardapi`): one file per item, holding a pod field
(metadata.name/namespace/uid, labels/annotations as sorted `key="value"` lines or one of them
by subscript) or a container resource (resourceFieldRef with divisor, unset limits read as node
allocatable). Labels and annotations change while the pod runs, so the kubelet rewrites these
files on every refresh; the atomic writer makes that a no-op when nothing changed.
"""

from __future__ import annotations

from typing import Any

from pocketkube.kubelet.volumes.common import FileProjection, Payload, SetupError
from pocketkube.kubelet.volumes.fieldpath import FieldPathError, metadata_value, resource_value

DEFAULT_MODE = 0o644


def payload(src: dict[str, Any], pod: dict[str, Any], allocatable: dict[str, str] | None,
            default_mode: int | None = None) -> Payload:
    mode = default_mode if default_mode is not None else src.get("defaultMode")
    mode = DEFAULT_MODE if mode is None else int(mode)
    out: Payload = {}
    errors: list[str] = []
    for item in src.get("items") or []:
        item_mode = item.get("mode")
        try:
            if item.get("fieldRef") is not None:
                value = metadata_value(pod, item["fieldRef"].get("fieldPath", ""))
            elif item.get("resourceFieldRef") is not None:
                value = resource_value(item["resourceFieldRef"], pod, None, allocatable)
            else:
                continue
        except FieldPathError as e:
            errors.append(str(e))
            continue
        out[item.get("path", "")] = FileProjection(
            value.encode(), mode if item_mode is None else int(item_mode))
    if errors:
        raise SetupError(errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")
    return out
