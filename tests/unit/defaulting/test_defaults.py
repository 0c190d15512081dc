"""Defaults of the built-in kinds, compared with what a 1.32 cluster serves back."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pocketkube.api.defaulting import apply_defaults, job_prepare_for_create

NGINX = {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}

DEFAULTED_CONTAINER = {
    "name": "nginx",
    "image": "nginx:1.27",
    "ports": [{"containerPort": 80, "protocol": "TCP"}],
    "resources": {},
    "imagePullPolicy": "IfNotPresent",
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}

TEMPLATE_SPEC_DEFAULTS = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
    "schedulerName": "default-scheduler",
}


def defaulted(group: str, version: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    apply_defaults(group, version, kind, obj)
    return obj


def controller(kind: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [dict(NGINX)]}},
                 **(extra or {})},
    }


def expected_template() -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
            "spec": {"containers": [DEFAULTED_CONTAINER], **TEMPLATE_SPEC_DEFAULTS}}


def test_pod_defaults() -> None:
    pod = defaulted("", "v1", "Pod", {"metadata": {"name": "p"}, "spec": {"containers": [dict(NGINX)]}})
    assert pod["spec"] == {
        "containers": [DEFAULTED_CONTAINER],
        "enableServiceLinks": True,
        **TEMPLATE_SPEC_DEFAULTS,
        "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority",
    }


def test_image_pull_policy_follows_the_tag() -> None:
    cases = {"nginx": "Always", "nginx:latest": "Always", "registry:5000/app": "Always",
             "registry:5000/app:v1": "IfNotPresent", "nginx@sha256:" + "a" * 64: "IfNotPresent",
             "nginx:1.27": "IfNotPresent"}
    for image, policy in cases.items():
        pod = defaulted("", "v1", "Pod", {"spec": {"containers": [{"name": "c", "image": image}]}})
        assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy, image


def test_pod_copies_limits_to_requests_and_canonicalizes_quantities() -> None:
    pod = defaulted("", "v1", "Pod", {"spec": {"containers": [
        {"name": "c", "image": "x", "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"},
                                                   "requests": {"memory": 1000000}}}]}})
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "1M"},
    }


def test_templates_do_not_get_pod_only_defaults() -> None:
    dep = defaulted("apps", "v1", "Deployment", controller("Deployment"))
    spec = dep["spec"]["template"]["spec"]
    assert "enableServiceLinks" not in spec and "priority" not in spec


def test_probe_env_and_volume_defaults() -> None:
    pod = defaulted("", "v1", "Pod", {"spec": {
        "containers": [{
            "name": "c", "image": "x",
            "livenessProbe": {"httpGet": {"port": 8080}},
            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        }],
        "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "sec", "secret": {"secretName": "s"}},
                    {"name": "scratch"},
                    {"name": "host", "hostPath": {"path": "/tmp"}}],
    }})
    c = pod["spec"]["containers"][0]
    assert c["livenessProbe"] == {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
                                  "timeoutSeconds": 1, "periodSeconds": 10,
                                  "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
    assert pod["spec"]["volumes"] == [
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 420}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": "/tmp", "type": ""}},
    ]


def test_deployment_defaults() -> None:
    dep = defaulted("apps", "v1", "Deployment", controller("Deployment"))
    assert dep["spec"] == {
        "selector": {"matchLabels": {"app": "web"}},
        "template": expected_template(),
        "replicas": 1,
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    assert dep["status"] == {}


def test_recreate_strategy_gets_no_rolling_update() -> None:
    dep = defaulted("apps", "v1", "Deployment", controller("Deployment", {"strategy": {"type": "Recreate"}}))
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_replica_set_defaults() -> None:
    rs = defaulted("apps", "v1", "ReplicaSet", controller("ReplicaSet"))
    assert rs["spec"]["replicas"] == 1
    assert rs["spec"]["template"] == expected_template()
    assert rs["status"] == {"replicas": 0}


def test_stateful_set_defaults() -> None:
    sts = defaulted("apps", "v1", "StatefulSet", controller("StatefulSet", {
        "serviceName": "web",
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
    }))
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["volumeClaimTemplates"][0] == {
        "metadata": {"name": "data", "creationTimestamp": None},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"},
    }
    assert sts["status"] == {"replicas": 0, "availableReplicas": 0}


def test_daemon_set_defaults() -> None:
    ds = defaulted("apps", "v1", "DaemonSet", controller("DaemonSet"))
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert ds["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                            "desiredNumberScheduled": 0, "numberReady": 0}


def job_body() -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}],
                                           "restartPolicy": "Never"}}}}


def test_job_defaults_and_generated_selector() -> None:
    job = defaulted("batch", "v1", "Job", job_body())
    job_prepare_for_create(job, "1234")
    spec = job["spec"]
    assert {k: spec[k] for k in ("completions", "parallelism", "backoffLimit", "completionMode",
                                 "suspend", "podReplacementPolicy")} == {
        "completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
        "suspend": False, "podReplacementPolicy": "TerminatingOrFailed"}
    labels = {"batch.kubernetes.io/controller-uid": "1234", "batch.kubernetes.io/job-name": "pi",
              "controller-uid": "1234", "job-name": "pi"}
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}}
    assert spec["template"]["metadata"] == {"creationTimestamp": None, "labels": labels}
    assert job["metadata"]["labels"] == labels
    assert job["metadata"]["uid"] == "1234"
    assert "manualSelector" not in spec


def test_job_parallelism_alone_leaves_completions_unset() -> None:
    body = job_body()
    body["spec"]["parallelism"] = 3
    spec = defaulted("batch", "v1", "Job", body)["spec"]
    assert spec["parallelism"] == 3 and "completions" not in spec


def test_job_manual_selector_is_kept() -> None:
    body = job_body()
    body["spec"]["manualSelector"] = True
    body["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    job = defaulted("batch", "v1", "Job", body)
    job_prepare_for_create(job, "u")
    assert job["spec"]["selector"] == {"matchLabels": {"a": "b"}}


def test_cron_job_defaults() -> None:
    cj = defaulted("batch", "v1", "CronJob", {"metadata": {"name": "c"}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": job_body()["spec"]}}})
    spec = cj["spec"]
    assert {k: spec[k] for k in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit",
                                 "failedJobsHistoryLimit")} == {
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1}
    job_spec = spec["jobTemplate"]["spec"]
    assert spec["jobTemplate"]["metadata"] == {"creationTimestamp": None}
    assert "backoffLimit" not in job_spec  # Job defaults do not apply to job templates
    assert job_spec["template"]["spec"]["schedulerName"] == "default-scheduler"


def test_service_defaults() -> None:
    svc = defaulted("", "v1", "Service", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 443, "targetPort": 8443, "name": "b"}]}})
    assert svc["spec"] == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                  {"port": 443, "targetPort": 8443, "name": "b", "protocol": "TCP"}],
        "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
    }
    assert svc["status"] == {"loadBalancer": {}}


def test_service_type_specific_defaults() -> None:
    lb = defaulted("", "v1", "Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})["spec"]
    assert lb["externalTrafficPolicy"] == "Cluster" and lb["allocateLoadBalancerNodePorts"] is True
    ext = defaulted("", "v1", "Service", {"spec": {"type": "ExternalName", "externalName": "a.b"}})["spec"]
    assert ext == {"type": "ExternalName", "externalName": "a.b", "sessionAffinity": "None"}
    headless = defaulted("", "v1", "Service", {"spec": {"clusterIP": "None"}})["spec"]
    assert headless["ipFamilyPolicy"] == "RequireDualStack"
    sticky = defaulted("", "v1", "Service", {"spec": {"sessionAffinity": "ClientIP"}})["spec"]
    assert sticky["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_namespace_secret_and_volumes() -> None:
    ns = defaulted("", "v1", "Namespace", {"metadata": {"name": "team"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    sec = defaulted("", "v1", "Secret", {"stringData": {"user": "admin"}, "data": {"a": "Yg=="}})
    assert sec == {"type": "Opaque", "data": {"a": "Yg==", "user": "YWRtaW4="}}
    pv = defaulted("", "v1", "PersistentVolume", {"spec": {"capacity": {"storage": "1.5Gi"}}})
    assert pv["spec"] == {"capacity": {"storage": "1536Mi"}, "persistentVolumeReclaimPolicy": "Retain",
                          "volumeMode": "Filesystem"}
    assert pv["status"] == {"phase": "Pending"}
    pvc = defaulted("", "v1", "PersistentVolumeClaim", {"spec": {"resources": {"requests": {"storage": "1Gi"}}}})
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"] == {"phase": "Pending"}


def test_replication_controller_takes_selector_and_labels_from_template() -> None:
    rc = defaulted("", "v1", "ReplicationController", {"metadata": {"name": "rc"}, "spec": {
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [dict(NGINX)]}}}})
    assert rc["spec"]["selector"] == {"app": "x"} and rc["metadata"]["labels"] == {"app": "x"}
    assert rc["spec"]["replicas"] == 1


def test_other_groups() -> None:
    rb = defaulted("rbac.authorization.k8s.io", "v1", "RoleBinding", {
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]})
    assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert rb["subjects"] == [{"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"},
                              {"kind": "ServiceAccount", "name": "s"}]
    np = defaulted("networking.k8s.io", "v1", "NetworkPolicy", {"spec": {
        "egress": [{"ports": [{"port": 53}]}]}})
    assert np["spec"] == {"egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}], "podSelector": {},
                          "policyTypes": ["Ingress", "Egress"]}
    pc = defaulted("scheduling.k8s.io", "v1", "PriorityClass", {"value": 100})
    assert pc["preemptionPolicy"] == "PreemptLowerPriority"
    sc = defaulted("storage.k8s.io", "v1", "StorageClass", {"provisioner": "x"})
    assert (sc["reclaimPolicy"], sc["volumeBindingMode"]) == ("Delete", "Immediate")
    ep = defaulted("", "v1", "Endpoints", {"subsets": [{"ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"
    es = defaulted("discovery.k8s.io", "v1", "EndpointSlice", {"addressType": "IPv4", "ports": [{"port": 80}]})
    assert es["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}] and es["endpoints"] is None


def test_hpa_defaults() -> None:
    hpa = defaulted("autoscaling", "v2", "HorizontalPodAutoscaler", {"spec": {
        "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}})
    spec = hpa["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"]["scaleUp"]["policies"][0] == {"type": "Pods", "value": 4, "periodSeconds": 15}
    assert spec["behavior"]["scaleDown"] == {
        "selectPolicy": "Max", "stabilizationWindowSeconds": 60,
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def test_malformed_bodies_are_left_to_validation(caplog: pytest.LogCaptureFixture) -> None:
    for body in ({"spec": "x"}, {"spec": {"containers": "x", "volumes": [1, None]}},
                 {"spec": {"template": []}}, {"metadata": 3}, {"spec": {"ports": [{"port": "x"}]}}):
        for group, kind in (("", "Pod"), ("apps", "Deployment"), ("", "Service"), ("batch", "Job"),
                            ("", "Namespace"), ("batch", "CronJob")):
            apply_defaults(group, "v1", kind, copy.deepcopy(body))
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
