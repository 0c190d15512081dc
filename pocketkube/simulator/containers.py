"""Container statuses of simulated pods, as a container runtime reports them through the
kubelet: image references normalised the way containerd shows them, stable digests and
container ids (`simulated://<sha256>`), and the running, waiting and terminated states.
Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Any

Obj = dict[str, Any]

RUNTIME_SCHEME = "simulated://"
# The kubelet's container restart backoff (pkg/kubelet/kubelet.go): 10s doubling to 5 minutes.
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0


def normalize_image(image: str) -> str:
    """The image reference as a container runtime reports it (docker.io/library/nginx:latest)."""
    name, digest = (image.split("@", 1) + [""])[:2]
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    if digest:
        return f"{name}@{digest}"
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def image_id(image: str) -> str:
    """The digest reference a runtime reports: the given digest, else one derived from the
    reference (stable, so a simulated image keeps its id)."""
    ref = normalize_image(image)
    if "@" in ref:
        return ref
    repo = ref.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def container_id(pod_uid: str, name: str, restarts: int = 0) -> str:
    digest = hashlib.sha256(f"{pod_uid}/{name}/{restarts}".encode()).hexdigest()
    return RUNTIME_SCHEME + digest


def _base(pod: Obj, c: Obj, restarts: int) -> Obj:
    uid = (pod.get("metadata") or {}).get("uid", "")
    image = c.get("image") or ""
    return {
        "containerID": container_id(uid, c["name"], restarts),
        "image": normalize_image(image),
        "imageID": image_id(image),
        "lastState": {},
        "name": c["name"],
        "restartCount": restarts,
    }


def running_container(pod: Obj, c: Obj, started_at: str, restarts: int = 0) -> Obj:
    st = _base(pod, c, restarts)
    st.update(ready=True, started=True, state={"running": {"startedAt": started_at}})
    return st


def terminated_container(
    pod: Obj, c: Obj, started_at: str, finished_at: str, exit_code: int, restarts: int = 0
) -> Obj:
    st = _base(pod, c, restarts)
    st.update(
        ready=False,
        started=False,
        state={
            "terminated": terminated_state(st["containerID"], started_at, finished_at, exit_code)
        },
    )
    return st


def terminated_state(cid: str, started_at: str, finished_at: str, exit_code: int) -> Obj:
    return {
        "containerID": cid,
        "exitCode": exit_code,
        "finishedAt": finished_at,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started_at,
    }


def _is_sidecar(c: Obj) -> bool:
    return c.get("restartPolicy") == "Always"


def init_statuses(pod: Obj, started_at: str, running: bool) -> list[Obj]:
    """Init containers after a successful start: regular ones Completed (ready, not started),
    restartable (sidecar) ones running while the pod runs."""
    out = []
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        if _is_sidecar(c) and running:
            out.append(running_container(pod, c, started_at))
        else:
            st = terminated_container(pod, c, started_at, started_at, 0)
            st["ready"] = not _is_sidecar(c)
            out.append(st)
    return out


def waiting_container(pod: Obj, c: Obj, restarts: int, last_state: Obj, backoff: float) -> Obj:
    """A container that exited and waits out the restart backoff (CrashLoopBackOff)."""
    meta = pod.get("metadata") or {}
    st = _base(pod, c, restarts)
    message = (
        f"back-off {_duration(backoff)} restarting failed container={c['name']} "
        f"pod={meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"
    )
    st.update(
        lastState=last_state,
        ready=False,
        started=False,
        state={"waiting": {"message": message, "reason": "CrashLoopBackOff"}},
    )
    return st


def restart_backoff(restarts: int) -> float:
    return min(BACKOFF_INITIAL * 2 ** max(restarts, 0), BACKOFF_MAX)


def _duration(seconds: float) -> str:
    """Go's time.Duration text for whole seconds and minutes (10s, 1m20s, 5m0s)."""
    s = int(seconds)
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"
