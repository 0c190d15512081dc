"""Finding and removing the iptables rules the CNI plugins left for one network.

The bridge plugin (ipMasq) adds, per container, a chain `CNI-<hash>` and a POSTROUTING jump to it;
portmap adds a `CNI-DN-<hash>` chain and a jump from the shared `CNI-HOSTPORT-DNAT` chain. Every
one of those rules carries a comment `name: "<network>" id: "<container>"`, which is how ours are
told apart from other networks' (another cluster on the same host). DEL removes them normally;
this is the sweep for what DEL could not reach (a namespace deleted before DEL, an agent killed
mid-setup) when a cluster is deleted. portmap's shared chains (CNI-HOSTPORT-*) and their jumps
are removed only when no network has a hostPort mapping left in them.

The edit is one `iptables-restore --noflush` transaction built from `iptables-save` output, so
the rule text is exactly what iptables printed and the change is atomic.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex

log = logging.getLogger(__name__)

SHARED_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")
_TARGET = re.compile(r"(?:^|\s)-[jg] (\S+)")


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
