"""Validation causes, worded exactly as kube-apiserver 1.32 words them."""

from __future__ import annotations

import copy
from typing import Any

from pocketkube.api.defaulting import apply_defaults, job_prepare_for_create
from pocketkube.api.errors import invalid
from pocketkube.api.validation import validate

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def check(group: str, kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None,
          version: str = "v1") -> list[str]:
    """`field: message` of every cause, after defaulting (as the server runs them)."""
    obj = copy.deepcopy(obj)
    apply_defaults(group, version, kind, obj)
    if old is not None:
        old = copy.deepcopy(old)
        apply_defaults(group, version, kind, old)
    return [f"{c['field']}: {c['message']}" if c["field"] else c["message"]
            for c in validate(group, version, kind, obj, old)]


def pod(**spec: Any) -> dict[str, Any]:
    base = {"containers": [{"name": "c", "image": "nginx"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": base}


def deployment(**spec: Any) -> dict[str, Any]:
    base = {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": base}


# --- metadata -----------------------------------------------------------------------------------


def test_valid_objects_have_no_causes() -> None:
    assert check("", "Pod", pod()) == []
    assert check("apps", "Deployment", deployment()) == []


def test_name_rules() -> None:
    assert check("", "ConfigMap", {"metadata": {}}) == [
        "metadata.name: Required value: name or generateName is required"]
    assert check("", "ConfigMap", {"metadata": {"name": "Bad_Name"}}) == [
        f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']
    assert check("", "ConfigMap", {"metadata": {"generateName": "cm-"}}) == [
        "metadata.name: Required value: name or generateName is required"]
    assert check("", "Namespace", {"metadata": {"name": "a.b"}}) == [
        'metadata.name: Invalid value: "a.b": must not contain dots']
    assert check("", "Service", {"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}) == [
        f'metadata.name: Invalid value: "1web": {DNS1035_MSG}']
    assert check("rbac.authorization.k8s.io", "Role", {"metadata": {"name": "a/b"}}) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"]
    assert check("", "ConfigMap", {"metadata": {"name": "x" * 254}}) == [
        f'metadata.name: Invalid value: "{"x" * 254}": must be no more than 253 characters']


def test_labels_and_annotations() -> None:
    causes = check("", "ConfigMap", {"metadata": {"name": "c", "labels": {"app": "bad value"}}})
    assert causes == [
        'metadata.labels: Invalid value: "bad value": a valid label must be an empty string or consist '
        "of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    causes = check("", "ConfigMap", {"metadata": {"name": "c", "labels": {"a/b/c": "x"}}})
    assert causes == [
        'metadata.labels: Invalid value: "a/b/c": a qualified name must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
        "(e.g. 'example.com/MyName')"]
    big = {"metadata": {"name": "c", "annotations": {"a": "x" * (256 * 1024)}}}
    assert check("", "ConfigMap", big) == ["metadata.annotations: Too long: may not be more than 262144 bytes"]


def test_invalid_status_message_is_built_like_kube() -> None:
    causes = validate("", "v1", "ConfigMap", {"metadata": {"name": "Bad"}, "data": {"a b": "x"}})
    err = invalid("ConfigMap", "Bad", causes)
    assert err.code == 422
    assert err.message.startswith('ConfigMap "Bad" is invalid: [metadata.name: Invalid value: "Bad": ')
    assert causes[1] == {
        "reason": "FieldValueInvalid", "field": "data[a b]",
        "message": "Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, "
                   "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                   "validation is '[-._a-zA-Z0-9]+')"}


# --- pods ---------------------------------------------------------------------------------------


def test_pod_spec_messages() -> None:
    assert check("", "Pod", pod(containers=[])) == ["spec.containers: Required value"]
    causes = check("", "Pod", pod(containers=[
        {"name": "c", "image": "nginx", "ports": [{"containerPort": 70000}]},
        {"name": "c", "image": ""},
        {"name": "Bad", "image": "x", "env": [{"name": "A=B"}],
         "volumeMounts": [{"name": "missing", "mountPath": "/x"}]},
    ], restartPolicy="Sometimes"))
    assert causes == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[1].image: Required value",
        'spec.containers[1].name: Duplicate value: "c"',
        f'spec.containers[2].name: Invalid value: "Bad": {LABEL_MSG}',
        "spec.containers[2].env[0].name: Invalid value: \"A=B\": a valid environment variable name must "
        "consist only of printable ASCII characters other than '='",
        'spec.containers[2].volumeMounts[0].name: Not found: "missing"',
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
    ]


def test_resources_and_volumes() -> None:
    causes = check("", "Pod", pod(containers=[{"name": "c", "image": "x", "resources": {
        "requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}],
        volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "configMap": {}}]))
    assert causes == [
        'spec.volumes[1].configMap.name: Required value',
        'spec.volumes[1].name: Duplicate value: "v"',
        'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1',
    ]


def test_pod_update_is_limited() -> None:
    old = pod(containers=[{"name": "c", "image": "nginx:1"}])
    new = pod(containers=[{"name": "c", "image": "nginx:2", "ports": [{"containerPort": 80}]}])
    causes = check("", "Pod", new, old)
    assert len(causes) == 1
    assert causes[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
        "set to 1 if it was previously negative)\n")
    assert check("", "Pod", pod(containers=[{"name": "c", "image": "nginx:2"}]), old) == []
    tol = {"key": "k", "operator": "Exists", "effect": "NoSchedule"}
    assert check("", "Pod", pod(containers=[{"name": "c", "image": "nginx:1"}], tolerations=[tol]), old) == []


# --- apps ---------------------------------------------------------------------------------------


def test_deployment_messages() -> None:
    causes = check("apps", "Deployment", deployment(
        replicas=-1, selector={"matchLabels": {"app": "other"}}))
    assert causes == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`",
    ]
    assert check("apps", "Deployment", deployment(selector=None)) == ["spec.selector: Required value"]
    assert check("apps", "Deployment", deployment(selector={})) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
    zero = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}
    assert check("apps", "Deployment", deployment(strategy=zero)) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, "
        'StrVal:""}: may not be 0 when `maxSurge` is 0']
    assert check("apps", "Deployment", deployment(strategy={"type": "Blue"})) == [
        'spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"Blue", '
        'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate"']
    tpl = deployment()["spec"]["template"]
    tpl["spec"]["restartPolicy"] = "Never"
    assert check("apps", "Deployment", deployment(template=tpl)) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"']


def test_deployment_selector_is_immutable() -> None:
    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "web", "tier": "x"}})
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert check("apps", "Deployment", new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", '
        '"tier":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable']


def test_stateful_set_update_is_limited() -> None:
    sts = deployment(serviceName="web")
    sts["kind"] = "StatefulSet"
    assert check("apps", "StatefulSet", sts) == []
    changed = copy.deepcopy(sts)
    changed["spec"]["serviceName"] = "other"
    assert check("apps", "StatefulSet", changed, sts) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
        "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
        "and 'minReadySeconds' are forbidden"]
    scaled = copy.deepcopy(sts)
    scaled["spec"]["replicas"] = 5
    assert check("apps", "StatefulSet", scaled, sts) == []


# --- batch --------------------------------------------------------------------------------------


def job(restart: str | None = "Never") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "pi", "image": "perl"}]}
    if restart:
        spec["restartPolicy"] = restart
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": {"spec": spec}}}


def created_job(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    apply_defaults("batch", "v1", "Job", body)
    job_prepare_for_create(body, "8f2b7c4e-0000-4000-8000-000000000001")
    return body


def test_job_messages() -> None:
    assert validate("batch", "v1", "Job", created_job(job())) == []
    causes = validate("batch", "v1", "Job", created_job(job(restart=None)))
    assert [c["field"] + ": " + c["message"] for c in causes] == [
        'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"']
    old = created_job(job())
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:2"
    causes = validate("batch", "v1", "Job", new, old)
    assert [c["field"] for c in causes] == ["spec.template"]
    assert causes[0]["message"].startswith("Invalid value: core.PodTemplateSpec{")
    assert causes[0]["message"].endswith(": field is immutable")


def test_cron_job_schedule() -> None:
    cj = {"metadata": {"name": "c"}, "spec": {"schedule": "bad", "jobTemplate": {"spec": job()["spec"]}}}
    assert check("batch", "CronJob", cj) == [
        'spec.schedule: Invalid value: "bad": expected exactly 5 fields, found 1: [bad]']
    cj["spec"]["schedule"] = "61 * * * *"
    assert check("batch", "CronJob", cj) == [
        'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61']
    for ok in ("*/5 * * * *", "@hourly", "0 9 * * mon-fri", "@every 1h30m"):
        cj["spec"]["schedule"] = ok
        assert check("batch", "CronJob", cj) == [], ok


# --- core ---------------------------------------------------------------------------------------


def service(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


def test_service_messages() -> None:
    assert check("", "Service", service(selector={"app": "web"})) == ["spec.ports: Required value"]
    assert check("", "Service", service(clusterIP="None")) == []
    causes = check("", "Service", service(type="Magic", ports=[
        {"port": 80, "name": "http"}, {"port": 0, "name": "http", "protocol": "ICMP"}]))
    assert causes == [
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", '
        '"LoadBalancer", "NodePort"',
        'spec.ports[1].name: Duplicate value: "http"',
        "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        # targetPort defaults to the (invalid) port, and kube reports it too
        "spec.ports[1].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
    ]
    assert check("", "Service", service(ports=[{"port": 80}, {"port": 81}])) == [
        "spec.ports[0].name: Required value", "spec.ports[1].name: Required value"]
    assert check("", "Service", service(ports=[{"port": 80, "nodePort": 30080}])) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]


def test_service_cluster_ip_is_immutable() -> None:
    old = service(ports=[{"port": 80}], clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    new = service(ports=[{"port": 80}], clusterIP="10.96.0.11", clusterIPs=["10.96.0.11"])
    assert check("", "Service", new, old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set']


def test_secret_and_config_map() -> None:
    tls = {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}
    assert check("", "Secret", tls) == ["data[tls.key]: Required value"]
    old = {"metadata": {"name": "s"}, "data": {"a": "eA=="}}
    new = {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"a": "eA=="}}
    assert 'type: Invalid value: "kubernetes.io/tls": field is immutable' in check("", "Secret", new, old)
    frozen = {"metadata": {"name": "c"}, "immutable": True, "data": {"a": "1"}}
    changed = {"metadata": {"name": "c"}, "immutable": True, "data": {"a": "2"}}
    assert check("", "ConfigMap", changed, frozen) == [
        "data: Forbidden: field is immutable when `immutable` is set"]


def test_rbac_binding() -> None:
    rb = {"metadata": {"name": "b"}, "roleRef": {"kind": "Pod", "name": "r"},
          "subjects": [{"kind": "Robot", "name": "x"}]}
    assert check("rbac.authorization.k8s.io", "RoleBinding", rb) == [
        'roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"',
        'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
    ]


# --- robustness ---------------------------------------------------------------------------------


def test_wrong_json_types_become_causes() -> None:
    causes = validate("apps", "v1", "Deployment", {"metadata": {"name": "x"}, "spec": {"replicas": "3"}})
    assert causes == [{"reason": "FieldValueTypeInvalid", "field": "",
                       "message": "json: cannot unmarshal string into Go struct field "
                                  "DeploymentSpec.spec.replicas of type int32"}]


def test_any_shape_is_survived() -> None:
    shapes: list[Any] = [None, [], "x", 3, {"spec": None}, {"metadata": None},
                         {"metadata": {"name": None, "labels": None}, "spec": {"containers": [None]}},
                         {"spec": {"template": {"spec": {"containers": [{"ports": [None]}]}}}}]
    kinds = [("", "Pod"), ("apps", "Deployment"), ("", "Service"), ("batch", "Job"), ("batch", "CronJob"),
             ("apps", "StatefulSet"), ("", "Secret"), ("rbac.authorization.k8s.io", "ClusterRoleBinding")]
    for group, kind in kinds:
        for shape in shapes:
            causes = validate(group, "v1", kind, copy.deepcopy(shape))
            assert all(c["reason"] != "InternalError" for c in causes), (kind, shape, causes)
