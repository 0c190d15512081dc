"""Kube's atomic writer layout: timestamped directory, ..data swapped by rename, user-visible
symlinks through ..data, stale names removed, unchanged payloads not rewritten."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pocketkube.kubelet.volumes import atomicwriter
from pocketkube.kubelet.volumes.common import FileProjection, SetupError


def fp(data: str, mode: int = 0o644) -> FileProjection:
    return FileProjection(data.encode(), mode)


def test_layout(tmp_path: Path) -> None:
    assert atomicwriter.write(tmp_path, {"a": fp("1"), "dir/b": fp("2", 0o400)})
    names = sorted(os.listdir(tmp_path))
    ts = [n for n in names if n.startswith("..") and n != "..data"]
    assert len(ts) == 1
    assert re.fullmatch(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{9}", ts[0])
    assert names == sorted(["..data", ts[0], "a", "dir"])
    assert os.readlink(tmp_path / "..data") == ts[0]
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "dir") == "..data/dir"
    assert (tmp_path / "dir" / "b").read_text() == "2"
    assert (tmp_path / ts[0] / "dir" / "b").stat().st_mode & 0o777 == 0o400
    assert (tmp_path / ts[0]).stat().st_mode & 0o777 == 0o755


def test_update_swaps_data_and_removes_stale(tmp_path: Path) -> None:
    atomicwriter.write(tmp_path, {"a": fp("1"), "old": fp("x")})
    first = os.readlink(tmp_path / "..data")
    assert atomicwriter.write(tmp_path, {"a": fp("2"), "new": fp("y")})
    second = os.readlink(tmp_path / "..data")
    assert second != first
    assert not (tmp_path / first).exists()
    assert sorted(os.listdir(tmp_path)) == sorted(["..data", second, "a", "new"])
    assert (tmp_path / "a").read_text() == "2"
    assert not os.path.lexists(tmp_path / "..data_tmp")


def test_unchanged_payload_is_not_rewritten(tmp_path: Path) -> None:
    payload = {"a": fp("1"), "b/c": fp("2")}
    atomicwriter.write(tmp_path, payload)
    ts = os.readlink(tmp_path / "..data")
    assert not atomicwriter.write(tmp_path, payload)
    assert os.readlink(tmp_path / "..data") == ts
    # A mode change alone is a change.
    assert atomicwriter.write(tmp_path, {"a": fp("1", 0o600), "b/c": fp("2")})
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600


def test_empty_payload(tmp_path: Path) -> None:
    atomicwriter.write(tmp_path, {"a": fp("1")})
    atomicwriter.write(tmp_path, {})
    names = os.listdir(tmp_path)
    assert "a" not in names and "..data" in names


@pytest.mark.parametrize(("path", "message"), [
    ("/etc/passwd", "must be relative path"),
    ("a/../../b", "must not contain '..'"),
    ("..hidden", "must not start with '..'"),
    ("", "must not be empty"),
])
def test_invalid_paths(tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(SetupError, match=message):
        atomicwriter.write(tmp_path, {path: fp("x")})
