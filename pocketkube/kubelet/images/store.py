"""The node's image store under `<data-dir>/images`: images as index entries of the OCI layout
(layout.py), and each layer unpacked once into `layers/<hex of its diff id>`, ready to be an
overlayfs lowerdir (layers.py turns OCI whiteouts into overlayfs ones).

Everything here blocks: callers run it in worker threads; changes happen with the layout's
lock held. Names follow docker's rules: a name moved to another image leaves the old one
untagged (dangling) rather than deleting layers a running container may be using.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from pocketkube.kubelet.images import reference
from pocketkube.kubelet.images.layers import unpack_layer
from pocketkube.kubelet.images.layout import (
    BUILTIN,
    REF_NAME,
    OciLayout,
    Progress,
    StoreError,
    hex_of,
    remove_tree,
)
from pocketkube.kubelet.runtime.interface import Image

log = logging.getLogger("pocketkube.kubelet.images")


@dataclass
class _Entry:
    """What the store needs to know about one manifest (immutable: cached by digest)."""

    config_digest: str
    diff_ids: list[str]
    layer_digests: list[str]
    config: dict
    size: int


class ImageStore(OciLayout):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._entries: dict[str, _Entry] = {}

    def entry(self, manifest_digest: str) -> _Entry:
        cached = self._entries.get(manifest_digest)
        if cached is not None:
            return cached
        raw = self.read_blob(manifest_digest)
        manifest = json.loads(raw)
        config_desc = manifest.get("config") or {}
        config_digest = config_desc.get("digest", "")
        config = json.loads(self.read_blob(config_digest))
        layers = manifest.get("layers") or []
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers):
            raise StoreError(
                f"image {config_digest}: {len(layers)} layers, {len(diff_ids)} diff ids"
            )
        size = len(raw) + int(config_desc.get("size", 0)) + sum(int(d["size"]) for d in layers)
        entry = _Entry(
            config_digest, diff_ids, [d["digest"] for d in layers], config.get("config") or {}, size
        )
        self._entries[manifest_digest] = entry
        return entry

    # --- images --------------------------------------------------------------------------

    def layer_dir(self, diff_id: str) -> Path:
        return self.layers / hex_of(diff_id)

    def add(
        self,
        manifest: bytes,
        media_type: str,
        refs: list[str],
        *,
        builtin: bool = False,
        progress: Progress | None = None,
    ) -> Image:
        """Record the image whose manifest is `manifest` (its config and layer blobs already
        stored) under the normalized names `refs`, unpacking layers not unpacked yet. Names
        move from the image they named before; that image stays, untagged (docker's dangling
        images), because containers may still run on its layers. Call with the lock held."""
        digest = self.put_bytes(manifest)
        entry = self.entry(digest)
        for blob in entry.layer_digests:
            if not self.has_blob(blob):
                raise StoreError(f"layer {blob} is missing from the store")
        label = refs[0] if refs else entry.config_digest[:19]
        for done, (blob, diff_id) in enumerate(
            zip(entry.layer_digests, entry.diff_ids, strict=True)
        ):
            if progress:
                progress(f"unpacking {label}", done, len(entry.diff_ids))
            self.unpack(blob, diff_id)
        if progress:
            progress(f"unpacking {label}", len(entry.diff_ids), len(entry.diff_ids))
        # Drop the entries of the names being (re)assigned, and an untagged entry of this
        # very manifest when it gets names now.
        manifests = [
            m
            for m in self.index()
            if (m.get("annotations") or {}).get(REF_NAME) not in refs
            and not (
                refs and m["digest"] == digest and REF_NAME not in (m.get("annotations") or {})
            )
        ]
        annotations = {BUILTIN: "true"} if builtin else {}
        added = [
            {"mediaType": media_type, "digest": digest, "size": len(manifest),
             "annotations": {REF_NAME: ref, **annotations}}
            for ref in refs
        ]  # fmt: skip
        kept = {m["digest"] for m in manifests} | ({digest} if refs else set())
        for old in self.index():
            if old["digest"] not in kept:  # it lost its last name: keep it, untagged
                manifests.append({k: v for k, v in old.items() if k != "annotations"})
                kept.add(old["digest"])
        if not refs and digest not in kept:
            added.append({"mediaType": media_type, "digest": digest, "size": len(manifest)})
        self._write_index(manifests + added)
        return self._image(digest)

    def unpack(self, blob: str, diff_id: str) -> None:
        target = self.layer_dir(diff_id)
        if target.exists():
            return
        staging = self.staging("layer")
        try:
            got = unpack_layer(self.blob_path(blob), staging / "root")
            if got != diff_id:
                raise StoreError(f"layer {blob}: diff id is {got}, the image config says {diff_id}")
            os.replace(staging / "root", target)
        finally:
            remove_tree(staging)

    def _image(self, manifest_digest: str) -> Image:
        return next(i for i in self.images() if i.id == self.entry(manifest_digest).config_digest)

    def images(self) -> list[Image]:
        """Every image, one per config digest (its names gathered from all index entries)."""
        by_id: dict[str, Image] = {}
        for desc in self.index():
            try:
                entry = self.entry(desc["digest"])
            except (StoreError, ValueError, KeyError) as err:
                log.debug("index entry %s skipped: %s", desc.get("digest"), err)
                continue
            image = by_id.get(entry.config_digest)
            if image is None:
                image = by_id[entry.config_digest] = Image(
                    id=entry.config_digest,
                    repo_tags=[],
                    repo_digests=[],
                    layers=self._layer_dirs(entry.diff_ids),
                    config=entry.config,
                    size=entry.size,
                )
            name = (desc.get("annotations") or {}).get(REF_NAME)
            if not name:
                continue
            try:
                parsed = reference.parse(name)
            except ValueError:
                continue
            if not parsed.digest and name not in image.repo_tags:
                image.repo_tags.append(name)
            repo_digest = f"{parsed.repository}@{desc['digest']}"
            if repo_digest not in image.repo_digests:
                image.repo_digests.append(repo_digest)
        return list(by_id.values())

    def _layer_dirs(self, diff_ids: list[str]) -> list[Path]:
        # A layer repeated in one image (empty layers often are) is stacked once, at its
        # highest position: overlayfs refuses the same lowerdir twice, and the result is equal.
        seen: set[str] = set()
        dirs: list[Path] = []
        for diff_id in reversed(diff_ids):
            if diff_id not in seen:
                seen.add(diff_id)
                dirs.append(self.layer_dir(diff_id))
        return dirs[::-1]

    def is_builtin(self, ref: str) -> bool:
        return any(
            (m.get("annotations") or {}).get(REF_NAME) == ref
            and (m.get("annotations") or {}).get(BUILTIN) == "true"
            for m in self.index()
        )

    def find(self, ref_or_id: str) -> Image | None:
        """The image named `ref_or_id` (any spelling of a name, a name@digest, an image id or
        a unique prefix of one, as crictl accepts them)."""
        images = self.images()
        try:
            parsed = reference.parse(ref_or_id)
        except ValueError:
            parsed = None
        if parsed is not None:
            name = str(parsed)
            for image in images:
                if name in image.repo_tags or name in image.repo_digests:
                    return image
        prefix = ref_or_id.removeprefix("sha256:")
        if prefix and all(c in "0123456789abcdef" for c in prefix):
            matches = [i for i in images if i.id.removeprefix("sha256:").startswith(prefix)]
            if len(matches) == 1:
                return matches[0]
        return None

    def remove(self, ref_or_id: str) -> list[str]:
        """Untag a name, deleting the image with its last name; an id deletes the image with
        all its names. Returns what was removed (names, or the id). Call with the lock held."""
        image = self.find(ref_or_id)
        if image is None:
            return []
        name = ""
        with suppress(ValueError):
            name = str(reference.parse(ref_or_id))
        untag = name in image.repo_tags and len(image.repo_tags) > 1
        manifests = []
        for desc in self.index():
            ref = (desc.get("annotations") or {}).get(REF_NAME)
            try:
                same = self.entry(desc["digest"]).config_digest == image.id
            except (StoreError, ValueError, KeyError):
                same = False
            if same and (not untag or ref == name):
                continue
            manifests.append(desc)
        self._write_index(manifests)
        self.collect_garbage()
        return [name] if untag else (image.repo_tags or [image.id])

    def collect_garbage(self) -> None:
        """Delete blobs and layer directories no index entry refers to. With the lock held."""
        blobs: set[str] = set()
        layers: set[str] = set()
        for desc in self.index():
            blobs.add(hex_of(desc["digest"]))
            try:
                entry = self.entry(desc["digest"])
            except (StoreError, ValueError, KeyError):
                continue
            blobs.add(hex_of(entry.config_digest))
            blobs.update(hex_of(d) for d in entry.layer_digests)
            layers.update(hex_of(d) for d in entry.diff_ids)
        for path in self.blobs.iterdir():
            if path.name not in blobs:
                path.unlink()
        for path in self.layers.iterdir():
            if path.name not in layers:
                # Rename first: the directory vanishes at once, however long deleting takes.
                doomed = self.staging("gc")
                os.replace(path, doomed / "root")
                remove_tree(doomed)
        self._entries = {d: e for d, e in self._entries.items() if hex_of(d) in blobs}
