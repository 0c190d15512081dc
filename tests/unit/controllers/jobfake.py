"""An in-memory API and informer harness for the batch controllers' unit tests: objects live in
`FakeApi`, a controller's informers are refreshed from it only when a test calls `settle()`
(so tests can also play a stale cache), time is a FakeClock with a fixed wall-clock origin, and
events land in a list."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from typing import Any

from pocketkube.api import errors
from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers.base import InformerFactory

Obj = dict[str, Any]
WALL0 = datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC).timestamp()


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeApi:
    def __init__(self, clock: FakeClock, wall0: float) -> None:
        self.clock = clock
        self.wall0 = wall0 - clock.now()
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.calls: list[tuple] = []
        self._rv = itertools.count(1)
        self._names = itertools.count(1)
        self.fail: dict[str, errors.StatusError] = {}  # verb -> error to raise once

    def now(self) -> str:
        return stamp(self.clock.now() + self.wall0)

    def _check(self, verb: str) -> None:
        if verb in self.fail:
            raise self.fail.pop(verb)

    def _get(self, r: Any, ns: str | None, name: str) -> Obj:
        obj = self.objects.get((r.plural, ns, name))
        if obj is None:
            raise errors.StatusError(404, "NotFound", f'{r.plural} "{name}" not found')
        return obj

    def _store(self, r: Any, obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[(r.plural, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    def of(self, plural: str) -> list[Obj]:
        return [copy.deepcopy(o) for (p, _, _), o in sorted(self.objects.items()) if p == plural]

    def put(self, r: Any, obj: Obj) -> Obj:
        """Store `obj` as given (tests' own writes, e.g. a kubelet's pod status)."""
        return self._store(r, copy.deepcopy(obj))

    def remove(self, plural: str, ns: str | None, name: str) -> None:
        self.objects.pop((plural, ns, name), None)

    async def get(self, r: Any, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("get", r.plural, name))
        self._check("get")
        return copy.deepcopy(self._get(r, namespace, name))

    async def create(self, r: Any, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        self._check("create")
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta["namespace"] = namespace or meta.get("namespace")
        if not meta.get("name"):
            meta["name"] = f"{meta.pop('generateName')}{next(self._names):05d}"
        meta.pop("generateName", None)
        self.calls.append(("create", r.plural, meta["name"]))
        if (r.plural, meta["namespace"], meta["name"]) in self.objects:
            raise errors.StatusError(409, "AlreadyExists",
                                     f'{r.plural} "{meta["name"]}" already exists')
        meta["uid"] = f"uid-{meta['name']}"
        meta["creationTimestamp"] = self.now()
        return self._store(r, obj)

    async def update(self, r: Any, obj: Obj, subresource: str = "", **_: Any) -> Obj:
        meta = obj["metadata"]
        self.calls.append(("update", r.plural, meta["name"], subresource))
        self._check("update")
        cur = self._get(r, meta.get("namespace"), meta["name"])
        if meta.get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise errors.StatusError(409, "Conflict", "the object has been modified")
        new = copy.deepcopy(cur)
        if subresource == "status":
            new["status"] = copy.deepcopy(obj.get("status") or {})
        else:
            new = copy.deepcopy(obj)
        return self._store(r, new)

    async def patch(self, r: Any, name: str, patch: Obj, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str = "", **_: Any) -> Obj:
        self.calls.append(("patch", r.plural, name, patch_type))
        self._check("patch")
        cur = copy.deepcopy(self._get(r, namespace, name))
        meta_patch = dict(patch.get("metadata") or {})
        drop = meta_patch.pop("$deleteFromPrimitiveList/finalizers", None)
        if drop:
            fins = [f for f in cur["metadata"].get("finalizers") or [] if f not in drop]
            cur["metadata"]["finalizers"] = fins
        cur["metadata"].update(meta_patch)
        for k, v in patch.items():
            if k != "metadata":
                cur[k] = copy.deepcopy(v)
        if cur["metadata"].get("deletionTimestamp") and not cur["metadata"].get("finalizers") \
                and r.plural != "pods":
            self.objects.pop((r.plural, namespace, name))
            return cur
        return self._store(r, cur)

    async def delete(self, r: Any, name: str, namespace: str | None = None,
                     **options: Any) -> Obj:
        self.calls.append(("delete", r.plural, name, options))
        self._check("delete")
        cur = self._get(r, namespace, name)
        uid = (options.get("preconditions") or {}).get("uid")
        if uid is not None and uid != cur["metadata"].get("uid"):
            raise errors.StatusError(409, "Conflict", "Precondition failed: UID in precondition")
        if r.plural == "pods" or cur["metadata"].get("finalizers"):
            # Pods terminate gracefully (the test plays the kubelet); finalizers hold others.
            cur["metadata"].setdefault("deletionTimestamp", self.now())
            return self._store(r, cur)
        self.objects.pop((r.plural, namespace, name))
        return copy.deepcopy(cur)


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []  # (object name, type, reason, message)

    def record(self, obj: Obj, type_: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.events]


class Harness:
    """A controller class wired to FakeApi, FakeClock and FakeRecorder."""

    def __init__(self, controller_cls: Any, wall0: float = WALL0, **kwargs: Any) -> None:
        self.clock = FakeClock()
        self.api = FakeApi(self.clock, wall0)
        self.recorder = FakeRecorder()
        self.informers = InformerFactory(self.api)  # type: ignore[arg-type]
        if "recorder" in controller_cls.__init__.__code__.co_varnames:
            kwargs["recorder"] = self.recorder
        self.ctrl = controller_cls(self.api, self.informers, clock=self.clock,
                                   wall=lambda: wall0, **kwargs)

    def settle(self) -> None:
        """Informers catch up with the API (fires the controller's handlers)."""
        for (_, plural), inf in self.informers._informers.items():
            inf._replace(self.api.of(plural))

    async def sync(self, key: str) -> None:
        """Settle the informers and sync `key` now (standing in for the delayed syncs the
        informer events asked for, which are dropped)."""
        self.settle()
        timers = getattr(self.ctrl, "timers", None)
        if timers is not None:
            await timers.cancel()
        await self.ctrl.sync(key)

    def queued(self) -> set[str]:
        return set(self.ctrl.queue._queue)

    def due_in(self, key: str) -> float | None:
        due = self.ctrl.timers.due(key)
        return None if due is None else due - self.clock.now()

    def events(self) -> list[tuple[str, str, str, str]]:
        return self.recorder.events
