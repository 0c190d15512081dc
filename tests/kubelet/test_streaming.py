"""kubectl logs/exec/attach/cp through a real API server to the node agent's streaming server.

The agent side is the real StreamingServer with a fake runtime: its containers are host
processes (exec runs the command on this machine; attach talks to a `cat`), its logs are CRI
files the test writes. The Node and the Pod are created through the API, the pod bound to the
node and given a Running status, so the API server finds the agent at 127.0.0.1:<port> exactly
as it finds a real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import select
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pocketkube.kubelet.runtime.interface import ContainerStatus, SandboxStatus, StreamSession
from pocketkube.kubelet.server.app import StreamingServer
from pocketkube.pki import PkiPaths, issue_serving_cert, write_private
from tests.support.cluster import Cluster

NS = "streaming"
T = "2026-11-22T05:12:2{}.000000001+00:00"


def cri(i: int, text: str, stream: str = "stdout") -> str:
    return f"{T.format(i)} {stream} F {text}\n"


# --- the fake node agent -------------------------------------------------------------------

@dataclass
class FakeContainer:
    log: Path
    previous: Path | None = None
    state: str = "running"
    id: str = field(default_factory=lambda: os.urandom(8).hex())


class FakeRuntime:
    """Containers are host processes; enough of Runtime for the streaming server."""

    name = "fake"
    version = "fake://0"

    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        for c in self.agent.containers.values():
            if c.id == container_id:
                return ContainerStatus(c.id, "sb", "c", 0, c.state)
        return None

    async def exec(self, container_id: str, argv: list[str], *, stdin: bool, tty: bool
                   ) -> StreamSession:  # fmt: skip
        if tty:
            return await _tty_session(argv)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.agent.workdir)
        return _session(proc)

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # fmt: skip
        return await asyncio.open_connection("127.0.0.1", port)

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> StreamSession:
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        session = _session(proc)

        async def ended() -> None:
            await proc.wait()

        session.wait = ended  # type: ignore[assignment]  # an attach has no exit code
        return session


def _session(proc: asyncio.subprocess.Process) -> StreamSession:
    async def resize(w: int, h: int) -> None:
        pass

    async def close() -> None:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    return StreamSession(proc.stdin, proc.stdout, proc.stderr, proc.wait, resize, close)


async def _tty_session(argv: list[str]) -> StreamSession:
    loop = asyncio.get_running_loop()
    master, slave = os.openpty()
    proc = await asyncio.create_subprocess_exec(*argv, stdin=slave, stdout=slave, stderr=slave,
                                                start_new_session=True)
    os.close(slave)
    out = asyncio.StreamReader()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b""
        if data:
            out.feed_data(data)
        else:
            loop.remove_reader(master)
            out.feed_eof()

    loop.add_reader(master, readable)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(master), "wb", 0))
    stdin = asyncio.StreamWriter(transport, protocol, None, loop)

    async def resize(w: int, h: int) -> None:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))

    async def wait() -> int:
        code = await proc.wait()
        await out.read()  # the terminal's last output before reporting the end
        return code

    async def close() -> None:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(master)
            os.close(master)

    return StreamSession(stdin, out, None, wait, resize, close)


class CountingServer(StreamingServer):
    """The real server, telling the test when a log stream's handler has finished."""

    log_streams_ended = threading.Event()

    async def container_logs(self, request):  # type: ignore[no-untyped-def]
        try:
            return await super().container_logs(request)
        finally:
            self.log_streams_ended.set()


class FakeAgent:
    """PodLookup over a dict of fake containers, serving on its own event loop thread."""

    def __init__(self, base: Path, pki: PkiPaths) -> None:
        self.workdir = base / "work"
        self.workdir.mkdir()
        self.containers: dict[tuple[str, str, str], FakeContainer] = {}
        self.runtime = FakeRuntime(self)
        cert, key = issue_serving_cert(pki, "system:node:stream-node", ["127.0.0.1"])
        (base / "agent.crt").write_bytes(cert)
        write_private(base / "agent.key", key)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = CountingServer(self, host="127.0.0.1", port=0, cert=base / "agent.crt",
                                      key=base / "agent.key", client_ca=pki.ca_cert)
        self.port = self._run(self.server.start())

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self._run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def container(self, ns: str, pod: str, container: str):  # type: ignore[no-untyped-def]
        c = self.containers.get((ns, pod, container))
        if c is None:
            return None
        return self.runtime, ContainerStatus(c.id, "sb", container, 1, c.state)

    def sandbox(self, ns: str, pod: str):  # type: ignore[no-untyped-def]
        if any(k[:2] == (ns, pod) for k in self.containers):
            return self.runtime, SandboxStatus("sb", "uid", pod, ns, "ready", ip="127.0.0.1")
        return None

    def log_path(self, ns: str, pod: str, container: str, previous: bool) -> Path | None:
        c = self.containers.get((ns, pod, container))
        if c is None:
            return None
        return c.previous if previous else c.log


# --- fixtures --------------------------------------------------------------------------------

def running_status(names: list[str]) -> dict:
    started = "2026-11-22T05:12:20Z"
    return {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": n, "image": "busybox", "imageID": "", "ready": True, "restartCount": 1,
                "started": True, "containerID": f"fake://{n}1",
                "state": {"running": {"startedAt": started}},
                "lastState": {"terminated": {"exitCode": 0, "reason": "Completed",
                                             "containerID": f"fake://{n}0",
                                             "startedAt": started, "finishedAt": started}}}
                for n in names]}


@contextlib.contextmanager
def streaming_cluster(base: Path) -> Iterator[tuple[Cluster, FakeAgent]]:
    """A real API server, the fake agent, its Node and the test Pods (see the module doc)."""
    cluster = Cluster(base / "cluster")
    cluster.start()
    agent = None
    try:
        agent = FakeAgent(base, PkiPaths.under(cluster.pki))
        k = cluster.kubectl
        k("create", "namespace", NS)
        k("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "stream-node"}}))
        k("patch", "node", "stream-node", "--subresource=status", "--type=merge", "-p",
          json.dumps({"status": {
              "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                            {"type": "Hostname", "address": "stream-node"}],
              "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}}}}))
        pods = {"p": ["c"], "two": ["a", "b"], "pending": ["c"], "unbound": ["c"]}
        for pod, names in pods.items():
            spec: dict = {"containers": [{"name": n, "image": "busybox"} for n in names]}
            if pod != "unbound":
                spec["nodeName"] = "stream-node"
            else:  # stays unscheduled whatever the scheduler thinks of the node
                spec["nodeSelector"] = {"pocketkube.test/never": "true"}
            k("-n", NS, "create", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": spec}))
        for pod in ("p", "two"):
            k("-n", NS, "patch", "pod", pod, "--subresource=status", "--type=merge", "-p",
              json.dumps({"status": running_status(pods[pod])}))
        k("-n", NS, "patch", "pod", "pending", "--subresource=status", "--type=merge", "-p",
          json.dumps({"status": {"phase": "Pending", "containerStatuses": [{
              "name": "c", "image": "busybox", "imageID": "", "ready": False,
              "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}}))
        logs = base / "logs"
        logs.mkdir()
        (logs / "p-0.log").write_text(cri(0, "before the restart"))
        (logs / "p-1.log").write_text(cri(1, "one") + cri(2, "two", "stderr") + cri(3, "three"))
        agent.containers[(NS, "p", "c")] = FakeContainer(logs / "p-1.log", logs / "p-0.log")
        agent.containers[(NS, "two", "a")] = FakeContainer(logs / "p-1.log")
        agent.containers[(NS, "two", "b")] = FakeContainer(logs / "p-1.log", state="exited")
        yield cluster, agent
    finally:
        if agent is not None:
            agent.close()
        cluster.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, FakeAgent]]:
    with streaming_cluster(tmp_path_factory.mktemp("streaming")) as pair:
        yield pair


def kubectl(env: tuple[Cluster, FakeAgent], *args: str, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    return env[0].kubectl("-n", NS, *args, input=input, check=check)


# --- logs ------------------------------------------------------------------------------------

def test_logs(env: tuple[Cluster, FakeAgent]) -> None:
    assert kubectl(env, "logs", "p").stdout == "one\ntwo\nthree\n"
    assert kubectl(env, "logs", "p", "--tail=2").stdout == "two\nthree\n"
    assert kubectl(env, "logs", "p", "--timestamps", "--tail=1").stdout == \
        "2026-11-22T05:12:23.000000001Z three\n"
    assert kubectl(env, "logs", "p", "--previous").stdout == "before the restart\n"
    assert kubectl(env, "logs", "p", "--limit-bytes=6").stdout == "one\ntw"
    assert kubectl(env, "logs", "p", "--since-time=2026-11-22T05:12:22Z").stdout == \
        "two\nthree\n"


def test_logs_follow_ends_with_the_container(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, agent = env
    path = agent.workdir.parent / "logs" / "follow.log"
    path.write_text(cri(1, "first"))
    agent.containers[(NS, "two", "a")] = c = FakeContainer(path)
    proc = cluster.kubectl_popen("-n", NS, "logs", "-f", "two", "-c", "a")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first\n"
        with path.open("a") as f:
            f.write(cri(2, "second"))
        assert proc.stdout.readline() == "second\n"
        with path.open("a") as f:
            f.write(cri(3, "last words"))
        c.state = "exited"
        assert proc.wait(30) == 0
        assert proc.stdout.read() == "last words\n"
    finally:
        proc.kill()
        proc.wait()
        c.state = "running"


def test_abandoned_follow_ends_on_the_agent(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, agent = env
    path = agent.workdir.parent / "logs" / "quiet.log"
    path.write_text(cri(1, "only line"))
    agent.containers[(NS, "two", "a")] = FakeContainer(path)
    proc = cluster.kubectl_popen("-n", NS, "logs", "-f", "two", "-c", "a")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "only line\n"
        CountingServer.log_streams_ended.clear()
    finally:
        proc.kill()
        proc.wait()
    # The container keeps running and writes nothing: only the client's departure ends it.
    assert CountingServer.log_streams_ended.wait(20), "the agent still follows the log"


def test_logs_errors(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, _ = env
    err = kubectl(env, "logs", "nope", check=False)
    assert err.returncode == 1
    assert '(NotFound): pods "nope" not found in namespace "streaming"' in err.stderr
    err = kubectl(env, "logs", "pending", check=False)
    assert 'Error from server (BadRequest): container "c" in pod "pending" is waiting to ' \
           "start: ContainerCreating" in err.stderr
    # What the server itself says when the client does not pick the container first.
    base = f"/api/v1/namespaces/{NS}/pods"
    code, _, body = cluster.request("GET", f"{base}/two/log")
    status = json.loads(body)
    assert (code, status["reason"], status["message"]) == (
        400, "BadRequest", "a container name must be specified for pod two, choose one of: "
                           "[a b]")
    code, _, body = cluster.request("GET", f"{base}/p/log?container=zzz")
    assert (code, json.loads(body)["message"]) == (400, "container zzz is not valid for pod p")
    code, _, body = cluster.request("GET", f"{base}/p/log?tailLines=-3")
    assert code == 422 and json.loads(body)["message"] == (
        'PodLogOptions "p" is invalid: tailLines: Invalid value: -3: must be greater than or '
        "equal to 0")
    # A pod no node runs has no logs yet: an empty answer, as from kube.
    code, _, body = cluster.request("GET", f"{base}/unbound/log")
    assert (code, body) == (200, b"")


# --- exec, attach, cp ----------------------------------------------------------------------

def test_exec_streams_and_exit_code(env: tuple[Cluster, FakeAgent]) -> None:
    r = kubectl(env, "exec", "p", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                check=False)
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr
    assert "command terminated with exit code 3" in r.stderr
    assert kubectl(env, "exec", "p", "--", "true").returncode == 0


def test_exec_with_stdin(env: tuple[Cluster, FakeAgent]) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    assert kubectl(env, "exec", "-i", "p", "--", "cat", input=text).stdout == text


def test_exec_tty(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, _ = env
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal
        env_vars = cluster.kubectl_env()
        args = cluster.kubectl_args("-n", NS, "exec", "-it", "p", "--", "sh", "-c",
                                    "echo ready; read x; stty size; echo got $x; exit 7")
        os.execvpe(args[0], args, env_vars)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        seen = _read_until(fd, b"ready")
        os.write(fd, b"hello\r")
        seen += _read_until(fd, b"got hello")
        assert b"33 111" in seen
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 7
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def _read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            assert chunk, f"terminal closed; no {marker!r} in {seen!r}"
            seen += chunk
    return seen


def test_attach(env: tuple[Cluster, FakeAgent]) -> None:
    r = kubectl(env, "attach", "-i", "p", input="hello\nworld\n")
    assert r.stdout == "hello\nworld\n"


def test_cp_both_ways(env: tuple[Cluster, FakeAgent], tmp_path: Path) -> None:
    _, agent = env
    src = tmp_path / "src.txt"
    src.write_text("copied into the pod\n")
    remote_dir = agent.workdir / "dest"
    remote_dir.mkdir()
    kubectl(env, "cp", str(src), f"p:{remote_dir}/in.txt")
    assert (remote_dir / "in.txt").read_text() == "copied into the pod\n"
    (remote_dir / "out.txt").write_text("copied out of the pod\n")
    back = tmp_path / "back.txt"
    kubectl(env, "cp", f"p:{remote_dir}/out.txt", str(back))
    assert back.read_text() == "copied out of the pod\n"


def test_exec_errors(env: tuple[Cluster, FakeAgent]) -> None:
    r = kubectl(env, "exec", "unbound", "--", "true", check=False)
    assert "Error from server (BadRequest): pod unbound does not have a host assigned" \
        in r.stderr
    r = kubectl(env, "exec", "nope", "--", "true", check=False)
    assert 'Error from server (NotFound): pods "nope" not found' in r.stderr
    # The API says it runs; the agent has no running container by that name.
    r = kubectl(env, "exec", "two", "-c", "b", "--", "true", check=False)
    assert r.returncode != 0
    assert 'Internal error occurred: unable to upgrade connection: container not found ("b")' \
        in r.stderr
    r = kubectl(env, "exec", "p", "-c", "zzz", "--", "true", check=False)
    assert r.returncode != 0 and "zzz" in r.stderr


# --- port-forward ----------------------------------------------------------------------------

def test_port_forward(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, agent = env

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = agent._run(asyncio.start_server(echo, "127.0.0.1", 0))
    pod_port = server.sockets[0].getsockname()[1]
    proc = cluster.kubectl_popen("-n", NS, "port-forward", "p", f"0:{pod_port}")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:"), line + proc.stderr.read()
        local = int(line.split(":")[1].split()[0])
        for text in (b"hello", b"again"):
            with socket.create_connection(("127.0.0.1", local), timeout=20) as conn:
                conn.sendall(text)
                conn.shutdown(socket.SHUT_WR)
                got = b""
                while chunk := conn.recv(4096):
                    got += chunk
            assert got == text.upper()
    finally:
        proc.kill()
        proc.wait()
        server.close()
