"""Make the repository root importable, so these tests can use the shared `tests.support`
helpers however pytest is started (`pytest` does not put the working directory on sys.path)."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
