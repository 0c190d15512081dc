"""RuncRuntime with real runc, conmon and overlayfs: container lifecycle, logs, exit reasons, OOM,
stop with a grace period, namespaces shared in a pod, adoption by a new runtime object.

The images are built here from the machine's static busybox and catatonit; the network is a
small stand-in that makes a network namespace with only loopback up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pocketkube.kubelet.images.service import ImageManager
from pocketkube.kubelet.runtime.interface import (
    ContainerConfig,
    Image,
    Resources,
    SandboxConfig,
)
from pocketkube.kubelet.runtime.runc import PAUSE_IMAGE, RuncRuntime

pytestmark = pytest.mark.usefixtures("require_root")

BUSYBOX = "docker.io/library/busybox:latest"
CRI_LINE = re.compile(r"^\S+ (stdout|stderr) ([FP]) (.*)$")


def _busybox_layer(path: Path) -> None:
    (path / "bin").mkdir(parents=True)
    (path / "etc").mkdir()
    shutil.copy2("/bin/busybox", path / "bin" / "busybox")
    applets = subprocess.run(
        ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", path / "bin" / applet)
    (path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (path / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:nobody\n")


class FakeImages:
    """An ImageService with a pause image and a busybox image made from host binaries."""

    def __init__(self, root: Path) -> None:
        pause_layer = root / "pause"
        pause_layer.mkdir(parents=True)
        shutil.copy2("/usr/bin/catatonit", pause_layer / "catatonit")
        busybox_layer = root / "busybox"
        _busybox_layer(busybox_layer)
        self.images = {
            PAUSE_IMAGE: Image(
                id="sha256:" + "1" * 64,
                repo_tags=[PAUSE_IMAGE],
                repo_digests=[],
                layers=[pause_layer],
                config={"Entrypoint": ["/catatonit", "-P"]},
                size=0,
            ),
            BUSYBOX: Image(
                id="sha256:" + "2" * 64,
                repo_tags=[BUSYBOX],
                repo_digests=[],
                layers=[busybox_layer],
                config={"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                size=0,
            ),
        }

    async def get(self, ref: str) -> Image | None:
        return self.images.get(ref)

    async def ensure(self, ref, pull_policy, pull_secrets=None):
        return self.images[ref], False

    async def list(self):
        return list(self.images.values())

    async def remove(self, ref_or_id: str) -> None:
        return None


async def _ip(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("ip", *args)
    assert await proc.wait() == 0, f"ip {' '.join(args)} failed"


class FakeNetwork:
    """Network namespaces with loopback only (no traffic leaves them)."""

    def __init__(self) -> None:
        self.made: set[str] = set()

    async def create_netns(self, sandbox_id: str) -> str:
        name = f"pktest-{sandbox_id[:12]}"
        await _ip("netns", "add", name)
        self.made.add(name)
        return f"/var/run/netns/{name}"

    async def setup(self, sandbox_id, netns, pod, ports) -> list[str]:
        await _ip("-n", Path(netns).name, "link", "set", "lo", "up")
        return ["127.0.0.1"]

    async def teardown(self, sandbox_id, netns, ports) -> None:
        name = Path(netns).name
        if name in self.made:
            await _ip("netns", "delete", name)
            self.made.discard(name)

    async def connect(self, netns: str, port: int):
        raise AssertionError("not used")


def _force_cleanup(root: Path, network: FakeNetwork, pod_uids: list[str]) -> None:
    """Whatever a failed test left: runc containers, mounts, netns, cgroups."""
    runc_root = root / "runc"
    if runc_root.is_dir():
        for cid in os.listdir(runc_root):
            subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", cid],
                           capture_output=True)  # fmt: skip
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for target in sorted((m for m in mounts if m.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
    for name in list(network.made):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    for uid in pod_uids:
        for controller in Path("/sys/fs/cgroup").iterdir():
            pod = controller / "pocketkube" / uid
            if pod.is_dir():
                for child in pod.iterdir():
                    if child.is_dir():
                        with contextlib.suppress(OSError):
                            child.rmdir()
                with contextlib.suppress(OSError):
                    pod.rmdir()


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "runtime"
        self.images = FakeImages(tmp / "images")
        self.network = FakeNetwork()
        self.runtime = RuncRuntime(self.root, self.images, self.network)
        self.pod_uids: list[str] = []

    def sandbox_config(self, name: str = "pod", host_network: bool = False) -> SandboxConfig:
        uid = str(uuid.uuid4())
        self.pod_uids.append(uid)
        pod_dir = self.tmp / "pods" / uid
        pod_dir.mkdir(parents=True)
        (pod_dir / "hosts").write_text("127.0.0.1 localhost\n")
        (pod_dir / "hostname").write_text(f"{name}\n")
        (pod_dir / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        return SandboxConfig(
            pod_uid=uid,
            name=name,
            namespace="default",
            hostname=name,
            host_network=host_network,
            hosts_path=pod_dir / "hosts",
            resolv_path=pod_dir / "resolv.conf",
            hostname_path=pod_dir / "hostname",
            log_dir=self.tmp / "logs" / f"default_{name}_{uid}",
        )

    def container_config(self, sandbox: SandboxConfig, name: str, script: str,
                         **kwargs) -> ContainerConfig:  # fmt: skip
        assert sandbox.log_dir is not None
        return ContainerConfig(
            name=name,
            attempt=0,
            image=self.images.images[BUSYBOX],
            image_ref="busybox",
            argv=["sh", "-c", script],
            env=[("PATH", "/bin"), ("GREETING", "hello")],
            log_path=sandbox.log_dir / name / "0.log",
            **kwargs,
        )

    async def run(self, sid: str, sandbox: SandboxConfig, name: str, script: str,
                  **kwargs) -> str:  # fmt: skip
        cid = await self.runtime.create_container(
            sid, self.container_config(sandbox, name, script, **kwargs), sandbox
        )
        await self.runtime.start_container(cid)
        return cid

    async def exited(self, cid: str, timeout: float = 15.0):
        """The container's status once it has exited (polling, with a deadline)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        status = None
        while loop.time() < deadline:
            status = await self.runtime.container_status(cid)
            assert status is not None
            if status.state == "exited":
                return status
            await asyncio.sleep(0.05)
        raise AssertionError(f"container did not exit in {timeout}s: {status}")

    async def logged(self, cid: str, text: str, timeout: float = 15.0) -> None:
        """Wait until the container's log has a line `text` (polling, with a deadline)."""
        status = await self.runtime.container_status(cid)
        assert status is not None
        path = Path(status.log_path)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if path.exists() and any(t == text for _, t in log_lines(path)):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} not logged in {timeout}s")

    async def close(self) -> None:
        try:
            for sandbox in await self.runtime.list_sandboxes():
                await self.runtime.remove_sandbox(sandbox.id)
            await self.runtime.close()
        finally:
            _force_cleanup(self.root, self.network, self.pod_uids)


@contextlib.asynccontextmanager
async def open_harness(tmp: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp)
    try:
        await h.runtime.start()
        yield h
    finally:
        await h.close()


@pytest.fixture
async def harness(tmp_path):
    async with open_harness(tmp_path) as h:
        yield h


def log_lines(path: Path) -> list[tuple[str, str]]:
    result = []
    for line in path.read_text().splitlines():
        match = CRI_LINE.match(line)
        assert match, f"not a CRI log line: {line!r}"
        result.append((match.group(1), match.group(3)))
    return result


async def test_logs_exit_code_and_reasons(harness: Harness):
    rt = harness.runtime
    assert rt.version.startswith("runc://1.")
    sandbox = harness.sandbox_config()
    sid = await rt.run_sandbox(sandbox)
    status = await rt.sandbox_status(sid)
    assert status is not None and status.state == "ready" and status.ip == "127.0.0.1"
    assert len(sid) == 64 and status.netns.startswith("/var/run/netns/")

    ok = await harness.run(sid, sandbox, "ok", 'echo "$GREETING out"; echo err >&2')
    bad = await harness.run(sid, sandbox, "bad", "exit 3")
    done = await harness.exited(ok)
    assert (done.exit_code, done.reason) == (0, "Completed")
    assert done.finished_at >= done.started_at > 0
    assert log_lines(Path(done.log_path)) == [("stdout", "hello out"), ("stderr", "err")]
    failed = await harness.exited(bad)
    assert (failed.exit_code, failed.reason) == (3, "Error")
    assert {c.id for c in await rt.list_containers(sid)} == {ok, bad}

    await rt.remove_container(ok)
    assert await rt.container_status(ok) is None
    await rt.stop_sandbox(sid)
    stopped = await rt.sandbox_status(sid)
    assert stopped is not None and stopped.state == "notready"
    await rt.remove_sandbox(sid)
    assert await rt.sandbox_status(sid) is None
    assert await rt.list_containers() == []
    assert not (harness.root / "sandboxes" / sid).exists()
    assert not Path(f"/sys/fs/cgroup/memory/pocketkube/{sandbox.pod_uid}").exists()
    assert harness.network.made == set()


async def test_containers_share_network_and_hostname(harness: Harness):
    rt = harness.runtime
    sandbox = harness.sandbox_config(name="web")
    sid = await rt.run_sandbox(sandbox)
    server = await harness.run(sid, sandbox, "server", "echo pong | nc -l -p 8080")
    client = await harness.run(
        sid,
        sandbox,
        "client",
        "hostname; cat /etc/hostname; until nc 127.0.0.1 8080 </dev/null; do usleep 50000; done",
    )
    done = await harness.exited(client)
    assert done.reason == "Completed"
    assert [text for _, text in log_lines(Path(done.log_path))] == ["web", "web", "pong"]
    assert (await harness.exited(server)).exit_code == 0


async def test_memory_limit_oom_killed(harness: Harness):
    rt = harness.runtime
    sandbox = harness.sandbox_config()
    sid = await rt.run_sandbox(sandbox)
    # 64 MiB of zeros held in one shell variable: far over a 16 MiB limit.
    cid = await harness.run(
        sid,
        sandbox,
        "hog",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
        resources=Resources(memory_limit=16 * 1024 * 1024),
    )
    status = await harness.exited(cid, timeout=30)
    assert status.reason == "OOMKilled"
    assert status.exit_code == 137


async def test_stop_with_grace_period(harness: Harness):
    rt = harness.runtime
    sandbox = harness.sandbox_config()
    sid = await rt.run_sandbox(sandbox)
    polite = await harness.run(
        sid,
        sandbox,
        "polite",
        "trap 'echo bye; exit 0' TERM; echo ready; while true; do usleep 20000; done",
    )
    stubborn = await harness.run(
        sid, sandbox, "stubborn", "trap '' TERM; echo ready; while true; do usleep 20000; done"
    )
    loop = asyncio.get_running_loop()
    # The shells must have set their traps before the signal.
    for cid in (polite, stubborn):
        await harness.logged(cid, "ready")
    started = loop.time()
    await rt.stop_container(polite, 10)
    assert loop.time() - started < 5
    status = await rt.container_status(polite)
    assert status is not None and (status.state, status.exit_code) == ("exited", 0)
    assert ("stdout", "bye") in log_lines(Path(status.log_path))

    started = loop.time()
    await rt.stop_container(stubborn, 1)
    assert loop.time() - started >= 1
    status = await rt.container_status(stubborn)
    assert status is not None and (status.state, status.exit_code) == ("exited", 137)
    assert status.reason == "Error"


async def test_adopted_by_a_new_runtime(harness: Harness):
    rt = harness.runtime
    sandbox = harness.sandbox_config()
    sid = await rt.run_sandbox(sandbox)
    cid = await harness.run(sid, sandbox, "sleeper", "sleep 300")
    await rt.close()

    again = RuncRuntime(harness.root, harness.images, harness.network)
    harness.runtime = again
    await again.start()
    sandboxes = await again.list_sandboxes()
    assert [(s.id, s.state) for s in sandboxes] == [(sid, "ready")]
    [status] = await again.list_containers(sid)
    assert (status.id, status.state, status.name) == (cid, "running", "sleeper")
    await again.stop_container(cid, 1)
    stopped = await again.container_status(cid)
    assert stopped is not None and stopped.state == "exited" and stopped.exit_code == 137
    await again.remove_all()
    assert await again.list_sandboxes() == [] and await again.list_containers() == []
    assert harness.network.made == set()


async def test_with_the_builtin_images(tmp_path):
    """The image store's own busybox and pause images (layers unpacked by images/)."""
    images = ImageManager(tmp_path / "store")
    await images.ensure_builtin()
    async with open_harness(tmp_path) as h:
        h.runtime.images = images
        busybox = await images.get(BUSYBOX)
        assert busybox is not None
        h.images.images[BUSYBOX] = busybox
        sandbox = h.sandbox_config()
        sid = await h.runtime.run_sandbox(sandbox)
        cid = await h.run(sid, sandbox, "app", "id -un; ls /bin/sh")
        done = await h.exited(cid)
        assert (done.reason, done.image_id) == ("Completed", busybox.id)
        assert [t for _, t in log_lines(Path(done.log_path))] == ["root", "/bin/sh"]
