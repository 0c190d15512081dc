"""Bringing images into the store from files: `docker save` tarballs (docker-archive), OCI
layout tarballs (oci-archive, e.g. `skopeo copy … oci-archive:x.tar`, `ctr export`), either one
gzip-compressed as a whole, and the `dir:` layout skopeo writes when it pulls.

The archives are read here rather than through `skopeo copy docker-archive:…`: skopeo copies
one image per invocation, re-reading the whole tarball each time, reports no progress a
program can use, and rewrites manifests; reading the tar directly copies every blob once with
byte-level progress and keeps the archive's own manifests and digests. Both formats are small
JSON documents pointing at tar members, which tarfile gives random access to.
"""

from __future__ import annotations

import gzip
import json
import logging
import posixpath
import shutil
import tarfile
from pathlib import Path

from pocketkube.kubelet.images import reference
from pocketkube.kubelet.images.layers import compression
from pocketkube.kubelet.images.layout import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    REF_NAME,
    Progress,
    StoreError,
    canonical_json,
    host_architecture,
)
from pocketkube.kubelet.images.store import ImageStore
from pocketkube.kubelet.runtime.interface import Image

log = logging.getLogger("pocketkube.kubelet.images")

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONTAINERD_NAME = "io.containerd.image.name"
_LIST_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)


class ArchiveError(Exception):
    """The file is not an image archive this store can read; the message says why."""


def load_archive(store: ImageStore, path: Path, progress: Progress | None = None) -> list[Image]:
    """Store every image of the docker-archive or oci-archive at `path`. With the lock held."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    staging = store.staging("load")
    label = path.name
    try:
        if compression(head) == "gzip":
            plain = staging / "archive.tar"
            with gzip.open(path, "rb") as src, open(plain, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            path = plain
        with tarfile.open(path, "r:") as tar:
            return _Loader(store, tar, label, progress).run()
    except (tarfile.TarError, EOFError, gzip.BadGzipFile) as err:
        raise ArchiveError(f"{label}: not a readable tar archive: {err}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ArchiveError(f"{label}: malformed image metadata: {err!r}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Loader:
    def __init__(self, store: ImageStore, tar: tarfile.TarFile, label: str,
                 progress: Progress | None) -> None:  # fmt: skip
        self.store = store
        self.tar = tar
        self.label = label
        self.progress = progress
        self.members: dict[str, tarfile.TarInfo] = {}
        links: dict[str, str] = {}
        for member in tar.getmembers():
            name = _clean(member.name)
            if member.isreg():
                self.members[name] = member
            elif member.issym():  # skopeo's docker-archives link <id>/layer.tar to the blob
                links[name] = _clean(posixpath.join(posixpath.dirname(name), member.linkname))
        for name, target in links.items():
            for _ in range(8):
                target = links.get(target, target)
            if target in self.members:
                self.members.setdefault(name, self.members[target])
        self.total = sum(m.size for m in set(self.members.values()))
        self.done = 0
        self.copied: dict[str, str] = {}  # member name → blob digest

    def run(self) -> list[Image]:
        if "manifest.json" in self.members:
            images = self.docker()
        elif "index.json" in self.members:
            images = self.oci()
        else:
            raise ArchiveError(
                f"{self.label}: neither a docker-archive (docker save) nor an oci-archive"
            )
        self.done = self.total
        self.report()
        return images

    def report(self) -> None:
        if self.progress:
            self.progress(f"loading {self.label}", self.done, self.total)

    def read(self, name: str) -> bytes:
        member = self.members.get(name)
        if member is None:
            raise ArchiveError(f"{self.label}: {name} is missing from the archive")
        source = self.tar.extractfile(member)
        assert source is not None  # regular member
        self.done += member.size
        return source.read()

    def copy(self, name: str) -> str:
        """Copy member `name` into a blob (once per archive); its digest."""
        if name in self.copied:
            return self.copied[name]
        member = self.members.get(name)
        if member is None:
            raise ArchiveError(f"{self.label}: {name} is missing from the archive")
        source = self.tar.extractfile(member)
        assert source is not None

        def advance(n: int) -> None:
            self.done += n
            self.report()

        digest = self.store.put_stream(source, advance)
        self.copied[name] = digest
        return digest

    # --- docker save ---------------------------------------------------------------------

    def docker(self) -> list[Image]:
        images = []
        for item in json.loads(self.read("manifest.json")):
            config = self.read(item["Config"])
            config_digest = self.store.put_bytes(config)
            layers = []
            for name in item.get("Layers") or []:
                digest = self.copy(name)
                with open(self.store.blob_path(digest), "rb") as blob:
                    kind = compression(blob.read(4))
                media_type = f"{OCI_LAYER}+{kind}" if kind else OCI_LAYER
                size = self.store.blob_path(digest).stat().st_size
                layers.append({"mediaType": media_type, "digest": digest, "size": size})
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": layers,
            }
            refs = _names(item.get("RepoTags") or [], self.label)
            manifest_bytes = canonical_json(manifest)
            images.append(
                self.store.add(manifest_bytes, OCI_MANIFEST, refs, progress=self.progress)
            )
        return images

    # --- OCI layout ----------------------------------------------------------------------

    def blob_name(self, digest: str) -> str:
        algorithm, _, value = digest.partition(":")
        return f"blobs/{algorithm}/{value}"

    def blob(self, digest: str) -> bytes:
        data = self.read(self.blob_name(digest))
        if self.store.put_bytes(data) != digest:
            raise ArchiveError(f"{self.label}: blob {digest} does not match its digest")
        return data

    def oci(self) -> list[Image]:
        index = json.loads(self.read("index.json"))
        wanted: dict[str, tuple[str, list[str]]] = {}  # manifest digest → (media type, names)
        for desc in index.get("manifests") or []:
            manifest_desc = self.platform_manifest(desc)
            media_type = manifest_desc.get("mediaType") or OCI_MANIFEST
            names = wanted.setdefault(manifest_desc["digest"], (media_type, []))[1]
            names.extend(n for n in _names(_oci_names(desc), self.label) if n not in names)
        images = []
        for digest, (media_type, names) in wanted.items():
            raw = self.blob(digest)
            manifest = json.loads(raw)
            self.blob(manifest["config"]["digest"])
            for layer in manifest.get("layers") or []:
                if self.copy(self.blob_name(layer["digest"])) != layer["digest"]:
                    raise ArchiveError(f"{self.label}: layer {layer['digest']} is corrupt")
            images.append(self.store.add(raw, media_type, names, progress=self.progress))
        return images

    def platform_manifest(self, desc: dict) -> dict:
        """`desc` itself, or for an image index the manifest for this machine's platform."""
        while desc.get("mediaType") in _LIST_TYPES:
            entries = json.loads(self.blob(desc["digest"])).get("manifests") or []
            desc = _choose_platform(entries, f"{self.label}: {desc['digest']}")
        return desc


def _clean(name: str) -> str:
    return "/".join(p for p in posixpath.normpath(name).split("/") if p not in ("", "."))


def _choose_platform(entries: list[dict], what: str) -> dict:
    arch = host_architecture()
    for entry in entries:
        platform = entry.get("platform") or {}
        if platform.get("os", "linux") == "linux" and platform.get("architecture") == arch:
            return entry
    raise ArchiveError(f"{what}: no image for linux/{arch}")


def _oci_names(desc: dict) -> list[str]:
    annotations = desc.get("annotations") or {}
    if CONTAINERD_NAME in annotations:
        return [annotations[CONTAINERD_NAME]]
    name = annotations.get(REF_NAME, "")
    # A bare tag ("latest", as `skopeo copy … oci-archive:x.tar:latest` writes) names no
    # repository: such an image is stored untagged, reachable by its id.
    return [name] if any(c in name for c in "/:@") else []


def _names(names: list[str], label: str) -> list[str]:
    out = []
    for name in names:
        try:
            out.append(reference.normalize(name))
        except reference.ImageError:
            log.warning("%s: image name %r ignored: not a valid reference", label, name)
    return out


def import_dir(store: ImageStore, directory: Path, refs: list[str]) -> Image:
    """Store the image skopeo wrote with `copy … dir:DIRECTORY` (manifest.json and blobs named
    by their hex digest, which skopeo verified) under `refs`. With the lock held."""
    raw = (directory / "manifest.json").read_bytes()
    manifest = json.loads(raw)
    if manifest.get("schemaVersion") != 2 or "config" not in manifest:
        raise StoreError("schema 1 image manifests are not supported")
    for desc in [manifest["config"], *(manifest.get("layers") or [])]:
        hexdigest = desc["digest"].partition(":")[2]
        if not store.has_blob(desc["digest"]):
            store.adopt(directory / hexdigest, desc["digest"])
    return store.add(raw, manifest.get("mediaType") or OCI_MANIFEST, refs)
