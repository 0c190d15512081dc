"""Test clusters with a real node (`pocketkube server --node-agent`): the root check the node
tests share, and a cluster whose node is Ready and has its pod range before a test runs."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.waiting import eventually

Obj = dict[str, Any]
TOOLS = ("runc", "conmon", "ip", "iptables")


def root_problem() -> str:
    """Why real containers cannot run here ("" when they can)."""
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if os.geteuid() != 0:
        return "these tests need root"
    if missing:
        return f"these tests need {', '.join(missing)} (make test installs them)"
    return ""


def check_root() -> None:
    """Fail the test when real containers cannot run here: pocketkube's test machines are
    root with runc, so a missing piece is an error, never a reason to skip."""
    problem = root_problem()
    if problem:
        pytest.fail(problem)


@pytest.fixture(scope="module")
def require_root() -> None:
    """runc, conmon and the pod network need root; with CI set, a missing piece fails."""
    check_root()


def ready_node(cluster: Cluster) -> Obj | None:
    """The node once its Ready condition is True and it has a pod range."""
    proc = cluster.kubectl("get", "nodes", "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    for node in json.loads(proc.stdout)["items"]:
        conds = node.get("status", {}).get("conditions") or []
        if node["spec"].get("podCIDR") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in conds):
            return node
    return None


@contextmanager
def node_cluster(base: Path, *extra_args: str) -> Iterator[Cluster]:
    """A started cluster with this machine as its node, deleted (containers too) afterwards."""
    c = Cluster(base, extra_args=["--node-agent", *extra_args])
    c.start()
    try:
        eventually(lambda: ready_node(c), timeout=60)
        yield c
    finally:
        c.close()
