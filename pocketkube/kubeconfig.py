"""Kubeconfig files for a pocketkube cluster.

Two kinds: a standalone file in the data dir (everything embedded, one context) that scripts can
point KUBECONFIG at, and entries merged into the user's own kubeconfig so a plain `kubectl` finds
the cluster, the way minikube and kind do it. Merging keeps every other cluster, user and context
in that file untouched. Written by hand with PyYAML because the format is a small, stable
document and kubectl itself reads it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from pocketkube.config import default_data_dir
from pocketkube.pki import PkiPaths, write_private

DEFAULT_NAME = "pocketkube"


def context_name(data_dir: Path) -> str:
    """The cluster/user/context name for a data dir.

    The default data dir is plain `pocketkube`; any other gets `pocketkube-<dir name>-<hash>`, so
    clusters running side by side never overwrite each other's entries and the name is stable
    across restarts of the same data dir.
    """
    resolved = data_dir.expanduser().resolve()
    if resolved == default_data_dir().expanduser().resolve():
        return DEFAULT_NAME
    slug = re.sub(r"[^a-z0-9-]+", "-", resolved.name.lower()).strip("-") or "cluster"
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:6]
    return f"{DEFAULT_NAME}-{slug}-{digest}"


def user_kubeconfig_path() -> Path:
    """Where kubectl writes: the first entry of $KUBECONFIG, else ~/.kube/config."""
    for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry:
            return Path(entry).expanduser()
    return Path.home() / ".kube" / "config"


def server_url(host: str, port: int) -> str:
    """The URL clients use for a bind address: wildcard addresses are reached via loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def write_kubeconfig(
    path: Path, server_url: str, paths: PkiPaths, context: str = DEFAULT_NAME
) -> Path:
    """Write a standalone kubeconfig (mode 0600) with the CA and admin credentials embedded."""
    cluster, user, ctx = _entries(server_url, paths, context)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [cluster],
        "users": [user],
        "contexts": [ctx],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, _dump(doc))
    return path


def merge_into_user_kubeconfig(
    server_url: str,
    paths: PkiPaths,
    name: str = DEFAULT_NAME,
    kubeconfig: Path | None = None,
) -> Path:
    """Add or replace the cluster, user and context `name` in the user's kubeconfig and make it
    the current context. Everything else in the file is preserved. Returns the file's path."""
    target = _real(kubeconfig or user_kubeconfig_path())
    doc = _load(target)
    for section, entry in zip(
        ("clusters", "users", "contexts"), _entries(server_url, paths, name), strict=True
    ):
        items = [e for e in (doc.get(section) or []) if e.get("name") != name]
        items.append(entry)
        doc[section] = items
    doc["current-context"] = name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_private(target, _dump(doc))
    return target


def remove_from_user_kubeconfig(name: str = DEFAULT_NAME, kubeconfig: Path | None = None) -> bool:
    """Remove the cluster, user and context `name`; returns whether anything was removed."""
    target = _real(kubeconfig or user_kubeconfig_path())
    if not target.exists():
        return False
    doc = _load(target)
    removed = False
    for section in ("clusters", "users", "contexts"):
        items = doc.get(section) or []
        kept = [e for e in items if e.get("name") != name]
        removed |= len(kept) != len(items)
        if section in doc:
            doc[section] = kept
    if doc.get("current-context") == name:
        # kubectl leaves an empty current-context behind when its context goes away.
        doc["current-context"] = ""
        removed = True
    if removed:
        write_private(target, _dump(doc))
    return removed


def _entries(
    server_url: str, paths: PkiPaths, name: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    cluster = {
        "name": name,
        "cluster": {"server": server_url, "certificate-authority-data": b64(paths.ca_cert)},
    }
    user = {
        "name": name,
        "user": {
            "client-certificate-data": b64(paths.admin_cert),
            "client-key-data": b64(paths.admin_key),
        },
    }
    context = {"name": name, "context": {"cluster": name, "user": name}}
    return cluster, user, context


def _real(path: Path) -> Path:
    # Write through a symlinked kubeconfig instead of replacing the link with a file.
    return path.resolve() if path.is_symlink() else path


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a kubeconfig (top level is not a mapping)")
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Config")
    return doc


def _dump(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False).encode()
