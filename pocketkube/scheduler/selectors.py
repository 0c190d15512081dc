"""Matching rules the scheduler plugins share: node selector terms (node affinity), label
selectors with kube's nil-versus-empty meaning, pod affinity terms with their namespaces, and
taint tolerations (`component-helpers/scheduling/corev1`, `framework.AffinityTerm`).
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.selectors import LabelSelector, Requirement, selector_from_label_selector

Obj = dict[str, Any]
NOTHING = LabelSelector([Requirement("", "in", ())])  # a nil selector: matches no labels


def label_selector(sel: Obj | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: nil matches nothing, {} matches everything."""
    if sel is None:
        return NOTHING
    return selector_from_label_selector(sel)


# -- node selectors ---------------------------------------------------------------------------

def _requirement_matches(req: Obj, values_of: dict[str, str]) -> bool:
    key, op, vals = req.get("key", ""), req.get("operator"), req.get("values") or []
    present = key in values_of
    v = values_of.get(key)
    if op == "In":
        return present and v in vals
    if op == "NotIn":
        return not present or v not in vals
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(vals) == 1:
        try:
            a, b = int(v or ""), int(vals[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def term_matches(term: Obj, labels: dict[str, str], name: str) -> bool:
    """One NodeSelectorTerm: all its expressions and fields hold; an empty term matches
    nothing."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    if not all(_requirement_matches(r, labels) for r in exprs):
        return False
    # The only node field a selector may name is metadata.name.
    return all(r.get("key") == "metadata.name"
               and _requirement_matches(r, {"metadata.name": name}) for r in fields)


def node_selector_matches(selector: Obj | None, labels: dict[str, str], name: str) -> bool:
    """A NodeSelector: any of its terms matches."""
    if selector is None:
        return True
    return any(term_matches(t, labels, name) for t in selector.get("nodeSelectorTerms") or [])


# -- taints and tolerations -------------------------------------------------------------------

def tolerates(toleration: Obj, taint: Obj) -> bool:
    """`Toleration.ToleratesTaint`."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def first_untolerated(taints: list[Obj], tolerations: list[Obj],
                      effects: tuple[str, ...]) -> Obj | None:
    for taint in taints:
        if taint.get("effect") not in effects:
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


# -- pod affinity terms -----------------------------------------------------------------------

class AffinityTerm:
    """A PodAffinityTerm resolved against its owner's namespace (`framework.AffinityTerm`)."""

    __slots__ = ("selector", "namespaces", "ns_selector", "topology_key", "weight")

    def __init__(self, term: Obj, owner_ns: str, weight: int = 0) -> None:
        self.selector = label_selector(term.get("labelSelector"))
        self.topology_key: str = term.get("topologyKey") or ""
        nss = set(term.get("namespaces") or [])
        ns_sel = term.get("namespaceSelector")
        self.ns_selector = selector_from_label_selector(ns_sel) if ns_sel is not None else None
        if not nss and ns_sel is None:
            nss = {owner_ns}
        self.namespaces = nss
        self.weight = weight

    def matches(self, namespace: str, labels: dict[str, str],
                ns_labels: dict[str, dict[str, str]]) -> bool:
        if namespace not in self.namespaces and not (
                self.ns_selector is not None
                and self.ns_selector.matches(ns_labels.get(namespace, {}))):
            return False
        return self.selector.matches(labels)


def affinity_terms(pod: Obj, kind: str, required: bool) -> list[AffinityTerm]:
    """The pod's (anti-)affinity terms: kind "podAffinity" or "podAntiAffinity"."""
    aff = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    ns = pod["metadata"].get("namespace") or "default"
    if required:
        return [AffinityTerm(t, ns) for t in
                aff.get("requiredDuringSchedulingIgnoredDuringExecution") or []]
    return [AffinityTerm(w.get("podAffinityTerm") or {}, ns, int(w.get("weight") or 0))
            for w in aff.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
