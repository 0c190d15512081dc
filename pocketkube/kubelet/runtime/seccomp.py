"""The seccomp profiles of runc containers: RuntimeDefault, and Localhost files.

RuntimeDefault follows the intent of containerd's and runc's default profile: the syscalls that
let a process escape or reconfigure the machine (kernel modules, kexec, mount, namespaces,
ptrace, clock, swap, keyrings, bpf, ...) fail with EPERM unless the container holds the
capability that would make them legitimate, exactly as those profiles unlock them for
CAP_SYS_ADMIN, CAP_SYS_PTRACE and so on. It is written as a deny table over an allowing default
rather than containerd's 350-entry allow list: shorter to read and review, and a syscall added to
a future kernel that a workload needs is not refused by an out-of-date list. The profile is plain
data in the OCI runtime spec's `linux.seccomp` shape; runc compiles it with libseccomp.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

EPERM = 1
ENOSYS = 38

# syscall -> the capability that unlocks it ("" = denied to every unprivileged container).
DENIED: dict[str, str] = {
    # kernel code and kernel state
    "create_module": "SYS_MODULE",
    "delete_module": "SYS_MODULE",
    "finit_module": "SYS_MODULE",
    "init_module": "SYS_MODULE",
    "query_module": "SYS_MODULE",
    "get_kernel_syms": "SYS_MODULE",
    "kexec_file_load": "SYS_BOOT",
    "kexec_load": "SYS_BOOT",
    "reboot": "SYS_BOOT",
    "swapon": "SYS_ADMIN",
    "swapoff": "SYS_ADMIN",
    "acct": "SYS_PACCT",
    "_sysctl": "",
    "sysfs": "",
    "uselib": "",
    "ustat": "",
    "nfsservctl": "",
    "vm86": "",
    "vm86old": "",
    "lookup_dcookie": "SYS_ADMIN",
    "quotactl": "SYS_ADMIN",
    "quotactl_fd": "SYS_ADMIN",
    # filesystems and namespaces
    "mount": "SYS_ADMIN",
    "mount_setattr": "SYS_ADMIN",
    "umount": "SYS_ADMIN",
    "umount2": "SYS_ADMIN",
    "pivot_root": "SYS_ADMIN",
    "fsopen": "SYS_ADMIN",
    "fsconfig": "SYS_ADMIN",
    "fsmount": "SYS_ADMIN",
    "fspick": "SYS_ADMIN",
    "move_mount": "SYS_ADMIN",
    "open_tree": "SYS_ADMIN",
    "setns": "SYS_ADMIN",
    "unshare": "SYS_ADMIN",
    "name_to_handle_at": "SYS_ADMIN",
    "open_by_handle_at": "DAC_READ_SEARCH",
    # other processes' memory
    "ptrace": "SYS_PTRACE",
    "process_vm_readv": "SYS_PTRACE",
    "process_vm_writev": "SYS_PTRACE",
    "kcmp": "SYS_PTRACE",
    "pidfd_getfd": "SYS_PTRACE",
    # clocks
    "settimeofday": "SYS_TIME",
    "stime": "SYS_TIME",
    "clock_settime": "SYS_TIME",
    "clock_settime64": "SYS_TIME",
    "clock_adjtime": "SYS_TIME",
    "clock_adjtime64": "SYS_TIME",
    "adjtimex": "SYS_TIME",
    # hardware
    "iopl": "SYS_RAWIO",
    "ioperm": "SYS_RAWIO",
    # NUMA placement of other processes
    "mbind": "SYS_NICE",
    "get_mempolicy": "SYS_NICE",
    "set_mempolicy": "SYS_NICE",
    "move_pages": "SYS_NICE",
    # keyrings are not namespaced
    "add_key": "",
    "keyctl": "",
    "request_key": "",
    # tracing and bpf
    "bpf": "SYS_ADMIN",
    "perf_event_open": "SYS_ADMIN",
    "fanotify_init": "SYS_ADMIN",
    "userfaultfd": "",
}

# clone(2) flags that create namespaces; CAP_SYS_ADMIN unlocks them (as in containerd's profile).
CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)

ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}


def runtime_default(capabilities: list[str]) -> dict:
    """The RuntimeDefault profile for a container holding `capabilities` ("CAP_SYS_ADMIN", ...)."""
    held = {cap.removeprefix("CAP_") for cap in capabilities}
    denied = sorted(name for name, cap in DENIED.items() if not cap or cap not in held)
    syscalls: list[dict] = [{"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}]
    if "SYS_ADMIN" not in held:
        # Each flag is its own rule: the OCI filter has no "masked value != 0" operator.
        for flag in CLONE_NAMESPACE_FLAGS:
            syscalls.append(
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": EPERM,
                    "args": [
                        {"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
                    ],
                }
            )
        # clone3 passes its flags in memory, which seccomp cannot inspect: ENOSYS makes libc
        # fall back to clone, which the rules above can check.
        syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ARCHITECTURES.get(platform.machine(), []),
        "syscalls": syscalls,
    }


def localhost(path: Path) -> dict:
    """A profile file in the OCI or Docker format (`archMap` is reduced to its architectures)."""
    profile = json.loads(path.read_text())
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        architectures.append(entry["architecture"])
        architectures.extend(entry.get("subArchitectures") or [])
    result: dict = {"defaultAction": profile["defaultAction"], "architectures": architectures}
    if "defaultErrnoRet" in profile:
        result["defaultErrnoRet"] = profile["defaultErrnoRet"]
    syscalls = []
    for rule in profile.get("syscalls") or []:
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        entry = {"names": names, "action": rule["action"]}
        for key in ("args", "errnoRet"):
            if rule.get(key) is not None:
                entry[key] = rule[key]
        syscalls.append(entry)
    result["syscalls"] = syscalls
    return result


def profile_for(seccomp: str, capabilities: list[str], privileged: bool) -> dict | None:
    """The `linux.seccomp` section for SecurityConfig.seccomp, or None for no filter."""
    if privileged or seccomp == "Unconfined":
        return None
    if seccomp.startswith("Localhost/"):
        return localhost(Path(seccomp.removeprefix("Localhost/")))
    return runtime_default(capabilities)
