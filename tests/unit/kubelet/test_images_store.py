"""The image service: built-in images, pull policies, shared pulls, pull secrets, removal and
the `pocketkube image` command. Pulls go through a stand-in for skopeo that records its
arguments and then runs the real skopeo, either against a local OCI layout (for pulls that
succeed) or unchanged against 127.0.0.1:1, where nothing listens (for pulls that fail)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from pocketkube.cli import image as image_cli
from pocketkube.kubelet.images import builtin
from pocketkube.kubelet.images.service import ImageManager
from pocketkube.kubelet.runtime.interface import ImageError
from tests.unit.kubelet.test_images_archive import LOWER, UPPER, docker_archive

FAKE_SKOPEO = """#!{python}
import json, os, sys
args = sys.argv[1:]
entry = {{"args": args}}
if "--src-authfile" in args:
    with open(args[args.index("--src-authfile") + 1]) as f:
        entry["auth"] = json.load(f)
with open({log!r}, "a") as out:
    out.write(json.dumps(entry) + "\\n")
source = {source!r}
argv, skip = ["skopeo"], False
for arg in args:
    if skip:
        skip = False
    elif arg == "--src-authfile" and source:
        skip = True
    elif arg == "--src-tls-verify=false" and source:
        pass
    elif arg.startswith("docker://") and source:
        argv.append("oci:" + source + ":" + arg[len("docker://"):])
    else:
        argv.append(arg)
os.execvp("skopeo", argv)
"""


class Skopeo:
    """A skopeo stand-in; `calls` are the argument lists it was run with."""

    def __init__(self, tmp_path: Path, source: Path | None = None) -> None:
        self.log = tmp_path / "skopeo.log"
        self.path = tmp_path / "skopeo"
        text = FAKE_SKOPEO.format(
            python=sys.executable, log=str(self.log), source=str(source or "")
        )
        self.path.write_text(text)
        self.path.chmod(0o755)

    @property
    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
async def registry(tmp_path: Path) -> Path:
    """An OCI layout holding 127.0.0.1:1/app:1, standing in for a registry's content."""
    source = ImageManager(tmp_path / "registry")
    archive = docker_archive(
        tmp_path / "app.tar", [(["127.0.0.1:1/app:1"], [LOWER, UPPER], {"Cmd": ["x"]})]
    )
    await source.load(archive)
    return tmp_path / "registry" / "oci"


async def test_builtin_images(tmp_path: Path) -> None:
    manager = ImageManager(tmp_path / "a")
    await manager.ensure_builtin()
    busybox = await manager.get("busybox")
    pause = await manager.get(builtin.PAUSE)
    assert busybox is not None and pause is not None
    assert busybox.repo_tags == [builtin.BUSYBOX]
    assert busybox.config == {
        "Cmd": ["sh"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    }
    [root] = busybox.layers
    assert (root / "bin/busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    assert os.readlink(root / "bin/sh") == "busybox"
    assert "root:x:0:0:" in (root / "etc/passwd").read_text()
    assert "nobody:x:65534:" in (root / "etc/group").read_text()
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert not (root / "etc/hosts").exists()
    assert pause.config["Entrypoint"] == ["/catatonit", "-P"]
    [pause_root] = pause.layers
    assert (pause_root / "catatonit").read_bytes() == Path("/usr/bin/catatonit").read_bytes()

    # Deterministic: another store on this machine makes the very same images.
    other = ImageManager(tmp_path / "b")
    await other.ensure_builtin()
    assert sorted(i.id for i in await other.list()) == sorted([busybox.id, pause.id])
    index = (tmp_path / "a/oci/index.json").read_bytes()
    await manager.ensure_builtin()
    assert (tmp_path / "a/oci/index.json").read_bytes() == index


def test_static_check() -> None:
    assert builtin.is_static(Path("/bin/busybox").read_bytes())
    assert not builtin.is_static(Path(sys.executable).resolve().read_bytes()[: 1 << 16])


async def test_pull_policies_without_a_registry(tmp_path: Path) -> None:
    skopeo = Skopeo(tmp_path)
    manager = ImageManager(tmp_path / "images", skopeo=str(skopeo.path))
    await manager.ensure_builtin()
    for policy in ("Always", "IfNotPresent", "Never"):
        image, pulled = await manager.ensure("busybox", policy)
        assert image.repo_tags == [builtin.BUSYBOX] and not pulled
    assert skopeo.calls == []  # built-in images are never pulled, even with Always
    with pytest.raises(ImageError) as caught:
        await manager.ensure("nginx", "Never")
    assert (caught.value.reason, caught.value.message) == (
        "ErrImageNeverPull",
        'Container image "nginx:latest" is not present with pull policy of Never',
    )
    with pytest.raises(ImageError) as caught:
        await manager.ensure("Nginx", "IfNotPresent")
    assert caught.value.reason == "InvalidImageName"
    assert skopeo.calls == []


async def test_failed_pulls_are_shared(tmp_path: Path) -> None:
    skopeo = Skopeo(tmp_path)
    manager = ImageManager(tmp_path / "images", skopeo=str(skopeo.path))
    ref = "127.0.0.1:1/nothing:1"
    results = await asyncio.gather(
        manager.ensure(ref, "IfNotPresent"), manager.ensure(ref, "Always"), return_exceptions=True
    )
    assert len(skopeo.calls) == 1
    for error in results:
        assert isinstance(error, ImageError) and error.reason == "ErrImagePull"
        assert error.message.startswith(f'failed to pull and unpack image "{ref}": ')
        assert error.message.endswith("connection refused")
    [call] = skopeo.calls
    assert call["args"][-2:][0] == f"docker://{ref}"
    assert "--src-tls-verify=false" in call["args"]  # loopback registries may speak plain HTTP
    assert list((tmp_path / "images/tmp").iterdir()) == []


async def test_successful_pulls(tmp_path: Path, registry: Path) -> None:
    skopeo = Skopeo(tmp_path, source=registry)
    manager = ImageManager(tmp_path / "images", skopeo=str(skopeo.path))
    token = base64.b64encode(b"user:secret").decode()
    config = {"auths": {"127.0.0.1:1": {"auth": token}}}
    secret = {
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    image, pulled = await manager.ensure("127.0.0.1:1/app:1", "IfNotPresent", [secret])
    assert pulled and image.repo_tags == ["127.0.0.1:1/app:1"]
    assert image.config == {"Cmd": ["x"]}
    assert [layer.name for layer in image.layers] == [LOWER_ID, UPPER_ID]
    source_index = json.loads((registry / "index.json").read_text())["manifests"][0]
    assert image.repo_digests == [f"127.0.0.1:1/app@{source_index['digest']}"]
    assert skopeo.calls[0]["auth"] == {"auths": {"127.0.0.1:1": {"auth": token}}}
    assert "user:secret" not in " ".join(skopeo.calls[0]["args"])

    again, pulled = await manager.ensure("127.0.0.1:1/app:1", "IfNotPresent")
    assert again == image and not pulled and len(skopeo.calls) == 1
    again, pulled = await manager.ensure("127.0.0.1:1/app:1", "Always")
    assert again == image and pulled and len(skopeo.calls) == 2
    assert "auth" not in skopeo.calls[1]


async def test_remove_untags_then_deletes(tmp_path: Path) -> None:
    manager = ImageManager(tmp_path / "images")
    await manager.ensure_builtin()
    archive = docker_archive(tmp_path / "app.tar", [(["app:1", "app:2"], [LOWER, UPPER], {})])
    [image] = await manager.load(archive)
    blobs = tmp_path / "images/oci/blobs/sha256"
    before = set(os.listdir(blobs))
    assert await manager.delete("app:1") == ["docker.io/library/app:1"]
    assert set(os.listdir(blobs)) == before and all(p.exists() for p in image.layers)
    assert await manager.delete("app:2") == ["docker.io/library/app:2"]
    assert await manager.get(image.id) is None
    assert not any(p.exists() for p in image.layers)
    assert len(os.listdir(blobs)) == len(before) - 4  # manifest, config, two layers
    await manager.remove("app:2")  # gone already: not an error
    busybox = await manager.get("busybox")
    assert busybox is not None
    assert await manager.delete(busybox.id[7:19]) == [builtin.BUSYBOX]
    assert [i.repo_tags for i in await manager.list()] == [[builtin.PAUSE]]


async def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = docker_archive(tmp_path / "app.tar", [(["app:1"], [LOWER], {}), (None, [UPPER], {})])

    def run(command: str, *rest: str) -> int:
        args = argparse.Namespace(data_dir=tmp_path / "data", image_command=command)
        args.files, args.refs = [Path(r) for r in rest], list(rest)
        return image_cli.run(args)

    assert await asyncio.to_thread(run, "load", str(archive), str(tmp_path / "nope.tar")) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "Loaded image: docker.io/library/app:1"
    assert out.splitlines()[1].startswith("Loaded image ID: sha256:")
    assert "error: " in err and "nope.tar" in err
    assert await asyncio.to_thread(run, "ls") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert lines[0].index("TAG") == len("docker.io/library/app") + 3
    rows = sorted(line.split() for line in lines[1:])
    assert [r[:2] for r in rows] == [["<none>", "<none>"], ["docker.io/library/app", "1"]]
    assert all(len(r[2]) == 13 and re.fullmatch(r"[0-9.]+k?B", r[3]) for r in rows)
    assert await asyncio.to_thread(run, "rm", "app:1", "nothing") == 1
    out, err = capsys.readouterr()
    assert out == "Deleted: docker.io/library/app:1\n"
    assert err == 'error: no such image "nothing"\n'


def test_human_sizes() -> None:
    assert [image_cli.human_size(n) for n in (999, 1000, 2_160_000, 315_000, 1_234_567_890)] == [
        "999B",
        "1kB",
        "2.16MB",
        "315kB",
        "1.23GB",
    ]


LOWER_ID = hashlib.sha256(LOWER).hexdigest()
UPPER_ID = hashlib.sha256(UPPER).hexdigest()
