"""Schema-driven walks over objects for server-side apply: field sets, comparison, merge, prune.

The same four operations as structured-merge-diff's `typed` package (ToFieldSet, Compare, Merge,
RemoveItems), over plain dicts and the OpenAPI schema of `pocketkube.api.schema`. A node is a
struct (declared properties: its keys are named fields), a map (`additionalProperties`), a list
(`x-kubernetes-list-type` atomic / set / map with `x-kubernetes-list-map-keys`; without one, a
list with patch strategy `merge` counts as map or set, like kube-openapi's schema conversion,
and anything else is atomic), a scalar, or untyped ("deduced": maps granular, lists atomic).
Maps and structs marked `x-kubernetes-map-type: atomic` are a single value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pocketkube.api import schema as sch
from pocketkube.api.patch.fieldpath import (
    FieldSet,
    Path,
    PathElement,
    canonical_json,
)

SCALAR, STRUCT, MAP, LIST, DEDUCED = range(5)


@dataclass(slots=True)
class TypeInfo:
    kind: int
    atomic: bool = False
    fields: dict = field(default_factory=dict)
    elem: Any = None
    list_type: str = ""
    keys: tuple[str, ...] = ()

    def child(self, key: str) -> TypeInfo:
        if self.kind == STRUCT:
            s = self.fields.get(key)
            return info(s) if s is not None else _DEDUCED
        if self.kind == MAP:
            return info(self.elem)
        return _DEDUCED

    def named(self, key: str) -> bool:
        return self.kind == STRUCT and key in self.fields

    def granular_map(self) -> bool:
        return self.kind in (STRUCT, MAP, DEDUCED) and not self.atomic

    def granular_list(self) -> bool:
        return self.kind == LIST and not self.atomic


_DEDUCED = TypeInfo(DEDUCED)
_cache: dict[int, tuple[Any, TypeInfo]] = {}


def info(schema: Any) -> TypeInfo:
    """The TypeInfo of a (field) schema; cached per schema object."""
    if schema is None:
        return _DEDUCED
    hit = _cache.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    ti = _build(schema)
    _cache[id(schema)] = (schema, ti)
    return ti


def _build(s: dict) -> TypeInfo:
    r = sch.resolve(s)
    if r is None or r.get("x-kubernetes-preserve-unknown-fields"):
        return _DEDUCED
    t = sch.types(r)
    if "array" in t:
        lt, keys = sch.list_type(s)
        if not lt:
            lt, keys = sch.list_type(r)
        if not lt:
            strategy, merge_key = sch.patch_strategy(s)
            if "merge" in strategy.split(","):
                lt, keys = ("map", [merge_key]) if merge_key else ("set", [])
        return TypeInfo(LIST, atomic=lt not in ("map", "set"), elem=sch.items(r), list_type=lt,
                        keys=tuple(keys or ()))
    if "object" in t or "properties" in r:
        atomic = (s.get("x-kubernetes-map-type") or r.get("x-kubernetes-map-type")) == "atomic"
        if "properties" in r:
            return TypeInfo(STRUCT, atomic=atomic, fields=r["properties"])
        ap = sch.additional(r)
        if ap is not None:
            return TypeInfo(MAP, atomic=atomic, elem=ap)
        return TypeInfo(DEDUCED, atomic=atomic)
    return TypeInfo(SCALAR)


def item_element(ti: TypeInfo, item: Any, index: int) -> PathElement:
    """How a list item is addressed: by its map keys, by value in a set, else by index."""
    if ti.list_type == "map" and isinstance(item, dict):
        keys = {}
        for k in ti.keys:
            v = item.get(k)
            if v is not None:
                keys[k] = v
            elif k == "protocol":  # the one defaulted list-map key in the built-in schemas
                keys[k] = "TCP"
        if keys:
            return ("k", canonical_json(keys))
    elif ti.list_type == "set":
        return ("v", canonical_json(item))
    return ("i", index)


# -- ToFieldSet ---------------------------------------------------------------------------------


def fields_of(obj: dict, schema: Any) -> FieldSet:
    """The set of fields `obj` sets: scalar and atomic leaves, every list item of a set or map
    list, map entries of maps (not of structs), and empty or null values."""
    out: FieldSet = set()
    _collect(obj, info(schema), (), out)
    return out


def _collect(value: Any, ti: TypeInfo, path: Path, out: FieldSet) -> None:
    if isinstance(value, dict) and ti.granular_map():
        for k, v in value.items():
            p = path + (("f", k),)
            _collect(v, ti.child(k), p, out)
            if v is None or (isinstance(v, dict) and not v) or not ti.named(k):
                out.add(p)
        return
    if isinstance(value, list) and ti.granular_list():
        item_ti = info(ti.elem)
        pes = [item_element(ti, item, i) for i, item in enumerate(value)]
        seen: set[PathElement] = set()
        dups: set[PathElement] = set()
        for pe in pes:
            (dups if pe in seen else seen).add(pe)
        for pe in dups:
            out.add(path + (pe,))
        for pe, item in zip(pes, value, strict=True):
            if pe not in dups:
                p = path + (pe,)
                _collect(item, item_ti, p, out)
                out.add(p)
        return
    if path:
        out.add(path)


# -- Compare ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)


def compare(old: dict, new: dict, schema: Any) -> Comparison:
    """The fields added, modified and removed going from `old` to `new`."""
    res = Comparison()
    _compare(old, new, info(schema), (), res)
    return res


def _same(a: Any, b: Any) -> bool:
    return a is b or (a == b and isinstance(a, bool) == isinstance(b, bool))


def _compare(lhs: Any, rhs: Any, ti: TypeInfo, path: Path, res: Comparison) -> None:
    if _same(lhs, rhs):
        return
    if isinstance(lhs, dict) and isinstance(rhs, dict) and ti.granular_map() and (lhs or rhs):
        for k, lv in lhs.items():
            p = path + (("f", k),)
            if k in rhs:
                _compare(lv, rhs[k], ti.child(k), p, res)
            else:
                _one_side(lv, ti.child(k), p, res.removed)
        for k, rv in rhs.items():
            if k not in lhs:
                _one_side(rv, ti.child(k), path + (("f", k),), res.added)
        return
    if isinstance(lhs, list) and isinstance(rhs, list) and ti.granular_list() and (lhs or rhs):
        _compare_lists(lhs, rhs, ti, path, res)
        return
    if path:
        res.modified.add(path)


def _index(ti: TypeInfo, items: list) -> dict[PathElement, list]:
    out: dict[PathElement, list] = {}
    for i, item in enumerate(items):
        out.setdefault(item_element(ti, item, i), []).append(item)
    return out


def _compare_lists(lhs: list, rhs: list, ti: TypeInfo, path: Path, res: Comparison) -> None:
    item_ti = info(ti.elem)
    lvals, rvals = _index(ti, lhs), _index(ti, rhs)
    for pe in list(lvals) + [pe for pe in rvals if pe not in lvals]:
        ll, rl = lvals.get(pe, []), rvals.get(pe, [])
        p = path + (pe,)
        if len(ll) <= 1 and len(rl) <= 1:
            if ll and rl:
                _compare(ll[0], rl[0], item_ti, p, res)
            elif ll:
                _one_side(ll[0], item_ti, p, res.removed)
            else:
                _one_side(rl[0], item_ti, p, res.added)
        elif len(ll) >= 2 and len(rl) >= 2:
            if ll != rl:
                res.modified.add(p)
        elif len(ll) >= 2:
            if rl:
                _one_side(rl[0], item_ti, p, res.added)
            res.removed.add(p)
        else:
            if ll:
                _one_side(ll[0], item_ti, p, res.removed)
            res.added.add(p)


def _one_side(value: Any, ti: TypeInfo, path: Path, target: FieldSet) -> None:
    """Mark a value present on one side only, with everything inside it."""
    target.add(path)
    if isinstance(value, dict) and ti.granular_map():
        for k, v in value.items():
            _one_side(v, ti.child(k), path + (("f", k),), target)
    elif isinstance(value, list) and ti.granular_list():
        item_ti = info(ti.elem)
        for pe, items in _index(ti, value).items():
            if len(items) == 1:
                _one_side(items[0], item_ti, path + (pe,), target)
            else:
                target.add(path + (pe,))
