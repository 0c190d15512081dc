"""InterPodAffinity and PodTopologySpread over a small cluster of zones."""

from pocketkube.scheduler.framework import UNRESOLVABLE, UNSCHEDULABLE, CycleState
from pocketkube.scheduler.plugins.interpodaffinity import InterPodAffinity
from pocketkube.scheduler.plugins.podtopologyspread import PodTopologySpread
from tests.unit.scheduler.util import cache_with, info, node, pod, run_filter

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def zones():
    return [node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}),
            node("b1", labels={ZONE: "b"})]


def term(labels, key=ZONE, **extra):
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def with_affinity(name, kind, *terms, labels=None, ns="default"):
    return pod(name, labels=labels, ns=ns, affinity={kind: {
        "requiredDuringSchedulingIgnoredDuringExecution": list(terms)}})


def test_required_affinity_follows_the_zone_of_matching_pods():
    cache = cache_with(zones(), [pod("db", labels={"app": "db"}, node_name="b1")])
    web = with_affinity("web", "podAffinity", term({"app": "db"}))
    plugin = InterPodAffinity()
    assert run_filter(plugin, web, cache.nodes["b1"], cache) is None
    st = run_filter(plugin, web, cache.nodes["a1"], cache)
    assert st.code == UNRESOLVABLE and st.reasons == ["node(s) didn't match pod affinity rules"]


def test_first_pod_of_a_self_affine_group_may_go_anywhere():
    cache = cache_with(zones())
    first = with_affinity("w", "podAffinity", term({"app": "w"}), labels={"app": "w"})
    assert run_filter(InterPodAffinity(), first, cache.nodes["a1"], cache) is None
    stranger = with_affinity("x", "podAffinity", term({"app": "w"}))
    assert run_filter(InterPodAffinity(), stranger, cache.nodes["a1"], cache) is not None


def test_anti_affinity_both_ways_and_namespaces():
    cache = cache_with(zones(), [pod("w1", labels={"app": "w"}, node_name="a1")])
    plugin = InterPodAffinity()
    w2 = with_affinity("w2", "podAntiAffinity", term({"app": "w"}, HOST), labels={"app": "w"})
    st = run_filter(plugin, w2, cache.nodes["a1"], cache)
    assert st.code == UNSCHEDULABLE
    assert st.reasons == ["node(s) didn't match pod anti-affinity rules"]
    assert run_filter(plugin, w2, cache.nodes["a2"], cache) is None
    # Terms look only in the pod's own namespace unless told otherwise.
    other_ns = with_affinity("o", "podAntiAffinity", term({"app": "w"}, HOST), ns="other")
    assert run_filter(plugin, other_ns, cache.nodes["a1"], cache) is None
    listed = with_affinity("o", "podAntiAffinity",
                           term({"app": "w"}, HOST, namespaces=["default"]), ns="other")
    assert run_filter(plugin, listed, cache.nodes["a1"], cache) is not None
    cache.namespace_labels["default"] = {"team": "x"}
    by_selector = with_affinity("o", "podAntiAffinity", term(
        {"app": "w"}, HOST, namespaceSelector={"matchLabels": {"team": "x"}}), ns="other")
    assert run_filter(plugin, by_selector, cache.nodes["a1"], cache) is not None

    # An existing pod's anti-affinity keeps matching pods out of its zone.
    guard = with_affinity("g", "podAntiAffinity", term({"app": "x"}))
    guard["spec"]["nodeName"] = "b1"
    cache.add_pod(info(guard))
    st = run_filter(plugin, pod("x", labels={"app": "x"}), cache.nodes["b1"], cache)
    assert st.reasons == ["node(s) didn't satisfy existing pods anti-affinity rules"]
    assert run_filter(plugin, pod("x", labels={"app": "x"}), cache.nodes["a1"], cache) is None


def test_preferred_affinity_scores_zones_with_matching_pods():
    cache = cache_with(zones(), [pod("db", labels={"app": "db"}, node_name="a1")])
    p = info(pod("web", affinity={"podAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": term({"app": "db"})}]}}))
    plugin = InterPodAffinity()
    state = CycleState()
    nodes = cache.node_list
    assert plugin.pre_score(state, p, nodes, cache) is None
    scores = [plugin.score(state, p, n) for n in nodes]
    plugin.normalize(state, p, scores)
    assert scores == [100, 100, 0]


def spread(max_skew=1, key=ZONE, when="DoNotSchedule", **extra):
    return {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "s"}}, **extra}


def test_topology_spread_max_skew():
    cache = cache_with(zones(), [pod("s1", labels={"app": "s"}, node_name="a1")])
    p = pod("s2", labels={"app": "s"}, topologySpreadConstraints=[spread()])
    plugin = PodTopologySpread()
    st = run_filter(plugin, p, cache.nodes["a2"], cache)
    assert st.code == UNSCHEDULABLE
    assert st.reasons == ["node(s) didn't match pod topology spread constraints"]
    assert run_filter(plugin, p, cache.nodes["b1"], cache) is None
    relaxed = pod("s2", labels={"app": "s"}, topologySpreadConstraints=[spread(max_skew=2)])
    assert run_filter(plugin, relaxed, cache.nodes["a2"], cache) is None


def test_topology_spread_missing_label_and_min_domains():
    cache = cache_with(zones() + [node("bare")])
    p = pod("s", labels={"app": "s"}, topologySpreadConstraints=[spread()])
    st = run_filter(PodTopologySpread(), p, cache.nodes["bare"], cache)
    assert st.code == UNRESOLVABLE and st.reasons == [
        "node(s) didn't match pod topology spread constraints (missing required label)"]
    # With fewer domains than minDomains the global minimum counts as 0.
    cache.add_pod(info(pod("s0", labels={"app": "s"}, node_name="b1")))
    cache.add_pod(info(pod("s1", labels={"app": "s"}, node_name="a1")))
    few = pod("s", labels={"app": "s"}, topologySpreadConstraints=[spread(minDomains=3)])
    assert run_filter(PodTopologySpread(), few, cache.nodes["a2"], cache) is not None
    assert run_filter(PodTopologySpread(), p, cache.nodes["a2"], cache) is None


def test_topology_spread_schedule_anyway_scores_emptier_domains():
    cache = cache_with(zones(), [pod("s1", labels={"app": "s"}, node_name="a1")])
    p = info(pod("s2", labels={"app": "s"},
                 topologySpreadConstraints=[spread(when="ScheduleAnyway")]))
    plugin = PodTopologySpread()
    state = CycleState()
    assert plugin.pre_score(state, p, cache.node_list, cache) is None
    scores = [plugin.score(state, p, n) for n in cache.node_list]
    plugin.normalize(state, p, scores)
    assert scores[2] == 100 and scores[0] == scores[1] < 100
