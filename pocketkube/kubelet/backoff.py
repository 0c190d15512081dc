"""Per-key exponential backoff for container restarts and image pulls, as client-go's
`util/flowcontrol.Backoff` that the kubelet uses for both (10 s doubling up to 300 s).

The rules a user can see in `kubectl describe`:
- a container that exits for the first time restarts at once; each later exit waits the current
  delay, which doubles (10 s, 20 s, 40 s, ... 5m0s) measured from the container's finish time;
- an entry whose last update is more than twice the maximum ago (10 minutes) is forgotten, so a
  container that ran for 10 minutes starts over at 10 s.

Hand-written because the semantics (event time versus last update, the 2 x max expiry) are
kube's own; no library has them. Times are wall-clock seconds from an injected function so
tests drive them with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

INITIAL = 10.0
MAXIMUM = 300.0


@dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    def __init__(self, now: Callable[[], float], initial: float = INITIAL,
                 maximum: float = MAXIMUM) -> None:
        self.now = now
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, _Entry] = {}

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        # Stable once it has been fine for twice the maximum delay.
        return event_time - entry.last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        """The current delay for `key` (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def next(self, key: str, event_time: float) -> None:
        """Record one more failure: start at the initial delay or double the current one."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            entry = self._entries[key] = _Entry(self.initial, 0.0)
        else:
            entry.backoff = min(entry.backoff * 2, self.maximum)
        entry.last_update = self.now()

    def is_in_backoff_since(self, key: str, event_time: float) -> bool:
        """Whether less than the current delay has passed since `event_time` (a container's
        finish time)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            return False
        return self.now() - event_time < entry.backoff

    def is_in_backoff_since_update(self, key: str, event_time: float) -> bool:
        """Whether `event_time` falls within the current delay after the last failure (image
        pulls: the failure time, not a container's)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            return False
        return event_time - entry.last_update < entry.backoff

    def last_update(self, key: str) -> float | None:
        entry = self._entries.get(key)
        return entry.last_update if entry else None

    def remaining(self, key: str, since: float) -> float:
        """Seconds until the delay counted from `since` is over (0 when it already is)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, since + entry.backoff - self.now())

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        """Drop every key of one pod (keys start with its uid)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        """Forget entries not updated for twice the maximum delay."""
        now = self.now()
        for key in [k for k, e in self._entries.items() if now - e.last_update > 2 * self.maximum]:
            del self._entries[key]


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it: "10s", "1m20s", "5m0s", "1.234s", "250ms"."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{_trim(ms)}ms" if ms >= 1 else f"{_trim(seconds * 1e6)}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + f"{_trim(secs)}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"
