"""Run `pocketkube server` as a child process that a test or benchmark can kill -9 and restart.

    server = ServerProcess(tmp_path / "data")                # sqlite, a free loopback port
    server.start()                                           # returns once /readyz answers 200
    ssl_ctx = server.ssl_context()                           # admin client cert, cluster CA
    ... requests to server.url ...
    server.kill()                                            # SIGKILL: no graceful shutdown
    server.start()                                           # same data dir, same port
    server.stop()

`datastore` is passed through as `--datastore` (e.g. "etcd://127.0.0.1:2379"). The server's
output goes to `<data dir>/logs/server.log` (appended across restarts); `log_tail()` returns its
end for failure messages. Readiness is polled with a deadline, never waited for by sleeping a
fixed time. Blocking by design: from async code call `await asyncio.to_thread(server.start)`.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.cluster import unique_cluster_cidr

START_TIMEOUT = 60.0
_POLL = 0.05
_LAUNCH = "import sys; from pocketkube.cli.main import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One `pocketkube server` bound to a data dir and a port that stay the same across restarts."""

    def __init__(self, data_dir: Path, datastore: str = "sqlite", port: int | None = None,
                 log_level: str = "warning", app: str | None = None,
                 node_agent: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.datastore = datastore
        self.port = port or free_port()
        self.log_level = log_level
        self.app = app  # --app: another control-plane entry point (module:function)
        self.node_agent = node_agent  # run this machine as a node (real containers)
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "logs" / "server.log"

    # --- the admin credentials the server writes under <data dir>/pki --------------------

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    @property
    def admin_cert(self) -> Path:
        return self.data_dir / "pki" / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.data_dir / "pki" / "admin.key"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the server against the cluster CA and presents the admin client cert."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        ctx.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        return ctx

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the server has not been started")
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and return once GET /readyz answers 200; raises RuntimeError (with
        the log tail) if it exits or is not ready within `timeout` seconds."""
        if self.running:
            raise RuntimeError(f"the server is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-c", _LAUNCH, "server", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--datastore", self.datastore,
                "--log-level", self.log_level,
                *(["--node-agent", "--cluster-cidr", unique_cluster_cidr(),
                   "--dns-upstream", "none"] if self.node_agent
                  else ["--no-node-agent"])] + \
            (["--app", self.app] if self.app else [])
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ctx: ssl.SSLContext | None = None
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"pocketkube server exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                # The PKI appears before the listener; build the context once it exists.
                ctx = ctx or self.ssl_context()
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=2) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except (OSError, ssl.SSLError) as e:
                last = str(e)
            time.sleep(_POLL)
        raise RuntimeError(f"pocketkube server not ready after {timeout:.0f}s ({last}):\n"
                           f"{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server (the crash being simulated) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it does not exit within `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def delete(self) -> None:
        """Stop, then `pocketkube delete` the data dir: with a node agent this also removes the
        node's containers, mounts and network, which outlive the server on purpose."""
        self.stop()
        subprocess.run([sys.executable, "-c", _LAUNCH, "delete", "--data-dir",
                        str(self.data_dir)], check=False, capture_output=True,
                       stdin=subprocess.DEVNULL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"
