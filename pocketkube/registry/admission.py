"""Admission that mutates objects on their way in, as kube-apiserver's default admission
plugins do (applied by the registry strategies on create).

DefaultTolerationSeconds (kube's `plugin/pkg/admission/defaulttolerationseconds`): a pod
that does not tolerate the `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable`
NoExecute taints gets tolerations for them with tolerationSeconds 300, so the taint eviction
controller moves it off a lost node after five minutes instead of at once.
"""

from __future__ import annotations

from typing import Any

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300


def _covers(toleration: Any, key: str) -> bool:
    # As the plugin: an empty key or effect counts as tolerating the taint.
    if not isinstance(toleration, dict):
        return False
    return (toleration.get("key") or "") in ("", key) and \
        (toleration.get("effect") or "") in ("", "NoExecute")


def default_toleration_seconds(pod: dict[str, Any]) -> None:
    """Add the default not-ready/unreachable NoExecute tolerations a new pod lacks."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    if not isinstance(tolerations, list):
        return  # validation reports it
    added = [{"key": key, "operator": "Exists", "effect": "NoExecute",
              "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}
             for key in (NOT_READY, UNREACHABLE)
             if not any(_covers(t, key) for t in tolerations)]
    if added:
        spec["tolerations"] = tolerations + added
