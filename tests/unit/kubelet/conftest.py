"""The fake kubelet harness (fakes.Harness) the kubelet's unit tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.kubelet.fakes import Harness


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        await harness.close()
