"""The container runtime interface of the node agent, shaped like Kubernetes' CRI
(k8s.io/cri-api RuntimeService + ImageService), as Python protocols and dataclasses.

The pod workers speak only this interface; `runc.py` (runc + conmon + CNI) and `process.py`
(host processes, no root) implement it. Everything is async: implementations run their
subprocesses and disk work without blocking the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# --- images --------------------------------------------------------------------------------


@dataclass
class Image:
    id: str  # "sha256:<digest of the image config>"
    repo_tags: list[str]  # normalized references, e.g. "docker.io/library/busybox:latest"
    repo_digests: list[str]  # "docker.io/library/busybox@sha256:<manifest digest>"
    layers: list[Path]  # extracted layer directories, lowest first (overlayfs lowerdirs)
    config: dict  # the OCI image config's "config": Entrypoint, Cmd, Env, WorkingDir, User, ...
    size: int  # bytes on disk


class ImageError(Exception):
    """An image cannot be had; `reason` is the kubelet's waiting reason (ErrImagePull,
    ErrImageNeverPull, InvalidImageName) and the message is what the user sees."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImageService(Protocol):
    async def ensure(self, ref: str, pull_policy: str, pull_secrets: list[dict] | None = None
                     ) -> tuple[Image, bool]:  # fmt: skip
        """The image for `ref` under `pull_policy` (Always/IfNotPresent/Never), pulling it if
        needed: (image, pulled_now). Raises ImageError."""
        ...

    async def get(self, ref: str) -> Image | None: ...

    async def list(self) -> list[Image]: ...

    async def remove(self, ref_or_id: str) -> None: ...


# --- sandboxes and containers --------------------------------------------------------------


@dataclass
class PortMapping:
    container_port: int
    host_port: int
    protocol: str = "TCP"  # TCP/UDP/SCTP
    host_ip: str = ""


@dataclass
class SandboxConfig:
    pod_uid: str
    name: str
    namespace: str
    hostname: str
    host_network: bool = False
    port_mappings: list[PortMapping] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    # Files the kubelet wrote (dnsconfig.py); the runtime mounts them into every container.
    hosts_path: Path | None = None
    resolv_path: Path | None = None
    hostname_path: Path | None = None
    log_dir: Path | None = None  # <agent root>/logs/pods/<ns>_<name>_<uid>
    # Cgroup parent for the pod's containers (runc); "" lets the runtime pick one.
    cgroup_parent: str = ""


@dataclass
class SandboxStatus:
    id: str
    pod_uid: str
    name: str
    namespace: str
    state: str  # "ready" | "notready"
    ip: str = ""  # the pod IP ("" with host network until the node address is known)
    ips: list[str] = field(default_factory=list)
    created_at: float = 0.0  # unix seconds
    netns: str = ""  # path of the network namespace ("" for host network / process runtime)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Mount:
    container_path: str
    host_path: str
    read_only: bool = False
    # "private" | "rslave" | "rshared": MountPropagation None/HostToContainer/Bidirectional.
    propagation: str = "private"


@dataclass
class Resources:
    cpu_shares: int = 2  # from requests.cpu (milli * 1024 / 1000, min 2), as the kubelet does
    cpu_quota: int = 0  # from limits.cpu (milli * period / 1000); 0 = unlimited
    cpu_period: int = 100_000
    memory_limit: int = 0  # bytes; 0 = unlimited
    oom_score_adj: int = 0


@dataclass
class SecurityConfig:
    run_as_user: int | None = None  # None: the image's user (or root)
    run_as_group: int | None = None
    run_as_username: str = ""  # the image's non-numeric USER, resolved in the rootfs
    supplemental_groups: list[int] = field(default_factory=list)
    privileged: bool = False
    read_only_rootfs: bool = False
    no_new_privs: bool = False  # allowPrivilegeEscalation: false
    add_capabilities: list[str] = field(default_factory=list)  # "NET_ADMIN" (no CAP_ prefix)
    drop_capabilities: list[str] = field(default_factory=list)  # "ALL" drops every one
    seccomp: str = "RuntimeDefault"  # "RuntimeDefault" | "Unconfined" | "Localhost/<path>"


@dataclass
class ContainerConfig:
    name: str
    attempt: int  # restart count: 0 for the first run
    image: Image
    image_ref: str  # what the pod asked for (container.image)
    argv: list[str]  # final command: entrypoint/cmd already merged with command/args
    env: list[tuple[str, str]]  # final environment, image env included, in order
    working_dir: str = ""  # "" = the image's WorkingDir or "/"
    mounts: list[Mount] = field(default_factory=list)
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    resources: Resources = field(default_factory=Resources)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    log_path: Path | None = None  # CRI-format log file (…/<container>/<attempt>.log)
    # Host file bind-mounted at the container's terminationMessagePath (the kubelet reads it).
    termination_message_host_path: Path | None = None
    termination_message_path: str = "/dev/termination-log"
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    state: str  # "created" | "running" | "exited" | "unknown"
    created_at: float = 0.0  # unix seconds
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # for exited: "OOMKilled", "Error", "Completed"
    message: str = ""
    image_id: str = ""  # Image.id
    image_ref: str = ""  # ContainerConfig.image_ref
    log_path: str = ""
    pid: int = 0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ExecResult:
    exit_code: int
    output: bytes  # stdout and stderr, interleaved, truncated at a limit


@dataclass
class StreamSession:
    """An interactive exec or attach: bytes in, bytes out, and how it ended.

    `stdin` is None when stdin was not asked for. With a TTY, stderr is None (merged into
    stdout, as in Kubernetes). `wait()` returns the exit code (None for attach, which ends when
    the client or the container goes)."""

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None
    wait: Callable[[], Awaitable[int | None]]
    resize: Callable[[int, int], Awaitable[None]]  # (width, height); no-op without a TTY
    close: Callable[[], Awaitable[None]]  # end it: kill an exec's process, detach an attach


class Runtime(Protocol):
    """One node's container runtime. Ids are opaque strings chosen by the runtime."""

    name: str  # "runc" | "process": the containerID scheme ("runc://<id>")
    version: str  # for nodeInfo.containerRuntimeVersion: "runc://1.1.5"

    async def start(self) -> None:
        """Prepare state dirs, networks; adopt what a previous agent left running."""
        ...

    async def run_sandbox(self, config: SandboxConfig) -> str: ...

    async def stop_sandbox(self, sandbox_id: str) -> None:
        """Kill every container of the sandbox and tear down its network (idempotent)."""
        ...

    async def remove_sandbox(self, sandbox_id: str) -> None: ...

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus | None: ...

    async def list_sandboxes(self) -> list[SandboxStatus]: ...

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: SandboxConfig) -> str:  # fmt: skip
        ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """SIGTERM (or the image's StopSignal), then SIGKILL after `timeout` seconds."""
        ...

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus | None: ...

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...

    async def reopen_container_log(self, container_id: str) -> None:
        """CRI ReopenContainerLog: the running container's output goes to a new file at its
        log path from now on (the log manager renamed the old one away to rotate it). Raises
        when the container is not running or the new file cannot be made."""
        ...

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float) -> ExecResult:
        """Run `argv` in the container and wait (probes, lifecycle hooks). Raises TimeoutError."""
        ...

    async def exec(self, container_id: str, argv: list[str], *, stdin: bool, tty: bool
                   ) -> StreamSession:  # fmt: skip
        ...

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> StreamSession: ...

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # fmt: skip
        """A TCP connection to `port` on the pod's loopback (inside its network namespace)."""
        ...

    async def close(self) -> None:
        """Release the agent's resources; containers keep running (a restarted agent adopts
        them)."""
        ...
