"""ImageManager: the node agent's ImageService (what the kubelet's image manager and the CRI
image service do together): pull policies, shared pulls, archive loading and the built-in
images, over the on-disk store (store.py).

All disk work runs in worker threads. Changes to the store are serialized twice: an
asyncio.Lock inside this process, and the store's flock(2) across processes (the node agent and
`pocketkube image load` may run at once).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pocketkube.kubelet.images import archive, builtin, pull, reference
from pocketkube.kubelet.images.layers import LayerError
from pocketkube.kubelet.images.store import ImageStore, StoreError
from pocketkube.kubelet.runtime.interface import Image, ImageError, ImageService

log = logging.getLogger("pocketkube.kubelet.images")

T = TypeVar("T")
LoadProgress = Callable[[str, int, int], None]


class ImageManager(ImageService):
    def __init__(self, root: Path, *, skopeo: str = "skopeo") -> None:
        self.root = root
        self.store = ImageStore(root)
        self.skopeo = skopeo
        self._lock = asyncio.Lock()
        self._ready = False
        self._pulls: dict[str, asyncio.Task[Image]] = {}

    async def _change(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a worker thread with the store locked (both locks)."""

        def locked() -> T:
            with self.store.locked():
                if not self._ready:
                    self.store.setup()
                    self._ready = True
                return fn(*args)

        async with self._lock:
            return await asyncio.to_thread(locked)

    # --- ImageService --------------------------------------------------------------------

    async def ensure(
        self, ref: str, pull_policy: str, pull_secrets: list[dict] | None = None
    ) -> tuple[Image, bool]:
        """The image for `ref` under `pull_policy` (already defaulted by the API server):
        (image, pulled_now). Built-in images are never pulled (see builtin.py). An unknown
        policy acts as Never, as in the kubelet's shouldPullImage."""
        name = reference.normalize(ref)
        image, is_builtin = await asyncio.to_thread(self._lookup, name)
        if image is not None and (pull_policy != "Always" or is_builtin):
            return image, False
        if pull_policy not in ("Always", "IfNotPresent"):
            raise ImageError(
                "ErrImageNeverPull",
                f'Container image "{reference.with_default_tag(ref)}" is not present with '
                f"pull policy of {pull_policy}",
            )
        return await self._shared_pull(name, pull_secrets), True

    def _lookup(self, name: str) -> tuple[Image | None, bool]:
        return self.store.find(name), self.store.is_builtin(name)

    async def get(self, ref: str) -> Image | None:
        """The image named `ref` (any spelling), or by its id or a unique id prefix."""
        return await asyncio.to_thread(self.store.find, ref)

    async def list(self) -> list[Image]:
        return await asyncio.to_thread(self.store.images)

    async def remove(self, ref_or_id: str) -> None:
        """Untag a name (deleting the image with its last name) or delete an image by id,
        then its unused blobs and layer directories. Removing what is not there is no error;
        whether the image is in use is the caller's business."""
        await self.delete(ref_or_id)

    async def delete(self, ref_or_id: str) -> list[str]:
        """remove(), returning what went: the names untagged, or the image id ([] if none)."""
        removed = await self._change(self.store.remove, ref_or_id)
        if removed:
            log.info("image %s removed (%s)", ref_or_id, ", ".join(removed))
        return removed

    # --- loading and built-ins -----------------------------------------------------------

    async def load(self, path: Path, progress: LoadProgress | None = None) -> list[Image]:
        """Store every image of a docker-archive or oci-archive (optionally gzipped).
        `progress(description, done, total)` is called on the event loop's thread.
        Raises ImageError("ErrImageLoad", message)."""
        loop = asyncio.get_running_loop()
        report = None
        if progress is not None:
            callback = progress

            def report(what: str, done: int, total: int) -> None:
                loop.call_soon_threadsafe(callback, what, done, total)

        try:
            return await self._change(archive.load_archive, self.store, path, report)
        except (archive.ArchiveError, StoreError, LayerError) as err:
            raise ImageError("ErrImageLoad", str(err)) from None
        except OSError as err:
            raise ImageError("ErrImageLoad", f"{path}: {err.strerror or err}") from None

    async def ensure_builtin(self) -> None:
        """Create the busybox and pause images unless the store has them (with any origin)."""
        if await self.get(builtin.BUSYBOX) is None:
            applets = await builtin.busybox_applets()
            await self._change(builtin.install_busybox, self.store, applets)
        if await self.get(builtin.PAUSE) is None:
            await self._change(builtin.install_pause, self.store)

    # --- pulls ---------------------------------------------------------------------------

    async def _shared_pull(self, name: str, secrets: list[dict] | None) -> Image:
        """One pull per name at a time: callers asking meanwhile wait for the same pull
        (with the first caller's secrets). A cancelled caller does not cancel the pull."""
        task = self._pulls.get(name)
        if task is None:
            task = asyncio.create_task(self._pull(name, secrets), name=f"pull {name}")
            self._pulls[name] = task
            task.add_done_callback(lambda done: self._pull_done(name, done))
        return await asyncio.shield(task)

    def _pull_done(self, name: str, task: asyncio.Task[Image]) -> None:
        if self._pulls.get(name) is task:
            del self._pulls[name]
        if not task.cancelled():
            task.exception()  # retrieved, even when every caller went away

    async def _pull(self, name: str, secrets: list[dict] | None) -> Image:
        if not self._ready:
            await self._change(lambda: None)
        staging = await asyncio.to_thread(self.store.staging, "pull")
        try:
            log.info("pulling image %s", name)
            await pull.copy(name, staging / "image", secrets, skopeo=self.skopeo)
            try:
                return await self._change(archive.import_dir, self.store, staging / "image", [name])
            except (StoreError, LayerError, OSError, ValueError, KeyError) as err:
                raise pull.pull_failed(name, str(err)) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
