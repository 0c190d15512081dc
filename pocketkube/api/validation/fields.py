"""Decoding checks: unknown and duplicate fields (`fieldValidation`) and JSON type errors.

kube-apiserver decodes a request body into Go structs with `sigs.k8s.io/json`. In `Strict` and
`Warn` modes that decoder records `unknown field "spec.replica"` and `duplicate field
"spec.replicas"` problems in document order; in `Strict` mode the create/update handlers answer
`400 BadRequest` with `<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding
error: <problems joined by ", ">` (apiserver `pkg/endpoints/handlers/create.go`,
`transformDecodeError`), in `Warn` mode each problem becomes a `Warning: 299 - "<problem>"`
header. A value of the wrong JSON type is fatal in every mode and reported with Go's
`json: cannot unmarshal ...` wording. Field paths join names with `.` and list indices with
`[i]`, without a leading dot, exactly as the Go decoder prints them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from pocketkube.api import schema as S
from pocketkube.api.errors import StatusError, bad_request
from pocketkube.api.validation import quantity

Schema = dict[str, Any]
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INTSTR = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_TIMES = ("io.k8s.apimachinery.pkg.apis.meta.v1.Time", "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class _Pairs(list):  # type: ignore[type-arg]
    """A JSON object kept as its (key, value) pairs, duplicates included."""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object_schema(sch: Schema | None) -> tuple[dict[str, Schema] | None, Schema | None]:
    """(properties, additionalProperties) of an object schema; (None, None) when free-form."""
    if sch is None or S.is_free_form(sch):
        return None, None
    resolved = S.resolve(sch) or {}
    if "properties" in resolved:
        return resolved["properties"], None
    return None, S.additional(sch)


# --- unknown and duplicate fields ---------------------------------------------------------------


def unknown_fields(obj: Any, schema: Schema | None) -> list[str]:
    """Paths of fields the schema does not declare, in document order (e.g.
    `spec.template.spec.containers[0].imagee`); free-form fields accept anything."""
    out: list[str] = []
    _walk(obj, schema, "", out, None)
    return out


def prune_unknown(obj: Any, schema: Schema | None) -> None:
    """Drop, in place, every field the schema does not declare (outside free-form content):
    kube decodes bodies into typed structs, so undeclared fields never reach the store."""
    if isinstance(obj, list):
        elem = S.items(schema)
        for v in obj:
            prune_unknown(v, elem)
        return
    if not isinstance(obj, dict):
        return
    props, extra = _object_schema(schema)
    if props is None and extra is None:
        return  # free-form
    if props is not None:
        for key in [k for k in obj if k not in props]:
            del obj[key]
        for key, v in obj.items():
            prune_unknown(v, props[key])
    else:
        for v in obj.values():
            prune_unknown(v, extra)


def find_duplicate_fields(body: bytes) -> list[str]:
    """Paths of keys that appear more than once in the same JSON object, in document order."""
    try:
        doc = json.loads(body, object_pairs_hook=_Pairs)
    except ValueError:
        return []
    out: list[str] = []
    _walk(doc, None, "", None, out, schemaless=True)
    return out


def strict_problems(body: bytes, schema: Schema | None) -> list[str]:
    """Every strict-decoding problem of a JSON body, worded and ordered as kube reports them."""
    try:
        doc = json.loads(body, object_pairs_hook=_Pairs)
    except ValueError:
        return []
    problems: list[str] = []
    _walk(doc, schema, "", problems, problems, tagged=True)
    return problems


def _walk(value: Any, sch: Schema | None, path: str, unknown: list[str] | None,
          dups: list[str] | None, schemaless: bool = False, tagged: bool = False) -> None:
    """Walk a decoded document (plain dicts, or `_Pairs` when duplicates matter)."""
    if isinstance(value, list) and not isinstance(value, _Pairs):
        elem = None if schemaless else S.items(sch)
        for i, v in enumerate(value):
            _walk(v, elem, f"{path}[{i}]", unknown, dups, schemaless, tagged)
        return
    if not isinstance(value, dict | _Pairs):
        return
    props, extra = (None, None) if schemaless else _object_schema(sch)
    # Free-form content is not checked for unknown fields, only for repeated keys.
    free = schemaless or (props is None and extra is None)
    pairs = list(value) if isinstance(value, _Pairs) else list(value.items())
    seen: set[str] = set()
    for key, v in pairs:
        p = _join(path, key)
        if dups is not None and isinstance(value, _Pairs):
            if key in seen:
                dups.append(f'duplicate field "{p}"' if tagged else p)
            seen.add(key)
        if free:
            if dups is not None:
                _walk(v, None, p, None, dups, True, tagged)
        elif props is not None:
            if key not in props:
                if unknown is not None:
                    unknown.append(f'unknown field "{p}"' if tagged else p)
                continue
            _walk(v, props[key], p, unknown, dups, False, tagged)
        else:
            _walk(v, extra, p, unknown, dups, False, tagged)


def unknown_problems(paths: list[str]) -> list[str]:
    """`unknown field "<path>"` for each path."""
    return [f'unknown field "{p}"' for p in paths]


def duplicate_problems(paths: list[str]) -> list[str]:
    """`duplicate field "<path>"` for each path."""
    return [f'duplicate field "{p}"' for p in paths]


def cannot_handle(kind: str, version: str, detail: str) -> StatusError:
    """The 400 a create/update answers when the body does not decode into the kind."""
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}')


def strict_error(kind: str, version: str, problems: list[str]) -> StatusError:
    """`fieldValidation=Strict` failure on create/update. `problems` are worded messages
    (`unknown field "spec.replica"`); bare paths are taken as unknown fields."""
    worded = [p if p.startswith(("unknown field ", "duplicate field ")) else f'unknown field "{p}"'
              for p in problems]
    return cannot_handle(kind, version, "strict decoding error: " + ", ".join(worded))


def patch_strict_error(problems: list[str]) -> StatusError:
    """`fieldValidation=Strict` failure of a patch (the patched object is checked, problems sorted)."""
    return bad_request("strict decoding error: " + ", ".join(sorted(problems)))


def warnings(problems: list[str]) -> list[str]:
    """`Warning` header values for `fieldValidation=Warn` (kubectl prints `Warning: <text>`)."""
    out = []
    for p in problems:
        text = p if p.startswith(("unknown field ", "duplicate field ")) else f'unknown field "{p}"'
        out.append('299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return out


# --- type errors --------------------------------------------------------------------------------


def _go_type(sch: Schema | None) -> str:
    ref = S.ref_name(sch)
    if ref:
        parts = ref.split(".")
        return f"{parts[-2]}.{parts[-1]}"
    resolved = S.resolve(sch) or {}
    t = S.types(sch)
    if "array" in t:
        return "[]" + _go_type(S.items(sch))
    if "object" in t:
        ap = S.additional(sch)
        return "map[string]" + (_go_type(ap) if ap else "interface {}")
    if "integer" in t:
        return resolved.get("format", "int64")
    if "number" in t:
        return "float64"
    if "boolean" in t:
        return "bool"
    if resolved.get("format") == "byte":
        return "[]uint8"
    return "string"


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def type_error(obj: Any, schema: Schema | None) -> str | None:
    """The first decode error (`json: cannot unmarshal ...`, bad quantity, bad base64) of a
    decoded body, or None when every value has the type its field needs."""
    if schema is None:
        return None
    if not isinstance(obj, dict):
        return f"json: cannot unmarshal {_json_kind(obj)} into Go value of type {_go_type(schema)}"
    return _types(obj, schema, "", [])


def _types(v: Any, sch: Schema | None, struct: str, stack: list[str]) -> str | None:
    if v is None or sch is None:
        return None
    ref = S.ref_name(sch)
    if ref == _QUANTITY:
        try:
            quantity.parse(v)
        except quantity.QuantityError as e:
            return str(e)
        return None
    if ref == _INTSTR:
        if isinstance(v, str):
            return None
        if isinstance(v, int) and not isinstance(v, bool) and -2**31 <= v < 2**31:
            return None
        kind = f"number {v!r}" if isinstance(v, (int, float)) and not isinstance(v, bool) else _json_kind(v)
        return f"json: cannot unmarshal {kind} into Go value of type int32"
    if ref in _TIMES:
        if not isinstance(v, str):
            return f"json: cannot unmarshal {_json_kind(v)} into Go value of type string"
        if v and not _RFC3339.match(v):
            return f'parsing time "{v}" as "2006-01-02T15:04:05Z07:00": cannot parse "{v}" as "2006"'
        return None
    if S.is_free_form(sch) and "object" in S.types(sch):
        return None
    want = S.types(sch)
    resolved = S.resolve(sch) or {}

    def fail() -> str:  # built only on failure: most values have the right type
        where = f"Go struct field {struct}.{'.'.join(stack)}" if struct else "Go value"
        return f"json: cannot unmarshal {_json_kind(v)} into {where} of type {_go_type(sch)}"

    if "object" in want and "properties" in resolved:
        if not isinstance(v, dict):
            return fail()
        name = (ref or "").rsplit(".", 1)[-1] or struct
        for key, child in v.items():
            if key in resolved["properties"]:
                err = _types(child, resolved["properties"][key], name, stack + [key])
                if err:
                    return err
        return None
    if "object" in want:
        if not isinstance(v, dict):
            return fail()
        ap = S.additional(sch)
        for child in v.values():
            err = _types(child, ap, struct, stack)
            if err:
                return err
        return None
    if "array" in want:
        if not isinstance(v, list):
            return fail()
        for child in v:
            err = _types(child, S.items(sch), struct, stack)
            if err:
                return err
        return None
    return _scalar(v, resolved, want, fail)


def _scalar(v: Any, resolved: Schema, want: set[str], fail: Callable[[], str]) -> str | None:
    if "integer" in want:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return fail()
        bits = 32 if resolved.get("format") == "int32" else 64
        if isinstance(v, float) or not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
            return fail().replace("unmarshal number ", f"unmarshal number {v!r} ")
        return None
    if "number" in want:
        return None if isinstance(v, (int, float)) and not isinstance(v, bool) else fail()
    if "boolean" in want:
        return None if isinstance(v, bool) else fail()
    if "string" in want:
        if not isinstance(v, str):
            return fail()
        if resolved.get("format") == "byte":
            return _base64_error(v)
    return None


def _base64_error(text: str) -> str | None:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        for i, ch in enumerate(text):
            if not (ch.isalnum() and ch.isascii()) and ch not in "+/=":
                return f"illegal base64 data at input byte {i}"
        return f"illegal base64 data at input byte {len(text) - len(text) % 4}"
    return None
