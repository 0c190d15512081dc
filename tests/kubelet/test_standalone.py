"""`pocketkube agent` with no API server (kubelet's standalone mode): the static pods of the
manifest directory run as real containers, their output lands in the CRI log files, and
`pocketkube delete` stops them and removes the network."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pocketkube.kubelet.agent import bridge_name
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("require_root")
MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: lonely
spec:
  containers:
  - name: talk
    image: busybox
    command: ["sh", "-c", "echo standalone-$((6*7)); sleep 3600"]
"""


def pocketkube(*args: str) -> list[str]:
    return [sys.executable, "-m", "pocketkube.cli.main", *args]


def has_link(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def test_static_pods_run_without_a_server(tmp_path: Path) -> None:
    data, manifests = tmp_path / "data", tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "lonely.yaml").write_text(MANIFEST)
    bridge = bridge_name(data / "agent")
    agent = subprocess.Popen(pocketkube("agent", "--data-dir", str(data), "--pod-manifest-path",
                                        str(manifests)), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        logs = data / "agent" / "logs" / "pods"
        line = eventually(lambda: next((p.read_text() for p in logs.glob("*/talk/0.log")
                                        if "standalone-42" in p.read_text()), None), 60)
        assert " stdout F standalone-42" in line
        assert next(logs.iterdir()).name.startswith("default_lonely-")
        assert has_link(bridge)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
        subprocess.run(pocketkube("delete", "--data-dir", str(data)), capture_output=True)
    assert not data.exists()
    assert not has_link(bridge)
    assert "standalone-$((6*7))" not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                       text=True).stdout
