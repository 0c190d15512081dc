"""`pocketkube proxy --cleanup`: remove every iptables chain and rule the service proxy added
(kube-proxy --cleanup). The proxy itself runs inside `pocketkube server` beside the node agent.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

log = logging.getLogger("pocketkube.proxy")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy", help="service proxy maintenance (--cleanup removes its rules)")
    p.add_argument("--cleanup", action="store_true", required=True,
                   help="remove the iptables chains and rules the service proxy added")


def run(args: argparse.Namespace) -> int:
    from pocketkube.proxy.component import cleanup

    try:
        asyncio.run(cleanup())
    except Exception as e:  # noqa: BLE001 - report plainly, exit non-zero
        log.error("cleanup failed: %s", e)
        return 1
    return 0
