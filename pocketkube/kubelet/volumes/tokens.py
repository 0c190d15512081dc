"""Service account tokens for projected volumes, as kube's kubelet token manager
(`pkg/kubelet/token`) keeps them: requested with the TokenRequest API bound to the pod, cached
per (service account, audience, lifetime, pod), and requested again once 80% of the lifetime
has passed (or 24 hours, whichever is sooner), with up to 10 s of jitter so the pods of a node
do not all ask at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pocketkube.api import errors
from pocketkube.kubelet.volumes.common import SetupError

MAX_TTL = 24 * 3600.0
MAX_JITTER = 10.0


class TokenSource(Protocol):
    async def token(self, ns: str, service_account: str, *, audiences: list[str],
                    expiration_seconds: int, pod_name: str, pod_uid: str) -> dict: ...


@dataclass
class _Token:
    token: str
    expires: float  # unix seconds
    ttl: float  # seconds the token was issued for
    jitter: float

    def refresh_at(self) -> float:
        issued = self.expires - self.ttl
        return min(issued + MAX_TTL, self.expires - self.ttl * 0.2) - self.jitter


def _parse_time(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class TokenManager:
    def __init__(self, source: TokenSource, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.clock = clock
        self._cache: dict[tuple[str, str, str, int, str], _Token] = {}

    async def get(self, pod: dict[str, Any], audience: str, expiration_seconds: int) -> str:
        """The token for the pod's service account (requested if missing or due)."""
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        ns, uid = meta.get("namespace", ""), meta.get("uid", "")
        sa = spec.get("serviceAccountName") or "default"
        key = (ns, sa, audience, expiration_seconds, uid)
        cached = self._cache.get(key)
        if cached is not None and self.clock() < cached.refresh_at():
            return cached.token
        try:
            tr = await self.source.token(
                ns, sa, audiences=[audience] if audience else [],
                expiration_seconds=expiration_seconds, pod_name=meta.get("name", ""),
                pod_uid=uid)
        except errors.StatusError as e:
            if cached is not None and self.clock() < cached.expires:
                return cached.token  # still valid: keep serving it and try again later
            raise SetupError(f"failed to fetch token: {e.message}") from None
        status = tr.get("status") or {}
        ttl = float((tr.get("spec") or {}).get("expirationSeconds") or expiration_seconds)
        expires = _parse_time(status["expirationTimestamp"]) if status.get(
            "expirationTimestamp") else self.clock() + ttl
        self._cache[key] = _Token(status.get("token", ""), expires, ttl,
                                  random.uniform(0, MAX_JITTER))
        return status.get("token", "")

    def next_refresh(self, pod_uid: str) -> float | None:
        """When the earliest of the pod's tokens needs renewing (unix seconds)."""
        times = [t.refresh_at() for k, t in self._cache.items() if k[4] == pod_uid]
        return min(times) if times else None

    def forget(self, pod_uid: str) -> None:
        for key in [k for k in self._cache if k[4] == pod_uid]:
            del self._cache[key]
