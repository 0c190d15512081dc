"""The `pocketkube` command: argument parsing and dispatch to the command modules.

`server` runs the control plane in the foreground (server.py); `start`, `stop` and `delete`
manage it as a background process (lifecycle.py); `status` and `version` ask it (status.py);
`simulate` runs simulated nodes against any cluster (pocketkube/simulator); `agent` runs a node
agent for a cluster elsewhere (cli/agent.py); `image` manages the node's images (cli/image.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from rich.console import Console

from pocketkube import __version__
from pocketkube.cli import lifecycle, ranges, status
from pocketkube.cli.instance import Instance
from pocketkube.cli.nodeparts import disable_list, upstream_list
from pocketkube.cli.server import run_server
from pocketkube.config import default_data_dir

LOG_LEVELS = ("debug", "info", "warning", "error")


def datastore(value: str) -> str:
    """Validate --datastore: `sqlite` or `etcd://host:port[,host:port]`."""
    if value == "sqlite":
        return value
    if value.startswith("etcd://"):
        endpoints = value.removeprefix("etcd://").split(",")
        if all(_host_port(e) for e in endpoints):
            return value
    raise argparse.ArgumentTypeError(f"{value!r}: expected sqlite or etcd://host:port[,host:port]")


def _host_port(endpoint: str) -> bool:
    host, sep, port = endpoint.rpartition(":")
    return bool(host) and bool(sep) and port.isdigit() and 0 < int(port) < 65536


def port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port")
    return int(value)


def count(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a non-negative integer")
    return int(value)


def positive(value: str) -> int:
    n = count(value)
    if n == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pocketkube",
        description="Kubernetes in a Python package: the real API, driven by the real kubectl.",
    )
    parser.add_argument("--version", action="version", version=f"pocketkube {__version__}")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="cluster state directory (default $POCKETKUBE_HOME or ~/.pocketkube)",
    )
    serving = argparse.ArgumentParser(add_help=False)
    serving.add_argument("--port", type=port, help="API server port (default 6443)")
    serving.add_argument("--bind-address", help="address to listen on (default 127.0.0.1)")
    serving.add_argument(
        "--datastore", type=datastore, help="sqlite (default) or etcd://host:port[,host:port]"
    )
    serving.add_argument("--log-level", choices=LOG_LEVELS, help="server log level (default info)")
    serving.add_argument(
        "--simulated-nodes",
        type=count,
        metavar="N",
        help="also run N simulated nodes in-process (default 0, remembered)",
    )
    serving.add_argument(
        "--node-agent",
        action=argparse.BooleanOptionalAction,
        help="run this machine as a node of the cluster, with real containers (default: yes, "
        "remembered)",
    )
    serving.add_argument(
        "--node-runtime", choices=("auto", "runc", "process"),
        help="how the node agent runs containers: runc when root and installed (auto, the "
        "default), runc, or plain host processes (remembered)",
    )
    serving.add_argument(
        "--disable", type=disable_list, metavar="PART[,PART]",
        help="parts of the node not to run: proxy, cluster-dns (remembered)",
    )
    serving.add_argument(
        "--dns-upstream", type=upstream_list, metavar="IP[:PORT][,…]|none",
        help="where cluster DNS forwards names outside the cluster (default: this host's "
        "resolv.conf nameservers; none: nowhere) (remembered)",
    )
    serving.add_argument(
        "--cluster-cidr", type=ranges.pod_range,
        help="pod address range, a /16 or larger (default 10.244.0.0/16, or the next free "
        "one for a new cluster when another uses it on this host; remembered)",
    )
    serving.add_argument(
        "--service-cidr", type=ranges.service_range,
        help="Service ClusterIP range, /12 to /24 (default 10.96.0.0/12, or the next free "
        "one for a new cluster when another uses it on this host; remembered)",
    )
    serving.add_argument(
        "--components-in-process",
        action=argparse.BooleanOptionalAction,
        help="run the controllers, scheduler and simulated nodes in the API server's process "
        "instead of a second one (default: a second process, remembered)",
    )
    # The control plane entry point (module:function or file.py:function), for testing.
    serving.add_argument("--app", help=argparse.SUPPRESS)

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "server", parents=[data, serving], help="run the control plane in the foreground"
    )
    start = sub.add_parser(
        "start", parents=[data, serving], help="start a cluster in the background"
    )
    start.add_argument(
        "--wait-timeout", type=float, default=60.0, help="seconds to wait for the API (default 60)"
    )
    for name, text in (("stop", "stop the cluster"), ("delete", "stop and delete the cluster")):
        cmd = sub.add_parser(name, parents=[data], help=text)
        cmd.add_argument(
            "--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)"
        )
    sub.add_parser("status", parents=[data], help="show whether the cluster runs and its health")
    sub.add_parser("version", parents=[data], help="print the client and server versions")
    simulate = sub.add_parser(
        "simulate", help="run simulated nodes against a cluster until interrupted"
    )
    simulate.add_argument(
        "--nodes", type=positive, required=True, metavar="N", help="number of nodes"
    )
    simulate.add_argument("--cpu", default="4", help="CPU capacity of each node (default 4)")
    simulate.add_argument(
        "--memory", default="16Gi", help="memory capacity of each node (default 16Gi)"
    )
    simulate.add_argument(
        "--pods", type=positive, default=110, help="pod capacity of each node (default 110)"
    )
    simulate.add_argument(
        "--name-prefix", default="sim-", help="node names are PREFIX0, PREFIX1, … (default sim-)"
    )
    simulate.add_argument(
        "--kubeconfig", type=Path, help="cluster to join (default $KUBECONFIG or ~/.kube/config)"
    )
    simulate.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    scheduler = sub.add_parser(
        "scheduler", help="run the scheduler against a cluster (leader-elected) until interrupted"
    )
    scheduler.add_argument(
        "--kubeconfig", type=Path, help="cluster to join (default $KUBECONFIG or ~/.kube/config)"
    )
    scheduler.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    from pocketkube.cli import agent, image, proxy, service

    agent.add_parser(sub, LOG_LEVELS)
    proxy.add_parser(sub)
    image.add_parser(sub, [data])
    service.add_parser(sub, [data])
    return parser


def _absolute_app(spec: str | None) -> str | None:
    # A file path in --app must survive the server's change of working directory.
    if spec is None:
        return None
    target, _, attr = spec.rpartition(":")
    return f"{Path(target).resolve()}:{attr}" if target.endswith(".py") else spec


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "scheduler":
        return _scheduler(args)
    if args.command == "agent":
        from pocketkube.cli import agent

        _configure_logging(args.log_level)
        return agent.run(args)
    if args.command == "proxy":
        from pocketkube.cli import proxy

        _configure_logging("info")
        return proxy.run(args)
    if args.command == "image":
        from pocketkube.cli import image

        _configure_logging("warning")
        args.data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
        return image.run(args)
    if args.command == "service":
        from pocketkube.cli import service

        _configure_logging("warning")
        return service.run(args)
    instance = Instance(args.data_dir or default_data_dir())
    # soft_wrap: never break paths and URLs across lines (output is often piped or parsed).
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    if args.command in ("server", "start"):
        given = {
            "port": args.port,
            "bind_address": args.bind_address,
            "datastore": args.datastore,
            "log_level": args.log_level,
            "app": _absolute_app(args.app),
            "simulated_nodes": args.simulated_nodes,
            "node_agent": args.node_agent,
            "cluster_cidr": args.cluster_cidr,
            "service_cidr": args.service_cidr,
            "node_runtime": args.node_runtime,
            "disable": args.disable,
            "dns_upstreams": args.dns_upstream,
            "components_in_process": args.components_in_process,
        }
        options = instance.options(given)
        if not instance.has_config():
            for note in ranges.settle_new_cluster(options, given):
                err.print(f"[yellow]Note:[/] {note}")
        problem = ranges.overlap_error(options.cluster_cidr, options.service_cidr)
        if problem:
            err.print(f"[red]Error:[/] {problem}")
            return 2
        if args.command == "server":
            _configure_logging(options.log_level)
            if options.components_in_process:
                from pocketkube.cli.compose import IN_PROCESS_ENV

                os.environ[IN_PROCESS_ENV] = "1"
            return run_server(instance, options)
        _configure_logging("warning")
        return lifecycle.start(instance, options, out, err, args.wait_timeout)
    _configure_logging("warning")
    if args.command == "stop":
        return lifecycle.stop(instance, out, args.timeout)
    if args.command == "delete":
        return lifecycle.delete(instance, out, err, args.timeout)
    if args.command == "status":
        return status.status(instance, out)
    return status.version(instance, out)


def _simulate(args: argparse.Namespace) -> int:
    from pocketkube.simulator.component import default_kubeconfig, run_standalone

    _configure_logging(args.log_level)
    options = {
        "nodes": args.nodes,
        "cpu": args.cpu,
        "memory": args.memory,
        "pods": args.pods,
        "name_prefix": args.name_prefix,
    }
    return run_standalone(args.kubeconfig or default_kubeconfig(), options)


def _scheduler(args: argparse.Namespace) -> int:
    from pocketkube.scheduler.command import run_standalone
    from pocketkube.simulator.component import default_kubeconfig

    _configure_logging(args.log_level)
    return run_standalone(args.kubeconfig or default_kubeconfig())


if __name__ == "__main__":
    sys.exit(main())
