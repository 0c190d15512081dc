"""Removing everything a node agent left on this machine, for `pocketkube delete`: its
containers (runc or host processes), their mounts, cgroups and network namespaces, the pod
bridge and the iptables rules the CNI plugins added. Containers outlive the agent on purpose
(a restarted agent adopts them), so deleting a cluster must stop them explicitly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pocketkube.kubelet.agent import bridge_name

log = logging.getLogger("pocketkube.kubelet.cleanup")


async def _remove_containers(runtime: Any) -> None:
    await runtime.start()
    for c in await runtime.list_containers():
        try:
            await runtime.stop_container(c.id, 0)
            await runtime.remove_container(c.id)
        except Exception as e:  # noqa: BLE001 - keep removing the rest
            log.warning("removing container %s: %s", c.id, e)
    for s in await runtime.list_sandboxes():
        try:
            await runtime.stop_sandbox(s.id)
            await runtime.remove_sandbox(s.id)
        except Exception as e:  # noqa: BLE001
            log.warning("removing sandbox %s: %s", s.id, e)
    await runtime.close()


async def remove_node(root: Path, images_root: Path) -> None:
    """Stop and remove every container of the agent whose state is under `root`."""
    from pocketkube.kubelet.images.service import ImageManager

    images = ImageManager(images_root)
    if (root / "process").exists():
        from pocketkube.kubelet.runtime.process import ProcessRuntime

        await _remove_containers(ProcessRuntime(root / "process", images))
    if os.geteuid() != 0:
        return
    from pocketkube.kubelet.network.cni import CniNetwork

    try:
        subnet = (root / "cni" / "subnet").read_text().strip()
    except OSError:
        subnet = "10.244.0.0/24"  # never got a pod range: nothing was attached to the bridge
    network = CniNetwork(root / "cni", bridge=bridge_name(root), subnet=subnet)
    if (root / "runc").exists():
        from pocketkube.kubelet.runtime.runc import RuncRuntime

        await _remove_containers(RuncRuntime(root / "runc", images, network))
    await network.cleanup()
