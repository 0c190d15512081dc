"""ControllerRevisions: the history that StatefulSets and DaemonSets keep of their pod templates
(kube's `pkg/controller/history`).

A revision stores a patch that puts a template back (`{"spec": {"template": {..., "$patch":
"replace"}}}`), a revision number, and is named `<parent>-<hash>`, where the hash is FNV-32 of
the patch plus the parent's collision count, spelled with kube's "safe" alphabet. When a name is
taken by a revision with different data, the collision count goes up and a new name is tried,
as `CreateControllerRevision` does. The hash values need not equal kube's (no client can
recompute them); their shape and the collision rules are what clients see.

Also here: the owner-reference helpers both workload controllers use to own, adopt and release
their pods and revisions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson

from pocketkube.api.errors import StatusError
from pocketkube.api.selectors import LabelSelector
from pocketkube.client.rest import ApiClient, resource

Obj = dict[str, Any]
REVISIONS = resource("apps", "controllerrevisions")
HASH_LABEL = "controller-revision-hash"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString
_NAME_PREFIX_MAX = 223  # 253 minus room for "-" and the hash


# -- owner references and lookups --------------------------------------------------------------------

NAMESPACE_INDEX = "namespace"


def namespace_of(obj: Obj) -> list[str]:
    """Index function: objects by namespace, so a sync reads only its own namespace."""
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def controller_ref(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") is True:
            return ref
    return None


def new_controller_ref(parent: Obj, api_version: str, kind: str) -> Obj:
    meta = parent["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: Obj, parent: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == parent["metadata"].get("uid")


# -- hashing ----------------------------------------------------------------------------------------

def fnv32(data: bytes) -> int:
    """FNV-1 32-bit (Go's hash/fnv New32), which kube hashes revisions with."""
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def safe_encode(s: str) -> str:
    """Map each character onto an alphabet without vowels or look-alikes, so a hash never spells
    a word and is a valid DNS label."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in s)


def canonical(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def hash_revision(data: Obj, collision_count: int | None) -> str:
    raw = canonical(data)
    if collision_count is not None:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32(raw)))


def revision_name(parent_name: str, hash_: str) -> str:
    return f"{parent_name[:_NAME_PREFIX_MAX]}-{hash_}"


def template_patch(parent: Obj) -> Obj:
    """The revision data: a strategic merge patch that restores the parent's pod template."""
    template = copy.deepcopy((parent.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision restores."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template")
                             or {})
    template.pop("$patch", None)
    return template


def new_revision(parent: Obj, api_version: str, kind: str, revision: int,
                 collision_count: int | None, hash_: str | None = None) -> Obj:
    """An unsaved ControllerRevision of `parent`'s current template (history.NewControllerRevision).
    `hash_` overrides the computed hash (a DaemonSet hashes its template its own way)."""
    data = template_patch(parent)
    meta = parent["metadata"]
    h = hash_ or hash_revision(data, collision_count)
    labels = dict((parent["spec"]["template"].get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = h
    rev_meta: Obj = {"name": revision_name(meta["name"], h), "namespace": meta["namespace"],
                     "labels": labels,
                     "ownerReferences": [new_controller_ref(parent, api_version, kind)]}
    if meta.get("annotations"):
        rev_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": rev_meta,
            "data": data, "revision": revision}


# -- ordering and comparison ------------------------------------------------------------------------

def sort_revisions(revisions: list[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name."""
    return sorted(revisions, key=lambda r: (r.get("revision", 0),
                                            r["metadata"].get("creationTimestamp") or "",
                                            r["metadata"]["name"]))


def equal_revision(a: Obj | None, b: Obj | None) -> bool:
    if a is None or b is None:
        return a is b
    return canonical(a.get("data")) == canonical(b.get("data"))


def find_equal_revisions(revisions: list[Obj], needle: Obj) -> list[Obj]:
    return [r for r in revisions if equal_revision(r, needle)]


def next_revision(sorted_revisions: list[Obj]) -> int:
    return sorted_revisions[-1].get("revision", 0) + 1 if sorted_revisions else 1


def truncate(sorted_revisions: list[Obj], live: set[str], limit: int) -> list[Obj]:
    """The revisions to delete so that at most `limit` non-live ones remain, oldest first
    (StatefulSet's truncateHistory: live revisions are never deleted nor counted)."""
    history = [r for r in sorted_revisions if r["metadata"]["name"] not in live]
    if limit < 0 or len(history) <= limit:
        return []
    return history[:len(history) - limit]


# -- writes -----------------------------------------------------------------------------------------

async def create_revision(client: ApiClient, parent: Obj, api_version: str, kind: str,
                          number: int, collision_count: int) -> tuple[Obj, int]:
    """Create a revision of `parent`'s template, moving to the next collision count while its
    name is taken by different data. Returns the stored revision (an existing equal one if there
    is) and the collision count it was named with."""
    while True:
        candidate = new_revision(parent, api_version, kind, number, collision_count)
        try:
            return await client.create(REVISIONS, candidate), collision_count
        except StatusError as e:
            if e.code != 409 or e.reason != "AlreadyExists":
                raise
        existing = await client.get(REVISIONS, candidate["metadata"]["name"],
                                    candidate["metadata"]["namespace"])
        if equal_revision(existing, candidate):
            return existing, collision_count
        collision_count += 1


async def set_revision_number(client: ApiClient, revision: Obj, number: int) -> Obj:
    if revision.get("revision") == number:
        return revision
    meta = revision["metadata"]
    return await client.patch(REVISIONS, meta["name"], {"revision": number}, meta["namespace"])


async def adopt(client: ApiClient, r: Any, obj: Obj, parent: Obj, api_version: str,
                kind: str) -> Obj:
    """Make `parent` the controller of an orphan, guarded by the orphan's uid."""
    meta = obj["metadata"]
    refs = [*(meta.get("ownerReferences") or []), new_controller_ref(parent, api_version, kind)]
    return await client.patch(r, meta["name"], {"metadata": {"ownerReferences": refs,
                                                             "uid": meta["uid"]}},
                              meta["namespace"])


async def release(client: ApiClient, r: Any, obj: Obj, parent: Obj) -> None:
    """Drop `parent`'s reference from an object its selector no longer matches."""
    meta = obj["metadata"]
    refs = [x for x in meta.get("ownerReferences") or []
            if x.get("uid") != parent["metadata"]["uid"]]
    try:
        await client.patch(r, meta["name"], {"metadata": {"ownerReferences": refs,
                                                          "uid": meta["uid"]}},
                           meta["namespace"])
    except StatusError as e:
        if e.code not in (404, 409, 422):
            raise


async def claim(client: ApiClient, parent: Obj, api_version: str, r: Any, candidates: list[Obj],
                selector: LabelSelector, member: Callable[[Obj], bool] | None = None) -> list[Obj]:
    """The objects `parent` controls among `candidates` (ControllerRefManager): its own that still
    match, plus matching orphans it adopts; its own that no longer match are released."""
    deleting = bool(parent["metadata"].get("deletionTimestamp"))
    out = []
    for obj in candidates:
        matches = selector.matches(obj["metadata"].get("labels")) and \
            (member is None or member(obj))
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != parent["metadata"]["uid"]:
                continue
            if matches:
                out.append(obj)
            elif not deleting:
                await release(client, r, obj, parent)
            continue
        if not matches or deleting or obj["metadata"].get("deletionTimestamp"):
            continue
        try:
            out.append(await adopt(client, r, obj, parent, api_version, parent["kind"]))
        except StatusError as e:
            if e.code not in (404, 409, 422):
                raise
    return out
