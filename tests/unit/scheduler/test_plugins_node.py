"""Node-level filter plugins: NodeUnschedulable, NodeName, TaintToleration, NodeAffinity,
NodePorts."""

from pocketkube.scheduler.cache import NodeInfo
from pocketkube.scheduler.framework import UNRESOLVABLE, UNSCHEDULABLE, CycleState
from pocketkube.scheduler.plugins.nodeaffinity import NodeAffinity
from pocketkube.scheduler.plugins.nodename import NodeName
from pocketkube.scheduler.plugins.nodeports import NodePorts
from pocketkube.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from pocketkube.scheduler.plugins.tainttoleration import TaintToleration
from tests.unit.scheduler.util import info, node, pod, run_filter


def test_node_unschedulable_rejects_cordoned_unless_tolerated():
    cordoned = NodeInfo("n", node("n", unschedulable=True))
    st = run_filter(NodeUnschedulable(), pod("p"), cordoned)
    assert st.code == UNRESOLVABLE and st.reasons == ["node(s) were unschedulable"]
    tolerant = pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                      "operator": "Exists", "effect": "NoSchedule"}])
    assert run_filter(NodeUnschedulable(), tolerant, cordoned) is None
    assert run_filter(NodeUnschedulable(), pod("p"), NodeInfo("m", node("m"))) is None


def test_node_name():
    ni = NodeInfo("a", node("a"))
    assert run_filter(NodeName(), pod("p"), ni) is None
    assert run_filter(NodeName(), pod("p", node_name="a"), ni) is None
    st = run_filter(NodeName(), pod("p", node_name="b"), ni)
    assert st.reasons == ["node(s) didn't match the requested node name"]


def test_taint_toleration_filter_message_and_effects():
    taints = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    ni = NodeInfo("a", node("a", taints=taints))
    st = run_filter(TaintToleration(), pod("p"), ni)
    assert st.code == UNRESOLVABLE
    assert st.reasons == ["node(s) had untolerated taint {dedicated: gpu}"]
    ok = pod("p", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu"}])
    assert run_filter(TaintToleration(), ok, ni) is None
    wrong_value = pod("p", tolerations=[{"key": "dedicated", "value": "cpu"}])
    assert run_filter(TaintToleration(), wrong_value, ni) is not None
    soft = NodeInfo("b", node("b", taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
    assert run_filter(TaintToleration(), pod("p"), soft) is None
    empty_value = NodeInfo("c", node("c", taints=[
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]))
    assert run_filter(TaintToleration(), pod("p"), empty_value).reasons == [
        "node(s) had untolerated taint {node.kubernetes.io/unschedulable: }"]


def test_taint_toleration_score_prefers_fewer_untolerated_soft_taints():
    plugin = TaintToleration()
    soft = {"key": "k", "value": "v", "effect": "PreferNoSchedule"}
    nodes = [NodeInfo("clean", node("clean")), NodeInfo("one", node("one", taints=[soft])),
             NodeInfo("two", node("two", taints=[soft, dict(soft, key="k2")]))]
    state, pi = CycleState(), info(pod("p"))
    plugin.pre_score(state, pi, nodes, None)
    scores = [plugin.score(state, pi, n) for n in nodes]
    assert scores == [0, 1, 2]
    plugin.normalize(state, pi, scores)
    assert scores == [100, 50, 0]


def test_node_affinity_selector_and_required_terms():
    ni = NodeInfo("a", node("a", labels={"zone": "z1", "gen": "5"}))
    assert run_filter(NodeAffinity(), pod("p", nodeSelector={"zone": "z1"}), ni) is None
    st = run_filter(NodeAffinity(), pod("p", nodeSelector={"zone": "z2"}), ni)
    assert st.code == UNRESOLVABLE
    assert st.reasons == ["node(s) didn't match Pod's node affinity/selector"]

    def required(*exprs, fields=()):
        term = {"matchExpressions": list(exprs)}
        if fields:
            term["matchFields"] = list(fields)
        return pod("p", affinity={"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}})

    assert run_filter(NodeAffinity(), required(
        {"key": "zone", "operator": "In", "values": ["z1", "z3"]}), ni) is None
    assert run_filter(NodeAffinity(), required(
        {"key": "gen", "operator": "Gt", "values": ["4"]}), ni) is None
    assert run_filter(NodeAffinity(), required(
        {"key": "gen", "operator": "Lt", "values": ["4"]}), ni) is not None
    assert run_filter(NodeAffinity(), required(
        {"key": "zone", "operator": "DoesNotExist"}), ni) is not None
    assert run_filter(NodeAffinity(), required(fields=[
        {"key": "metadata.name", "operator": "In", "values": ["a"]}]), ni) is None


def test_node_affinity_preferred_score():
    plugin = NodeAffinity()
    p = info(pod("p", affinity={"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["z1"]}]}},
            {"weight": 30, "preference": {"matchExpressions": [
                {"key": "ssd", "operator": "Exists"}]}}]}}))
    nodes = [NodeInfo("a", node("a", labels={"zone": "z1"})),
             NodeInfo("b", node("b", labels={"zone": "z1", "ssd": "1"})),
             NodeInfo("c", node("c"))]
    state = CycleState()
    assert plugin.pre_score(state, p, nodes, None) is None
    scores = [plugin.score(state, p, n) for n in nodes]
    assert scores == [10, 40, 0]
    plugin.normalize(state, p, scores)
    assert scores == [25, 100, 0]


def test_node_ports_conflicts():
    plugin = NodePorts()
    ni = NodeInfo("a", node("a"))
    ni.add_pod(info(pod("web", containers=[{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "hostPort": 8080}]}])))
    same = pod("p", containers=[{"name": "c", "image": "x",
                                 "ports": [{"containerPort": 80, "hostPort": 8080}]}])
    st = run_filter(plugin, same, ni)
    assert st.code == UNSCHEDULABLE
    assert st.reasons == ["node(s) didn't have free ports for the requested pod ports"]
    udp = pod("p", containers=[{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}])
    assert run_filter(plugin, udp, ni) is None
    specific_ip = pod("p", containers=[{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]}])
    assert run_filter(plugin, specific_ip, ni) is not None  # the wildcard holds it
    assert run_filter(plugin, pod("p"), ni) is None
