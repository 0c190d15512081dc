"""What the volume plugins share: the error the pod worker turns into a FailedMount event, the
file payload that content volumes (configMap, secret, downwardAPI, projected) hand to the atomic
writer, and kube's on-disk names (`pods/<uid>/volumes/kubernetes.io~<plugin>/<volume>`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

# kube's plugin names, escaped as on disk ("kubernetes.io/empty-dir" → "kubernetes.io~empty-dir").
PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}

# Volume kinds whose content the kubelet writes and keeps current; containers always see them
# read-only (their mounters report ReadOnly, so kube mounts them ro whatever volumeMounts say).
CONTENT_KINDS = ("configMap", "secret", "downwardAPI", "projected")


class VolumeError(Exception):
    """A volume cannot be set up; the message is the FailedMount event's text, e.g.
    `MountVolume.SetUp failed for volume "cfg" : configmap "x" not found`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SetupError(Exception):
    """A plugin's own failure (`configmap "x" not found`); the manager prefixes it with
    `MountVolume.SetUp failed for volume "<name>" : `."""


@dataclass
class FileProjection:
    data: bytes
    mode: int


Payload = dict[str, FileProjection]


def volume_kind(volume: dict[str, Any]) -> str:
    for key, value in volume.items():
        if key != "name" and value is not None:
            return key
    return "emptyDir"


def secret_bytes(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def configmap_bytes(cm: dict[str, Any]) -> dict[str, bytes]:
    """data (text) and binaryData (base64) of a ConfigMap, as one key → bytes map."""
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def key_payload(kind_word: str, data: dict[str, bytes], items: list[dict[str, Any]] | None,
                default_mode: int, optional: bool) -> Payload:
    """`MakePayload` of the configMap and secret plugins: every key, or just `items` (key →
    path, optional mode). A missing item key fails unless the source is optional."""
    payload: Payload = {}
    if not items:
        for key, value in data.items():
            payload[key] = FileProjection(value, default_mode)
        return payload
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise SetupError(_MISSING_KEY[kind_word] + key)
        mode = item.get("mode")
        payload[item.get("path", key)] = FileProjection(
            data[key], default_mode if mode is None else int(mode))
    return payload


_MISSING_KEY = {"configmap": "configmap references non-existent config key: ",
                "secret": "references non-existent secret key: "}
