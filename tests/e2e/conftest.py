"""Fixtures for the end-to-end suite: one real pocketkube server per datastore for the whole
session, and a fresh namespace per test so tests never see each other's objects.

Every test that uses `cluster` (directly or through `ns`/`k`) runs once on SQLite and once on
etcd; pytest orders the session so each server is started only once.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.node import require_root  # noqa: F401 - the node tests' fixture

DATASTORES = ("sqlite", "etcd")
_counter = itertools.count()


@pytest.fixture(scope="session", params=DATASTORES)
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp(f"cluster-{request.param}"), datastore=request.param)
    c.start()
    try:
        yield c
    finally:
        c.close()


class Kubectl:
    """kubectl bound to one cluster and one namespace: `k("get", "pods")` runs
    `kubectl -n <ns> get pods`. `k.apply(doc)` pipes a manifest (dict, list or YAML text)."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.ns = namespace

    def __call__(self, *args: str, input: str | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.ns, *args, input=input, check=check)

    def fails(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command that must fail; returns it for the caller to check stderr."""
        proc = self(*args, input=input, check=False)
        assert proc.returncode != 0, f"kubectl {' '.join(args)} succeeded:\n{proc.stdout}"
        return proc

    def apply(self, manifest: object, *args: str,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", *args, input=to_yaml(manifest), check=check)

    def create(self, manifest: object, *args: str,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("create", "-f", "-", *args, input=to_yaml(manifest), check=check)

    def json(self, *args: str) -> dict:
        """`kubectl get ARGS -o json --show-managed-fields`, decoded."""
        return json.loads(self("get", *args, "-o", "json", "--show-managed-fields").stdout)


def to_yaml(manifest: object) -> str:
    """Manifest text for kubectl. Dicts become JSON (valid YAML without YAML 1.1 surprises such
    as an unquoted `Y` read as a boolean); a list becomes a multi-document stream."""
    if isinstance(manifest, str):
        return manifest
    if isinstance(manifest, list):
        return "".join(json.dumps(m) + "\n" for m in manifest)
    return json.dumps(manifest) + "\n"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{os.getpid() % 10000}-{next(_counter)}"


@pytest.fixture
def ns(cluster: Cluster) -> str:
    """A new namespace for this test."""
    name = unique_name("e2e")
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def k(cluster: Cluster, ns: str) -> Kubectl:
    return Kubectl(cluster, ns)


@pytest.fixture
def manifest_file(tmp_path: Path):
    """Write a manifest to a file (for the error messages that name the file)."""

    def write(name: str, manifest: object) -> Path:
        path = tmp_path / name
        path.write_text(to_yaml(manifest))
        return path

    return write
