"""Invoking CNI plugin executables the way the CNI specification (1.0) describes.

A plugin is an executable in the plugin directory: its parameters come in environment variables
(CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH), its network
configuration as JSON on stdin, and it answers with a JSON result (ADD) or a JSON error object
and a non-zero exit status. A network configuration list runs its plugins in order for ADD and
CHECK, each one receiving the previous result as `prevResult`, and in reverse order for DEL.
libcni (Go) does this for Go programs; the protocol is small enough to speak directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CNI_VERSION = "1.0.0"


class CniError(Exception):
    """A plugin failed; the message carries the plugin's own error text."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        text = f"plugin type={plugin!r} failed ({command}): {msg}"
        if details:
            text += f": {details}"
        super().__init__(text)
        self.plugin = plugin
        self.command = command
        self.code = code
        self.msg = msg


@dataclass
class Invocation:
    """The runtime parameters of one ADD/CHECK/DEL."""

    container_id: str
    netns: str
    ifname: str
    args: list[tuple[str, str]] = field(default_factory=list)  # CNI_ARGS key=value pairs
    runtime_config: dict = field(default_factory=dict)  # capability name -> value


def plugin_config(network: dict, plugin: dict, inv: Invocation, prev: dict | None) -> dict:
    """The stdin JSON for one plugin of a configuration list: the plugin's own keys plus the
    list's name and version, the capabilities it asked for (runtimeConfig) and prevResult."""
    conf = dict(plugin)
    conf["name"] = network["name"]
    conf["cniVersion"] = network["cniVersion"]
    caps = plugin.get("capabilities") or {}
    runtime = {k: v for k, v in inv.runtime_config.items() if caps.get(k)}
    if runtime:
        conf["runtimeConfig"] = runtime
    conf.pop("capabilities", None)
    if prev is not None:
        conf["prevResult"] = prev
    return conf


async def exec_plugin(plugin_dir: Path, command: str, conf: dict, inv: Invocation) -> dict | None:
    """Run one plugin; its parsed result (ADD), None for DEL/CHECK. Raises CniError."""
    kind = conf["type"]
    binary = plugin_dir / kind
    if not binary.exists():
        raise CniError(kind, command, 1, f"failed to find plugin {kind!r} in path [{plugin_dir}]")
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": inv.container_id,
        "CNI_NETNS": inv.netns,
        "CNI_IFNAME": inv.ifname,
        "CNI_PATH": str(plugin_dir),
    }
    if inv.args:
        env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in inv.args)
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(json.dumps(conf).encode())
    if err.strip():
        log.debug("cni %s %s stderr: %s", kind, command, err.decode(errors="replace").strip())
    if proc.returncode != 0:
        try:
            obj = json.loads(out)
            raise CniError(kind, command, int(obj.get("code", 0)), str(obj.get("msg", "")),
                           str(obj.get("details", "")))  # fmt: skip
        except (ValueError, AttributeError):
            text = (out or err).decode(errors="replace").strip()
            raise CniError(kind, command, proc.returncode or 1, text or "no output") from None
    if command != "ADD":
        return None
    try:
        result = json.loads(out)
    except ValueError:
        raise CniError(kind, command, 1, f"invalid result: {out[:200]!r}") from None
    if not isinstance(result, dict):
        raise CniError(kind, command, 1, f"invalid result: {out[:200]!r}")
    return result


async def add_list(plugin_dir: Path, network: dict, inv: Invocation) -> dict:
    """ADD through every plugin of the list in order; the final result."""
    prev: dict | None = None
    for plugin in network["plugins"]:
        conf = plugin_config(network, plugin, inv, prev)
        prev = await exec_plugin(plugin_dir, "ADD", conf, inv)
    return prev or {}


async def check_list(plugin_dir: Path, network: dict, inv: Invocation, prev: dict) -> None:
    """CHECK every plugin of the list in order against the cached ADD result."""
    for plugin in network["plugins"]:
        await exec_plugin(plugin_dir, "CHECK", plugin_config(network, plugin, inv, prev), inv)


async def del_list(plugin_dir: Path, network: dict, inv: Invocation, prev: dict | None) -> None:
    """DEL through the list in reverse order. Every plugin runs even if one fails (so nothing
    is left behind needlessly); the first failure is raised at the end."""
    first: CniError | None = None
    for plugin in reversed(network["plugins"]):
        try:
            await exec_plugin(plugin_dir, "DEL", plugin_config(network, plugin, inv, prev), inv)
        except CniError as exc:
            log.warning("%s", exc)
            first = first or exc
    if first is not None:
        raise first


def result_ips(result: dict) -> list[str]:
    """The pod's addresses in a CNI result: the `ips` on interfaces inside the sandbox (or every
    entry when the plugin named no interface), without prefix length, IPv4 first."""
    interfaces = result.get("interfaces") or []
    ips: list[str] = []
    for entry in result.get("ips") or []:
        idx = entry.get("interface")
        named = isinstance(idx, int) and 0 <= idx < len(interfaces)
        if named and not interfaces[idx].get("sandbox"):
            continue
        address = str(entry.get("address", "")).split("/")[0]
        if address and address not in ips:
            ips.append(address)
    return sorted(ips, key=lambda a: ":" in a)
