"""Field-level bookkeeping on every write: unknown-field checks (`fieldValidation`) and the
managedFields record of which manager set which field (for server-side apply conflicts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pocketkube.api import schema
from pocketkube.api.patch import apply as ssa
from pocketkube.api.resources import Resource
from pocketkube.api.validation import fields as unknown

if TYPE_CHECKING:
    from pocketkube.registry.strategy import Context

Obj = dict[str, Any]


def kind_schema(resource: Resource) -> schema.Schema | None:
    return schema.for_kind(resource.group, resource.version, resource.kind)


def check_types(resource: Resource, obj: Obj) -> None:
    """400 when the body does not decode into the kind (a string where an int belongs…), with
    the message kube's JSON decoder gives."""
    problem = unknown.type_error(obj, kind_schema(resource))
    if problem:
        raise unknown.cannot_handle(resource.kind, resource.version, problem)


def check_unknown(resource: Resource, obj: Obj, ctx: Context) -> None:
    """Strict: reject fields the schema does not declare; Warn: a warning per field. In every
    mode undeclared fields are dropped, as kube's typed decoding drops them."""
    sch = kind_schema(resource)
    if sch is None:
        return
    if ctx.field_validation in ("Strict", "Warn"):
        problems = unknown.unknown_problems(unknown.unknown_fields(obj, sch))
        if problems and ctx.field_validation == "Strict":
            raise unknown.strict_error(resource.kind, resource.version, problems)
        ctx.warnings.extend(p for p in problems if p not in ctx.warnings)
    unknown.prune_unknown(obj, sch)


def track(resource: Resource, old: Obj | None, new: Obj, ctx: Context, operation: str,
          subresource: str | None) -> None:
    """Record in new.metadata.managedFields the fields this write's manager set."""
    manager = ctx.field_manager
    if not manager or ctx.applied:
        return
    updated = ssa.track_update(
        old, new, manager, operation=operation, schema=kind_schema(resource),
        api_version=resource.api_version, now=ctx.now, subresource=subresource or "")
    new["metadata"] = updated.get("metadata", new.get("metadata", {}))
