"""Merging an apply configuration into a live object, and pruning fields an applier dropped.

structured-merge-diff's `typed.Merge` and the prune step of `merge.Updater.Apply`
(`RemoveItems` with EnsureNamedFieldsAreMembers, add-back of owned and dangling items), over
plain dicts; the node types come from `typed.TypeInfo`.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.errors import bad_request
from pocketkube.api.patch.fieldpath import FieldSet, Path, PathElement, path_string, prefixes
from pocketkube.api.patch.typed import TypeInfo, info, item_element

# -- Merge --------------------------------------------------------------------------------------

_MISSING: Any = object()


def merge(live: dict, config: dict, schema: Any) -> dict:
    """`live` with the applied `config` merged in: granular maps merge per key, set and map lists
    merge per item (keeping the config's order for its items), everything else takes the config
    value. A null in the config removes the value. The result may share unchanged subtrees with
    the inputs. Raises 400 BadRequest when the config has duplicate list-map keys."""
    return _merge(live, config, info(schema), ())


def _merge(lhs: Any, rhs: Any, ti: TypeInfo, path: Path) -> Any:
    if isinstance(lhs, dict) and isinstance(rhs, dict) and ti.granular_map() and (lhs or rhs):
        out = {}
        for k, lv in lhs.items():
            if k not in rhs:
                out[k] = lv
            elif rhs[k] is not None:
                out[k] = _merge(lv, rhs[k], ti.child(k), path + (("f", k),))
        for k, rv in rhs.items():
            if k not in lhs and rv is not None:
                out[k] = _merge(_MISSING, rv, ti.child(k), path + (("f", k),))
        return out
    if isinstance(rhs, list) and ti.granular_list():
        _check_duplicates(rhs, ti, path)
        if isinstance(lhs, list) and (lhs or rhs):
            return _merge_lists(lhs, rhs, ti, path)
    if isinstance(rhs, dict):
        return {k: _merge(_MISSING, v, ti.child(k), path + (("f", k),))
                for k, v in rhs.items() if v is not None}
    return rhs


def _check_duplicates(items: list, ti: TypeInfo, path: Path) -> None:
    seen: set[PathElement] = set()
    for i, item in enumerate(items):
        pe = item_element(ti, item, i)
        if pe in seen:
            raise bad_request(
                f"{path_string(path)}: duplicate entries for key {path_string((pe,))}"
            )
        seen.add(pe)


def _merge_lists(lhs: list, rhs: list, ti: TypeInfo, path: Path) -> list:
    """Merge two set/map lists the way SMD orders them: config items keep their relative order,
    live-only items stay where they were relative to the shared ones."""
    item_ti = info(ti.elem)
    rpes = [item_element(ti, v, i) for i, v in enumerate(rhs)]
    robs = dict(zip(rpes, rhs, strict=True))
    lpes: list[PathElement] = []
    lobs: dict[PathElement, Any] = {}
    for i, v in enumerate(lhs):
        pe = item_element(ti, v, i)
        lpes.append(pe)
        lobs[pe] = None if pe in lobs else v  # a duplicated live key merges as absent
    shared = [pe for pe in rpes if pe in lobs]
    next_shared = shared.pop(0) if shared else None
    merged_rhs: set[PathElement] = set()
    out: list = []
    li = ri = 0
    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li]
            if pe == rpes[ri]:
                merged_rhs.add(pe)
                out.append(_merge_item(lobs[pe], robs[pe], item_ti, path + (pe,)))
                li += 1
                ri += 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in robs and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lpes):
            pe = lpes[li]
            if pe not in robs:
                out.append(lhs[li])
                li += 1
                continue
            if pe in merged_rhs:
                li += 1
        if ri < len(rpes):
            pe = rpes[ri]
            merged_rhs.add(pe)
            out.append(_merge_item(lobs.get(pe, _MISSING), robs[pe], item_ti, path + (pe,)))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop(0) if shared else None
    return out


def _merge_item(lhs: Any, rhs: Any, ti: TypeInfo, path: Path) -> Any:
    return _merge(_MISSING if lhs is None else lhs, rhs, ti, path)


# -- RemoveItems (prune) ------------------------------------------------------------------------

_GONE: Any = object()


def prune(obj: dict, last: FieldSet, owned: FieldSet, owned_prefixes: set[Path], schema: Any) -> dict:
    """Remove from `obj` the fields of `last` (an applier's previous set) that nobody owns now.

    A named struct field counts as part of a set when anything below it is (SMD's
    EnsureNamedFieldsAreMembers); removing a field removes everything under it, and a map or
    list emptied by removals goes too. `owned` is the union of every manager's set after the
    apply and `owned_prefixes` its `fieldpath.prefixes`.
    """
    if not last:
        return obj
    walk = _Pruner(last, prefixes(last), owned, owned_prefixes)
    out = walk.prune(obj, info(schema), ())
    return {} if out is _GONE else out


class _Pruner:
    __slots__ = ("last", "last_prefixes", "owned", "owned_prefixes")

    def __init__(self, last: FieldSet, last_prefixes: set[Path], owned: FieldSet,
                 owned_prefixes: set[Path]) -> None:
        self.last, self.last_prefixes = last, last_prefixes
        self.owned, self.owned_prefixes = owned, owned_prefixes

    def removable(self, path: Path, named: bool) -> bool:
        in_last = path in self.last or (named and path in self.last_prefixes)
        return in_last and not (path in self.owned or (named and path in self.owned_prefixes))

    def prune(self, value: Any, ti: TypeInfo, path: Path) -> Any:
        if isinstance(value, dict) and ti.granular_map():
            out = None
            for k, v in value.items():
                p = path + (("f", k),)
                if self.removable(p, ti.named(k)):
                    new = _GONE
                elif p in self.last_prefixes:
                    new = self.prune(v, ti.child(k), p)
                else:
                    continue
                if new is not v:
                    out = dict(value) if out is None else out
                    if new is _GONE:
                        del out[k]
                    else:
                        out[k] = new
            return value if out is None else (out or _GONE)
        if isinstance(value, list) and ti.granular_list():
            item_ti = info(ti.elem)
            items, changed = [], False
            for i, item in enumerate(value):
                p = path + (item_element(ti, item, i),)
                if self.removable(p, False):
                    changed = True
                    continue
                if p in self.last_prefixes:
                    new = self.prune(item, item_ti, p)
                    changed = changed or new is not item
                    if new is _GONE:
                        continue
                    item = new
                items.append(item)
            return value if not changed else (items or _GONE)
        return value
