"""Unpacking one image layer (a tar, gzip-compressed or not) into a directory that overlayfs
can stack as a lowerdir.

OCI layers describe deletions with marker files: `.wh.NAME` removes NAME from the layers below
and `.wh..wh..opq` makes its directory opaque. overlayfs has its own spelling for the same
things: a character device 0/0 named NAME, and the `trusted.overlay.opaque=y` xattr on the
directory. Python's `tarfile.extractall` knows neither and follows symlinks out of the target
directory in some cases, so this walks the tar itself: every path is resolved inside the layer
directory (symlinks included), hard links, devices, fifos, ownership, modes, xattrs (file
capabilities) and mtimes are applied as the tar says. The diff id (sha256 of the uncompressed
tar) is computed on the way, so the caller can check it against the image config.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("pocketkube.kubelet.images")

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX_PREFIX = "SCHILY.xattr."
_MAX_SYMLINK_HOPS = 40
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class LayerError(Exception):
    """A layer blob cannot be unpacked (corrupt, unsupported compression, unsafe paths)."""


class _HashingReader:
    """Reads through to `raw`, hashing every byte: the diff id of the uncompressed tar."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def compression(head: bytes) -> str:
    """The compression of a blob from its first bytes: "gzip", "zstd" or "" (plain tar)."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return ""


def unpack_layer(blob: Path, dest: Path) -> str:
    """Unpack the layer tar `blob` into the new directory `dest`; returns its diff id
    ("sha256:<hex of the uncompressed tar>"). Runs in a worker thread: it is slow."""
    with open(blob, "rb") as raw:
        kind = compression(raw.read(4))
        raw.seek(0)
        if kind == "zstd":
            raise LayerError(f"{blob.name}: zstd-compressed layers are not supported")
        stream: BinaryIO = gzip.GzipFile(fileobj=raw) if kind == "gzip" else raw  # type: ignore[assignment]
        reader = _HashingReader(stream)
        dest.mkdir(mode=0o755)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                _Unpacker(dest).run(tar)
            reader.drain()
        except (tarfile.TarError, EOFError, gzip.BadGzipFile) as err:
            raise LayerError(f"{blob.name}: corrupt layer: {err}") from err
    return f"sha256:{reader.hash.hexdigest()}"


def _clean(name: str) -> list[str]:
    """A member name as path components inside the layer ("./a/../b/" → ["b"])."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class _Unpacker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs: list[tuple[Path, tarfile.TarInfo]] = []
        self.warned: set[str] = set()

    def run(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            parts = _clean(member.name)
            if not parts:
                continue  # the layer's root entry ("./")
            parent = self.directory(parts[:-1], create=True)
            self.entry(tar, member, parent, parts[-1])
        # Directory modes and mtimes last: creating their children changed the mtimes.
        for path, member in reversed(self.dirs):
            self.attributes(path, member)

    def directory(self, parts: list[str], *, create: bool) -> Path:
        """The directory `parts` names, resolving symlinks as if the layer were "/" so that
        nothing is ever written outside it; missing directories are made when `create`."""
        todo = list(parts)
        current: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if current:
                    current.pop()
                continue
            path = self.root.joinpath(*current, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise LayerError(f"{'/'.join(parts)}: no such directory in the layer") from None
                os.mkdir(path, 0o755)
                current.append(part)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise LayerError(f"{'/'.join(parts)}: too many levels of symbolic links")
                target = os.readlink(path)
                if target.startswith("/"):
                    current = []
                todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                continue
            if not stat.S_ISDIR(st.st_mode):
                # A non-directory where the layer puts children: the later entry wins.
                os.unlink(path)
                os.mkdir(path, 0o755)
            current.append(part)
        return self.root.joinpath(*current)

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: Path, base: str) -> None:
        if base == OPAQUE_MARKER:
            self.xattr(parent, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk and the like): no meaning for overlayfs
        if base.startswith(WHITEOUT_PREFIX):
            target = parent / base[len(WHITEOUT_PREFIX) :]
            _remove(target)
            self.mknod(target, stat.S_IFCHR, 0)
            return
        path = parent / base
        if member.isdir():
            if path.is_symlink() or not path.is_dir():
                _remove(path)
                os.mkdir(path, 0o755)
            self.dirs.append((path, member))
            return
        _remove(path)
        if member.isreg():
            source = tar.extractfile(member)
            assert source is not None  # a regular member always has data
            with open(path, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            link = _clean(member.linkname)
            if not link:
                raise LayerError(f"{member.name}: hard link to the layer's root")
            target = self.directory(link[:-1], create=False) / link[-1]
            try:
                os.link(target, path, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(f"{member.name}: hard link to missing {member.linkname}") from None
            return  # the inode already has its attributes
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            if not self.mknod(path, kind, os.makedev(member.devmajor, member.devminor)):
                return
        elif member.isfifo():
            os.mkfifo(path)
        else:
            log.debug("layer entry %s of type %r skipped", member.name, member.type)
            return
        self.attributes(path, member)

    def mknod(self, path: Path, kind: int, device: int) -> bool:
        try:
            os.mknod(path, kind, device)  # modes follow from the tar (whiteouts: 0)
        except PermissionError:
            self.warn("mknod", f"cannot create device files without root; {path.name} skipped")
            return False
        return True

    def xattr(self, path: Path, name: str, value: bytes) -> None:
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as err:
            self.warn(name, f"cannot set xattr {name} on {path}: {err.strerror}")

    def attributes(self, path: Path, member: tarfile.TarInfo) -> None:
        try:
            os.lchown(path, member.uid, member.gid)
        except PermissionError:
            self.warn("chown", "cannot change file owners without root; layer files are ours")
        if not member.issym():
            os.chmod(path, member.mode & 0o7777)  # after chown, which clears set-id bits
        for key, value in member.pax_headers.items():
            if key.startswith(_XATTR_PAX_PREFIX):
                raw = value.encode("utf-8", "surrogateescape")
                self.xattr(path, key[len(_XATTR_PAX_PREFIX) :], raw)
        mtime = int(member.mtime * 1_000_000_000)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

    def warn(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning("%s", message)
