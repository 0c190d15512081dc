"""A container's runtime configuration from its pod spec, as the kubelet builds it
(kuberuntime_container.go generateContainerConfig, kuberuntime_container_linux.go resources,
security_context.go, container/helpers.go for the command): the final argv (image
Entrypoint/Cmd merged with command/args the way CRI runtimes do), the environment, mounts
(volumes plus the termination message file), cgroup resources, the merged security context
and the log path.

The merge rules and the runAsNonRoot messages are what users see in pod statuses, so they
follow kube word for word.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from pocketkube.api.validation.quantity import value as quantity_value
from pocketkube.kubelet.runtime.interface import Image, Mount, Resources, SecurityConfig

Obj = dict[str, Any]

CPU_PERIOD = 100_000
MIN_SHARES = 2
MAX_SHARES = 262_144
MIN_QUOTA = 1000
GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000

LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_HASH = "io.kubernetes.container.hash"
LABEL_RESTART_COUNT = "io.kubernetes.container.restartCount"
LABEL_TERMINATION_PATH = "io.kubernetes.container.terminationMessagePath"
LABEL_TERMINATION_POLICY = "io.kubernetes.container.terminationMessagePolicy"
LABEL_TERMINATION_HOST_PATH = "pocketkube.io/termination-message-host-path"
LABEL_GRACE = "io.kubernetes.pod.terminationGracePeriod"
LABEL_PRESTOP = "io.kubernetes.container.preStopHandler"
LABEL_INIT = "pocketkube.io/init-container"


class ContainerConfigError(Exception):
    """The pod spec cannot be turned into a container (waiting reason
    CreateContainerConfigError)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def format_pod(pod: Obj) -> str:
    """kube's format.Pod: "name_namespace(uid)"."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def container_hash(container: Obj) -> str:
    """The hash that decides whether a running container still matches its spec. Since 1.31
    kube hashes only the name and the image (the rest of a container spec is immutable), so a
    `kubectl set image` restarts the container and an agent upgrade does not."""
    data = json.dumps({"name": container.get("name"), "image": container.get("image")},
                      sort_keys=True).encode()
    return format(zlib.crc32(data), "x")


def merge_argv(image_config: Obj, command: list[str] | None, args: list[str] | None) -> list[str]:
    """The process to run: `command` replaces the image's Entrypoint and drops its Cmd; `args`
    replace the Cmd; with neither, Entrypoint + Cmd."""
    entrypoint = list(image_config.get("Entrypoint") or [])
    cmd = list(image_config.get("Cmd") or [])
    if command:
        return list(command) + list(args or [])
    return entrypoint + (list(args) if args else cmd)


def expand_argv(container: Obj, env: dict[str, str], expand: Any) -> tuple[list[str], list[str]]:
    """command and args with $(VAR) references expanded (kube's ExpandContainerCommandAndArgs)."""
    command = [expand(s, env) for s in container.get("command") or []]
    args = [expand(s, env) for s in container.get("args") or []]
    return command, args


def pod_log_dir(root: Path, pod: Obj) -> Path:
    meta = pod["metadata"]
    return root / "logs" / "pods" / f"{meta.get('namespace', '')}_{meta['name']}_{meta['uid']}"


def log_path(root: Path, pod: Obj, container: str, attempt: int) -> Path:
    return pod_log_dir(root, pod) / container / f"{attempt}.log"


def restart_count_from_logs(directory: Path) -> int:
    """One more than the highest `<n>.log` left by earlier instances (kube's
    calcRestartCountByLogDir), so a runtime that lost its state does not reuse log files."""
    best = 0
    if directory.is_dir():
        for entry in directory.iterdir():
            stem = entry.name.split(".log")[0]
            if entry.name.startswith(f"{stem}.log") and stem.isdigit():
                best = max(best, int(stem) + 1)
    return best


# --- resources ---------------------------------------------------------------------------------


def milli_value(q: Any) -> int:
    amount = quantity_value(str(q)) if q is not None else None
    return 0 if amount is None else int(-(-amount * 1000 // 1))


def byte_value(q: Any) -> int:
    amount = quantity_value(str(q)) if q is not None else None
    return 0 if amount is None else int(-(-amount // 1))


def milli_cpu_to_shares(milli: int) -> int:
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * 1024 // 1000))


def milli_cpu_to_quota(milli: int, period: int = CPU_PERIOD) -> int:
    if milli == 0:
        return 0
    return max(MIN_QUOTA, milli * period // 1000)


def qos_class(pod: Obj) -> str:
    """The pod's QoS class (kube's GetPodQOS), for the OOM score; the API server's value wins
    when the status has one."""
    known = (pod.get("status") or {}).get("qosClass")
    if known:
        return known
    spec = pod.get("spec") or {}
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        res = c.get("resources") or {}
        req = {k: v for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")}
        lim = {k: v for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")}
        for k, v in req.items():
            if milli_value(v):
                requests[k] = requests.get(k, 0) + milli_value(v)
        for k, v in lim.items():
            if milli_value(v):
                limits[k] = limits.get(k, 0) + milli_value(v)
        if set(lim) != {"cpu", "memory"} or any(milli_value(req.get(k, lim[k])) != milli_value(lim[k])
                                                for k in lim):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def memory_capacity() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resources(pod: Obj, container: Obj, capacity: int | None = None) -> Resources:
    res = container.get("resources") or {}
    requests = res.get("requests") or {}
    limits = res.get("limits") or {}
    cpu_request = milli_value(requests.get("cpu"))
    cpu_limit = milli_value(limits.get("cpu"))
    shares = milli_cpu_to_shares(cpu_limit if cpu_request == 0 and cpu_limit else cpu_request)
    qos = qos_class(pod)
    if qos == "Guaranteed":
        oom = GUARANTEED_OOM_SCORE_ADJ
    elif qos == "BestEffort":
        oom = BEST_EFFORT_OOM_SCORE_ADJ
    else:
        cap = capacity or memory_capacity()
        oom = 1000 - (1000 * byte_value(requests.get("memory"))) // max(cap, 1)
        oom = min(max(oom, 2), 999)
    return Resources(cpu_shares=shares, cpu_quota=milli_cpu_to_quota(cpu_limit),
                     cpu_period=CPU_PERIOD, memory_limit=byte_value(limits.get("memory")),
                     oom_score_adj=oom)


# --- security ----------------------------------------------------------------------------------


def effective_security(pod: Obj, container: Obj) -> Obj:
    """The container's securityContext over the pod's (DetermineEffectiveSecurityContext)."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    ctr_sc = container.get("securityContext") or {}
    out: Obj = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot",
                                        "seccompProfile", "seLinuxOptions") if k in pod_sc}
    out.update(ctr_sc)
    return out


def image_user(image: Image) -> tuple[int | None, str]:
    """(uid, username) from the image's USER: a numeric user gives a uid, a name gives the
    name, nothing means root."""
    user = str(image.config.get("User") or "")
    name = user.split(":", 1)[0]
    if not name:
        return 0, ""
    if name.isdigit():
        return int(name), ""
    return None, name


def verify_run_as_non_root(pod: Obj, container: Obj, image: Image) -> None:
    sc = effective_security(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    where = f'(pod: "{format_pod(pod)}", container: {container["name"]})'
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    uid, username = image_user(image)
    if uid == 0:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root "
                                   f"{where}")
    if uid is None and username:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({username}), cannot "
            f"verify user is non-root {where}")


def _seccomp(profile: Obj | None, privileged: bool) -> str:
    if privileged or not profile:
        return "Unconfined"  # kube's default without --seccomp-default
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return "RuntimeDefault"
    if kind == "Localhost":
        return f"Localhost/{profile.get('localhostProfile', '')}"
    return "Unconfined"


def security(pod: Obj, container: Obj, image: Image) -> SecurityConfig:
    verify_run_as_non_root(pod, container, image)
    sc = effective_security(pod, container)
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    groups = [int(pod_sc["fsGroup"])] if pod_sc.get("fsGroup") is not None else []
    groups += [int(g) for g in pod_sc.get("supplementalGroups") or [] if int(g) not in groups]
    caps = sc.get("capabilities") or {}
    privileged = bool(sc.get("privileged"))
    uid, username = image_user(image)
    return SecurityConfig(
        run_as_user=int(sc["runAsUser"]) if sc.get("runAsUser") is not None else None,
        run_as_group=int(sc["runAsGroup"]) if sc.get("runAsGroup") is not None else None,
        run_as_username=username if sc.get("runAsUser") is None else "",
        supplemental_groups=groups,
        privileged=privileged,
        read_only_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        no_new_privs=sc.get("allowPrivilegeEscalation") is False,
        add_capabilities=[str(c).removeprefix("CAP_") for c in caps.get("add") or []],
        drop_capabilities=[str(c).removeprefix("CAP_") for c in caps.get("drop") or []],
        seccomp=_seccomp(sc.get("seccompProfile"), privileged),
    )


# --- labels and files ------------------------------------------------------------------------


def labels(pod: Obj, container: Obj, attempt: int, termination_host_path: Path | None,
           init: bool) -> dict[str, str]:  # fmt: skip
    """What the kubelet records on the runtime's container so it can be understood later
    without the pod (kube keeps these as CRI labels and annotations)."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    out = {
        LABEL_POD_NAME: meta["name"], LABEL_POD_NAMESPACE: meta.get("namespace", ""),
        LABEL_POD_UID: meta["uid"], LABEL_CONTAINER_NAME: container["name"],
        LABEL_HASH: container_hash(container), LABEL_RESTART_COUNT: str(attempt),
        LABEL_TERMINATION_PATH: container.get("terminationMessagePath") or "",
        LABEL_TERMINATION_POLICY: container.get("terminationMessagePolicy") or "File",
        LABEL_GRACE: str(spec.get("terminationGracePeriodSeconds", 30)),
    }
    if termination_host_path is not None:
        out[LABEL_TERMINATION_HOST_PATH] = str(termination_host_path)
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if pre_stop:
        out[LABEL_PRESTOP] = json.dumps(pre_stop, sort_keys=True)
    if init:
        out[LABEL_INIT] = "true"
    return out


def make_termination_file(root: Path, pod: Obj, container: Obj) -> Path:
    """An empty, world-writable file for the termination message, one per container instance
    (kube's pods/<uid>/containers/<name>/<random>)."""
    directory = root / "pods" / pod["metadata"]["uid"] / "containers" / container["name"]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / os.urandom(4).hex()
    path.touch()
    path.chmod(0o666)
    return path


def termination_mount(container: Obj, host_path: Path) -> Mount:
    return Mount(container_path=container.get("terminationMessagePath") or "/dev/termination-log",
                 host_path=str(host_path))


IMPLICIT_CONTAINER_PREFIX = "implicitly required container "
SPEC_LISTS = ("containers", "initContainers", "ephemeralContainers")


def container_field_path(pod: Obj, name: str) -> str:
    """Where container `name` is in the pod's spec, as an event's involvedObject.fieldPath
    (kube's GenerateContainerRef): "spec.containers{web}", "spec.initContainers{init}",
    "spec.ephemeralContainers{debug}"; a container the spec does not list (a pod whose spec is
    gone, restored from the runtime's labels) is "implicitly required container <name>"."""
    spec = pod.get("spec") or {}
    for field in SPEC_LISTS:
        for i, c in enumerate(spec.get(field) or []):
            if c.get("name", "") == name:
                return f"spec.{field}{{{name}}}" if name else f"spec.{field}[{i}]"
    return IMPLICIT_CONTAINER_PREFIX + name


def record(recorder: Any, pod: Obj, type_: str, reason: str, message: str,
           container: str | None = None) -> None:
    """An event about the pod, or about its container `container` (the reference then carries
    the container's field path, so events of different containers never merge). List items
    carry no kind, so the reference is built here."""
    meta = pod.get("metadata") or {}
    ref = {"kind": "Pod", "apiVersion": "v1",
           "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion")
                        if meta.get(k)}}
    if container is None:
        recorder.record(ref, type_, reason, message)
    else:
        recorder.record(ref, type_, reason, message,
                        field_path=container_field_path(pod, container))
