"""The images every node has without a network: busybox and pause.

They are built at first start from the host's static binaries (Debian's busybox-static and
catatonit) as real OCI images in the store, so the rest of the node agent cannot tell them from
pulled ones. Their tars are deterministic (sorted entries, fixed owners and mtimes, ustar
headers) and their JSON canonical, so the same busybox binary gives the same image id on every
machine. The store marks them built-in: the service serves them even under `imagePullPolicy:
Always`, so a cluster offline never tries to reach a registry for them.
"""

from __future__ import annotations

import asyncio
import io
import logging
import struct
import tarfile
from pathlib import Path

from pocketkube.kubelet.images.layout import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    canonical_json,
    host_architecture,
)
from pocketkube.kubelet.images.store import ImageStore
from pocketkube.kubelet.runtime.interface import Image

log = logging.getLogger("pocketkube.kubelet.images")

BUSYBOX = "docker.io/library/busybox:latest"
PAUSE = "registry.k8s.io/pause:3.10"
BUSYBOX_BINARY = Path("/bin/busybox")
CATATONIT_BINARY = Path("/usr/bin/catatonit")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CREATED = "1970-01-01T00:00:00Z"

_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
_GROUP = b"root:x:0:\nnobody:x:65534:\n"
_PT_INTERP = 3


class LayerBuilder:
    """A deterministic layer tar: entries sorted by path, owned by root, mtime 0."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[tarfile.TarInfo, bytes]] = {}

    def _add(self, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size, info.linkname = kind, mode, len(data), link
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        self.entries[name] = (info, data)

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._add(name, tarfile.DIRTYPE, mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._add(name, tarfile.REGTYPE, mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._add(name, tarfile.SYMTYPE, 0o777, link=target)

    def build(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name in sorted(self.entries):
                info, data = self.entries[name]
                tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        return out.getvalue()


def is_static(binary: bytes) -> bool:
    """Whether an ELF executable needs no dynamic loader (no PT_INTERP program header)."""
    if binary[:4] != b"\x7fELF":
        return False
    wide = binary[4] == 2
    order = "<" if binary[5] == 1 else ">"
    if wide:
        (phoff,) = struct.unpack_from(order + "Q", binary, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", binary, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", binary, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", binary, 0x2A)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", binary, phoff + i * phentsize)
        if p_type == _PT_INTERP:
            return False
    return True


def _static_binary(path: Path, package: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: install the Debian package {package}"
        ) from None
    if not is_static(data):
        raise ValueError(f"{path} is not statically linked: install the Debian package {package}")
    return data


async def busybox_applets(binary: Path = BUSYBOX_BINARY) -> list[str]:
    """The applets `busybox --list` names (one symlink each in the image's /bin)."""
    proc = await asyncio.create_subprocess_exec(
        str(binary), "--list", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} --list failed: {err.decode(errors='replace').strip()}")
    names = {line.strip() for line in out.decode().splitlines()}
    return sorted(n for n in names if n and "/" not in n and n != "busybox")


def busybox_layer(binary: bytes, applets: list[str]) -> bytes:
    layer = LayerBuilder()
    for name, mode in (("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("home", 0o755),
                       ("proc", 0o555), ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777),
                       ("usr", 0o755), ("var", 0o755)):  # fmt: skip
        layer.directory(name, mode)
    layer.file("bin/busybox", binary, 0o755)
    for applet in applets:
        layer.symlink(f"bin/{applet}", "busybox")
    layer.file("etc/passwd", _PASSWD)
    layer.file("etc/group", _GROUP)
    return layer.build()


def pause_layer(binary: bytes) -> bytes:
    layer = LayerBuilder()
    for name, mode in (("dev", 0o755), ("etc", 0o755), ("proc", 0o555), ("sys", 0o555)):
        layer.directory(name, mode)
    layer.file("catatonit", binary, 0o755)
    return layer.build()


def install(store: ImageStore, ref: str, layer: bytes, config: dict, created_by: str) -> Image:
    """Store a one-layer image as a built-in named `ref`. With the store's lock held."""
    layer_digest = store.put_bytes(layer)
    document = {
        "architecture": host_architecture(),
        "os": "linux",
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},  # uncompressed: same digest
        "history": [{"created": CREATED, "created_by": created_by}],
    }
    config_bytes = canonical_json(document)
    config_digest = store.put_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
    }
    image = store.add(canonical_json(manifest), OCI_MANIFEST, [ref], builtin=True)
    log.info("built-in image %s created (%s)", ref, image.id)
    return image


def install_busybox(store: ImageStore, applets: list[str], binary: Path = BUSYBOX_BINARY) -> Image:
    layer = busybox_layer(_static_binary(binary, "busybox-static"), applets)
    config = {"Env": [PATH_ENV], "Cmd": ["sh"]}
    return install(store, BUSYBOX, layer, config, f"pocketkube: {binary} and its applets")


def install_pause(store: ImageStore, binary: Path = CATATONIT_BINARY) -> Image:
    layer = pause_layer(_static_binary(binary, "catatonit"))
    config = {"Env": [PATH_ENV], "Entrypoint": ["/catatonit", "-P"], "WorkingDir": "/"}
    return install(store, PAUSE, layer, config, f"pocketkube: {binary} as the pause process")
