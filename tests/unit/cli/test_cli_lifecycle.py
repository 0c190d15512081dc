"""start → status → version → stop → delete with real processes.

`start` launches a real `pocketkube server` process in the background; its control plane is the
fake in fake_apiserver.py (same `serve(config, ready)` contract as the real one), served over
TLS with the generated certificates and client certificates required.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pocketkube.cli.apiclient import ApiClient
from pocketkube.cli.instance import Instance, is_pocketkube_process
from pocketkube.pki import PkiPaths

FAKE = Path(__file__).with_name("fake_apiserver.py")


def _app(name: str = "serve") -> str:
    return f"{FAKE}:{name}"


def _contexts(kubeconfig: Path) -> dict[str, str]:
    doc = yaml.safe_load(kubeconfig.read_text())
    return {c["name"]: c["cluster"]["server"] for c in doc["clusters"]}


def test_start_status_stop_delete(isolated: Path, tmp_path: Path, cli, free_port) -> None:
    data_dir, port = tmp_path / "c1", free_port()
    isolated.parent.mkdir(parents=True)
    isolated.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}}],
                "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "current-context": "prod",
            }
        )
    )
    started = cli("start", "--data-dir", str(data_dir), "--port", str(port), "--app", _app())
    assert started.code == 0, started.err
    url = f"https://127.0.0.1:{port}"
    assert f"pocketkube is running at {url}" in started.out
    assert "kubectl get ns" in started.out and "pocketkube stop" in started.out
    for step in ("Generating certificates", "Starting the control plane", "Waiting for the API"):
        assert f"✓ {step}" in started.out

    instance = Instance(data_dir)
    pid = instance.running_pid()
    assert pid is not None and pid != os.getpid()
    assert json.loads(instance.config_path.read_text())["port"] == port
    assert (data_dir / "kubeconfig").exists()
    doc = yaml.safe_load(isolated.read_text())
    assert doc["current-context"] == instance.name
    assert _contexts(isolated) == {"prod": "https://prod:6443", instance.name: url}

    # The server verifies the admin client certificate, the client verifies the server's.
    client = ApiClient(url, PkiPaths.under(data_dir / "pki"))
    assert client.get("/readyz")[0] == 200

    kubectl = subprocess.run(
        ["kubectl", "get", "--raw", "/version"], capture_output=True, text=True, check=True
    )
    assert json.loads(kubectl.stdout)["gitVersion"] == "v1.32.4"

    status = cli("status", "--data-dir", str(data_dir))
    assert status.code == 0
    assert f"Running (pid {pid})" in status.out and url in status.out
    assert "Health:      ready" in status.out
    for component in ("ping", "etcd", "scheduler", "controller-manager", "etcd-0"):
        assert component in status.out
    assert "failing" not in status.out

    version = cli("version", "--data-dir", str(data_dir))
    assert version.code == 0
    assert "Client Version: 0.1.0" in version.out and "Server Version: v1.32.4" in version.out

    again = cli("start", "--data-dir", str(data_dir))
    assert again.code == 0 and f"already running for {data_dir.resolve()} (pid {pid})" in again.out

    stopped = cli("stop", "--data-dir", str(data_dir))
    assert stopped.code == 0 and "pocketkube stopped" in stopped.out
    assert not is_pocketkube_process(pid)
    assert not instance.pid_path.exists()
    log = instance.log_path.read_text()
    assert "received SIGTERM, shutting down" in log and "fake API server stopped" in log

    after = cli("status", "--data-dir", str(data_dir))
    assert after.code == 1 and "Stopped" in after.out
    assert "Server Version: (not running)" in cli("version", "--data-dir", str(data_dir)).out

    deleted = cli("delete", "--data-dir", str(data_dir))
    assert deleted.code == 0
    assert not data_dir.exists()
    assert _contexts(isolated) == {"prod": "https://prod:6443"}
    assert cli("status", "--data-dir", str(data_dir)).code == 1


def test_two_clusters_side_by_side(isolated: Path, tmp_path: Path, cli, free_port) -> None:
    dirs, ports = [tmp_path / "a", tmp_path / "b"], [free_port(), free_port()]
    for data_dir, port in zip(dirs, ports, strict=True):
        result = cli("start", "--data-dir", str(data_dir), "--port", str(port), "--app", _app())
        assert result.code == 0, result.err
    a, b = Instance(dirs[0]), Instance(dirs[1])
    assert a.name != b.name
    assert _contexts(isolated) == {
        a.name: f"https://127.0.0.1:{ports[0]}",
        b.name: f"https://127.0.0.1:{ports[1]}",
    }
    assert yaml.safe_load(isolated.read_text())["current-context"] == b.name

    assert cli("stop", "--data-dir", str(dirs[0])).code == 0
    assert a.running_pid() is None and b.running_pid() is not None
    status = cli("status", "--data-dir", str(dirs[1]))
    assert status.code == 0 and f"127.0.0.1:{ports[1]}" in status.out
    assert cli("delete", "--data-dir", str(dirs[1])).code == 0
    assert cli("delete", "--data-dir", str(dirs[0])).code == 0
    assert not isolated.exists() or _contexts(isolated) == {}


def test_default_data_dir_uses_plain_context_name(isolated: Path, cli, free_port) -> None:
    result = cli("start", "--port", str(free_port()), "--app", _app())
    assert result.code == 0, result.err
    assert "pocketkube stop\n" in result.out  # no --data-dir needed for the default
    assert yaml.safe_load(isolated.read_text())["current-context"] == "pocketkube"
    assert cli("delete").code == 0
    assert not (isolated.parent.parent / ".pocketkube").exists()


def test_failed_start_shows_the_log(isolated: Path, tmp_path: Path, cli, free_port) -> None:
    data_dir = tmp_path / "broken"
    result = cli(
        "start", "--data-dir", str(data_dir), "--port", str(free_port()), "--app",
        _app("serve_failing"),
    )  # fmt: skip
    assert result.code == 1
    assert "✗ Waiting for the API server" in result.out
    assert "the server exited with code 1" in result.err
    assert "RuntimeError: datastore unreachable" in result.err
    assert not Instance(data_dir).pid_path.exists()
    assert not isolated.exists()  # the user's kubeconfig is left alone


def test_start_times_out_when_never_ready(tmp_path: Path, isolated: Path, cli, free_port) -> None:
    data_dir = tmp_path / "slow"
    result = cli(
        "start", "--data-dir", str(data_dir), "--port", str(free_port()),
        "--app", _app("serve_unready"), "--wait-timeout", "1",
    )  # fmt: skip
    assert result.code == 1
    assert "was not ready after 1s" in result.err and "/readyz answered 500" in result.err
    assert Instance(data_dir).running_pid() is None


def test_start_refuses_a_port_in_use(tmp_path: Path, isolated: Path, cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("start", "--data-dir", str(tmp_path / "c"), "--port", str(port))
    assert result.code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.err


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path, isolated: Path, cli, free_port):
    data_dir = tmp_path / "stubborn"
    started = cli(
        "start", "--data-dir", str(data_dir), "--port", str(free_port()), "--app",
        _app("serve_stubborn"),
    )  # fmt: skip
    assert started.code == 0, started.err
    pid = Instance(data_dir).running_pid()
    assert pid is not None
    stopped = cli("stop", "--data-dir", str(data_dir), "--timeout", "1")
    assert stopped.code == 0 and "was killed" in stopped.out
    assert not is_pocketkube_process(pid)
    assert cli("delete", "--data-dir", str(data_dir)).code == 0


def test_stop_when_not_running_and_stale_pid(tmp_path: Path, isolated: Path, cli) -> None:
    instance = Instance(tmp_path / "c")
    instance.mark()
    instance.write_pid(os.getpid())  # alive, but not a pocketkube server
    result = cli("stop", "--data-dir", str(instance.data_dir))
    assert result.code == 0 and "not running" in result.out
    assert not instance.pid_path.exists()


def test_delete_refuses_a_directory_pocketkube_did_not_create(
    tmp_path: Path, isolated: Path, cli
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = cli("delete", "--data-dir", str(tmp_path / "mine"))
    assert result.code == 1 and "not created by pocketkube" in result.err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _server(data_dir: Path, port: int, app: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "pocketkube.cli.main", "server", "--data-dir", str(data_dir),
            "--port", str(port), "--app", app,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _read_until(proc: subprocess.Popen[str], marker: str) -> str:
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"server exited before {marker!r}:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_foreground_server_stops_gracefully(
    tmp_path: Path, isolated: Path, cli, free_port, sig: signal.Signals
) -> None:
    data_dir, port = tmp_path / "fg", free_port()
    proc = _server(data_dir, port, _app())
    try:
        _read_until(proc, "API server ready at")
        assert Instance(data_dir).read_pid() == proc.pid
        assert cli("status", "--data-dir", str(data_dir)).code == 0
        proc.send_signal(sig)
        rest = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert f"received {sig.name}, shutting down" in rest
    assert not Instance(data_dir).pid_path.exists()
    assert (data_dir / "kubeconfig").exists()


def test_status_reports_failing_checks(tmp_path: Path, isolated: Path, cli, free_port) -> None:
    data_dir = tmp_path / "unready"
    proc = _server(data_dir, free_port(), _app("serve_unready"))
    try:
        _read_until(proc, "fake API server listening")
        status = cli("status", "--data-dir", str(data_dir))
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert status.code == 2
    assert "not ready (HTTP 500)" in status.out
    assert re.search(r"^etcd\s+failing\s+failed: reason withheld", status.out, re.MULTILINE)
    assert re.search(r"^ping\s+ok\s", status.out, re.MULTILINE)


def test_server_refuses_a_second_instance(tmp_path: Path, isolated: Path, free_port) -> None:
    data_dir = tmp_path / "one"
    first = _server(data_dir, free_port(), _app())
    try:
        _read_until(first, "API server ready at")
        second = _server(data_dir, free_port(), _app())
        err = second.communicate(timeout=30)[1]
        assert second.returncode == 1
        assert f"already running for {data_dir} (pid {first.pid})" in err
    finally:
        first.terminate()
        first.communicate(timeout=30)


def test_server_without_control_plane(tmp_path: Path, isolated: Path, free_port) -> None:
    proc = _server(tmp_path / "none", free_port(), "pocketkube.no_such_module:serve")
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 1
    assert "pocketkube.no_such_module is not available" in err
