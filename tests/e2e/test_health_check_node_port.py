"""spec.healthCheckNodePort as kube-apiserver handles it, through kubectl: allocated from the
node port range for LoadBalancer Services with externalTrafficPolicy Local, kept across
updates and immutable, refused on other Services, released when no longer needed."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Kubectl, to_yaml


def lb(name: str, policy: str = "Local", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                     "selector": {"app": name}, "ports": [{"port": 80}], **spec}}


def hcnp(k: Kubectl, name: str) -> str:
    return k("get", "svc", name, "-o", "jsonpath={.spec.healthCheckNodePort}").stdout


def test_local_load_balancer_gets_a_health_check_port_that_stays(k: Kubectl) -> None:
    k.create(lb("web"))
    port = hcnp(k, "web")
    assert 30000 <= int(port) <= 32767
    node_port = k("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout
    assert port != node_port
    k("label", "svc", "web", "tier=front")
    assert hcnp(k, "web") == port
    other_port = int(port) + 1 if int(port) < 32767 else 30000
    err = k.fails("patch", "svc", "web", "-p",
                  f'{{"spec":{{"healthCheckNodePort":{other_port}}}}}')
    assert "spec.healthCheckNodePort: Forbidden: field is immutable" in err.stderr
    # Taken by this Service, so nobody else may ask for it.
    err = k.fails("create", "-f", "-", input=to_yaml(lb("other", healthCheckNodePort=int(port))))
    assert "provided port is already allocated" in err.stderr
    # Cluster policy: the port goes, and another Service may take it.
    k("patch", "svc", "web", "-p", '{"spec":{"externalTrafficPolicy":"Cluster"}}')
    assert hcnp(k, "web") == ""
    k.create(lb("other", healthCheckNodePort=int(port)))
    assert hcnp(k, "other") == port


def test_health_check_port_only_where_it_means_something(k: Kubectl) -> None:
    err = k.fails("create", "-f", "-", input=to_yaml(lb("cluster", "Cluster",
                                                       healthCheckNodePort=31999)))
    assert ("spec.healthCheckNodePort: Invalid value: 31999: may only be set when `type` is "
            "'LoadBalancer' and `externalTrafficPolicy` is 'Local'") in err.stderr
    assert "NotFound" in k.fails("get", "svc", "cluster").stderr  # nothing stored

