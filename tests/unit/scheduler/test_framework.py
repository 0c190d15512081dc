"""The framework: kube's FailedScheduling message, the number of nodes to score, the
round-robin start, nominated pods holding room, and scoring ties."""

import random

from pocketkube.scheduler.framework import (
    UNRESOLVABLE,
    Diagnosis,
    FitError,
    Framework,
    Status,
    num_feasible_nodes_to_find,
)
from pocketkube.scheduler.plugins import default_plugins
from tests.unit.scheduler.util import cache_with, info, node, pod


def test_fit_error_message_sorts_and_counts_reasons():
    d = Diagnosis()
    d.statuses = {
        "a": Status(UNRESOLVABLE, "node(s) had untolerated taint {node.kubernetes.io/"
                                  "unschedulable: }"),
        "b": Status(2, "Insufficient cpu"),
        "c": Status(2, "Insufficient cpu", "Insufficient memory"),
    }
    d.post_filter_msg = ("preemption: 0/3 nodes are available: 3 Preemption is not helpful "
                         "for scheduling.")
    assert str(FitError(info(pod("p")), 3, d)) == (
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint "
        "{node.kubernetes.io/unschedulable: }, 2 Insufficient cpu. preemption: 0/3 nodes are "
        "available: 3 Preemption is not helpful for scheduling.")


def test_num_feasible_nodes_to_find():
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(100) == 100  # 49% of 100, but never fewer than 100
    assert num_feasible_nodes_to_find(1000) == 420  # 50 - 8 = 42%
    assert num_feasible_nodes_to_find(5000) == 500  # 50 - 40 = 10%
    assert num_feasible_nodes_to_find(6000) == 300  # floor at 5%
    assert num_feasible_nodes_to_find(1000, percentage=20) == 200


def test_round_robin_start_and_early_stop():
    cache = cache_with([node(f"n{i:03}") for i in range(1000)])
    fw = Framework(default_plugins(), rng=random.Random(1))
    pi = info(pod("p", cpu="100m"))
    state, st = fw.run_pre_filter(pi, cache)
    assert st is None
    first = fw.find_feasible(state, pi, cache.node_list, Diagnosis())
    assert len(first) == 420 and first[0].name == "n000"
    second = fw.find_feasible(state, pi, cache.node_list, Diagnosis())
    assert second[0].name == "n420"
    third = fw.find_feasible(state, pi, cache.node_list, Diagnosis())
    assert third[0].name == "n840" and third[-1].name == "n259"  # wraps around


def test_nominated_pods_keep_their_room_from_lower_priority_pods():
    cache = cache_with([node("a", cpu="2")])
    fw = Framework(default_plugins())
    waiting = info(pod("vip", cpu="2", priority=100))
    low = info(pod("low", cpu="1"))
    state, _ = fw.run_pre_filter(low, cache)
    d = Diagnosis()
    assert fw.find_feasible(state, low, cache.node_list, d, {"a": [waiting]}) == []
    assert d.statuses["a"].reasons == ["Insufficient cpu"]
    higher = info(pod("higher", cpu="1", priority=200))
    state, _ = fw.run_pre_filter(higher, cache)
    assert fw.find_feasible(state, higher, cache.node_list, Diagnosis(), {"a": [waiting]})


def test_scores_pick_the_least_loaded_node():
    cache = cache_with([node("a"), node("b"), node("c")],
                       [pod("x", cpu="3", node_name="a"), pod("y", cpu="2", node_name="b")])
    fw = Framework(default_plugins(), rng=random.Random(3))
    pi = info(pod("p", cpu="1", memory="1Gi"))
    state, _ = fw.run_pre_filter(pi, cache)
    nodes = fw.find_feasible(state, pi, cache.node_list, Diagnosis())
    totals = fw.prioritize(state, pi, nodes, cache)
    assert fw.select_host(nodes, totals).name == "c"


def test_assumed_pods_take_room_at_once():
    cache = cache_with([node("a", cpu="1")])
    fw = Framework(default_plugins())
    first = info(pod("p1", cpu="1"))
    cache.assume(first, "a")
    second = info(pod("p2", cpu="1"))
    state, _ = fw.run_pre_filter(second, cache)
    assert fw.find_feasible(state, second, cache.node_list, Diagnosis()) == []
    cache.forget(first.uid)
    assert fw.find_feasible(state, second, cache.node_list, Diagnosis())
