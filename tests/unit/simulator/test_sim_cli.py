"""How the command line turns simulated nodes on: `--simulated-nodes N` on server/start
(remembered like the other options) and the `simulate` command's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pocketkube.cli.instance import Instance
from pocketkube.cli.main import build_parser
from pocketkube.simulator import component


def given(args: list[str]) -> dict:
    ns = build_parser().parse_args(args)
    return {"port": ns.port, "simulated_nodes": ns.simulated_nodes, "node_agent": ns.node_agent}


def test_simulated_nodes_flag_adds_the_component_and_is_remembered(tmp_path: Path) -> None:
    instance = Instance(tmp_path / "c")
    instance.mark()
    options = instance.options(given(["start", "--simulated-nodes", "3", "--no-node-agent"]))
    assert options.simulated_nodes == 3
    config = instance.server_config(options)
    assert config.components == {"simulated-nodes": component.run}
    assert config.component_options == {"simulated-nodes": {"nodes": 3}}
    instance.save_options(options)
    # `start` runs `server` without the flag: the remembered value applies, 0 turns it off.
    assert instance.options(given(["server"])).simulated_nodes == 3
    off = instance.options(given(["server", "--simulated-nodes", "0"]))
    assert instance.server_config(off).components == {}
    # The real node is on unless turned off (and remembered like the rest).
    on = instance.options(given(["server", "--node-agent"]))
    assert set(instance.server_config(on).components) == {
        "node-agent", "proxy", "cluster-dns", "simulated-nodes"}


def test_simulated_nodes_must_be_a_count() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["server", "--simulated-nodes", "-1"])


def test_simulate_options() -> None:
    ns = build_parser().parse_args(["simulate", "--nodes", "5"])
    assert (ns.nodes, ns.cpu, ns.memory, ns.pods, ns.name_prefix, ns.kubeconfig) == (
        5, "4", "16Gi", 110, "sim-", None)  # fmt: skip
    ns = build_parser().parse_args(["simulate", "--nodes", "2", "--cpu", "8", "--memory", "1Gi",
                                    "--pods", "30", "--name-prefix", "x-",
                                    "--kubeconfig", "/k"])  # fmt: skip
    assert (ns.cpu, ns.memory, ns.pods, ns.name_prefix, ns.kubeconfig) == (
        "8", "1Gi", 30, "x-", Path("/k"))  # fmt: skip
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate"])  # --nodes is required


def test_unknown_component_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown simulated-nodes options: color"):
        component.SimulatorOptions.from_dict({"nodes": 1, "color": "red"})


async def test_health_reports_nodes_and_pods(api: Any) -> None:
    ctx_options = {"nodes": 2, "name_prefix": "h-"}
    sim = component.Simulator(api, component.SimulatorOptions.from_dict(ctx_options))
    assert await sim.health() == (False, "registering nodes: 0/2")
    await sim.nodes.register_all()
    sim.ready.set()
    assert await sim.health() == (True, "2 nodes, 0 pods")
