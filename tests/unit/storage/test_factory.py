"""Choosing the backend from the datastore setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketkube.storage.etcd import EtcdBackend
from pocketkube.storage.factory import create_backend
from pocketkube.storage.sqlite import SQLiteBackend


def test_sqlite_lives_under_the_data_dir(tmp_path: Path) -> None:
    backend = create_backend("sqlite", tmp_path)
    assert isinstance(backend, SQLiteBackend)
    assert backend.path == tmp_path / "db" / "state.db"
    assert backend.path.parent.is_dir()


def test_etcd_endpoints_are_split(tmp_path: Path) -> None:
    backend = create_backend("etcd://10.0.0.1:2379,10.0.0.2:2379", tmp_path)
    assert isinstance(backend, EtcdBackend)
    assert backend.endpoints == ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]


@pytest.mark.parametrize("datastore", ["postgres://db", "etcd://", "etcd://host", "etcd://h:x",
                                       "", "SQLite"])
def test_anything_else_is_refused(tmp_path: Path, datastore: str) -> None:
    with pytest.raises(ValueError, match="unsupported datastore|invalid etcd endpoint"):
        create_backend(datastore, tmp_path)
