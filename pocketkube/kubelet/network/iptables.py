"""The network's one masquerade rule, and finding and removing the iptables rules the CNI
plugins left for one network.

Pods leaving the pod subnet are masqueraded by one rule per network (`ensure_masquerade`: a
`CNI-<hash>` chain reached from POSTROUTING for the whole subnet, the rules the bridge plugin's
ipMasq would add per pod), as kubenet did with the kubelet's own masquerade rule: the plugin's
per-pod chain costs several iptables runs, each under the xtables lock, on every pod's ADD and
DEL. The bridge plugin (when ipMasq is on, for pods set up before) adds, per container, a chain
`CNI-<hash>` and a POSTROUTING jump to it; portmap adds a `CNI-DN-<hash>` chain and a jump from
the shared `CNI-HOSTPORT-DNAT` chain. Every one of those rules carries a comment
`name: "<network>" id: "<container>"`, which is how ours are told apart from other networks'
(another cluster on the same host). DEL removes the per-pod ones normally; this is the sweep
for what DEL could not reach (a namespace deleted before DEL, an agent killed mid-setup) and
for the masquerade rule when a cluster is deleted. portmap's shared chains (CNI-HOSTPORT-*) and
their jumps are removed only when no network has a hostPort mapping left in them.

The edit is one `iptables-restore --noflush` transaction built from `iptables-save` output, so
the rule text is exactly what iptables printed and the change is atomic.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
import shlex

log = logging.getLogger(__name__)

SHARED_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")
_TARGET = re.compile(r"(?:^|\s)-[jg] (\S+)")
MASQUERADE_ID = "masquerade"  # the id in the masquerade rules' comment (a container's elsewhere)
MULTICAST = "224.0.0.0/4"


async def _run(argv: list[str], stdin: bytes | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def parse_save(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """iptables-save output → {table: (chain names, rule lines "-A CHAIN ...")}."""
    tables: dict[str, tuple[list[str], list[str]]] = {}
    current: tuple[list[str], list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), ([], []))
        elif current is None:
            continue
        elif line.startswith(":"):
            current[0].append(line[1:].split()[0])
        elif line.startswith("-A "):
            current[1].append(line)
    return tables


def _chain(rule: str) -> str:
    return rule.split()[1]


def _target(rule: str) -> str:
    m = _TARGET.search(rule)
    return m.group(1) if m else ""


def _tagged(rule: str, network: str) -> bool:
    # iptables-save prints the comment quoted with escaped inner quotes.
    try:
        words = shlex.split(rule)
    except ValueError:
        return False
    for i, word in enumerate(words[:-1]):
        if word == "--comment" and f'name: "{network}" id: "' in words[i + 1]:
            return True
    return False


def plan(chains: list[str], rules: list[str], network: str) -> list[str]:
    """The iptables-restore lines (for one table) that remove the network's rules and chains."""
    ours = [r for r in rules if _tagged(r, network)]
    own_chains = []
    for rule in ours:
        target = _target(rule)
        mine = target.startswith("CNI-") and target not in SHARED_CHAINS and target in chains
        if mine and target not in own_chains:
            own_chains.append(target)
    remaining = [r for r in rules if r not in ours and _chain(r) not in own_chains]
    lines = ["-D" + r[2:] for r in ours]
    drop = list(own_chains)
    if "CNI-HOSTPORT-DNAT" in chains:
        mappings_left = any(_chain(r) == "CNI-HOSTPORT-DNAT" for r in remaining)
        other_dn = any(c.startswith("CNI-DN-") and c not in own_chains for c in chains)
        if not mappings_left and not other_dn:
            for rule in remaining:
                if _target(rule) in SHARED_CHAINS and _chain(rule) not in SHARED_CHAINS:
                    lines.append("-D" + rule[2:])
            drop += [c for c in SHARED_CHAINS if c in chains]
    lines += [f"-F {c}" for c in drop]
    lines += [f"-X {c}" for c in drop]
    return lines


async def remove_network_rules(network: str) -> None:
    """Remove every iptables rule and chain the CNI plugins tagged with `network`."""
    try:
        saved = await _run(["iptables-save"])
    except (OSError, RuntimeError) as exc:
        log.warning("cannot read iptables rules: %s", exc)
        return
    script: list[str] = []
    for table, (chains, rules) in parse_save(saved).items():
        lines = plan(chains, rules, network)
        if lines:
            script += [f"*{table}", *lines, "COMMIT"]
    if not script:
        return
    log.info("removing the iptables rules of network %s", network)
    await _run(["iptables-restore", "--noflush", "-w"], ("\n".join(script) + "\n").encode())


def masquerade_chain(network: str) -> str:
    """The chain of the network's masquerade rules (a name the cleanup sweep recognises)."""
    return "CNI-" + hashlib.sha256(f"{network} {MASQUERADE_ID}".encode()).hexdigest()[:24]


def masquerade_script(saved_nat: str, network: str, subnet: str) -> list[str]:
    """iptables-restore lines (nat table, --noflush) that make the network's masquerade rules
    exactly: traffic from the subnet to outside it (multicast excepted) is masqueraded. Empty
    when they are already in place."""
    chain = masquerade_chain(network)
    net = str(ipaddress.ip_network(subnet, strict=False))
    comment = f'-m comment --comment "name: \\"{network}\\" id: \\"{MASQUERADE_ID}\\""'
    want = [f"-A {chain} -d {net} {comment} -j ACCEPT",
            f"-A {chain} ! -d {MULTICAST} {comment} -j MASQUERADE"]
    chains, rules = parse_save(saved_nat).get("nat", ([], []))
    jump = f"-A POSTROUTING -s {net} {comment} -j {chain}"
    have_jump = any(r.startswith("-A POSTROUTING ") and _target(r) == chain for r in rules)
    current = [r for r in rules if _chain(r) == chain]
    if have_jump and chain in chains and current == want:
        return []
    # Declaring the chain with --noflush creates it or empties it.
    return [f":{chain} - [0:0]", *want, *([] if have_jump else [jump])]


async def ensure_masquerade(network: str, subnet: str) -> None:
    """Put the network's masquerade rules in place (idempotent: one iptables-save when they
    already are)."""
    saved = await _run(["iptables-save", "-t", "nat"])
    lines = masquerade_script(saved, network, subnet)
    if not lines:
        return
    log.info("masquerading traffic from %s leaving it (network %s)", subnet, network)
    script = "\n".join(["*nat", *lines, "COMMIT"]) + "\n"
    await _run(["iptables-restore", "--noflush", "-w"], script.encode())
