"""Rows of the non-core groups: apps, batch, autoscaling, networking, discovery, coordination,
policy, rbac, scheduling and storage."""

from datetime import UTC, datetime, timedelta
from typing import Any

from pocketkube.api.printers import row_cells

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **extra: Any) -> dict:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=45), **extra}


TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [
            {"name": "nginx", "image": "nginx:1.27"},
            {"name": "sidecar", "image": "busybox"},
        ]
    },
}


def test_deployment() -> None:
    dep = {
        "metadata": meta("web"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row_cells("apps", "Deployment", dep, NOW) == [
        "web",
        "2/3",
        3,
        2,
        "45m",
        "nginx,sidecar",
        "nginx:1.27,busybox",
        "app=web",
    ]
    fresh = {"metadata": meta("new"), "spec": {"template": TEMPLATE, "selector": {}}}
    assert row_cells("apps", "Deployment", fresh, NOW)[1:4] == ["0/1", 0, 0]
    assert row_cells("apps", "Deployment", fresh, NOW)[7] == ""


def test_replica_set_stateful_set_daemon_set() -> None:
    rs = {
        "metadata": meta("web-5d4"),
        "spec": {
            "replicas": 2,
            "template": TEMPLATE,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4"}},
        },
        "status": {"replicas": 2, "readyReplicas": 1},
    }
    assert row_cells("apps", "ReplicaSet", rs, NOW) == [
        "web-5d4",
        2,
        2,
        1,
        "45m",
        "nginx,sidecar",
        "nginx:1.27,busybox",
        "app=web,pod-template-hash=5d4",
    ]
    sts = {
        "metadata": meta("db"),
        "spec": {"replicas": 3, "template": TEMPLATE},
        "status": {"readyReplicas": 3},
    }
    assert row_cells("apps", "StatefulSet", sts, NOW) == [
        "db",
        "3/3",
        "45m",
        "nginx,sidecar",
        "nginx:1.27,busybox",
    ]
    ds_template = {
        "spec": {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "containers": [{"name": "proxy", "image": "kube-proxy"}],
        }
    }
    ds = {
        "metadata": meta("kube-proxy"),
        "spec": {"template": ds_template, "selector": {"matchLabels": {"k8s-app": "kube-proxy"}}},
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert row_cells("apps", "DaemonSet", ds, NOW) == [
        "kube-proxy",
        3,
        3,
        2,
        3,
        2,
        "kubernetes.io/os=linux",
        "45m",
        "proxy",
        "kube-proxy",
        "k8s-app=kube-proxy",
    ]


def test_controller_revision() -> None:
    cr = {
        "metadata": meta(
            "web-7b9",
            ownerReferences=[
                {"apiVersion": "v1", "kind": "Pod", "name": "other"},
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True},
            ],
        ),
        "revision": 2,
    }
    assert row_cells("apps", "ControllerRevision", cr, NOW) == [
        "web-7b9",
        "statefulset.apps/web",
        2,
        "45m",
    ]
    orphan = {"metadata": meta("x"), "revision": 1}
    assert row_cells("apps", "ControllerRevision", orphan, NOW)[1] == "<none>"


def job(spec: dict, status: dict, **extra_meta: Any) -> list:
    obj = {
        "metadata": meta("pi", **extra_meta),
        "spec": {"template": TEMPLATE, "selector": {"matchLabels": {"job": "pi"}}, **spec},
        "status": status,
    }
    return row_cells("batch", "Job", obj, NOW)


def test_job_rows() -> None:
    done = job(
        {"completions": 1, "parallelism": 1},
        {
            "succeeded": 1,
            "startTime": ago(minutes=40),
            "completionTime": ago(minutes=39),
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        },
    )
    assert done == [
        "pi",
        "Complete",
        "1/1",
        "60s",
        "45m",
        "nginx,sidecar",
        "nginx:1.27,busybox",
        "job=pi",
    ]
    running = job({"completions": 5}, {"succeeded": 2, "startTime": ago(minutes=3)})
    assert running[1:4] == ["Running", "2/5", "3m"]
    queue = job({"parallelism": 4}, {})
    assert queue[1:4] == ["Running", "0/1 of 4", ""]
    failed = job({}, {"conditions": [{"type": "Failed", "status": "True"}]})
    assert failed[1:3] == ["Failed", "0/1"]
    suspended = job({"completions": 1}, {"conditions": [{"type": "Suspended", "status": "True"}]})
    assert suspended[1] == "Suspended"
    deleting = job(
        {},
        {"conditions": [{"type": "Suspended", "status": "True"}]},
        deletionTimestamp=ago(seconds=1),
    )
    assert deleting[1] == "Terminating"
    target = job({}, {"conditions": [{"type": "FailureTarget", "status": "True"}]})
    assert target[1] == "FailureTarget"


def test_cron_job() -> None:
    cj = {
        "metadata": meta("backup"),
        "spec": {
            "schedule": "*/5 * * * *",
            "suspend": False,
            "jobTemplate": {"spec": {"template": TEMPLATE}},
        },
        "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": ago(minutes=4)},
    }
    assert row_cells("batch", "CronJob", cj, NOW) == [
        "backup",
        "*/5 * * * *",
        "<none>",
        "False",
        1,
        "4m",
        "45m",
        "nginx,sidecar",
        "nginx:1.27,busybox",
        "<none>",
    ]
    cj["spec"].update(suspend=True, timeZone="Etc/UTC")
    cj["status"] = {}
    assert row_cells("batch", "CronJob", cj, NOW)[2:6] == ["Etc/UTC", "True", 0, "<none>"]


def test_horizontal_pod_autoscaler() -> None:
    hpa = {
        "metadata": meta("web"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                },
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "1000"},
                    },
                },
                {
                    "type": "Resource",
                    "resource": {
                        "name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "512Mi"},
                    },
                },
            ],
        },
        "status": {
            "currentReplicas": 3,
            "currentMetrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "current": {"averageUtilization": 45, "averageValue": "120m"},
                    },
                },
            ],
        },
    }
    assert row_cells("autoscaling", "HorizontalPodAutoscaler", hpa, NOW) == [
        "web",
        "Deployment/web",
        "cpu: 45%/80%, <unknown>/1k + 1 more...",
        "2",
        10,
        3,
        "45m",
    ]
    hpa["spec"]["metrics"] = hpa["spec"]["metrics"][2:]
    del hpa["spec"]["minReplicas"]
    hpa["status"] = {}
    assert row_cells("autoscaling", "HorizontalPodAutoscaler", hpa, NOW)[2:6] == [
        "memory: <unknown>/512Mi",
        "<unset>",
        10,
        0,
    ]
    hpa["spec"]["metrics"] = []
    assert row_cells("autoscaling", "HorizontalPodAutoscaler", hpa, NOW)[2] == "<none>"


def test_ingress_and_ingress_class() -> None:
    ing = {
        "metadata": meta("web"),
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["a.example.com"]}],
            "rules": [
                {"host": "a.example.com"},
                {},
                {"host": "b.example.com"},
                {"host": "c.example.com"},
                {"host": "d.example.com"},
            ],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.49.2"}]}},
    }
    assert row_cells("networking.k8s.io", "Ingress", ing, NOW) == [
        "web",
        "nginx",
        "a.example.com,b.example.com,c.example.com + 2 more...",
        "192.168.49.2",
        "80, 443",
        "45m",
    ]
    bare = {"metadata": meta("any"), "spec": {"rules": [{}]}}
    assert row_cells("networking.k8s.io", "Ingress", bare, NOW)[1:5] == ["<none>", "*", "", "80"]
    ic = {
        "metadata": meta("nginx"),
        "spec": {
            "controller": "k8s.io/ingress-nginx",
            "parameters": {
                "apiGroup": "k8s.example.com",
                "kind": "IngressParameters",
                "name": "external-lb",
            },
        },
    }
    assert row_cells("networking.k8s.io", "IngressClass", ic, NOW) == [
        "nginx",
        "k8s.io/ingress-nginx",
        "IngressParameters.k8s.example.com/external-lb",
        "45m",
    ]


def test_network_policy_and_endpoint_slice() -> None:
    np = {"metadata": meta("deny"), "spec": {"podSelector": {}}}
    assert row_cells("networking.k8s.io", "NetworkPolicy", np, NOW) == ["deny", "<none>", "45m"]
    np["spec"]["podSelector"] = {"matchLabels": {"role": "db"}}
    assert row_cells("networking.k8s.io", "NetworkPolicy", np, NOW)[1] == "role=db"
    es = {
        "metadata": meta("web-abc"),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "metrics"}, {}, {"port": 9000}],
        "endpoints": [
            {"addresses": ["10.0.0.1"]},
            {"addresses": ["10.0.0.2", "10.0.0.3"]},
            {"addresses": ["10.0.0.4"]},
        ],
    }
    assert row_cells("discovery.k8s.io", "EndpointSlice", es, NOW) == [
        "web-abc",
        "IPv4",
        "80,metrics,* + 1 more...",
        "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
        "45m",
    ]
    empty = {"metadata": meta("e"), "addressType": "IPv6"}
    assert row_cells("discovery.k8s.io", "EndpointSlice", empty, NOW)[2:4] == ["<unset>", "<unset>"]


def test_lease_and_pod_disruption_budget() -> None:
    lease = {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "node-a_1234"}}
    assert row_cells("coordination.k8s.io", "Lease", lease, NOW) == [
        "kube-scheduler",
        "node-a_1234",
        "45m",
    ]
    assert row_cells("coordination.k8s.io", "Lease", {"metadata": meta("x")}, NOW)[1] == ""
    pdb = {
        "metadata": meta("web"),
        "spec": {"minAvailable": 2},
        "status": {"disruptionsAllowed": 1},
    }
    assert row_cells("policy", "PodDisruptionBudget", pdb, NOW) == ["web", "2", "N/A", 1, "45m"]
    pdb["spec"] = {"maxUnavailable": "25%"}
    assert row_cells("policy", "PodDisruptionBudget", pdb, NOW)[1:3] == ["N/A", "25%"]


def test_role_bindings() -> None:
    rb = {
        "metadata": meta("read"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "namespace": "ci", "name": "runner"},
            {"kind": "User", "name": "bob"},
        ],
    }
    expected = ["read", "ClusterRole/view", "45m", "alice, bob", "devs", "ci/runner"]
    assert row_cells("rbac.authorization.k8s.io", "RoleBinding", rb, NOW) == expected
    assert row_cells("rbac.authorization.k8s.io", "ClusterRoleBinding", rb, NOW) == expected


def test_priority_class_and_storage_class() -> None:
    pc = {
        "metadata": meta("system-node-critical"),
        "value": 2000001000,
        "globalDefault": False,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    assert row_cells("scheduling.k8s.io", "PriorityClass", pc, NOW) == [
        "system-node-critical",
        2000001000,
        False,
        "45m",
        "PreemptLowerPriority",
    ]
    sc = {
        "metadata": meta(
            "standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"}
        ),
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    assert row_cells("storage.k8s.io", "StorageClass", sc, NOW) == [
        "standard (default)",
        "rancher.io/local-path",
        "Delete",
        "WaitForFirstConsumer",
        False,
        "45m",
    ]


def test_scale_subresource() -> None:
    scale = {"metadata": meta("web"), "spec": {"replicas": 3}, "status": {"replicas": 2}}
    assert row_cells("autoscaling", "Scale", scale, NOW) == ["web", 3, 2, "45m"]
