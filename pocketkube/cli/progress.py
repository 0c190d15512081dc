"""Step-by-step progress for `pocketkube start`/`stop`, in the style of minikube.

Each step shows a spinner while it runs (on a terminal) and leaves one line behind: a check mark
and its duration, or a cross when it failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape


class StepFailed(Exception):
    """A step could not be completed; the message says why, for the user."""


class Steps:
    def __init__(self, console: Console) -> None:
        self.console = console

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        """Run a step; the yielded callable updates the spinner's detail text."""
        started = time.monotonic()
        with self.console.status(escape(title), spinner="dots") as status:

            def update(detail: str) -> None:
                status.update(f"{escape(title)} [dim]{escape(detail)}[/]")

            try:
                yield update
            except BaseException:
                self.console.print(f"[red]✗[/] {escape(title)}")
                raise
        elapsed = time.monotonic() - started
        self.console.print(f"[green]✓[/] {escape(title)} [dim]({elapsed:.1f}s)[/]")
