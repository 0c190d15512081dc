"""`pocketkube scheduler --kubeconfig PATH`: the scheduler as its own process against any
pocketkube cluster. Several may run; the Lease kube-system/kube-scheduler picks the one that
acts. A process that loses leadership starts campaigning again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from pocketkube.client.rest import ApiClient, ClientConfig
from pocketkube.components import ComponentContext
from pocketkube.config import ServerConfig
from pocketkube.scheduler import scheduler

log = logging.getLogger("pocketkube.scheduler")


def run_standalone(kubeconfig: Path) -> int:
    try:
        config = ClientConfig.from_kubeconfig(kubeconfig, user_agent="pocketkube-scheduler")
    except (OSError, KeyError, StopIteration, TypeError, ValueError) as e:
        log.error("cannot use kubeconfig %s: %s", kubeconfig, e)
        return 1
    return asyncio.run(_standalone(config))


async def _standalone(config: ClientConfig) -> int:
    client = ApiClient(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            ctx = ComponentContext("scheduler", ServerConfig(), client)
            task = asyncio.create_task(scheduler.run(ctx))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception as e:
                    log.warning("%s; campaigning again", e)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), 2.0)
    finally:
        await client.close()
    return 0
