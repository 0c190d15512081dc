"""Pick the storage backend from the `--datastore` setting: "sqlite" (the embedded default,
one file under the data directory) or "etcd://host:port[,host:port...]" (a real etcd cluster)."""

from __future__ import annotations

from pathlib import Path

from pocketkube.storage.etcd import EtcdBackend
from pocketkube.storage.interface import Backend
from pocketkube.storage.sqlite import SQLiteBackend

_USAGE = 'expected "sqlite" or "etcd://host:port[,host:port...]"'


def create_backend(datastore: str, data_dir: Path) -> Backend:
    """The (not yet started) backend that `datastore` names."""
    if datastore == "sqlite":
        path = Path(data_dir) / "db" / "state.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteBackend(path)
    if datastore.startswith("etcd://"):
        endpoints = [_endpoint(part, datastore) for part in datastore[len("etcd://"):].split(",")]
        return EtcdBackend(endpoints)
    raise ValueError(f"unsupported datastore {datastore!r}: {_USAGE}")


def _endpoint(part: str, datastore: str) -> str:
    hostport = part.strip().removeprefix("etcd://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid etcd endpoint {part.strip()!r} in datastore {datastore!r}: "
                         f"{_USAGE}")
    return hostport
