"""Preemption: which node and which victims, and the messages when it cannot help."""

import random

from pocketkube.scheduler.framework import Diagnosis, FitError, Framework
from pocketkube.scheduler.plugins import default_plugins
from pocketkube.scheduler.preemption import Preemptor, pick_one
from tests.unit.scheduler.util import cache_with, info, node, pod


def attempt(cache, incoming, budgets=()):
    fw = Framework(default_plugins())
    pi = info(incoming)
    state, _ = fw.run_pre_filter(pi, cache)
    d = Diagnosis()
    assert fw.find_feasible(state, pi, cache.node_list, d) == []
    pre = Preemptor(fw, cache, dict, random.Random(0), budgets=lambda: list(budgets))
    chosen, msg, clear = pre.preempt(state, pi, d)
    d.post_filter_msg = msg
    return chosen, str(FitError(pi, len(cache.node_list), d)), clear


def test_evicts_the_fewest_lowest_priority_pods():
    cache = cache_with([node("a", cpu="4"), node("b", cpu="4")], [
        pod("a-low1", cpu="1", priority=1, node_name="a"),
        pod("a-low2", cpu="1", priority=1, node_name="a"),
        pod("a-mid", cpu="2", priority=50, node_name="a"),
        pod("b-mid", cpu="2", priority=50, node_name="b"),
        pod("b-big", cpu="2", priority=10, node_name="b"),
    ])
    chosen, msg, _ = attempt(cache, pod("vip", cpu="2", priority=100))
    node_info, victims = chosen
    # Both nodes need victims with highest priority < 100; on a the two 1-priority pods
    # suffice (highest victim priority 1), on b the 10-priority pod (highest 10): a wins.
    assert node_info.name == "a"
    assert sorted(v.name for v in victims) == ["a-low1", "a-low2"]
    assert msg == "0/2 nodes are available: 2 Insufficient cpu."


def test_reprieves_pods_that_can_stay():
    cache = cache_with([node("a", cpu="4")], [
        pod("old", cpu="1", priority=5, node_name="a", created="2024-01-01T00:00:00Z"),
        pod("new", cpu="1", priority=5, node_name="a", created="2024-01-02T00:00:00Z"),
        pod("tiny", cpu="2", priority=1, node_name="a"),
    ])
    (_, victims), _, _ = attempt(cache, pod("vip", cpu="2", priority=100))
    # Giving back the most important first: old and new (priority 5) fit back; tiny cannot.
    assert [v.name for v in victims] == ["tiny"]


def test_not_helpful_when_no_lower_priority_pods_or_unresolvable():
    cache = cache_with([node("a", cpu="2"), node("b", cpu="2", unschedulable=True)], [
        pod("peer", cpu="2", priority=100, node_name="a")])
    chosen, msg, clear = attempt(cache, pod("vip", cpu="1", priority=100))
    assert chosen is None and clear
    assert msg == ("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were "
                   "unschedulable. preemption: 0/2 nodes are available: 1 No preemption "
                   "victims found for incoming pod, 1 Preemption is not helpful for "
                   "scheduling.")
    chosen, msg, _ = attempt(cache, pod("huge", cpu="3", priority=1000))
    assert msg.endswith("preemption: 0/2 nodes are available: 2 Preemption is not helpful "
                        "for scheduling.")


def test_preemption_policy_never():
    cache = cache_with([node("a", cpu="1")], [pod("low", cpu="1", node_name="a")])
    chosen, msg, _ = attempt(cache, pod("vip", cpu="1", priority=10,
                                        preemptionPolicy="Never"))
    assert chosen is None
    assert msg.endswith("preemption: not eligible due to preemptionPolicy=Never.")


def test_victims_must_make_room_for_anti_affinity_too():
    zone = "topology.kubernetes.io/zone"
    cache = cache_with([node("a", labels={zone: "z"})], [
        pod("w", labels={"app": "w"}, priority=1, node_name="a")])
    incoming = pod("vip", priority=10, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "w"}}, "topologyKey": zone}]}})
    (ni, victims), _, _ = attempt(cache, incoming)
    assert ni.name == "a" and [v.name for v in victims] == ["w"]


def test_pick_one_prefers_fewer_victims_then_latest_started():
    a, b, c = (info(pod(n, priority=5, created=t)) for n, t in (
        ("a", "2024-01-01T00:00:00Z"), ("b", "2024-01-03T00:00:00Z"),
        ("c", "2024-01-02T00:00:00Z")))
    two = [info(pod("x", priority=5)), info(pod("y", priority=5))]
    assert pick_one([("n1", two, 0), ("n2", [a], 0)])[0] == "n2"
    assert pick_one([("n1", [a], 0), ("n2", [b], 0), ("n3", [c], 0)])[0] == "n2"


def budget(app, allowed, disrupted=()):
    return {"metadata": {"name": app, "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": app}}},
            "status": {"disruptionsAllowed": allowed,
                       "disruptedPods": {n: "2024-01-01T00:00:00Z" for n in disrupted}}}


def test_prefers_the_node_whose_victims_break_no_budget():
    cache = cache_with([node("a", cpu="2"), node("b", cpu="2")], [
        pod("a-guarded", cpu="2", priority=1, node_name="a", labels={"app": "db"}),
        pod("b-free", cpu="2", priority=5, node_name="b", labels={"app": "web"}),
    ])
    # Without budgets a wins (lower victim priority); the db budget allows no disruption.
    (ni, _), _, _ = attempt(cache, pod("vip", cpu="2", priority=100))
    assert ni.name == "a"
    (ni, victims), _, _ = attempt(cache, pod("vip", cpu="2", priority=100), [budget("db", 0)])
    assert ni.name == "b" and [v.name for v in victims] == ["b-free"]
    # An eviction the budget already granted is not counted again.
    (ni, _), _, _ = attempt(cache, pod("vip", cpu="2", priority=100),
                            [budget("db", 0, disrupted=["a-guarded"])])
    assert ni.name == "a"


def test_budget_guarded_pods_are_given_back_first():
    cache = cache_with([node("a", cpu="3")], [
        pod("guarded", cpu="1", priority=1, node_name="a", labels={"app": "db"},
            created="2024-01-02T00:00:00Z"),
        pod("plain", cpu="1", priority=1, node_name="a", labels={"app": "web"},
            created="2024-01-01T00:00:00Z"),
        pod("other", cpu="1", priority=50, node_name="a"),
    ])
    (_, victims), _, _ = attempt(cache, pod("vip", cpu="1", priority=100), [budget("db", 0)])
    # By importance alone "plain" (older) would stay and "guarded" go; the budget reverses it.
    assert [v.name for v in victims] == ["plain"]
