"""What a DaemonSet sync decides, as pure functions over the nodes and the daemon's pods grouped
by node: which nodes need a pod and which pods must go (kube's `podsShouldBeOnNode`), the
rolling-update step within maxUnavailable / maxSurge (`update.go`), and the status counts.
The controller (daemonset.py) only carries these plans out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pocketkube.controllers import daemonset_util as du
from pocketkube.controllers.history import HASH_LABEL
from pocketkube.controllers.statefulset_util import is_available, is_ready, is_terminating

Obj = dict[str, Any]


def pods_by_node(pods: list[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        out.setdefault(du.target_node(pod), []).append(pod)
    return out


def manage_plan(ds: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]], hash_: str,
                may_kill_failed: Callable[[str], bool],
                now: float) -> tuple[list[str], list[Obj], list[Obj]]:
    """(nodes needing a pod, pods to delete, failed pods being deleted)."""
    create: list[str] = []
    delete: list[Obj] = []
    failed: list[Obj] = []
    surge = du.allows_surge(ds)
    min_ready = ds["spec"].get("minReadySeconds") or 0
    for node in nodes:
        name = node["metadata"]["name"]
        run, keep = du.should_run(node, ds)
        pods = by_node.get(name)
        if run and not pods:
            create.append(name)
        elif keep:
            running = []
            for pod in pods or ():
                if is_terminating(pod):
                    continue
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Failed":
                    if may_kill_failed(name):
                        failed.append(pod)
                        delete.append(pod)
                elif phase == "Succeeded":
                    delete.append(pod)
                else:
                    running.append(pod)
            running = du.oldest_first(running)
            if not surge:
                delete.extend(running[1:])
                continue
            if len(running) <= 1:
                if not running and run:
                    create.append(name)
                continue
            # With surge, an old and a new pod may overlap until the new one is available.
            newest = [p for p in running if p["metadata"].get("labels", {}).get(HASH_LABEL)
                      == hash_]
            olds = [p for p in running if p not in newest]
            delete.extend(newest[1:] + olds[1:])
            if newest and olds and (not is_ready(olds[0])
                                    or is_available(newest[0], min_ready, now)):
                delete.append(olds[0])
        elif pods:
            delete.extend(p for p in pods if not is_terminating(p))
    # Pods for nodes that no longer exist were never bound: nothing else removes them.
    names = {n["metadata"]["name"] for n in nodes}
    for node, pods in by_node.items():
        if node not in names:
            delete.extend(p for p in pods if not (p.get("spec") or {}).get("nodeName")
                          and not is_terminating(p))
    return create, delete, failed


def _split(ds: Obj, pods: list[Obj], hash_: str) -> tuple[Obj | None, Obj | None, bool]:
    """findUpdatedPodsOnNode: (new pod, old pod, whether at most one of each)."""
    new = old = None
    gen = du.template_generation(ds)
    for pod in pods:
        if is_terminating(pod):
            continue
        if du.is_updated(pod, hash_, gen):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update_plan(ds: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]], hash_: str,
                        now: float) -> tuple[list[Obj], list[str]]:
    """One rolling-update step: (old pods to delete, nodes to surge a new pod onto)."""
    min_ready = ds["spec"].get("minReadySeconds") or 0
    node_map = {n["metadata"]["name"]: n for n in nodes}
    groups = dict(by_node)
    desired = 0
    for node in nodes:
        if du.should_run(node, ds)[0]:
            desired += 1
            groups.setdefault(node["metadata"]["name"], [])
    max_surge, max_unavailable = du.surge_and_unavailable(ds, desired)

    def available(p: Obj) -> bool:
        return is_available(p, min_ready, now)

    def runs_on(name: str) -> bool:
        return name in node_map and du.should_run(node_map[name], ds)[0]

    if max_surge == 0:
        unavailable = 0
        replace: list[Obj] = []
        candidates: list[Obj] = []
        for name in sorted(groups):
            new, old, ok = _split(ds, groups[name], hash_)
            if not ok or (new is None) == (old is None):
                unavailable += 1  # the manage loop creates or prunes here
            elif new is not None:
                unavailable += not available(new)
            elif old is not None and not available(old):
                replace.append(old)
            elif old is not None and unavailable < max_unavailable:
                candidates.append(old)
        room = min(max(max_unavailable - unavailable, 0), len(candidates))
        return replace + candidates[:room], []

    delete: list[Obj] = []
    stranded: list[Obj] = []  # available old pods on nodes the daemon no longer wants
    candidates_n: list[str] = []
    allowed: list[str] = []
    surging = available_n = 0
    for name in sorted(groups):
        new, old, ok = _split(ds, groups[name], hash_)
        if not ok:
            surging += 1
            continue
        if old is not None:
            available_n += available(old)
        elif new is not None:
            available_n += available(new)
        if old is None:
            continue
        if new is None:
            if not available(old):
                if runs_on(name):
                    allowed.append(name)
                else:
                    delete.append(old)
            elif not runs_on(name):
                stranded.append(old)
            elif surging < max_surge:
                candidates_n.append(name)
        elif not available(new):
            surging += 1
        else:
            delete.append(old)
    deletable = min(max(available_n - desired, 0), len(stranded))
    delete.extend(stranded[:deletable])
    room = min(max(max_surge - surging, 0), len(candidates_n))
    return delete, allowed + candidates_n[:room]


def compute_status(ds: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]], hash_: str,
                   now: float) -> dict[str, int]:
    min_ready = ds["spec"].get("minReadySeconds") or 0
    gen = du.template_generation(ds)
    n = dict.fromkeys(("desiredNumberScheduled", "currentNumberScheduled", "numberMisscheduled",
                       "numberReady", "updatedNumberScheduled", "numberAvailable"), 0)
    for node in nodes:
        pods = by_node.get(node["metadata"]["name"]) or []
        if du.should_run(node, ds)[0]:
            n["desiredNumberScheduled"] += 1
            if not pods:
                continue
            n["currentNumberScheduled"] += 1
            pod = du.oldest_first(pods)[0]
            if is_ready(pod):
                n["numberReady"] += 1
                n["numberAvailable"] += is_available(pod, min_ready, now)
            n["updatedNumberScheduled"] += du.is_updated(pod, hash_, gen)
        elif pods:
            n["numberMisscheduled"] += 1
    n["numberUnavailable"] = n["desiredNumberScheduled"] - n["numberAvailable"]
    return n
