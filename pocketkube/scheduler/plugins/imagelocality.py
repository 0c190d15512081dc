"""ImageLocality: prefers nodes that already hold the pod's container images (init containers
included), so less is pulled. Each image present counts its size scaled by the share of nodes
that have it (kube's "spread" factor: an image every node has says nothing about this node, and
big images found on few nodes must not draw every pod to them); the sum is mapped onto
[0, 100] between 23 MB and 1000 MB per container.

Image names match the node's status.images names exactly after kube's one normalization, a
`:latest` tag for a name without tag or digest: like kube-scheduler, a pod asking for `nginx`
does not match a node reporting only `docker.io/library/nginx:latest`.
"""

from __future__ import annotations

from pocketkube.scheduler.cache import Cache, ImageState, NodeInfo, PodInfo
from pocketkube.scheduler.framework import MAX_NODE_SCORE, SKIP, CycleState, Plugin, Status

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def normalized_image_name(name: str) -> str:
    """A name without a tag after its last path component gets `:latest` (a digest's `:`
    follows the last `/`, so digests are left alone)."""
    if name.rfind(":") <= name.rfind("/"):
        return name + ":latest"
    return name


def scaled_image_score(state: ImageState, total_nodes: int) -> int:
    """The image's size times the fraction of nodes holding it, truncated as kube does."""
    spread = len(state.nodes) / total_nodes
    return int(state.size * spread)


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    sum_scores = min(max(sum_scores, MIN_THRESHOLD), max_threshold)
    return MAX_NODE_SCORE * (sum_scores - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)


def pod_images(pod: PodInfo) -> list[str]:
    spec = pod.obj.get("spec") or {}
    return [normalized_image_name(c.get("image") or "")
            for key in ("initContainers", "containers") for c in spec.get(key) or []]


class ImageLocality(Plugin):
    name = "ImageLocality"
    weight = 1

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  cache: Cache) -> Status | None:
        images = pod_images(pod)
        present = [(name, cache.images[name]) for name in images if name in cache.images]
        # No node has any of the images: every node scores 0, which changes nothing.
        if not present:
            return Status(SKIP)
        state[self.name] = (present, len(cache.node_list), len(images))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        present, total, containers = state[self.name]
        return calculate_priority(_sum(present, node, total), containers)

    def score_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        present, total, containers = state[self.name]
        return [calculate_priority(_sum(present, ni, total), containers) for ni in nodes]


def _sum(present: list[tuple[str, ImageState]], node: NodeInfo, total: int) -> int:
    """kube's sumImageScores: each container whose image the node has (a repeated image
    counts once per container)."""
    images = node.images
    return sum(scaled_image_score(st, total) for name, st in present if name in images)
