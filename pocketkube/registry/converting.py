"""A store serving one version of a resource whose objects live in another version's store:
every object is converted to the storage version on the way in and back on the way out, so all
versions read and write the same objects (and share one watch cache), as in kube."""

from __future__ import annotations

from typing import Any

from pocketkube.api import conversion, errors
from pocketkube.api.resources import Resource
from pocketkube.registry.store import Store, TryUpdate
from pocketkube.registry.strategy import Context

Obj = dict[str, Any]


class ConvertingStore:
    def __init__(self, resource: Resource, inner: Store) -> None:
        self.resource = resource
        self.inner = inner
        self.strategy = inner.strategy
        self.cache = inner.cache
        self.backend = inner.backend
        self.registry = inner.registry
        g, k = resource.group, resource.kind
        self._out = conversion.converter(g, k, inner.resource.version, resource.version)
        self._in = conversion.converter(g, k, resource.version, inner.resource.version)

    def convert_out(self, obj: Obj) -> Obj:
        return self._out(obj)

    def convert_in(self, obj: Obj) -> Obj:
        out = self._in(obj)
        out["kind"] = self.inner.resource.kind
        return out

    def not_found(self, name: str) -> errors.StatusError:
        return self.inner.not_found(name)

    def conflict(self, name: str, why: str | None = None) -> errors.StatusError:
        return self.inner.conflict(name, why)

    def cached(self, ns: str | None, name: str) -> Obj | None:
        obj = self.inner.cached(ns, name)
        return None if obj is None else self._out(obj)

    async def get(self, ns: str | None, name: str, rv: str = "") -> Obj:
        return self._out(await self.inner.get(ns, name, rv))

    async def list(self, *args: Any, **kwargs: Any) -> tuple[list[Obj], str, str]:
        items, rv, cont = await self.inner.list(*args, **kwargs)
        return [self._out(o) for o in items], rv, cont

    async def create(self, ns: str | None, obj: Obj, ctx: Context) -> Obj:
        return self._out(await self.inner.create(ns, self.convert_in(obj), ctx))

    async def update(self, ns: str | None, name: str, obj: Obj, ctx: Context,
                     subresource: str = "") -> tuple[Obj, bool]:
        new, created = await self.inner.update(ns, name, self.convert_in(obj), ctx, subresource)
        return self._out(new), created

    async def delete(self, ns: str | None, name: str, options: Obj, ctx: Context
                     ) -> tuple[Obj, bool]:
        obj, deleted = await self.inner.delete(ns, name, options, ctx)
        return self._out(obj), deleted

    async def prepare_update(self, cur: Obj, new: Obj, ctx: Context, subresource: str) -> Obj:
        """Returns the object in the storage version (it goes straight back to the inner
        store's guaranteed update)."""
        return await self.inner.prepare_update(self.convert_in(cur), self.convert_in(new), ctx,
                                               subresource)

    async def guaranteed_update(self, ns: str | None, name: str, try_update: TryUpdate,
                                ctx: Context, create_missing: bool = False
                                ) -> tuple[Obj, bool]:
        async def inner_try(cur: Obj | None) -> Obj | None:
            result = await try_update(None if cur is None else self._out(cur))
            if result is not None and cur is None:
                return self.convert_in(result)  # a new object, not yet through prepare_update
            return result

        obj, created = await self.inner.guaranteed_update(ns, name, inner_try, ctx,
                                                          create_missing)
        return self._out(obj), created
