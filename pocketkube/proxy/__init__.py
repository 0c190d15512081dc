"""kube-proxy for pocketkube: turns Services and EndpointSlices into packet rewriting on one
node. The iptables mode (rules.py + iptables.py) is the real one, written the way
pkg/proxy/iptables does it so `iptables-save` reads like a Kubernetes node's; the userspace mode
(userspace.py) forwards NodePorts on 127.0.0.1 for machines without root. component.py picks one.
"""
