"""Fixtures for the node agent's tests that need root and runc (they run as root on the
machines pocketkube is tested on; with CI set they fail rather than skip elsewhere)."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def require_root() -> None:
    missing = [tool for tool in ("runc", "conmon", "ip", "iptables") if not shutil.which(tool)]
    problem = ""
    if os.geteuid() != 0:
        problem = "these tests need root"
    elif missing:
        problem = f"these tests need {', '.join(missing)} (make test installs them)"
    if not problem:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)
