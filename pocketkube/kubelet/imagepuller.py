"""Making sure a container's image is on the node before it is created (kube's
pkg/kubelet/images/image_manager.go EnsureImageExists): the pull policy decides whether to
pull, a failed pull backs off per pod and image (10 s doubling to 5 min), and every step is an
event with kube's reason and words (Pulling, Pulled, Failed, BackOff, ErrImageNeverPull).

The image store itself (ImageService.ensure) knows nothing about pods or events; this is the
kubelet's side of pulling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pocketkube.kubelet.backoff import Backoff, go_duration
from pocketkube.kubelet.containers import record
from pocketkube.kubelet.runtime.interface import Image, ImageError, ImageService

log = logging.getLogger("pocketkube.kubelet.images")
Obj = dict[str, Any]

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"


class PullError(Exception):
    """The image is not there: `reason` is the waiting reason, `message` its message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def default_pull_policy(image: str) -> str:
    """The API server's default: Always for :latest or no tag, else IfNotPresent."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


class ImagePuller:
    def __init__(self, images: ImageService, recorder: Any, now: Callable[[], float],
                 backoff: Backoff | None = None) -> None:
        self.images = images
        self.recorder = recorder
        self.now = now
        self.backoff = backoff or Backoff(now)

    async def ensure(self, pod: Obj, container: Obj, pull_secrets: list[dict] | None = None
                     ) -> Image:  # fmt: skip
        ref = container.get("image") or ""
        name = container.get("name", "")
        policy = container.get("imagePullPolicy") or default_pull_policy(ref)
        try:
            present = await self.images.get(ref)
        except ImageError as e:
            if e.reason == INVALID_IMAGE_NAME:
                record(self.recorder, pod, "Warning", "InspectFailed", e.message, name)
                raise PullError(INVALID_IMAGE_NAME, e.message) from None
            present = None
        if policy == "Never" or (policy == "IfNotPresent" and present is not None):
            if present is not None:
                record(self.recorder, pod, "Normal", "Pulled",
                       f'Container image "{ref}" already present on machine', name)
                return present
            msg = f'Container image "{ref}" is not present with pull policy of Never'
            record(self.recorder, pod, "Warning", ERR_IMAGE_NEVER_PULL, msg, name)
            raise PullError(ERR_IMAGE_NEVER_PULL, msg)
        key = f"{pod['metadata']['uid']}_{ref}"
        if self.backoff.is_in_backoff_since_update(key, self.now()):
            msg = f'Back-off pulling image "{ref}"'
            record(self.recorder, pod, "Normal", "BackOff", msg, name)
            raise PullError(IMAGE_PULL_BACKOFF, msg)
        record(self.recorder, pod, "Normal", "Pulling", f'Pulling image "{ref}"', name)
        start = self.now()
        try:
            image, _ = await self.images.ensure(ref, policy, pull_secrets)
        except ImageError as e:
            record(self.recorder, pod, "Warning", "Failed",
                   f'Failed to pull image "{ref}": {e.message}', name)
            if e.reason == INVALID_IMAGE_NAME:
                raise PullError(INVALID_IMAGE_NAME, e.message) from None
            self.backoff.next(key, self.now())
            raise PullError(e.reason or ERR_IMAGE_PULL, e.message) from None
        took = go_duration(int((self.now() - start) * 1000) / 1000)
        record(self.recorder, pod, "Normal", "Pulled",
               f'Successfully pulled image "{ref}" in {took} ({took} including waiting). '
               f"Image size: {image.size} bytes.", name)
        self.backoff.gc()
        return image

    def backoff_remaining(self, pod: Obj, container: Obj) -> float:
        """Seconds until a pull of this container's image may be tried again."""
        key = f"{pod['metadata']['uid']}_{container.get('image') or ''}"
        last = self.backoff.last_update(key)
        return 0.0 if last is None else self.backoff.remaining(key, last)
