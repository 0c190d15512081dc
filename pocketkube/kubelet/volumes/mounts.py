"""A container's volume mounts (kube's `makeMounts`): each volumeMount becomes a runtime Mount of
the volume's host directory (or a subPath inside it), read-only when asked or when the volume is
one whose content the kubelet owns (configMap, secret, downwardAPI, projected), with the
requested propagation. Failures are the container's CreateContainerConfigError.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pocketkube.kubelet.envvars import ContainerConfigError, expand_strict
from pocketkube.kubelet.runtime.interface import Mount
from pocketkube.kubelet.volumes.common import CONTENT_KINDS, volume_kind
from pocketkube.kubelet.volumes.fieldpath import FieldPathError, pod_field_value

log = logging.getLogger("pocketkube.kubelet.volumes")

PROPAGATION = {None: "private", "": "private", "None": "private",
               "HostToContainer": "rslave", "Bidirectional": "rshared"}


def _literal_env(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The variables subPathExpr can use when the caller has no built environment: literal
    values and pod field references (the usual `$(POD_NAME)`)."""
    pod_ip = (pod.get("status") or {}).get("podIP", "")
    host_ip = (pod.get("status") or {}).get("hostIP", "")
    env: dict[str, str] = {}
    for e in container.get("env") or []:
        name = e.get("name", "")
        if e.get("value"):
            env[name] = e["value"]
        elif (e.get("valueFrom") or {}).get("fieldRef"):
            try:
                env[name] = pod_field_value(
                    pod, e["valueFrom"]["fieldRef"].get("fieldPath", ""),
                    pod_ips=[pod_ip] if pod_ip else [], host_ips=[host_ip] if host_ip else [])
            except FieldPathError:
                continue
    return env


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _subpath(volume_dir: Path, sub: str, mount_name: str, container_name: str) -> str:
    if sub.startswith("/"):
        raise ContainerConfigError(f"error SubPath `{sub}` must not be an absolute path")
    if ".." in sub.split("/"):
        raise ContainerConfigError(f"unable to provision SubPath `{sub}`: must not contain '..'")
    host = volume_dir / sub
    root = os.path.realpath(volume_dir)
    if not os.path.lexists(host):
        # Created now with the volume's mode, as kube does, so it is not left to the runtime
        # (which would make it 0755 root).
        try:
            mode = volume_dir.stat().st_mode & 0o7777
            host.mkdir(parents=True, exist_ok=True)
            host.chmod(mode)
        except OSError as e:
            log.warning("subPath %s of volume %s: %s", sub, volume_dir, e)
            raise ContainerConfigError(f'failed to create subPath directory for volumeMount '
                                       f'"{mount_name}" of container "{container_name}"') from None
    # The final path, symlinks resolved, must stay inside the volume (kube's safe subpath):
    # configMap keys are symlinks into ..data, which is fine; a link out of the volume is not.
    real = os.path.realpath(host)
    if not _inside(real, root):
        raise ContainerConfigError(f'failed to prepare subPath for volumeMount "{mount_name}" '
                                   f'of container "{container_name}"')
    return real


def container_mounts(pod: dict[str, Any], container: dict[str, Any],
                     volume_dirs: dict[str, Path],
                     env: list[tuple[str, str]] | dict[str, str] | None = None) -> list[Mount]:
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    cname = container.get("name", "")
    env_map: dict[str, str] | None = None
    out: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        name = vm.get("name", "")
        host_dir = volume_dirs.get(name)
        if host_dir is None or name not in volumes:
            raise ContainerConfigError(f'cannot find volume "{name}" to mount into container '
                                       f'"{cname}"')
        sub = vm.get("subPath") or ""
        if vm.get("subPathExpr"):
            if env_map is None:
                env_map = dict(env) if env is not None else _literal_env(pod, container)
            sub, missing = expand_strict(vm["subPathExpr"], env_map)
            if missing:
                raise ContainerConfigError(f"missing value for {', '.join(missing)}")
        host = str(host_dir)
        if sub:
            host = _subpath(host_dir, sub, name, cname)
        propagation = vm.get("mountPropagation")
        if propagation not in PROPAGATION:
            raise ContainerConfigError(f'invalid MountPropagation mode: "{propagation}"')
        read_only = bool(vm.get("readOnly")) or volume_kind(volumes[name]) in CONTENT_KINDS
        path = vm.get("mountPath", "")
        if not path.startswith("/"):
            path = "/" + path
        out.append(Mount(container_path=path, host_path=host, read_only=read_only,
                         propagation=PROPAGATION[propagation]))
    return out
