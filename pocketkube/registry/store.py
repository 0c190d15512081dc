"""The generic store for one resource: kube's `genericregistry.Store`.

Create, get, list, update (guaranteed update: re-read and retry on conflict), delete (graceful
deletion, finalizers, propagation policy, preconditions) and dry-run, all through the storage
backend and the watch cache, with the resource's strategy deciding what changes. A failed request
stores nothing: every check runs before the single compare-and-swap that commits the write.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pocketkube.api import errors
from pocketkube.api.resources import Resource
from pocketkube.api.selectors import FieldSelector, LabelSelector
from pocketkube.registry import codec, deletion, fields, listing
from pocketkube.registry.codec import decode, encode, now_rfc3339
from pocketkube.registry.strategy import Context, Obj, Strategy
from pocketkube.storage.cacher import ResourceCache
from pocketkube.storage.interface import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
)

if TYPE_CHECKING:
    from pocketkube.registry.registry import Registry

log = logging.getLogger("pocketkube.apiserver.store")

MAX_OBJECT_BYTES = 1536 * 1024  # etcd's default request limit, 1.5 MiB
UPDATE_RETRIES = 16
TryUpdate = Callable[[Obj | None], Awaitable[Obj | None]]


class Store:
    def __init__(self, resource: Resource, strategy: Strategy, registry: Registry) -> None:
        self.resource = resource
        self.strategy = strategy
        self.registry = registry
        self.backend = registry.backend
        self.cache: ResourceCache = registry.cache.register(resource.key_prefix)

    def convert_out(self, obj: Obj) -> Obj:
        """The object as this store's version serves it (stored objects are already)."""
        return obj

    # -- errors -------------------------------------------------------------------------------
    def not_found(self, name: str) -> errors.StatusError:
        return errors.not_found(self.resource.plural, name, self.resource.group)

    def conflict(self, name: str, why: str | None = None) -> errors.StatusError:
        return errors.conflict(self.resource.plural, name, self.resource.group, why)

    def key(self, ns: str | None, name: str) -> str:
        return self.resource.key(ns, name)

    # -- reads --------------------------------------------------------------------------------
    async def get(self, ns: str | None, name: str, rv: str = "") -> Obj:
        key = self.key(ns, name)
        if rv == "0":
            obj = self.cache.items.get(key)
        else:
            try:
                kv = await self.backend.get(key)
            except CompactedError as e:
                raise errors.gone(f"too old resource version: {rv} ({e.compacted})") from None
            obj = decode(kv) if kv else None
        if obj is None:
            raise self.not_found(name)
        return obj

    def cached(self, ns: str | None, name: str) -> Obj | None:
        return self.cache.items.get(self.key(ns, name))

    async def list(self, ns: str | None, labels: LabelSelector, fields_: FieldSelector,
                   rv: str = "", rv_match: str = "", limit: int = 0,
                   cont: str = "") -> tuple[list[Obj], str, str]:
        """(items, list resourceVersion, continue token)."""
        match = listing.matcher(labels, fields_)
        prefix = self.resource.prefix(ns)
        if cont or (limit and rv != "0" and rv_match != "NotOlderThan") or rv_match == "Exact":
            return await self._list_from_store(prefix, match, rv, rv_match, limit, cont)
        if rv in ("", None):
            if not await self.registry.cache.wait_fresh():
                raise errors.timeout("Too large resource version: the watch cache is behind")
        elif rv != "0":
            want = listing.parse_rv(rv)
            if not await self.registry.cache.wait_for(want):
                raise errors.StatusError(
                    504, "Timeout",
                    f"Timeout: Too large resource version: {want}, current: "
                    f"{self.registry.cache.revision}", {"retryAfterSeconds": 1})
        items = self.cache.snapshot(prefix, match)
        return items, str(self.registry.cache.revision), ""

    async def _list_from_store(self, prefix: str, match: Callable[[Obj], bool] | None, rv: str,
                               rv_match: str, limit: int, cont: str) -> tuple[list[Obj], str, str]:
        revision, start = 0, None
        if cont:
            revision, start = listing.parse_continue(cont)
        elif rv not in ("", "0"):
            revision = listing.parse_rv(rv)
        out: list[Obj] = []
        last_key = ""
        more = True
        try:
            while more and (not limit or len(out) < limit):
                want = (limit - len(out)) if limit else 0
                kvs, read_rev, more = await self.backend.list(prefix, revision, want, start)
                revision = read_rev
                for kv in kvs:
                    last_key = kv.key
                    obj = decode(kv)
                    if match is None or match(obj):
                        out.append(obj)
                if kvs:
                    start = kvs[-1].key + "\x00"
                if not kvs:
                    more = False
        except CompactedError as e:
            if cont:
                raise errors.gone(listing.EXPIRED_CONTINUE) from None
            raise errors.gone(f"too old resource version: {rv} ({e.compacted})") from None
        token = listing.continue_token(revision, last_key) if more and limit else ""
        return out, str(revision), token

    # -- writes -------------------------------------------------------------------------------
    def _check_size(self, data: bytes) -> None:
        if len(data) > MAX_OBJECT_BYTES:
            raise errors.StatusError(
                413, "RequestEntityTooLarge",
                f"Request entity too large: the {self.resource.kind} is {len(data)} bytes, "
                f"over the {MAX_OBJECT_BYTES} byte limit of stored objects")

    def _invalid(self, obj: Obj, causes: list[dict[str, str]]) -> errors.StatusError:
        name = (obj.get("metadata") or {}).get("name", "")
        return errors.invalid(self.resource.kind, name, causes, self.resource.group)

    async def create(self, ns: str | None, obj: Obj, ctx: Context) -> Obj:
        st = self.strategy
        ctx.now = ctx.now or now_rfc3339()
        obj = st.copy(obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if self.resource.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        fields.check_types(self.resource, obj)
        fields.check_unknown(self.resource, obj, ctx)
        st.prepare_for_create(obj, ctx)
        st.defaults(obj)
        causes = st.validate(obj, None)
        if causes:
            raise self._invalid(obj, causes)
        if self.resource.namespaced:
            await self.registry.admit_namespace(self.resource, ns or "", meta.get("name", ""))
        await st.admit(obj, None, ctx)
        fields.track(self.resource, None, obj, ctx, "Update", None)
        data = encode(obj)
        try:
            self._check_size(data)
            if ctx.dry_run:
                if await self.backend.get(self.key(ns, meta["name"])) is not None:
                    raise errors.already_exists(self.resource.plural, meta["name"],
                                                self.resource.group)
                await st.release(obj)
                return obj
            rev = await self.backend.create(self.key(ns, meta["name"]), data)
        except KeyExistsError:
            await st.release(obj)
            raise errors.already_exists(self.resource.plural, meta["name"],
                                        self.resource.group) from None
        except errors.StatusError:
            await st.release(obj)
            raise
        # `fields.track` may have replaced the metadata dict: write into the current one.
        obj["metadata"]["resourceVersion"] = str(rev)
        return obj

    async def guaranteed_update(self, ns: str | None, name: str, try_update: TryUpdate,
                                ctx: Context, create_missing: bool = False
                                ) -> tuple[Obj, bool]:
        """Re-read and retry `try_update(current)` until the compare-and-swap lands.
        Returns (object, created). `try_update` returning None means "no change"."""
        key = self.key(ns, name)
        ctx.now = ctx.now or now_rfc3339()
        for _ in range(UPDATE_RETRIES):
            kv = await self.backend.get(key)
            if kv is None:
                if not create_missing:
                    raise self.not_found(name)
                new = await try_update(None)
                if new is None:
                    raise self.not_found(name)
                return await self.create(ns, new, ctx), True
            cur = decode(kv)
            new = await try_update(cur)
            if new is None:
                return cur, False
            if codec.deleted_by_update(new) and not self.strategy.holds_deletion(new):
                try:
                    return await deletion.delete_now(self, key, kv, cur, ctx), False
                except ConflictError:
                    continue
            if codec.unchanged(new, cur):
                return cur, False  # no-op: kube skips the write and keeps the resourceVersion
            data = encode(new)
            self._check_size(data)
            if ctx.dry_run:
                return new, False
            try:
                rev = await self.backend.update(key, data, kv.mod_revision)
            except ConflictError:
                continue
            except KeyNotFoundError:
                raise self.not_found(name) from None
            new["metadata"]["resourceVersion"] = str(rev)
            return new, False
        raise self.conflict(name, "the object is being changed too often; try again")

    async def update(self, ns: str | None, name: str, obj: Obj, ctx: Context,
                     subresource: str = "") -> tuple[Obj, bool]:
        """PUT: replace the object (or its status) with `obj`."""
        st = self.strategy
        want_rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        if not want_rv and not st.allow_unconditional_update:
            raise self._invalid(obj, [errors.field_error(
                "FieldValueRequired", "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update")])

        async def try_update(cur: Obj | None) -> Obj | None:
            if cur is None:
                return obj
            if want_rv and want_rv != cur["metadata"].get("resourceVersion"):
                raise self.conflict(name)
            return await self.prepare_update(cur, st.copy(obj), ctx, subresource)

        create = st.allow_create_on_update and not subresource
        return await self.guaranteed_update(ns, name, try_update, ctx, create_missing=create)

    async def prepare_update(self, cur: Obj, new: Obj, ctx: Context, subresource: str) -> Obj:
        """Run the update pipeline on `new` (a fresh copy the caller owns) against `cur`."""
        st = self.strategy
        meta = new.setdefault("metadata", {})
        uid = meta.get("uid")
        if uid and uid != cur["metadata"].get("uid"):
            # genericregistry.Store: a uid in the update is a precondition.
            raise self.conflict(cur["metadata"].get("name", ""),
                                f"Precondition failed: UID in precondition: {uid}, UID in "
                                f"object meta: {cur['metadata'].get('uid', '')}")
        if self.resource.namespaced:
            meta["namespace"] = cur["metadata"].get("namespace")
        fields.check_types(self.resource, new)
        fields.check_unknown(self.resource, new, ctx)
        if subresource == "status":
            new = st.prepare_for_status_update(new, cur, ctx)
            causes = st.validate_status(new, cur)
        else:
            st.prepare_for_update(new, cur, ctx)
            st.defaults(new)
            causes = st.validate(new, cur)
        if causes:
            raise self._invalid(new, causes)
        await st.admit(new, cur, ctx)
        fields.track(self.resource, cur, new, ctx, "Update", subresource or None)
        return new

    async def delete(self, ns: str | None, name: str, options: Obj, ctx: Context
                     ) -> tuple[Obj, bool]:
        """(object, deleted now). Not deleted now means graceful deletion or finalizers hold it."""
        return await deletion.delete(self, ns, name, options, ctx)
