"""System default topology spreading: pods that declare no constraints still spread across
nodes and zones among the pods of the same Service or workload controller."""

from pocketkube.scheduler.cache import PodInfo
from pocketkube.scheduler.defaultspread import default_selector, system_constraints
from pocketkube.scheduler.framework import CycleState
from pocketkube.scheduler.plugins.podtopologyspread import PodTopologySpread
from tests.unit.scheduler.util import cache_with, info, node, pod

ZONE = "topology.kubernetes.io/zone"


def rs(name, labels, ns="default"):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": labels}}}


def svc(name, selector, ns="default"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector}}


def test_selector_is_the_and_of_everything_selecting_the_pod():
    p = info(pod("w", labels={"app": "web", "tier": "fe", "pod-template-hash": "x"}))
    sel = default_selector(p, [svc("web", {"app": "web"}), svc("other", {"app": "db"}),
                               svc("elsewhere", {"app": "web"}, ns="prod")],
                           [rs("web-x", {"app": "web", "pod-template-hash": "x"})])
    assert sel.matches({"app": "web", "pod-template-hash": "x", "more": "1"})
    assert not sel.matches({"app": "web", "pod-template-hash": "y"})
    assert len(system_constraints(p, sel)) == 2
    alone = default_selector(info(pod("solo", labels={"app": "solo"})), [svc("w", {"a": "b"})],
                             [])
    assert system_constraints(p, alone) == []


def scores(cache, p):
    plugin = PodTopologySpread()
    state = CycleState()
    assert plugin.pre_score(state, p, cache.node_list, cache) is None
    out = [plugin.score(state, p, n) for n in cache.node_list]
    plugin.normalize(state, p, out)
    return dict(zip([n.name for n in cache.node_list], out, strict=True))


def test_replicas_prefer_nodes_and_zones_without_siblings():
    nodes = [node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}),
             node("b1", labels={ZONE: "b"}), node("bare")]
    cache = cache_with(nodes, [pod("w1", labels={"app": "web"}, node_name="a1"),
                               pod("x", labels={"app": "other"}, node_name="b1")])
    replicaset = rs("web", {"app": "web"})

    def defaults(p: PodInfo):
        return system_constraints(p, default_selector(p, [], [replicaset]))

    cache.default_spread = defaults
    s = scores(cache, info(pod("w2", labels={"app": "web"})))
    # b1 (another zone, no sibling) beats a2 (sibling's zone) beats a1 (sibling's node); a
    # node without a zone label is still a candidate, scored on its hostname alone.
    assert s["b1"] > s["a2"] > s["a1"]
    assert s["bare"] > s["a1"]
    # A pod that belongs to no Service or controller is not spread at all.
    assert PodTopologySpread().pre_score(CycleState(), info(pod("solo")), cache.node_list,
                                         cache) is not None
