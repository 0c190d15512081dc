"""What every in-process component (scheduler, controller manager, node agents, proxy, DNS)
receives from the command that composes the cluster: an API client of its own, a place to report
its health, and the cluster configuration. Components talk to each other only through the API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pocketkube.client.rest import ApiClient
from pocketkube.config import ServerConfig

HealthCheck = Callable[[], Awaitable[tuple[bool, str]]]


@dataclass
class ComponentContext:
    name: str
    config: ServerConfig
    client: ApiClient
    options: dict[str, Any] = field(default_factory=dict)
    # Set by the component: reported as its componentstatus and in /readyz.
    health: HealthCheck | None = None


Component = Callable[[ComponentContext], Awaitable[None]]
