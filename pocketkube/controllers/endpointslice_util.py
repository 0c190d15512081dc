"""The pieces of an EndpointSlice the EndpointSlice controller builds and compares (kube's
`k8s.io/endpointslice` utils.go, endpointset.go and EndpointSliceTracker): a pod as a slice
endpoint, the resolved ports that decide which group of slices an endpoint goes to, what
identifies an endpoint across syncs, the slice's labels and owner, and the memory of the
controller's own writes that tells whether the informer cache has caught up with them.
"""

from __future__ import annotations

from typing import Any

from pocketkube.controllers import endpoint_util as eu

Obj = dict[str, Any]

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
RESERVED_LABELS = (SERVICE_NAME, MANAGED_BY, eu.HEADLESS)


def address_types(svc: Obj) -> list[str]:
    """The address types the service's slices have: one per IP family; for a service whose
    families are not set yet, its cluster IP's, or both for a headless one."""
    spec = svc.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        return [f for f in ("IPv4", "IPv6") if f in families]
    if eu.service_ip_set(svc):
        return ["IPv6" if eu.is_ipv6(spec["clusterIP"]) else "IPv4"]
    return ["IPv4", "IPv6"]


def slice_ports(svc: Obj, pod: Obj) -> list[Obj]:
    """The service's ports as this pod serves them; ports the pod cannot resolve are left out."""
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        number = eu.find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {"name": sp.get("name") or "", "port": number,
                     "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def port_map_key(ports: list[Obj]) -> tuple:
    """Slices are grouped by their exact set of ports, whatever the order."""
    return tuple(sorted((p.get("name") or "", p.get("port") or 0, p.get("protocol") or "",
                         p.get("appProtocol") or "") for p in ports))


def pod_to_endpoint(pod: Obj, node: Obj | None, svc: Obj, address_type: str) -> Obj:
    serving = eu.pod_ready(pod)
    term = eu.terminating(pod)
    # A terminating endpoint is never ready (unless the service publishes not-ready ones), but
    # stays serving while the pod still passes its readiness checks.
    ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or \
        (serving and not term)
    v6 = address_type == "IPv6"
    meta = pod["metadata"]
    ep: Obj = {
        "addresses": [ip for ip in eu.pod_ips(pod) if eu.is_ipv6(ip) == v6],
        "conditions": {"ready": ready, "serving": serving, "terminating": term},
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"],
                      "uid": meta.get("uid")},
    }
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        ep["nodeName"] = node_name
    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(eu.ZONE)
    if zone:
        ep["zone"] = zone
    if eu.should_set_hostname(pod, svc):
        ep["hostname"] = pod["spec"]["hostname"]
    return ep


def endpoint_key(ep: Obj) -> tuple:
    """What makes an endpoint the same one across syncs: its addresses, hostname and pod."""
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(ep.get("addresses") or [])), ep.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def endpoints_equal(a: Obj, b: Obj) -> bool:
    """Equal beyond the key: node, zone, conditions and pod reference (bar its version)."""
    def ref(e: Obj) -> Obj:
        return {k: v for k, v in (e.get("targetRef") or {}).items() if k != "resourceVersion"}

    conds = ("ready", "serving", "terminating")
    return a.get("nodeName") == b.get("nodeName") and a.get("zone") == b.get("zone") and \
        all((a.get("conditions") or {}).get(c) == (b.get("conditions") or {}).get(c)
            for c in conds) and ref(a) == ref(b)


def slice_labels(s: Obj, svc: Obj, controller: str) -> tuple[dict[str, str], bool]:
    """The labels the slice should have (the service's, plus the reserved ones) and whether
    the service's own labels differ from the slice's."""
    have = {k: v for k, v in (s["metadata"].get("labels") or {}).items()
            if k not in RESERVED_LABELS}
    want = {k: v for k, v in (svc["metadata"].get("labels") or {}).items()
            if k not in RESERVED_LABELS}
    changed = have != want
    if not eu.service_ip_set(svc):
        want[eu.HEADLESS] = ""
    want[SERVICE_NAME] = svc["metadata"]["name"]
    want[MANAGED_BY] = controller
    return want, changed


def owner_reference(svc: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "name": svc["metadata"]["name"],
            "uid": svc["metadata"].get("uid"), "controller": True, "blockOwnerDeletion": True}


def owned_by(s: Obj, svc: Obj) -> bool:
    uid = svc["metadata"].get("uid")
    return any(r.get("uid") == uid and r.get("kind") == "Service" and r.get("apiVersion") == "v1"
               for r in s["metadata"].get("ownerReferences") or [])


def new_slice(svc: Obj, ports: list[Obj], address_type: str, controller: str) -> Obj:
    meta = svc["metadata"]
    out: Obj = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
                     "labels": slice_labels({"metadata": {}}, svc, controller)[0],
                     "ownerReferences": [owner_reference(svc)]},
        "addressType": address_type,
        "endpoints": [],
    }
    if ports:  # empty ports are left out, as kube serializes them
        out["ports"] = ports
    return out


def _at_least(have: str | None, want: str) -> bool:
    """Whether resourceVersion `have` is `want` or later (pocketkube's are revisions)."""
    if have is None:
        return False
    if have.isdigit() and want.isdigit():
        return int(have) >= int(want)
    return have == want


class SliceTracker:
    """The controller's own slice writes, per service, until the informer shows them: the
    resourceVersion each written slice had, or None for a deletion. A service whose cached
    slices are older than its writes is not synced yet; the informer's own events for those
    writes do not queue the service again."""

    def __init__(self) -> None:
        self._writes: dict[str, dict[str, str | None]] = {}

    def written(self, key: str, s: Obj) -> None:
        self._writes.setdefault(key, {})[s["metadata"]["name"]] = \
            s["metadata"].get("resourceVersion") or ""

    def deleted(self, key: str, name: str) -> None:
        self._writes.setdefault(key, {})[name] = None

    def forget(self, key: str) -> None:
        self._writes.pop(key, None)

    def stale(self, key: str, cached: list[Obj]) -> bool:
        writes = self._writes.get(key)
        if not writes:
            return False
        have = {s["metadata"]["name"]: s["metadata"].get("resourceVersion") for s in cached}
        behind = False
        for name, rv in list(writes.items()):
            seen = name not in have if rv is None else _at_least(have.get(name), rv)
            if seen:
                del writes[name]
            else:
                behind = True
        if not writes:
            del self._writes[key]
        return behind

    def observed(self, key: str, s: Obj) -> bool:
        """The informer has `s`: whether it holds a change other than the controller's own."""
        writes = self._writes.get(key) or {}
        name = s["metadata"]["name"]
        if name not in writes or writes[name] is None:
            return True
        rv = s["metadata"].get("resourceVersion") or ""
        if _at_least(rv, writes[name] or ""):
            ours = rv == writes[name]
            del writes[name]
            return not ours
        return False  # an older version of a slice written since: the write's event follows

    def observed_deletion(self, key: str, name: str) -> bool:
        """The informer saw slice `name` go: whether that was someone else's doing."""
        writes = self._writes.get(key) or {}
        if name in writes:
            return writes.pop(name) is not None
        return True
