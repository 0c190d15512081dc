"""NodeResourcesFit (filter, LeastAllocated) and BalancedAllocation, and how a pod's request
is computed."""

from pocketkube.scheduler.cache import NodeInfo
from pocketkube.scheduler.framework import UNRESOLVABLE, UNSCHEDULABLE, CycleState
from pocketkube.scheduler.plugins.balancedallocation import BalancedAllocation
from pocketkube.scheduler.plugins.noderesources import NodeResourcesFit
from pocketkube.scheduler.resources import DEFAULT_MEMORY, DEFAULT_MILLI_CPU, pod_requests
from tests.unit.scheduler.util import info, node, pod, run_filter


def test_pod_requests_sum_containers_max_init_sidecars_and_overhead():
    spec = {
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                       {"name": "b", "resources": {"requests": {"cpu": "500m"}}}],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2",
                                                                    "memory": "512Mi"}}}],
        "overhead": {"cpu": "100m"},
    }
    r = pod_requests(spec)
    assert (r.cpu, r.memory) == (2100, 1024 ** 3)
    sidecar = {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
               "initContainers": [{"name": "s", "restartPolicy": "Always",
                                   "resources": {"requests": {"cpu": "1"}}},
                                  {"name": "i", "resources": {"requests": {"cpu": "1500m"}}}]}
    # The sidecar runs beside the app (2 cpu) and beside the later init step (2.5 cpu).
    assert pod_requests(sidecar).cpu == 2500
    empty = pod_requests({"containers": [{"name": "a"}]}, non_zero=True)
    assert (empty.cpu, empty.memory) == (DEFAULT_MILLI_CPU, DEFAULT_MEMORY)


def test_fit_reports_every_insufficient_resource():
    ni = NodeInfo("a", node("a", cpu="2", memory="1Gi", pods="2"))
    ni.add_pod(info(pod("x", cpu="1500m", memory="512Mi")))
    assert run_filter(NodeResourcesFit(), pod("p", cpu="500m", memory="512Mi"), ni) is None
    st = run_filter(NodeResourcesFit(), pod("p", cpu="1", memory="1Gi"), ni)
    assert st.code == UNSCHEDULABLE
    assert st.reasons == ["Insufficient cpu", "Insufficient memory"]
    ni.add_pod(info(pod("y")))
    st = run_filter(NodeResourcesFit(), pod("p"), ni)
    assert st.reasons == ["Too many pods"]


def test_fit_request_beyond_allocatable_is_unresolvable():
    ni = NodeInfo("a", node("a", cpu="2"))
    st = run_filter(NodeResourcesFit(), pod("p", cpu="3"), ni)
    assert st.code == UNRESOLVABLE and st.reasons == ["Insufficient cpu"]


def test_fit_extended_resources_and_ephemeral_storage():
    ni = NodeInfo("a", node("a", **{"example.com/gpu": "1", "ephemeral-storage": "10Gi"}))
    gpu2 = pod("p", containers=[{"name": "c", "resources": {
        "requests": {"example.com/gpu": "2"}, "limits": {"example.com/gpu": "2"}}}])
    assert run_filter(NodeResourcesFit(), gpu2, ni).reasons == ["Insufficient example.com/gpu"]
    gpu1 = pod("p", containers=[{"name": "c", "resources": {"requests": {
        "example.com/gpu": "1", "ephemeral-storage": "20Gi"}}}])
    assert run_filter(NodeResourcesFit(), gpu1, ni).reasons == [
        "Insufficient ephemeral-storage"]
    plain = NodeInfo("b", node("b"))
    assert run_filter(NodeResourcesFit(), gpu2, plain).code == UNRESOLVABLE


def test_least_allocated_prefers_emptier_nodes_and_counts_defaults():
    plugin = NodeResourcesFit()
    empty = NodeInfo("e", node("e", cpu="4", memory="8Gi"))
    busy = NodeInfo("b", node("b", cpu="4", memory="8Gi"))
    busy.add_pod(info(pod("x", cpu="2", memory="4Gi")))
    p = info(pod("p", cpu="1", memory="2Gi"))
    state = CycleState()
    # cpu (4000-1000)/4000 -> 75, memory (8-2)/8 -> 75
    assert plugin.score(state, p, empty) == 75
    assert plugin.score(state, p, busy) == 25
    # A pod without requests still counts 100m / 200Mi.
    bare = info(pod("q"))
    assert plugin.score(state, bare, empty) == ((4000 - 100) * 100 // 4000 + (
        (8 * 1024 ** 3 - DEFAULT_MEMORY) * 100 // (8 * 1024 ** 3))) // 2


def test_balanced_allocation():
    plugin = BalancedAllocation()
    n = NodeInfo("a", node("a", cpu="4", memory="4Gi"))
    state = CycleState()
    balanced = info(pod("p", cpu="2", memory="2Gi"))
    skewed = info(pod("q", cpu="2", memory="0"))
    assert plugin.pre_score(state, balanced, [n], None) is None
    assert plugin.score(state, balanced, n) == 100
    assert plugin.score(state, skewed, n) == 75  # |0.5 - 0| / 2 = 0.25
    assert plugin.pre_score(state, info(pod("none")), [n], None).code == 5
