"""Loading `docker save` and OCI archives into the image store; the archives are built here,
by hand, so nothing outside the test is involved. The builders are shared with the mount
tests in tests/kubelet/test_images.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pocketkube.kubelet.images.layers import OPAQUE_XATTR
from pocketkube.kubelet.images.layout import host_architecture
from pocketkube.kubelet.images.service import ImageManager
from pocketkube.kubelet.runtime.interface import ImageError

LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_of(entries: list[tuple[str, bytes | str | None, int]]) -> bytes:
    """A tar from (name, content, mode): bytes = file, "->x" = symlink, "=>x" = hard link,
    None = directory, "whiteout" entries are just empty files named .wh.*."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, 1_600_000_000
            data = None
            if content is None:
                info.type = tarfile.DIRTYPE
            elif isinstance(content, str) and content.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, content[2:]
            elif isinstance(content, str) and content.startswith("=>"):
                info.type, info.linkname = tarfile.LNKTYPE, content[2:]
            else:
                assert isinstance(content, bytes)
                info.size, data = len(content), io.BytesIO(content)
            tar.addfile(info, data)
    return out.getvalue()


LOWER = tar_of(
    [
        ("etc", None, 0o755),
        ("etc/keep", b"keep\n", 0o644),
        ("etc/gone", b"gone\n", 0o644),
        ("data", None, 0o755),
        ("data/old", b"old\n", 0o644),
        ("bin", None, 0o755),
        ("bin/hello", b"#!/bin/sh\necho hello\n", 0o755),
        ("bin/hello-link", "=>bin/hello", 0o755),
        ("bin/sym", "->hello", 0o777),
    ]
)
UPPER = tar_of(
    [
        ("etc", None, 0o755),
        ("etc/.wh.gone", b"", 0o644),
        ("data", None, 0o755),
        ("data/.wh..wh..opq", b"", 0o644),
        ("data/new", b"new\n", 0o644),
    ]
)


def image_config(layers: list[bytes], config: dict, arch: str = "") -> bytes:
    document = {
        "architecture": arch or host_architecture(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(t)}" for t in layers]},
    }
    return json.dumps(document).encode()


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def docker_archive(path: Path, images: list[tuple[list[str] | None, list[bytes], dict]],
                   gzip_top: bool = True) -> Path:  # fmt: skip
    """A `docker save` tarball: per image (RepoTags, layer tars lowest first, config);
    with gzip_top, the topmost layer is stored gzip-compressed (docker 25+ may do that)."""
    members: dict[str, bytes] = {}
    manifest = []
    for tags, layers, config in images:
        names = []
        for i, layer in enumerate(layers):
            blob = gzip.compress(layer, mtime=0) if gzip_top and i == len(layers) - 1 else layer
            names.append(f"{sha(blob)}/layer.tar")
            members[names[-1]] = blob
        config_bytes = image_config(layers, config)
        members[f"{sha(config_bytes)}.json"] = config_bytes
        manifest.append({"Config": f"{sha(config_bytes)}.json", "RepoTags": tags, "Layers": names})
    members["manifest.json"] = json.dumps(manifest).encode()  # docker writes it last
    return write_tar(path, members)


def oci_manifest(
    blobs: dict[str, bytes], layers: list[bytes], config: dict, arch: str = ""
) -> bytes:
    config_bytes = image_config(layers, config, arch)
    blobs[sha(config_bytes)] = config_bytes
    descs = []
    for layer in layers:
        blob = gzip.compress(layer, mtime=0)
        blobs[sha(blob)] = blob
        descs.append(
            {"mediaType": LAYER + "+gzip", "digest": f"sha256:{sha(blob)}", "size": len(blob)}
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{sha(config_bytes)}",
            "size": len(config_bytes),
        },
        "layers": descs,
    }
    raw = json.dumps(manifest).encode()
    blobs[sha(raw)] = raw
    return raw


def oci_archive(path: Path, blobs: dict[str, bytes], manifests: list[dict]) -> Path:
    members = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    members.update({f"blobs/sha256/{h}": data for h, data in blobs.items()})
    return write_tar(path, members)


@pytest.fixture
def manager(tmp_path: Path) -> ImageManager:
    return ImageManager(tmp_path / "images")


async def test_docker_archive_with_whiteouts(manager: ImageManager, tmp_path: Path) -> None:
    archive = docker_archive(
        tmp_path / "app.tar",
        [(["example.com/app:1", "app:2"], [LOWER, UPPER], {"Cmd": ["/bin/hello"]})],
    )
    seen: list[tuple[str, int, int]] = []
    [image] = await manager.load(archive, lambda *args: seen.append(args))
    assert image.repo_tags == ["example.com/app:1", "docker.io/library/app:2"]
    assert image.config == {"Cmd": ["/bin/hello"]}
    assert image.id == f"sha256:{sha(image_config([LOWER, UPPER], {'Cmd': ['/bin/hello']}))}"
    lower, upper = image.layers
    assert lower.name == sha(LOWER) and upper.name == sha(UPPER)  # diff ids, lowest first
    assert (lower / "etc/gone").read_bytes() == b"gone\n"
    assert os.lstat(lower / "bin/hello-link").st_ino == os.lstat(lower / "bin/hello").st_ino
    gone = os.lstat(upper / "etc/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(upper / "data", OPAQUE_XATTR) == b"y"
    what, done, total = seen[-1]
    assert what == "loading app.tar" and done == total > len(LOWER)
    assert any(s[0] == "unpacking example.com/app:1" for s in seen)
    assert await manager.get("example.com/app:1") == image
    assert await manager.get(image.id[7:20]) == image

    # Loading again changes nothing and unpacks nothing twice.
    before = (lower / "etc/keep").stat().st_ino
    [again] = await manager.load(archive)
    assert again == image and (lower / "etc/keep").stat().st_ino == before
    assert len(await manager.list()) == 1


async def test_gzipped_archive_and_untagged_images(manager: ImageManager, tmp_path: Path) -> None:
    plain = docker_archive(tmp_path / "x.tar", [(None, [LOWER], {"Cmd": ["sh"]})])
    packed = tmp_path / "x.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    [image] = await manager.load(packed)
    assert image.repo_tags == [] and image.repo_digests == []
    assert [i.id for i in await manager.list()] == [image.id]
    assert await manager.get(image.id) == image


async def test_a_name_moves_and_the_old_image_stays_untagged(
    manager: ImageManager, tmp_path: Path
) -> None:
    first = docker_archive(tmp_path / "1.tar", [(["app:v"], [LOWER], {"Cmd": ["one"]})])
    second = docker_archive(tmp_path / "2.tar", [(["app:v"], [LOWER, UPPER], {"Cmd": ["two"]})])
    [old] = await manager.load(first)
    [new] = await manager.load(second)
    images = {i.id: i for i in await manager.list()}
    assert images[new.id].repo_tags == ["docker.io/library/app:v"]
    assert images[old.id].repo_tags == []
    assert old.layers[0].exists()  # a running container may still use it


async def test_oci_archive_picks_this_platform(manager: ImageManager, tmp_path: Path) -> None:
    blobs: dict[str, bytes] = {}
    mine = oci_manifest(blobs, [LOWER, UPPER], {"Cmd": ["mine"]})
    other = oci_manifest(blobs, [UPPER], {"Cmd": ["other"]}, arch="s390x-not-this")
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{sha(other)}",
             "size": len(other), "platform": {"os": "linux", "architecture": "s390x-not-this"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{sha(mine)}",
             "size": len(mine), "platform": {"os": "linux", "architecture": host_architecture()}},
        ],
    }  # fmt: skip
    raw_index = json.dumps(index).encode()
    blobs[sha(raw_index)] = raw_index
    archive = oci_archive(
        tmp_path / "oci.tar",
        blobs,
        [
            {"mediaType": index["mediaType"], "digest": f"sha256:{sha(raw_index)}", "size": len(raw_index),
             "annotations": {"org.opencontainers.image.ref.name": "registry.example/team/app:3"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{sha(mine)}",
             "size": len(mine), "annotations": {"org.opencontainers.image.ref.name": "latest"}},
        ],
    )  # fmt: skip
    [image] = await manager.load(archive)
    assert image.config == {"Cmd": ["mine"]}
    assert image.repo_tags == ["registry.example/team/app:3"]  # a bare "latest" names nothing
    assert image.repo_digests == [f"registry.example/team/app@sha256:{sha(mine)}"]
    assert len(image.layers) == 2


async def test_unreadable_archives(manager: ImageManager, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is no archive" * 100)
    with pytest.raises(ImageError) as caught:
        await manager.load(junk)
    assert caught.value.reason == "ErrImageLoad"
    assert caught.value.message.startswith("junk.tar: not a readable tar archive")
    empty = write_tar(tmp_path / "empty.tar", {"README": b"hi"})
    with pytest.raises(ImageError, match="neither a docker-archive"):
        await manager.load(empty)
    with pytest.raises(ImageError, match="No such file"):
        await manager.load(tmp_path / "missing.tar")
    broken = docker_archive(tmp_path / "broken.tar", [(["b:1"], [LOWER], {})])
    with tarfile.open(broken) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members = {k: v for k, v in members.items() if not k.endswith("layer.tar")}
    with pytest.raises(ImageError, match="layer.tar is missing from the archive"):
        await manager.load(write_tar(tmp_path / "broken2.tar", members))
    assert await manager.list() == []
