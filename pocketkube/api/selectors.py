"""Label and field selectors: parsing and matching, as apimachinery `pkg/labels` and
`pkg/fields` do them.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`,
comma-separated (AND). Field selectors: `=`, `==`, `!=` terms over a few well-known field paths
per kind. Hand-written because no maintained Python library implements these grammars.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pocketkube.api.errors import StatusError, bad_request

_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                     r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        v = labels.get(self.key)
        if op in ("=", "in"):
            return v is not None and v in self.values
        if op in ("!=", "notin"):
            return v is None or v not in self.values
        if v is None:
            return False
        try:
            num, ref = int(v), int(self.values[0])
        except ValueError:
            return False
        return num > ref if op == "gt" else num < ref


class LabelSelector:
    def __init__(self, reqs: list[Requirement]) -> None:
        self.reqs = reqs

    def empty(self) -> bool:
        return not self.reqs

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.reqs)


def _split_terms(s: str) -> list[str]:
    """Split on commas not inside parentheses."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [t.strip() for t in out if t.strip()]


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
_OP_RE = re.compile(r"^([^!=<>\s]+)\s*(==|!=|=|>|<)\s*(.*)$")


def _check_key(key: str, sel: str) -> None:
    if not _KEY_RE.match(key) or len(key.split("/")[-1]) > 63:
        raise bad_request(f'unable to parse requirement: invalid label key "{key}": '
                          f"name part must consist of alphanumeric characters, '-', '_' or '.', "
                          f"and must start and end with an alphanumeric character")


def _check_value(v: str) -> None:
    if len(v) > 63 or not _VALUE_RE.match(v):
        raise bad_request(f'unable to parse requirement: values[0]: Invalid value: "{v}": '
                          f"a valid label must be an empty string or consist of alphanumeric "
                          f"characters, '-', '_' or '.', and must start and end with an "
                          f"alphanumeric character")


def parse_label_selector(s: str | None) -> LabelSelector:
    if not s:
        return LabelSelector([])
    reqs: list[Requirement] = []
    for term in _split_terms(s):
        if m := _SET_RE.match(term):
            key, op = m.group(1), m.group(2)
            vals = tuple(v.strip() for v in m.group(3).split(","))
            _check_key(key, s)
            for v in vals:
                _check_value(v)
            reqs.append(Requirement(key, op, vals))
        elif term.startswith("!"):
            key = term[1:].strip()
            _check_key(key, s)
            reqs.append(Requirement(key, "!"))
        elif m := _OP_RE.match(term):
            key, op, val = m.group(1), m.group(2), m.group(3).strip()
            _check_key(key, s)
            if op in (">", "<"):
                try:
                    int(val)
                except ValueError:
                    raise bad_request(
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                        "must be an integer") from None
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (val,)))
            else:
                _check_value(val)
                reqs.append(Requirement(key, "!=" if op == "!=" else "=", (val,)))
        else:
            _check_key(term, s)
            reqs.append(Requirement(term, "exists"))
    return LabelSelector(reqs)


def selector_from_label_selector(sel: dict[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector (matchLabels + matchExpressions) as a matcher."""
    if not sel:
        return LabelSelector([])
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in sel.get("matchExpressions") or []:
        reqs.append(Requirement(e.get("key", ""), ops.get(e.get("operator", ""), "in"),
                                tuple(e.get("values") or ())))
    return LabelSelector(reqs)


# -- field selectors ---------------------------------------------------------------------------

FieldGetter = Callable[[dict[str, Any]], str]


def _path(*parts: str) -> FieldGetter:
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for p in parts:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(p)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)
    return get


_COMMON: dict[str, FieldGetter] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

# Field labels per kind, as each registry's `GetAttrs`/`SelectableFields` exposes them.
_BY_KIND: dict[str, dict[str, FieldGetter]] = {
    "Pod": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: "true" if (o.get("spec") or {}).get("hostNetwork")
        else "false",
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "Event": {
        **{f"involvedObject.{f}": _path("involvedObject", f) for f in (
            "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": lambda o: (o.get("source") or {}).get("component", "")
        or o.get("reportingComponent", ""),
        "type": _path("type"),
    },
    "Secret": {"type": _path("type")},
    "Namespace": {"status.phase": _path("status", "phase")},
    "Node": {"spec.unschedulable": lambda o: "true" if (o.get("spec") or {}).get(
        "unschedulable") else "false"},
    "ReplicaSet": {"status.replicas": _path("status", "replicas")},
    "ReplicationController": {"status.replicas": _path("status", "replicas")},
    "Job": {"status.successful": _path("status", "succeeded")},
    "CertificateSigningRequest": {"spec.signerName": _path("spec", "signerName")},
}


@dataclass(frozen=True, slots=True)
class FieldTerm:
    field: str
    op: str  # "=" or "!="
    value: str
    getter: FieldGetter


class FieldSelector:
    def __init__(self, terms: list[FieldTerm]) -> None:
        self.terms = terms

    def empty(self) -> bool:
        return not self.terms

    def matches(self, obj: dict[str, Any]) -> bool:
        for t in self.terms:
            v = t.getter(obj)
            if (v == t.value) != (t.op == "="):
                return False
        return True

    def exact_name(self) -> str | None:
        for t in self.terms:
            if t.field == "metadata.name" and t.op == "=":
                return t.value
        return None


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", r"\1", v)


def parse_field_selector(s: str | None, kind: str) -> FieldSelector:
    if not s:
        return FieldSelector([])
    allowed = {**_COMMON, **_BY_KIND.get(kind, {})}
    terms: list[FieldTerm] = []
    for raw in re.split(r"(?<!\\),", s):
        term = raw.strip()
        if not term:
            continue
        m = re.match(r"^(.*?)(==|!=|=)(.*)$", term)
        if not m:
            raise bad_request(f"invalid selector: '{s}'; can't understand '{term}'")
        field, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3).strip())
        getter = allowed.get(field)
        if getter is None:
            raise StatusError(
                400, "BadRequest",
                f'field label not supported: {field}',
            )
        terms.append(FieldTerm(field, "!=" if op == "!=" else "=", value, getter))
    return FieldSelector(terms)
