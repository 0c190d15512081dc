"""`pocketkube proxy --cleanup [--service-cidr RANGE]`: remove the iptables chains and rules the
service proxies of this host added — every cluster's (kube-proxy --cleanup), or only those of the
cluster on the given service range. The proxy itself runs inside `pocketkube server` beside the
node agent; `pocketkube delete` removes its cluster's rules by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from pocketkube.cli.ranges import service_range

log = logging.getLogger("pocketkube.proxy")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy", help="service proxy maintenance (--cleanup removes its rules)")
    p.add_argument("--cleanup", action="store_true", required=True,
                   help="remove the iptables chains and rules the service proxy added")
    p.add_argument("--service-cidr", type=service_range, default=None,
                   help="only those of the cluster on this service range (default: every "
                   "cluster's on this host)")


def run(args: argparse.Namespace) -> int:
    from pocketkube.proxy.component import cleanup

    try:
        asyncio.run(cleanup(args.service_cidr))
    except Exception as e:  # noqa: BLE001 - report plainly, exit non-zero
        log.error("cleanup failed: %s", e)
        return 1
    return 0
