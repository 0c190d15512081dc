"""core/v1 rows other than Pods: Services, Nodes, Namespaces, Endpoints, ConfigMaps, Secrets,
ServiceAccounts, ReplicationControllers, ResourceQuotas, ComponentStatuses, volumes, Events."""

from datetime import UTC, datetime, timedelta
from typing import Any

from pocketkube.api.printers import row_cells

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **extra: Any) -> dict:
    return {
        "name": name,
        "namespace": "default",
        "creationTimestamp": ago(hours=3, minutes=4),
        **extra,
    }


def svc(spec: dict, status: dict | None = None) -> list:
    obj = {"metadata": meta("web"), "spec": spec, "status": status or {}}
    return row_cells("", "Service", obj, NOW)


def test_cluster_ip_service() -> None:
    spec = {
        "type": "ClusterIP",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        "selector": {"k8s-app": "kube-dns"},
    }
    assert svc(spec) == [
        "web",
        "ClusterIP",
        "10.96.0.10",
        "<none>",
        "53/UDP,53/TCP",
        "3h4m",
        "k8s-app=kube-dns",
    ]


def test_node_port_and_headless_services() -> None:
    spec = {
        "type": "NodePort",
        "clusterIP": "10.96.1.1",
        "externalIPs": ["1.2.3.4"],
        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
    }
    assert svc(spec)[1:5] == ["NodePort", "10.96.1.1", "1.2.3.4", "80:30080/TCP"]
    headless = {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}
    assert svc(headless)[2:5] == ["None", "<none>", "<none>"]
    assert svc(headless)[6] == "<none>"


def test_load_balancer_external_ip() -> None:
    spec = {
        "type": "LoadBalancer",
        "clusterIPs": ["10.96.2.2"],
        "ports": [{"port": 443, "nodePort": 31443}],
    }
    assert svc(spec)[2:5] == ["10.96.2.2", "<pending>", "443:31443/TCP"]
    lb = {
        "loadBalancer": {
            "ingress": [
                {"ip": "203.0.113.9"},
                {"hostname": "lb.example.com"},
                {"ip": "203.0.113.1"},
            ]
        }
    }
    # wide output is never truncated to 16 characters
    assert svc(spec, lb)[3] == "203.0.113.1,203.0.113.9,lb.example.com"
    spec["externalIPs"] = ["198.51.100.5"]
    assert svc(spec, lb)[3] == "203.0.113.1,203.0.113.9,lb.example.com,198.51.100.5"


def test_external_name_service() -> None:
    spec = {"type": "ExternalName", "externalName": "db.example.com"}
    assert svc(spec)[1:5] == ["ExternalName", "<none>", "db.example.com", "<none>"]


def node(labels: dict, conditions: list, unschedulable: bool = False) -> list:
    obj = {
        "metadata": {"name": "node-a", "labels": labels, "creationTimestamp": ago(days=2, hours=3)},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": conditions,
            "addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "InternalIP", "address": "192.168.1.10"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "osImage": "Debian GNU/Linux 12",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "",
            },
        },
    }
    return row_cells("", "Node", obj, NOW)


def test_node_row() -> None:
    ready = [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]
    labels = {
        "node-role.kubernetes.io/control-plane": "",
        "node-role.kubernetes.io/": "x",
        "kubernetes.io/role": "worker",
        "kubernetes.io/hostname": "node-a",
    }
    assert node(labels, ready, unschedulable=True) == [
        "node-a",
        "Ready,SchedulingDisabled",
        "control-plane,worker",
        "2d3h",
        "v1.32.0",
        "192.168.1.10",
        "<none>",
        "Debian GNU/Linux 12",
        "6.1.0",
        "<unknown>",
    ]


def test_node_status_not_ready_and_unknown() -> None:
    assert node({}, [{"type": "Ready", "status": "Unknown"}])[1:3] == ["NotReady", "<none>"]
    assert node({}, [])[1] == "Unknown"


def test_namespace_endpoints_configmap_secret_serviceaccount() -> None:
    ns = {"metadata": meta("kube-system"), "status": {"phase": "Terminating"}}
    assert row_cells("", "Namespace", ns, NOW) == ["kube-system", "Terminating", "3h4m"]
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert row_cells("", "ConfigMap", cm, NOW) == ["cfg", 3, "3h4m"]
    secret = {
        "metadata": meta("tls"),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "x", "tls.key": "y"},
    }
    assert row_cells("", "Secret", secret, NOW) == ["tls", "kubernetes.io/tls", 2, "3h4m"]
    sa = {"metadata": meta("default"), "secrets": [{"name": "t"}]}
    assert row_cells("", "ServiceAccount", sa, NOW) == ["default", 1, "3h4m"]


def test_endpoints_formatting() -> None:
    def ep(subsets: Any) -> str:
        return row_cells("", "Endpoints", {"metadata": meta("web"), "subsets": subsets}, NOW)[1]

    assert ep(None) == "<none>"
    addrs = [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]
    assert ep([{"addresses": addrs, "ports": [{"port": 80}]}]) == "10.0.0.1:80,10.0.0.2:80"
    two_ports = [{"addresses": addrs, "ports": [{"port": 80}, {"port": 443}]}]
    assert ep(two_ports) == "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
    assert ep([{"addresses": addrs}]) == "10.0.0.1,10.0.0.2"
    assert ep([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]) == "[fd00::1]:8080"
    assert ep([{"notReadyAddresses": addrs, "ports": [{"port": 80}]}]) == ""


def test_replication_controller() -> None:
    rc = {
        "metadata": meta("rc1"),
        "spec": {
            "replicas": 3,
            "selector": {"app": "x"},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
        "status": {"replicas": 3, "readyReplicas": 2},
    }
    assert row_cells("", "ReplicationController", rc, NOW) == [
        "rc1",
        3,
        3,
        2,
        "3h4m",
        "c",
        "nginx",
        "app=x",
    ]


def test_resource_quota_splits_requests_and_limits() -> None:
    rq = {
        "metadata": meta("quota"),
        "status": {
            "hard": {
                "pods": "10",
                "requests.cpu": "2",
                "limits.memory": "2Gi",
                "requests.memory": "1024Mi",
                "limits.cpu": "4",
            },
            "used": {
                "pods": "3",
                "requests.cpu": "500m",
                "limits.memory": "512Mi",
                "limits.cpu": "1500m",
            },
        },
    }
    assert row_cells("", "ResourceQuota", rq, NOW) == [
        "quota",
        "pods: 3/10, requests.cpu: 500m/2, requests.memory: 0/1Gi",
        "limits.cpu: 1500m/4, limits.memory: 512Mi/2Gi",
        "3h4m",
    ]


def test_component_status() -> None:
    cs = {
        "metadata": {"name": "etcd-0"},
        "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}],
    }
    assert row_cells("", "ComponentStatus", cs, NOW) == ["etcd-0", "Healthy", "ok", ""]
    bad = {
        "metadata": {"name": "scheduler"},
        "conditions": [{"type": "Healthy", "status": "False", "error": "refused"}],
    }
    assert row_cells("", "ComponentStatus", bad, NOW) == ["scheduler", "Unhealthy", "", "refused"]
    assert row_cells("", "ComponentStatus", {"metadata": {"name": "x"}}, NOW)[1] == "Unknown"


def test_persistent_volume() -> None:
    pv = {
        "metadata": {"name": "pv1", "creationTimestamp": ago(minutes=45)},
        "spec": {
            "capacity": {"storage": "1024Mi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "fast",
            "claimRef": {"namespace": "default", "name": "data"},
            "volumeMode": "Block",
        },
        "status": {"phase": "Bound"},
    }
    assert row_cells("", "PersistentVolume", pv, NOW) == [
        "pv1",
        "1Gi",
        "RWO,RWX",
        "Delete",
        "Bound",
        "default/data",
        "fast",
        "<unset>",
        "",
        "45m",
        "Block",
    ]
    pv["metadata"]["deletionTimestamp"] = ago(seconds=1)
    pv["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "old"}
    assert row_cells("", "PersistentVolume", pv, NOW)[4:7] == ["Terminating", "default/data", "old"]


def test_persistent_volume_claim() -> None:
    pvc = {
        "metadata": meta("data"),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}},
            "storageClassName": "standard",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Pending"},
    }
    assert row_cells("", "PersistentVolumeClaim", pvc, NOW) == [
        "data",
        "Pending",
        "",
        "",
        "",
        "standard",
        "<unset>",
        "3h4m",
        "Filesystem",
    ]
    pvc["spec"]["volumeName"] = "pv1"
    pvc["spec"]["volumeAttributesClassName"] = "gold"
    pvc["status"] = {
        "phase": "Bound",
        "accessModes": ["ReadWriteOncePod"],
        "capacity": {"storage": "5Gi"},
    }
    assert row_cells("", "PersistentVolumeClaim", pvc, NOW)[1:7] == [
        "Bound",
        "pv1",
        "5Gi",
        "RWOP",
        "standard",
        "gold",
    ]


def test_core_event_row() -> None:
    ev = {
        "metadata": {"name": "web-1.17d", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{c0}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(minutes=10),
        "lastTimestamp": ago(seconds=30),
        "count": 7,
        "type": "Warning",
    }
    assert row_cells("", "Event", ev, NOW) == [
        "30s",
        "Warning",
        "BackOff",
        "pod/web-1",
        "spec.containers{c0}",
        "kubelet, node-a",
        "Back-off restarting failed container",
        "10m",
        7,
        "web-1.17d",
    ]


def test_event_without_legacy_timestamps_uses_event_time() -> None:
    ev = {
        "metadata": {"name": "e2"},
        "involvedObject": {"kind": "Node"},
        "reason": "Starting",
        "message": "",
        "eventTime": (NOW - timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingComponent": "kube-proxy",
        "reportingInstance": "node-a",
        "type": "Normal",
    }
    assert row_cells("", "Event", ev, NOW) == [
        "90s",
        "Normal",
        "Starting",
        "node",
        "",
        "kube-proxy, node-a",
        "",
        "90s",
        1,
        "e2",
    ]


def test_events_k8s_io_event_with_series() -> None:
    ev = {
        "metadata": {"name": "e3"},
        "regarding": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet",
        "note": "Scaled up replica set web-5d4 to 3",
        "reportingController": "deployment-controller",
        "eventTime": ago(minutes=20),
        "series": {"count": 4, "lastObservedTime": ago(minutes=1)},
        "type": "Normal",
    }
    assert row_cells("events.k8s.io", "Event", ev, NOW) == [
        "60s",
        "Normal",
        "ScalingReplicaSet",
        "deployment/web",
        "",
        "deployment-controller",
        "Scaled up replica set web-5d4 to 3",
        "20m",
        4,
        "e3",
    ]
