"""A container's environment: kube's order, $(VAR) expansion, valueFrom sources and their
errors, service link variables."""

from __future__ import annotations

import base64

import pytest

from pocketkube.kubelet.envvars import ContainerConfigError, build_env, expand, service_env


class FakeObjects:
    def __init__(self, configmaps: dict | None = None, secrets: dict | None = None) -> None:
        self.configmaps = configmaps or {}
        self.secrets = secrets or {}

    async def configmap(self, ns: str, name: str) -> dict | None:
        data = self.configmaps.get((ns, name))
        return None if data is None else {"metadata": {"name": name}, "data": data}

    async def secret(self, ns: str, name: str) -> dict | None:
        data = self.secrets.get((ns, name))
        if data is None:
            return None
        return {"metadata": {"name": name},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def pod(containers: list[dict], **spec: object) -> dict:
    return {"metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                         "labels": {"app": "web", "tier": "front"},
                         "annotations": {"note": 'say "hi"'}},
            "spec": {"nodeName": "node-a", "serviceAccountName": "sa1",
                     "containers": containers, **spec}}


def svc(name: str, ns: str, ip: str, ports: list[dict]) -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip,
                                                                  "ports": ports}}


KUBERNETES = svc("kubernetes", "default", "10.96.0.1",
                 [{"name": "https", "port": 443, "protocol": "TCP"}])


async def env_of(p: dict, objects: FakeObjects | None = None, image_env: list[str] | None = None,
                 services: list[dict] | None = None, **kw: object) -> list[tuple[str, str]]:
    c = p["spec"]["containers"][0]
    return await build_env(p, c, image_env or [], objects or FakeObjects(), node_name="node-a",
                           pod_ip="10.1.0.5", host_ip="192.168.1.2",
                           services=services if services is not None else [], **kw)


def test_expand_matches_kube_semantics() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("$$$(A)", env) == "$1"
    assert expand("a$b", env) == "a$b"
    assert expand("$(A", env) == "$(A"
    assert expand("trailing$", env) == "trailing$"
    assert expand("$()", env) == "$()"
    assert expand("x", [("A", "1")]) == "x"


async def test_order_image_env_then_envfrom_then_env() -> None:
    objs = FakeObjects(configmaps={("ns1", "cfg"): {"B": "from-cm", "C": "c"}},
                       secrets={("ns1", "sec"): {"PASS": "s3cret"}})
    p = pod([{"name": "app", "envFrom": [{"configMapRef": {"name": "cfg"}},
                                         {"secretRef": {"name": "sec"}, "prefix": "S_"}],
              "env": [{"name": "B", "value": "from-env"}, {"name": "D", "value": "$(C)-$(B)"}]}])
    env = await env_of(p, objs, image_env=["PATH=/bin", "B=image"])
    assert env == [("PATH", "/bin"), ("B", "from-env"), ("C", "c"), ("S_PASS", "s3cret"),
                   ("D", "c-from-env")]


async def test_expansion_sees_only_variables_defined_before() -> None:
    p = pod([{"name": "app", "env": [{"name": "X", "value": "$(Y)"},
                                     {"name": "Y", "value": "y"},
                                     {"name": "Z", "value": "$(Y)$$(Y)"}]}])
    assert dict(await env_of(p)) == {"X": "$(Y)", "Y": "y", "Z": "y$(Y)"}


async def test_value_from_configmap_and_secret_errors() -> None:
    def with_env(entry: dict) -> dict:
        return pod([{"name": "app", "env": [entry]}])

    objs = FakeObjects(configmaps={("ns1", "cfg"): {"k": "v"}}, secrets={("ns1", "s"): {"k": "v"}})
    cases = [
        ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
        ({"configMapKeyRef": {"name": "cfg", "key": "y"}},
         "couldn't find key y in ConfigMap ns1/cfg"),
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
        ({"secretKeyRef": {"name": "s", "key": "y"}}, "couldn't find key y in Secret ns1/s"),
    ]
    for value_from, message in cases:
        with pytest.raises(ContainerConfigError) as e:
            await env_of(with_env({"name": "V", "valueFrom": value_from}), objs)
        assert e.value.message == message
    ok = await env_of(with_env({"name": "V", "valueFrom": {
        "configMapKeyRef": {"name": "cfg", "key": "k"}}}), objs)
    assert ok == [("V", "v")]


async def test_optional_sources_leave_the_variable_out() -> None:
    p = pod([{"name": "app",
              "envFrom": [{"configMapRef": {"name": "gone", "optional": True}},
                          {"secretRef": {"name": "gone", "optional": True}}],
              "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {
                  "name": "gone", "key": "k", "optional": True}}},
                  {"name": "B", "valueFrom": {"secretKeyRef": {
                      "name": "s", "key": "missing", "optional": True}}},
                  {"name": "C", "value": "c"}]}])
    objs = FakeObjects(secrets={("ns1", "s"): {"k": "v"}})
    assert await env_of(p, objs) == [("C", "c")]


async def test_envfrom_missing_required_source() -> None:
    p = pod([{"name": "app", "envFrom": [{"secretRef": {"name": "gone"}}]}])
    with pytest.raises(ContainerConfigError, match='^secret "gone" not found$'):
        await env_of(p)


async def test_field_refs() -> None:
    fields = ["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['app']",
              "metadata.annotations['note']", "metadata.labels", "spec.nodeName",
              "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
              "status.podIPs", "metadata.labels['absent']"]
    p = pod([{"name": "app", "env": [
        {"name": f"F{i}", "valueFrom": {"fieldRef": {"fieldPath": f}}}
        for i, f in enumerate(fields)]}])
    values = [v for _, v in await env_of(p, pod_ips=["10.1.0.5", "fd00::5"])]
    assert values == ["web", "ns1", "u-1", "web", 'say "hi"', 'app="web"\ntier="front"',
                      "node-a", "sa1", "192.168.1.2", "192.168.1.2", "10.1.0.5",
                      "10.1.0.5,fd00::5", ""]


async def test_resource_field_refs_with_divisor_and_allocatable() -> None:
    c = {"name": "app", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                                      "requests": {"cpu": "100m"}},
         "env": [
             {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
             {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {
                 "resource": "limits.cpu", "divisor": "1m"}}},
             {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {
                 "resource": "limits.memory", "divisor": "1Mi"}}},
             {"name": "MEM_REQ", "valueFrom": {"resourceFieldRef": {
                 "resource": "requests.memory"}}},
             {"name": "EPH", "valueFrom": {"resourceFieldRef": {
                 "resource": "limits.ephemeral-storage", "divisor": "1Gi"}}},
         ]}
    env = await env_of(pod([c]), allocatable={"cpu": "4", "memory": "8Gi",
                                              "ephemeral-storage": "100Gi"})
    assert env == [("CPU_LIMIT", "1"), ("CPU_M", "250"), ("MEM_MI", "64"), ("MEM_REQ", "0"),
                   ("EPH", "100")]
    # Without limits the node's allocatable stands in.
    c2 = {"name": "app", "env": [{"name": "C", "valueFrom": {"resourceFieldRef": {
        "resource": "limits.cpu"}}}, {"name": "M", "valueFrom": {"resourceFieldRef": {
            "resource": "limits.memory", "divisor": "1Gi"}}}]}
    env = await env_of(pod([c2]), allocatable={"cpu": "4", "memory": "8Gi"})
    assert env == [("C", "4"), ("M", "8")]


def test_service_env_docker_link_style() -> None:
    services = [svc("redis-primary", "ns1", "10.96.0.20",
                    [{"port": 6379, "protocol": "TCP"},
                     {"name": "metrics", "port": 9121, "protocol": "UDP"}]),
                svc("headless", "ns1", "None", [{"port": 80}]),
                svc("other", "ns2", "10.96.0.30", [{"port": 80}]),
                KUBERNETES]
    env = service_env(services, "ns1")
    assert env == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
        "REDIS_PRIMARY_SERVICE_HOST": "10.96.0.20",
        "REDIS_PRIMARY_SERVICE_PORT": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_METRICS": "9121",
        "REDIS_PRIMARY_PORT": "tcp://10.96.0.20:6379",
        "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.96.0.20:6379",
        "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379",
        "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.96.0.20",
        "REDIS_PRIMARY_PORT_9121_UDP": "udp://10.96.0.20:9121",
        "REDIS_PRIMARY_PORT_9121_UDP_PROTO": "udp",
        "REDIS_PRIMARY_PORT_9121_UDP_PORT": "9121",
        "REDIS_PRIMARY_PORT_9121_UDP_ADDR": "10.96.0.20",
    }
    v6 = service_env([svc("v6", "ns1", "fd00::10", [{"port": 80}])], "ns1")
    assert v6["V6_PORT"] == "tcp://[fd00::10]:80"


async def test_service_links_disabled_keep_kubernetes_and_env_wins() -> None:
    services = [svc("web", "ns1", "10.96.0.9", [{"port": 80}]), KUBERNETES]
    p = pod([{"name": "app", "env": [{"name": "KUBERNETES_SERVICE_PORT", "value": "1"},
                                     {"name": "U", "value": "$(WEB_SERVICE_HOST)"}]}])
    env = dict(await env_of(p, services=services))
    assert env["KUBERNETES_SERVICE_PORT"] == "1"
    assert env["U"] == "10.96.0.9"
    assert env["WEB_SERVICE_HOST"] == "10.96.0.9"
    p["spec"]["enableServiceLinks"] = False
    env = dict(await env_of(p, services=services))
    assert "WEB_SERVICE_HOST" not in env
    assert env["U"] == "$(WEB_SERVICE_HOST)"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
