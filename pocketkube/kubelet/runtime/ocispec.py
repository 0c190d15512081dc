"""OCI runtime specs (config.json for runc) of pod sandboxes and their containers.

The sandbox is the pause container: it owns the pod's network namespace (made by the network
plugin, or the host's with hostNetwork) and new IPC and UTS namespaces. App containers join those
three through /proc/<pause pid>/ns/* and get their own mount and pid namespaces. The defaults
(mounts, masked and read-only paths, capabilities) are those of runc's `runc spec` and
containerd's CRI plugin, so a workload sees the container it would see under containerd.
Hand-written because the spec is a plain JSON document and no maintained Python package builds
it.
"""

from __future__ import annotations

from pathlib import Path

from pocketkube.kubelet.runtime import seccomp
from pocketkube.kubelet.runtime.interface import ContainerConfig, Image, SandboxConfig
from pocketkube.kubelet.runtime.users import User

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Capability numbers 0..40 (linux/capability.h); the index is the number.
ALL_CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
]

# containerd's default set for CRI containers.
DEFAULT_CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
]

MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _bounding_set() -> set[str]:
    """The capabilities this agent may hand out: its own bounding set (a container cannot get
    more than its runtime has, e.g. in a sandbox without CAP_SYS_RESOURCE)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return {c for i, c in enumerate(ALL_CAPABILITIES) if mask >> i & 1}
    except (OSError, ValueError):
        pass
    return set(ALL_CAPABILITIES)


def oom_score_adj(requested: int) -> int:
    """`requested`, raised to our own score when we lack CAP_SYS_RESOURCE to go lower."""
    if "SYS_RESOURCE" in _bounding_set():
        return requested
    try:
        own = int(Path("/proc/self/oom_score_adj").read_text())
    except (OSError, ValueError):
        return requested
    return max(requested, own)


def capabilities(add: list[str], drop: list[str], privileged: bool) -> list[str]:
    """The capability set ("CAP_..." names) from containerd's defaults plus add, minus drop."""
    bounding = _bounding_set()
    known = [c for c in ALL_CAPABILITIES if c in bounding]
    if privileged:
        return [f"CAP_{c}" for c in known]
    add = [c.upper().removeprefix("CAP_") for c in add]
    drop = [c.upper().removeprefix("CAP_") for c in drop]
    caps = list(known) if "ALL" in add else [c for c in DEFAULT_CAPABILITIES if c in bounding]
    caps += [c for c in add if c != "ALL" and c not in caps and c in known]
    caps = [] if "ALL" in drop else [c for c in caps if c not in drop]
    return [f"CAP_{c}" for c in caps]


def _mount(destination: str, kind: str, source: str, *options: str) -> dict:
    return {"destination": destination, "type": kind, "source": source, "options": list(options)}


def _standard_mounts(shm: Path, privileged: bool) -> list[dict]:
    nosuid = ("nosuid", "noexec", "nodev")
    return [
        _mount("/proc", "proc", "proc", *nosuid),
        _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        _mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance",
               "ptmxmode=0666", "mode=0620", "gid=5"),
        _mount("/dev/mqueue", "mqueue", "mqueue", *nosuid),
        _mount("/sys", "sysfs", "sysfs", *nosuid, *(() if privileged else ("ro",))),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", *nosuid, "relatime", "ro"),
        # The pod's /dev/shm: one tmpfs per sandbox, shared like its IPC namespace.
        _mount("/dev/shm", "bind", str(shm), "rbind", *nosuid),
    ]  # fmt: skip


def _file_mounts(sandbox: SandboxConfig) -> list[dict]:
    files = {"/etc/hosts": sandbox.hosts_path, "/etc/resolv.conf": sandbox.resolv_path,
             "/etc/hostname": sandbox.hostname_path}  # fmt: skip
    return [_mount(dest, "bind", str(path), "rbind", "rprivate")
            for dest, path in files.items() if path is not None]  # fmt: skip


def _process(
    args: list[str],
    env: list[str],
    cwd: str,
    user: User,
    terminal: bool,
    caps: list[str],
    no_new_privs: bool,
    oom_adj: int,
) -> dict:
    process: dict = {
        "terminal": terminal,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": args,
        "env": env,
        "cwd": cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privs,
        "oomScoreAdj": oom_score_adj(oom_adj),
    }
    if user.additional_gids:
        process["user"]["additionalGids"] = user.additional_gids
    return process


def _linux(
    namespaces: list[dict],
    cgroups_path: str,
    resources: dict,
    privileged: bool,
    seccomp_profile: dict | None,
) -> dict:
    linux: dict = {
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path,
        "resources": {"devices": [{"allow": privileged, "access": "rwm"}], **resources},
    }
    if not privileged:
        linux["maskedPaths"] = MASKED_PATHS
        linux["readonlyPaths"] = READONLY_PATHS
    if seccomp_profile is not None:
        linux["seccomp"] = seccomp_profile
    return linux


def sandbox_spec(
    config: SandboxConfig,
    image: Image,
    *,
    rootfs: Path,
    netns: str | None,
    shm: Path,
    cgroups_path: str,
) -> dict:
    """The pause container: holds the pod's namespaces and does nothing else."""
    args = list(image.config.get("Entrypoint") or []) + list(image.config.get("Cmd") or [])
    caps = capabilities([], [], False)
    namespaces: list[dict] = [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]
    spec_hostname = None
    if not config.host_network:
        namespaces.append({"type": "network", "path": netns} if netns else {"type": "network"})
        namespaces.append({"type": "uts"})
        spec_hostname = config.hostname
    spec: dict = {
        "ociVersion": OCI_VERSION,
        "process": _process(
            args or ["/pause"], [DEFAULT_PATH], "/", User(), False, caps, True, -998
        ),
        "root": {"path": str(rootfs), "readonly": True},
        "mounts": _standard_mounts(shm, False),
        "linux": _linux(
            namespaces, cgroups_path, {"cpu": {"shares": 2}}, False, seccomp.runtime_default(caps)
        ),
    }
    if spec_hostname:
        spec["hostname"] = spec_hostname
    return spec


def _resources(config: ContainerConfig) -> dict:
    r = config.resources
    cpu: dict = {"shares": max(r.cpu_shares, 2)}
    if r.cpu_quota > 0:
        cpu["quota"] = r.cpu_quota
        cpu["period"] = r.cpu_period
    resources: dict = {"cpu": cpu}
    if r.memory_limit > 0:
        # swap = limit: no swap on top of the limit, as the kubelet asks on cgroup v1.
        resources["memory"] = {"limit": r.memory_limit, "swap": r.memory_limit}
    return resources


def _propagation_option(propagation: str) -> str:
    return {"rslave": "rslave", "rshared": "rshared"}.get(propagation, "rprivate")


def container_spec(
    config: ContainerConfig,
    sandbox: SandboxConfig,
    *,
    rootfs: Path,
    user: User,
    sandbox_pid: int,
    shm: Path,
    cgroups_path: str,
) -> dict:
    """An app container joining the sandbox's network, IPC and UTS namespaces."""
    sec = config.security
    caps = capabilities(sec.add_capabilities, sec.drop_capabilities, sec.privileged)
    env = [f"{k}={v}" for k, v in config.env]
    if not any(k == "PATH" for k, _ in config.env):
        env.insert(0, DEFAULT_PATH)
    if not any(k == "HOME" for k, _ in config.env):
        env.append(f"HOME={user.home}")
    if config.tty and not any(k == "TERM" for k, _ in config.env):
        env.append("TERM=xterm")
    cwd = config.working_dir or config.image.config.get("WorkingDir") or "/"
    namespaces = [
        {"type": "pid"},
        {"type": "mount"},
        {"type": "ipc", "path": f"/proc/{sandbox_pid}/ns/ipc"},
    ]
    if not sandbox.host_network:
        namespaces += [
            {"type": "network", "path": f"/proc/{sandbox_pid}/ns/net"},
            {"type": "uts", "path": f"/proc/{sandbox_pid}/ns/uts"},
        ]
    mounts = _standard_mounts(shm, sec.privileged) + _file_mounts(sandbox)
    if config.termination_message_host_path is not None:
        destination = config.termination_message_path or "/dev/termination-log"
        host = str(config.termination_message_host_path)
        mounts.append(_mount(destination, "bind", host, "rbind", "rprivate"))
    # Unset leaves runc's default (rslave); a shared mount needs the root shared as well.
    rootfs_propagation = ""
    for m in config.mounts:
        option = _propagation_option(m.propagation)
        if option == "rshared":
            rootfs_propagation = option
        read_only = ("ro",) if m.read_only else ()
        mounts.append(_mount(m.container_path, "bind", m.host_path, "rbind", option, *read_only))
    profile = seccomp.profile_for(sec.seccomp, caps, sec.privileged)
    linux = _linux(namespaces, cgroups_path, _resources(config), sec.privileged, profile)
    if rootfs_propagation:
        linux["rootfsPropagation"] = rootfs_propagation
    return {
        "ociVersion": OCI_VERSION,
        "process": _process(
            config.argv,
            env,
            cwd,
            user,
            config.tty,
            caps,
            sec.no_new_privs and not sec.privileged,
            config.resources.oom_score_adj,
        ),
        "root": {"path": str(rootfs), "readonly": sec.read_only_rootfs},
        "mounts": mounts,
        "linux": linux,
    }
