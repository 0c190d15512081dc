"""A real pocketkube API server for end-to-end tests, driven by the real kubectl.

    cluster = Cluster(tmp_path, datastore="etcd")   # or "sqlite"
    cluster.start()                                   # returns once /readyz answers ok
    cluster.kubectl("get", "ns", "-o", "name").stdout
    v1 = kubernetes.client.CoreV1Api(cluster.api_client())
    cluster.restart()                                 # SIGTERM, then start on the same port
    cluster.close()                                   # stop the server (and its own etcd)

The server runs as `pocketkube server` in a subprocess, on a free loopback port, with its data
dir in a temp directory. kubectl runs with an isolated environment: KUBECONFIG is the cluster's
own kubeconfig, HOME is a per-cluster directory (the kubectl dispatcher caches the server's
/version under ~/.kube/cache/http) and `--cache-dir` is per cluster, so discovery cached for one
cluster is never used for another. With datastore "etcd" the cluster starts its own etcd
(tests/support/etcd.py) unless endpoints are given.
"""

from __future__ import annotations

import http.client
import logging
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.etcd import EtcdServer, start_etcd

log = logging.getLogger("pocketkube.tests.cluster")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
KUBECTL_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pocketkube_command() -> list[str]:
    script = Path(sys.executable).parent / "pocketkube"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "pocketkube.cli.main"]


class ClusterError(RuntimeError):
    pass


def unique_cluster_cidr() -> str:
    """A /16 pod range in 10.128–10.199 (clear of the service range 10.96.0.0/12) that no
    interface of this machine uses yet."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                          text=True, check=False).stdout
    for _ in range(200):
        candidate = f"10.{random.randint(128, 199)}."
        if f" {candidate}" not in used:
            return f"{candidate}0.0/16"
    raise ClusterError("no free 10.x.0.0/16 pod range on this machine")


class Cluster:
    """One pocketkube API server process plus everything a client needs to reach it."""

    def __init__(self, base_dir: Path, datastore: str = "sqlite",
                 etcd_endpoints: list[str] | None = None, kubectl: str = "kubectl",
                 extra_args: list[str] | None = None) -> None:
        if datastore not in ("sqlite", "etcd"):
            raise ValueError(f"datastore must be sqlite or etcd, not {datastore!r}")
        self.base_dir = Path(base_dir)
        self.datastore = datastore
        self.data_dir = self.base_dir / "data"
        self.home = self.base_dir / "home"
        self.cache_dir = self.base_dir / "kube-cache"
        self.log_path = self.base_dir / "server.log"
        self.port = free_port()
        self.kubectl_binary = kubectl
        self.extra_args = list(extra_args or [])  # more `pocketkube server` flags
        self._etcd_endpoints = etcd_endpoints
        self._etcd: EtcdServer | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._api_client: Any = None

    # --- paths and addresses -------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def datastore_flag(self) -> str:
        if self.datastore == "sqlite":
            return "sqlite"
        if self._etcd_endpoints is None:
            self._etcd = start_etcd(self.base_dir / "etcd")
            self._etcd_endpoints = self._etcd.endpoints
        return "etcd://" + ",".join(self._etcd_endpoints)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start `pocketkube server` and return once /readyz answers 200."""
        if self._proc is not None and self._proc.poll() is None:
            raise ClusterError("the server is already running")
        for d in (self.base_dir, self.home, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)
        # No real node unless a test asks for one (--node-agent): pods stay where tests put them.
        # A real node gets a pod range of its own, so it never meets another cluster's bridge.
        agent = ["--no-node-agent"]
        if self.node_agent:
            agent = [] if "--cluster-cidr" in self.extra_args else \
                ["--cluster-cidr", unique_cluster_cidr()]
            # Cluster DNS never forwards a test's lookups to this machine's real resolvers.
            if "--dns-upstream" not in self.extra_args:
                agent += ["--dns-upstream", "none"]
        args = [*_pocketkube_command(), "server", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--datastore", self.datastore_flag(), *agent,
                *self.extra_args]
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self._log_file.write(f"--- starting: {' '.join(args)}\n".encode())
        self._log_file.flush()
        env = {**os.environ, "HOME": str(self.home)}
        env.pop("KUBECONFIG", None)
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                      stderr=subprocess.STDOUT, env=env)
        self._wait_ready(timeout)
        self._api_client = None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ClusterError(f"pocketkube server exited with {self._proc.returncode}:\n"
                                   f"{self.log_tail()}")
            if (self.pki / "ca.crt").exists():
                try:
                    status, _, body = self.request("GET", "/readyz", auth=False, timeout=2)
                    if status == 200:
                        return
                    last = f"{status} {body[:300]!r}"
                except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                    last = repr(e)
            time.sleep(0.1)
        self.kill()
        raise ClusterError(f"pocketkube server not ready after {timeout}s ({last}):\n"
                           f"{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the server and wait for it; returns its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("server did not stop in %ss; killing it", timeout)
                proc.kill()
                proc.wait(timeout)
        self._after_exit()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the server: no graceful shutdown at all."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
        self._after_exit()

    def restart(self, hard: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL with `hard`) and start again on the same port and store."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    @property
    def node_agent(self) -> bool:
        return "--node-agent" in self.extra_args

    def close(self) -> None:
        """Stop the server and the etcd this cluster started; with a node agent, remove its
        containers, mounts and network too (as `pocketkube delete` does)."""
        try:
            self.stop()
            if self.node_agent and (self.data_dir / "agent").exists():
                subprocess.run([*_pocketkube_command(), "delete", "--data-dir",
                                str(self.data_dir)], check=False, capture_output=True,
                               stdin=subprocess.DEVNULL, env={**os.environ,
                                                              "HOME": str(self.home)})
        finally:
            if self._etcd is not None:
                self._etcd.stop()
                self._etcd = None

    def _after_exit(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- kubectl --------------------------------------------------------------------------------

    def kubectl_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update(HOME=str(self.home), KUBECONFIG=str(self.kubeconfig))
        return env

    def kubectl_args(self, *args: str) -> list[str]:
        return [self.kubectl_binary, f"--cache-dir={self.cache_dir}", *args]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = KUBECTL_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster. With `check`, a non-zero exit raises an
        AssertionError that shows the command, its output and the server log."""
        cmd = self.kubectl_args(*args)
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                              env=self.kubectl_env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n"
                f"server log (tail):\n{self.log_tail(8)}")
        return proc

    def kubectl_popen(self, *args: str) -> subprocess.Popen[str]:
        """Start a long-running kubectl (e.g. `get -w`); the caller kills it."""
        return subprocess.Popen(self.kubectl_args(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.kubectl_env(),
                                bufsize=1)

    # --- Python client and raw HTTP -----------------------------------------------------------

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient for this cluster (shared; rebuilt after a restart)."""
        if self._api_client is None:
            from kubernetes import config

            self._api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api_client

    def token_client(self, token: str) -> Any:
        """A kubernetes.client.ApiClient authenticating with a bearer token only."""
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.url
        conf.ssl_ca_cert = str(self.pki / "ca.crt")
        conf.api_key = {"authorization": token}
        conf.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(conf)

    def ssl_context(self, client_cert: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if client_cert:
            ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None, auth: bool = True,
                timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTPS request (admin client certificate unless `auth` is False); returns
        (status, headers with lower-case names, body)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=self.ssl_context(client_cert=auth))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            # Repeated headers (e.g. one Warning per problem) are joined with "\n".
            headers: dict[str, str] = {}
            for k, v in resp.getheaders():
                key = k.lower()
                headers[key] = f"{headers[key]}\n{v}" if key in headers else v
            return resp.status, headers, resp.read()
        finally:
            conn.close()
