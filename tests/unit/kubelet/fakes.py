"""In-memory stand-ins for the node agent's collaborators, so the pod workers can be tested
without containers, images, volumes or an API server: a runtime whose containers "run" until
told to exit, an image store, volumes, DNS files, environment, probes, an event recorder and a
small API that applies merge patches and honours delete preconditions. Time is a FakeClock;
the runtime stamps times with it, and the agent is given the same clock as wall time.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pocketkube.api import errors
from pocketkube.api.patch.merge import merge_patch
from pocketkube.client.workqueue import FakeClock
from pocketkube.kubelet.runtime.interface import (
    ContainerConfig,
    ContainerStatus,
    ExecResult,
    Image,
    ImageError,
    SandboxConfig,
    SandboxStatus,
)

Obj = dict[str, Any]
START = 1_700_000_000.0


class FakeRuntime:
    name = "runc"
    version = "runc://1.1.5"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sandboxes: dict[str, SandboxStatus] = {}
        self.configs: dict[str, SandboxConfig] = {}
        self.containers: dict[str, ContainerStatus] = {}
        self.container_configs: dict[str, ContainerConfig] = {}
        self.calls: list[tuple] = []
        self._ids = itertools.count(1)
        self._ips = itertools.count(2)
        # name -> exit code a container exits with as soon as it starts
        self.exit_on_start: dict[str, int] = {}
        self.stop_exit_code = 143  # SIGTERM honoured
        self.exec_handler: Callable[[ContainerStatus, list[str]], ExecResult] = \
            lambda c, argv: ExecResult(0, b"")
        self.fail_create: dict[str, str] = {}

    def _id(self) -> str:
        return f"{next(self._ids):064x}"

    async def start(self) -> None:
        pass

    async def run_sandbox(self, config: SandboxConfig) -> str:
        sid = self._id()
        ip = "" if config.host_network else f"10.88.0.{next(self._ips)}"
        self.sandboxes[sid] = SandboxStatus(sid, config.pod_uid, config.name, config.namespace,
                                            "ready", ip, [ip] if ip else [], self.clock.now(),
                                            labels=dict(config.labels))
        self.configs[sid] = config
        self.calls.append(("run_sandbox", config.name))
        return sid

    async def stop_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("stop_sandbox", sandbox_id))
        for c in self.containers.values():
            if c.sandbox_id == sandbox_id and c.state == "running":
                self._exit(c, 137, "Error")
        if sandbox_id in self.sandboxes:
            self.sandboxes[sandbox_id].state = "notready"

    async def remove_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("remove_sandbox", sandbox_id))
        self.sandboxes.pop(sandbox_id, None)

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        return copy.deepcopy(self.sandboxes.get(sandbox_id))

    async def list_sandboxes(self) -> list[SandboxStatus]:
        return [copy.deepcopy(s) for s in self.sandboxes.values()]

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: SandboxConfig) -> str:  # fmt: skip
        if config.name in self.fail_create:
            raise RuntimeError(self.fail_create[config.name])
        cid = self._id()
        self.containers[cid] = ContainerStatus(
            cid, sandbox_id, config.name, config.attempt, "created", self.clock.now(),
            image_id=config.image.id, image_ref=config.image_ref,
            log_path=str(config.log_path or ""), labels=dict(config.labels))
        self.container_configs[cid] = config
        self.calls.append(("create", config.name, config.attempt))
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self.containers[container_id]
        c.state = "running"
        c.started_at = self.clock.now()
        self.calls.append(("start", c.name, c.attempt))
        if c.name in self.exit_on_start:
            code = self.exit_on_start[c.name]
            self._exit(c, code, "Completed" if code == 0 else "Error")

    def _exit(self, c: ContainerStatus, code: int, reason: str) -> None:
        c.state = "exited"
        c.exit_code = code
        c.reason = reason
        c.finished_at = self.clock.now()

    def exit(self, name: str, code: int = 0) -> None:
        """The running container called `name` ends with `code`."""
        for c in self.containers.values():
            if c.name == name and c.state == "running":
                self._exit(c, code, "Completed" if code == 0 else "Error")
                return
        raise AssertionError(f"no running container {name}")

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self.containers.get(container_id)
        self.calls.append(("stop", c.name if c else container_id, timeout))
        if c is not None and c.state == "running":
            self._exit(c, self.stop_exit_code, "Error")

    async def remove_container(self, container_id: str) -> None:
        c = self.containers.pop(container_id, None)
        self.calls.append(("remove", c.name if c else container_id))

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        return copy.deepcopy(self.containers.get(container_id))

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [copy.deepcopy(c) for c in self.containers.values()
                if sandbox_id is None or c.sandbox_id == sandbox_id]

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float) -> ExecResult:
        c = self.containers[container_id]
        self.calls.append(("exec", c.name, tuple(argv)))
        return self.exec_handler(c, argv)

    async def exec(self, *a: Any, **k: Any) -> Any:
        raise RuntimeError("not supported by the fake")

    attach = exec
    port_forward = exec

    async def close(self) -> None:
        pass

    def running(self) -> list[str]:
        return sorted(c.name for c in self.containers.values() if c.state == "running")


class FakeImages:
    def __init__(self, present: tuple[str, ...] = ("busybox",)) -> None:
        self.images: dict[str, Image] = {ref: self.make(ref) for ref in present}
        self.failures: dict[str, ImageError] = {}
        self.pulls: list[str] = []

    @staticmethod
    def make(ref: str, user: str = "", entrypoint: list[str] | None = None,
             cmd: list[str] | None = None) -> Image:  # fmt: skip
        name = ref if "/" in ref else f"docker.io/library/{ref}"
        tagged = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
        digest = f"sha256:{abs(hash(ref)):064x}"[:71]
        return Image(id=f"sha256:{abs(hash(ref + 'id')):064x}"[:71], repo_tags=[tagged],
                     repo_digests=[f"{tagged.rsplit(':', 1)[0]}@{digest}"], layers=[],
                     config={"Entrypoint": entrypoint, "Cmd": cmd or ["sh"], "User": user,
                             "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/bin:/bin"]},
                     size=4_300_000)

    async def ensure(self, ref: str, pull_policy: str, pull_secrets: list[dict] | None = None
                     ) -> tuple[Image, bool]:  # fmt: skip
        self.pulls.append(ref)
        if ref in self.failures:
            raise self.failures[ref]
        if ref not in self.images:
            self.images[ref] = self.make(ref)
        return self.images[ref], True

    async def get(self, ref: str) -> Image | None:
        return self.images.get(ref)

    async def list(self) -> list[Image]:
        return list(self.images.values())

    async def remove(self, ref_or_id: str) -> None:
        self.images.pop(ref_or_id, None)


class FakeVolumes:
    def __init__(self) -> None:
        self.failure: str | None = None
        self.torn_down: list[str] = []

    async def setup(self, pod: Obj) -> dict[str, Path]:
        if self.failure:
            raise RuntimeError(self.failure)
        return {}

    async def refresh(self, pod: Obj) -> None:
        pass

    async def teardown(self, uid: str) -> None:
        self.torn_down.append(uid)

    def mounts(self, pod: Obj, container: Obj, volume_dirs: dict[str, Path],
               env: list[tuple[str, str]] | None = None) -> list:  # fmt: skip
        return []


class FakeObjects:
    async def configmap(self, ns: str, name: str) -> Obj | None:
        return None

    async def secret(self, ns: str, name: str) -> Obj | None:
        return None

    async def services(self, ns: str) -> list[Obj]:
        return []


class FakeEnv:
    """envvars' two functions: the container's env after the image's, and $(VAR) expansion."""

    @staticmethod
    async def build_env(pod: Obj, container: Obj, image_env: list[str], source: Any, *,
                        node_name: str, pod_ip: str, host_ip: str, services: list[dict]
                        ) -> list[tuple[str, str]]:  # fmt: skip
        env = [tuple(e.split("=", 1)) for e in image_env]
        env += [(e["name"], e.get("value", "")) for e in container.get("env") or []]
        return env  # type: ignore[return-value]

    @staticmethod
    def expand(s: str, env: dict[str, str]) -> str:
        return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                      lambda m: env.get(m.group(1), m.group(0)), s)


class FakeDns:
    @staticmethod
    def write_pod_files(pod: Obj, pod_dir: Path, *, pod_ips: list[str], cluster_dns: list[str],
                        cluster_domain: str) -> tuple[Path, Path, Path]:  # fmt: skip
        pod_dir.mkdir(parents=True, exist_ok=True)
        paths = (pod_dir / "etc-hosts", pod_dir / "resolv.conf", pod_dir / "hostname")
        paths[0].write_text("".join(f"{ip}\t{pod['metadata']['name']}\n" for ip in pod_ips))
        paths[1].write_text("".join(f"nameserver {s}\n" for s in cluster_dns))
        paths[2].write_text(pod["metadata"]["name"] + "\n")
        return paths

    @staticmethod
    def kernel_hostname(pod: Obj, cluster_domain: str) -> str:
        return (pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"]


class FakeProbes:
    """Every started container is ready unless listed in `unready`; `liveness[(uid, name)]`
    is the message of a failed liveness probe."""

    def __init__(self, on_change: Callable[[str], None]) -> None:
        self.on_change = on_change
        self.containers: dict[str, dict[str, ContainerStatus]] = {}
        self.unready: set[str] = set()
        self.liveness: dict[tuple[str, str], str] = {}
        self.removed: list[str] = []

    def sync(self, pod: Obj, pod_ip: str, containers: dict[str, ContainerStatus]) -> None:
        self.containers[pod["metadata"]["uid"]] = dict(containers)

    def remove_pod(self, uid: str) -> None:
        self.removed.append(uid)
        self.containers.pop(uid, None)

    def _running(self, uid: str, name: str) -> bool:
        c = self.containers.get(uid, {}).get(name)
        return c is not None and c.state == "running"

    def started(self, uid: str, name: str) -> bool:
        return self._running(uid, name)

    def ready(self, uid: str, name: str) -> bool:
        return self._running(uid, name) and name not in self.unready

    def liveness_failure(self, uid: str, name: str) -> str | None:
        return self.liveness.get((uid, name)) if self._running(uid, name) else None

    def close(self) -> None:
        pass


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, obj: Obj, type_: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [e[1] for e in self.events]

    def messages(self, reason: str) -> list[str]:
        return [e[2] for e in self.events if e[1] == reason]


class FakeApi:
    """Pods by (namespace, name): status merge patches (a uid change is refused, as the API
    server refuses it) and deletes with a uid precondition."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], Obj] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self._rv = itertools.count(1)

    def put(self, pod: Obj) -> Obj:
        pod = copy.deepcopy(pod)
        pod["metadata"]["resourceVersion"] = str(next(self._rv))
        self.pods[(pod["metadata"].get("namespace", ""), pod["metadata"]["name"])] = pod
        return copy.deepcopy(pod)

    def pod(self, ns: str, name: str) -> Obj | None:
        return copy.deepcopy(self.pods.get((ns, name)))

    async def patch(self, r: Any, name: str, patch: Obj, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str = "", **_: Any) -> Obj:
        self.calls.append(("patch", name, copy.deepcopy(patch)))
        cur = self.pods.get((namespace or "", name))
        if cur is None:
            raise errors.StatusError(404, "NotFound", f'pods "{name}" not found')
        uid = (patch.get("metadata") or {}).get("uid")
        if uid and uid != cur["metadata"]["uid"]:
            raise errors.StatusError(422, "Invalid", "metadata.uid: field is immutable")
        cur["status"] = merge_patch(cur.get("status") or {}, patch.get("status") or {})
        cur["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(cur)

    async def delete(self, r: Any, name: str, namespace: str | None = None,
                     **options: Any) -> Obj:
        self.calls.append(("delete", name, options))
        cur = self.pods.get((namespace or "", name))
        if cur is None:
            raise errors.StatusError(404, "NotFound", f'pods "{name}" not found')
        want = (options.get("preconditions") or {}).get("uid")
        if want and want != cur["metadata"]["uid"]:
            raise errors.StatusError(409, "Conflict", "Precondition failed: UID in precondition")
        del self.pods[(namespace or "", name)]
        return cur

    async def create(self, r: Any, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("create", obj["metadata"]["name"], None))
        key = (namespace or obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key in self.pods:
            raise errors.StatusError(409, "AlreadyExists", "already exists")
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", f"mirror-{next(self._rv)}")
        return self.put(obj)


def pod(name: str = "p", *, containers: list[Obj] | None = None, uid: str | None = None,
        ns: str = "default", restart: str = "Always", init: list[Obj] | None = None,
        grace: int = 30, **spec: Any) -> Obj:  # fmt: skip
    """A pod as the API server serves it after defaulting (the fields the agent reads)."""
    def defaults(c: Obj) -> Obj:
        return {"imagePullPolicy": "IfNotPresent", "terminationMessagePath":
                "/dev/termination-log", "terminationMessagePolicy": "File", **c}

    out: Obj = {
        "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}",
                     "creationTimestamp": "2023-11-14T22:13:20Z"},
        "spec": {"nodeName": "node-1", "restartPolicy": restart,
                 "terminationGracePeriodSeconds": grace,
                 "containers": [defaults(c) for c in containers or
                                [{"name": "c", "image": "busybox"}]], **spec},
        "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
            {"type": "PodScheduled", "status": "True",
             "lastTransitionTime": "2023-11-14T22:13:20Z"}]},
    }
    if init:
        out["spec"]["initContainers"] = [defaults(c) for c in init]
    return out


class Harness:
    """A Kubelet wired to the fakes, fed pods by hand (no informers)."""

    def __init__(self, tmp: Path) -> None:
        from pocketkube.kubelet.kubelet import Kubelet

        self.clock = FakeClock(START)
        self.runtime = FakeRuntime(self.clock)
        self.images = FakeImages()
        self.volumes = FakeVolumes()
        self.recorder = FakeRecorder()
        self.api = FakeApi()
        self.probes: FakeProbes | None = None

        def probes(on_change: Callable[[str], None]) -> FakeProbes:
            self.probes = FakeProbes(on_change)
            return self.probes

        self.kubelet = Kubelet(
            self.api, "node-1", root=tmp, runtime=self.runtime, images=self.images,
            volumes=self.volumes, objects=FakeObjects(), recorder=self.recorder,
            clock=self.clock, cluster_dns=["10.96.0.10"], cluster_domain="cluster.local",
            node_ip="192.168.1.10", probes_factory=probes, wall=self.clock.now,
            envvars=FakeEnv(), dnsconfig=FakeDns())

    async def add(self, p: Obj) -> Obj:
        stored = self.api.put(p)
        self.kubelet.pod_added(stored)
        await self.settle()
        return stored

    async def update(self, p: Obj) -> None:
        old = self.api.pod(p["metadata"]["namespace"], p["metadata"]["name"])
        stored = self.api.put(p)
        self.kubelet.pod_updated(old, stored)
        await self.settle()

    async def delete(self, ns: str, name: str, grace: int | None = None) -> None:
        """What `kubectl delete` does: deletionTimestamp and deletionGracePeriodSeconds."""
        p = self.api.pod(ns, name)
        assert p is not None
        p["metadata"]["deletionTimestamp"] = "2023-11-14T22:20:00Z"
        p["metadata"]["deletionGracePeriodSeconds"] = (
            grace if grace is not None else p["spec"]["terminationGracePeriodSeconds"])
        await self.update(p)

    async def settle(self) -> None:
        """Let workers and status writes finish what they can do without time passing."""
        for _ in range(5):
            await self.kubelet.workers.settle()
            await self.kubelet.status.flush(5)
            for _ in range(10):
                await asyncio.sleep(0)

    async def tick(self, seconds: float) -> None:
        """Time passes: containers are relisted and due resyncs run."""
        step = min(seconds, 1.0)
        left = seconds
        while left > 1e-9:
            self.clock.advance(min(step, left))
            left -= step
            await self.kubelet.pleg.relist()
            await self.settle()

    async def relist(self) -> None:
        await self.kubelet.pleg.relist()
        await self.settle()

    def status(self, name: str = "p", ns: str = "default") -> Obj:
        p = self.api.pod(ns, name)
        assert p is not None
        return p.get("status") or {}

    def container_status(self, name: str = "c", pod_name: str = "p") -> Obj:
        st = self.status(pod_name)
        for s in [*(st.get("containerStatuses") or []), *(st.get("initContainerStatuses") or [])]:
            if s["name"] == name:
                return s
        raise AssertionError(f"no status for {name}: {st}")

    def condition(self, type_: str, name: str = "p") -> Obj:
        return next(c for c in self.status(name)["conditions"] if c["type"] == type_)

    async def close(self) -> None:
        await self.kubelet.close()
