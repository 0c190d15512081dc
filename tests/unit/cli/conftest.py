"""Fixtures for the `pocketkube` command tests: an isolated home, kubeconfig and data dirs,
free ports, and an in-process runner for `pocketkube.cli.main.main`."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pocketkube.cli import main as cli_main


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, KUBECONFIG and POCKETKUBE_HOME inside tmp_path; returns the kubeconfig path."""
    home = tmp_path / "home"
    home.mkdir()
    kubeconfig = home / ".kube" / "config"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("POCKETKUBE_HOME", str(home / ".pocketkube"))
    return kubeconfig


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """Run the `pocketkube` command in-process; it may still start real server processes."""
    # main() configures the root logger for a real process; keep pytest's logging intact.
    monkeypatch.setattr(cli_main, "_configure_logging", lambda level: None)

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = cli_main.main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def free_port() -> Callable[[], int]:
    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    return pick
