"""configMap volumes (kube's `pkg/volume/configmap`): every key of the ConfigMap (data and
binaryData) as a file, or only `items` (key → path, per-item mode), with `defaultMode` (0644
after defaulting). A missing ConfigMap fails the mount (`configmap "x" not found`) unless the
volume is optional, which gives an empty volume.
"""

from __future__ import annotations

from typing import Any, Protocol

from pocketkube.kubelet.volumes.common import Payload, SetupError, configmap_bytes, key_payload

DEFAULT_MODE = 0o644


class ConfigMaps(Protocol):
    async def configmap(self, ns: str, name: str) -> dict | None: ...


async def payload(src: dict[str, Any], namespace: str, source: ConfigMaps,
                  default_mode: int | None = None) -> Payload:
    """The files of a configMap source (also the projected volume's configMap source, which
    passes the projected volume's defaultMode)."""
    name = src.get("name", "")
    optional = bool(src.get("optional"))
    mode = default_mode if default_mode is not None else src.get("defaultMode")
    mode = DEFAULT_MODE if mode is None else int(mode)
    cm = await source.configmap(namespace, name)
    if cm is None:
        if optional:
            return {}
        raise SetupError(f'configmap "{name}" not found')
    return key_payload("configmap", configmap_bytes(cm), src.get("items"), mode, optional)
