"""Applying the proxy's rules to the kernel: `iptables-restore --noflush` through an asyncio
subprocess (one atomic transaction per sync; the event loop never waits on it), the one-time
insertion of the jump rules from the built-in chains, the sysctls kube-proxy sets, and
`cleanup()`, which removes every chain and jump rule the proxy added.

All iptables use in pocketkube's proxy goes through this module. Jump rules are recognised in
`iptables-save` output by their exact text (chains.Jump.args() is written the way iptables-save
prints it), so inserting them is idempotent and removing them needs no guessing.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from pocketkube.proxy.chains import KUBE, TAG_LENGTH, Chains, Jump, is_service_chain, tag_for

log = logging.getLogger("pocketkube.proxy.iptables")

ROUTE_LOCALNET = "net/ipv4/conf/all/route_localnet"
BRIDGE_NF_CALL = "net/bridge/bridge-nf-call-iptables"
TCP_BE_LIBERAL = "net/netfilter/nf_conntrack_tcp_be_liberal"
SYSCTL_ROOT = Path("/proc/sys")

class IptablesError(RuntimeError):
    pass


def available() -> bool:
    return all(shutil.which(t) for t in ("iptables", "iptables-save", "iptables-restore"))


async def _run(argv: list[str], stdin: bytes | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise IptablesError(f"{argv[0]} exited {proc.returncode}: "
                            f"{err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


async def restore(text: str) -> None:
    """Apply an iptables-restore input atomically, leaving every chain it does not name."""
    await _run(["iptables-restore", "--noflush", "--wait", "5"], text.encode())


async def save(table: str) -> str:
    return await _run(["iptables-save", "-t", table])


def parse(saved: str) -> tuple[list[str], list[str]]:
    """iptables-save output for one table -> (chain names, "-A ..." rule lines)."""
    chains, rule_lines = [], []
    for line in saved.splitlines():
        if line.startswith(":"):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            rule_lines.append(line)
    return chains, rule_lines


def missing_jumps(saved: dict[str, str], chains: Chains = KUBE) -> list[Jump]:
    """The jump rules not yet in the built-in chains, given {table: iptables-save output}."""
    present = {t: set(parse(text)[1]) for t, text in saved.items()}
    return [j for j in chains.jumps
            if " ".join(["-A", j.chain, *j.args()]) not in present.get(j.table, set())]


def owned(saved: str, roots: set[str]) -> list[str]:
    """The chains of one table that belong to a proxy: its top-level chains (`roots`) and every
    chain reachable from them. Each sync writes a proxy's rules in one transaction, so all its
    service chains hang from its top-level ones; another cluster's never do."""
    names, rule_lines = parse(saved)
    jumps: dict[str, set[str]] = {}
    for line in rule_lines:
        parts = line.split()
        jumps.setdefault(parts[1], set()).add(_target(parts))
    existing = set(names)
    found, todo = [], [c for c in names if c in roots]
    seen = set(todo)
    while todo:
        chain = todo.pop()
        found.append(chain)
        for nxt in jumps.get(chain, ()):
            if nxt in existing and nxt not in seen and nxt.startswith("KUBE-"):
                seen.add(nxt)
                todo.append(nxt)
    return sorted(found, key=names.index)


async def read_state(chains: Chains = KUBE) -> tuple[list[Jump], set[str]]:
    """(jump rules to insert, this proxy's nat chains) — read before the first sync."""
    saved = {"filter": await save("filter"), "nat": await save("nat")}
    return missing_jumps(saved, chains), set(owned(saved["nat"], chains.top_level("nat")))


async def canary_present(chains: Chains) -> bool:
    """Whether the proxy's canary chains are still there: kube-proxy's check that nobody
    (a firewall reload, `iptables -F -X`) flushed the tables under it."""
    for table in ("nat", "filter"):
        proc = await asyncio.create_subprocess_exec(
            "iptables", "-w", "5", "-t", table, "-S", chains.canary,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        if await proc.wait() != 0:
            return False
    return True


def read_sysctl(name: str) -> str | None:
    try:
        return (SYSCTL_ROOT / name).read_text().strip()
    except OSError:
        return None


def ensure_sysctl(name: str, value: str) -> None:
    if read_sysctl(name) != value:
        (SYSCTL_ROOT / name).write_text(value)


def prepare_node(localhost_nodeports: bool = True) -> bool:
    """Set the sysctls kube-proxy sets; returns whether conntrack is TCP-liberal (then no
    INVALID drop rule is written, as in kube)."""
    if localhost_nodeports:
        # NodePorts on 127.0.0.1 are DNAT'd off the loopback device, which the kernel only
        # routes with route_localnet=1 (kube-proxy sets it too; KUBE-FIREWALL guards it).
        log.info("setting %s=1 to allow NodePorts on localhost", ROUTE_LOCALNET.replace("/", "."))
        ensure_sysctl(ROUTE_LOCALNET, "1")
    if read_sysctl(BRIDGE_NF_CALL) not in (None, "1"):
        # Pod -> Service -> pod on one bridge: replies must pass conntrack to be un-DNAT'd.
        try:
            ensure_sysctl(BRIDGE_NF_CALL, "1")
        except OSError as e:
            log.warning("cannot set %s: %s", BRIDGE_NF_CALL, e)
    return read_sysctl(TCP_BE_LIBERAL) not in (None, "0")


def cleanup_input(saved: dict[str, str], chains: Chains | None = None) -> str:
    """The iptables-restore input that removes a proxy's jumps and chains from the saved
    tables: those of `chains`, or of every cluster's proxy on this host when None."""
    out: list[str] = []
    for table in ("filter", "nat"):
        names, rule_lines = parse(saved.get(table, ""))
        if chains is not None:
            ours = owned(saved.get(table, ""), chains.top_level(table))
        else:
            ours = [c for c in names if _any_top_level(c, table) or is_service_chain(c)]
        if not ours:
            continue
        own = set(ours)
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in ours]  # flushes each of them
        for line in rule_lines:
            parts = line.split()
            if parts[1] not in own and _target(parts) in own:
                out.append("-D" + line[2:])
        out += [f"-X {c}" for c in ours]
        out.append("COMMIT")
    return "".join(line + "\n" for line in out)


def _any_top_level(name: str, table: str) -> bool:
    """Whether `name` is a top-level proxy chain of any cluster (kube's name, maybe tagged)."""
    base, _, tag = name.rpartition("-")
    return name in KUBE.top_level(table) or (
        len(tag) == TAG_LENGTH and base in KUBE.top_level(table))


def _target(parts: list[str]) -> str:
    for i, p in enumerate(parts[:-1]):
        if p in ("-j", "-g"):
            return parts[i + 1]
    return ""


async def cleanup(service_cidr: str | None = None) -> None:
    """Remove the chains and jump rules of the proxy of the cluster on `service_cidr` (when a
    cluster is deleted), or of every cluster's proxy (`pocketkube proxy --cleanup`, like
    kube-proxy --cleanup). Safe to call when there is nothing to remove."""
    if not available():
        return
    saved = {"filter": await save("filter"), "nat": await save("nat")}
    chains = None if service_cidr is None else Chains(tag_for(service_cidr))
    text = cleanup_input(saved, chains)
    if text:
        log.info("removing the proxy's iptables chains and rules")
        await restore(text)
