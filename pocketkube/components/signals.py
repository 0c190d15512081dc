"""Running one long-lived task until SIGTERM or SIGINT, as every foreground pocketkube command
does (`pocketkube server`, `pocketkube simulate`): the first signal cancels the task for a
graceful stop, a second one exits at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def run_until_signalled(task: asyncio.Task[object], log: logging.Logger, what: str,
                              exit_code_if_done: int = 0) -> int:
    """Await `task`; a signal cancels it. The process exit code: 0 when stopped by a signal, 1
    when the task failed, `exit_code_if_done` when it ended on its own."""
    loop = asyncio.get_running_loop()
    stopping = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping:
            # A second Ctrl-C means "now": skip the rest of the graceful shutdown.
            log.warning("received %s again, exiting immediately", sig.name)
            os._exit(1)
        stopping = True
        log.info("received %s, shutting down", sig.name)
        task.cancel()

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not stopping:
            raise
    except Exception:
        log.exception("%s failed", what)
        return 1
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
    if stopping:
        log.info("stopped")
        return 0
    return exit_code_if_done
