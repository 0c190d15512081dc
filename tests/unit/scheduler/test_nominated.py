"""Pods nominated to a node (they preempted and wait for the room): filtering counts those of
at least the incoming pod's priority in the node's pod (anti-)affinity and topology spread
counts, and the node must fit both with and without them; the nominator follows the pods'
status.nominatedNodeName."""

import random

from pocketkube.client.workqueue import FakeClock
from pocketkube.scheduler.framework import CycleState, Diagnosis, Framework
from pocketkube.scheduler.plugins import default_plugins
from pocketkube.scheduler.plugins.podtopologyspread import PodTopologySpread
from pocketkube.scheduler.preemption import Preemptor
from pocketkube.scheduler.queue import SchedulingQueue
from pocketkube.scheduler.scheduler import Scheduler
from tests.unit.scheduler.fakeapi import FakeApi
from tests.unit.scheduler.util import cache_with, info, node, pod

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"
ANTI = "node(s) didn't match pod anti-affinity rules"
SPREAD = "node(s) didn't match pod topology spread constraints"


def zones():
    return [node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}),
            node("b1", labels={ZONE: "b"})]


def avoiding(name, app, key=HOST, priority=0):
    return pod(name, priority=priority, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}})


def spreading(name, priority=0):
    return pod(name, labels={"app": "s"}, priority=priority, topologySpreadConstraints=[
        {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "s"}}}])


def feasible(cache, incoming, nominated):
    """(names of the feasible nodes, {node: reasons} of the others)."""
    fw = Framework(default_plugins())
    pi = info(incoming)
    state, st = fw.run_pre_filter(pi, cache)
    assert st is None
    d = Diagnosis()
    nodes = fw.find_feasible(state, pi, cache.node_list, d, nominated)
    return sorted(n.name for n in nodes), {n: s.reasons for n, s in d.statuses.items()}


def test_higher_priority_nominated_pod_blocks_anti_affinity_on_its_node_only():
    cache = cache_with(zones())
    vip = info(pod("vip", labels={"app": "vip"}, priority=100))
    ok, rejected = feasible(cache, avoiding("p", "vip", priority=10), {"a1": [vip]})
    assert ok == ["a2", "b1"] and rejected == {"a1": [ANTI]}
    # Not nominated anywhere: the pod fits everywhere.
    assert feasible(cache, avoiding("p", "vip", priority=10), None)[0] == ["a1", "a2", "b1"]


def test_equal_priority_counts_lower_does_not():
    cache = cache_with(zones())
    for prio, blocked in ((10, True), (9, False)):
        nominee = info(pod("n", labels={"app": "vip"}, priority=prio))
        ok, rejected = feasible(cache, avoiding("p", "vip", ZONE, priority=10),
                                {"a2": [nominee]})
        assert ok == (["a1", "b1"] if blocked else ["a1", "a2", "b1"])
        # Zone-wide anti-affinity: only the nominated node itself sees the nominee.
        assert rejected == ({"a2": [ANTI]} if blocked else {})


def test_nominated_pods_count_in_topology_spread():
    cache = cache_with(zones())
    nominee = info(spreading("s0", priority=50))
    # Zone a would hold 1 (the nominee) + 1 against zone b's 0: skew 2 on a1; a2 is filtered
    # without a1's nominee, as kube does.
    ok, rejected = feasible(cache, spreading("s1"), {"a1": [nominee]})
    assert ok == ["a2", "b1"] and rejected == {"a1": [SPREAD]}
    # The nominee's own namespace only.
    other = info(pod("x", ns="other", labels={"app": "s"}, priority=50))
    assert feasible(cache, spreading("s1"), {"a1": [other]})[0] == ["a1", "a2", "b1"]


def test_node_must_fit_without_its_nominated_pods_too():
    # The only pod the incoming pod wants to be near is still just nominated to a1: the node
    # passes with it but not without it (it may land elsewhere), so a1 is rejected.
    cache = cache_with(zones(), [pod("db", labels={"app": "db"}, node_name="b1")])
    near_web = pod("p", affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": HOST}]}})
    web = info(pod("web", labels={"app": "web"}, priority=100))
    ok, rejected = feasible(cache, near_web, {"a1": [web]})
    assert ok == [] and set(rejected) == {"a1", "a2", "b1"}


def test_nominated_pods_take_room_in_resources():
    cache = cache_with([node("a", cpu="2"), node("b", cpu="2")])
    big = info(pod("big", cpu="2", priority=100))
    ok, rejected = feasible(cache, pod("p", cpu="1"), {"a": [big]})
    assert ok == ["b"] and rejected == {"a": ["Insufficient cpu"]}


def test_spread_state_follows_added_and_removed_pods():
    cache = cache_with(zones(), [pod("s0", labels={"app": "s"}, node_name="b1")])
    plugin = PodTopologySpread()
    pi = info(spreading("s1"))
    state = CycleState()
    assert plugin.pre_filter(state, pi, cache) is None
    a1, b1 = cache.nodes["a1"], cache.nodes["b1"]
    assert plugin.filter(state, pi, b1) is not None  # b: 1 + 1 - 0 > 1
    copy = state.clone()
    plugin.add_pod(copy, pi, info(pod("x", labels={"app": "s"}, node_name="a1")), a1)
    assert plugin.filter(copy, pi, b1) is None  # zones now 1 and 1
    assert plugin.filter(state, pi, b1) is not None  # the original is untouched
    plugin.remove_pod(copy, pi, cache.pod(next(iter(b1.pods))), b1)
    assert plugin.filter(copy, pi, a1) is not None  # a: 1 + 1 - 0 > 1


def test_preemption_dry_run_keeps_spread_counts_right():
    # a1 is full of a low-priority pod that matches the spread (zones a: 1, b: 0), b1 of one
    # that cannot be evicted. Only with the victim's removal counted (a: 0) does the incoming
    # pod fit a1's zone.
    cache = cache_with([node("a1", cpu="1", labels={ZONE: "a"}),
                        node("b1", cpu="1", labels={ZONE: "b"})],
                       [pod("old", cpu="1", labels={"app": "s"}, node_name="a1", priority=1),
                        pod("keep", cpu="1", node_name="b1", priority=1000)])
    fw = Framework(default_plugins())
    incoming = spreading("new", priority=100)
    incoming["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
    pi = info(incoming)
    state, _ = fw.run_pre_filter(pi, cache)
    d = Diagnosis()
    assert fw.find_feasible(state, pi, cache.node_list, d) == []
    pre = Preemptor(fw, cache, dict, random.Random(0))
    (ni, victims), msg, _ = pre.preempt(state, pi, d)
    assert ni.name == "a1" and [v.name for v in victims] == ["old"] and msg == ""


# -- the nominator --------------------------------------------------------------------------------

def nominated_to(p, node_name):
    p["status"]["nominatedNodeName"] = node_name
    return p


def test_queue_follows_the_status_and_keeps_its_own_unwritten_nomination():
    q = SchedulingQueue(FakeClock())
    p = nominated_to(pod("p", priority=5), "a1")
    q.add(info(p))
    assert [x.name for x in q.nominated_pods()["a1"]] == ["p"]
    cleared = nominated_to(dict(p, status={"phase": "Pending"}), "")
    q.update(info(cleared))
    assert q.nominated_pods() == {}
    # Nominated here before the status says so: a status update that names no node keeps it.
    q.add_nominated(info(cleared), "b1")
    relabelled = dict(cleared, metadata=dict(cleared["metadata"], labels={"v": "2"}))
    q.update(info(relabelled))
    [kept] = q.nominated_pods()["b1"]
    assert kept.labels == {"v": "2"}
    q.delete(kept.uid)
    assert q.nominated_pods() == {}


async def test_scheduler_counts_nominated_pods_until_their_nomination_is_cleared():
    sched = Scheduler(FakeApi(), rng=random.Random(0))
    h = sched.handlers
    for n in zones():
        h.node_add(n)
    vip = nominated_to(pod("vip", labels={"app": "vip"}, priority=100), "a1")
    h.unscheduled_add(vip)
    p = avoiding("p", "vip", ZONE)
    pi = sched.pod_info(p)
    hosts = set()
    for _ in range(20):
        host, _, _ = sched.find_host(pi)
        hosts.add(host.name)
    assert hosts == {"a2", "b1"}  # a1 is rejected; the zone's other node is not
    h.unscheduled_update(vip, nominated_to(dict(vip, status={"phase": "Pending"}), ""))
    assert sched.queue.nominated_pods() == {}
    hosts = {sched.find_host(pi)[0].name for _ in range(30)}
    assert "a1" in hosts
    # Bound: not nominated any more, counted as a pod on its node instead.
    h.unscheduled_add(vip)
    bound = dict(vip, spec=dict(vip["spec"], nodeName="b1"))
    h.unscheduled_delete(vip)
    h.assigned_add(bound)
    assert sched.queue.nominated_pods() == {}
    hosts = {sched.find_host(pi)[0].name for _ in range(30)}
    assert hosts == {"a1", "a2"}
    await sched.events.close()
