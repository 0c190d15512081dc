"""The default plugin set, in kube-scheduler's default profile order (filters run in this order
and the first one that rejects a node names the reason), with the default score weights."""

from __future__ import annotations

from pocketkube.scheduler.framework import Plugin
from pocketkube.scheduler.plugins.balancedallocation import BalancedAllocation
from pocketkube.scheduler.plugins.interpodaffinity import InterPodAffinity
from pocketkube.scheduler.plugins.nodeaffinity import NodeAffinity
from pocketkube.scheduler.plugins.nodename import NodeName
from pocketkube.scheduler.plugins.nodeports import NodePorts
from pocketkube.scheduler.plugins.noderesources import NodeResourcesFit
from pocketkube.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from pocketkube.scheduler.plugins.podtopologyspread import PodTopologySpread
from pocketkube.scheduler.plugins.tainttoleration import TaintToleration


def default_plugins() -> list[Plugin]:
    return [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), NodePorts(),
            NodeResourcesFit(), PodTopologySpread(), InterPodAffinity(), BalancedAllocation()]
