"""Run a real, throwaway etcd for tests: one member on free loopback ports in a temp dir.

    server = start_etcd(tmp_path)      # server.endpoints == ["127.0.0.1:PORT"]
    ...
    server.stop()

or `with running_etcd(tmp_path) as endpoints: ...`, or the module-scoped pytest fixture
`etcd_endpoints` (import it into a test module or conftest). The `etcd` binary comes from
Debian's etcd-server package; without it the helper raises, so tests fail loudly instead of
skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_READY = "serving insecure client requests on"  # logged once the client listener serves
_START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    """A running single-member etcd; `endpoints` is what EtcdBackend takes."""

    def __init__(self, proc: subprocess.Popen[str], client_port: int, log: deque[str],
                 reader: threading.Thread) -> None:
        self.proc = proc
        self.endpoints = [f"127.0.0.1:{client_port}"]
        self.url = f"http://127.0.0.1:{client_port}"
        self._log = log
        self._reader = reader

    def log_tail(self) -> str:
        return "\n".join(self._log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)


def start_etcd(data_dir: Path) -> EtcdServer:
    """Start etcd with its data under `data_dir`, and return once it serves clients."""
    binary = shutil.which("etcd")
    if binary is None:
        raise RuntimeError("the etcd binary is not on PATH: install it with "
                           "`apt-get install -y etcd-server`")
    client, peer = _free_port(), _free_port()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Drop inherited ETCD_* settings: they would override the flags below.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    args = [
        binary, "--name", "test",
        "--data-dir", str(data_dir / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"test=http://127.0.0.1:{peer}",
        "--initial-cluster-state", "new",
    ]
    proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    log: deque[str] = deque(maxlen=50)
    ready, serving = threading.Event(), []

    def drain() -> None:
        # Keep reading for the process's whole life so a full pipe never stalls etcd.
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line.rstrip())
            if _READY in line:
                serving.append(True)
                ready.set()
        ready.set()  # the process ended: stop waiting

    reader = threading.Thread(target=drain, name="etcd-log", daemon=True)
    reader.start()
    server = EtcdServer(proc, client, log, reader)
    if not ready.wait(_START_TIMEOUT) or not serving:
        server.stop()
        raise RuntimeError(f"etcd did not start (exit code {proc.returncode}):\n"
                           f"{server.log_tail()}")
    return server


@contextmanager
def running_etcd(data_dir: Path) -> Iterator[list[str]]:
    server = start_etcd(data_dir)
    try:
        yield server.endpoints
    finally:
        server.stop()


@pytest.fixture(scope="module")
def etcd_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with running_etcd(tmp_path_factory.mktemp("etcd")) as endpoints:
        yield endpoints
