"""Container probes of the node agent: liveness, readiness and startup (see manager.py)."""

from pocketkube.kubelet.prober.manager import ProbeManager

__all__ = ["ProbeManager"]
