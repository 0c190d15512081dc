"""Unpacking layers for overlayfs: whiteouts, opaque directories, links, devices, owners,
and never writing outside the layer directory. (Runs as root: devices and trusted.* xattrs.)"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pocketkube.kubelet.images.layers import OPAQUE_XATTR, LayerError, unpack_layer


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields: object):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.mode = kind, len(data), 1_700_000_000, 0o644
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def layer_tar(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def unpack(tmp_path: Path, blob: bytes, name: str = "layer") -> tuple[Path, str]:
    path = tmp_path / f"{name}.blob"
    path.write_bytes(blob)
    dest = tmp_path / name
    return dest, unpack_layer(path, dest)


def is_whiteout(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def test_files_links_devices_and_attributes(tmp_path: Path) -> None:
    tar = layer_tar(
        entry("./", tarfile.DIRTYPE),
        entry("./bin/", tarfile.DIRTYPE, mode=0o711),
        entry("./bin/tool", data=b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1001),
        entry("./bin/tool-link", tarfile.LNKTYPE, linkname="bin/tool"),
        entry("./bin/sym", tarfile.SYMTYPE, linkname="tool"),
        entry("./dev/", tarfile.DIRTYPE),
        entry("./dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        entry("./dev/fifo", tarfile.FIFOTYPE),
        entry("./cap", data=b"x", pax_headers={"SCHILY.xattr.user.note": "hello"}),
    )
    dest, diff_id = unpack(tmp_path, tar)
    assert diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    tool = os.lstat(dest / "bin/tool")
    assert (tool.st_uid, tool.st_gid) == (1000, 1001)
    assert stat.S_IMODE(tool.st_mode) == 0o4755  # set-uid survives the chown
    assert tool.st_mtime == 1_700_000_000
    assert os.lstat(dest / "bin/tool-link").st_ino == tool.st_ino
    assert os.readlink(dest / "bin/sym") == "tool"
    assert stat.S_IMODE(os.lstat(dest / "bin").st_mode) == 0o711
    assert os.lstat(dest / "bin").st_mtime == 1_700_000_000  # set after its children
    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(dest / "dev/fifo").st_mode)
    assert os.getxattr(dest / "cap", "user.note") == b"hello"


def test_whiteouts_become_overlayfs_whiteouts(tmp_path: Path) -> None:
    tar = layer_tar(
        entry("etc/", tarfile.DIRTYPE),
        entry("etc/.wh.gone"),
        entry("data/", tarfile.DIRTYPE),
        entry("data/.wh..wh..opq"),
        entry("data/new", data=b"new"),
        entry(".wh..wh.plnk/", tarfile.DIRTYPE),
        entry("deep/er/.wh..wh..opq"),
    )
    blob = gzip.compress(tar)
    dest, diff_id = unpack(tmp_path, blob)
    assert diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()  # of the uncompressed tar
    assert is_whiteout(dest / "etc/gone")
    assert not (dest / "etc/.wh.gone").exists()
    assert os.getxattr(dest / "data", OPAQUE_XATTR) == b"y"
    assert not (dest / "data/.wh..wh..opq").exists()
    assert (dest / "data/new").read_bytes() == b"new"
    assert os.getxattr(dest / "deep/er", OPAQUE_XATTR) == b"y"  # parents made on the way
    with pytest.raises(OSError):
        os.getxattr(dest / "etc", OPAQUE_XATTR)
    assert not (dest / ".wh..wh.plnk").exists()


def test_paths_never_leave_the_layer(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tar = layer_tar(
        entry("escape", tarfile.SYMTYPE, linkname=str(outside)),
        entry("escape/planted", data=b"no"),
        entry("../../dotdot", data=b"no"),
        entry("rel", tarfile.SYMTYPE, linkname="../../.."),
        entry("rel/through-relative", data=b"no"),
    )
    dest, _ = unpack(tmp_path, tar)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "dotdot").exists()
    # Absolute and climbing symlinks resolve inside the layer, as if it were "/".
    assert (dest / str(outside).lstrip("/") / "planted").read_bytes() == b"no"
    assert (dest / "dotdot").read_bytes() == b"no"
    assert (dest / "through-relative").read_bytes() == b"no"
    assert os.readlink(dest / "escape") == str(outside)


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    tar = layer_tar(
        entry("a", data=b"file"),
        entry("a/", tarfile.DIRTYPE),
        entry("a/b", data=b"child"),
        entry("c/", tarfile.DIRTYPE),
        entry("c/d", data=b"gone"),
        entry("c", data=b"now a file"),
    )
    dest, _ = unpack(tmp_path, tar)
    assert (dest / "a/b").read_bytes() == b"child"
    assert (dest / "c").read_bytes() == b"now a file"


def test_corrupt_and_unsupported_layers(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="corrupt layer"):
        unpack(tmp_path, gzip.compress(b"not a tar at all" * 100), "bad")
    with pytest.raises(LayerError, match="zstd"):
        unpack(tmp_path, b"\x28\xb5\x2f\xfd" + b"\0" * 100, "zstd")
    with pytest.raises(LayerError, match="hard link to missing"):
        unpack(tmp_path, layer_tar(entry("x", tarfile.LNKTYPE, linkname="nowhere")), "link")
