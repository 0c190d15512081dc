"""hostPath type checks with kube's messages."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pocketkube.kubelet.volumes import hostpath
from pocketkube.kubelet.volumes.common import SetupError


def vol(path: Path | str, type_: str) -> dict:
    return {"name": "h", "hostPath": {"path": str(path), "type": type_}}


def test_or_create(tmp_path: Path) -> None:
    d = tmp_path / "made" / "dir"
    assert hostpath.setup(vol(d, "DirectoryOrCreate")) == d
    assert d.is_dir() and d.stat().st_mode & 0o777 == 0o755
    f = tmp_path / "file"
    hostpath.setup(vol(f, "FileOrCreate"))
    assert f.is_file() and f.read_bytes() == b""
    f.write_text("keep")
    hostpath.setup(vol(f, "FileOrCreate"))
    assert f.read_text() == "keep"


def test_type_mismatch_messages(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(SetupError) as e:
        hostpath.setup(vol(f, "Directory"))
    assert str(e.value) == f"hostPath type check failed: {f} is not a directory, it's a File"
    with pytest.raises(SetupError) as e:
        hostpath.setup(vol(f, "DirectoryOrCreate"))
    assert str(e.value) == f"hostPath type check failed: {f} is not a directory, it's a File"
    with pytest.raises(SetupError) as e:
        hostpath.setup(vol(tmp_path, "File"))
    assert str(e.value) == (f"hostPath type check failed: {tmp_path} is not a file, "
                            f"it's a Directory")
    with pytest.raises(SetupError) as e:
        hostpath.setup(vol(tmp_path / "nope", "Directory"))
    assert str(e.value) == f"hostPath {tmp_path / 'nope'} doesn't exist"
    with pytest.raises(SetupError) as e:
        hostpath.setup(vol(f, "CharDevice"))
    assert str(e.value) == (f"hostPath type check failed: {f} is not a character device, "
                            f"it's a File")
    with pytest.raises(SetupError) as e:
        hostpath.setup(vol(f, "BlockDevice"))
    assert "is not a block device" in str(e.value)
    with pytest.raises(SetupError, match="^Bogus is an invalid volume type$"):
        hostpath.setup(vol(f, "Bogus"))


def test_socket_and_char_device(tmp_path: Path) -> None:
    sock_path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(sock_path))
        assert hostpath.setup(vol(sock_path, "Socket")) == sock_path
    finally:
        s.close()
    assert hostpath.setup(vol("/dev/null", "CharDevice")) == Path("/dev/null")
    with pytest.raises(SetupError, match="is not a socket file, it's a CharDevice"):
        hostpath.setup(vol("/dev/null", "Socket"))


def test_unset_type_skips_checks(tmp_path: Path) -> None:
    assert hostpath.setup(vol(tmp_path / "absent", "")) == tmp_path / "absent"
    assert not (tmp_path / "absent").exists()
