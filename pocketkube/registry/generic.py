"""Strategies for kinds that differ from the default in small ways only: which kinds count a
generation, which keep client-set status on create, what status new objects start with."""

from __future__ import annotations

from pocketkube.api import defaulting
from pocketkube.registry.strategy import Context, Obj, Strategy


class GenerationStrategy(Strategy):
    """Workloads and policies: spec changes move metadata.generation."""

    tracks_generation = True


class JobStrategy(GenerationStrategy):
    def prepare_for_create(self, obj: Obj, ctx: Context) -> None:
        super().prepare_for_create(obj, ctx)
        # Selector and pod labels derived from the job's uid (unless manualSelector).
        defaulting.job_prepare_for_create(obj, obj["metadata"]["uid"])


class NodeStrategy(Strategy):
    """The node agent registers its Node with status; kube keeps it."""

    keep_status_on_create = True
    allow_create_on_update = False


class PhaseStrategy(Strategy):
    """PersistentVolumes and claims start Pending."""

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending"}


class CreateOnUpdateStrategy(Strategy):
    """Endpoints and leases may be created by PUT (their writers do not know whether they
    exist)."""

    allow_create_on_update = True
