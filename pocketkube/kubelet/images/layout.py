"""The OCI image layout under `<data-dir>/images/oci` and the store's plumbing around it.

    oci/        an OCI image layout (oci-layout, index.json, blobs/sha256/…): the images as
                registries ship them; `org.opencontainers.image.ref.name` in index.json holds
                the fully qualified name, so `skopeo copy oci:<root>/oci:<name> …` reads it too
    layers/<h>  each layer unpacked once (store.py), named by the hex of its diff id
    tmp/        staging for pulls, archives and unpacking, renamed into place when complete
    lock        flock(2) taken around every change, so `pocketkube image load` can add images
                while the node agent runs

Everything here blocks: callers run it in worker threads. index.json is replaced atomically,
so readers never take the lock; blobs never change once in place. Written by hand because the
layout is a handful of files and the store needs its own locking and staging around them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

REF_NAME = "org.opencontainers.image.ref.name"
BUILTIN = "io.pocketkube.image.builtin"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}

Progress = Callable[[str, int, int], None]


class StoreError(Exception):
    """The store's content is unusable (missing blob, diff id mismatch, corrupt layer)."""


def canonical_json(document: dict) -> bytes:
    """JSON with sorted keys and no spaces: the same document always has the same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def digest_bytes(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def hex_of(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise StoreError(f"unsupported digest {digest!r}")
    return value


def host_architecture() -> str:
    """The OCI name of this machine's architecture (amd64, arm64, …)."""
    machine = platform.machine()
    return _ARCHITECTURES.get(machine, machine)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OciLayout:
    """The files under `root`: layout, staging, lock; blobs by digest; the index."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = root / "oci"
        self.blobs = self.layout / "blobs" / "sha256"
        self.layers = root / "layers"
        self.tmp = root / "tmp"
        # (inode, mtime, size) of index.json and its manifests, as one value: threads share it.
        self._index: tuple[tuple[int, int, int], list[dict]] | None = None

    # --- setup, locking, staging ---------------------------------------------------------

    def setup(self) -> None:
        """Create the layout if missing and drop staging left by processes that died."""
        for path in (self.blobs, self.layers, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        layout_file = self.layout / "oci-layout"
        if not layout_file.exists():
            layout_file.write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (self.layout / "index.json").exists():
            self._write_index([])
        for entry in self.tmp.iterdir():
            pid = entry.name.partition("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                remove_tree(entry)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def staging(self, prefix: str) -> Path:
        """A new directory under tmp/ (same filesystem: its files can be renamed into place)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{prefix}-", dir=self.tmp))

    # --- blobs ---------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs / hex_of(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None

    def put_bytes(self, data: bytes) -> str:
        digest = digest_bytes(data)
        if not self.has_blob(digest):
            staging = self.staging("blob")
            (staging / "data").write_bytes(data)
            self.adopt(staging / "data", digest)
            remove_tree(staging)
        return digest

    def put_stream(self, source: BinaryIO, on_bytes: Callable[[int], None] | None = None) -> str:
        """Copy `source` into a blob, hashing as it goes; returns its digest."""
        staging = self.staging("blob")
        hasher = hashlib.sha256()
        try:
            with open(staging / "data", "wb") as out:
                while chunk := source.read(1 << 20):
                    hasher.update(chunk)
                    out.write(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
            digest = f"sha256:{hasher.hexdigest()}"
            self.adopt(staging / "data", digest)
        finally:
            remove_tree(staging)
        return digest

    def adopt(self, path: Path, digest: str) -> None:
        """Move the staged file `path` (whose content is `digest`) into the blobs."""
        target = self.blob_path(digest)
        if target.exists():
            path.unlink()
        else:
            os.chmod(path, 0o644)
            os.replace(path, target)

    # --- the index -----------------------------------------------------------------------

    def index(self) -> list[dict]:
        """The manifests of index.json (re-read only when the file was replaced)."""
        path = self.layout / "index.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._index
        if cached is not None and cached[0] == key:
            return cached[1]
        manifests = json.loads(path.read_bytes()).get("manifests") or []
        self._index = (key, manifests)
        return manifests

    def _write_index(self, manifests: list[dict]) -> None:
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        path = self.layout / "index.json"
        staged = path.with_name(f".index.json.{os.getpid()}")
        with open(staged, "w") as out:
            json.dump(body, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, path)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
