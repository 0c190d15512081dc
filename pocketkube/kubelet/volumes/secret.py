"""secret volumes (kube's `pkg/volume/secret`): the Secret's keys (base64-decoded) as files,
or only `items`, with `defaultMode` (0644 after defaulting). A missing Secret fails the mount
(`secret "x" not found`) unless optional. The volume is memory-backed where the node can
mount tmpfs, so secret material stays off the disk.
"""

from __future__ import annotations

from typing import Any, Protocol

from pocketkube.kubelet.volumes.common import Payload, SetupError, key_payload, secret_bytes

DEFAULT_MODE = 0o644


class Secrets(Protocol):
    async def secret(self, ns: str, name: str) -> dict | None: ...


async def payload(src: dict[str, Any], namespace: str, source: Secrets,
                  default_mode: int | None = None, name_key: str = "secretName") -> Payload:
    """The files of a secret volume (`secretName`) or of a projected secret source (`name`)."""
    name = src.get(name_key, "")
    optional = bool(src.get("optional"))
    mode = default_mode if default_mode is not None else src.get("defaultMode")
    mode = DEFAULT_MODE if mode is None else int(mode)
    secret = await source.secret(namespace, name)
    if secret is None:
        if optional:
            return {}
        raise SetupError(f'secret "{name}" not found')
    return key_payload("secret", secret_bytes(secret), src.get("items"), mode, optional)
