"""etcd-specific behaviour: endpoint failover, and the test helper's loud failure."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pocketkube.storage.etcd import EtcdBackend
from pocketkube.storage.interface import StorageError
from tests.support import etcd as etcd_support
from tests.support.etcd import etcd_endpoints  # noqa: F401  (module-scoped fixture)


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket closes


async def test_requests_fail_over_to_a_reachable_endpoint(etcd_endpoints: list[str]) -> None:  # noqa: F811
    backend = EtcdBackend([_closed_port(), *etcd_endpoints])
    await backend.start()
    try:
        rev = await backend.create("/failover/a", b"1")
        kv = await backend.get("/failover/a")
        assert kv is not None and kv.mod_revision == rev
    finally:
        await backend.close()


async def test_no_reachable_endpoint_is_a_storage_error() -> None:
    backend = EtcdBackend([_closed_port(), _closed_port()])
    with pytest.raises(StorageError, match="no etcd endpoint reachable"):
        await backend.start()
    await backend.close()


def test_missing_etcd_binary_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_support.shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="apt-get install -y etcd-server"):
        etcd_support.start_etcd(tmp_path)
