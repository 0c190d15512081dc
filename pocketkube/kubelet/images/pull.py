"""Pulling an image from a registry with skopeo, with the pod's imagePullSecrets.

skopeo speaks the registry protocol (token auth, redirects, mirrors from
/etc/containers/registries.conf, platform selection); it copies into a `dir:` layout, which keeps
the registry's manifest bytes, so the stored manifest digest is the one the registry serves and
repo digests match what `crane digest`/`docker pull` print. archive.import_dir stores it.

Credentials come from kubernetes.io/dockerconfigjson (and legacy kubernetes.io/dockercfg)
secrets, matched against the registry the way the kubelet's credential keyring does (host with
`*` globs per label, optional port and path prefix); each match is tried, most specific first.
They reach skopeo through a private auth file (--src-authfile), never on its command line, so
they do not show in `ps`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
import ipaddress
import json
import logging
import os
import re
from pathlib import Path

from pocketkube.kubelet.images import reference
from pocketkube.kubelet.runtime.interface import ImageError

log = logging.getLogger("pocketkube.kubelet.images")

_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def pull_failed(ref: str, reason: str) -> ImageError:
    # containerd's wording, which is what `kubectl describe pod` shows for ErrImagePull.
    return ImageError("ErrImagePull", f'failed to pull and unpack image "{ref}": {reason}')


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def _auths(secret: dict) -> dict:
    data = secret.get("data") or {}
    try:
        if secret.get("type") == "kubernetes.io/dockerconfigjson":
            return json.loads(_decode(data.get(".dockerconfigjson", "")) or "{}").get("auths") or {}
        if secret.get("type") == "kubernetes.io/dockercfg":
            return json.loads(_decode(data.get(".dockercfg", "")) or "{}")
    except (json.JSONDecodeError, AttributeError):
        pass
    return {}


def _split_key(key: str) -> tuple[str, str]:
    """A docker config key ("https://host:port/path/", "host") as (host[:port], path)."""
    key = re.sub(r"^[a-z]+://", "", key)
    host, _, path = key.partition("/")
    if host in _DOCKER_HUB:
        return "docker.io", ""  # "https://index.docker.io/v1/" names Docker Hub itself
    return host, path.strip("/")


def _host_matches(pattern: str, host: str) -> bool:
    p_host, _, p_port = pattern.partition(":")
    h_host, _, h_port = host.partition(":")
    if p_port != h_port:
        return False
    p_parts, h_parts = p_host.split("."), h_host.split(".")
    return len(p_parts) == len(h_parts) and all(
        fnmatch.fnmatchcase(h, p) for p, h in zip(p_parts, h_parts, strict=True)
    )


def credentials(ref: str, secrets: list[dict] | None) -> list[tuple[str, str]]:
    """(username, password) pairs from `secrets` for the registry of the normalized `ref`,
    the most specific first."""
    parsed = reference.parse(ref)
    found: list[tuple[int, str, str]] = []
    for secret in secrets or []:
        for key, entry in _auths(secret).items():
            if not isinstance(entry, dict):
                continue
            host, path = _split_key(key)
            if not _host_matches(host, parsed.domain):
                continue
            if path and not (parsed.path == path or parsed.path.startswith(path + "/")):
                continue
            user, password = entry.get("username", ""), entry.get("password", "")
            if entry.get("auth"):
                user, _, password = _decode(entry["auth"]).partition(":")
            if user or password:
                found.append((len(host) + len(path), user, password))
    found.sort(key=lambda item: -item[0])
    return [(user, password) for _, user, password in found]


def _loopback(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def last_error(stderr: bytes, ref: str = "") -> str:
    """skopeo's last error line, without logrus decoration and the repeated source name."""
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return "skopeo failed without a message"
    line = lines[-1]
    match = _MSG.search(line)
    if match:
        line = re.sub(r"\\(.)", r"\1", match.group(1))
    return line.removeprefix(f"initializing source docker://{ref}: ").strip()


async def copy(ref: str, dest: Path, secrets: list[dict] | None = None, *,
               skopeo: str = "skopeo") -> None:  # fmt: skip
    """`skopeo copy docker://REF dir:DEST`; raises ImageError("ErrImagePull", …)."""
    attempts: list[tuple[str, str] | None] = list(credentials(ref, secrets)) or [None]
    reason = ""
    for creds in attempts:
        argv = [skopeo, "--insecure-policy", "copy", "--quiet", "--retry-times", "0"]
        domain = reference.parse(ref).domain
        if _loopback(domain):
            argv.append("--src-tls-verify=false")  # docker's default for 127.0.0.0/8 too
        authfile = dest.parent / "auth.json"
        if creds is not None:
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            fd = os.open(authfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({"auths": {domain: {"auth": token}}}, out)
            argv += ["--src-authfile", str(authfile)]
        argv += [f"docker://{ref}", f"dir:{dest}"]
        try:
            reason = await _run(argv, ref)
        finally:
            authfile.unlink(missing_ok=True)
        if not reason:
            return
        log.info("pull of %s failed: %s", ref, reason)
    raise pull_failed(ref, reason)


async def _run(argv: list[str], ref: str) -> str:
    """Run skopeo; "" on success, else its last error line."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        return f"{argv[0]} is not installed"
    try:
        _, stderr = await proc.communicate()
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return "" if proc.returncode == 0 else last_error(stderr, ref)
