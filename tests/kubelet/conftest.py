"""Fixtures for the node agent's tests that need root and runc (they run as root on the
machines pocketkube is tested on; with CI set they fail rather than skip elsewhere)."""

from __future__ import annotations

import pytest

from tests.support.node import check_root


@pytest.fixture
def require_root() -> None:
    check_root()
