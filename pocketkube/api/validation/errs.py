"""Field errors worded exactly as kube-apiserver words them.

A cause of a 422 Invalid carries a message built by apimachinery `field.Error.ErrorBody()`
(`pkg/util/validation/field/errors.go`, 1.32): the error type's text, then the bad value as Go's
`fmt` would print it (`%q` for strings, `%v` for numbers and bools, `%#v` for anything else), then
`: <detail>`. Clients show these strings verbatim, so the Go value formatting is reproduced here
by hand: no Python library prints Go syntax.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.errors import field_error

Cause = dict[str, str]

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
NOT_FOUND = "FieldValueNotFound"
TYPE_INVALID = "FieldValueTypeInvalid"
INTERNAL = "InternalError"


class GoRepr(str):
    """A value already rendered in Go syntax (printed verbatim, never quoted)."""


def go_quote(s: str) -> str:
    """Go's `strconv.Quote` / `%q`."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o >= 0x80 and not ch.isprintable():
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_float(f: float) -> str:
    """Go's `%v` for a float64 (shortest repr, exponent form for large/small magnitudes)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == int(f) and abs(f) < 1e21:
        return str(int(f))
    r = repr(f)
    if "e" in r:
        mant, exp = r.split("e")
        sign = "-" if exp.startswith("-") else "+"
        exp = exp.lstrip("+-").rjust(2, "0")
        return f"{mant}e{sign}{exp}"
    return r


def go_value(v: Any) -> str:
    """A scalar or already-rendered value as `ErrorBody` prints it."""
    if isinstance(v, GoRepr):
        return str(v)
    if v is None:
        return '"null"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, dict):
        return go_map_ss(v)
    if isinstance(v, list):
        return go_slice("string", v)
    return go_quote(str(v))


def go_map_ss(m: dict[str, Any] | None) -> GoRepr:
    """`map[string]string{"a":"b", "c":"d"}` (Go sorts map keys when printing)."""
    if m is None:
        return GoRepr("map[string]string(nil)")
    items = ", ".join(f"{go_quote(str(k))}:{go_quote(str(m[k]))}" for k in sorted(m))
    return GoRepr(f"map[string]string{{{items}}}")


def go_slice(elem: str, items: list[Any] | None) -> GoRepr:
    """`[]string{"a", "b"}`; a nil slice prints as `[]string(nil)`."""
    if items is None:
        return GoRepr(f"[]{elem}(nil)")
    return GoRepr(f"[]{elem}{{{', '.join(_go_elem(i) for i in items)}}}")


def _go_elem(v: Any) -> str:
    if isinstance(v, GoRepr):
        return str(v)
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return go_value(v)
    return go_quote(str(v))


def go_intstr(v: Any) -> GoRepr:
    """An `intstr.IntOrString` value as `%#v` prints it."""
    if isinstance(v, str):
        return GoRepr(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(v)}}}")
    n = v if isinstance(v, int) and not isinstance(v, bool) else 0
    return GoRepr(f"intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}")


def go_label_selector(sel: dict[str, Any] | None) -> GoRepr:
    """A `metav1.LabelSelector` as `%#v` prints it (the pointer is dereferenced first)."""
    if sel is None:
        return GoRepr('"null"')
    ml = sel.get("matchLabels")
    exprs = sel.get("matchExpressions")
    if exprs is None:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    else:
        parts = []
        for e in exprs:
            e = e if isinstance(e, dict) else {}
            vals = e.get("values")
            parts.append(
                f"v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key') or ''))}, "
                f"Operator:{go_quote(str(e.get('operator') or ''))}, "
                f"Values:{go_slice('string', vals if isinstance(vals, list) else None)}}}"
            )
        rendered = f"[]v1.LabelSelectorRequirement{{{', '.join(parts)}}}"
    labels = go_map_ss(ml if isinstance(ml, dict) else None)
    return GoRepr(f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{rendered}}}")


def go_struct(type_name: str, obj: Any) -> GoRepr:
    """A readable Go-syntax rendering of a whole struct (used for large immutable values)."""
    return GoRepr(_go_any(obj, type_name))


def _go_any(v: Any, type_name: str = "") -> str:
    if isinstance(v, dict):
        fields = ", ".join(f"{k[:1].upper()}{k[1:]}:{_go_any(v[k])}" for k in v)
        return f"{type_name or 'map[string]interface {}'}{{{fields}}}"
    if isinstance(v, list):
        return "[]interface {}{" + ", ".join(_go_any(i) for i in v) + "}"
    if v is None:
        return "nil"
    return go_value(v)


# --- constructors, one per apimachinery `field.*` function -------------------------------------


def required(path: str, detail: str = "") -> Cause:
    return field_error(REQUIRED, path, _join("Required value", detail))


def invalid(path: str, value: Any, detail: str = "") -> Cause:
    return field_error(INVALID, path, _join(f"Invalid value: {go_value(value)}", detail))


def type_invalid(path: str, value: Any, detail: str = "") -> Cause:
    return field_error(TYPE_INVALID, path, _join(f"Invalid value: {go_value(value)}", detail))


def not_supported(path: str, value: Any, valid: list[str] | tuple[str, ...]) -> Cause:
    detail = ("supported values: " + ", ".join(go_quote(str(x)) for x in valid)) if valid else ""
    return field_error(NOT_SUPPORTED, path, _join(f"Unsupported value: {go_value(value)}", detail))


def duplicate(path: str, value: Any) -> Cause:
    return field_error(DUPLICATE, path, f"Duplicate value: {go_value(value)}")


def not_found(path: str, value: Any) -> Cause:
    return field_error(NOT_FOUND, path, f"Not found: {go_value(value)}")


def forbidden(path: str, detail: str) -> Cause:
    return field_error(FORBIDDEN, path, _join("Forbidden", detail))


def too_long(path: str, max_len: int) -> Cause:
    unit = "byte" if max_len == 1 else "bytes"
    return field_error(TOO_LONG, path, f"Too long: may not be more than {max_len} {unit}")


def too_many(path: str, actual: int, max_items: int) -> Cause:
    return field_error(TOO_MANY, path, f"Too many: {actual}: must have at most {max_items} items")


def internal(path: str, message: str) -> Cause:
    return field_error(INTERNAL, path, f"Internal error: {message}")


def _join(head: str, detail: str) -> str:
    return f"{head}: {detail}" if detail else head


def nonnegative(path: str, value: Any) -> list[Cause]:
    """`ValidateNonnegativeField`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def immutable(path: str, new: Any, old: Any, render: Any = None) -> list[Cause]:
    """`ValidateImmutableField` (`render` is how the new value is printed, when not a scalar)."""
    if new != old:
        return [invalid(path, new if render is None else render, "field is immutable")]
    return []
